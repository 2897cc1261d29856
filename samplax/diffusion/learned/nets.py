"""NETS (Albergo & Vanden-Eijnden 2024, "NETS: A Non-Equilibrium Transport Sampler", arXiv 2410.02711).

Annealed Langevin dynamics along U_t(x) = -[(1 - t) log rho_0(x) + t log pi~(x)] (geometric path from the base
rho_0 = N(0, sigma^2 I), normalised, to the unnormalised target pi~) with a learned transport drift b(x, t):

    dX = (-eps grad U_t(X) + b(X, t)) dt + sqrt(2 eps) dW,   X_0 ~ rho_0,
    dA = (div b - grad U_t . b - d_t U_t)(X, t) dt,          A_0 = 0,

and E[exp(A_t) h(X_t)] / E[exp(A_t)] = E_{rho_t}[h], E[exp(A_1)] = Z for ANY b (Jarzynski). b solving the continuity
equation of rho_t makes the weights constant. Two weightings of the simulated paths:

- weights="jarzynski" (the paper's): A integrated along the Euler-Maruyama path by the trapezoid rule in time, with
  the exact divergence (jacfwd trace: d forward-mode passes of the network per point); unbiased only as h -> 0 (the
  unadjusted Langevin steps leave an O(h) bias, b = 0 included: -0.08 in log Z on a 2-d Gaussian at K = 16). With the
  optimal drift the weights are nearly constant (ESS ~ N) where the exact ones keep a discretisation floor.
- weights="exact": the discrete-time log Radon-Nikodym derivative of the Euler chain against its backward chain
  (forward kernel drift -eps grad U_{t_k} + b at x_k, backward kernel drift -eps grad U_{t_{k+1}} - b at x_{k+1}, as in
  CMCD, Vargas et al. 2024 arXiv 2307.01050): E[exp(log w)] = Z exactly for every b and every step count, and it
  needs no divergence; its continuous-time limit is the Jarzynski weight. This is the default. Its cost: even the
  optimal drift leaves weight variance from the forward / backward kernel mismatch (ESS / N 0.44, 0.75, 0.90 at
  K = 32, 64, 128 on the 2-d Gaussian of tests/test_nets.py).

Both weightings are valid running weights for rho_{t_k} at every step, so `resample_threshold` > 0 resamples when the
ESS drops (SMC with NETS moves; the paper's "with resampling" variant); log Z is then the product of the epochs'
mean weights, and its variance Lee & Whiteley's estimate over each particle's initial ancestor (multinomial
resampling, the default then; `eve_log_z_variance`).

Training (`train_nets`): b is fit on detached trajectories of the current sampler, with
- loss="pinn": the PINN residual of the continuity equation, d_t F_t = d_t U_t - div b + grad U_t . b (paper, the
  PINN objective). The free energy is profiled out: at each time the loss is quadratic in the number d_t F_t, its
  minimiser over the batch is the batch mean of the residual, and by the envelope theorem the gradient in b at that
  minimiser is the PINN gradient; so the loss is the per-time batch variance of the residual. The profiled
  -int d_t F dt is reported per iteration (`log_z_pinn`, an unweighted estimate of log Z).
  divergence="hutchinson" replaces div b by z.(J z) with Rademacher z, using two independent probes z1, z2 and the
  product r(z1) r(z2) of the residuals, which is unbiased for r^2 (one probe would add Var(z.Jz), which depends on
  b). Sampling has no Hutchinson option: it uses the exact divergence (weights="jarzynski") or none
  (weights="exact"), since a noisy divergence inside exp(A) would bias the weights (Jensen); for large d use "exact".
  Departures from the paper: d_t F profiled out instead of a network F_t; training on the fixed uniform grid with
  `loss_times` random grid times per iteration (the paper draws a random grid); the base is N(0, sigma^2 I).
- loss="action": action matching with b = grad phi (Neklyudov et al. 2023, used by NETS):
  E_0[phi_0] - E_1[phi_1] + int E_t[|grad phi|^2 / 2 + d_t phi] dt, the E_t self-normalised with the detached
  running discrete-time weights of the paths, on a fresh stratified random time grid per iteration.

Gradient counts (n_grad): one target value-and-gradient per particle per evaluated point: K per path for the exact
weights (x_1..x_K; grad U_0 does not involve the target), K + 1 for the Jarzynski ones (x_0..x_K, trapezoid rule in
time); training uses K per path per iteration (K + 1 for the PINN loss, whose residual at t = 0 needs log pi~(x_0))
and records the total in `config["n_grad_train"]`.
"""

from __future__ import annotations

