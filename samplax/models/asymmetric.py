"""Asymmetric targets with exact moments, to catch sign errors: a product of Gumbels, a skewed mixture."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from samplax.models import register
from samplax.target import Target


@register("gumbel", "product of independent Gumbel(loc, scale) with different scales; exact mean, cov, sampler, log_z")
def gumbel(dim: int = 3, loc=0.0, scale=None) -> Target:
    """Independent Gumbels: mean = loc + euler_gamma * scale, var = pi^2/6 scale^2, log_z = sum log scale."""
    if not isinstance(dim, (int, np.integer)) or isinstance(dim, bool) or dim < 1:
        raise ValueError(f"dim must be an integer >= 1, got {dim!r}")
    scale = np.geomspace(0.5, 2.0, dim) if scale is None and dim > 1 else (np.ones(1) if scale is None else scale)
    scale = np.broadcast_to(np.asarray(scale, dtype=np.float64), (dim,)).copy()
    loc = np.broadcast_to(np.asarray(loc, dtype=np.float64), (dim,)).copy()
    if np.any(scale <= 0) or not np.all(np.isfinite(scale)):
        raise ValueError(f"scale must be positive and finite, got {scale}")

    def logdensity(x):
        z = (x - jnp.asarray(loc)) / jnp.asarray(scale)
        return -jnp.sum(z + jnp.exp(-z))

    def sample(key, n):
        return jnp.asarray(loc) + jnp.asarray(scale) * jax.random.gumbel(key, (n, dim))

    return Target.from_logdensity(
        logdensity, dim, name="gumbel", mean=jnp.asarray(loc + np.euler_gamma * scale),
        cov=jnp.asarray(np.diag(np.pi**2 / 6 * scale**2)), sample=sample, log_z=float(np.sum(np.log(scale))),
        info={"loc": loc, "scale": scale},
    )


# Two overlapping components of unequal weight and shape: unimodal-ish but clearly skewed.
_MIX_WEIGHTS = np.array([0.75, 0.25])
_MIX_MEANS = np.array([[0.0, 0.0], [2.5, 1.5]])
_MIX_COVS = np.array([[[1.0, 0.0], [0.0, 0.5]], [[0.5, 0.3], [0.3, 0.5]]])


@register("skewed_mixture", "1-2D two-component Gaussian mixture with unequal weights; exact mean, cov, sampler, log_z")
def skewed_mixture(dim: int = 2) -> Target:
    """Mixture 0.75 N(m1, C1) + 0.25 N(m2, C2); unnormalised without the (2 pi)^(d/2), so log_z = d/2 log(2 pi)."""
    if dim not in (1, 2):
        raise ValueError(f"skewed_mixture supports dim=1 or dim=2, got {dim!r}")
    w, means, covs = _MIX_WEIGHTS, _MIX_MEANS[:, :dim], _MIX_COVS[:, :dim, :dim]
    chols = np.linalg.cholesky(covs)
    precs = np.linalg.inv(covs)
    log_norm = np.log(w) - np.sum(np.log(np.diagonal(chols, axis1=1, axis2=2)), axis=1)
    mean = w @ means
    second = np.einsum("k,kij->ij", w, covs + np.einsum("ki,kj->kij", means, means))
    cov = second - np.outer(mean, mean)

    def logdensity(x):
        d = x - jnp.asarray(means)
        quad = jnp.einsum("ki,kij,kj->k", d, jnp.asarray(precs), d)
        return jax.scipy.special.logsumexp(jnp.asarray(log_norm) - 0.5 * quad)

    def sample(key, n):
        kc, kz = jax.random.split(key)
        comp = jax.random.choice(kc, 2, (n,), p=jnp.asarray(w))
        z = jax.random.normal(kz, (n, dim))
        return jnp.asarray(means)[comp] + jnp.einsum("nij,nj->ni", jnp.asarray(chols)[comp], z)

    return Target.from_logdensity(
        logdensity, dim, name="skewed_mixture", mean=jnp.asarray(mean), cov=jnp.asarray(cov), sample=sample,
        log_z=float(0.5 * dim * np.log(2 * np.pi)),
        info={"weights": w, "means": means, "covs": covs},
    )
