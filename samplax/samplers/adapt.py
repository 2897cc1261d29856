"""Generic step-size warmup by dual averaging (Hoffman & Gelman 2014, sec. 3.2.1) for any Sampler.

Works for every sampler whose params hold a `step_size` and whose stats report an
`acceptance_rate`; the rest of the params stay fixed. Used by samplers that blackjax's window
adaptation does not cover (MALA, adjusted Langevin, ...).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from blackjax.adaptation.step_size import dual_averaging_adaptation

from samplax.samplers.base import Warmup


def dual_averaging_warmup(build, stats, initial_params, target_accept: float, initial_step_size: float = 0.1):
    """Return a `warmup(target, key, position, num_steps)` that tunes `params["step_size"]`."""
    da_init, da_update, da_final = dual_averaging_adaptation(target_accept)

    def warmup(target, key, position, num_steps):
        params0 = dict(initial_params(target))
        init_key, key = jax.random.split(key)
        state = build(target, {**params0, "step_size": jnp.asarray(initial_step_size)}).init(position, init_key)

        def one(carry, k):
            state, da = carry
            params = {**params0, "step_size": jnp.exp(da.log_step_size)}
            new_state, info = build(target, params).step(k, state)
            st = stats(new_state, info, params)
            acc = jnp.nan_to_num(st["acceptance_rate"], nan=0.0)
            return (new_state, da_update(da, acc)), {
                "position": new_state.position, "lp": st["lp"], "acceptance_rate": st["acceptance_rate"],
                "n_grad": st["n_grad"], "step_size": params["step_size"],
            }

        keys = jax.random.split(key, num_steps)
        (state, da), trace = jax.lax.scan(one, (state, da_init(initial_step_size)), keys)
        return Warmup(state, {**params0, "step_size": da_final(da)}, trace)

    return warmup


def window_warmup(family, *, dense: bool, target_accept: float, extra: dict | None = None,
                  initial_inverse_mass_matrix=None):
    """Stan-style windowed step size + mass matrix warmup (blackjax `window_adaptation`) for any `family`.

    `family` is anything shaped like a blackjax algorithm: `init(position, logdensity_fn)` and
    `build_kernel()` returning `kernel(key, state, logdensity_fn, step_size, inverse_mass_matrix, **extra)`,
    whose state has `position`, `logdensity`, `logdensity_grad` and info an `acceptance_rate`.
    """
    import blackjax
    from blackjax.adaptation.base import get_filter_adapt_info_fn

    extra = dict(extra or {})
    keep = get_filter_adapt_info_fn(state_keys={"position", "logdensity"}, info_keys={"acceptance_rate"},
                                    adapt_state_keys={"step_size"})

    def warmup(target, key, position, num_steps):
        adapt = blackjax.window_adaptation(
            family, target.logdensity, is_mass_matrix_diagonal=not dense,
            initial_inverse_mass_matrix=initial_inverse_mass_matrix, target_acceptance_rate=target_accept,
            adaptation_info_fn=keep, **extra,
        )
        (state, params), info = adapt.run(key, position, num_steps)
        trace = {
            "position": info.state.position, "lp": info.state.logdensity,
            "acceptance_rate": info.info.acceptance_rate, "n_grad": jnp.ones(num_steps, int),
            "step_size": info.adaptation_state.step_size,
        }
        return Warmup(state, {"step_size": params["step_size"], "inverse_mass_matrix": params["inverse_mass_matrix"]},
                      trace)

    return warmup
