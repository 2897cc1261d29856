"""Rosenbrock / banana target with an exact sampler and closed-form moments."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from samplax.models import register
from samplax.target import Target


@register("banana", "2D banana: x1 ~ N(0, a^2), x2 | x1 ~ N(b x1^2, s^2); exact mean, cov, sampler, log_z")
def banana(a: float = 1.0, b: float = 1.0, s: float = 0.5) -> Target:
    """Banana: mean (0, b a^2), var (a^2, s^2 + 2 b^2 a^4), zero covariance (odd moments of x1), log_z = log(2 pi a s)."""
    for arg, v in (("a", a), ("s", s)):
        if not np.isfinite(v) or v <= 0:
            raise ValueError(f"{arg} must be a positive finite scale, got {v!r}")
    if not np.isfinite(b):
        raise ValueError(f"b (curvature) must be finite, got {b!r}")

    def logdensity(x):
        return -0.5 * (x[0] / a) ** 2 - 0.5 * ((x[1] - b * x[0] ** 2) / s) ** 2

    def sample(key, n):
        z = jax.random.normal(key, (n, 2))
        x1 = a * z[:, 0]
        return jnp.stack([x1, b * x1**2 + s * z[:, 1]], axis=1)

    return Target.from_logdensity(
        logdensity, 2, name="banana", mean=jnp.array([0.0, b * a**2]),
        cov=jnp.diag(jnp.array([a**2, s**2 + 2 * b**2 * a**4])), sample=sample,
        log_z=float(np.log(2 * np.pi * a * s)), info={"a": a, "b": b, "s": s},
    )
