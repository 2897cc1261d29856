"""Benchmark targets of the diffusion-sampler literature: stated log Z and moments against independent quadrature."""

import jax
import numpy as np
import pytest
from scipy.integrate import quad
from scipy import stats
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
    assert set(ts) == {"gmm40", "funnel", "many_well", "double_well", "gmm40_50d", "student_t_mixture"}
    assert ts["gmm40_50d"].dim == 50 and ts["student_t_mixture"].dim == 50
    assert ts["many_well"].dim == 32 and ts["funnel"].dim == 10 and ts["gmm40"].dim == 2
    assert all(t.log_z is not None and t.sample is not None for t in ts.values())
    with pytest.raises(ValueError, match="dim must be even"):
        samplax.models.get("many_well", dim=3)
    with pytest.raises(ValueError, match="num_modes"):
        samplax.models.get("gmm40", num_modes=0)
    with pytest.raises(ValueError, match="rng must be one of"):
        samplax.models.get("gmm40", rng="torch")
    with pytest.raises(ValueError, match="df and loc_range must be positive"):
        samplax.models.get("student_t_mixture", df=0.0)


def _t_mixture_logpdf_scipy(x, locs, df):
    """An independent evaluation of the Student-t mixture density (scipy's t.logpdf, equal weights)."""
    comp = stats.t.logpdf(x[:, None, :] - locs[None], df).sum(-1)
    return logsumexp(comp, axis=1) - np.log(len(locs))


def test_student_t_mixture_is_normalised_and_matches_scipy():
    # 1-d: quadrature of the density over the real line (the df = 2 tails ~ |x|^-3 are integrable)
    t1 = samplax.models.get("student_t_mixture", dim=1)
    f = jax.jit(lambda x: jax.numpy.exp(t1.logdensity(jax.numpy.atleast_1d(x))))
    z = sum(quad(lambda v: float(f(v)), a, b, epsabs=0, epsrel=1e-11, limit=500)[0]
            for a, b in [(-np.inf, -10.0), (-10.0, 10.0), (10.0, np.inf)])
    assert abs(np.log(z) - t1.log_z) < 1e-8
    # 50-d: the same equally weighted product of normalised 1-d t densities as scipy's, so log Z = 0 carries over
    t = samplax.models.get("student_t_mixture")
    locs = t.info["locs"]
    assert locs.shape == (10, 50) and np.all(np.abs(locs) <= 10) and t.log_z == 0.0
    x = np.concatenate([np.asarray(t.sample(jax.random.PRNGKey(0), 50)),
                        np.random.default_rng(1).normal(0, 15, (50, 50))])
    np.testing.assert_allclose(np.asarray(jax.vmap(t.logdensity)(x)), _t_mixture_logpdf_scipy(x, locs, 2.0),
                               rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(np.asarray(t.mean), locs.mean(0), rtol=0, atol=1e-12)


def test_student_t_mixture_sampler_against_exact_marginal_and_pair_cdfs():
    """Exact draws against exact CDFs (df = 2 has no variance, so no moment test): one-coordinate CDFs at the
    locs +- 0.5 and +- 4 (the t tails; a Gaussian would put 1/15 of the mass there), and a pair's joint CDF (the
    coordinates share one component); each fraction within 5 binomial se of the truth, with power."""
    t = samplax.models.get("student_t_mixture")
    locs, n = t.info["locs"], 40000
    x = np.asarray(t.sample(jax.random.PRNGKey(2), n))
    cdf = lambda j, c: stats.t.cdf(c - locs[:, j], 2.0).mean()  # noqa: E731
    for j in (0, 17, 49):
        for c in locs[:3, j][:, None] + np.array([-4.0, -0.5, 0.5, 4.0]):
            for ci in c:
                p = cdf(j, ci)
                se = np.sqrt(p * (1 - p) / n)
                assert abs((x[:, j] < ci).mean() - p) < 5 * se, f"coordinate {j}, threshold {ci}"
        # power: Gaussian components (df = infinity) would be rejected at one of these thresholds
        gap = max(abs(stats.norm.cdf(ci - locs[:, j]).mean() - cdf(j, ci)) / np.sqrt(cdf(j, ci) * (1 - cdf(j, ci)) / n)
                  for ci in (locs[:3, j][:, None] + np.array([-4.0, 4.0])).ravel())
        assert gap > 10, f"no power against Gaussian components in coordinate {j}: {gap:.1f} se"
    # the pair (0, 1): joint = mean_k F(c0 - l_k0) F(c1 - l_k1), at the thresholds (locs + 0.5) where it is furthest
    # from the product of the marginals (chosen from the exact CDFs, not from the draws)
    F = lambda c, j: stats.t.cdf(c - locs[:, j], 2.0)  # noqa: E731
    _, c0, c1 = max((abs((F(a, 0) * F(b, 1)).mean() - F(a, 0).mean() * F(b, 1).mean()), a, b)
                    for a in locs[:, 0] + 0.5 for b in locs[:, 1] + 0.5)
    joint = (F(c0, 0) * F(c1, 1)).mean()
    se = np.sqrt(joint * (1 - joint) / n)
    emp = ((x[:, 0] < c0) & (x[:, 1] < c1)).mean()
    assert abs(emp - joint) < 5 * se
    assert abs(cdf(0, c0) * cdf(1, c1) - joint) > 10 * se  # power: independent coordinates would be rejected


def test_gmm40_50d_log_z_and_exact_draws():
    t = samplax.models.get("gmm40", dim=50, rng="jax")
    means = t.info["means"]
    assert means.shape == (40, 50) and np.all(np.abs(means) <= 40)
    np.testing.assert_array_equal(means, means.astype(np.float32))  # the reference's float32 draws
    x = np.concatenate([np.asarray(t.sample(jax.random.PRNGKey(0), 50)),
                        means[:5] + np.random.default_rng(0).normal(0, 3, (5, 50))])
    ref = logsumexp(np.stack([stats.multivariate_normal(m, np.eye(50)).logpdf(x) for m in means], 1), 1) - np.log(40)
    np.testing.assert_allclose(np.asarray(jax.vmap(t.logdensity)(x)), ref, rtol=1e-12, atol=1e-9)  # log Z = 0
    draws = np.asarray(t.sample(jax.random.PRNGKey(3), 40000)).reshape(4, 10000, 50)[..., :6]
    assert_moments(draws, np.asarray(t.mean)[:6], np.diag(np.asarray(t.cov))[:6], what="gmm40-50d exact draws")


def test_entropic_mode_coverage():
    from samplax.models.diffusion_benchmarks import entropic_mode_coverage

    assert entropic_mode_coverage(np.arange(40), 40) == pytest.approx(1.0)
    assert entropic_mode_coverage(np.zeros(100, int), 40) == 0.0
    assert entropic_mode_coverage(np.repeat([0, 1], 50), 4) == pytest.approx(0.5)
