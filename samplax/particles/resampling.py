"""Resampling: blackjax's four schemes, and resampling triggered when the ESS falls below a threshold."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from blackjax.smc import resampling as bj

from samplax import checks
from samplax.particles.state import ParticleState, ess, normalized_weights

SCHEMES = {
    "multinomial": bj.multinomial,
    "systematic": bj.systematic,
    "stratified": bj.stratified,
    "residual": bj.residual,
}


def scheme(name: str):
    """The resampling function `(key, weights, n) -> indices` called `name`."""
    if not checks.member(name, SCHEMES):
        raise ValueError(f"resampling must be one of {sorted(SCHEMES)}, got {name!r}")
    return SCHEMES[name]


def check_threshold(threshold: float) -> float:
    if not 0.0 <= float(threshold) <= 1.0:
        raise ValueError(f"ess_threshold must be a fraction of the particles in [0, 1], got {threshold!r}")
    return float(threshold)


def resample(key, state: ParticleState, method: str = "systematic") -> tuple[ParticleState, jax.Array]:
    """Draw N ancestors by normalised weight; the new population is equally weighted, log Z unchanged."""
    n = state.log_weights.shape[0]
    idx = scheme(method)(key, normalized_weights(state.log_weights), n)
    particles = jax.tree.map(lambda x: x[idx], state.particles)
    return ParticleState(particles, jnp.zeros_like(state.log_weights), state.log_z), idx.astype(jnp.int32)


def maybe_resample(key, state: ParticleState, threshold: float, method: str = "systematic"):
    """Resample when ESS < threshold * N (threshold 1 always resamples, 0 never); returns (state, resampled, ancestors)."""
    threshold = check_threshold(threshold)
    n = state.log_weights.shape[0]
    do = ess(state.log_weights) < threshold * n if threshold < 1.0 else jnp.array(True)
    if threshold <= 0.0:
        do = jnp.array(False)

    def yes(s):
        return resample(key, s, method)

    def no(s):
        return s, jnp.arange(n, dtype=jnp.int32)

    new, idx = jax.lax.cond(do, yes, no, state)
    return new, do, idx
