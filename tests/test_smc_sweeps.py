"""Standard SMC's sweeps per stage: the measured start-to-end correlation (smc_kernels.start_correlation) keeps
resampled copies moving until they have decorrelated, not only the AR(1) extrapolation rho ** n; and the
dense-mass setting with few fixed sweeps (biased log Z) is warned by name.

The statistical calibration (100 x 4 populations, exact log Z) is benchmarks/smc_logz_calibration.py."""

import math
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from samplax.samplers.smc import smc
from samplax.samplers.smc_kernels import MoveSettings, make_kernel, move, start_correlation, whitening


def _stats(x):
    return jnp.concatenate([x, -0.5 * jnp.sum(x ** 2, axis=1, keepdims=True)], axis=1)


def test_start_correlation_reads_memory_not_noise():
    n, d = 2000, 30
    k1, k2 = jax.random.split(jax.random.PRNGKey(0))
    a = jax.random.normal(k1, (n, d))
    b = jax.random.normal(k2, (n, d))
    # independent: ~0 (the max of 31 noisy correlations would be ~0.06 here, the rms of the coordinates less
    # its noise ~0); the same states: 1; half memory in every coordinate: ~0.5
    assert float(start_correlation(_stats(a), _stats(b))) < 0.03
    assert float(start_correlation(_stats(a), _stats(a))) == pytest.approx(1.0, abs=0.05)
    half = 0.5 * a + np.sqrt(0.75) * b
    assert float(start_correlation(_stats(a), _stats(half))) == pytest.approx(0.5, abs=0.05)


def test_measured_stop_sweeps_until_copies_decorrelate():
    """Two modes at x1 = +-4: MALA moves within a mode (rho from squared jumps small, the AR(1) rule stops after
    a few sweeps) but not across, so the starts' mode is remembered: the measured rule keeps sweeping (up to twice
    the AR(1) count, the cap for memory no kernel removes) and reports the correlation it measured."""
    n, d = 1000, 2

    def logd(z):
        return jnp.logaddexp(-0.5 * (z[0] - 4.0) ** 2, -0.5 * (z[0] + 4.0) ** 2) - 0.5 * z[1] ** 2

    key = jax.random.PRNGKey(2)
    x = jax.random.normal(key, (n, d)) + jnp.where(jnp.arange(n)[:, None] % 2 == 0, 4.0, -4.0) * jnp.array([1.0, 0.0])
    white = whitening(x, jnp.zeros(n), "identity")
    mk = make_kernel("mala")
    runs = {}
    for measured in (False, True):
        ms = MoveSettings(0, 1, 100, True, 0.1, 0.57, 1.0, measured)
        runs[measured] = move(mk, jax.random.PRNGKey(3), x, logd, white, jnp.log(0.8), ms)[1]
    ar, meas = runs[False], runs[True]
    assert int(ar.n_steps) < 50, ar
    assert int(meas.n_steps) >= 2 * int(ar.n_steps) - 1, (ar.n_steps, meas.n_steps)
    assert float(meas.correlation) > 0.3  # the mode memory, measured (rho ** n said < 0.1)
    assert float(ar.correlation) <= 0.1


def test_measured_stop_is_a_noop_once_decorrelated():
    """Exact whitening of a 50-d standard normal: the AR(1) count already decorrelates; no extra sweeps."""
    n, d = 1000, 50
    x0 = jax.random.normal(jax.random.PRNGKey(0), (n // 4, d))
    x = jnp.repeat(x0, 4, axis=0)  # resampled copies

    def logd(z):
        return -0.5 * jnp.sum(z ** 2)

    white = whitening(x, jnp.zeros(n), "diag")
    mk = make_kernel("mala")
    steps = {}
    for measured in (False, True):
        ms = MoveSettings(0, 1, 100, True, 0.1, 0.57, 1.0, measured)
        out, info = move(mk, jax.random.PRNGKey(1), x, logd, white, jnp.log(0.5 / d ** (1 / 3)), ms)
        steps[measured] = int(info.n_steps)
        r = np.array([np.corrcoef(x[:, j], out[:, j])[0, 1] for j in range(d)])
        assert np.sqrt(np.mean(r ** 2)) < 0.1 + 2 / np.sqrt(n), (measured, r)
    assert steps[True] <= steps[False] + 2, steps


def test_dense_mass_with_few_fixed_sweeps_is_warned_by_name():
    with pytest.warns(UserWarning, match=r"mass='dense' with adapt_steps=False and num_mcmc_steps=2"):
        smc(mass="dense", adapt_steps=False, num_mcmc_steps=2, waste_free=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        smc(mass="dense", adapt_steps=False, num_mcmc_steps=5, waste_free=False)
        smc(mass="diag", adapt_steps=False, num_mcmc_steps=2, waste_free=False)
        smc(mass="dense", num_mcmc_steps=2, waste_free=False)  # adaptive sweeps


def test_waste_free_dense_mala_with_fixed_spacing_is_warned_by_name():
    with pytest.warns(UserWarning, match=r"waste-free MALA with mass='dense' and adapt_steps=False"):
        smc(mass="dense", adapt_steps=False, num_mcmc_steps=10)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        smc(mass="dense", adapt_steps=False, num_mcmc_steps=10, kernel="hmc")
        smc(mass="diag", adapt_steps=False, num_mcmc_steps=10)
        smc(mass="dense")  # the default: adaptive spacing


def test_waste_free_correlation_is_between_kept_states():
    """Waste-free (keep P states): stage_stats["correlation"] is rho ** spacing, the correlation of consecutive kept
    states, not rho ** (all sweeps of the stage), which reads ~0 whatever the spacing."""
    n, d, P = 400, 3, 10
    x = jax.random.normal(jax.random.PRNGKey(0), (n, d)) * jnp.array([1.0, 3.0, 0.3])

    def logd(z):
        return -0.5 * jnp.sum((z / jnp.array([1.0, 3.0, 0.3])) ** 2)

    white = whitening(x, jnp.zeros(n), "identity")  # badly scaled on purpose: rho is high, spacing > 1
    ms = MoveSettings(P, 1, 100, True, 0.1, 0.57, 1.0)
    _, info = move(make_kernel("mala"), jax.random.PRNGKey(1), x, logd, white, jnp.log(0.3), ms)
    rho, corr, sweeps = float(info.rho), float(info.correlation), int(info.n_steps)
    k = math.log(corr) / math.log(rho)  # the spacing it reports
    assert abs(k - round(k)) < 1e-6 and 1 <= round(k) <= 100 // (P - 1), (rho, corr, k)
    assert corr > rho ** sweeps, (corr, rho ** sweeps)  # not the all-sweeps power (old: k = sweeps = 99)
