"""Langevin samplers: overdamped (ULA, MALA, preconditioned), underdamped (BAOAB / OBABO, adjusted = GHMC), SGLD.

All take `step_size` and `inverse_mass_matrix` C (diagonal `(d,)` or dense `(d, d)`) as tunable params:
overdamped moves are x' = x + h C grad log p(x) + sqrt(2h) C^{1/2} xi; underdamped ones use the kinetic
energy p^T C p / 2 and friction `gamma` (dp = grad log p dt - gamma p dt + sqrt(2 gamma) C^{-1/2} dW).

Step sizes (`num_warmup > 0`):
- adjusted samplers (`mala`, `underdamped(adjusted=True)`) tune h by dual averaging towards `target_accept`,
  with Stan-style windowed estimation of C when `mass_matrix` is "diagonal" or "dense" (blackjax
  `window_adaptation`);
- unadjusted samplers (`ula`, `underdamped(adjusted=False)`, `sgld` without `step_size`) run exactly that warmup
  with their Metropolis-adjusted counterpart (MALA for ula / sgld, adjusted OBABO for underdamped) at
  `target_accept=0.9`, then sample *without* the accept step at the tuned h. Rule and reason: the adjusted
  kernel's rejection rate is a computable measure of one step's discretisation error at the current point,
  so 10% rejections puts h at a fixed fraction of the local stability limit whatever the target's scale and
  conditioning, with no hand-tuning. It does not bound the stationary bias, which for ULA grows like
  sqrt(d) h; raise `target_accept` (e.g. 0.98) for a smaller bias, or pass `step_size` and `num_warmup=0`.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import blackjax
import jax
import jax.numpy as jnp
from blackjax.mcmc import ghmc, proposal
from blackjax.mcmc.mala import MALAInfo, MALAState
from blackjax.sgmcmc import gradients

from samplax.samplers.adapt import dual_averaging_warmup, window_warmup
from samplax.samplers.base import Algorithm, Sampler, Warmup, register
from samplax.target import Target

MASS_MATRICES = ("identity", "diagonal", "dense")
SPLITTINGS = ("baoab", "obabo")
UNADJUSTED_TARGET_ACCEPT = 0.9


# ------------------------------------------------------------------ preconditioner
class Precond(NamedTuple):
    """Linear algebra of an inverse mass matrix C (diagonal or dense), the only place C's shape matters."""

    apply: Callable  # v -> C v
    sqrt_noise: Callable  # (key, x) -> C^{1/2} xi, xi ~ N(0, I)
    momentum: Callable  # (key, x) -> p ~ N(0, C^{-1})
    quad_inv: Callable  # v -> v^T C^{-1} v


def precond(inverse_mass_matrix) -> Precond:
    c = jnp.asarray(inverse_mass_matrix)
    normal = lambda key, x: jax.random.normal(key, x.shape, x.dtype)  # noqa: E731
    if c.ndim == 1:
        return Precond(lambda v: c * v, lambda k, x: jnp.sqrt(c) * normal(k, x),
                       lambda k, x: normal(k, x) / jnp.sqrt(c), lambda v: jnp.sum(v * v / c))
    chol = jnp.linalg.cholesky(c)
    solve = lambda v, trans: jax.scipy.linalg.solve_triangular(chol, v, lower=True, trans=trans)  # noqa: E731
    return Precond(lambda v: c @ v, lambda k, x: chol @ normal(k, x), lambda k, x: solve(normal(k, x), 1),
                   lambda v: jnp.sum(solve(v, 0) ** 2))


def _check_imm(imm, dim, what="inverse_mass_matrix"):
    imm = jnp.asarray(imm, float)
    if imm.shape not in ((dim,), (dim, dim)):
        raise ValueError(f"{what} must have shape ({dim},) (diagonal) or ({dim}, {dim}) (dense), got {imm.shape}")
    return imm


# ------------------------------------------------------------------ overdamped kernels
def overdamped_move(key, state: MALAState, logdensity_fn, step_size, pc: Precond) -> MALAState:
    """One Euler-Maruyama step of preconditioned overdamped Langevin (the ULA step, MALA's proposal)."""
    x = state.position
    new = x + step_size * pc.apply(state.logdensity_grad) + jnp.sqrt(2 * step_size) * pc.sqrt_noise(key, x)
    lp, grad = jax.value_and_grad(logdensity_fn)(new)
    return MALAState(new, lp, grad)


class ULAInfo(NamedTuple):
    is_divergent: jax.Array


