"""HMC and NUTS from blackjax, with Stan-style window adaptation of whichever of step size and mass matrix
the user did not give (`adapt=` overrides: True adapts both, a name or tuple adapts exactly those)."""

from __future__ import annotations

import blackjax
import jax.numpy as jnp

from samplax.samplers.adapt import window_warmup
from samplax.samplers.base import Algorithm, Sampler, adapted_names, mass_matrix_default, register


TUNABLE = ("step_size", "inverse_mass_matrix")


def _setup(name, dense, target_accept, step_size, inverse_mass_matrix, adapt, build, stats):
    """(default_params, warmup, adapted): given values are used as given; the rest is window-adapted."""
    given = {"step_size": step_size, "inverse_mass_matrix": inverse_mass_matrix}
    adapted = adapted_names(adapt, TUNABLE, given)

    def params(target):
        imm = mass_matrix_default(target, dense) if inverse_mass_matrix is None else jnp.asarray(inverse_mass_matrix,
                                                                                               float)
        if imm.shape != mass_matrix_default(target, dense).shape:
            raise ValueError(f"inverse_mass_matrix must have shape {mass_matrix_default(target, dense).shape} "
                             f"(dense_mass={dense}), got {imm.shape}")
        return {"step_size": None if step_size is None else jnp.asarray(step_size, float), "inverse_mass_matrix": imm}

    def default_params(target):
        if step_size is None:
            raise ValueError(
                f"num_warmup=0 leaves the step size of {name} untuned: pass step_size=... (and optionally "
                "inverse_mass_matrix=...) as sampler settings, or use num_warmup > 0"
            )
        return params(target)

    if "step_size" not in adapted and step_size is None:
        raise ValueError(f"{name}: adapt={adapt!r} leaves step_size neither given nor adapted: pass step_size=...")
    warmup = None
    if adapted:
        warmup = window_warmup(build, stats, params, adapt_step="step_size" in adapted,
                               adapt_mass="inverse_mass_matrix" in adapted, dense=dense, target_accept=target_accept)
    return default_params, warmup, adapted


def _nonfinite(*states):
    """Whether any of these integrator states has a NaN/inf log-density or gradient."""
    bad = jnp.zeros((), bool)
    for st in states:
        bad = bad | ~jnp.isfinite(st.logdensity) | ~jnp.all(jnp.isfinite(st.logdensity_grad))
    return bad


def _hmc_stats(state, info, params):
    # a divergence whose trajectory ended on a NaN/inf log-density is the model's NaN region, not curvature:
    # blackjax turns a NaN energy into a divergence, so the ends of the trajectory are what tell them apart
    ends = ((info.trajectory_leftmost_state, info.trajectory_rightmost_state)
            if hasattr(info, "trajectory_leftmost_state") else (info.proposal,))
    return {
        "lp": state.logdensity,
        "acceptance_rate": info.acceptance_rate,
        "diverging": info.is_divergent,
        "diverging_nonfinite": info.is_divergent & _nonfinite(*ends),
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
         step_size: float | None = None, inverse_mass_matrix=None, adapt=None) -> Sampler:
    """No-U-Turn sampler (multinomial, blackjax) with window adaptation."""
    if not 0 < target_accept < 1:
        raise ValueError(f"target_accept must be in (0, 1), got {target_accept}")

    def build(target, params):
        alg = blackjax.nuts(target.logdensity, params["step_size"], params["inverse_mass_matrix"],
                            max_num_doublings=max_num_doublings)
        return Algorithm(lambda x, key: alg.init(x), alg.step)

    default_params, warmup, adapted = _setup("nuts", dense_mass, target_accept, step_size, inverse_mass_matrix,
                                             adapt, build, _nuts_stats)
    return Sampler(
        name="nuts", build=build, stats=_nuts_stats, default_params=default_params, warmup=warmup, adapted=adapted,
        settings={"dense_mass": dense_mass, "target_accept": target_accept, "max_num_doublings": max_num_doublings},
    )


@register("hmc")
def hmc(*, num_integration_steps: int = 16, dense_mass: bool = False, target_accept: float = 0.8,
        step_size: float | None = None, inverse_mass_matrix=None, adapt=None) -> Sampler:
    """Static HMC (fixed number of leapfrog steps) with window adaptation."""
    if num_integration_steps < 1:
        raise ValueError(f"num_integration_steps must be >= 1, got {num_integration_steps}")
    if not 0 < target_accept < 1:
        raise ValueError(f"target_accept must be in (0, 1), got {target_accept}")

    def build(target, params):
        alg = blackjax.hmc(target.logdensity, params["step_size"], params["inverse_mass_matrix"],
                           num_integration_steps)
        return Algorithm(lambda x, key: alg.init(x), alg.step)

    default_params, warmup, adapted = _setup("hmc", dense_mass, target_accept, step_size, inverse_mass_matrix,
                                             adapt, build, _hmc_stats)
    return Sampler(
        name="hmc", build=build, stats=_hmc_stats, default_params=default_params, warmup=warmup, adapted=adapted,
        settings={"num_integration_steps": num_integration_steps, "dense_mass": dense_mass,
                  "target_accept": target_accept},
    )
