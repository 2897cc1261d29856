"""The gradient-based (Fisher) preconditioner estimators and the microcanonical warmup built on them."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import samplax
from moments import assert_moments
from samplax import Target
from samplax.samplers import fisher
from test_sampler_contract import Counting, _quartic, _reported, _run, overhead  # noqa: F401 (fixture)


def _gaussian_draws(key, mean, cov, n):
    x = jax.random.multivariate_normal(key, mean, cov, (n,))
    grads = -jnp.linalg.solve(cov, (x - mean).T).T
    return x, grads


def test_fisher_diag_is_the_exact_diagonal_of_a_gaussian():
    d = 6
    s2 = jnp.logspace(-6, 6, d)
    mean = jnp.linspace(-3.0, 3.0, d)
    x, g = _gaussian_draws(jax.random.key(0), mean, jnp.diag(s2), 50)
    np.testing.assert_allclose(fisher.fisher_diag(x, g), s2, rtol=1e-6)
    # exact from ANY draws (grad_i = -(x_i - m_i) / s_i^2): a transient far from the typical set gives the same
    y = 1e3 + 0.01 * x
    np.testing.assert_allclose(fisher.fisher_diag(y, -(y - mean) / s2), s2, rtol=1e-6)
    # the same from streaming moments (with zero-weight rows ignored)
    m = fisher.moments_init(d)
    for i in range(x.shape[0]):
        m = fisher.moments_update(m, x[i], g[i])
        m = fisher.moments_update(m, jnp.full(d, jnp.nan), jnp.zeros(d), 0.0)
    np.testing.assert_allclose(fisher.moments_fisher_diag(m, jnp.ones(d)), s2, rtol=1e-6)
    # a correlated Gaussian: sqrt(Sigma_ii / (Sigma^-1)_ii), the Fisher-optimal diagonal
    a = jax.random.normal(jax.random.key(1), (d, d))
    cov = a @ a.T + d * jnp.eye(d)
    x, g = _gaussian_draws(jax.random.key(2), mean, cov, 200_000)
    expect = jnp.sqrt(jnp.diag(cov) / jnp.diag(jnp.linalg.inv(cov)))
    np.testing.assert_allclose(fisher.fisher_diag(x, g), expect, rtol=0.02)


def test_fisher_diag_keeps_the_previous_value_where_undefined():
    x = jnp.array([[1.0, 2.0], [1.0, 3.0], [1.0, 4.0]])
    g = jnp.array([[0.5, 0.0], [0.7, 0.0], [0.9, 0.0]])  # x_0 constant (ratio 0), grad_1 constant (ratio inf)
    np.testing.assert_array_equal(fisher.fisher_diag(x, g, previous=jnp.array([7.0, 9.0])), [7.0, 9.0])


def test_gradient_init_diag_is_one_over_abs_grad_clipped():
    g = jnp.array([-4.0, 0.25, 0.0, jnp.inf, jnp.nan, 1e30])
    np.testing.assert_allclose(fisher.gradient_init_diag(g), [0.25, 4.0, 1e20, 1e-20, 1.0, 1e-20])


def test_low_rank_recovers_a_planted_direction_and_whitens():
    d, lam = 20, 100.0
    v = jax.random.normal(jax.random.key(3), (d,))
    v = v / jnp.linalg.norm(v)
    s = jnp.logspace(-2, 2, d)
    cov = s[:, None] * (jnp.eye(d) + (lam - 1.0) * jnp.outer(v, v)) * s[None, :]
    x, g = _gaussian_draws(jax.random.key(4), jnp.zeros(d), cov, 400)
    m = fisher.low_rank(x, g, max_rank=4)
    k = int(jnp.argmax(jnp.abs(m.lam - 1.0)))
    u = m.sigma * m.U[:, k]  # the direction in original coordinates
    planted = s * v
    cos = jnp.abs(u @ planted) / (jnp.linalg.norm(u) * jnp.linalg.norm(planted))
    assert cos > 0.99, cos
    c = fisher.dense(m)
    # the metric whitens the target: C^{-1/2} Sigma C^{-1/2} has condition number < 5 (eigenvalues within
    # [1/cutoff, cutoff] = [1/2, 2] are left alone by design), from ~1e6 before
    w = jax.vmap(lambda col: fisher.inv_sqrt_apply(m, col), in_axes=1, out_axes=1)
    white = w(w(cov).T)
    ev = jnp.linalg.eigvalsh(white)
    assert float(ev.max() / ev.min()) < 5, ev
    raw = jnp.linalg.eigvalsh(cov)
    assert float(raw.max() / raw.min()) > 1e5
    # the transform algebra
    y = jax.random.normal(jax.random.key(5), (d,))
    np.testing.assert_allclose(fisher.inv_sqrt_apply(m, fisher.sqrt_apply(m, y)), y, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(fisher.apply(m, y), c @ y, rtol=1e-8)
    sq = jax.vmap(lambda col: fisher.sqrt_apply(m, col), in_axes=1, out_axes=1)(jnp.eye(d))
    np.testing.assert_allclose(sq @ sq.T, c, rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(fisher.diagonal(m), jnp.diag(c), rtol=1e-8)
    # rows of weight 0 (an unfilled buffer) change nothing; blackjax's estimator gives the same metric
    pad = jnp.full((50, d), 1e6)
    mw = fisher.low_rank(jnp.concatenate([x, pad]), jnp.concatenate([g, pad]), 4,
                         weights=jnp.concatenate([jnp.ones(400), jnp.zeros(50)]))
    np.testing.assert_allclose(mw.sigma, m.sigma, rtol=1e-10)
    np.testing.assert_allclose(mw.lam, m.lam, rtol=1e-8)
    from blackjax.adaptation.metric_estimators import fisher_score_low_rank

    ref = fisher_score_low_rank(x, g, 4)
    np.testing.assert_allclose(m.lam, ref.lam, rtol=1e-8)
    np.testing.assert_allclose(np.abs(np.sum(m.U * ref.U, 0)), 1.0, rtol=1e-6)
    # at rank >= d (the dense metric; Q = I instead of the SVDs' span) the same matrix as blackjax's at rank d
    full, ref_full = fisher.low_rank(x, g, d), fisher_score_low_rank(x, g, d)
    ref_c = fisher.dense(fisher.LowRankMetric(ref_full.sigma, ref_full.U, ref_full.lam))
    np.testing.assert_allclose(fisher.dense(full), ref_c, rtol=1e-7, atol=1e-10 * float(jnp.abs(ref_c).max()))
    bj = fisher.to_blackjax(m)
    np.testing.assert_array_equal(bj.sigma, m.sigma)
    # a plain diagonal is a metric too
    np.testing.assert_allclose(fisher.sqrt_apply(jnp.full(d, 4.0), y), 2.0 * y)


SCALES = np.logspace(-3, 3, 6)
MEANS = 2.0 * SCALES * np.array([1.0, -1.0, 1.0, -1.0, 1.0, -1.0])


def _badly_scaled():
    return Target.from_logdensity(lambda x: -0.5 * jnp.sum(((x - MEANS) / SCALES) ** 2), len(SCALES))


@pytest.mark.parametrize("name", ["mclmc", "mams"])
def test_default_warmup_recovers_a_badly_scaled_gaussian(name):
    # sds 1e-3 .. 1e3: with blackjax's variance preconditioner (metric="variance_diag", the default before) the
    # run is wrong (test_variance_preconditioner_fails_on_the_badly_scaled_gaussian)
    dt = samplax.sample(_badly_scaled(), name, num_chains=4, num_warmup=1000, num_samples=1500, seed=0,
                        progress=False)
    x = np.asarray(dt.posterior["x"])
    # power: a mean off by 0.2 sd or a variance off by 25% must be rejected (1500 draws x 4 chains)
    assert_moments(x, MEANS, SCALES**2, what=f"{name} on sds 1e-3..1e3", shift=0.2, var_factor=1.25)


def test_variance_preconditioner_fails_on_the_badly_scaled_gaussian():
    """What the Fisher warmup fixes (the old default, kept as metric="variance_diag")."""
    dt = samplax.sample(_badly_scaled(), "mclmc", num_chains=4, num_warmup=1000, num_samples=1500, seed=0,
                        progress=False, metric="variance_diag")
    x = np.asarray(dt.posterior["x"])
    mean_err = np.abs(x.mean(axis=(0, 1)) - MEANS) / SCALES  # in posterior sds
    var_ratio = x.var(axis=(0, 1)) / SCALES**2
    assert mean_err.max() > 0.5 or np.any((var_ratio < 0.5) | (var_ratio > 2.0)), (mean_err, var_ratio)


@pytest.mark.parametrize("name,settings", [("mclmc", {}), ("secd", {}),
                                           ("mclmc", {"inverse_mass_matrix": [1.0, 2.0, 0.5]}),
                                           ("secd", {"step_size": 0.3}), ("mclmc", {"L": 1.2})],
                         ids=["mclmc", "secd", "mclmc-imm", "secd-step", "mclmc-L"])
def test_fisher_warmup_counts_every_gradient_and_holds_given_values(overhead, name, settings):
    width, extra = overhead
    c = Counting(_quartic)
    t = Target.from_logdensity(c.fn, 3)
    dt = _run(t, name, 120, 20, **settings)
    assert c.n == width * _reported(dt) + extra, f"counted {c.n}, reported {_reported(dt)}"
    for k, v in settings.items():
        if k in ("step_size", "L"):
            np.testing.assert_array_equal(np.asarray(dt.sample_stats[k]), v)


def test_unknown_metric_is_refused():
    with pytest.raises(ValueError, match="metric"):
        samplax.samplers.get("mclmc", metric="dense")


def _correlated(d=24, seed=3):
    """A Gaussian with sds 0.1 .. 10 along random orthogonal directions (every coordinate mixes all scales)."""
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(d, d)))
    cov = (q * np.logspace(-2, 2, d)) @ q.T
    mean = np.linspace(-1.0, 1.0, d)
    prec = np.linalg.inv(cov)
    t = Target.from_logdensity(lambda x: -0.5 * (x - mean) @ prec @ (x - mean), d)
    return t, mean, cov


def _whitened_condition(name, t, cov, seed):
    """cond(C^-1/2 Sigma C^-1/2) for the metric C the default warmup (1000 steps) learns."""
    s = samplax.samplers.get(name)
    key = jax.random.key(seed)
    w = jax.jit(lambda k, x: s.warmup(t, k, x, 1000))(key, jnp.zeros(t.dim))
    p = w.params
    c = np.asarray(fisher.dense(fisher.LowRankMetric(jnp.sqrt(p["inverse_mass_matrix"]), p["metric_U"],
                                                     p["metric_lam"])))
    lc = np.linalg.cholesky(c)
    e = np.linalg.eigvalsh(np.linalg.solve(lc, np.linalg.solve(lc, cov).T))
    return e.max() / e.min()


@pytest.mark.parametrize("seed", [0, 1])
def test_default_metric_is_dense_for_small_d_and_whitens_a_correlated_gaussian(seed, monkeypatch):
    # condition number 1e4 spread over 24 directions: the rank-10 low-rank metric (the default before, and still
    # above DENSE_MAX_DIM) leaves most of it; at rank d the Fisher metric is Sigma itself for a Gaussian
    from samplax.samplers import mclmc as M

    t, _, cov = _correlated()
    assert M.metric_rank("fisher_low_rank")(t.dim) == t.dim
    dense = _whitened_condition("mclmc", t, cov, seed)
    assert dense < 5.0, dense  # eigenvalues within [1/2, 2] of 1 are set to 1 (the cutoff of `fisher.low_rank`)
    monkeypatch.setattr(M, "DENSE_MAX_DIM", 10)
    assert M.metric_rank("fisher_low_rank")(t.dim) == M.LOW_RANK
    low = _whitened_condition("mclmc", t, cov, seed)
    assert low > 30.0, low  # what the dense metric fixes (diamonds, d = 26: ~1,000 at rank 10, ~3 at rank 26)


@pytest.mark.parametrize("name", ["mclmc", "mams"])
def test_default_warmup_recovers_a_correlated_gaussian(name):
    t, mean, cov = _correlated()
    dt = samplax.sample(t, name, num_chains=4, num_warmup=1000, num_samples=1500, seed=0, progress=False)
    x = np.asarray(dt.posterior["x"])
    # power as in test_default_warmup_recovers_a_badly_scaled_gaussian: 0.2 sd / 25% variance errors rejected
    assert_moments(x, mean, np.diag(cov), what=f"{name} on a correlated Gaussian (cond 1e4)", shift=0.2,
                   var_factor=1.25)
    # the narrowest direction too (sd 0.1 inside coordinates of sd ~2)
    q = np.linalg.eigh(cov)[1][:, 0]
    assert_moments((x @ q)[..., None], [mean @ q], [q @ cov @ q], what=f"{name}, narrowest direction", shift=0.2,
                   var_factor=1.25)