def ula_kernel(rng_key, state: MALAState, logdensity_fn, step_size, inverse_mass_matrix):
    new = overdamped_move(rng_key, state, logdensity_fn, step_size, precond(inverse_mass_matrix))
    return new, ULAInfo(~jnp.isfinite(new.logdensity))


def pmala_kernel(rng_key, state: MALAState, logdensity_fn, step_size, inverse_mass_matrix):
    """Preconditioned MALA (blackjax's MALA takes no mass matrix): ULA proposal + MH with its Gaussian q."""
    pc = precond(inverse_mass_matrix)
    key_move, key_mh = jax.random.split(rng_key)
    new = overdamped_move(key_move, state, logdensity_fn, step_size, pc)

    def log_q(to, frm):
        r = to.position - frm.position - step_size * pc.apply(frm.logdensity_grad)
        return -pc.quad_inv(r) / (4 * step_size)

    log_ratio = new.logdensity - state.logdensity + log_q(state, new) - log_q(new, state)
    log_ratio = jnp.where(jnp.isnan(log_ratio), -jnp.inf, log_ratio)
    out, (accepted, p_accept, _) = proposal.static_binomial_sampling(key_mh, log_ratio, state, new)
    return out, MALAInfo(p_accept, accepted)


class _Family:
    """Duck-types a blackjax algorithm (`init`, `build_kernel`) so blackjax.window_adaptation can tune it."""

    def __init__(self, kernel, init):
        self._kernel, self.init = kernel, init

    def build_kernel(self):
        return self._kernel


PMALA = _Family(pmala_kernel, lambda x, logdensity_fn: blackjax.mala.init(x, logdensity_fn))


# ------------------------------------------------------------------ underdamped kernels
class UnderdampedState(NamedTuple):
    position: jax.Array
    momentum: jax.Array
    logdensity: jax.Array
    logdensity_grad: jax.Array


class UnderdampedInfo(NamedTuple):
    energy: jax.Array
    is_divergent: jax.Array


def underdamped_kernel(splitting: str):
    """Unadjusted kinetic Langevin, one gradient per step: BAOAB or OBABO splitting."""
    if splitting not in SPLITTINGS:
        raise ValueError(f"splitting must be one of {SPLITTINGS}, got {splitting!r}")

    def kernel(rng_key, state: UnderdampedState, logdensity_fn, step_size, inverse_mass_matrix, gamma):
        pc, h = precond(inverse_mass_matrix), step_size
        x, p, _, g = state
        k1, k2 = jax.random.split(rng_key)
        vg = jax.value_and_grad(logdensity_fn)

        def O(key, p, t):  # exact Ornstein-Uhlenbeck flow of the momentum over time t
            c = jnp.exp(-gamma * t)
            return c * p + jnp.sqrt(1 - c**2) * pc.momentum(key, x)

        if splitting == "baoab":
            p = p + h / 2 * g
            x = x + h / 2 * pc.apply(p)
            p = O(k1, p, h)
            x = x + h / 2 * pc.apply(p)
            lp, g = vg(x)
            p = p + h / 2 * g
        else:
            p = O(k1, p, h / 2)
            p = p + h / 2 * g
            x = x + h * pc.apply(p)
            lp, g = vg(x)
            p = p + h / 2 * g
            p = O(k2, p, h / 2)
        energy = -lp + 0.5 * jnp.dot(p, pc.apply(p))
        return UnderdampedState(x, p, lp, g), UnderdampedInfo(energy, ~jnp.isfinite(energy))

    return kernel


# Standard MH test inside blackjax's GHMC: a fresh uniform slice each step (noise uniform on [0, 2) makes the
# wrapped slice variable uniform on [-1, 1)), instead of Neal's persistent non-reversible slice.
_GHMC = ghmc.build_kernel(noise_fn=lambda key: jax.random.uniform(key, minval=0.0, maxval=2.0))


def adjusted_obabo_kernel(rng_key, state: ghmc.GHMCState, logdensity_fn, step_size, inverse_mass_matrix, gamma):
    """Adjusted OBABO = blackjax GHMC: O(h) refresh, one leapfrog + MH, momentum flip on rejection.

    O(h/2) [BAB + MH] O(h/2) repeated is O(h) [BAB + MH] repeated, and the positions coincide, so
    GHMC with persistence 1 - alpha = exp(-2 gamma h) is adjusted OBABO.
    """
    imm = jnp.asarray(inverse_mass_matrix)
    scale = jnp.sqrt(imm) if imm.ndim == 1 else imm  # ghmc squares a 1-D "inverse scale"
    alpha = -jnp.expm1(-2 * gamma * step_size)
    return _GHMC(rng_key, state, logdensity_fn, step_size, scale, alpha, 0.0)


