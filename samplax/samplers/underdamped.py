"""Underdamped (kinetic) Langevin: BAOAB / OBABO splittings, and adjusted OBABO (= blackjax GHMC).

Kinetic energy p^T C p / 2 and friction `gamma`: dp = grad log p dt - gamma p dt + sqrt(2 gamma) C^{-1/2} dW.
How h and C are chosen: `samplax.samplers.langevin_base`.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from blackjax.mcmc import ghmc

from samplax import checks
from samplax.samplers import langevin_base as lb
from samplax.samplers.base import Algorithm, Sampler, nonfinite_state, register
from samplax.samplers.precondition import precond

SPLITTINGS = ("baoab", "obabo")


class UnderdampedState(NamedTuple):
    position: jax.Array
    momentum: jax.Array
    logdensity: jax.Array
    logdensity_grad: jax.Array


class UnderdampedInfo(NamedTuple):
    energy: jax.Array
    is_divergent: jax.Array
    nonfinite: jax.Array  # the step reached a NaN/inf log-density or gradient


def underdamped_kernel(splitting: str):
    """Unadjusted kinetic Langevin, one gradient per step: BAOAB or OBABO splitting."""
    if not checks.member(splitting, SPLITTINGS):
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
        new = UnderdampedState(x, p, lp, g)
        return new, UnderdampedInfo(energy, ~jnp.isfinite(energy), nonfinite_state(new))

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


def ghmc_init(position, logdensity_fn, key, inverse_mass_matrix):
    lp, grad = jax.value_and_grad(logdensity_fn)(position)
    momentum = precond(inverse_mass_matrix).momentum(key, position)
    return ghmc.GHMCState(position, momentum, lp, grad, jnp.zeros((), position.dtype))


def _to_unadjusted(s):
    return UnderdampedState(s.position, s.momentum, s.logdensity, s.logdensity_grad)


@register("underdamped")
def underdamped(*, splitting: str = "obabo", gamma: float = 1.0, adjusted: bool = False,
                target_accept: float | None = None, mass_matrix: str = "identity",
                step_size: float | None = None, inverse_mass_matrix=None, adapt=None) -> Sampler:
    """Kinetic Langevin with friction `gamma`; `adjusted=True` is OBABO with an MH test on BAB (GHMC).

    target_accept: for adjusted=True the dual-averaging target (default 0.8: a rejection flips the momentum
      and so undoes its persistence, so high acceptance pays); for adjusted=False the acceptance of adjusted
      OBABO that sets the unadjusted step (default 0.9, see `langevin_base`).
    """
    if not checks.member(splitting, SPLITTINGS):
        raise ValueError(f"splitting must be one of {SPLITTINGS}, got {splitting!r}")
    if adjusted and splitting != "obabo":
        raise ValueError("adjusted=True needs splitting='obabo' (the MH test acts on the Hamiltonian BAB part; "
                         "BAOAB's O sits inside it)")
    if not gamma > 0:
        raise ValueError(f"gamma (friction) must be > 0, got {gamma}")
    lb.check_settings(mass_matrix, step_size)
    kernel = underdamped_kernel(splitting)

    def build_adjusted(target, params):
        return Algorithm(
            lambda x, key: ghmc_init(x, target.logdensity, key, params["inverse_mass_matrix"]),
            lambda key, s: adjusted_obabo_kernel(key, s, target.logdensity, params["step_size"],
                                                 params["inverse_mass_matrix"], gamma))

    def build_unadjusted(target, params):
        def init(x, key):
            return _to_unadjusted(ghmc_init(x, target.logdensity, key, params["inverse_mass_matrix"]))

        return Algorithm(init, lambda key, s: kernel(key, s, target.logdensity, params["step_size"],
                                                     params["inverse_mass_matrix"], gamma))

    build = build_adjusted if adjusted else build_unadjusted
    default_params, warmup, adapted, target_accept = lb.setup(
        "underdamped", mass_matrix=mass_matrix, target_accept=target_accept,
        default_target_accept=0.8 if adjusted else lb.UNADJUSTED_TARGET_ACCEPT, step_size=step_size,
        inverse_mass_matrix=inverse_mass_matrix, adapt=adapt, build=build,
        tune_build=None if adjusted else build_adjusted, to_state=None if adjusted else _to_unadjusted)
    return Sampler(
        name="underdamped", build=build, stats=lb.stats, default_params=default_params, warmup=warmup,
        adapted=adapted, settings={"splitting": splitting, "gamma": gamma, "adjusted": adjusted,
                                   "target_accept": target_accept, "mass_matrix": mass_matrix},
    )
