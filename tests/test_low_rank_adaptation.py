"""NUTS / HMC with nutpie's gradient-based low-rank metric (`metric="low_rank"`, samplers/adapt_low_rank.py)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import samplax
from moments import assert_moments
from samplax import Target
from samplax.samplers.adapt_low_rank import inverse_mass_matrix
from samplax.samplers.fisher import apply
from test_sampler_contract import Counting, _quartic, _reported, _run, overhead  # noqa: F401 (a fixture)


def _planted(d=50, big=100.0, seed=0):
    """N(0, S) with S = D^(1/2) (I + (big - 1) v v^T) D^(1/2): diagonal scales D in [0.1, 10] and one direction v
    with `big` times the variance of the rest (after the diagonal scaling)."""
    rng = np.random.default_rng(seed)
    scales = np.exp(rng.uniform(np.log(0.1), np.log(10.0), d))
    v = rng.normal(size=d)
    v /= np.linalg.norm(v)
    cov = np.sqrt(scales)[:, None] * (np.eye(d) + (big - 1) * np.outer(v, v)) * np.sqrt(scales)[None, :]
    prec = jnp.asarray(np.linalg.inv(cov))
    return Target.from_logdensity(lambda x: -0.5 * x @ prec @ x, d), cov


def test_low_rank_warmup_recovers_a_planted_direction():
    d = 50
    t, cov = _planted(d)
    s = samplax.samplers.get("nuts", metric="low_rank")
    assert s.adapted == ("step_size", "inverse_mass_matrix")
    w = jax.jit(lambda k, x: s.warmup(t, k, x, 600))(jax.random.key(0), jnp.ones(d))
    imm = inverse_mass_matrix(w.params)
    C = lambda u: float(u @ apply(imm, jnp.asarray(u)))  # noqa: E731  u^T C u
    # in the planted direction (whitened by the true covariance) C must carry the big variance: the metric is
    # right when C S^-1 is close to the identity, i.e. u^T C u ~ u^T S u for every u; check the top direction and
    # random ones (the diagonal metric alone would be off by ~big/3 in the planted direction)
    vals, vecs = np.linalg.eigh(cov)
    top = vecs[:, -1]
    assert 0.6 < C(top) / (top @ cov @ top) < 1.6, C(top) / (top @ cov @ top)
    rng = np.random.default_rng(1)
    ratios = []
    for _ in range(20):
        u = rng.normal(size=d)
        u /= np.linalg.norm(u)
        ratios.append(C(u) / (u @ cov @ u))
    assert 0.4 < min(ratios) and max(ratios) < 2.5, ratios
    # the warmup's own gradients are reported per step
    assert np.all(np.asarray(w.trace["n_grad"]) >= 1)


def test_nuts_low_rank_moments_on_an_ill_conditioned_correlated_gaussian():
    t = samplax.models.get("gaussian", dim=10, condition_number=100.0, rotate=True)
    dt = samplax.sample(t, "nuts", metric="low_rank", num_chains=4, num_warmup=500, num_samples=10000, seed=3,
                        progress=False)
    x = np.asarray(dt.posterior["x"])
    assert_moments(x, np.asarray(t.mean), np.diag(np.asarray(t.cov)), what="nuts low_rank")
    assert samplax.diagnostics.divergences(dt).sum() == 0
    assert "inverse_mass_matrix" in str(dt.attrs["adapted"])


def test_nuts_fisher_diag_moments_on_an_ill_conditioned_gaussian():
    t = samplax.models.get("ill_conditioned_gaussian", dim=6, condition_number=100.0)
    dt = samplax.sample(t, "nuts", metric="fisher_diag", num_chains=4, num_warmup=500, num_samples=6000, seed=1,
                        progress=False)
    assert_moments(np.asarray(dt.posterior["x"]), np.asarray(t.mean), np.diag(np.asarray(t.cov)),
                   what="nuts fisher_diag")
    assert samplax.diagnostics.divergences(dt).sum() == 0


@pytest.mark.parametrize("metric", ["low_rank"])
def test_low_rank_warmup_gradients_are_counted(overhead, metric):  # noqa: F811
    width, extra = overhead
    c = Counting(_quartic)
    t = Target.from_logdensity(c.fn, 3)
    dt = _run(t, "nuts", 60, 20, metric=metric)
    assert dt.attrs["n_grad_warmup"] > 60
    assert c.n == width * _reported(dt) + extra, f"counted {c.n}, reported {_reported(dt)}"


def test_given_step_size_is_not_adapted_with_the_low_rank_metric():
    t = Target.from_logdensity(lambda x: -0.5 * jnp.sum(x**2 / jnp.arange(1.0, 5.0)), 4)
    s = samplax.samplers.get("nuts", metric="low_rank", step_size=0.3)
    assert s.adapted == ("inverse_mass_matrix",)
    dt = samplax.sample(t, "nuts", metric="low_rank", step_size=0.3, num_chains=2, num_warmup=100, num_samples=20,
                        seed=0, progress=False)
    np.testing.assert_array_equal(np.asarray(dt.sample_stats["step_size"]), 0.3)
    assert "step_size" not in str(dt.attrs["adapted"])


def test_metric_settings_are_checked():
    assert samplax.samplers.get("nuts", dense_mass=True).settings["metric"] == "dense"
    with pytest.raises(ValueError, match="dense_mass"):
        samplax.samplers.get("nuts", metric="low_rank", dense_mass=True)
    with pytest.raises(ValueError, match="metric"):
        samplax.samplers.get("hmc", metric="full")
    # a given matrix that is not adapted is used as given, whatever the metric; adapted from a dense start: refused
    t = Target.from_logdensity(lambda x: -0.5 * jnp.sum(x**2), 2)
    dt = samplax.sample(t, "nuts", metric="low_rank", inverse_mass_matrix=np.eye(2), num_chains=1, num_warmup=50,
                        num_samples=10, seed=0, progress=False)
    assert "inverse_mass_matrix" not in str(dt.attrs["adapted"])
    with pytest.raises(ValueError, match="inverse_mass_matrix must have shape"):
        samplax.sample(t, "nuts", metric="low_rank", inverse_mass_matrix=np.eye(2), adapt=True, num_chains=1,
                       num_warmup=50, num_samples=10, seed=0, progress=False)


@pytest.mark.parametrize("v", [-1, 0, 1.7, "2", True])
def test_max_rank_must_be_a_positive_integer(v):
    """max_rank=-1 / 1.7 / "2" ran silently at another rank (int() in effective_rank)."""
    for name in ("nuts", "hmc"):
        with pytest.raises(ValueError, match=r"max_rank must be an integer >= 1"):
            samplax.samplers.get(name, max_rank=v)


@pytest.mark.parametrize("metric", ["diag", "dense", "fisher_diag"])
def test_max_rank_is_refused_with_a_metric_that_is_not_low_rank(metric):
    with pytest.raises(ValueError, match=rf"max_rank=3 .*metric='{metric}'.*metric='low_rank'"):
        samplax.samplers.get("nuts", metric=metric, max_rank=3)
    for v in (np.int64(3), jnp.asarray(3)):
        assert samplax.samplers.get("nuts", metric="low_rank", max_rank=v).settings["max_rank"] == 3
    assert samplax.samplers.get("hmc", max_rank=2).settings["metric"] == "low_rank"


def test_effective_rank_refuses_what_is_not_an_integer():
    from samplax.samplers.adapt_low_rank import effective_rank

    assert effective_rank(None, 5) == 5 and effective_rank(3, 2) == 2 and effective_rank(0, 4) == 0
    for v in (1.7, "2", -1):
        with pytest.raises(ValueError, match="max_rank must be an integer"):
            effective_rank(v, 5)
