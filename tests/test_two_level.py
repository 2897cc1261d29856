"""Two-level MCMC with a surrogate (`two_level`): exact for the expensive target whatever the surrogate.

The inverse problem is the damped oscillator of `samplax.models.oscillator`: the expensive model solves the ODE
with diffrax (Tsit5, 200 constant steps: equal to the closed form to float32 rounding, checked below), the
surrogate with 40 Heun steps (its log-density is off by ~0.1-1 nat, so its own posterior is biased). The
ground truth is NUTS on the closed form.
"""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

import samplax
from samplax.diagnostics import summary

SITES = ("omega", "zeta", "y0")
K, MIN_ESS = 5.0, 400


@pytest.fixture(scope="module")
def models():
    get = samplax.models.get
    return {"fine": get("damped_oscillator", solver="fine", steps=200), "coarse": get("damped_oscillator", solver="coarse"),
            "exact": get("damped_oscillator", solver="exact")}


@pytest.fixture(scope="module")
def reference(models):
    return samplax.sample(models["exact"], "nuts", num_chains=4, num_samples=10_000, seed=11, progress=False)


def _mismatches(dt, ref, scale_sd=1.0, shift=0.0, sites=SITES):
    """Sites whose mean or sd differs from the reference's by >= K combined MCSE; refuses too few ESS.
    `ref` is a run, or a summary table of exact answers (mcse 0, ess inf). Deliberately wrong answers for the
    power check: scale_sd stretches the run's sd, shift moves its mean by that many sds."""
    s, r = summary(dt), (ref if isinstance(ref, pd.DataFrame) else summary(ref))
    bad = []
    for site in sites:
        row, rrow = s.loc[site], r.loc[site]
        assert row["ess_bulk"] >= MIN_ESS and rrow["ess_bulk"] >= MIN_ESS, (site, "too few effective draws", row)
        se_mean, se_sd = np.hypot(row["mcse_mean"], rrow["mcse_mean"]), np.hypot(row["mcse_sd"], rrow["mcse_sd"])
        if abs(row["mean"] + shift * row["sd"] - rrow["mean"]) >= K * se_mean:
            bad.append((site, "mean", row["mean"], rrow["mean"], se_mean))
        if abs(scale_sd * row["sd"] - rrow["sd"]) >= K * se_sd:
            bad.append((site, "sd", scale_sd * row["sd"], rrow["sd"], se_sd))
    return bad


def test_fine_solver_is_the_closed_form(models):
    x = jax.random.normal(jax.random.PRNGKey(0), (16, models["fine"].dim)) * 0.5
    fine, exact, coarse = (jax.vmap(models[k].logdensity)(x) for k in ("fine", "exact", "coarse"))
    np.testing.assert_allclose(fine, exact, atol=1e-3)
    assert np.max(np.abs(coarse - exact)) > 0.05  # the surrogate is really a different (biased) density


