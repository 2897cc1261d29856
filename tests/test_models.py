"""Model library: exact samplers agree with stated moments, log-densities are finite, log_z is right."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.integrate
import scipy.stats

from samplax import models
from samplax.target import Target

N_IID = 40_000
# (name, kwargs) pairs checked against their own stated ground truth.
CASES = [
    ("gaussian", {}),
    ("gaussian", {"dim": 3, "condition_number": 10.0, "rotate": True, "seed": 3, "mean": [1.0, -2.0, 0.5]}),
    ("ill_conditioned_gaussian", {}),
    ("ill_conditioned_gaussian", {"rotate": True}),
    ("gumbel", {}),
    ("gumbel", {"dim": 2, "loc": [1.0, -1.0], "scale": [0.3, 3.0]}),
    ("skewed_mixture", {}),
    ("skewed_mixture", {"dim": 1}),
    ("banana", {}),
    ("banana", {"a": 2.0, "b": -0.3, "s": 1.5}),
]


def _ids(cases):
    return [f"{n}-{i}" for i, (n, _) in enumerate(cases)]


def moment_zscores(draws, mean, cov):
    """z-scores (iid standard errors) of the sample mean and each sample covariance entry against the truth."""
    draws, mean, cov = np.asarray(draws), np.asarray(mean), np.asarray(cov)
    n = draws.shape[0]
    z_mean = (draws.mean(0) - mean) / np.sqrt(np.diag(cov) / n)
    d = draws - mean  # centred at the true mean so each product is an iid draw of the cov entry
    prod = d[:, :, None] * d[:, None, :]
    z_cov = (prod.mean(0) - cov) / (prod.std(0, ddof=1) / np.sqrt(n))
    return z_mean, z_cov


def test_registry_lists_and_describes_every_model():
    names = models.list()
    for name in ("gaussian", "ill_conditioned_gaussian", "gumbel", "skewed_mixture", "banana", "funnel"):
        assert name in names
        assert models.describe()[name]
    with pytest.raises(ValueError, match="unknown model 'nope'"):
        models.get("nope")


@pytest.mark.parametrize("name,kw", CASES, ids=_ids(CASES))
@pytest.mark.parametrize("seed", [0, 1])
def test_exact_sampler_matches_stated_moments(name, kw, seed):
    t = models.get(name, **kw)
    assert isinstance(t, Target) and t.mean.shape == (t.dim,) and t.cov.shape == (t.dim, t.dim)
    draws = t.sample(jax.random.PRNGKey(seed), N_IID)
    assert draws.shape == (N_IID, len(t.names))
    z_mean, z_cov = moment_zscores(draws, t.mean, t.cov)
    assert np.max(np.abs(z_mean)) < 5, z_mean
    assert np.max(np.abs(z_cov)) < 5, z_cov
    assert np.all(np.isfinite(jax.vmap(t.logdensity)(draws)))


@pytest.mark.parametrize("name,kw", CASES, ids=_ids(CASES))
def test_sampler_follows_logdensity(name, kw):
    """The normalised log-density, exp(logdensity - log_z), is the law the exact sampler draws from.

    Checked through the score identity E_p[grad log p(x) x^T] = -I, which holds only if the sampler
    and the log-density describe the same distribution (integration by parts).
    """
    t = models.get(name, **kw)
    x = t.sample(jax.random.PRNGKey(7), N_IID)
    g = jax.vmap(jax.grad(t.logdensity))(x)
    prod = np.asarray(g[:, :, None] * x[:, None, :])
    z = (prod.mean(0) + np.eye(t.dim)) / (prod.std(0, ddof=1) / np.sqrt(N_IID) + 1e-12)
    assert np.max(np.abs(z)) < 5, z


@pytest.mark.parametrize("name,kw", [c for c in CASES if models.get(c[0], **c[1]).dim <= 2],
                         ids=lambda v: str(v))
def test_log_z_and_moments_by_quadrature(name, kw):
    """log_z, mean and covariance from integrating exp(logdensity) on a grid (trapezoid rule), independent
    of the exact sampler and of the arrays the model states them from."""
    t = models.get(name, **kw)
    lo = np.asarray(t.mean) - 12 * np.sqrt(np.diag(t.cov))
    hi = np.asarray(t.mean) + 12 * np.sqrt(np.diag(t.cov))
    if name == "banana":  # a box misses the curved arms: integrate over (x1, x2 - b x1^2), Jacobian 1
        a, s = kw.get("a", 1.0), kw.get("s", 0.5)
        lo, hi = np.array([-12 * a, -12 * s]), np.array([12 * a, 12 * s])
    axes = [np.linspace(a, b, 1201) for a, b in zip(lo, hi)]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, t.dim)
    if name == "banana":
        grid[:, 1] += kw.get("b", 1.0) * grid[:, 0] ** 2
    shape = [len(a) for a in axes]
    dens = np.exp(np.asarray(jax.vmap(t.logdensity)(jnp.asarray(grid)))).reshape(shape)

    def integrate(f):
        for a in reversed(axes):
            f = np.trapezoid(f, a, axis=-1)
        return float(f)

    z = integrate(dens)
    assert abs(np.log(z) - t.log_z) < 1e-4, (np.log(z), t.log_z)
    xs = [grid[:, i].reshape(shape) for i in range(t.dim)]
    mean = np.array([integrate(x * dens) / z for x in xs])
    cov = np.array([[integrate((xi - mean[i]) * (xj - mean[j]) * dens) / z for j, xj in enumerate(xs)]
                    for i, xi in enumerate(xs)])
    # in units of sd: the grid ends 12 sd out, where the Gumbel's exponential tail leaves ~2e-5 of its variance
    sd = np.sqrt(np.diag(np.asarray(t.cov)))
    np.testing.assert_allclose((mean - np.asarray(t.mean)) / sd, 0, atol=1e-4)
    np.testing.assert_allclose((cov - np.asarray(t.cov)) / np.outer(sd, sd), 0, atol=1e-4)


@pytest.mark.parametrize("kw", [{}, {"dim": 10, "condition_number": 100.0, "rotate": True, "mean": 2.0}])
def test_gaussian_log_z_matches_scipy_logpdf(kw):
    t = models.get("gaussian", **kw)
    x = np.asarray(t.sample(jax.random.PRNGKey(2), 50))
    ours = np.asarray(jax.vmap(t.logdensity)(jnp.asarray(x))) - t.log_z
    exact = scipy.stats.multivariate_normal(np.asarray(t.mean), np.asarray(t.cov)).logpdf(x)
    np.testing.assert_allclose(ours, exact, rtol=1e-9, atol=1e-9)


def test_ill_conditioned_gaussian_has_the_asked_condition_number_and_rotation():
    t = models.get("ill_conditioned_gaussian", rotate=True)
    eig = np.linalg.eigvalsh(np.asarray(t.cov))
    assert eig.max() / eig.min() == pytest.approx(100.0)
    np.testing.assert_allclose(np.diff(np.log(eig)), np.log(100.0) / 9)
    off = np.asarray(t.cov) - np.diag(np.diag(t.cov))
    assert np.abs(off).max() > 0.1  # not axis-aligned


def test_gumbel_moments_are_the_textbook_ones():
    t = models.get("gumbel", dim=2, loc=[1.0, -1.0], scale=[0.3, 3.0])
    ref = scipy.stats.gumbel_r(loc=[1.0, -1.0], scale=[0.3, 3.0])
    np.testing.assert_allclose(t.mean, ref.mean())
    np.testing.assert_allclose(np.diag(t.cov), ref.var())
    assert t.mean[1] > -1.0  # right skew: mean above the mode


@pytest.mark.parametrize("name,kw,match", [
    ("gaussian", {"dim": 0}, "dim must be an integer >= 1"),
    ("gaussian", {"condition_number": 0.5}, "condition_number must be"),
    ("gumbel", {"scale": -1.0}, "scale must be positive"),
    ("skewed_mixture", {"dim": 3}, "dim=1 or dim=2"),
    ("banana", {"s": 0.0}, "s must be a positive"),
    ("funnel", {"dim": 1}, "dim must be an integer >= 2"),
])
def test_bad_model_arguments_are_named(name, kw, match):
    with pytest.raises(ValueError, match=match):
        models.get(name, **kw)


# The funnel's x has E x^4 = 3 e^18: sample covariances of x are too heavy-tailed for iid z-scores,
# so its truth is checked through v and the standardised x = e^{v/2} u, u ~ N(0, 1) independent of v.
@pytest.mark.parametrize("seed", [0, 1])
def test_funnel_sampler_has_the_stated_structure(seed):
    t = models.get("funnel", dim=5)
    draws = np.asarray(t.sample(jax.random.PRNGKey(seed), N_IID))
    v, u = draws[:, 0], draws[:, 1:] * np.exp(-draws[:, :1] / 2)
    std = np.concatenate([v[:, None] / 3, u], axis=1)
    z_mean, z_cov = moment_zscores(std, np.zeros(5), np.eye(5))
    assert np.max(np.abs(z_mean)) < 5 and np.max(np.abs(z_cov)) < 5, (z_mean, z_cov)
    assert np.all(np.isfinite(jax.vmap(t.logdensity)(jnp.asarray(draws))))


def test_funnel_stated_moments_by_quadrature():
    t = models.get("funnel", dim=3, v_scale=3.0)
    e_exp_v = scipy.integrate.quad(lambda v: np.exp(v) * scipy.stats.norm.pdf(v, scale=3.0), -40, 40)[0]
    np.testing.assert_allclose(np.diag(t.cov), [9.0, e_exp_v, e_exp_v], rtol=1e-8)
    np.testing.assert_array_equal(t.mean, np.zeros(3))


def test_funnel_log_z_by_quadrature():
    """Integrate in (v, u) with x = e^{v/2} u, so one rectangular grid covers neck and mouth."""
    t = models.get("funnel", dim=2)
    v = np.linspace(-30, 30, 1501)
    u = np.linspace(-12, 12, 1201)
    vv, uu = np.meshgrid(v, u, indexing="ij")
    pts = jnp.asarray(np.stack([vv, np.exp(vv / 2) * uu], -1).reshape(-1, 2))
    dens = np.exp(np.asarray(jax.vmap(t.logdensity)(pts))).reshape(vv.shape) * np.exp(vv / 2)
    total = np.trapezoid(np.trapezoid(dens, u, axis=1), v)
    assert abs(np.log(total) - t.log_z) < 1e-4, (np.log(total), t.log_z)


@pytest.mark.parametrize("beta,ref_scale", [(0.3, 1.0), (0.9, 1.0), (0.6, 2.0), (0.999, 0.5)])
def test_funnel_tempered_normaliser_by_quadrature(beta, ref_scale):
    """info["tempered"](beta, ref_scale): log int r^(1-beta) pi~^beta with r = N(0, ref_scale^2 I), against a 2-d
    quadrature of the target's own log-density in (v, u), x = e^{v/2} u (one grid covers neck and mouth)."""
    t = models.get("funnel", dim=2)
    v = np.linspace(-40, 40, 2001)
    u = np.linspace(-40, 40, 2001)
    vv, uu = np.meshgrid(v, u, indexing="ij")
    xx = np.exp(vv / 2) * uu
    lp = np.asarray(jax.vmap(t.logdensity)(jnp.asarray(np.stack([vv, xx], -1).reshape(-1, 2)))).reshape(vv.shape)
    lr = scipy.stats.norm.logpdf(vv, scale=ref_scale) + scipy.stats.norm.logpdf(xx, scale=ref_scale)
    dens = np.exp((1 - beta) * lr + beta * lp) * np.exp(vv / 2)
    total = np.trapezoid(np.trapezoid(dens, u, axis=1), v)
    log_z, grid, p = t.info["tempered"](beta, ref_scale)
    assert abs(log_z - np.log(total)) < 1e-6, (log_z, np.log(total))
    # the v-marginal: its mean and sd against the quadrature's
    pv = np.trapezoid(dens, u, axis=1) / total
    for f in (lambda a: a, lambda a: a**2):
        np.testing.assert_allclose(np.sum(p * f(grid)), np.trapezoid(pv * f(v), v), atol=1e-4)


def test_funnel_tempered_end_points_and_errors():
    from samplax.models.funnel import tempered

    t = models.get("funnel", dim=10)
    assert abs(t.info["tempered"](1.0)[0] - t.log_z) < 1e-9  # the 9 x-integrals' power at beta = 1
    assert abs(t.info["tempered"](0.0)[0]) < 1e-9  # r is normalised
    # the wide end opens late: P(v > 3) at beta 0.99 is about a fifth of its value at 1
    shares = [p[v > 3].sum() for v, p in (t.info["tempered"](b)[1:] for b in (0.99, 1.0))]
    assert shares[0] < 0.25 * shares[1] and abs(shares[1] - scipy.stats.norm.sf(1.0)) < 1e-4  # a grid sum
    for bad, match in [(dict(beta=1.5), "beta must be in"), (dict(beta=0.5, ref_scale=0.0), "ref_scale"),
                       (dict(beta=0.5, dim=1), "dim must be")]:
        with pytest.raises(ValueError, match=match):
            tempered(**bad)
