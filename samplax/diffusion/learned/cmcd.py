"""Controlled Monte Carlo diffusions (CMCD) and sequential controlled Langevin diffusions (SCLD).

CMCD (Vargas, Padhy, Blessing & Nuesken 2024, arXiv 2307.01050) anneals along the geometric path
gamma_k = (1 - beta_k) log r + beta_k log pi~, k = 0..K (r = N(m, diag s^2) normalised, beta_0 = 0, beta_K = 1), with
the Euler-Maruyama transitions of  dX = (sigma_t^2 grad gamma_t(X) + u(X, t)) dt + sigma_t sqrt(2) dW:

  forward  F_k(x_{k+1} | x_k) = N(x_k + dt sigma_k^2 (grad gamma_{k+1}(x_k) + u(x_k, t_k)), 2 sigma_k^2 dt),
  backward B_k(x_k | x_{k+1}) = N(x_{k+1} + dt sigma_k^2 (grad gamma_{k+1}(x_{k+1}) - u(x_{k+1}, t_{k+1})), same),

and the importance weight of a path x_0 ~ r, x_{k+1} ~ F_k,

    log w = log pi~(x_K) - log r(x_0) + sum_k [log B_k(x_k | x_{k+1}) - log F_k(x_{k+1} | x_k)],

exact for any u, beta, sigma, r (E[w] = Z with no discretisation bias; the Gaussian normalisers cancel because F_k and
B_k share their variance). With u = 0 and a sampler exactly reversible for gamma_{k+1} this is the AIS weight
prod_k gamma_{k+1}(x_k) / gamma_k(x_k); with ULA kernels it is Doucet et al.'s (2022) MCD/ULA-AIS weight.

SCLD (Chen, Richter, Berner, Blessing, Neumann & Anandkumar 2025, arXiv 2412.07081) cuts the K steps into S
sub-trajectories and runs an SMC sampler over the boundaries k_s = s K / S: the sub-trajectory's incremental weight
    log G_s = gamma_{k_{s+1}}(x_end) - gamma_{k_s}(x_start) + sum_{k in s} [log B_k - log F_k]
reweights the particles, which are resampled when the ESS falls below a threshold and moved by MALA steps (or HMC
moves, mcmc_kernel="hmc", with L leapfrog steps and optionally a widely spread random step; or, when sampling only,
AutoStep HMC moves whose step is doubled or halved per state, mcmc_kernel="autostep") that leave
gamma_{k_{s+1}} invariant; log Z is the sum of the SMC increments log sum_i W_i G_s,i. S = 1 without moves is CMCD.
Each population also reports its own variance of log Z (stage_stats["log_z_var_increment"]: per resampling epoch the
delta-method term (N / ESS - 1) / N of the epoch's weights, or with multinomial resampling Lee & Whiteley's estimate
over the initial ancestors), which `sample()` pools into log_z_se.
A target of bounded support (log pi~ = -inf outside): the weights telescope over the boundaries (a path outside at a
boundary but inside at the end keeps its exact weight), so CMCD and SCLD without resampling or moves stay unbiased;
with them the boundary targets are truncated and the Gaussian backward kernels' mass outside the support is missed,
so SCLD's log Z is biased low there (measured -0.12 on N(0, 1) restricted to x > 0, untrained, S = 2, K = 8). The
particles outside the support at such a boundary are counted (stage_stats["n_outside_support"]) and the run's check
says the log Z is biased low when there are any.

Training, as in both papers' code (DenisBless/variational_sampling_methods, anonymous3141/SCLD): the log-variance
loss (paths detached, variance over the batch of log w -- for SCLD the mean over sub-trajectories of the variance of
log G_s) or the reverse KL -E[log w] (SCLD: -sum_s sum_i W_i log G_s,i, the SMC ELBO; paths reparametrised inside a
sub-trajectory, detached at the boundaries). Learned with u: the annealing schedule beta (softplus increments), the
diffusion scale and optionally the reference's mean and scale. One departure from that code: u's input
grad log pi~(x) is not detached, since with reparametrised paths detaching it biases the KL gradient (CMCD-KL's loss
rose after ~100 iterations on Funnel-10d; see `_segment`). For CMCD the KL gradient can also be the log-derivative
(score-function) estimate on detached paths (kl_gradient="log_derivative"; Sanokowski et al. 2025, arXiv 2506.10982,
"rKL-LD"), which needs no Hessian-vector products.
"""

from __future__ import annotations

import dataclasses
import pathlib
import time
import warnings
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.scipy.special import logsumexp

from samplax import checks
from samplax.checks import integer as _int, positive as _pos
from samplax.checkpoint import target_fingerprint
from samplax.diffusion.learned import affine, resume as ckpt
from samplax.diffusion.learned.network import Control
from samplax.diffusion.learned.sampler import read_model, refuse_unknown, write_model
from samplax.particles import base, temperatures
from samplax.particles.resampling import check_threshold, scheme
from samplax.particles.state import ess, eve_log_z_variance_per_stage, log_z_var
from samplax.samplers.smc_kernels import check_step_spread, step_factors
from samplax.diffusion.learned.checks import finite_loss, training_bar

KINDS = ("cmcd", "scld")
LOSSES = ("log_variance", "kl")
KL_GRADIENTS = ("log_derivative", "reparam")
SCHEDULES = ("cosine", "constant")
# initial annealing temperatures beta_k: "linear" k / K; "cubic" (k / K)^3, dense near the reference, where
# log(pi~ / r) changes fastest when r is much wider than pi~'s modes (GMM40-50d with r = N(0, 40^2): untrained SCLD
# log Z error -693 linear, -1.8 cubic, benchmarks/README "Learned diffusion samplers"); as tempered SMC's
# (k / S)^3 in benchmarks/diffusion_learned.py; "two_ended" samplax.particles.temperatures.two_ended(K): (k / h)^3 / 2
# up to 1/2, then 1 - beta geometric towards beta_tail (1e-3; reached at beta_K = 1), dense at both ends (a
# funnel's wide end opens only as beta -> 1).
# The increments are learned from there when learn_betas.
BETA_INITS = ("linear", "cubic", "two_ended")
LR_SCHEDULES = ("cosine", "constant")
FORMAT = "samplax-controlled-smc/1"
# beta and reference parameters are stored divided by this factor, so one Adam learning rate moves them
# this many times faster than the network weights (both reference codes use a 10x larger rate for the schedule)
SCHEDULE_LR_MULT = 10.0
MALA_TARGET_ACCEPTANCE = 0.57
HMC_TARGET_ACCEPTANCE = 0.65
MCMC_KERNELS = ("mala", "hmc", "autostep")  # autostep: sampling only (as_population_sampler), see _moves
HMC_JITTER = 0.5  # each particle and move draws its step in [1 - j, 1 + j] x h (as samplax.samplers.smc_kernels)


