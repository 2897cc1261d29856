"""Simulated annealing: each schedule's temperatures are its formula; the global minimum of a tilted double well is
found in most runs with a small budget, where a zero-temperature (greedy) run of the same budget never leaves the
local well; loss evaluations are counted."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from samplax.models import wells
from samplax.optimizers import SCHEDULES, anneal, make_schedule

LAND = wells.tilted_double_well(3.0, 0.3)
# "reached the global minimum" = the loss fell below the local minimum's value by half the gap (as test_ecd_optimizer)
LEVEL = 0.5 * (LAND.global_minimum_value + LAND.minimum_values.max())
STEPS, RUNS = 2000, 100


def _runs(**kw):
    x0 = jnp.asarray(LAND.local_minimum)
    run = jax.jit(jax.vmap(lambda k: anneal(LAND.loss, x0, steps=STEPS, key=k, step_size=1.0, **kw)))
    return run(jax.random.split(jax.random.PRNGKey(3), RUNS))


def test_geometric_annealing_finds_the_global_minimum_where_greedy_search_does_not():
    res = _runs(schedule="geometric", T0=2.0, alpha=0.998)
    frac = float(np.mean(np.asarray(res.best_loss) < LEVEL))
    assert frac >= 0.8, f"annealing reached the global minimum in only {frac:.0%} of {RUNS} runs"
    # the best point is a minimiser, not just below the level: within 0.3 of the global minimum
    assert np.median(np.abs(np.asarray(res.best_x)[:, 0] - LAND.global_minimum[0])) < 0.3
    greedy = _runs(schedule="geometric", T0=1e-6, alpha=0.998)
    assert float(np.mean(np.asarray(greedy.best_loss) < LEVEL)) <= 0.05, "the budget is not discriminating"
    assert np.all(np.asarray(res.n_grad) == 0) and np.all(np.asarray(res.n_loss) == STEPS + 1)


@pytest.mark.parametrize("name", sorted(SCHEDULES))
def test_temperatures_follow_the_schedule_formula(name):
    T0, steps = 1.5, 300
    kw = {"geometric": {"alpha": 0.99}, "adaptive": {"lam": 0.01, "rho": 0.1}, "logarithmic": {}}[name]
    res = anneal(LAND.loss, jnp.asarray(LAND.local_minimum), steps=steps, key=jax.random.PRNGKey(0), schedule=name,
                 T0=T0, step_size=0.5, **kw)
    T = np.asarray(res.temperatures)  # the temperature each step's Metropolis test used
    k = np.arange(steps)
    if name == "logarithmic":
        expect = T0 * np.log(2.0) / np.log(k + 2.0)
    elif name == "geometric":
        expect = T0 * 0.99**k
    else:  # T_{k+1} = T_k exp(-lam T_k / sigma_k), sigma_k^2 an exponentially weighted variance of the losses
        f = np.asarray(res.losses)
        expect, t, mean, var = [T0], T0, 0.0, 0.0
        for i in range(steps - 1):  # update i uses the loss after step i
            if i == 0:
                mean, var = f[0], 0.0
            else:
                diff = f[i] - mean
                mean, var = mean + 0.1 * diff, 0.9 * (var + 0.1 * diff**2)
            sigma = np.sqrt(var)
            if i + 1 >= 10 and sigma > 0:
                t = t * np.exp(-0.01 * t / sigma)
            expect.append(t)
        expect = np.asarray(expect)
        assert expect[-1] < 0.5 * T0 and expect[9] == T0 > expect[10]  # it cools, and not before the window filled
    np.testing.assert_allclose(T, expect, rtol=1e-8)


def test_schedule_registry_and_errors():
    assert sorted(SCHEDULES) == ["adaptive", "geometric", "logarithmic"]
    with pytest.raises(ValueError, match="unknown schedule"):
        make_schedule("linear", 1.0)
    with pytest.raises(ValueError, match="alpha"):
        make_schedule("geometric", 1.0, alpha=1.5)
    with pytest.raises(ValueError, match="T0"):
        make_schedule("geometric", 0.0)
    with pytest.raises(ValueError, match="steps"):
        anneal(LAND.loss, jnp.zeros(1), steps=0)
