"""Persistent sampling's within-population log Z variance (smc_persistent.log_z_variance) against exact evidence.

Before, persistent SMC reported no within-population variance (stage_stats log_z_var_increment NaN) and
log_z_se fell back to the spread of the populations (about 2x too small with 4 populations). Each population now
estimates the variance v_c of its own log Z_c. Check: over C independent populations on a model with exact
log Z, mean_c (log Z_c - exact)^2 / v_c is a chi-square_C / C variable when v_c is right; it must lie within the
central 99.8% of that distribution, a band that rejects an SE 2x too small or 2x too large (ratio ~4 or ~0.25;
power guard).
The populations are independent, so a true variance ratio of 1 passes for any seed with probability 0.998.
"""

import numpy as np
import pytest
from scipy.stats import chi2

import samplax
from samplax.particles.results import log_z_var_per_population
from tests.moments import assert_log_z_unbiased

C = 24
N = 300
GATE = 4.0
BIAS = 3.2  # log Z bias of the test below before the cross-fitted whitening (6 populations: +3.20, se 0.24)
LO, HI = chi2.ppf(0.001, C) / C, chi2.ppf(0.999, C) / C


@pytest.fixture(scope="module")
def regression_run():
    t = samplax.models.get("conjugate_regression")
    dt = samplax.sample(t, "smc", num_particles=N, num_chains=C, seed=3, progress=False, persistent=True)
    return t, dt


def test_band_has_power():
    # an SE off by 2x either way moves the mean squared z to ~4 or ~0.25: outside the band (0.34, 2.13)
    assert HI < 4.0 / 1.5 and LO > 0.25 * 1.3, (LO, HI)


def test_persistent_within_population_variance_matches_exact_errors(regression_run):
    t, dt = regression_run
    lz = np.asarray(dt.attrs["log_z_per_population"], float)
    v = log_z_var_per_population({k: dt["stage_stats"][k].values for k in ("log_z_var_increment", "active")})
    assert np.all(np.isfinite(lz)) and np.all(np.isfinite(v)) and np.all(v > 0), (lz, v)
    ratio = float(np.mean((lz - t.log_z) ** 2 / v))
    assert LO < ratio < HI, (f"mean squared z {ratio:.3f} outside [{LO:.3f}, {HI:.3f}]: log Z errors "
                             f"{np.round(lz - t.log_z, 3)}, estimated sd {np.round(np.sqrt(v), 3)}")


def test_persistent_log_z_se_is_the_within_estimate(regression_run):
    _, dt = regression_run
    a = dt.attrs
    assert np.isfinite(a["log_z_se_within"]) and a["log_z_se"] == a["log_z_se_within"]
    v = np.asarray(a["log_z_var_per_population"], float)
    assert a["log_z_se"] == pytest.approx(np.sqrt(v.mean() / C))
    # only the last active stage carries the variance (it is not a sum of per-stage terms)
    inc = dt["stage_stats"]["log_z_var_increment"].values
    act = dt["stage_stats"]["active"].values.astype(bool)
    last = act.sum(axis=1) - 1
    assert np.all(inc[np.arange(C), last] > 0) and np.count_nonzero(inc) == C


# ------------------------------------------------------------------ cross-fitted whitening
STAGES = 40


def test_persistent_dense_whitening_does_not_bias_log_z():
    """Persistent sampling whitened its moves with all stored particles, including the ones it moved: with the
    dense mass, a fixed schedule of 40 temperatures and 5 fixed sweeps on a 50-d Gaussian (reference N(0, 15^2)),
    HMC's log Z came out too high (BIAS; cross-fitted: +0.05, se 0.13). Cross-fitted (smc_kernels.cross_whitening,
    lineage labels inherited through the stored stages), the mean of the populations is within GATE standard
    errors of the exact value, and the same gate rejects the biased answer."""
    t = samplax.models.get("gaussian", dim=50)
    schedule = (np.linspace(0.0, 1.0, STAGES + 1) ** 3).tolist()
    dt = samplax.sample(t, "smc", num_particles=500, num_chains=6, seed=0, progress=False, kernel="hmc",
                        mass="dense", schedule=schedule, persistent=True, num_mcmc_steps=5, adapt_steps=False,
                        reference=(0.0, 15.0))
    assert_log_z_unbiased(dt, t.log_z, BIAS, GATE, "persistent hmc/dense")
