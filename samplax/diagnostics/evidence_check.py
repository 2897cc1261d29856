"""An independent check of a population sampler's log Z: importance sampling from a Gaussian fitted to its particles.

Tempered SMC can end with particles that look like the posterior while its log Z is wrong: when the moves do not
follow the intermediate tempered distributions, each stage's increment is estimated from a cloud that lags behind,
the error adds up over the stages, and independent populations lag alike, so they agree with each other and the
within-run SE is small. posteriordb's blr (exact log Z -194.968): the default SMC gave -198.0 +- 0.07 with a clean
trust check before this check existed (tests/test_smc_blr_evidence.py).

The check: fit a Gaussian to the run's final particles (pooled over populations, unconstrained space), widen its sd
by WIDEN, draw NUM_DRAWS points and estimate log Z = log mean exp(logdensity - log q). Only when that estimate is
itself trustworthy -- Pareto k of its weights <= KHAT_MAX (PSIS; a Gaussian that misses heavy tails or other modes
shows a large k and the check says nothing) -- is it compared with the run's: a difference beyond Z_GATE combined
SEs plus TOL is a finding. It evaluates the log-density NUM_DRAWS times (no gradients) and is skipped above
MAX_DIM dimensions or with fewer than 10 d finite particles.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from scipy.special import logsumexp

from samplax import reference_fit
from samplax.reference_fit import Gaussian, cholesky, pareto_khat

NUM_DRAWS = 4096
WIDEN = 1.2  # proposal sd / the particles' sd
KHAT_MAX = 0.5
Z_GATE = 4.0
TOL = 0.05
MAX_DIM = 100


def gaussian_importance_log_z(logdensity, proposal: Gaussian, num_draws: int = NUM_DRAWS, seed: int = 0):
    """(log Z, its SE, Pareto k) of exp(logdensity) by importance sampling from `proposal`; None when the
    log-density is NaN at a draw or -inf at all of them."""
    d = proposal.mean.shape[0]
    z = np.random.default_rng(seed).standard_normal((num_draws, d))
    draws = proposal.mean + z @ proposal.chol.T
    log_q = -0.5 * np.sum(z ** 2, axis=1) - np.sum(np.log(np.diag(proposal.chol))) - 0.5 * d * math.log(2 * math.pi)
    dtype = jnp.result_type(float)
    reference_fit.count(n_logdensity=num_draws)
    log_p = np.asarray(jax.jit(jax.vmap(logdensity))(jnp.asarray(draws, dtype)), dtype=np.float64)
    if np.any(np.isnan(log_p)):
        return None
    log_w = log_p - log_q
    if not np.any(np.isfinite(log_w)):
        return None
    w = np.exp(log_w - np.max(log_w))
    lz = float(logsumexp(log_w) - math.log(num_draws))
    se = float(np.sqrt(np.var(w) / num_draws) / np.mean(w))
    return lz, se, float(pareto_khat(log_w))


def importance_log_z(logdensity, particles: np.ndarray, num_draws: int = NUM_DRAWS, seed: int = 0):
    """`gaussian_importance_log_z` from N(mean, WIDEN^2 cov) of `particles` (n, d); None when the particles are too
    few or degenerate for a fit."""
    x = np.asarray(particles, dtype=np.float64)
    x = x[np.all(np.isfinite(x), axis=1)]
    n, d = x.shape
    if d > MAX_DIM or n < 10 * d or n < 20:
        return None
    try:
        chol = cholesky(WIDEN ** 2 * np.atleast_2d(np.cov(x, rowvar=False)))
    except ValueError:  # a zero or non-finite covariance
        return None
    return gaussian_importance_log_z(logdensity, Gaussian(x.mean(axis=0), chol), num_draws, seed)


def log_z_check(target, particles: np.ndarray, log_z: float, log_z_se: float) -> tuple[dict, list[str]]:
    """(attrs to record, findings) comparing the run's pooled log Z with `importance_log_z` of its particles
    (populations x particles x d)."""
    if not (math.isfinite(log_z) and math.isfinite(log_z_se)):
        return {}, []
    p = np.asarray(particles)
    out = importance_log_z(target.logdensity, p.reshape(-1, p.shape[-1]))
    if out is None:
        return {}, []
    lz_is, se_is, k = out
    attrs = {"log_z_is": lz_is, "log_z_is_se": se_is, "log_z_is_khat": k}
    if not (np.isfinite(k) and k <= KHAT_MAX):
        return attrs, []
    if abs(log_z - lz_is) > Z_GATE * math.hypot(log_z_se, se_is) + TOL:
        return attrs, [f"log Z {log_z:.3f} +- {log_z_se:.3f} disagrees with an independent importance-sampling "
                       f"estimate {lz_is:.3f} +- {se_is:.3f} ({NUM_DRAWS} draws from a Gaussian fitted to the final "
                       f"particles, Pareto k {k:.2f}): the particles lagged the intermediate distributions, so log Z "
                       "is biased even where the final particles look right; for SMC use kernel='autostep' (HMC "
                       "whose step adapts to each state: funnel-shaped intermediate distributions) or more moves "
                       "per stage (kernel='hmc', a higher target_ess), or temper from a reference closer to the "
                       "posterior (reference='auto')."]
    return attrs, []
