"""Gaussian targets (isotropic, ill-conditioned, rotated) with exact mean, cov, sampler and log_z."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from samplax.models import register
from samplax.target import Target


def _rotation(dim: int, seed: int) -> np.ndarray:
    """A Haar-random orthogonal matrix (QR of a Gaussian matrix with the sign fix)."""
    q, r = np.linalg.qr(np.random.default_rng(seed).standard_normal((dim, dim)))
    return q * np.sign(np.diag(r))


def _check(dim, condition_number):
    if not isinstance(dim, (int, np.integer)) or isinstance(dim, bool) or dim < 1:
        raise ValueError(f"dim must be an integer >= 1, got {dim!r}")
    if not np.isfinite(condition_number) or condition_number < 1:
        raise ValueError(f"condition_number must be a finite number >= 1, got {condition_number!r}")


def gaussian_from_cov(mean, cov, name: str = "gaussian", **info) -> Target:
    """N(mean, cov) as an unnormalised density exp(-(x-m)' P (x-m) / 2); log_z = log sqrt((2 pi)^d det cov)."""
    mean = np.asarray(mean, dtype=np.float64)
    cov = np.asarray(cov, dtype=np.float64)
    dim = mean.shape[0]
    if cov.shape != (dim, dim):
        raise ValueError(f"cov must have shape ({dim}, {dim}) to match mean, got {cov.shape}")
    chol = np.linalg.cholesky(cov)  # raises LinAlgError if cov is not positive definite
    prec = np.linalg.inv(cov)
    prec = (prec + prec.T) / 2
    log_z = 0.5 * dim * np.log(2 * np.pi) + np.sum(np.log(np.diag(chol)))

    def logdensity(x):
        d = x - jnp.asarray(mean)
        return -0.5 * d @ (jnp.asarray(prec) @ d)

    def sample(key, n):
        z = jax.random.normal(key, (n, dim))
        return jnp.asarray(mean) + z @ jnp.asarray(chol).T

    return Target.from_logdensity(
        logdensity, dim, name=name, mean=jnp.asarray(mean), cov=jnp.asarray(cov), sample=sample,
        log_z=float(log_z), info=info,
    )


@register("gaussian", "N(mean, C) in `dim` dims, C with log-spaced eigenvalues (condition_number), optionally rotated")
def gaussian(dim: int = 10, condition_number: float = 1.0, rotate: bool = False, seed: int = 0,
             mean=None) -> Target:
    """Gaussian with variances log-spaced in [1/sqrt(k), sqrt(k)] (k = condition_number); exact truth."""
    _check(dim, condition_number)
    variances = np.logspace(-0.5, 0.5, dim) ** np.log10(condition_number) if dim > 1 else np.ones(1)
    cov = np.diag(variances)
    if rotate:
        q = _rotation(dim, seed)
        cov = q @ cov @ q.T
        cov = (cov + cov.T) / 2
    mean = np.zeros(dim) if mean is None else np.broadcast_to(np.asarray(mean, dtype=np.float64), (dim,))
    name = "gaussian" if condition_number == 1 else "ill_conditioned_gaussian"
    return gaussian_from_cov(mean, cov, name=name, condition_number=float(condition_number),
                             rotate=bool(rotate), seed=seed)


@register("ill_conditioned_gaussian", "gaussian with condition_number=100 (dim=10), log-spaced eigenvalues")
def ill_conditioned_gaussian(dim: int = 10, condition_number: float = 100.0, rotate: bool = False,
                             seed: int = 0, mean=None) -> Target:
    """Gaussian whose covariance eigenvalues span a factor `condition_number`; rotate=True: not axis-aligned."""
    return gaussian(dim=dim, condition_number=condition_number, rotate=rotate, seed=seed, mean=mean)
