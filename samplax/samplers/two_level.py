"""Two-level MCMC with a surrogate: proposals screened by a cheap log-density, corrected by the expensive one.

`sample(target, "two_level", surrogate=cheap, ...)`. Each step runs `subchain_length` Metropolis moves
(`move="mala"` or `"rwm"`, preconditioned by C) that leave the surrogate density p~ invariant, starting from
the current point x; their end point y is then accepted with

    min(1, p(y) p~(x) / (p(x) p~(y)))

(Christen & Fox 2005, "Markov chain Monte Carlo using an approximation"; with a sub-chain of length > 1 this is
the two-level scheme of multilevel MCMC: the sub-chain is p~-reversible, so its transition cancels in the ratio
like a symmetric proposal). The chain is exact for the expensive target p whatever the surrogate, as long as
p~ > 0 wherever p > 0; a poor surrogate only lowers the second-stage acceptance. Each step costs exactly one
expensive log-density evaluation (no expensive gradient), `subchain_length` surrogate evaluations and, for
MALA moves, as many surrogate gradients.

Stats: `acceptance_rate` is the first stage's (the sub-chain's mean Metropolis acceptance on p~, what the
warmup tunes the step size for), `correction_acceptance` the second stage's, `n_expensive` the expensive
evaluations, `n_surrogate` the surrogate evaluations and `n_grad` the gradients (all of the surrogate).
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
from blackjax.mcmc import proposal
from blackjax.mcmc.mala import MALAState

from samplax import checks
from samplax.samplers import langevin_base as lb
from samplax.samplers.base import Algorithm, Sampler, register
from samplax.samplers.overdamped import pmala_kernel
from samplax.samplers.precondition import precond

MOVES = ("mala", "rwm")
# optimal first-stage acceptance for the sub-chain's moves (Roberts & Rosenthal 1998 / 2001)
TARGET_ACCEPT = {"mala": 0.574, "rwm": 0.234}


class TwoLevelState(NamedTuple):
    position: jax.Array
    logdensity: jax.Array  # expensive log p(x)
    surrogate_logdensity: jax.Array  # log p~(x)
    surrogate_grad: jax.Array  # grad log p~(x) (zeros for rwm, never used)


class TwoLevelInfo(NamedTuple):
    acceptance_rate: jax.Array  # mean first-stage (surrogate) acceptance probability over the sub-chain
    correction_acceptance: jax.Array  # second-stage acceptance probability
    is_accepted: jax.Array
    is_divergent: jax.Array  # the proposal's expensive log-density was NaN/inf
    nonfinite: jax.Array  # the same (a NaN region of the model, not curvature)


def _rwm_kernel(key, state: MALAState, logdensity_fn, step_size, inverse_mass_matrix):
    """Preconditioned random-walk Metropolis y = x + sqrt(h) C^{1/2} xi (symmetric: no proposal ratio)."""
    pc = precond(inverse_mass_matrix)
    key_move, key_mh = jax.random.split(key)
    y = state.position + jnp.sqrt(step_size) * pc.sqrt_noise(key_move, state.position)
    new = MALAState(y, logdensity_fn(y), state.logdensity_grad)
    log_ratio = jnp.where(jnp.isnan(new.logdensity), -jnp.inf, new.logdensity - state.logdensity)
    out, (accepted, p_accept, _) = proposal.static_binomial_sampling(key_mh, log_ratio, state, new)
    return out, p_accept


def _mala_kernel(key, state: MALAState, logdensity_fn, step_size, inverse_mass_matrix):
    out, info = pmala_kernel(key, state, logdensity_fn, step_size, inverse_mass_matrix)
    return out, info.acceptance_rate


def two_level_kernel(key, state: TwoLevelState, logdensity_fn, surrogate_fn, move: str, subchain_length: int,
                     step_size, inverse_mass_matrix):
    """One two-level step: `subchain_length` surrogate moves from x, then the expensive accept/reject."""
    inner = _mala_kernel if move == "mala" else _rwm_kernel
    key_sub, key_mh = jax.random.split(key)

    def sub(s, k):
        s, p = inner(k, s, surrogate_fn, step_size, inverse_mass_matrix)
        return s, p

    start = MALAState(state.position, state.surrogate_logdensity, state.surrogate_grad)
    end, p_accept = jax.lax.scan(sub, start, jax.random.split(key_sub, subchain_length))
    lp = logdensity_fn(end.position)
    log_ratio = (lp - state.logdensity) - (end.logdensity - state.surrogate_logdensity)
    log_ratio = jnp.where(jnp.isnan(log_ratio), -jnp.inf, log_ratio)
    proposed = TwoLevelState(end.position, lp, end.logdensity, end.logdensity_grad)
    out, (accepted, p2, _) = proposal.static_binomial_sampling(key_mh, log_ratio, state, proposed)
    return out, TwoLevelInfo(jnp.mean(p_accept), p2, accepted, ~jnp.isfinite(lp), ~jnp.isfinite(lp))


def as_logdensity(surrogate, dim: int) -> Callable:
    """The surrogate's log-density on the target's flat unconstrained space: a Target of the same dimension
    (e.g. the same numpyro model with a coarse solver, so both share one parametrisation) or a callable."""
    from samplax.target import Target

    if isinstance(surrogate, Target):
        if surrogate.dim != dim:
            raise ValueError(f"two_level: surrogate has dimension {surrogate.dim} but the target has {dim}; the "
                             "surrogate must be a log-density on the same (unconstrained) space")
        return surrogate.logdensity
    if callable(surrogate):
        try:
            value = jax.eval_shape(surrogate, jax.ShapeDtypeStruct((dim,), jnp.result_type(float)))
        except Exception as err:  # noqa: BLE001 - re-raised with what to do
            raise ValueError(f"two_level: surrogate could not be evaluated on a vector of shape ({dim},): {err}; "
                             "pass a samplax.Target or a function x -> log-density on the target's flat space") \
                from err
        if value.shape != ():
            raise ValueError(f"two_level: surrogate must return a scalar log-density, got shape {value.shape}")
        return surrogate
    raise TypeError(f"two_level: surrogate must be a samplax.Target or a callable x -> log-density, got "
                    f"{type(surrogate).__name__}")


def _stats(subchain_length: int, move: str):
    per_step_grads = subchain_length if move == "mala" else 0

    def stats(state, info, params):
        out = lb.stats(state, info, params, n_grad=per_step_grads)
        out["correction_acceptance"] = info.correction_acceptance
        out["n_expensive"] = jnp.asarray(1, jnp.int64 if jax.config.jax_enable_x64 else jnp.int32)
        out["n_surrogate"] = jnp.asarray(subchain_length, out["n_expensive"].dtype)
        return out

    return stats


@register("two_level")
def two_level(*, surrogate: Any = None, move: str = "mala", subchain_length: int = 1,
              target_accept: float | None = None, mass_matrix: str = "diagonal", step_size: float | None = None,
              inverse_mass_matrix=None, adapt=None) -> Sampler:
    """Delayed-acceptance / two-level MCMC, exact for the target, with proposals from a cheap `surrogate`.

    surrogate: a samplax.Target of the same dimension (same parametrisation) or a callable x -> log p~(x).
    move: "mala" (surrogate gradients) or "rwm" (gradient-free) moves on the surrogate.
    subchain_length: surrogate moves per expensive evaluation (1: Christen & Fox's delayed acceptance).
    target_accept: the first stage's acceptance the warmup tunes h for (default 0.574 mala / 0.234 rwm).
    mass_matrix / step_size / inverse_mass_matrix / adapt: as for `mala`; C and h are adapted in warmup on
      the first stage (the surrogate moves), which costs one expensive evaluation per warmup step as well.
    """
    if surrogate is None:
        raise ValueError("two_level needs surrogate=...: a cheap samplax.Target (or x -> log-density) of the same "
                         "dimension, e.g. the model solved on a coarse grid")
    if not checks.member(move, MOVES):
        raise ValueError(f"two_level: move must be one of {MOVES}, got {move!r}")
    subchain_length = checks.integer("two_level: subchain_length", subchain_length, 1)  # np.int64 too
    lb.check_settings(mass_matrix, step_size)
    stats = _stats(subchain_length, move)

    def build(target, params):
        cheap = as_logdensity(surrogate, target.dim)

        def init(x, key):
            lp_s, grad_s = (jax.value_and_grad(cheap)(x) if move == "mala"
                            else (cheap(x), jnp.zeros_like(x)))
            return TwoLevelState(x, target.logdensity(x), lp_s, grad_s)

        def step(key, state):
            return two_level_kernel(key, state, target.logdensity, cheap, move, subchain_length,
                                    params["step_size"], params["inverse_mass_matrix"])

        return Algorithm(init, step)

    default_params, warmup, adapted, target_accept = lb.setup(
        "two_level", mass_matrix=mass_matrix, target_accept=target_accept, default_target_accept=TARGET_ACCEPT[move],
        step_size=step_size,
        inverse_mass_matrix=inverse_mass_matrix, adapt=adapt, build=build, step_stats=stats)
    return Sampler(name="two_level", build=build, stats=stats, default_params=default_params, warmup=warmup,
                   adapted=adapted,
                   settings={"surrogate": surrogate, "move": move, "subchain_length": subchain_length,
                             "target_accept": target_accept, "mass_matrix": mass_matrix})