@pytest.mark.parametrize("expensive, kw, n", [
    ("fine", dict(move="mala"), 40_000),  # the diffrax model itself
    ("exact", dict(move="rwm", subchain_length=4, mass_matrix="dense"), 20_000),  # sub-chains, gradient-free
], ids=["fine-mala", "exact-rwm-sub4"])
def test_two_level_matches_nuts_on_the_fine_model(models, reference, expensive, kw, n):
    """Every mean and sd within 5 combined MCSE of NUTS (the run passing its own trust check); the same check
    rejects, at every site, a variance 10% too large or small and a mean 0.1 sd off (power)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        dt = samplax.sample(models[expensive], "two_level", surrogate=models["coarse"], num_chains=4, num_samples=n,
                            seed=3, progress=False, **kw)
    assert _mismatches(dt, reference) == []
    for wrong in (dict(scale_sd=np.sqrt(1.1)), dict(scale_sd=np.sqrt(1 / 1.1))):
        assert {m[0] for m in _mismatches(dt, reference, **wrong) if m[1] == "sd"} == set(SITES), wrong
    for wrong in (dict(shift=0.1), dict(shift=-0.1)):
        assert {m[0] for m in _mismatches(dt, reference, **wrong) if m[1] == "mean"} == set(SITES), wrong
    assert 0.3 < float(dt["sample_stats"]["correction_acceptance"].mean()) < 1.0


MU, SD = np.array([1.0, -0.5, 0.3]), np.array([1.0, 2.0, 0.5])
GAUSS_SITES = tuple(f"x[{i}]" for i in range(3))


def test_two_level_is_exact_where_its_surrogate_is_not():
    """On a Gaussian with exact moments and a surrogate off by half an sd in the mean and 30% in the sd: two-level
    MALA gets every mean and sd within 5 MCSE, the same check rejects a variance 10% off and a mean 0.1 sd off at
    every site (power), and MALA on the surrogate alone fails it."""
    target = samplax.Target.from_logdensity(lambda x: -0.5 * jnp.sum(((x - MU) / SD) ** 2), 3, name="gauss3_exact")
    cheap = lambda x: -0.5 * jnp.sum(((x - MU - 0.5 * SD) / (1.3 * SD)) ** 2)  # noqa: E731
    exact = pd.DataFrame({"mean": MU, "sd": SD, "mcse_mean": 0.0, "mcse_sd": 0.0, "ess_bulk": np.inf},
                         index=list(GAUSS_SITES))
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        dt = samplax.sample(target, "two_level", surrogate=cheap, move="mala", num_chains=4, num_samples=20_000,
                            seed=3, progress=False)
    assert _mismatches(dt, exact, sites=GAUSS_SITES) == []
    for wrong in (dict(scale_sd=np.sqrt(1.1)), dict(scale_sd=np.sqrt(1 / 1.1))):
        assert {m[0] for m in _mismatches(dt, exact, sites=GAUSS_SITES, **wrong) if m[1] == "sd"} == set(GAUSS_SITES)
    for wrong in (dict(shift=0.1), dict(shift=-0.1)):
        assert {m[0] for m in _mismatches(dt, exact, sites=GAUSS_SITES, **wrong) if m[1] == "mean"} == set(GAUSS_SITES)
    assert 0.3 < float(dt["sample_stats"]["correction_acceptance"].mean()) < 1.0
    alone = samplax.Target.from_logdensity(cheap, 3, name="gauss3_surrogate")
    dt = samplax.sample(alone, "mala", num_chains=4, num_samples=5000, seed=3, progress=False)
    assert {m[0] for m in _mismatches(dt, exact, sites=GAUSS_SITES) if m[1] == "mean"} == set(GAUSS_SITES)


def test_the_surrogate_alone_is_biased(models, reference):
    """Why the correction matters: MALA on the surrogate misses the fine posterior by many MCSE."""
    dt = samplax.sample(models["coarse"], "mala", num_chains=4, num_samples=5000, seed=3, progress=False)
    assert any(m[1] == "mean" for m in _mismatches(dt, reference))


def _counted(calls: dict, kind: str, scale: float):
    """A Gaussian log-density of scale `scale` that adds 1 to calls[kind] each time the program evaluates it."""
    def lp(x):
        jax.debug.callback(lambda: calls.__setitem__(kind, calls[kind] + 1))
        return -0.5 * jnp.sum((x / scale) ** 2)
    return lp


def test_expensive_evaluations_counted_are_those_that_ran():
    """n_expensive per draw sums to the expensive log-density calls the program really made (counted by a host
    callback inside the log-density), and the surrogate's calls to n_surrogate."""
    calls = {"expensive": 0, "surrogate": 0}
    target = samplax.Target.from_logdensity(_counted(calls, "expensive", 1.0), 2, name="counted")
    cheap = _counted(calls, "surrogate", 1.1)
    made, reported = [], []
    for n in (50, 80):  # the difference between two run lengths isolates the sampling steps from set-up calls
        before = dict(calls)
        dt = samplax.sample(target, "two_level", surrogate=cheap, move="rwm", subchain_length=3, step_size=0.5,
                            num_warmup=0, num_chains=2, num_samples=n, seed=0, progress=False,
                            chain_method="sequential")
        ss = dt["sample_stats"]
        made.append({k: calls[k] - before[k] for k in calls})
        reported.append({"expensive": int(ss["n_expensive"].sum()), "surrogate": int(ss["n_surrogate"].sum())})
        assert int(ss["n_grad"].sum()) == 0  # rwm moves take no gradient
    assert reported[0] == {"expensive": 2 * 50, "surrogate": 2 * 50 * 3}
    for kind in calls:
        assert made[1][kind] - made[0][kind] == reported[1][kind] - reported[0][kind], (kind, made, reported)
        assert 0 <= made[0][kind] - reported[0][kind] <= 2 + 1, (kind, made, reported)  # init per chain (+ checks)


@pytest.mark.parametrize("move,grads_per_step", [("mala", 3), ("rwm", 0)])
def test_warmup_counts_are_those_that_ran(move, grads_per_step):
    """The warmup counted one gradient per step (the Langevin module's stats) where two_level's mala makes
    subchain_length (3) and rwm none, and its expensive evaluations were not reported at all; np.int64
    subchain_length was refused."""
    calls = {"expensive": 0, "surrogate_grad": 0}
    target = samplax.Target.from_logdensity(_counted(calls, "expensive", 1.0), 2, name="counted_warmup")
    cheap = _counted(calls, "surrogate_grad", 1.1)
    made, reported = [], []
    for nw in (40, 70):  # the difference isolates the warmup steps from set-up calls
        before = dict(calls)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # short runs fail their trust check
            dt = samplax.sample(target, "two_level", surrogate=cheap, move=move, subchain_length=np.int64(3),
                                num_warmup=nw, num_chains=1, num_samples=5, seed=0, progress=False)
        jax.effects_barrier()
        made.append({k: calls[k] - before[k] for k in calls})
        reported.append((int(dt.attrs["n_grad_warmup"]), int(dt.attrs["n_expensive_warmup"])))
    assert reported[0] == (40 * grads_per_step, 40)
    assert made[1]["expensive"] - made[0]["expensive"] == reported[1][1] - reported[0][1] == 30
    if move == "mala":  # a surrogate gradient is one traced call of the surrogate's log-density
        assert made[1]["surrogate_grad"] - made[0]["surrogate_grad"] == reported[1][0] - reported[0][0] == 90


def test_bad_surrogates_are_refused_by_name(models):
    t = samplax.models.get("gaussian", dim=2)
    with pytest.raises(ValueError, match="surrogate"):
        samplax.sample(t, "two_level", num_samples=10, num_warmup=10, progress=False)
    with pytest.raises(ValueError, match="surrogate has dimension 3"):
        samplax.sample(t, "two_level", surrogate=models["exact"], num_samples=10, num_warmup=10, progress=False)
    with pytest.raises(ValueError, match="subchain_length"):
        samplax.sample(t, "two_level", surrogate=lambda x: -x @ x, subchain_length=0, num_samples=10, progress=False)
