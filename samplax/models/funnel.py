"""Neal's funnel with an exact sampler and closed-form moments."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from samplax.models import register
from samplax.target import Target


@register("funnel", "Neal's funnel: v ~ N(0, 3^2), x_i | v ~ N(0, e^v), dim = 1 + #x; exact mean, cov, sampler, log_z")
def funnel(dim: int = 10, v_scale: float = 3.0) -> Target:
    """Funnel on (v, x_1..x_{dim-1}): mean 0, var v = v_scale^2, var x_i = E e^v = exp(v_scale^2 / 2), cov diagonal.

    Unnormalised without the Gaussian (2 pi)^(-1/2) factors, so log_z = dim/2 log(2 pi) + log(v_scale).
    """
    # Neal (2003), "Slice sampling", Ann. Statist. 31(3), sec. 8: v ~ N(0, 3^2), x_i | v ~ N(0, e^v).
    if not isinstance(dim, (int, np.integer)) or isinstance(dim, bool) or dim < 2:
        raise ValueError(f"dim must be an integer >= 2 (v plus at least one x), got {dim!r}")
    if not np.isfinite(v_scale) or v_scale <= 0:
        raise ValueError(f"v_scale must be positive and finite, got {v_scale!r}")
    k = dim - 1

    def logdensity(z):
        v, x = z[0], z[1:]
        return -0.5 * (v / v_scale) ** 2 - 0.5 * jnp.sum(x**2) * jnp.exp(-v) - 0.5 * k * v

    def sample(key, n):
        kv, kx = jax.random.split(key)
        v = v_scale * jax.random.normal(kv, (n, 1))
        return jnp.concatenate([v, jnp.exp(v / 2) * jax.random.normal(kx, (n, k))], axis=1)

    var = np.concatenate([[v_scale**2], np.full(k, np.exp(v_scale**2 / 2))])
    return Target.from_logdensity(
        logdensity, dim, name="funnel", mean=jnp.zeros(dim), cov=jnp.asarray(np.diag(var)), sample=sample,
        log_z=float(0.5 * dim * np.log(2 * np.pi) + np.log(v_scale)), info={"v_scale": v_scale},
    )
