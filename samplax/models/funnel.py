"""Neal's funnel with an exact sampler and closed-form moments, and its exact tempered normalisers."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from scipy.special import logsumexp

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
        log_z=float(0.5 * dim * np.log(2 * np.pi) + np.log(v_scale)), info={"v_scale": v_scale,
        # exact tempered normalisers and v-marginals from a Gaussian reference: info["tempered"](beta, ref_scale=1.)
        "tempered": lambda beta, ref_scale=1.0: tempered(beta, dim, v_scale, ref_scale)},
    )


def _tempered_log_v(beta: float, dim: int, v_scale: float, ref_scale: float, v: np.ndarray) -> np.ndarray:
    """log of the tempered density's v-marginal, unnormalised: log int r^(1 - beta) pi~^beta dx_1..dx_k at v."""
    beta = float(beta)
    if not 0.0 <= beta <= 1.0:
        raise ValueError(f"beta must be in [0, 1], got {beta!r}")
    if not np.isfinite(ref_scale) or ref_scale <= 0:
        raise ValueError(f"ref_scale must be positive and finite, got {ref_scale!r}")
    k, a = dim - 1, ref_scale**2
    log_nr = -0.5 * np.log(2 * np.pi * a)  # r = N(0, ref_scale^2 I), normalised
    # v: r's N(v; 0, a)^(1 - beta) times the funnel's unnormalised exp(-v^2 / (2 v_scale^2))^beta
    lv = (1 - beta) * (log_nr - 0.5 * v**2 / a) - beta * 0.5 * (v / v_scale) ** 2
    # each x_i: int N(x; 0, a)^(1 - beta) exp(-x^2 e^-v / 2 - v / 2)^beta dx, a Gaussian integral
    c = (1 - beta) / a + beta * np.exp(-v)
    lx = (1 - beta) * log_nr - 0.5 * beta * v + 0.5 * np.log(2 * np.pi / c)
    return lv + k * lx


def tempered(beta: float, dim: int = 10, v_scale: float = 3.0, ref_scale: float = 1.0, num_points: int = 160001):
    """The funnel tempered from the reference r = N(0, ref_scale^2 I): gamma_beta = r^(1 - beta) pi~^beta, pi~ the
    unnormalised density of `funnel(dim, v_scale)`. Returns (log Z_beta, v, p): log Z_beta = log int gamma_beta (0 at
    beta 0, the target's log_z at 1), and the v-marginal p (a probability per point of the grid v, summing to 1).

    Exact up to a 1-d quadrature: given v the x_i integrals are Gaussian in closed form; the v integral is a sum on
    a grid of num_points over [-w, w], w = 40 + 12 max(v_scale, ref_scale) (the integrand is smooth and decays like a
    Gaussian of sd at most max(v_scale, ref_scale)). Tempered
    SMC's cumulative log Z increments estimate log Z_beta at each of its temperatures; p shows which regions each
    temperature opens (the wide end, v > 3, opens only as beta -> 1)."""
    if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or dim < 2:
        raise ValueError(f"dim must be an integer >= 2, got {dim!r}")
    w = 40.0 + 12.0 * max(float(v_scale), float(ref_scale))
    v = np.linspace(-w, w, int(num_points))
    lv = _tempered_log_v(beta, int(dim), float(v_scale), float(ref_scale), v)
    log_z = float(logsumexp(lv) + np.log(v[1] - v[0]))
    return log_z, v, np.exp(lv - logsumexp(lv))