def _ghmc_init(position, logdensity_fn, key=None, inverse_mass_matrix=None):
    lp, grad = jax.value_and_grad(logdensity_fn)(position)
    if key is None:  # window_adaptation inits without a key: start at rest, the first O step refreshes
        momentum = jnp.zeros_like(position)
    else:
        momentum = precond(inverse_mass_matrix).momentum(key, position)
    return ghmc.GHMCState(position, momentum, lp, grad, jnp.zeros((), position.dtype))


GHMC = _Family(adjusted_obabo_kernel, _ghmc_init)


# ------------------------------------------------------------------ samplax samplers
def _stats(state, info, params, n_grad=1):
    out = {"lp": state.logdensity, "n_grad": jnp.asarray(n_grad), "step_size": params["step_size"]}
    if hasattr(info, "acceptance_rate"):
        out["acceptance_rate"] = info.acceptance_rate
    out["diverging"] = getattr(info, "is_divergent", ~jnp.isfinite(state.logdensity))
    if hasattr(info, "energy"):
        out["energy"] = info.energy
    return out


def _check_settings(mass_matrix, target_accept, step_size):
    if mass_matrix not in MASS_MATRICES:
        raise ValueError(f"mass_matrix must be one of {MASS_MATRICES}, got {mass_matrix!r}")
    if not 0 < target_accept < 1:
        raise ValueError(f"target_accept must be in (0, 1), got {target_accept}")
    if step_size is not None and not step_size > 0:
        raise ValueError(f"step_size must be > 0, got {step_size}")


def _params_fn(name, mass_matrix, step_size, inverse_mass_matrix):
    def default_params(target):
        if step_size is None:
            raise ValueError(f"num_warmup=0 leaves {name} untuned: pass step_size=..., or use num_warmup > 0")
        return {"step_size": jnp.asarray(step_size, float), "inverse_mass_matrix": _initial_imm(
            target, mass_matrix, inverse_mass_matrix)}

    return default_params


def _initial_imm(target, mass_matrix, inverse_mass_matrix):
    if inverse_mass_matrix is not None:
        imm = _check_imm(inverse_mass_matrix, target.dim)
        if mass_matrix == "diagonal" and imm.ndim != 1 or mass_matrix == "dense" and imm.ndim != 2:
            raise ValueError(f"mass_matrix={mass_matrix!r} needs inverse_mass_matrix of matching shape, got "
                             f"{imm.shape}")
        return imm
    return jnp.eye(target.dim) if mass_matrix == "dense" else jnp.ones(target.dim)


def _tuning_warmup(family, build, stats, mass_matrix, inverse_mass_matrix, target_accept, extra=None):
    """Warmup of an adjusted family: dual averaging (fixed C) or blackjax window adaptation (estimated C)."""
    extra = extra or {}
    if mass_matrix == "identity":
        return dual_averaging_warmup(
            build, stats, lambda t: {"inverse_mass_matrix": _initial_imm(t, "identity", inverse_mass_matrix)},
            target_accept)
    return window_warmup(family, dense=mass_matrix == "dense", target_accept=target_accept, extra=extra,
                         initial_inverse_mass_matrix=inverse_mass_matrix)


def _convert_warmup(warmup, convert):
    def run(target, key, position, num_steps):
        w = warmup(target, key, position, num_steps)
        return Warmup(convert(w.state), w.params, w.trace)

    return run


def _mala_build(plain):
    def build(target, params):
        if plain:  # blackjax's own MALA when C is fixed at the identity
            alg = blackjax.mala(target.logdensity, params["step_size"])
            return Algorithm(lambda x, key: alg.init(x), alg.step)
        return Algorithm(
            lambda x, key: blackjax.mala.init(x, target.logdensity),
            lambda key, s: pmala_kernel(key, s, target.logdensity, params["step_size"],
                                        params["inverse_mass_matrix"]))

    return build