class CMCDModel(eqx.Module):
    """Everything that is learned: the control u and the schedule / reference parameters (raw, see SCHEDULE_LR_MULT)."""

    control: Control
    beta_raw: jax.Array  # (K,) softplus(mult * raw) are the beta increments
    log_diffusion_raw: jax.Array  # () sigma_k = exp(raw) * shape_k (shape_k from sigma_max, sigma_min)
    prior_mean_raw: jax.Array  # (d,)
    prior_log_std_raw: jax.Array  # (d,) log s = log sigma + mult * raw


def new_model(config: dict, key) -> CMCDModel:
    d, K = config["dim"], config["num_steps"]
    dtype = jnp.dtype(config["dtype"])
    c = Control(d, key, config["width"], config["depth"], config["num_freqs"], config["clip"], config["sigma"])
    c = jax.tree.map(lambda v: v.astype(dtype) if eqx.is_inexact_array(v) else v, c)
    return CMCDModel(c, jnp.asarray(initial_beta_raw(config), dtype), jnp.zeros((), dtype), jnp.zeros((d,), dtype),
                     jnp.zeros((d,), dtype))


def initial_beta_raw(config: dict) -> np.ndarray:
    """(K,) raw parameters whose softplus(SCHEDULE_LR_MULT * raw) increments give config["beta_init"]'s betas
    (zeros, i.e. equal increments, for "linear"; configs saved before the option are linear)."""
    K, init = config["num_steps"], config.get("beta_init", "linear")
    if init == "linear":
        return np.zeros(K)
    b = temperatures.cubic(K) if init == "cubic" else temperatures.two_ended(K, config.get("beta_tail", 1e-3))
    inc = np.diff(b) * K * np.log(2.0)  # mean log 2, as softplus(0)
    return np.log(np.expm1(inc)) / SCHEDULE_LR_MULT


def _maybe_stop(v, learn: bool):
    return v if learn else jax.lax.stop_gradient(v)


def betas(model: CMCDModel, config: dict):
    """(K + 1,) annealing temperatures, 0 = beta_0 < ... < beta_K = 1."""
    inc = jax.nn.softplus(SCHEDULE_LR_MULT * _maybe_stop(model.beta_raw, config["learn_betas"]))
    b = jnp.cumsum(inc) / jnp.sum(inc)
    return jnp.concatenate([jnp.zeros((1,), b.dtype), b.at[-1].set(1.0)])


def diffusion_shape(config: dict) -> np.ndarray:
    """(K,) the fixed shape of sigma_k; 'cosine': the reference code's schedule (large early, ~sigma_min at the end)."""
    K, smax, smin = config["num_steps"], config["sigma_max"], config["sigma_min"]
    if config["diffusion_schedule"] == "constant":
        return np.full(K, smax)
    s = 0.008
    t = (K - np.arange(K)) / K
    return (smax - smin) * np.cos(0.5 * np.pi * (1 + s - t) / (1 + s)) ** 2 + smin


def diffusions(model: CMCDModel, config: dict):
    # no learning-rate multiplier here: at 10x the network's rate the log-variance loss drove sigma up until the
    # Euler-Maruyama steps went unstable (sigma 1.5 -> 10 in 40 iterations, weights exploding, on the test mixture)
    scale = jnp.exp(_maybe_stop(model.log_diffusion_raw, config["learn_diffusion"]))
    return scale * jnp.asarray(diffusion_shape(config))


def prior(model: CMCDModel, config: dict):
    """(mean (d,), std (d,)) of the reference r."""
    learn = config["learn_prior"]
    mean = SCHEDULE_LR_MULT * _maybe_stop(model.prior_mean_raw, learn)
    std = config["sigma"] * jnp.exp(SCHEDULE_LR_MULT * _maybe_stop(model.prior_log_std_raw, learn))
    return mean, std


def _tempered(b, log_r, lp):
    """(1 - b) log r + b log pi~ with b log pi~ = 0 at b = 0: outside the target's support (log pi~ = -inf) the
    reference end of the path is finite, where 0 * -inf would be NaN."""
    return (1.0 - b) * log_r + jnp.where(b == 0, 0.0, b * lp)


def _ref_logpdf(x, mean, std):
    z = (x - mean) / std
    return jnp.sum(-0.5 * z**2 - jnp.log(std) - 0.5 * jnp.log(2 * jnp.pi), axis=-1)


