"""Benchmark targets of the diffusion-sampler literature (GMM40, funnel, ManyWell) with exact log Z.

- "gmm40": 2D mixture of 40 equally weighted unit-variance Gaussians, means uniform in [-40, 40]^2 (the GMM of
  Midgley et al. 2023 (FAB) used by the DDS / log-variance papers). Their means come from torch's RNG with seed 0,
  which is not available here: ours are numpy `default_rng(seed)` draws, the same construction, not the same numbers.
  Normalised: log_z = 0; exact sampler, mean, cov; `info["means"]` for mode coverage.
- "many_well": ManyWell (Midgley et al. 2023), d = 32: 16 independent copies of the 2D double well
  log p~(x1, x2) = -x1^4 + 6 x1^2 + x1 / 2 - x2^2 / 2. log Z = 16 log(Z_1 sqrt(2 pi)) = 164.69568 (Z_1 by 1D
  quadrature; tests check it independently); exact sampler (inverse CDF of x1 on a fine grid, x2 Gaussian).
- Neal's funnel (d = 10) is samplax.models.get("funnel", dim=10); the double well of the sECD experiment is
  samplax.models.get("double_well", barrier=...) (samplax.models.wells). `benchmark_targets()` collects all four.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import logsumexp
from scipy.integrate import simpson

from samplax.models import register
from samplax.target import Target

MANY_WELL_LOG_Z = 164.69568  # the literature's value (FAB / DDS); recomputed by quadrature in `many_well`


def _check_int(name, v, low):
    if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {v!r}")


def gmm_means(num_modes: int = 40, loc_scale: float = 40.0, seed: int = 0, dim: int = 2) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-loc_scale, loc_scale, size=(num_modes, dim))


@register("gmm40", "2D mixture of 40 unit-variance Gaussians, means uniform in [-40, 40]^2 (fixed seed); log_z = 0, exact sampler")
def gmm40(num_modes: int = 40, loc_scale: float = 40.0, scale: float = 1.0, seed: int = 0, dim: int = 2) -> Target:
    """The GMM40 benchmark (normalised: log_z = 0); other num_modes / loc_scale / scale give its relatives."""
    _check_int("num_modes", num_modes, 1)
    _check_int("dim", dim, 1)
    _check_int("seed", seed, 0)
    if not (loc_scale > 0 and scale > 0):
        raise ValueError(f"loc_scale and scale must be positive, got {loc_scale!r}, {scale!r}")
    means = gmm_means(num_modes, loc_scale, seed, dim)
    m = jnp.asarray(means)
    log_w = -np.log(num_modes)

    def logdensity(x):
        comps = -0.5 * jnp.sum((x - m) ** 2, axis=-1) / scale**2 - dim * jnp.log(scale) - 0.5 * dim * jnp.log(2 * jnp.pi)
        return logsumexp(comps) + log_w

    def sample(key, n):
        kc, kx = jax.random.split(key)
        idx = jax.random.randint(kc, (n,), 0, num_modes)
        return m[idx] + scale * jax.random.normal(kx, (n, dim))

    mean = means.mean(0)
    cov = scale**2 * np.eye(dim) + (means - mean).T @ (means - mean) / num_modes
    return Target.from_logdensity(logdensity, dim, name=f"gmm{num_modes}", mean=jnp.asarray(mean),
                                  cov=jnp.asarray(cov), sample=sample, log_z=0.0,
                                  info={"means": means, "scale": scale})


def _double_well_axis(n: int = 200001):
    """Grid, normalised density, CDF, log Z_1, mean and variance of p(x1) ∝ exp(-x1^4 + 6 x1^2 + x1/2)."""
    g = np.linspace(-4.0, 4.0, n)  # exp(-x^4 + 6x^2) at |x| = 4 is e^-160 below the peak (e^9.3): all the mass
    u = -g**4 + 6 * g**2 + 0.5 * g
    shift = u.max()
    dens = np.exp(u - shift)
    z = simpson(dens, x=g)
    dens /= z
    cdf = np.concatenate([[0.0], np.cumsum(0.5 * (dens[1:] + dens[:-1]) * np.diff(g))])
    cdf /= cdf[-1]
    mean = simpson(g * dens, x=g)
    return g, cdf, float(np.log(z) + shift), float(mean), float(simpson((g - mean) ** 2 * dens, x=g))


@register("many_well", "ManyWell: 16 (default) copies of the 2D double well -x1^4+6x1^2+x1/2-x2^2/2, d=32, log_z=164.69568")
def many_well(dim: int = 32) -> Target:
    """ManyWell on R^dim (dim even): dim/2 independent 2D double wells; exact log_z, moments and sampler."""
    _check_int("dim", dim, 2)
    if dim % 2:
        raise ValueError(f"dim must be even (pairs (x1, x2) of the 2D double well), got {dim}")
    k = dim // 2
    g, cdf, log_z1, m1, v1 = _double_well_axis()
    G, C = jnp.asarray(g), jnp.asarray(cdf)

    def logdensity(x):
        z = jnp.reshape(x, (k, 2))
        x1, x2 = z[:, 0], z[:, 1]
        return jnp.sum(-x1**4 + 6 * x1**2 + 0.5 * x1 - 0.5 * x2**2)

    def sample(key, n):
        k1, k2 = jax.random.split(key)
        x1 = jnp.interp(jax.random.uniform(k1, (n, k)), C, G)
        x2 = jax.random.normal(k2, (n, k))
        return jnp.stack([x1, x2], axis=-1).reshape(n, dim)

    mean = np.tile([m1, 0.0], k)
    var = np.tile([v1, 1.0], k)
    log_z = k * (log_z1 + 0.5 * np.log(2 * np.pi))
    return Target.from_logdensity(logdensity, dim, name=f"many_well_{dim}d", mean=jnp.asarray(mean),
                                  cov=jnp.asarray(np.diag(var)), sample=sample, log_z=float(log_z),
                                  info={"log_z_1d": log_z1, "num_wells": k})


def benchmark_targets(quick: bool = False) -> dict[str, Target]:
    """GMM40, Funnel-10d, ManyWell-32d and the sECD experiment's double well, by name."""
    from samplax import models

    return {"gmm40": gmm40(), "funnel": models.get("funnel", dim=10), "many_well": many_well(),
            "double_well": models.get("double_well", barrier=2.0)}