@register("mala")
def mala(*, target_accept: float = 0.574, mass_matrix: str = "identity", step_size: float | None = None,
         inverse_mass_matrix=None) -> Sampler:
    """Metropolis-adjusted Langevin; 0.574 is optimal for MALA (Roberts & Rosenthal 1998).

    mass_matrix: "identity" (blackjax MALA), or "diagonal" / "dense" C estimated in warmup (own kernel).
    """
    _check_settings(mass_matrix, target_accept, step_size)
    plain = mass_matrix == "identity" and inverse_mass_matrix is None
    build = _mala_build(plain)
    return Sampler(
        name="mala", build=build, stats=_stats,
        default_params=_params_fn("mala", mass_matrix, step_size, inverse_mass_matrix),
        warmup=_tuning_warmup(PMALA, build, _stats, mass_matrix, inverse_mass_matrix, target_accept),
        settings={"target_accept": target_accept, "mass_matrix": mass_matrix},
    )


@register("ula")
def ula(*, target_accept: float = UNADJUSTED_TARGET_ACCEPT, mass_matrix: str = "identity",
        step_size: float | None = None, inverse_mass_matrix=None) -> Sampler:
    """Unadjusted Langevin x' = x + h C grad log p + sqrt(2h) C^{1/2} xi; h from MALA warmup at `target_accept`."""
    _check_settings(mass_matrix, target_accept, step_size)

    def build(target, params):
        return Algorithm(
            lambda x, key: blackjax.mala.init(x, target.logdensity),
            lambda key, s: ula_kernel(key, s, target.logdensity, params["step_size"], params["inverse_mass_matrix"]))

    mala_build = _mala_build(False)
    return Sampler(
        name="ula", build=build, stats=_stats,
        default_params=_params_fn("ula", mass_matrix, step_size, inverse_mass_matrix),
        warmup=_tuning_warmup(PMALA, mala_build, _stats, mass_matrix, inverse_mass_matrix, target_accept),
        settings={"target_accept": target_accept, "mass_matrix": mass_matrix},
    )


@register("underdamped")
def underdamped(*, splitting: str = "obabo", gamma: float = 1.0, adjusted: bool = False,
                target_accept: float | None = None, mass_matrix: str = "identity",
                step_size: float | None = None, inverse_mass_matrix=None) -> Sampler:
    """Kinetic Langevin with friction `gamma`; `adjusted=True` is OBABO with an MH test on BAB (GHMC).

    target_accept: for adjusted=True the dual-averaging target (default 0.8: a rejection flips the momentum
      and so undoes its persistence, so high acceptance pays); for adjusted=False the acceptance of adjusted
      OBABO that sets the unadjusted step (default 0.9, see module docstring).
    """
    if splitting not in SPLITTINGS:
        raise ValueError(f"splitting must be one of {SPLITTINGS}, got {splitting!r}")
    if adjusted and splitting != "obabo":
        raise ValueError("adjusted=True needs splitting='obabo' (the MH test acts on the Hamiltonian BAB part; "
                         "BAOAB's O sits inside it)")
    if not gamma > 0:
        raise ValueError(f"gamma (friction) must be > 0, got {gamma}")
    if target_accept is None:
        target_accept = 0.8 if adjusted else UNADJUSTED_TARGET_ACCEPT
    _check_settings(mass_matrix, target_accept, step_size)
    kernel = underdamped_kernel(splitting)

    def build_adjusted(target, params):
        return Algorithm(
            lambda x, key: _ghmc_init(x, target.logdensity, key, params["inverse_mass_matrix"]),
            lambda key, s: adjusted_obabo_kernel(key, s, target.logdensity, params["step_size"],
                                                 params["inverse_mass_matrix"], gamma))

    def build_unadjusted(target, params):
        def init(x, key):
            s = _ghmc_init(x, target.logdensity, key, params["inverse_mass_matrix"])
            return UnderdampedState(s.position, s.momentum, s.logdensity, s.logdensity_grad)

        return Algorithm(init, lambda key, s: kernel(key, s, target.logdensity, params["step_size"],
                                                     params["inverse_mass_matrix"], gamma))

    warmup = _tuning_warmup(GHMC, build_adjusted, _stats, mass_matrix, inverse_mass_matrix, target_accept,
                            extra={"gamma": gamma})
    if not adjusted:
        warmup = _convert_warmup(warmup, lambda s: UnderdampedState(s.position, s.momentum, s.logdensity,
                                                                    s.logdensity_grad))
    return Sampler(
        name="underdamped", build=build_adjusted if adjusted else build_unadjusted, stats=_stats,
        default_params=_params_fn("underdamped", mass_matrix, step_size, inverse_mass_matrix), warmup=warmup,
        settings={"splitting": splitting, "gamma": gamma, "adjusted": adjusted, "target_accept": target_accept,
                  "mass_matrix": mass_matrix},
    )


