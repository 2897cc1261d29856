"""Discrete-time reference processes of PIS and DDS, the controlled rollout and its exact log importance weights.

Both samplers are Gaussian Markov chains x_{k+1} = a_k x_k + s_k^2 u(x_k, t_k) + s_k xi_k, k = 0..K-1, whose
u = 0 version is a reference chain with a known Gaussian marginal r_K at the end:

- PIS (Zhang & Chen 2022): Brownian motion from x_0 = 0 with scale sigma on [0, 1]; a_k = 1, s_k = sigma sqrt(1/K),
  r_K = N(0, sigma^2).
- DDS (Vargas, Grathwohl & Doucet 2023): the time reversal of an OU process dX = -beta X dt + sigma sqrt(2 beta) dW
  started in its stationary law N(0, sigma^2): x_0 ~ N(0, sigma^2), a_k = exp(-int beta) over the step,
  s_k = sigma sqrt(1 - a_k^2), r_K = N(0, sigma^2) (the OU kernel is reversible w.r.t. it).

In both, the target path measure pi(x_K) prod_k ref(x_k | x_{k+1}) over the sampler's path measure gives (the
reversed reference kernels telescope into r_K, Gaussian normalisers cancel)

    log w = log pi~(x_K) - log r_K(x_K) + sum_k [log N(x_{k+1}; a_k x_k, s_k^2) - log N(x_{k+1}; a_k x_k + s_k^2 u_k, s_k^2)]
          = log pi~(x_K) - log r_K(x_K) + sum_k [-u_k . r_k + s_k^2 |u_k|^2 / 2],   r_k = x_{k+1} - a_k x_k,

an exact discrete-time importance weight: E[w] = Z with no time-discretisation bias, so mean(exp(log w)) is an
unbiased estimate of Z (and the continuous-time RND  -int |u|^2/2 dt - int u dW  in the limit).

DDS time grids (`schedule`): "linear" beta(tau) = beta_min + (beta_max - beta_min) tau (the default), or "cosine", the
DDS authors' and Beyond-ELBOs' cos_sq_fn_step_scheme (Nichol & Dhariwal 2021): per-step OU increments proportional
to cos^4 of the phase, large at the prior end and shrinking to ~0 at the target end (fine steps where the modes
are sharp), with the same total integral (beta_min + beta_max) / 2 as the linear grid. The reference evaluates
cos^4 at linspace(0, 1, K), whose last step is empty; we take step midpoints so every step moves.
"""

from __future__ import annotations

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from samplax import checks
from samplax.particles.state import ess

KINDS = ("pis", "dds")
SCHEDULES = ("linear", "cosine")


@dataclasses.dataclass(frozen=True)
class Path:
    kind: str
    a: np.ndarray  # (K,)
    s: np.ndarray  # (K,) transition standard deviations
    t: np.ndarray  # (K,) sampler time of each step in [0, 1) (the network's time input)
    x0_scale: float
    terminal_scale: float

    @property
    def num_steps(self) -> int:
        return int(self.a.size)


def make_path(kind: str, num_steps: int, sigma: float, beta_min: float = 0.1, beta_max: float = 10.0,
              schedule: str = "linear") -> Path:
    """The reference chain of `kind` ("pis" | "dds") on K = num_steps steps; `schedule` is DDS's OU time grid."""
    if not checks.member(kind, KINDS):
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if not checks.member(schedule, SCHEDULES):
        raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}")
    K = int(num_steps)
    t = np.arange(K) / K
    if kind == "pis":
        return Path(kind, np.ones(K), np.full(K, sigma * np.sqrt(1.0 / K)), t, 0.0, float(sigma))
    # OU time tau runs 1 -> 0 while the sampler runs 0 -> 1; integral of the linear beta over [tau_{k+1}, tau_k]
    if schedule == "cosine":
        s_shift = 0.008  # the reference's shift
        phase = (((np.arange(K) + 0.5) / K + s_shift) / (1 + s_shift)) * np.pi * 0.5
        w = np.cos(phase) ** 4
        a = np.exp(-0.5 * (beta_min + beta_max) * w / w.sum())
    else:
        tau = 1.0 - np.arange(K + 1) / K
        B = beta_min * tau + 0.5 * (beta_max - beta_min) * tau**2
        a = np.exp(-(B[:-1] - B[1:]))
    return Path(kind, a, sigma * np.sqrt(1.0 - a**2), t, float(sigma), float(sigma))