import dataclasses
import pathlib
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
from samplax.diffusion.learned.network import fourier_features, zero_last
from samplax.diffusion.learned.sampler import read_model, refuse_unknown, write_model
from samplax.particles import base
from samplax.particles.resampling import resample, scheme
from samplax.particles.state import ParticleState, ess, eve_log_z_variance_per_stage, increment_variance
from samplax.diffusion.learned.checks import finite_loss, training_bar

FORMAT = "samplax-nets/1"
LOSSES = ("pinn", "action")
WEIGHTS = ("exact", "jarzynski")
DIVERGENCES = ("exact", "hutchinson")


# ------------------------------------------------------------------------------------------------ networks
class Drift(eqx.Module):
    """b(x, t) = c NN(x / c, emb(t)); c = input_scale (the base scale sigma). Starts at b = 0 (annealed IS)."""

    net: eqx.nn.MLP
    num_freqs: int = eqx.field(static=True)
    input_scale: float = eqx.field(static=True)

    def __init__(self, dim, key, width=64, depth=2, num_freqs=8, input_scale=1.0):
        self.net = zero_last(eqx.nn.MLP(dim + 2 * num_freqs, dim, width, depth, activation=jax.nn.gelu, key=key))
        self.num_freqs, self.input_scale = int(num_freqs), float(input_scale)

    def __call__(self, x, t):
        c = self.input_scale
        return c * self.net(jnp.concatenate([x / c, fourier_features(t, self.num_freqs)]))


class Potential(eqx.Module):
    """phi(x, t) = c^2 NN(x / c, emb(t)) and b = grad_x phi (action matching). Starts at phi = 0."""

    net: eqx.nn.MLP
    num_freqs: int = eqx.field(static=True)
    input_scale: float = eqx.field(static=True)

    def __init__(self, dim, key, width=64, depth=2, num_freqs=8, input_scale=1.0):
        self.net = zero_last(eqx.nn.MLP(dim + 2 * num_freqs, "scalar", width, depth, activation=jax.nn.gelu,
                                         key=key))
        self.num_freqs, self.input_scale = int(num_freqs), float(input_scale)

    def phi(self, x, t):
        c = self.input_scale
        return c**2 * self.net(jnp.concatenate([x / c, fourier_features(t, self.num_freqs)]))

    def __call__(self, x, t):
        return jax.grad(self.phi)(x, t)


def divergence(model, x, t):
    """Exact div_x b(x, t) (trace of the forward-mode Jacobian: d JVPs of the network)."""
    return jnp.trace(jax.jacfwd(lambda y: model(y, t))(x))


def hutchinson(model, x, t, z):
    """z . (J_x b) z, unbiased for div b when E[z z^T] = I."""
    return jnp.vdot(z, jax.jvp(lambda y: model(y, t), (x,), (z,))[1])


def new_model(config: dict, key):
    cls = Potential if config["loss"] == "action" else Drift
    m = cls(config["dim"], key, config["width"], config["depth"], config["num_freqs"], config["sigma"])
    dtype = jnp.dtype(config["dtype"])
    return jax.tree.map(lambda v: v.astype(dtype) if eqx.is_inexact_array(v) else v, m)


# ------------------------------------------------------------------------------------ interpolation and paths
def _log_base(x, sigma):
    d = x.shape[-1]
    return -0.5 * jnp.sum(x**2, axis=-1) / sigma**2 - d * jnp.log(sigma) - 0.5 * d * jnp.log(2 * jnp.pi)


def _grad_u(x, gp, t, sigma):
    """grad U_t = -[(1 - t) grad log rho_0 + t grad log pi~]."""
    return (1.0 - t) * x / sigma**2 - t * gp


def _clip(g, clip):
    return g if clip is None else jnp.clip(g, -clip, clip)


