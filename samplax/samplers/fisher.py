"""Preconditioners estimated from draws AND gradients (Seyboldt, Carlson & Carpenter; nutpie / nuts-rs).

For a target p and a metric with inverse mass matrix C, the Fisher divergence between p and the Gaussian the
metric implies is minimised by C = Cov(x) # Cov(grad log p)^{-1} (the SPD geometric mean). Its diagonal
restriction is C_ii = sqrt(Var(x_i) / Var(grad_i)) (nutpie's default "diag" metric); for a Gaussian with a
diagonal covariance it equals Var(x_i) from ANY set of draws, even a transient that has not reached the typical
set (there grad_i = -(x_i - m_i) / s_i^2 exactly), which is why it converges much faster than the draw variance.

Pure JAX, shapes (n, d) for draws and gradients:

- `gradient_init_diag(grad)`: the starting diagonal from one gradient, C_ii = 1 / |grad_i| (nuts-rs
  `update_diag_grad`: clipped to [1e-20, 1e20], 1 where not finite).
- `fisher_diag(draws, grads)` / `fisher_diag_from_moments(var_x, var_g)`: the Fisher diagonal, clipped to
  [1e-20, 1e20]; where it is not finite or zero the previous value is kept (nuts-rs `fill_invalid=None`).
- `Moments` with `moments_init` / `moments_update` / `moments_variances`: weighted Welford accumulators of x and
  grad, so a warmup estimates the diagonal inside a `scan` without buffering draws.
- `low_rank(draws, grads, max_rank)`: the low-rank Fisher metric C = diag(s) (I + U (diag(lam) - I) U^T) diag(s)
  (blackjax 1.7's `metric_estimators.fisher_score_low_rank`, nutpie's algorithm), as a `LowRankMetric`.
- `sqrt_apply` / `inv_sqrt_apply`: the whitening transform x = S y with S S^T = C (S symmetric for the low-rank
  form), so MCLMC / MAMS / sECD / SMC moves can run in whitened coordinates; `dense(metric)` is C itself;
  `to_blackjax(metric)` is blackjax's `LowRankInverseMassMatrix` (its isokinetic integrators take it directly).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

Array = jax.Array

LOWER, UPPER = 1e-20, 1e20  # nuts-rs clamp of the diagonal inverse mass matrix


# ----------------------------------------------------------------------------------------------------- diagonal
def gradient_init_diag(grad: Array, lower: float = LOWER, upper: float = UPPER) -> Array:
    """Inverse mass matrix diagonal 1 / |grad| from the gradient at the initial point (nutpie's start).

    |grad| is clipped to [lower, upper] first; a non-finite value gives 1 (the identity for that coordinate)."""
    grad = jnp.asarray(grad)
    val = 1.0 / jnp.clip(jnp.abs(grad), lower, upper)
    return jnp.where(jnp.isfinite(val), val, 1.0)


def fisher_diag_from_moments(var_x: Array, var_g: Array, previous: Array | None = None,
                             lower: float = LOWER, upper: float = UPPER) -> Array:
    """C_ii = sqrt(Var(x_i) / Var(grad_i)), clipped to [lower, upper]; where the ratio is not finite or 0 the
    `previous` value is kept (1 without one)."""
    val = jnp.sqrt(jnp.asarray(var_x) / jnp.asarray(var_g))
    ok = jnp.isfinite(val) & (val > 0)
    fallback = jnp.ones_like(val) if previous is None else jnp.broadcast_to(jnp.asarray(previous), val.shape)
    return jnp.where(ok, jnp.clip(jnp.where(ok, val, 1.0), lower, upper), fallback)


def fisher_diag(draws: Array, grads: Array, previous: Array | None = None) -> Array:
    """Fisher-divergence diagonal inverse mass matrix from draws (n, d) and their log-density gradients (n, d)."""
    draws, grads = jnp.asarray(draws), jnp.asarray(grads)
    return fisher_diag_from_moments(jnp.var(draws, axis=0), jnp.var(grads, axis=0), previous)


class Moments(NamedTuple):
    """Weighted running mean / sum of squared deviations of draws and gradients (Welford, West's weights)."""

    weight: Array  # total weight
    mean_x: Array
    m2_x: Array
    mean_g: Array
    m2_g: Array


def moments_init(dim: int, dtype=None) -> Moments:
    z = jnp.zeros(dim, dtype)
    return Moments(jnp.zeros((), z.dtype), z, z, z, z)


def moments_update(m: Moments, x: Array, g: Array, weight=1.0) -> Moments:
    """Add (x, g) with `weight` (0 leaves the moments unchanged, whatever x and g hold: e.g. a reverted step)."""
    w = jnp.asarray(weight, m.mean_x.dtype)
    use = w > 0
    x, g = jnp.where(use, x, m.mean_x), jnp.where(use, g, m.mean_g)
    total = m.weight + w
    frac = jnp.where(use, w / jnp.where(use, total, 1.0), 0.0)
    dx, dg = x - m.mean_x, g - m.mean_g
    mean_x, mean_g = m.mean_x + frac * dx, m.mean_g + frac * dg
    return Moments(total, mean_x, m.m2_x + w * dx * (x - mean_x), mean_g, m.m2_g + w * dg * (g - mean_g))


def moments_variances(m: Moments) -> tuple[Array, Array]:
    """(Var x, Var grad), population form (the Fisher ratio does not depend on the normalisation)."""
    n = jnp.where(m.weight > 0, m.weight, 1.0)
    return m.m2_x / n, m.m2_g / n


def moments_fisher_diag(m: Moments, previous: Array, min_weight: float = 3.0) -> Array:
    """The Fisher diagonal of the accumulated (x, grad), or `previous` while there is less than `min_weight`."""
    var_x, var_g = moments_variances(m)
    new = fisher_diag_from_moments(var_x, var_g, previous)
    return jnp.where(m.weight >= min_weight, new, previous)


# ----------------------------------------------------------------------------------------------------- low rank
class LowRankMetric(NamedTuple):
    """C = diag(sigma) (I + U (diag(lam) - I) U^T) diag(sigma); U (d, k) orthonormal columns (zero columns with
    lam = 1 are inert padding)."""

    sigma: Array
    U: Array
    lam: Array


def low_rank(draws: Array, grads: Array, max_rank: int = 10, *, weights: Array | None = None, gamma: float = 1e-5,
             cutoff: float = 2.0, previous: LowRankMetric | None = None) -> LowRankMetric:
    """The low-rank Fisher metric (nutpie's `low_rank_modified_mass_matrix`; Algorithm 1 of Seyboldt et al. as
    nuts-rs `low_rank.rs::estimate_mass_matrix` and blackjax's `metric_estimators.fisher_score_low_rank` compute it):
    sigma = (Var x / Var grad)^(1/4) per coordinate; then, in the span Q of the top `max_rank` principal directions
    of the scaled draws (x - mean) / sigma and of the scaled gradients (g - mean) sigma, the SPD geometric mean
    (P_x P_x^T / gamma + I) # (P_g P_g^T / gamma + I)^{-1}; its eigenvectors with eigenvalues outside
    [1/cutoff, cutoff] give U, lam (the others are set to lam = 1).

    weights (n,) of 0 / 1 select rows (a fixed-size buffer partly filled); `max_rank` is static. Where sigma is not
    finite or 0 (a coordinate that did not move), `previous.sigma` (else 1) is used. Unlike blackjax's estimator,
    rows of weight 0 contribute nothing (they are zeroed after centring)."""
    from blackjax.adaptation.metric_estimators import _relative_pd_floor, _spd_mean

    draws, grads = jnp.asarray(draws), jnp.asarray(grads)
    n, d = draws.shape
    w = jnp.ones(n, draws.dtype) if weights is None else jnp.asarray(weights, draws.dtype)
    total = jnp.maximum(jnp.sum(w), 1.0)
    mean_x = w @ draws / total
    mean_g = w @ grads / total
    dx = w[:, None] * (draws - mean_x)
    dg = w[:, None] * (grads - mean_g)
    var_x, var_g = jnp.sum(dx**2, 0) / total, jnp.sum(dg**2, 0) / total
    prev_sigma = jnp.ones(d, draws.dtype) if previous is None else previous.sigma
    sigma = jnp.sqrt(fisher_diag_from_moments(var_x, var_g, prev_sigma**2))
    X, A = dx / sigma, dg * sigma
    k = int(max_rank)
    if k >= d:  # the top directions span everything: Q = I gives the same metric without two SVDs and a QR
        Q = jnp.eye(d, dtype=X.dtype)
    else:
        _, _, vx = jnp.linalg.svd(X, full_matrices=False)
        _, _, va = jnp.linalg.svd(A, full_matrices=False)
        Q, _ = jnp.linalg.qr(jnp.concatenate([vx[:k].T, va[:k].T], axis=1))
    q = Q.shape[1]
    px, pa = Q.T @ X.T, Q.T @ A.T
    cx = px @ px.T / gamma + jnp.eye(q)
    ca = pa @ pa.T / gamma + jnp.eye(q)
    vals, vecs = jnp.linalg.eigh(_spd_mean(cx, jnp.linalg.inv(ca)))
    vals = jnp.maximum(vals, _relative_pd_floor(vals))
    U = Q @ vecs
    rank = min(k, q)
    order = jnp.argsort(-jnp.abs(vals - 1.0))[:rank]
    U, lam = U[:, order], vals[order]
    lam = jnp.where((lam < 1.0 / cutoff) | (lam > cutoff), lam, 1.0)
    if rank < k:  # pad: zero columns with lam = 1 are inert
        U = jnp.concatenate([U, jnp.zeros((d, k - rank), U.dtype)], axis=1)
        lam = jnp.concatenate([lam, jnp.ones(k - rank, lam.dtype)])
    ok = jnp.all(jnp.isfinite(U)) & jnp.all(jnp.isfinite(lam)) & jnp.all(lam > 0)
    U = jnp.where(ok, U, 0.0)
    lam = jnp.where(ok, lam, 1.0)
    return LowRankMetric(sigma, U, lam)


def _as_low_rank(metric) -> LowRankMetric:
    if isinstance(metric, LowRankMetric):
        return metric
    if hasattr(metric, "sigma") and hasattr(metric, "U") and hasattr(metric, "lam"):  # blackjax's form
        return LowRankMetric(metric.sigma, metric.U, metric.lam)
    c = jnp.asarray(metric)
    if c.ndim != 1:
        raise ValueError(f"a metric is a LowRankMetric or a diagonal (d,), got shape {c.shape}")
    return LowRankMetric(jnp.sqrt(c), jnp.zeros((c.shape[0], 0), c.dtype), jnp.ones((0,), c.dtype))


def _inner(U, factor, v):
    """(I + U (diag(factor) - 1) U^T) v."""
    return v + U @ ((factor - 1.0) * (U.T @ v))


def sqrt_apply(metric, y: Array) -> Array:
    """S y with S S^T = C, S = diag(sigma) (I + U (sqrt(lam) - 1) U^T): whitened -> original coordinates (add the
    centre yourself). `metric` is a LowRankMetric or a diagonal (d,)."""
    m = _as_low_rank(metric)
    return m.sigma * _inner(m.U, jnp.sqrt(m.lam), y)


def inv_sqrt_apply(metric, x: Array) -> Array:
    """S^{-1} x: original -> whitened coordinates (after subtracting the centre)."""
    m = _as_low_rank(metric)
    return _inner(m.U, 1.0 / jnp.sqrt(m.lam), x / m.sigma)


def apply(metric, v: Array) -> Array:
    """C v."""
    m = _as_low_rank(metric)
    return m.sigma * _inner(m.U, m.lam, m.sigma * v)


def dense(metric) -> Array:
    """C as a (d, d) matrix."""
    m = _as_low_rank(metric)
    inner = jnp.eye(m.sigma.shape[0]) + (m.U * (m.lam - 1.0)) @ m.U.T
    return m.sigma[:, None] * inner * m.sigma[None, :]


def diagonal(metric) -> Array:
    """diag(C)."""
    m = _as_low_rank(metric)
    return m.sigma**2 * (1.0 + jnp.sum(m.U**2 * (m.lam - 1.0), axis=1))


def to_blackjax(metric):
    """blackjax's `LowRankInverseMassMatrix` (accepted by its HMC / NUTS kernels and isokinetic integrators)."""
    from blackjax.mcmc.metrics import LowRankInverseMassMatrix

    m = _as_low_rank(metric)
    return LowRankInverseMassMatrix(m.sigma, m.U, m.lam)
