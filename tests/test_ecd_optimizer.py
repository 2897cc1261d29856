"""ECD optimiser: escapes a local well where gradient descent cannot; energy bounds; optax contract."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from samplax.models import wells
from samplax.optimizers import ecd, minimize

LAND = wells.tilted_double_well(3.0, 0.3)
F0 = LAND.global_minimum_value - 1.0
# "reached the global minimum" = the loss fell below the local minimum's value by half the gap
LEVEL = 0.5 * (LAND.global_minimum_value + LAND.minimum_values.max())
STEPS, RUNS = 2000, 100


def _starts(key):
    """Starts spread inside the local well (within 0.3 of its minimum)."""
    return jnp.asarray(LAND.local_minimum) + jax.random.uniform(key, (RUNS, 1), minval=-0.3, maxval=0.3)


def test_ecd_reaches_global_minimum_where_gd_never_does():
    starts = _starts(jax.random.PRNGKey(0))
    keys = jax.random.split(jax.random.PRNGKey(1), RUNS)
    run = jax.jit(jax.vmap(lambda x0, k: minimize(LAND.loss, x0, steps=STEPS, key=k, learning_rate=0.05, F0=F0,
                                                  eta=1.0, s=1.0, delta_energy=1.0, lam=0.1)))
    res = run(starts, keys)
    frac = float(np.mean(np.asarray(res.best_loss) < LEVEL))
    assert frac >= 0.9, f"ECD reached the global minimum in only {frac:.0%} of runs"
    assert np.all(np.asarray(res.n_grad) == STEPS + 1)

    sgd = optax.sgd(0.05)
    grad = jax.grad(LAND.loss)

    def gd(x0):
        def body(carry, _):
            x, st, best = carry
            upd, st = sgd.update(grad(x), st)
            x = optax.apply_updates(x, upd)
            return (x, st, jnp.minimum(best, LAND.loss(x))), None

        (_, _, best), _ = jax.lax.scan(body, (x0, sgd.init(x0), LAND.loss(x0)), None, length=STEPS)
        return best

    gd_best = np.asarray(jax.jit(jax.vmap(gd))(starts))
    assert np.all(gd_best > LEVEL), "gradient descent left the local well: the test budget is not discriminating"


def test_energy_ceiling_bounds_the_loss():
    # with s > 0 the run stays in {F <= F0 + (F(x0) - F0) (1 + delta_energy / s)^(1/eta)} (up to O(lr) steps)
    x0 = jnp.asarray(LAND.local_minimum) + 0.1
    eta, s, de = 2.0, 1.0, 0.5
    res = minimize(LAND.loss, x0, steps=3000, key=jax.random.PRNGKey(2), learning_rate=0.02, F0=F0, eta=eta, s=s,
                   delta_energy=de, lam=0.5)
    ceiling = F0 + (float(LAND.loss(x0)) - F0) * (1 + de / s) ** (1 / eta)
    losses = np.asarray(res.losses)
    assert losses.max() <= ceiling + 1e-2
    assert losses.max() > ceiling - 0.2  # it does reach the walls (bounces), not just sit still


def test_optax_contract_and_errors():
    opt = ecd(0.1, F0=-1.0)
    params = {"w": jnp.ones(2), "b": jnp.zeros(())}
    loss = lambda p: jnp.sum(p["w"] ** 2) + p["b"] ** 2  # noqa: E731
    state = opt.init(params)
    with pytest.raises(ValueError, match="value"):
        opt.update(jax.grad(loss)(params), state, params)
    upd, state = jax.jit(lambda g, st, p, v: opt.update(g, st, p, value=v))(jax.grad(loss)(params), state, params,
                                                                              loss(params))
    assert jax.tree.structure(upd) == jax.tree.structure(params)
    with pytest.raises(ValueError, match="F0"):
        minimize(loss, params, steps=10, F0=5.0)
    with pytest.raises(ValueError, match="learning_rate"):
        ecd(0.0)
    with pytest.raises(ValueError, match="steps"):
        minimize(loss, params, steps=0)