def rollout(model, logdensity, key, n, dim, *, num_steps, sigma, epsilon, weights, clip=None, keep=False,
            progress=None, resample_threshold=0.0, resampling="systematic", times=None):
    """Simulate n paths on the grid `times` (K + 1 increasing values from 0 to 1; uniform k / K when None).

    weights: "jarzynski" | "exact". Returns "x" (n, d) final positions, "x0" (n, d) the base draws, "log_w" (n,)
    final log weights, "log_z" the estimate of log Z, "ess" (K,) of the running weights (before any resampling),
    "resampled" (K,). Without resampling log_z = log mean exp(log_w). resample_threshold > 0: when the ESS of the
    running weights falls below threshold * n, resample (the running weights are valid importance weights for
    rho_{t_k}, so this is SMC with the NETS moves: log Z = sum over resampling epochs of log mean exp of the weights).
    "log_z_var" (K,): the variance of log_z, at the last step (`eve_log_z_variance`; without resampling the delta
    method's) or, for a resampling scheme other than multinomial, one one-generation term per epoch (too small).
    keep=True (exact weights, no resampling) adds x_1..x_K as "xs" (K, n, d), their "lps" (K, n), "gps" (K, n, d),
    times "ts" (K,) and running log weights "lws" (K, n). Target evaluations per path: K (exact: x_1..x_K),
    K + 1 (jarzynski: x_0..x_K).
    clip: elementwise clip of grad U_t in the Langevin drift only (a bounded step in stiff regions such as the
    funnel's neck); the exact weights stay exact with it, the Jarzynski ones gain a bias.
    """
    if not checks.member(weights, WEIGHTS):
        raise ValueError(f"weights must be one of {WEIGHTS}, got {weights!r}")
    if keep and (weights != "exact" or resample_threshold > 0):
        raise ValueError("keep=True needs weights='exact' and no resampling")
    K = int(num_steps)
    grid = jnp.linspace(0.0, 1.0, K + 1) if times is None else jnp.asarray(times)
    vg = jax.vmap(jax.value_and_grad(logdensity))
    drift = jax.vmap(model, in_axes=(0, None))
    div = jax.vmap(lambda x, t: divergence(model, x, t), in_axes=(0, None))
    k0, k_res, key = jax.random.split(key, 3)
    x0 = sigma * jax.random.normal(k0, (n, dim))
    zero = jnp.zeros((n,), x0.dtype)
    resample_on = resample_threshold > 0

    def log_gamma(x, lp, t):  # log of the unnormalised rho_t: (1 - t) log rho_0 + t log pi~ (0 log pi~ = 0)
        return (1.0 - t) * _log_base(x, sigma) + jnp.where(t == 0, 0.0, t * lp)

    def residual(x, lp, gp, t):
        """div b - grad U_t . b - d_t U_t at (x, t), and the Langevin-plus-transport drift there."""
        gu = _grad_u(x, gp, t, sigma)
        b = drift(x, t)
        return div(x, t) - jnp.sum(gu * b, -1) - (_log_base(x, sigma) - lp), -epsilon * _clip(gu, clip) + b

    def exact_step(state, k):
        x, lp, gp = state["x"], state["lp"], state["gp"]
        t, t1 = grid[k], grid[k + 1]
        h = t1 - t
        mean_f = x + h * (-epsilon * _clip(_grad_u(x, gp, t, sigma), clip) + drift(x, t))
        x1 = mean_f + jnp.sqrt(2.0 * epsilon * h) * jax.random.normal(jax.random.fold_in(key, k), x.shape)
        lp1, gp1 = vg(x1)
        mean_b = x1 + h * (-epsilon * _clip(_grad_u(x1, gp1, t1, sigma), clip) - drift(x1, t1))
        # log [gamma_{k+1}(x_{k+1}) B_k(x_k | x_{k+1}) / (gamma_k(x_k) F_k(x_{k+1} | x_k))]: the equal Gaussian
        # normalisers cancel; the product over k telescopes to pi~(x_K) prod B / (rho_0(x_0) prod F)
        # (kernels' log-ratio, log gamma_{k+1}(x_{k+1})); the log gamma_k(x_k) it cancels is in the carried A (body)
        kern = (jnp.sum((x1 - mean_f) ** 2, -1) - jnp.sum((x - mean_b) ** 2, -1)) / (4.0 * epsilon * h)
        return {"x": x1, "lp": lp1, "gp": gp1}, (kern, log_gamma(x1, lp1, t1))

    def jarzynski_step(state, k):
        x = state["x"]
        t1 = grid[k + 1]
        h = t1 - grid[k]
        x1 = x + h * state["f"] + jnp.sqrt(2.0 * epsilon * h) * jax.random.normal(jax.random.fold_in(key, k), x.shape)
        lp1, gp1 = vg(x1)
        r1, f1 = residual(x1, lp1, gp1, t1)
        # trapezoid in time along the path: the left-point sum alone misses h/2 (r(x_K, 1) - r(x_0, 0)), an O(h)
        # error of the deterministic part of A that is large when d_t F varies much over [0, 1]
        return {"x": x1, "r": r1, "f": f1}, (0.5 * h * (state["r"] + r1), jnp.zeros_like(r1))

    move = exact_step if weights == "exact" else jarzynski_step

    def body(carry, k):
        # running log weights lw = A + log gamma_k(x_k) (exact weights; Jarzynski: lw = A, the accumulated A_t), A the
        # kernels' log-ratios since the last resampling minus log gamma there: the intermediate gammas telescope, so a
        # path outside the target's support at a grid time (gamma = -inf) but back inside at the end keeps its exact
        # weight rather than -inf - (-inf) = NaN
        state, lw, A, log_z, eve, anc = carry
        state, (kern, g1) = move(state, k)
        A = A + kern
        lw = A + g1
        e = ess(lw)
        resampled = jnp.asarray(False)
        if resample_on:
            resampled = (e < resample_threshold * n) & (k < K - 1)
        # particles outside the target's support (weight zero) when the population resamples: they are dropped, the
        # running weights of the next epoch no longer telescope over them, and log Z is biased low (counted; the
        # run's check says so)
        n_out = jnp.where(resampled, jnp.sum(jnp.isneginf(lw)), 0).astype(jnp.int32)
        # one-generation term of the epoch that ends here (its particles are families by their parent at the epoch's
        # resampling; the epoch starts equally weighted): the log Z variance for schemes other than multinomial
        var_epoch = jnp.where(resampled | (k == K - 1), increment_variance(jnp.zeros_like(lw), lw, anc),
                              jnp.zeros((), lw.dtype))
        if resample_on:

            def do(args):
                st, w, a, lz, ev, _ = args
                lz = lz + logsumexp(w) - jnp.log(n)
                idx = scheme(resampling)(jax.random.fold_in(k_res, k), jax.nn.softmax(w), n)
                return (jax.tree.map(lambda v: v[idx], st), jnp.zeros_like(w), -g1[idx], lz, ev[idx],
                        idx.astype(ev.dtype))

            state, lw, A, log_z, eve, anc = jax.lax.cond(resampled, do, lambda args: args,
                                                         (state, lw, A, log_z, eve, anc))
        if progress is not None:
            progress.update(k, grid[k + 1], e)
        out = (e, resampled, var_epoch, n_out,
               (state["x"], state["lp"], state["gp"], grid[k + 1], lw) if keep else None)
        return (state, lw, A, log_z, eve, anc), out

    if weights == "exact":
        # t_0 = 0: gamma_0 = rho_0 and grad U_0 do not involve the target, so x_0 needs no evaluation (lp = gp = 0
        # are multiplied by t_0 = 0)
        init = {"x": x0, "lp": zero, "gp": jnp.zeros_like(x0)}
    else:
        lp0, gp0 = vg(x0)
        r0, f0 = residual(x0, lp0, gp0, 0.0)
        init = {"x": x0, "r": r0, "f": f0}
    # A_0 = -log gamma_0(x_0) = -log rho_0(x_0) for the exact weights (0 for Jarzynski's)
    A0 = -_log_base(x0, sigma) if weights == "exact" else zero
    # eve: each particle's ancestor among the n initial draws; anc: its parent at the last resampling
    (state, lw, _, log_z, eve, _), (e, resampled, var_epochs, n_out, kept) = jax.lax.scan(
        body, (init, zero, A0, jnp.zeros((), x0.dtype), jnp.arange(n), jnp.arange(n)), jnp.arange(K))
    m = jnp.sum(resampled)
    if resampling == "multinomial" or not resample_on:
        var = eve_log_z_variance_per_stage(lw, eve, m, var_epochs)
    else:  # Lee & Whiteley's estimator needs multinomial resampling (it went negative with systematic)
        var = var_epochs
    res = {"x": state["x"], "x0": x0, "log_w": lw, "log_z": log_z + logsumexp(lw) - jnp.log(n), "ess": e,
           "resampled": resampled, "log_z_var": var, "n_outside_support": n_out}
    if keep:
        res.update(xs=kept[0], lps=kept[1], gps=kept[2], ts=kept[3], lws=kept[4])
    return res


