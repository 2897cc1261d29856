"""The Stein-identity bias check of unadjusted samplers: exact on exact draws, with power against a variance 10 %
off and a mean 0.1 sd off, refusing to judge too few effective draws, and end to end on ULA runs."""

import warnings

import jax.numpy as jnp
import numpy as np
import pytest

import samplax
from samplax.diagnostics import stein

MEAN = np.linspace(-2.0, 3.0, 6)
SD = np.array([0.1, 0.5, 1.0, 2.0, 5.0, 30.0])


def gaussian_logdensity(x):
    return -0.5 * jnp.sum(((x - MEAN) / SD) ** 2)


def _draws(seed, chains=4, n=5000, var_factor=1.0, shift=0.0):
    rng = np.random.default_rng(seed)
    return MEAN + SD * (shift + np.sqrt(var_factor) * rng.standard_normal((chains, n, MEAN.size)))


NAMES = [f"x[{i}]" for i in range(MEAN.size)]


@pytest.mark.parametrize("seed", range(6))
def test_exact_draws_pass(seed):
    """Draws from the target itself: no finding, every coordinate judged (2 identities x 6), |z| small."""
    found, info = stein.check(gaussian_logdensity, _draws(seed), NAMES)
    assert found == [] and info["stein_judged"] == 12 and info["stein_max_z"] < stein.STEIN_Z, info


@pytest.mark.parametrize("wrong", ["variance 10% high", "variance 10% low", "mean 0.1 sd off"])
def test_slightly_wrong_draws_fail(wrong):
    """The same check on draws 10 % off in variance (what ULA's step does) or 0.1 sd off in mean: found."""
    kw = {"variance 10% high": dict(var_factor=1.1), "variance 10% low": dict(var_factor=0.9),
          "mean 0.1 sd off": dict(shift=0.1)}[wrong]
    found, info = stein.check(gaussian_logdensity, _draws(0, **kw), NAMES)
    assert len(found) == 1 and "Stein identity" in found[0], info
    label = "E[d log p / dx] = 0" if "mean" in wrong else "E[(x - mean) d log p / dx] = -1"
    assert label in found[0]


def test_too_few_effective_draws_are_not_judged():
    x = _draws(0, n=50, var_factor=2.0)  # 200 draws, far off: still not judged
    found, info = stein.check(gaussian_logdensity, x, NAMES)
    assert found == [] and info["stein_judged"] == 0
    # strongly autocorrelated draws (each repeated 20 times): 4 x 1500 draws, ~300 effective
    rep = np.repeat(_draws(1, n=75, var_factor=2.0), 20, axis=1)
    found, info = stein.check(gaussian_logdensity, rep, NAMES)
    assert found == [] and info["stein_judged"] == 0


def _ula(**kw):
    t = samplax.Target.from_logdensity(lambda x: -0.5 * jnp.sum((x - MEAN) ** 2), MEAN.size, name="unit6")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dt = samplax.sample(t, "ula", num_chains=4, num_warmup=300, num_samples=3000, seed=0, progress=False, **kw)
    return dt, [str(w.message) for w in caught if "trust check" in str(w.message)]


def test_ula_with_too_large_a_step_warns_in_memory_and_streamed(tmp_path, monkeypatch):
    """ULA at a given step 0.4 on N(m, I): stationary variance 1 / (1 - h / 2) = 1.25x the target's, which R-hat
    and ESS cannot see; the run now says so. The streamed run checks the same draws (every
    k-th of all written, across chunk edges) and says the same."""
    from samplax import streaming

    # every 8th draw (a streamed run checks at most its trust check's TRUST_DRAWS per chain, so both are set):
    # the streamed chunks of 700 cut across the stride
    monkeypatch.setattr(stein, "STEIN_DRAWS", 400)
    monkeypatch.setattr(streaming, "TRUST_DRAWS", 400)
    dt, trust = _ula(step_size=0.4)
    assert dt.attrs["trusted"] == 0 and len(trust) == 1 and "Stein identity" in trust[0], dt.attrs["trust_findings"]
    assert dt.attrs["n_grad_check"] == 4 * 375  # the check's own gradients, apart from the run's
    assert dt.attrs["n_grad_sampling"] == 4 * 3000
    # its time is reported apart and counts in what the user waited for
    from samplax.diagnostics.report import run_table

    assert dt.attrs["check_time"] > 0
    total = sum(dt.attrs[k] for k in ("compile_time", "warmup_time", "sampling_time", "check_time"))
    assert run_table({"u": dt}).loc["u", "seconds"] == pytest.approx(total)
    sd = np.asarray(dt.posterior["x"]).reshape(-1, MEAN.size).std(axis=0)
    assert np.all(sd > 1.05)  # the bias is real
    streamed, trust2 = _ula(step_size=0.4, out=tmp_path / "u.zarr", chunk_size=700)
    assert streamed.attrs["stein_max_z"] == dt.attrs["stein_max_z"]
    assert len(trust2) == 1 and "Stein identity" in trust2[0]


def test_exact_and_adjusted_runs_are_not_checked():
    """MALA is exact: the check does not apply (no gradients spent on it)."""
    t = samplax.Target.from_logdensity(gaussian_logdensity, MEAN.size, name="gauss6")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # 2 x 200 draws: too short to be trusted, which is not the point here
        dt = samplax.sample(t, "mala", num_chains=2, num_warmup=200, num_samples=200, seed=0, progress=False)
    assert "n_grad_check" not in dt.attrs and "Stein" not in dt.attrs["trust_findings"]
    assert stein.applies("underdamped", {"adjusted": False}) and not stein.applies("underdamped", {"adjusted": True})
