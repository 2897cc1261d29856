"""The particle core: resampling schemes unbiased, ESS, reweight's log Z, pooled log Z, ESS-triggered resampling."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.scipy.special import logsumexp

from samplax.particles import ParticleState, conditional_ess, ess, init, maybe_resample, pooled_log_z, resample, reweight
from samplax.particles.resampling import SCHEMES

K = 5.0  # tolerance in standard errors


@pytest.mark.parametrize("method", sorted(SCHEMES))
def test_resampling_expected_counts_are_n_times_weights(method):
    n, reps = 10, 4000
    w = np.array([0.31, 0.02, 0.005, 0.2, 0.1, 0.065, 0.15, 0.05, 0.08, 0.02])
    state = init(jnp.arange(n, dtype=float)[:, None], jnp.log(jnp.asarray(w)))

    def counts(key):
        new, idx = resample(key, state, method)
        return jnp.bincount(idx, length=n), new.log_weights

    c, lw = jax.vmap(counts)(jax.random.split(jax.random.PRNGKey(0), reps))
    c = np.asarray(c, float)
    assert np.all(c.sum(axis=1) == n)
    assert np.all(np.asarray(lw) == 0.0), "resampled populations are equally weighted"
    se = c.std(axis=0, ddof=1) / math.sqrt(reps)
    err = np.abs(c.mean(axis=0) - n * w)
    assert np.all(err < K * se + 1e-12), f"{method}: mean counts {c.mean(0)} vs N W {n * w}, err/se {err / se}"
    if method == "systematic":  # one uniform for all: each count is floor or ceil of N W_i
        assert np.all(np.abs(c - n * w) < 1 + 1e-9)


def test_ess_uniform_and_degenerate():
    assert float(ess(jnp.zeros(50))) == pytest.approx(50.0, rel=1e-12)
    assert float(ess(jnp.zeros(50) + 3.7)) == pytest.approx(50.0, rel=1e-12)
    lw = jnp.full(50, -jnp.inf).at[3].set(0.0)
    assert float(ess(lw)) == pytest.approx(1.0, rel=1e-12)
    lw = jnp.log(jnp.array([0.5, 0.5, 0.0, 0.0]) + 1e-300)
    assert float(ess(lw)) == pytest.approx(2.0, rel=1e-9)
    # conditional ESS from uniform weights is the ESS of the increments
    inc = jax.random.normal(jax.random.PRNGKey(1), (40,))
    assert float(conditional_ess(jnp.zeros(40), inc)) == pytest.approx(float(ess(inc)), rel=1e-10)


def test_reweight_log_z_matches_formula_and_is_unbiased_for_importance_sampling():
    # proposal N(0, 1), unnormalised target exp(-(x - 1)^2 / (2 s^2)) with Z = sqrt(2 pi) s
    s, n, reps = 0.7, 200, 2000
    z_true = math.sqrt(2 * math.pi) * s

    def one(key):
        x = jax.random.normal(key, (n,))
        inc = -0.5 * ((x - 1) / s) ** 2 - jax.scipy.stats.norm.logpdf(x)
        return reweight(init(x[:, None]), inc).log_z, logsumexp(inc) - jnp.log(n)

    lz, direct = jax.vmap(one)(jax.random.split(jax.random.PRNGKey(2), reps))
    np.testing.assert_allclose(np.asarray(lz), np.asarray(direct), rtol=1e-12)
    z = np.exp(np.asarray(lz))
    se = z.std(ddof=1) / math.sqrt(reps)
    assert abs(z.mean() - z_true) < K * se, f"mean Z-hat {z.mean()} vs {z_true} (se {se})"


def test_reweight_accumulates_weighted_increments():
    lw0 = jnp.log(jnp.array([0.1, 0.2, 0.7]))
    state = ParticleState(jnp.zeros((3, 1)), lw0 + 5.0, jnp.array(0.25))  # unnormalised weights are fine
    inc = jnp.array([0.3, -1.0, 2.0])
    new = reweight(state, inc)
    expect = 0.25 + math.log(0.1 * math.exp(0.3) + 0.2 * math.exp(-1.0) + 0.7 * math.exp(2.0))
    assert float(new.log_z) == pytest.approx(expect, rel=1e-12)
    np.testing.assert_allclose(np.asarray(new.log_weights), np.asarray(lw0 + 5.0 + inc))


def test_pooled_log_z_known_inputs():
    lz, se = pooled_log_z(np.log([1.0, 3.0]))
    assert lz == pytest.approx(math.log(2.0))
    assert se == pytest.approx(np.std([1.0, 3.0], ddof=1) / math.sqrt(2) / 2.0)
    lz, se = pooled_log_z([1000.0, 1000.0, 1000.0])  # no overflow: computed relative to the max
    assert lz == pytest.approx(1000.0) and se == pytest.approx(0.0, abs=1e-15)
    lz, se = pooled_log_z([-2.0])
    assert lz == pytest.approx(-2.0) and math.isnan(se)
    lz, se = pooled_log_z([0.0, float("nan")])
    assert math.isnan(lz) and math.isnan(se)


def test_maybe_resample_threshold():
    lw = jnp.log(jnp.array([0.97, 0.01, 0.01, 0.01]))  # ESS ~ 1.06
    state = ParticleState(jnp.arange(4.0)[:, None], lw, jnp.array(-1.5))
    key = jax.random.PRNGKey(3)
    new, done, idx = maybe_resample(key, state, 0.0)
    assert not bool(done) and np.all(np.asarray(idx) == np.arange(4))
    new, done, _ = maybe_resample(key, state, 0.5)
    assert bool(done) and np.all(np.asarray(new.log_weights) == 0) and float(new.log_z) == -1.5
    even = ParticleState(state.particles, jnp.zeros(4), state.log_z)
    _, done, _ = maybe_resample(key, even, 0.5)
    assert not bool(done)
    _, done, _ = maybe_resample(key, even, 1.0)
    assert bool(done)
    with pytest.raises(ValueError, match="ess_threshold"):
        maybe_resample(key, state, 1.5)