def _gauss_logpdf(x, scale):
    d = x.shape[-1]
    return -0.5 * jnp.sum(x**2, axis=-1) / scale**2 - d * jnp.log(scale) - 0.5 * d * jnp.log(2 * jnp.pi)


def rollout(control, path: Path, logdensity, key, n: int, dim: int, detach: bool = False, progress=None,
            detach_score: bool = False, stl: bool = False):
    """Simulate n paths; return (x_K (n, d), log_w (n,), ess_so_far (K,)).

    detach=True stops gradients through the path (the log-variance loss differentiates only u along fixed paths);
    detach=False keeps the reparametrised path (the reverse-KL loss differentiates through the SDE).
    detach_score=True feeds the network grad log pi~(x) as a constant (no gradient through it into the target's
    Hessian), as both reference codes do (`jax.lax.stop_gradient(jax.grad(langevin_init)(x, step))`). Only the
    training gradient changes; the rollout and its weights are the same.
    stl=True ("sticking the landing", Roeder et al. 2017; the DDS code's `stl` / `detach_stl_drift`, on in its base
    config for DDS and PIS, off in its funnel notebook): the noise term -s u . xi of each step's log-weight increment
    reads u with the network's parameters stopped (still a function of the reparametrised x). Its expectation is zero
    for any parameters, so the reverse-KL gradient stays unbiased and loses the term's variance, which does not
    vanish at the optimum; log w's value is unchanged. For the reparametrised (detach=False) path only.
    """
    if stl and detach:
        raise ValueError("stl applies to the reparametrised path (detach=False) only")
    k0, key = jax.random.split(key)
    x0 = path.x0_scale * jax.random.normal(k0, (n, dim))
    vg = jax.vmap(jax.value_and_grad(logdensity))
    ctrl = jax.vmap(control, in_axes=(0, None, 0))
    if stl:
        params, static = eqx.partition(control, eqx.is_inexact_array)
        ctrl_fixed = jax.vmap(eqx.combine(jax.lax.stop_gradient(params), static), in_axes=(0, None, 0))
    steps = (jnp.asarray(path.a), jnp.asarray(path.s), jnp.asarray(path.t), jnp.arange(path.num_steps))

    def body(carry, step):
        x, lw = carry
        a, s, t, k = step
        _, g = vg(x)
        if detach_score:
            g = jax.lax.stop_gradient(g)
        u = ctrl(x, t, g)
        xi = jax.random.normal(jax.random.fold_in(key, k), x.shape)
        mean_ref = a * x
        x_new = mean_ref + s**2 * u + s * xi
        if detach:
            x_new = jax.lax.stop_gradient(x_new)
        if stl:  # -u . r + s^2 |u|^2 / 2 with r = s^2 u + s xi, the noise term's u with its parameters stopped
            lw = lw - jnp.sum(0.5 * s**2 * u**2 + s * ctrl_fixed(x, t, g) * xi, axis=-1)
        else:
            r = x_new - mean_ref
            lw = lw + jnp.sum(-u * r + 0.5 * s**2 * u**2, axis=-1)
        e = ess(jax.lax.stop_gradient(lw))
        if progress is not None:
            progress.update(k, t, e)
        return (x_new, lw), e

    (x, lw), ess_path = jax.lax.scan(body, (x0, jnp.zeros((n,), x0.dtype)), steps)
    log_w = lw + jax.vmap(logdensity)(x) - _gauss_logpdf(x, path.terminal_scale)
    return x, log_w, ess_path.at[-1].set(ess(jax.lax.stop_gradient(log_w)))