# ------------------------------------------------------------------------------------------------ losses
def pinn_loss(model, batch, key, *, sigma, divergence_kind):
    """Per-time batch variance of the continuity residual r = div b - grad U_t . b - d_t U_t (d_t F profiled out).

    batch: "xs" (m, n, d), "lps" (m, n), "gps" (m, n, d), "ts" (m,) detached points of m times. Returns (loss, aux)
    with aux["log_z_pinn"] = F_0 - F_1 = -int d_t F dt from the profiled d_t F (unweighted: exact only when b is).
    """
    xs, lps, gps, ts = batch["xs"], batch["lps"], batch["gps"], batch["ts"]

    def at_time(x, lp, gp, t, k):
        gu = _grad_u(x, gp, t, sigma)
        b = jax.vmap(model, in_axes=(0, None))(x, t)
        rest = -jnp.sum(gu * b, -1) - (_log_base(x, sigma) - lp)
        if divergence_kind == "exact":
            r = jax.vmap(lambda y: divergence(model, y, t))(x) + rest
            rc = r - jnp.mean(r)
            return jnp.mean(rc**2), jnp.mean(r)
        z = jax.random.rademacher(k, (2,) + x.shape, dtype=x.dtype)
        h1 = jax.vmap(lambda y, zz: hutchinson(model, y, t, zz))(x, z[0])
        h2 = jax.vmap(lambda y, zz: hutchinson(model, y, t, zz))(x, z[1])
        r1, r2 = h1 + rest, h2 + rest
        # E[r1 r2 | x] = r(x)^2: two independent probes give an unbiased square
        return jnp.mean((r1 - jnp.mean(r1)) * (r2 - jnp.mean(r2))), 0.5 * (jnp.mean(r1) + jnp.mean(r2))

    # the exact divergence draws nothing: any key (None too) is accepted
    keys = jax.random.split(key, ts.shape[0]) if divergence_kind == "hutchinson" else jnp.zeros((ts.shape[0], 2),
                                                                                                 jnp.uint32)
    var, rbar = jax.vmap(at_time)(xs, lps, gps, ts, keys)
    # -d_t F_t = mean residual, so log Z = F_0 - F_1 = int rbar dt (trapezoid weights "tw", unbiased over the draw)
    return jnp.mean(var), {"log_z_pinn": jnp.sum(batch["tw"] * rbar)}


