"""The Schrödinger–Föllmer sampler (Huang et al. 2021, arXiv 2106.10880): `samplax.sample(target, "sfs", ...)`.

dX = b(X, t) dt + dW on [0, 1] from X_0 = 0, with f = pi~ / N(0, I) and (their eq. for the Föllmer drift)
b(x, t) = E[grad f(x + sqrt(1-t) Z)] / E[f(x + sqrt(1-t) Z)],  Z ~ N(0, I);
with `sigma` != 1 the reference is sigma W (f = pi~ / N(0, sigma^2 I), b = sigma^2 grad_x log E[f(x + sigma sqrt(1-t) Z)],
dX = b dt + sigma dW): the same construction for targets far wider than N(0, I).

X_1 ~ pi exactly in continuous time. The drift is estimated per step and particle from `num_mc` Gaussian draws,
written with grad f = f grad log f as a self-normalised average  b^ = sum_j softmax_j(log f(y_j)) grad log f(y_j)
(stable for peaked f); Euler–Maruyama with K = num_steps equal steps.

log Z: the estimated drift makes b^ biased for b and the Euler chain biased for pi, so neither the endpoint law nor
E[f] are used. Instead each path carries the exact discrete-time importance weight of PIS with sigma = 1
(`samplax.diffusion.learned.paths`): log w = log pi~(x_K) - log N(x_K; 0, sigma^2 I) + sum_k [-u_k . r_k + h sigma^2 |u_k|^2 / 2],
u_k = b^_k / sigma^2, r_k = x_{k+1} - x_k.
Conditional on the Monte Carlo draws used for b^ (auxiliary variables independent of the path noise), each
Euler step is a Gaussian proposal kernel, so E[w] = Z exactly: Z^ = mean_i w_i is unbiased for Z (log Z^ is biased
low by Jensen, by about Var(w)/(2 N Z^2)). The alternative unbiased estimate E[f(Z)] = Z at t = 0 is plain
importance sampling from N(0, I), useless for peaked targets. Particles are resampled by these weights at the end.
n_grad = num_particles * num_steps * num_mc gradient evaluations (+ one log-density evaluation per particle at x_K).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import logsumexp

from samplax.particles import base
from samplax.particles.resampling import resample, scheme
from samplax.particles.state import ParticleState, ess



def _check_int(name, value, low):
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")


def follmer_drift(logdensity, x, t, key, num_mc: int, sigma: float = 1.0):
    """Monte Carlo estimate of b(x, t) / sigma^2 for one x of shape (d,) from num_mc draws of N(0, I)."""
    z = jax.random.normal(key, (num_mc, x.shape[0]), x.dtype)
    y = x + sigma * jnp.sqrt(1.0 - t) * z
    lp, g = jax.vmap(jax.value_and_grad(logdensity))(y)
    log_f = lp + 0.5 * jnp.sum(y**2, axis=-1) / sigma**2  # log pi~ - log N(0, sigma^2) up to a constant
    w = jax.nn.softmax(log_f)
    return jnp.sum(w[:, None] * (g + y / sigma**2), axis=0)


def run_sfs(target, key, num_particles: int, num_steps: int, num_mc: int, resampling: str, progress=None,
            sigma: float = 1.0):
    """One population of the Schrödinger–Föllmer sampler; returns a base.Population."""
    d, n, K = target.dim, num_particles, num_steps
    h = 1.0 / K
    k_path, k_res = jax.random.split(key)
    drift = jax.vmap(lambda x, t, k: follmer_drift(target.logdensity, x, t, k, num_mc, sigma), in_axes=(0, None, 0))
    x0 = jnp.zeros((n, d), jnp.result_type(float))

    def body(carry, k):
        x, lw = carry
        t = k * h
        kk = jax.random.fold_in(k_path, k)
        k_mc, k_xi = jax.random.split(kk)
        u = drift(x, t, jax.random.split(k_mc, n))  # b / sigma^2
        s2 = h * sigma**2
        r = s2 * u + jnp.sqrt(s2) * jax.random.normal(k_xi, x.shape, x.dtype)
        lw = lw + jnp.sum(-u * r + 0.5 * s2 * u**2, axis=-1)
        e = ess(lw)
        if progress is not None:
            progress.update(k, t + h, e)
        return (x + r, lw), e

    (x, lw), ess_path = jax.lax.scan(body, (x0, jnp.zeros((n,), x0.dtype)), jnp.arange(K))
    log_w = (lw + jax.vmap(target.logdensity)(x) + 0.5 * jnp.sum(x**2, -1) / sigma**2 + d * jnp.log(sigma)
             + 0.5 * d * jnp.log(2 * jnp.pi))
    log_z = logsumexp(log_w) - jnp.log(n)
    state, _ = resample(k_res, ParticleState(x, log_w, log_z), resampling)
    stats = {"time": jnp.asarray((np.arange(K) + 1) * h), "ess": ess_path.at[-1].set(ess(log_w)),
             "n_grad": base.stage_counts(np.full(K, n * num_mc))}
    return base.Population(state.particles, log_z, stats, jnp.sum(stats["n_grad"]))  # host re-sums in int64


@base.register("sfs")
def sfs(num_steps: int = 100, num_mc: int = 64, sigma: float = 1.0, resampling: str = "systematic") -> base.PopulationSampler:
    """Schrödinger–Föllmer sampler. num_steps: Euler steps on [0, 1]; num_mc: Gaussian draws per drift estimate;
    sigma: scale of the reference Brownian motion (its law at t = 1 is N(0, sigma^2 I)); choose it to cover the target.

    stage_stats per step: time (step end), ess (of the path weights accumulated so far; the last row is the ESS of
    the final importance weights), n_grad.
    """
    _check_int("num_steps", num_steps, 1)
    _check_int("num_mc", num_mc, 1)
    scheme(resampling)  # validates the name
    if isinstance(sigma, bool) or not isinstance(sigma, (int, float, np.integer, np.floating)) or not sigma > 0 \
            or not np.isfinite(sigma):
        raise ValueError(f"sigma must be a positive finite number, got {sigma!r}")
    sigma = float(sigma)

    def run(model, key, num_particles, progress):
        from samplax.particles.run import as_target

        return run_sfs(as_target(model), key, num_particles, num_steps, num_mc, resampling, progress, sigma)

    return base.PopulationSampler("sfs", run, {"num_steps": num_steps, "num_mc": num_mc, "sigma": sigma,
                                               "resampling": resampling},
                                  "time")
