"""Overdamped Langevin: ULA and MALA, preconditioned by an inverse mass matrix C.

x' = x + h C grad log p(x) + sqrt(2h) C^{1/2} xi; MALA adds the Metropolis-Hastings test. How h and C are
chosen: `samplax.samplers.langevin_base`.
"""

from __future__ import annotations

from typing import NamedTuple

import blackjax
import jax
import jax.numpy as jnp
from blackjax.mcmc import proposal
from blackjax.mcmc.mala import MALAState

from samplax.samplers import langevin_base as lb
from samplax.samplers.base import Algorithm, DefaultValue, Sampler, nonfinite_state, register
from samplax.samplers.precondition import Precond, precond

MALA_TARGET_ACCEPT = DefaultValue(0.574)  # optimal for MALA (Roberts & Rosenthal 1998)


def overdamped_move(key, state: MALAState, logdensity_fn, step_size, pc: Precond) -> MALAState:
    """One Euler-Maruyama step of preconditioned overdamped Langevin (the ULA step, MALA's proposal)."""
    x = state.position
    new = x + step_size * pc.apply(state.logdensity_grad) + jnp.sqrt(2 * step_size) * pc.sqrt_noise(key, x)
    lp, grad = jax.value_and_grad(logdensity_fn)(new)
    return MALAState(new, lp, grad)


class ULAInfo(NamedTuple):
    is_divergent: jax.Array
    nonfinite: jax.Array  # the step reached a NaN/inf log-density or gradient


class PMALAInfo(NamedTuple):
    acceptance_rate: jax.Array
    is_accepted: jax.Array
    nonfinite: jax.Array  # the proposal met a NaN / +inf log-density, or a non-finite gradient where it is finite


def ula_kernel(rng_key, state: MALAState, logdensity_fn, step_size, inverse_mass_matrix):
    new = overdamped_move(rng_key, state, logdensity_fn, step_size, precond(inverse_mass_matrix))
    bad = nonfinite_state(new)
    return new, ULAInfo(bad, bad)


def pmala_kernel(rng_key, state: MALAState, logdensity_fn, step_size, inverse_mass_matrix):
    """Preconditioned MALA: ULA proposal + MH with its Gaussian q. With C = 1 it is blackjax's MALA step for step
    (tests/test_langevin.py), which reports nothing of a proposal it rejects: this kernel also says whether the
    proposal met a NaN / +inf log-density or a non-finite gradient (the model's NaN region, rejected, never
    counted before). A clean -inf (zero density) is only a rejection, exact for MH."""
    pc = precond(inverse_mass_matrix)
    key_move, key_mh = jax.random.split(rng_key)
    new = overdamped_move(key_move, state, logdensity_fn, step_size, pc)

    def log_q(to, frm):
        r = to.position - frm.position - step_size * pc.apply(frm.logdensity_grad)
        return -pc.quad_inv(r) / (4 * step_size)

    log_ratio = new.logdensity - state.logdensity + log_q(state, new) - log_q(new, state)
    log_ratio = jnp.where(jnp.isnan(log_ratio), -jnp.inf, log_ratio)
    out, (accepted, p_accept, _) = proposal.static_binomial_sampling(key_mh, log_ratio, state, new)
    zero_density = new.logdensity == -jnp.inf
    return out, PMALAInfo(p_accept, accepted, nonfinite_state(new) & ~zero_density)


def mala_build():
    def build(target, params):
        # params without a mass matrix (a caller building the kernel from {"step_size": h} alone, as blackjax's
        # MALA took it) mean C = 1
        imm = params.get("inverse_mass_matrix")
        imm = jnp.ones(target.dim) if imm is None else imm
        return Algorithm(
            lambda x, key: blackjax.mala.init(x, target.logdensity),
            lambda key, s: pmala_kernel(key, s, target.logdensity, params["step_size"], imm))

    return build


@register("mala")
def mala(*, target_accept: float = MALA_TARGET_ACCEPT, mass_matrix: str = "identity", step_size: float | None = None,
         inverse_mass_matrix=None, adapt=None) -> Sampler:
    """Metropolis-adjusted Langevin; 0.574 is optimal for MALA (Roberts & Rosenthal 1998).

    mass_matrix: "identity" (C = 1: blackjax's MALA step for step), or "diagonal" / "dense" C estimated in warmup.
    A proposal that meets a NaN / +inf log-density is rejected and reported (`diverging_nonfinite`).
    """
    lb.check_settings(mass_matrix, step_size)
    build = mala_build()
    default_params, warmup, adapted, target_accept = lb.setup(
        "mala", mass_matrix=mass_matrix, target_accept=target_accept, default_target_accept=MALA_TARGET_ACCEPT,
        step_size=step_size,
        inverse_mass_matrix=inverse_mass_matrix, adapt=adapt, build=build)
    return Sampler(name="mala", build=build, stats=lb.stats, default_params=default_params, warmup=warmup,
                   adapted=adapted, settings={"target_accept": target_accept, "mass_matrix": mass_matrix})


@register("ula")
def ula(*, target_accept: float = lb.UNADJUSTED_TARGET_ACCEPT, mass_matrix: str = "identity",
        step_size: float | None = None, inverse_mass_matrix=None, adapt=None) -> Sampler:
    """Unadjusted Langevin x' = x + h C grad log p + sqrt(2h) C^{1/2} xi; h from MALA warmup at `target_accept`."""
    lb.check_settings(mass_matrix, step_size)

    def build(target, params):
        return Algorithm(
            lambda x, key: blackjax.mala.init(x, target.logdensity),
            lambda key, s: ula_kernel(key, s, target.logdensity, params["step_size"], params["inverse_mass_matrix"]))

    default_params, warmup, adapted, target_accept = lb.setup(
        "ula", mass_matrix=mass_matrix, target_accept=target_accept,
        default_target_accept=lb.UNADJUSTED_TARGET_ACCEPT, step_size=step_size,
        inverse_mass_matrix=inverse_mass_matrix, adapt=adapt, build=build, tune_build=mala_build())
    return Sampler(name="ula", build=build, stats=lb.stats, default_params=default_params, warmup=warmup,
                   adapted=adapted, settings={"target_accept": target_accept, "mass_matrix": mass_matrix})