def action_loss(model, batch, key, *, sigma, divergence_kind):
    """Action matching with b = grad phi: E_0[phi_0] - E_1[phi_1] + int E_t[|grad phi|^2 / 2 + d_t phi] dt.

    batch: "xs" (m, n, d) at times "ts" (m,) with self-normalising log weights "lws" (m, n), the base draws "x0"
    (n, d) and the final points "x1" (n, d) with log weights "lw1" (n,).
    """
    del key, divergence_kind

    def integrand(x, t):
        gphi, dphi = jax.grad(model.phi, argnums=(0, 1))(x, t)
        return 0.5 * jnp.sum(gphi**2) + dphi

    def at_time(x, lw, t):
        W = jax.nn.softmax(lw)
        return jnp.sum(W * jax.vmap(integrand, in_axes=(0, None))(x, t))

    inner = jnp.mean(jax.vmap(at_time)(batch["xs"], batch["lws"], batch["ts"]))
    phi0 = jnp.mean(jax.vmap(model.phi, in_axes=(0, None))(batch["x0"], 0.0))
    phi1 = jnp.sum(jax.nn.softmax(batch["lw1"]) * jax.vmap(model.phi, in_axes=(0, None))(batch["x1"], 1.0))
    return phi0 - phi1 + inner, {"log_z_pinn": jnp.asarray(jnp.nan, inner.dtype)}


