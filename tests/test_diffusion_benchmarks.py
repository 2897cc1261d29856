"""Benchmark targets of the diffusion-sampler literature: stated log Z and moments against independent quadrature."""

import jax
import numpy as np
import pytest
from scipy.integrate import quad
from scipy.special import logsumexp

import samplax
from samplax.models.diffusion_benchmarks import MANY_WELL_LOG_Z, benchmark_targets
from tests.moments import assert_moments


def test_many_well_log_z_by_1d_quadrature():
    t = samplax.models.get("many_well")
    z1 = quad(lambda x: np.exp(-x**4 + 6 * x**2 + 0.5 * x - 9.5), -np.inf, np.inf, epsabs=0, epsrel=1e-12)[0]
    log_z = 16 * (np.log(z1) + 9.5 + 0.5 * np.log(2 * np.pi))
    assert abs(log_z - MANY_WELL_LOG_Z) < 1e-5  # the literature's 164.69568
    assert abs(t.log_z - log_z) < 1e-7
    m1 = quad(lambda x: x * np.exp(-x**4 + 6 * x**2 + 0.5 * x - 9.5), -np.inf, np.inf, epsrel=1e-12)[0] / z1
    assert abs(float(t.mean[0]) - m1) < 1e-7 and float(t.mean[1]) == 0.0


def test_many_well_sampler_matches_stated_moments():
    t = samplax.models.get("many_well", dim=4)
    x = np.asarray(t.sample(jax.random.PRNGKey(0), 40000)).reshape(4, 10000, 4)
    assert_moments(x, np.asarray(t.mean), np.diag(np.asarray(t.cov)), what="many_well exact draws")


def test_gmm40_log_z_and_moments_by_grid_quadrature():
    t = samplax.models.get("gmm40")
    means = t.info["means"]
    assert means.shape == (40, 2) and np.all(np.abs(means) <= 40)
    g = np.linspace(-50, 50, 501)  # h = 0.2: the trapezoid rule on unit Gaussians is exact to ~1e-30 (spectral)
    X, Y = np.meshgrid(g, g, indexing="ij")
    pts = np.stack([X.ravel(), Y.ravel()], -1)
    lp = np.asarray(jax.jit(jax.vmap(t.logdensity))(pts))
    h = g[1] - g[0]
    assert abs(logsumexp(lp) + 2 * np.log(h) - t.log_z) < 1e-6
    p = np.exp(lp) * h * h
    mean = p @ pts
    np.testing.assert_allclose(mean, np.asarray(t.mean), atol=1e-5)
    np.testing.assert_allclose((pts - mean).T @ ((pts - mean) * p[:, None]), np.asarray(t.cov), rtol=1e-5)
    x = np.asarray(t.sample(jax.random.PRNGKey(1), 40000)).reshape(4, 10000, 2)
    assert_moments(x, np.asarray(t.mean), np.diag(np.asarray(t.cov)), what="gmm40 exact draws")


def test_funnel_log_z_by_quadrature_over_v():
    t = samplax.models.get("funnel", dim=10)
    # x | v integrates in closed form to (2 pi e^v)^{9/2}; the e^{-9 v/2} term cancels it
    z = quad(lambda v: np.exp(-v**2 / 18) * (2 * np.pi) ** 4.5, -60, 60, epsrel=1e-12)[0]
    assert abs(np.log(z) - t.log_z) < 1e-9


def test_benchmark_targets_and_bad_input():
    ts = benchmark_targets()
    assert set(ts) == {"gmm40", "funnel", "many_well", "double_well"}
    assert ts["many_well"].dim == 32 and ts["funnel"].dim == 10 and ts["gmm40"].dim == 2
    assert all(t.log_z is not None and t.sample is not None for t in ts.values())
    with pytest.raises(ValueError, match="dim must be even"):
        samplax.models.get("many_well", dim=3)
    with pytest.raises(ValueError, match="num_modes"):
        samplax.models.get("gmm40", num_modes=0)
