"""Langevin samplers. MALA from blackjax with dual-averaging step-size warmup."""

from __future__ import annotations

import blackjax
import jax.numpy as jnp

from samplax.samplers.adapt import dual_averaging_warmup
from samplax.samplers.base import Algorithm, Sampler, register


@register("mala")
def mala(*, target_accept: float = 0.574, step_size: float | None = None) -> Sampler:
    """Metropolis-adjusted Langevin (blackjax); 0.574 is optimal for MALA (Roberts & Rosenthal 1998)."""
    if not 0 < target_accept < 1:
        raise ValueError(f"target_accept must be in (0, 1), got {target_accept}")

    def build(target, params):
        alg = blackjax.mala(target.logdensity, params["step_size"])
        return Algorithm(lambda x, key: alg.init(x), alg.step)

    def stats(state, info, params):
        return {"lp": state.logdensity, "acceptance_rate": info.acceptance_rate,
                "diverging": ~jnp.isfinite(state.logdensity), "n_grad": jnp.asarray(1),
                "step_size": params["step_size"]}

    def default_params(target):
        if step_size is None:
            raise ValueError("num_warmup=0 leaves mala untuned: pass step_size=..., or use num_warmup > 0")
        return {"step_size": jnp.asarray(step_size, float)}

    return Sampler(
        name="mala", build=build, stats=stats, default_params=default_params,
        warmup=dual_averaging_warmup(build, stats, lambda t: {}, target_accept),
        settings={"target_accept": target_accept},
    )