# ------------------------------------------------------------------------------------------------ sampler
@dataclasses.dataclass(frozen=True, eq=False)
class NetsSampler:
    """A NETS drift (or action-matching potential) with its settings and training history.

    `samplax.sample(target, nets, num_particles=N, num_chains=C)` runs N annealed-Langevin paths with the learned
    drift per population, weights them (`weights`, see the module docstring), reports log Z = log mean exp(log w)
    and resamples to N equally weighted particles.
    """

    model: Any  # Drift | Potential
    config: dict[str, Any]
    history: dict[str, np.ndarray]  # "loss", "log_z_pinn", "ess" (of the training batch, exact weights) per iteration

    @property
    def kind(self) -> str:
        return "nets"

    @property
    def n_grad_train(self) -> int:
        return int(self.config["n_grad_train"])

    def as_population_sampler(self, num_steps: int | None = None, weights: str | None = None,
                              epsilon: float | None = None, resampling: str | None = None,
                              resample_threshold: float = 0.0, **unknown) -> base.PopulationSampler:
        """num_steps / epsilon: the trained ones by default (another value keeps the weights valid, the drift was
        fit with the trained grid); weights: "exact" (default) or "jarzynski"; resample_threshold in [0, 1): resample
        when the running ESS falls below it times N (0: never, the paper's plain NETS estimator).

        resampling: None (default) is "multinomial" when resample_threshold > 0, so that log_z_se comes from Lee &
        Whiteley's estimator (`eve_log_z_variance`; z of sd 1.02-1.07 on the untrained 2-d Gaussian resampling at
        most steps), else "systematic" (the final equally weighted draw). Another scheme with resampling is used as
        given, with a warning: its log_z_se sums one term per epoch and is too small (z of sd 1.40-1.47 there)."""
        refuse_unknown("sampling a trained nets sampler", unknown, NetsSampler.as_population_sampler)
        resample_threshold = checks.scalar(resample_threshold)  # np.float32(0.5) / a 0-d array pass as numbers
        if not checks.is_real(resample_threshold) or not 0.0 <= resample_threshold < 1.0:
            raise ValueError(f"resample_threshold must be a number in [0, 1), got {resample_threshold!r}")
        c = self.config
        K = c["num_steps"] if num_steps is None else num_steps
        if not isinstance(K, (int, np.integer)) or isinstance(K, bool) or K < 1:
            raise ValueError(f"num_steps must be a positive integer, got {num_steps!r}")
        weights = c["weights"] if weights is None else weights
        if not checks.member(weights, WEIGHTS):
            raise ValueError(f"weights must be one of {WEIGHTS}, got {weights!r}")
        eps = c["epsilon"] if epsilon is None else _pos("epsilon", epsilon)
        if resampling is None:
            resampling = "multinomial" if resample_threshold > 0 else "systematic"
        scheme(resampling)
        if resample_threshold > 0 and resampling != "multinomial":
            warnings.warn(
                f"nets: resampling={resampling!r} with resample_threshold={float(resample_threshold)}: log_z_se "
                "then sums one term per resampling epoch and ignores the ancestry the epochs share, so it is too "
                "small when resampling is frequent (z-scores of sd 1.4-1.5 measured); the default resampling "
                "(multinomial) gives Lee & Whiteley's variance estimate, which is calibrated", UserWarning,
                stacklevel=2)
        model, dim, sigma, clip = self.model, c["dim"], c["sigma"], c["clip"]
        K = int(K)

        def run(target_model, key, num_particles, progress):
            from samplax.particles.run import as_target

            target = as_target(target_model)
            if target.dim != dim:
                raise ValueError(f"this NETS sampler was trained for dim {dim}, the target has dim {target.dim}")
            k_run, k_res = jax.random.split(key)
            out = rollout(model, target.logdensity, k_run, num_particles, dim, num_steps=K, sigma=sigma,
                          epsilon=eps, weights=weights, clip=clip, progress=progress,
                          resample_threshold=float(resample_threshold), resampling=resampling)
            log_z = out["log_z"]
            state, _ = resample(k_res, ParticleState(out["x"], out["log_w"], log_z), resampling)
            # one target value-and-gradient per particle per evaluated point; Jarzynski also evaluates x_0 (stage 1)
            counts = np.full(K, num_particles)
            counts[0] += num_particles * (weights == "jarzynski")
            stats = {"time": jnp.asarray((np.arange(K) + 1) / K), "ess": out["ess"],
                     "resampled": out["resampled"], "n_grad": base.stage_counts(counts),
                     "n_outside_support": out["n_outside_support"],
                     "log_z_var_increment": out["log_z_var"]}
            return base.Population(state.particles, log_z, stats, jnp.sum(stats["n_grad"]))

        return affine.wrap(base.PopulationSampler(f"nets[{c['loss']}]", run,
                                                  {**c, "num_steps": K, "weights": weights, "epsilon": eps,
                                                   "resampling": resampling,
                                                   "resample_threshold": float(resample_threshold)}, "time"), c)

    def save(self, path) -> pathlib.Path:
        """One file: a JSON header line (config, history) then equinox's serialised network leaves."""
        history = {k: np.asarray(v).tolist() for k, v in self.history.items()}
        return write_model(path, FORMAT, self.config, history, self.model)


def load_nets(path) -> NetsSampler:
    """Reload a sampler written by `NetsSampler.save`."""
    header, model = read_model(path, FORMAT, "NETS", lambda config: new_model(config, jax.random.PRNGKey(0)))
    return NetsSampler(model, header["config"], {k: np.asarray(v) for k, v in header["history"].items()})