def boundaries(num_steps: int, num_subtrajectories: int) -> np.ndarray:
    if num_steps % num_subtrajectories:
        raise ValueError(f"num_steps={num_steps} must be a multiple of num_subtrajectories={num_subtrajectories}")
    return np.arange(num_subtrajectories + 1) * (num_steps // num_subtrajectories)


# ------------------------------------------------------------------------------------------------ simulation
def _segment(model, config, logdensity, key, x, lp, g, k0: int, L: int, detach: bool):
    """Move particles (n, d) with log pi~ values lp and gradients g through steps k0..k0+L-1.

    Returns (x, lp, g, log_G (n,), log_F (n,), (kernels, end)): log_G = gamma_{k0+L}(x_end) - gamma_{k0}(x_start) +
    kernels, kernels = sum [log B - log F], end = gamma_{k0+L}(x_end) (the parts, for weights that telescope over
    boundaries where gamma_{k0}(x_start) = -inf),
    log_F = sum log F_k(x_{k+1} | x_k) with its normaliser (up to the 2 pi constant): the model's log-likelihood of the
    path, whose gradient the log-derivative KL estimator needs.
    detach: stop gradients through the positions (log-variance, log-derivative KL); else reparametrised (KL).
    """
    K = config["num_steps"]
    b, sig = betas(model, config), diffusions(model, config)
    mean0, std0 = prior(model, config)
    dt = 1.0 / K
    vg = jax.vmap(jax.value_and_grad(logdensity))
    ctrl = jax.vmap(model.control, in_axes=(0, None, 0))

    def grad_ref(x):
        return -(x - mean0) / std0**2

    def gamma(k, x, lp):
        return _tempered(b[k], _ref_logpdf(x, mean0, std0), lp)

    # u's score input is the target's score, not the annealed one, so u(x_{k+1}, t_{k+1}) of step k's backward
    # kernel is also step k+1's forward control: one network evaluation per step instead of two.
    # The score input is NOT detached (the reference codes detach it): with reparametrised paths (KL) u(x, t,
    # grad log pi~(x)) depends on x also through the score, and dropping that term biases the gradient. On
    # Funnel-10d (K = 32) the detached gradient agreed with the exact one at u = 0 but 5x its size after 150
    # iterations, and KL training climbed back (loss -8.8 -> -6.2); with detached paths (log-variance,
    # log-derivative KL) the score is a constant feature and detaching it changes nothing.
    def body(carry, k):
        x, lp, g, u, acc, logf = carry
        beta, s = b[k + 1], sig[k]
        var = 2.0 * s**2 * dt
        score = (1.0 - beta) * grad_ref(x) + beta * g
        mean_f = x + s**2 * dt * (score + u)
        x_new = mean_f + jnp.sqrt(var) * jax.random.normal(jax.random.fold_in(key, k), x.shape)
        if detach:
            x_new = jax.lax.stop_gradient(x_new)
        lp_new, g_new = vg(x_new)
        score_new = (1.0 - beta) * grad_ref(x_new) + beta * g_new
        u_new = ctrl(x_new, (k + 1) / K, g_new)
        mean_b = x_new + s**2 * dt * (score_new - u_new)
        acc = acc + jnp.sum((x_new - mean_f) ** 2 - (x - mean_b) ** 2, axis=-1) / (2.0 * var)
        logf = logf - jnp.sum((x_new - mean_f) ** 2, axis=-1) / (2.0 * var) - 0.5 * x.shape[-1] * jnp.log(var)
        return (x_new, lp_new, g_new, u_new, acc, logf), None

    start = gamma(k0, x, lp)
    u0 = ctrl(x, k0 / K, g)
    zero = jnp.zeros(x.shape[:1], x.dtype)
    (x, lp, g, _, acc, logf), _ = jax.lax.scan(body, (x, lp, g, u0, zero, zero), k0 + jnp.arange(L))
    end = gamma(k0 + L, x, lp)
    return x, lp, g, end - start + acc, logf, (acc, end)


def mcmc_kernel(config: dict) -> tuple[str, int]:
    """(kernel, leapfrog steps L) of the boundary moves; configs written before the HMC option are MALA."""
    kern = config.get("mcmc_kernel", "mala")
    return kern, (int(config.get("mcmc_leapfrog", 1)) if kern in ("hmc", "autostep") else 1)


def grads_per_move(config: dict) -> int | None:
    """Target gradient evaluations per particle of one boundary move: 1 for MALA, L for HMC; None for autostep,
    whose moves count their own (each move's searches vary)."""
    kern, L = mcmc_kernel(config)
    return None if kern == "autostep" else L


def _moves(model, config, logdensity, key, x, lp, g, W, k: int, h, num_moves: int, keep: bool = False):
    """num_moves MCMC moves leaving gamma_k invariant, preconditioned by the weighted particle sd (diagonal).

    config["mcmc_kernel"] "mala" (default): MALA, the step h (relative to the sd) steered towards 0.57 acceptance
    after each sweep. "hmc": HMC with config["mcmc_leapfrog"] = L leapfrog steps of size eps_i = h U_i, U_i ~
    U[0.5, 1.5] drawn per particle and move (a state-independent random step keeps the kernel invariant and avoids
    the near-periodic trajectories of a fixed step), mass diag(1 / sd^2), h steered towards 0.65 acceptance.
    config["mcmc_step_spread"] = R > 1 (HMC): eps_i log-uniform in [h / R, h R] instead, so that some particles
    take steps small enough for a narrow region (a funnel's neck, where one shared step is rejected every time)
    and some large enough for a wide one; still a state-independent step, so still invariant. "autostep"
    (sampling only): HMC with L leapfrog steps whose step is doubled or halved per state (_autostep_moves).
    Returns (x, lp, g, h, acceptance, gradients of all particles' moves); keep=True (MALA / HMC): x, lp, g are the
    states before and after every sweep, stacked (num_moves + 1, n, ...), for waste-free chains."""
    kern, L = mcmc_kernel(config)
    spread = float(config.get("mcmc_step_spread", 1.0))
    b = betas(model, config)[k]
    mean0, std0 = prior(model, config)
    vg = jax.vmap(jax.value_and_grad(logdensity))
    m = jnp.sum(W[:, None] * x, axis=0)
    c = jnp.sqrt(jnp.sum(W[:, None] * (x - m) ** 2, axis=0)) + 1e-8 * jnp.std(x) + 1e-12

    def logg(x, lp):
        return _tempered(b, _ref_logpdf(x, mean0, std0), lp)

    def score(x, g):
        return (1.0 - b) * (-(x - mean0) / std0**2) + b * g

    def mala_sweep(carry, i):
        x, lp, g, h, _ = carry
        kx, ka = jax.random.split(jax.random.fold_in(key, i))
        sx = score(x, g)
        y = x + h * c**2 * sx + jnp.sqrt(2 * h) * c * jax.random.normal(kx, x.shape)
        lp_y, g_y = vg(y)
        sy = score(y, g_y)

        def logq(to, frm, s):  # log N(to; frm + h c^2 s, 2 h c^2) up to the shared constant
            return -jnp.sum((to - frm - h * c**2 * s) ** 2 / (4 * h * c**2), axis=-1)

        log_a = logg(y, lp_y) - logg(x, lp) + logq(x, y, sy) - logq(y, x, sx)
        return accept(ka, x, lp, g, y, lp_y, g_y, log_a, h, MALA_TARGET_ACCEPTANCE)

    def hmc_sweep(carry, i):
        x, lp, g, h, _ = carry
        kp, ke, ka = jax.random.split(jax.random.fold_in(key, i), 3)
        r0 = jax.random.normal(kp, x.shape)  # whitened momentum: x = c z, r conjugate to z
        # log-uniform in [h / spread, h spread] (some steps small enough for narrow regions, some large enough for
        # wide ones), else jittered in [1 - j, 1 + j] x h: smc_kernels.step_factors, SMC's rule
        eps = (h * step_factors(ke, x.shape[0], x.dtype, HMC_JITTER, spread))[:, None]

        def leap(state, _):
            y, lp_y, g_y, r = state
            r = r + 0.5 * eps * c * score(y, g_y)
            y = y + eps * c * r
            lp_y, g_y = vg(y)
            r = r + 0.5 * eps * c * score(y, g_y)
            return (y, lp_y, g_y, r), None

        (y, lp_y, g_y, r), _ = jax.lax.scan(leap, (x, lp, g, r0), None, length=L)
        log_a = logg(y, lp_y) - logg(x, lp) - 0.5 * jnp.sum(r**2 - r0**2, axis=-1)
        return accept(ka, x, lp, g, y, lp_y, g_y, log_a, h, HMC_TARGET_ACCEPTANCE)

    def accept(ka, x, lp, g, y, lp_y, g_y, log_a, h, target_rate):
        log_a = jnp.where(jnp.isnan(log_a), -jnp.inf, log_a)
        acc = jnp.log(jax.random.uniform(ka, lp.shape)) < log_a
        x = jnp.where(acc[:, None], y, x)
        lp = jnp.where(acc, lp_y, lp)
        g = jnp.where(acc[:, None], g_y, g)
        rate = jnp.mean(acc.astype(x.dtype))
        return (x, lp, g, h * jnp.exp(2.0 * (rate - target_rate)), rate), ((x, lp, g) if keep else None)

    if kern == "autostep":
        return _autostep_moves(logdensity, key, x, lp, g, h, num_moves, L, c, logg, score)
    sweep = hmc_sweep if kern == "hmc" else mala_sweep
    start = (x, lp, g)
    (x, lp, g, h, rate), trace = jax.lax.scan(sweep, (x, lp, g, h, jnp.zeros((), x.dtype)), jnp.arange(num_moves))
    if keep:
        x, lp, g = (jnp.concatenate([a[None], b]) for a, b in zip(start, trace))
    return x, lp, g, h, rate, jnp.asarray(start[0].shape[0] * num_moves * L, jnp.int32)


def _autostep_moves(logdensity, key, x, lp, g, h, num_moves: int, L: int, c, logg, score):
    """num_moves AutoStep moves (samplax.samplers.autostep: HMC whose step h U, U ~ U[0.5, 1.5], is doubled or halved
    per state) in the coordinates z = x / c; h then follows the mean chosen log2 factor, as SMC's. The target's
    log-density and gradient at the final states are evaluated again (n gradients, counted). Returns (x, lp, g, h,
    acceptance, gradients of all particles)."""
    from blackjax.mcmc.hmc import HMCState

    from samplax.samplers import autostep

    kern = autostep.build_kernel(L)
    n = x.shape[0]

    def f(z):  # one particle's gamma_k in z
        y = c * z
        return logg(y[None], logdensity(y)[None])[0]

    st = HMCState(x / c, logg(x, lp), c * score(x, g))  # the kernel's state, built from what the particles carry

    def sweep(carry, i):
        st, h, acc, ng = carry
        kk, ke = jax.random.split(jax.random.fold_in(key, i))
        eps = h * step_factors(ke, n, x.dtype, HMC_JITTER)
        st, info = jax.vmap(lambda k, s, e: kern(k, s, f, e))(jax.random.split(kk, n), st, eps)
        h = h * jnp.exp(autostep.log_step_change(info))
        acc = acc + jnp.mean(info.is_accepted.astype(x.dtype))
        return (st, h, acc, ng + jnp.sum(info.n_grad).astype(jnp.int32)), None

    zero_i = jnp.zeros((), jnp.int32)
    (st, h, acc, ng), _ = jax.lax.scan(sweep, (st, h, jnp.zeros((), x.dtype), zero_i), jnp.arange(num_moves))
    x = c * st.position
    lp, g = jax.vmap(jax.value_and_grad(logdensity))(x)
    return x, lp, g, h, acc / max(num_moves, 1), (ng + n).astype(jnp.int32)


def simulate(model, config, logdensity, key, n: int, *, detach: bool, num_subtrajectories: int | None = None,
             ess_threshold: float | None = None, mcmc_steps: int | None = None, resampling: str = "multinomial",
             waste_free: int | None = None):
    """Run one population of n particles through the S sub-trajectories (S = 1, no moves: CMCD).

    Returns a dict: x (n, d), log_w (n,) final unnormalised log weights, log_z, log_G (S, n) the sub-trajectories'
    incremental log weights, W (S, n) the normalised weights before each increment, and per-stage statistics.
    Resampling and moves happen at the inner boundaries only (the caller resamples at the end).
    waste_free=P (sampling only; MALA / HMC moves): at every inner boundary M = ceil(n / P) ancestors are resampled
    and each runs a chain of P states (P - 1 moves, the preconditioner fixed from the ancestors); the first n of the
    M P states, equally weighted, are the particles (Dau & Chopin 2022's waste-free SMC). mcmc_steps is then unused.
    """
    K, d = config["num_steps"], config["dim"]
    S = config["num_subtrajectories"] if num_subtrajectories is None else num_subtrajectories
    thr = config["ess_threshold"] if ess_threshold is None else ess_threshold
    moves = config["mcmc_steps"] if mcmc_steps is None else mcmc_steps
    bounds = boundaries(K, S)
    L = int(bounds[1] - bounds[0])
    mean0, std0 = prior(model, config)
    k0, key = jax.random.split(key)
    x = mean0 + std0 * jax.random.normal(k0, (n, d))  # reparametrised too: a learned prior's KL gradient needs it
    if detach:
        x = jax.lax.stop_gradient(x)
    log_r0 = _ref_logpdf(x, mean0, std0)  # depends on the model only through a learned prior
    lp, g = jax.vmap(jax.value_and_grad(logdensity))(x)
    lw = jnp.zeros((n,), x.dtype)
    # running log weights lw = A + gamma_k(x) with A = the kernels' log-ratios since the last resampling minus gamma
    # at that point: the intermediate gammas telescope, so a path outside the target's support at a boundary
    # (gamma = -inf there) but back inside at the end keeps its exact weight instead of -inf - (-inf) = NaN
    A = -jax.lax.stop_gradient(log_r0)
    h = jnp.asarray(config["mcmc_step_size"], x.dtype)
    nan = jnp.asarray(jnp.nan, x.dtype)
    b_all = jax.lax.stop_gradient(betas(model, config))

    def gamma_at(k, x, lp):
        m, sd = jax.lax.stop_gradient((mean0, std0))
        return _tempered(b_all[k], _ref_logpdf(x, m, sd), lp)

    def seg(carry, s):
        x, lp, g, lw, A, h, eve = carry
        ks, kr, km = jax.random.split(jax.random.fold_in(key, s), 3)
        W = jax.nn.softmax(jax.lax.stop_gradient(lw))
        x, lp, g, G, logF, (kern, end) = _segment(model, config, logdensity, ks, x, lp, g, s * L, L, detach)
        # the training losses' G of a particle of weight zero (gamma(x_start) = -inf): -inf, not NaN (W = 0 there)
        G = jnp.where(jnp.isneginf(jax.lax.stop_gradient(lw)), -jnp.inf, G)
        A = jax.lax.stop_gradient(A + kern)
        lw_new = jax.lax.stop_gradient(A + end)
        # log sum W G = the change of log sum exp(lw) (equal where gamma(x_start) is finite)
        inc = logsumexp(lw_new) - logsumexp(jax.lax.stop_gradient(lw))
        lw = lw_new
        e, lw_end = ess(lw), lw
        x, lp, g = jax.lax.stop_gradient((x, lp, g))
        inner = s + 1 < S
        do = inner & (e < thr * n) if (thr > 0 and not waste_free) else jnp.array(False)
        idx = scheme(resampling)(kr, jax.nn.softmax(lw), n)
        x, lp, g, lw, A, eve = jax.tree.map(
            lambda a, b: jnp.where(do, a, b),
            (x[idx], lp[idx], g[idx], jnp.zeros_like(lw), -jax.lax.stop_gradient(end)[idx], eve[idx]),
            (x, lp, g, lw, A, eve))
        k_end = (s + 1) * L
        if waste_free:
            def move_wf(args):
                x, lp, g, lw, h = args
                M = -(-n // waste_free)
                ka, kc = jax.random.split(km)
                idx = scheme(resampling)(ka, jax.nn.softmax(lw), M)
                xs, lps, gs, h, rate, ng = _moves(model, config, logdensity, kc, x[idx], lp[idx], g[idx],
                                                  jnp.full((M,), 1.0 / M, x.dtype), (s + 1) * L, h, waste_free - 1,
                                                  keep=True)
                x, lp, g = (a.reshape((-1,) + a.shape[2:])[:n] for a in (xs, lps, gs))
                return jax.lax.stop_gradient((x, lp, g)) + (jnp.zeros_like(lw), h, rate, ng)

            def stay(args):
                return args + (nan, jnp.zeros((), jnp.int32))

            x, lp, g, lw, h, rate, ng = jax.lax.cond(inner, move_wf, stay, (x, lp, g, lw, h))
            A = jnp.where(inner, -gamma_at(k_end, x, lp), A)  # equally weighted states of gamma_k: lw = 0
            do = do | inner
        elif moves > 0:
            def move(args):
                x, lp, g, h = args
                x, lp, g, h, rate, ng = _moves(model, config, logdensity, km, x, lp, g, jax.nn.softmax(lw),
                                              (s + 1) * L, h, moves)
                return jax.lax.stop_gradient((x, lp, g)) + (h, rate, ng)

            x, lp, g, h, rate, ng = jax.lax.cond(inner, move, lambda a: a + (nan, jnp.zeros((), jnp.int32)),
                                                 (x, lp, g, h))
            # moves leave gamma_k invariant: the weights stay, A follows the new gamma_k(x) (a weight-zero particle
            # stays at zero)
            A = jnp.where(jnp.isneginf(lw), -jnp.inf, lw - gamma_at(k_end, x, lp))
        else:
            rate, ng = nan, jnp.zeros((), jnp.int32)
        # the population's variance of log Z: one delta-method term per resampling epoch (its accumulated weights
        # before the resampling, or at the end), summed over the stages by samplax.particles.results
        var = jnp.where(do | ~inner, log_z_var(lw_end), jnp.zeros((), lw_end.dtype))
        # particles outside the target's support (weight zero) at an inner boundary where SCLD resamples or moves:
        # the boundary target is truncated there and log Z is biased low (module docstring); the run's check says so
        truncating = inner & (do | (moves > 0) | bool(waste_free))
        n_out = jnp.where(truncating, jnp.sum(jnp.isneginf(lw_end)), 0).astype(jnp.int32)
        row = {"ess": e, "log_z_increment": jax.lax.stop_gradient(inc), "resampled": do, "acceptance_rate": rate,
               "n_grad_moves": ng, "log_z_var_increment": var, "n_outside_support": n_out}
        return (x, lp, g, lw, A, h, eve), (G, logF, W, inc, row)

    # eve: each particle's ancestor among the n initial draws (the resamplings' lineages; waste-free's are not tracked)
    (x, lp, g, lw, A, h, eve), (log_G, log_F, Ws, incs, stats) = jax.lax.scan(
        seg, (x, lp, g, lw, A, h, jnp.arange(n)), jnp.arange(S))
    if resampling == "multinomial" and not waste_free and thr > 0:
        # Lee & Whiteley's estimate over the initial ancestors (state.eve_log_z_variance; floored by the per-epoch
        # sum): the per-epoch terms alone ignore the ancestry the epochs share (z of sd 1.68 without moves)
        var = eve_log_z_variance_per_stage(jax.lax.stop_gradient(lw), eve, jnp.sum(stats["resampled"]),
                                           stats["log_z_var_increment"])
        stats = {**stats, "log_z_var_increment": var}
    gm = grads_per_move(config)
    # autostep and waste-free chains: stats["n_grad_moves"] (waste-free: ceil(n / P) (P - 1) L per boundary)
    per_particle = None if (gm is None or waste_free) else K + 1 + (S - 1) * moves * gm
    return {"x": x, "log_w": lw, "log_z": jnp.sum(incs), "log_G": log_G, "log_F": log_F, "log_r0": log_r0,
            "W": Ws, "stats": stats,
            "grads_per_particle": per_particle, "bounds": bounds, "moves": moves}


def loss_fn(model, config, logdensity, key, batch_size: int):
    """(loss, log Z estimate of the batch). See the module docstring and `_loss`."""
    value, (log_z, _) = _loss(model, config, logdensity, key, batch_size)
    return value, log_z


def _loss(model, config, logdensity, key, batch_size: int):
    """(loss, (log Z estimate of the batch, its sub-trajectory log-weights log_G (S, n), detached)).

    KL with kl_gradient="log_derivative" (CMCD): the value is the reverse KL -mean(log w) + const, and its gradient
    is the score-function (REINFORCE) estimate on detached paths,
        grad E_P[-log w] = E_P[-grad log w] + E_P[(-log w) grad log P],
    log P = log r(x_0) + sum_k log F_k the path's log-likelihood under the model, with the leave-one-out batch mean of
    -log w as baseline (unbiased). No gradient runs through the target's Hessian or the chain's Jacobians.
    """
    loss = config["loss"]
    reparam = loss == "kl" and config.get("kl_gradient", "reparam") == "reparam"
    out = simulate(model, config, logdensity, key, batch_size, detach=not reparam)
    G = out["log_G"]
    if loss == "log_variance":
        value = jnp.mean(jnp.var(G, axis=1))
    elif reparam:
        value = -jnp.sum(out["W"] * G)
    else:  # log-derivative estimator (CMCD: one sub-trajectory, uniform weights)
        f = -G[0]
        n = f.shape[0]
        coef = jax.lax.stop_gradient(n / (n - 1) * (f - jnp.mean(f)))  # f_i minus the mean of the others
        log_p = out["log_r0"] + out["log_F"][0]
        surrogate = jnp.mean(coef * log_p)
        value = jnp.mean(f) + surrogate - jax.lax.stop_gradient(surrogate)
    return value, jax.lax.stop_gradient((out["log_z"], G))


# ------------------------------------------------------------------------------------------------ trained object
@dataclasses.dataclass(frozen=True, eq=False)
class ControlledSampler:
    """A trained CMCD / SCLD sampler. `samplax.sample(target, trained, num_particles=N, num_chains=C)` runs C
    independent populations of N particles; each population's log Z is its (SMC) estimate, unbiased for Z."""

    model: CMCDModel
    config: dict[str, Any]
    history: np.ndarray  # loss per iteration

    @property
    def kind(self) -> str:
        return self.config["kind"]

    def as_population_sampler(self, num_subtrajectories: int | None = None, ess_threshold: float | None = None,
                              mcmc_steps: int | None = None, resampling: str = "systematic",
                              mcmc_kernel: str | None = None, mcmc_leapfrog: int | None = None,
                              mcmc_step_size: float | None = None,
                              mcmc_step_spread: float | None = None,
                              waste_free: int | None = None, **unknown) -> base.PopulationSampler:
        """Sampling settings default to the training ones; SCLD's boundaries can be changed (S must divide K), and
        its boundary moves (mcmc_kernel "mala" / "hmc" / "autostep", mcmc_leapfrog, mcmc_step_spread, the initial
        mcmc_step_size). With "autostep" the moves count their own gradients (stage_stats n_grad) and
        settings["grads_per_particle"] is None. waste_free=P (MALA / HMC): at every inner boundary resample
        ceil(N / P) ancestors and run each as a chain of P states, keeping the first N states (`simulate`); it
        replaces mcmc_steps, and the moves count their own gradients as autostep's. resampling="multinomial" (not
        waste-free): log_z_se from Lee & Whiteley's estimate over the initial ancestors; otherwise one term per
        resampling epoch, fine with moves (z of sd 1.10 on a 2-d Gaussian resampling at most boundaries) and too
        small without them (1.68: warned)."""
        refuse_unknown(f"sampling a trained {self.kind} sampler", unknown, ControlledSampler.as_population_sampler)
        c = dict(self.config)
        c.setdefault("mcmc_kernel", "mala")
        c.setdefault("mcmc_leapfrog", 1)
        if mcmc_kernel is not None:
            c["mcmc_kernel"] = _kernel(mcmc_kernel)
            if mcmc_step_size is None and mcmc_kernel != self.config.get("mcmc_kernel", "mala"):
                c["mcmc_step_size"] = _default_step(mcmc_kernel, c["dim"])
        if mcmc_leapfrog is not None:
            c["mcmc_leapfrog"] = _int("mcmc_leapfrog", mcmc_leapfrog, 1)
        if mcmc_step_size is not None:
            c["mcmc_step_size"] = _pos("mcmc_step_size", mcmc_step_size)
        c["mcmc_step_spread"] = _spread(c["mcmc_kernel"], c.get("mcmc_step_spread", 1.0) if mcmc_step_spread is None
                                        else mcmc_step_spread)
        S = c["num_subtrajectories"] if num_subtrajectories is None else _int("num_subtrajectories",
                                                                             num_subtrajectories, 1)
        boundaries(c["num_steps"], S)
        thr = c["ess_threshold"] if ess_threshold is None else check_threshold(ess_threshold)
        moves = c["mcmc_steps"] if mcmc_steps is None else _int("mcmc_steps", mcmc_steps, 0)
        if waste_free is not None:
            waste_free = _int("waste_free", waste_free, 2)
            if c["mcmc_kernel"] == "autostep":
                raise ValueError("waste_free runs MALA / HMC chains; mcmc_kernel='autostep' is not supported with it")
            if S < 2:
                raise ValueError(f"waste_free moves happen at inner boundaries: num_subtrajectories must be >= 2, "
                                 f"got {S}")
            if mcmc_steps is not None:
                raise ValueError("waste_free=P replaces mcmc_steps (each chain makes P - 1 moves): pass one of them")
            moves = 0  # recorded as such: the chains' moves are counted in stage_stats n_grad
        scheme(resampling)
        if S > 1 and thr > 0 and moves == 0 and not waste_free and resampling != "multinomial":
            warnings.warn(
                f"{self.kind}: resampling={resampling!r} without moves (mcmc_steps=0): log_z_se then sums one term "
                "per resampling epoch and ignores the ancestry the epochs share, so it is too small (z-scores of sd "
                "1.68 measured when resampling at most boundaries); resampling='multinomial' gives Lee & Whiteley's "
                "variance estimate, which is calibrated (sd 1.01)", UserWarning, stacklevel=2)
        model, dim, K = self.model, c["dim"], c["num_steps"]

        def run(target_or_model, key, num_particles, progress):
            from samplax.particles.run import as_target

            target = as_target(target_or_model)
            if target.dim != dim:
                raise ValueError(f"this {self.kind} sampler was trained for dim {dim}, the target has dim {target.dim}")
            k_run, k_res = jax.random.split(key)
            out = simulate(model, c, target.logdensity, k_run, num_particles, detach=True, num_subtrajectories=S,
                           ess_threshold=thr, mcmc_steps=moves, resampling=resampling, waste_free=waste_free)
            idx = scheme(resampling)(k_res, jax.nn.softmax(out["log_w"]), num_particles)
            bounds = out["bounds"]
            per_stage = np.full(S, num_particles * (bounds[1] - bounds[0]))
            per_stage[0] += num_particles  # the gradient at x_0
            moved = out["stats"].pop("n_grad_moves")  # (S,) the moves' own counts, all particles (0 at the end)
            b = betas(model, c)
            stats = {"time": jnp.asarray(bounds[1:] / K), "temperature": b[jnp.asarray(bounds[1:])],
                     **out["stats"], "n_grad": base.stage_counts(per_stage) + moved}
            return base.Population(out["x"][idx], out["log_z"], stats, jnp.sum(stats["n_grad"]))

        gm = grads_per_move(c)  # None for autostep: its moves count their own gradients (stage_stats n_grad)
        settings = {**c, "num_subtrajectories": S, "ess_threshold": thr, "mcmc_steps": moves, "resampling": resampling,
                    "waste_free": waste_free,
                    "grads_per_particle": None if (gm is None or waste_free) else
                    c["num_steps"] + 1 + (S - 1) * moves * gm}
        return affine.wrap(base.PopulationSampler(f"{self.kind}[{c['loss']}]", run, settings, "time"), c)

    def save(self, path) -> pathlib.Path:
        """One file: a JSON header line (config, history) then equinox's serialised leaves of the model."""
        return write_model(path, FORMAT, self.config, np.asarray(self.history).tolist(), self.model)


def load_controlled(path) -> ControlledSampler:
    """Reload a sampler written by `ControlledSampler.save`."""
    header, model = read_model(path, FORMAT, "controlled-SMC", lambda config: new_model(config, jax.random.PRNGKey(0)))
    return ControlledSampler(model, header["config"], np.asarray(header["history"]))


# ------------------------------------------------------------------------------------------------ training
def _optimizer(config):
    """Adam behind global-norm gradient clipping; 'cosine': linear warm-up over 5% of the iterations, then cosine
    decay to 10% of the learning rate; 'constant'."""
    lr, n = config["learning_rate"], config["num_iterations"]
    if config["lr_schedule"] == "cosine":
        warm = max(1, n // 20)
        sched = optax.warmup_cosine_decay_schedule(0.1 * lr, lr, warm, max(n, warm + 1), 0.1 * lr)
    else:
        sched = optax.constant_schedule(lr)
    return optax.chain(optax.clip_by_global_norm(config["grad_clip_norm"]), optax.adam(sched))


def _kernel(name: str) -> str:
    if not checks.member(name, MCMC_KERNELS):
        raise ValueError(f"mcmc_kernel must be one of {MCMC_KERNELS}, got {name!r}")
    return name


def _spread(kernel: str, spread: float) -> float:
    return check_step_spread(spread, kernel, "mcmc_step_spread", "mcmc_kernel")


def _default_step(kernel: str, dim: int) -> float:
    """Optimal-scaling orders for a unit-variance target (relative to the particle sd); adapted from there."""
    return 0.5 / dim ** (1 / 3) if kernel == "mala" else 0.5 / dim ** 0.25


def make_config(target, kind: str = "cmcd", loss: str = "log_variance", *, num_steps: int = 64,
                num_subtrajectories: int | None = None, num_iterations: int = 1000, batch_size: int = 256,
                learning_rate: float = 1e-3, lr_schedule: str = "cosine", seed: int = 0, sigma: float = 1.0,
                sigma_max: float = 1.0, sigma_min: float = 0.01, diffusion_schedule: str = "cosine",
                learn_betas: bool = True, beta_init: str = "linear", beta_tail: float = 1e-3,
                learn_diffusion: bool = True,
                learn_prior: bool = False, ess_threshold: float = 0.3, mcmc_steps: int | None = None,
                mcmc_step_size: float | None = None,
                mcmc_kernel: str = "mala", mcmc_leapfrog: int = 1, mcmc_step_spread: float = 1.0,
                width: int = 64, depth: int = 2, num_freqs: int = 8, clip: float = 100.0,
                grad_clip_norm: float = 1.0, kl_gradient: str | None = None) -> dict:
    """The validated settings of `train_controlled` as its config dict."""
    if not checks.member(kind, KINDS):
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if not checks.member(loss, LOSSES):
        raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
    if not checks.member(diffusion_schedule, SCHEDULES):
        raise ValueError(f"diffusion_schedule must be one of {SCHEDULES}, got {diffusion_schedule!r}")
    if not checks.member(lr_schedule, LR_SCHEDULES):
        raise ValueError(f"lr_schedule must be one of {LR_SCHEDULES}, got {lr_schedule!r}")
    if not checks.member(beta_init, BETA_INITS):
        raise ValueError(f"beta_init must be one of {BETA_INITS}, got {beta_init!r}")
    if loss != "kl" and kl_gradient is not None:
        raise ValueError(f"kl_gradient={kl_gradient!r} applies to loss='kl' only, this is loss={loss!r}")
    if loss == "kl":
        kl_gradient = "reparam" if kl_gradient is None else kl_gradient
        if not checks.member(kl_gradient, KL_GRADIENTS):
            raise ValueError(f"kl_gradient must be one of {KL_GRADIENTS}, got {kl_gradient!r}")
        if kind == "scld" and kl_gradient == "log_derivative":
            raise ValueError("kl_gradient='log_derivative' is implemented for kind='cmcd' only (SCLD's KL is the SMC "
                             "ELBO over resampled sub-trajectories); use kl_gradient='reparam' or "
                             "loss='log_variance' for scld")
    if num_subtrajectories is None:
        num_subtrajectories = 1 if kind == "cmcd" else 4
    if mcmc_steps is None:
        mcmc_steps = 0 if kind == "cmcd" else 1
    num_subtrajectories = _int("num_subtrajectories", num_subtrajectories, 1)
    if kind == "cmcd" and (num_subtrajectories != 1 or mcmc_steps != 0):
        raise ValueError("cmcd is one trajectory without moves (num_subtrajectories=1, mcmc_steps=0); use kind='scld'")
    num_steps = _int("num_steps", num_steps, 1)
    boundaries(num_steps, num_subtrajectories)
    if beta_init == "two_ended" and num_steps < 2:
        raise ValueError(f"beta_init='two_ended' needs num_steps >= 2, got num_steps={num_steps}")
    beta_tail = checks.scalar(beta_tail)
    if not checks.is_real(beta_tail) or not 0.0 < float(beta_tail) < 0.5:
        raise ValueError(f"beta_tail (the 1 - beta two_ended's geometric tail heads for) must be in (0, 0.5), got "
                         f"{beta_tail!r}")
    if beta_tail != 1e-3 and beta_init != "two_ended":
        raise ValueError(f"beta_tail applies to beta_init='two_ended' only, this is beta_init={beta_init!r}")
    mcmc_kernel = _kernel(mcmc_kernel)
    if mcmc_kernel == "autostep":
        raise ValueError("mcmc_kernel='autostep' is for sampling only (trained.as_population_sampler(mcmc_kernel="
                         "'autostep')): training's gradient budget is counted per path in advance, and autostep's "
                         "moves vary in cost; train with 'mala' or 'hmc'")
    if mcmc_step_size is None:
        mcmc_step_size = _default_step(mcmc_kernel, target.dim)
    config = {
        "kind": kind, "loss": loss, "dim": target.dim, "num_steps": num_steps,
        "num_subtrajectories": num_subtrajectories, "ess_threshold": check_threshold(ess_threshold),
        "mcmc_steps": _int("mcmc_steps", mcmc_steps, 0), "mcmc_step_size": _pos("mcmc_step_size", mcmc_step_size),
        "mcmc_kernel": mcmc_kernel, "mcmc_leapfrog": _int("mcmc_leapfrog", mcmc_leapfrog, 1),
        "mcmc_step_spread": _spread(mcmc_kernel, mcmc_step_spread),
        "sigma": _pos("sigma", sigma), "sigma_max": _pos("sigma_max", sigma_max),
        "sigma_min": _pos("sigma_min", sigma_min),
        "diffusion_schedule": diffusion_schedule, "learn_betas": checks.flag("learn_betas", learn_betas),
        "beta_init": beta_init,
        "learn_diffusion": checks.flag("learn_diffusion", learn_diffusion),
        "learn_prior": checks.flag("learn_prior", learn_prior),
        "width": _int("width", width, 1), "depth": _int("depth", depth, 1),
        "num_freqs": _int("num_freqs", num_freqs, 1),
        "clip": _pos("clip", clip), "batch_size": _int("batch_size", batch_size, 2),
        "learning_rate": _pos("learning_rate", learning_rate), "lr_schedule": lr_schedule,
        "grad_clip_norm": _pos("grad_clip_norm", grad_clip_norm), "seed": _int("seed", seed, 0),
        "num_iterations": _int("num_iterations", num_iterations, 1), "target": getattr(target, "name", "target"),
        "dtype": str(jnp.result_type(float)), "kl_gradient": kl_gradient,
    }
    if beta_init == "two_ended":  # only then (configs and checkpoints of the other starts are unchanged)
        config["beta_tail"] = float(beta_tail)
    return config


def train_controlled(target, kind: str = "cmcd", loss: str = "log_variance", *, progress: bool | None = None,
                     checkpoint=None, checkpoint_every: int = 100, resume=None, **settings) -> ControlledSampler:
    """Train a CMCD or SCLD sampler for `target` (a samplax.Target with an unnormalised log-density); `settings`
    are `make_config`'s (its signature has their defaults, and it refuses unknown ones).

    kind: "cmcd" (one trajectory of num_steps, importance weights) or "scld" (num_subtrajectories pieces, default 4,
      with ESS-triggered resampling below ess_threshold and mcmc_steps MALA moves, default 1, at the inner boundaries;
      mcmc_kernel="hmc" makes them HMC moves of mcmc_leapfrog leapfrog steps each, L gradients per move).
    loss: "log_variance" (detached paths) or "kl" (reverse KL / SMC ELBO).
    kl_gradient (loss "kl"): "reparam" (default; paths reparametrised, the gradient runs through the SDE, the
      target's Hessian and the control's score input: n_hvp_train Hessian-vector products) or, for cmcd,
      "log_derivative" (score-function estimator on detached paths with a leave-one-out baseline: no Hessian, noisier;
      see `loss_fn`). Both are unbiased for the KL's gradient.
    sigma: scale of the reference N(0, sigma^2 I) (learned with learn_prior); sigma_max, sigma_min,
      diffusion_schedule: the diffusion coefficient sigma_k (cosine: the reference code's decreasing schedule;
      its scale is learned with learn_diffusion). Iteration i uses the key fold_in(PRNGKey(seed), i).
    The result's config records n_grad_train, the target gradient evaluations of all training simulations (the KL
    loss's backward pass adds as many Hessian-vector products, n_hvp_train), and train_seconds (summed over
    resumed runs).
    checkpoint: a file written every `checkpoint_every` iterations and at the end (model, optimiser state, loss and
      log Z history, iteration); `resume=` that file continues the run exactly as an uninterrupted one (the same
      keys, the same updates). Resuming refuses another kind, another target (its content fingerprint, as PIS / DDS
      and chain-run checkpoints) or other settings, naming them; num_iterations may grow only with
      lr_schedule="constant" (the cosine rate is a function of the run's length).
    """
    from samplax.particles.run import as_target

    target = as_target(target)
    config = make_config(target, kind, loss, **settings)
    checkpoint_every = _int("checkpoint_every", checkpoint_every, 1)
    checkpoint = ckpt.checkpoint_path(checkpoint)
    num_steps, num_subtrajectories = config["num_steps"], config["num_subtrajectories"]
    root = jax.random.PRNGKey(config["seed"])
    model = new_model(config, jax.random.fold_in(root, 2**31 - 1))
    opt = _optimizer(config)
    opt_state = opt.init(eqx.filter(model, eqx.is_inexact_array))
    logdensity, bs = target.logdensity, config["batch_size"]
    fingerprint = target_fingerprint(target)  # the target's content: name, dim, shapes, log-density values
    history, log_z, start, seconds = [], [], 0, 0.0
    if resume is not None:
        (model, opt_state), saved, start, extra = ckpt.load(resume, FORMAT, config, fingerprint, (model, opt_state),
                                                            length_dependent=config["lr_schedule"] == "cosine")
        history, log_z, seconds = list(saved["loss"]), list(saved["log_z"]), float(extra.get("train_seconds", 0.0))

    @eqx.filter_jit
    def step(model, opt_state, key):
        (value, (lz, log_G)), grads = eqx.filter_value_and_grad(
            lambda m: _loss(m, config, logdensity, key, bs), has_aux=True)(model)
        updates, opt_state = opt.update(grads, opt_state, eqx.filter(model, eqx.is_inexact_array))
        return eqx.apply_updates(model, updates), opt_state, value, lz, log_G

    n_iter = config["num_iterations"]
    bar = training_bar(progress, n_iter, f"train {kind}[{loss}]", initial=start)
    t0 = time.perf_counter()
    try:
        for it in range(start, n_iter):
            model, opt_state, value, lz, log_G = step(model, opt_state, jax.random.fold_in(root, it))
            value = finite_loss(value, it, f"{kind}[{loss}]", "lower learning_rate or sigma_max, or choose sigma "
                                f"to cover the target (sigma={config['sigma']})", log_G)
            history.append(value)
            log_z.append(float(lz))
            if bar is not None:
                bar.update(1)
                bar.set_postfix({"loss": f"{value:.4g}", "log_z": f"{float(lz):.4g}"}, refresh=False)
            if checkpoint is not None and ckpt.due(it, checkpoint_every, n_iter):
                ckpt.save(checkpoint, FORMAT, config, fingerprint, (model, opt_state),
                          {"loss": history, "log_z": log_z}, it + 1,
                          {"train_seconds": seconds + time.perf_counter() - t0})
    finally:
        if bar is not None:
            bar.close()
    per_path = num_steps + 1 + (num_subtrajectories - 1) * config["mcmc_steps"] * grads_per_move(config)
    n_grad = n_iter * bs * per_path
    config = {**config, "n_grad_train": int(n_grad),
              "n_hvp_train": int(n_grad if config["kl_gradient"] == "reparam" else 0),
              "train_seconds": seconds + time.perf_counter() - t0,
              "train_log_z_last": float(np.mean(log_z[-10:])) if log_z else float("nan")}
    return ControlledSampler(model, config, np.asarray(history))


def untrained(target, kind: str = "cmcd", **settings) -> ControlledSampler:
    """The sampler before any training (u = 0, uniform beta, the initial diffusion): CMCD is then AIS with ULA
    kernels, SCLD an SMC sampler with ULA proposals and MALA moves. Takes `train_controlled`'s settings."""
    from samplax.particles.run import as_target

    config = make_config(as_target(target), kind, **settings)
    config = {**config, "num_iterations": 0, "n_grad_train": 0, "n_hvp_train": 0}
    model = new_model(config, jax.random.fold_in(jax.random.PRNGKey(config["seed"]), 2**31 - 1))
    return ControlledSampler(model, config, np.zeros(0))