# ------------------------------------------------------------------ SGLD
class Minibatch(NamedTuple):
    log_prior: Callable
    log_lik_one: Callable  # (x, one datum) -> log-likelihood of that datum
    data: Any  # pytree, leading axis = data points
    batch_size: int
    data_size: int


def minibatch_target(log_prior: Callable, log_lik_one: Callable, data, batch_size: int, dim: int,
                     *, name: str = "minibatch", **truth) -> Target:
    """A data model's Target whose `info["minibatch"]` lets `sgld` use gradients over random data subsets.

    `logdensity` is the full-data log posterior log_prior(x) + sum_i log_lik_one(x, data_i).
    """
    data = jax.tree.map(jnp.asarray, data)
    sizes = {leaf.shape[0] if leaf.ndim else None for leaf in jax.tree.leaves(data)}
    if len(sizes) != 1 or None in sizes:
        raise ValueError(f"data leaves must share a leading (data point) axis, got leading sizes {sizes}")
    n = sizes.pop()
    if not isinstance(batch_size, int) or not 1 <= batch_size <= n:
        raise ValueError(f"batch_size must be an integer in [1, {n}] (the number of data points), got {batch_size!r}")

    def logdensity(x):
        return log_prior(x) + jnp.sum(jax.vmap(log_lik_one, (None, 0))(x, data))

    info = {**truth.pop("info", {}), "minibatch": Minibatch(log_prior, log_lik_one, data, batch_size, n)}
    return Target.from_logdensity(logdensity, dim, name=name, info=info, **truth)


class SGLDState(NamedTuple):
    position: jax.Array


class SGLDInfo(NamedTuple):
    is_divergent: jax.Array


def _minibatch(target: Target) -> Minibatch:
    mb = target.info.get("minibatch")
    if not isinstance(mb, Minibatch):
        raise ValueError(f"sgld needs a data model: target {target.name!r} has no info['minibatch']; build it with "
                         "samplax.samplers.langevin.minibatch_target(log_prior, log_lik_one, data, batch_size, dim)")
    return mb


@register("sgld")
def sgld(*, step_size: float | None = None, target_accept: float = UNADJUSTED_TARGET_ACCEPT) -> Sampler:
    """Stochastic-gradient Langevin (blackjax) on batches drawn without replacement, constant step.

    step_size given: warmup is plain SGLD burn-in. Not given: warmup tunes h like `ula` (MALA at
    `target_accept`), which costs `num_warmup` full-data gradients. `n_grad` counts minibatch gradients
    (one per step); `data_fraction` = batch_size / data_size converts them to full-data gradient equivalents.
    """
    if step_size is not None and not step_size > 0:
        raise ValueError(f"step_size must be > 0, got {step_size}")
    if not 0 < target_accept < 1:
        raise ValueError(f"target_accept must be in (0, 1), got {target_accept}")

    def build(target, params):
        mb = _minibatch(target)
        alg = blackjax.sgld(gradients.grad_estimator(mb.log_prior, mb.log_lik_one, mb.data_size))

        def step(key, state):
            k_batch, k_move = jax.random.split(key)
            idx = jax.random.choice(k_batch, mb.data_size, (mb.batch_size,), replace=False)
            batch = jax.tree.map(lambda d: d[idx], mb.data)
            x = alg.step(k_move, state.position, batch, params["step_size"])
            return SGLDState(x), SGLDInfo(~jnp.all(jnp.isfinite(x)))

        return Algorithm(lambda x, key: SGLDState(x), step)

    def stats(state, info, params):
        return {"n_grad": jnp.asarray(1), "data_fraction": params["data_fraction"], "step_size": params["step_size"],
                "diverging": info.is_divergent}

    def default_params(target):
        if step_size is None:
            raise ValueError("num_warmup=0 leaves sgld untuned: pass step_size=..., or use num_warmup > 0")
        mb = _minibatch(target)
        return {"step_size": jnp.asarray(step_size, float), "data_fraction": jnp.asarray(mb.batch_size / mb.data_size)}

    warmup = None
    if step_size is None:
        tune = _tuning_warmup(PMALA, _mala_build(False), _stats, "identity", None, target_accept)

        def warmup(target, key, position, num_steps):
            mb = _minibatch(target)
            w = tune(target, key, position, num_steps)
            params = {"step_size": w.params["step_size"], "data_fraction": jnp.asarray(mb.batch_size / mb.data_size)}
            return Warmup(SGLDState(w.state.position), params, w.trace)

    return Sampler(name="sgld", build=build, stats=stats, default_params=default_params, warmup=warmup,
                   settings={"step_size": step_size, "target_accept": target_accept})
