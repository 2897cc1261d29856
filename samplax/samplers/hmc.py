"""HMC and NUTS from blackjax, with Stan-style window adaptation of step size and mass matrix."""

from __future__ import annotations

import blackjax
import jax.numpy as jnp
from blackjax.adaptation.base import get_filter_adapt_info_fn

from samplax.samplers.base import Algorithm, Sampler, Warmup, mass_matrix_default, register


def _tuned_params(target, dense, step_size, inverse_mass_matrix):
    if step_size is None:
        raise ValueError(
            "num_warmup=0 leaves the step size untuned: pass step_size=... (and optionally "
            "inverse_mass_matrix=...) as sampler settings, or use num_warmup > 0"
        )
    imm = mass_matrix_default(target, dense) if inverse_mass_matrix is None else jnp.asarray(inverse_mass_matrix)
    return {"step_size": jnp.asarray(step_size, dtype=float), "inverse_mass_matrix": imm}


def _window_warmup(algorithm, dense, target_accept, extra):
    keep = get_filter_adapt_info_fn(
        state_keys={"position", "logdensity"},
        info_keys={"acceptance_rate", "is_divergent", "num_integration_steps", "energy"},
        adapt_state_keys={"step_size"},
    )

    def warmup(target, key, position, num_steps):
        adapt = blackjax.window_adaptation(
            algorithm, target.logdensity, is_mass_matrix_diagonal=not dense,
            target_acceptance_rate=target_accept, adaptation_info_fn=keep, **extra,
        )
        (state, params), info = adapt.run(key, position, num_steps)
        trace = {
            "position": info.state.position,
            "lp": info.state.logdensity,
            "acceptance_rate": info.info.acceptance_rate,
            "diverging": info.info.is_divergent,
            "energy": info.info.energy,
            "n_grad": jnp.asarray(info.info.num_integration_steps),
            "step_size": info.adaptation_state.step_size,
        }
        params = {"step_size": params["step_size"], "inverse_mass_matrix": params["inverse_mass_matrix"]}
        return Warmup(state, params, trace)

    return warmup


def _hmc_stats(state, info, params):
    return {
        "lp": state.logdensity,
        "acceptance_rate": info.acceptance_rate,
        "diverging": info.is_divergent,
        "energy": info.energy,
        "n_grad": jnp.asarray(info.num_integration_steps),
        "step_size": params["step_size"],
    }


def _nuts_stats(state, info, params):
    out = _hmc_stats(state, info, params)
    out["tree_depth"] = jnp.asarray(info.num_trajectory_expansions)
    return out


@register("nuts")
def nuts(*, dense_mass: bool = False, target_accept: float = 0.8, max_num_doublings: int = 10,
         step_size: float | None = None, inverse_mass_matrix=None) -> Sampler:
    """No-U-Turn sampler (multinomial, blackjax) with window adaptation."""
    if not 0 < target_accept < 1:
        raise ValueError(f"target_accept must be in (0, 1), got {target_accept}")

    def build(target, params):
        alg = blackjax.nuts(target.logdensity, params["step_size"], params["inverse_mass_matrix"],
                            max_num_doublings=max_num_doublings)
        return Algorithm(lambda x, key: alg.init(x), alg.step)

    return Sampler(
        name="nuts", build=build, stats=_nuts_stats,
        default_params=lambda t: _tuned_params(t, dense_mass, step_size, inverse_mass_matrix),
        warmup=_window_warmup(blackjax.nuts, dense_mass, target_accept, {"max_num_doublings": max_num_doublings}),
        settings={"dense_mass": dense_mass, "target_accept": target_accept, "max_num_doublings": max_num_doublings},
    )


@register("hmc")
def hmc(*, num_integration_steps: int = 16, dense_mass: bool = False, target_accept: float = 0.8,
        step_size: float | None = None, inverse_mass_matrix=None) -> Sampler:
    """Static HMC (fixed number of leapfrog steps) with window adaptation."""
    if num_integration_steps < 1:
        raise ValueError(f"num_integration_steps must be >= 1, got {num_integration_steps}")
    if not 0 < target_accept < 1:
        raise ValueError(f"target_accept must be in (0, 1), got {target_accept}")

    def build(target, params):
        alg = blackjax.hmc(target.logdensity, params["step_size"], params["inverse_mass_matrix"],
                           num_integration_steps)
        return Algorithm(lambda x, key: alg.init(x), alg.step)

    return Sampler(
        name="hmc", build=build, stats=_hmc_stats,
        default_params=lambda t: _tuned_params(t, dense_mass, step_size, inverse_mass_matrix),
        warmup=_window_warmup(blackjax.hmc, dense_mass, target_accept,
                              {"num_integration_steps": num_integration_steps}),
        settings={"num_integration_steps": num_integration_steps, "dense_mass": dense_mass,
                  "target_accept": target_accept},
    )