# ------------------------------------------------------------------------------------------------ training
def train_nets(target, *, num_steps: int = 64, num_iterations: int = 1000, batch_size: int = 256,
               learning_rate: float = 1e-3, loss: str = "pinn", epsilon: float = 1.0, sigma: float = 1.0,
               seed: int = 0, weights: str = "exact", divergence: str = "exact", loss_times: int | str | None = "auto",
               width: int = 64, depth: int = 2, num_freqs: int | None = None, clip: float | None = 100.0,
               grad_clip_norm: float = 10.0, final_lr_fraction: float = 0.1,
               progress: bool | None = None, checkpoint=None, checkpoint_every: int = 100,
               resume=None) -> NetsSampler:
    """Train a NETS drift for `target` (a samplax.Target with an unnormalised log-density); return a NetsSampler.

    Each iteration simulates `batch_size` paths of `num_steps` Euler-Maruyama steps with the current drift
    (detached) on the uniform time grid (action matching: a freshly drawn stratified grid), then takes one Adam
    step (global-norm clipping at `grad_clip_norm`, cosine decay of the learning rate to `final_lr_fraction` of it)
    on the loss evaluated at `loss_times` random grid times (all of them when None; "auto": 16, or all when there are
    fewer; a number above K + 1 (pinn) / K (action) is refused).
    sigma: std of the Gaussian base rho_0 (choose it to cover the target). epsilon: Langevin diffusion coefficient.
    weights: the sampler's default weighting ("exact" or "jarzynski"). divergence: "exact" | "hutchinson" (PINN
    training only). num_freqs: Fourier time features of the network, default 8 for "pinn" and 2 for "action": the
    action loss differentiates the network in t, and with high time frequencies its Monte Carlo estimate falls
    without bound (measured on a 2-d Gaussian: loss -1466 and ESS 1% at 8 frequencies, ESS 81% at 2).
    num_iterations=0 returns the untrained sampler (b = 0: annealed importance sampling).
    Iteration i uses the key fold_in(PRNGKey(seed), i).
    checkpoint: a file written every `checkpoint_every` iterations and at the end (drift, optimiser state, history,
      iteration); `resume=` that file continues the run exactly as an uninterrupted one. Resuming refuses another
      target (its content fingerprint, as PIS / DDS and chain-run checkpoints), a CMCD / PIS checkpoint or other
      settings, naming them; num_iterations too, since the cosine learning rate is a function of the run's length.
    """
    from samplax.particles.run import as_target

    target = as_target(target)
    if not checks.member(loss, LOSSES):
        raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
    if not checks.member(weights, WEIGHTS):
        raise ValueError(f"weights must be one of {WEIGHTS}, got {weights!r}")
    if not checks.member(divergence, DIVERGENCES):
        raise ValueError(f"divergence must be one of {DIVERGENCES}, got {divergence!r}")
    if loss == "action" and divergence != "exact":
        raise ValueError("loss='action' needs no divergence in training; divergence='hutchinson' applies to 'pinn'")
    K, num_iterations = _int("num_steps", num_steps, 1), _int("num_iterations", num_iterations, 0)
    batch_size, seed = _int("batch_size", batch_size, 2), _int("seed", seed, 0)
    if num_freqs is None:
        num_freqs = 2 if loss == "action" else 8
    n_times = K + (loss == "pinn")  # PINN: the grid times 0..1; action: t_1..t_K (t = 0 enters through phi_0)
    if loss_times is None:
        m = n_times
    elif isinstance(loss_times, str) and loss_times == "auto":
        m = min(16, n_times)
    else:
        m = _int("loss_times", loss_times, 1)
        if m > n_times:
            grid = "K + 1 (the grid times 0, 1/K, .., 1)" if loss == "pinn" else "K (the grid times 1/K, .., 1)"
            raise ValueError(f"loss_times={loss_times!r} is more than the {n_times} times loss={loss!r} can draw "
                             f"without replacement from num_steps={K}: at most {grid}; pass loss_times <= {n_times}, "
                             "None (all of them) or raise num_steps")
    config = {"kind": "nets", "loss": loss, "dim": target.dim, "num_steps": K, "sigma": _pos("sigma", sigma),
              "epsilon": _pos("epsilon", epsilon), "weights": weights, "divergence": divergence, "loss_times": m,
              "width": _int("width", width, 1), "depth": _int("depth", depth, 1),
              "num_freqs": _int("num_freqs", num_freqs, 1), "clip": None if clip is None else _pos("clip", clip),
              "batch_size": batch_size, "learning_rate": _pos("learning_rate", learning_rate),
              "grad_clip_norm": _pos("grad_clip_norm", grad_clip_norm),
              "final_lr_fraction": _pos("final_lr_fraction", final_lr_fraction), "seed": seed,
              "num_iterations": num_iterations, "target": getattr(target, "name", "target"),
              "dtype": str(jnp.result_type(float))}
    checkpoint_every = _int("checkpoint_every", checkpoint_every, 1)
    checkpoint = ckpt.checkpoint_path(checkpoint)
    root = jax.random.PRNGKey(seed)
    model = new_model(config, jax.random.fold_in(root, 2**31 - 1))
    sched = optax.cosine_decay_schedule(config["learning_rate"], max(num_iterations, 1), alpha=final_lr_fraction)
    opt = optax.chain(optax.clip_by_global_norm(config["grad_clip_norm"]), optax.adam(sched))
    opt_state = opt.init(eqx.filter(model, eqx.is_inexact_array))
    step = _make_step(target.logdensity, config, opt)

    history = {"loss": [], "log_z_pinn": [], "ess": [], "log_z_batch": []}
    fingerprint = target_fingerprint(target)  # the target's content: name, dim, shapes, log-density values
    start = 0
    if resume is not None:  # the cosine learning rate depends on num_iterations: it must match too
        (model, opt_state), saved, start, _ = ckpt.load(resume, FORMAT, config, fingerprint, (model, opt_state),
                                                        length_dependent=True)
        history = {k: list(saved[k]) for k in history}
    bar = training_bar(progress, num_iterations, f"train nets[{loss}]", initial=start)
    try:
        for it in range(start, num_iterations):
            model, opt_state, value, aux = step(model, opt_state, jax.random.fold_in(root, it))
            value = finite_loss(value, it, f"nets[{loss}]", "lower learning_rate or epsilon, raise num_steps, or "
                                f"choose sigma to cover the target (sigma={sigma})", aux["log_w"])
            history["loss"].append(value)
            for k in ("log_z_pinn", "ess", "log_z_batch"):
                history[k].append(float(aux[k]))
            if bar is not None:
                bar.update(1)
                bar.set_postfix({"loss": f"{value:.4g}", "ess": f"{float(aux['ess']):.0f}"}, refresh=False)
            if checkpoint is not None and ckpt.due(it, checkpoint_every, num_iterations):
                ckpt.save(checkpoint, FORMAT, config, fingerprint, (model, opt_state), history, it + 1)
    finally:
        if bar is not None:
            bar.close()
    # every training path costs K target value-and-gradients (x_1..x_K), plus log pi~(x_0) for the PINN residual at
    # t = 0 (counted as one more evaluation)
    config["n_grad_train"] = int(num_iterations) * batch_size * (K + (loss == "pinn"))
    return NetsSampler(model, config, {k: np.asarray(v, dtype=float) for k, v in history.items()})


def _make_step(logdensity, c, opt):
    K, n, dim, m = c["num_steps"], c["batch_size"], c["dim"], c["loss_times"]
    sigma, eps, clip = c["sigma"], c["epsilon"], c["clip"]
    loss_fn = pinn_loss if c["loss"] == "pinn" else action_loss

    @eqx.filter_jit
    def step(model, opt_state, key):
        k_path, k_times, k_loss, k_grid = jax.random.split(key, 4)
        if c["loss"] == "action":
            # a fresh time grid each iteration (paper, Algorithm 1): stratified, t_k uniform in [(k - 1/2) / K,
            # (k + 1/2) / K] for 0 < k < K. On a fixed grid action matching is ill-posed: d_t phi at the grid times
            # is not tied to phi_1 - phi_0, and the loss falls without bound through high time frequencies of phi.
            # The PINN loss has no d_t of the network and keeps the sampler's uniform grid (on the 2-d mixture of
            # tests/test_nets.py the random grid lowered its trained ESS by a fifth).
            inner = (jnp.arange(1, K) + jax.random.uniform(k_grid, (K - 1,)) - 0.5) / K
        else:
            inner = jnp.arange(1, K) / K
        grid = jnp.concatenate([jnp.zeros(1), inner, jnp.ones(1)])
        # the paths are data: simulated with the current drift, no gradient through them
        out = rollout(model, logdensity, k_path, n, dim, num_steps=K, sigma=sigma,
                      epsilon=eps, weights="exact", clip=clip, keep=True, times=grid)
        out = jax.lax.stop_gradient(out)
        idx = jnp.sort(jax.random.choice(k_times, K + (c["loss"] == "pinn"), (m,), replace=False))
        if c["loss"] == "pinn":
            # the exact-weight rollout keeps x_1..x_K at t_1..t_K; add x_0 (t = 0) so every grid time can be drawn
            lp0 = jax.vmap(logdensity)(out["x0"])  # d_t U at t = 0 needs log pi~(x_0): one more evaluation per path
            xs = jnp.concatenate([out["x0"][None], out["xs"]])
            lps = jnp.concatenate([lp0[None], out["lps"]])
            gps = jnp.concatenate([jnp.zeros_like(out["x0"])[None], out["gps"]])
            ts = jnp.concatenate([jnp.zeros((1,), out["ts"].dtype), out["ts"]])
            # trapezoid weights of the K + 1 grid times, rescaled for the m drawn without replacement
            gaps = jnp.diff(grid)
            tw = 0.5 * (jnp.concatenate([gaps, jnp.zeros(1)]) + jnp.concatenate([jnp.zeros(1), gaps])) * (K + 1) / m
            batch = {"xs": xs[idx], "lps": lps[idx], "gps": gps[idx], "ts": ts[idx], "tw": tw[idx]}
        else:
            batch = {"xs": out["xs"][idx], "lws": out["lws"][idx], "ts": out["ts"][idx], "x0": out["x0"],
                     "x1": out["x"], "lw1": out["log_w"]}
        (value, aux), grads = eqx.filter_value_and_grad(
            lambda mdl: loss_fn(mdl, batch, k_loss, sigma=sigma, divergence_kind=c["divergence"]),
            has_aux=True)(model)
        updates, opt_state = opt.update(grads, opt_state, eqx.filter(model, eqx.is_inexact_array))
        aux = {**aux, "ess": ess(out["log_w"]), "log_z_batch": logsumexp(out["log_w"]) - jnp.log(n),
               "log_w": out["log_w"]}  # log_w: for the non-finite loss's message
        return eqx.apply_updates(model, updates), opt_state, value, aux

    return step
