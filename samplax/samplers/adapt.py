"""The one windowed warmup (Stan's, Hoffman & Gelman 2014 sec. 3.2.1 + Stan manual 15.2) for any Sampler.

Adapts `step_size` by dual averaging towards a target acceptance rate and/or `inverse_mass_matrix` by Welford
estimates over doubling slow windows, each only when asked: a fixed step size is used as given while the mass
matrix is estimated, and a fixed mass matrix makes it plain dual averaging. Built from blackjax's pieces
(`build_schedule`, `dual_averaging_adaptation`, `mass_matrix_adaptation`); with both adapted it is the schedule of
blackjax's `window_adaptation`, but it runs any samplax `build` / `stats` pair, so HMC, NUTS and the Langevin
family share it.
"""

from __future__ import annotations

import warnings
from typing import Callable

import jax
import jax.numpy as jnp
from blackjax.adaptation.mass_matrix import mass_matrix_adaptation
from blackjax.adaptation.staged_adaptation import build_schedule
from samplax.samplers.dual_averaging import dual_averaging_adaptation  # blackjax's, rewrite-stable across layouts

from samplax.samplers.base import Warmup


# blackjax's build_schedule (as Stan) estimates no mass matrix in a warmup shorter than this: all steps are fast
MIN_MASS_WARMUP = 20


def window_warmup(build, stats, initial_params: Callable, *, adapt_step: bool, adapt_mass: bool, dense: bool = False,
                  target_accept: float = 0.8, initial_step_size: float = 1.0):
    """Return `warmup(target, key, position, num_steps)` adapting the step size and/or the mass matrix.

    initial_params: target -> dict with "step_size" (None: start dual averaging at `initial_step_size`),
      "inverse_mass_matrix" and any other params, which stay fixed. Needs stats()["acceptance_rate"] when
      `adapt_step`.
    """
    if not (adapt_step or adapt_mass):
        raise ValueError("window_warmup with nothing to adapt: use no warmup (plain burn-in) instead")
    da_init, da_update, da_final = dual_averaging_adaptation(target_accept)
    mm_init, mm_update, mm_final = mass_matrix_adaptation(not dense)

    def warmup(target, key, position, num_steps):
        params = dict(initial_params(target))
        if params.get("step_size") is None:
            if not adapt_step:
                raise ValueError("step_size is neither given nor adapted: pass step_size=... or adapt it")
            params["step_size"] = initial_step_size
        params["step_size"] = jnp.asarray(params["step_size"], float)
        init_key, key = jax.random.split(key)
        state = build(target, params).init(position, init_key)
        da = da_init(params["step_size"]) if adapt_step else None
        mm = mm_init(target.dim, params["inverse_mass_matrix"]) if adapt_mass else None
        # Stan's windows when the mass matrix is estimated; otherwise every step is a "fast" (step size) step
        schedule = build_schedule(num_steps) if adapt_mass else jnp.zeros((num_steps, 2), int)
        if adapt_mass and num_steps < MIN_MASS_WARMUP:
            # build_schedule (as Stan) gives up on the mass matrix: every step is a fast one
            warnings.warn(f"num_warmup={num_steps} is below the {MIN_MASS_WARMUP} warmup steps the windowed warmup "
                          "needs to estimate the mass matrix: inverse_mass_matrix is NOT adapted (it stays the "
                          "identity, or the given one) and only the step size is; use num_warmup >= "
                          f"{MIN_MASS_WARMUP}, or pass inverse_mass_matrix=... with adapt='step_size'",
                          UserWarning, stacklevel=2)

        def one(carry, xs):
            state, params, da, mm = carry
            (stage, window_end), k = xs
            new, info = build(target, params).step(k, state)
            st = stats(new, info, params)
            if adapt_step:
                da = da_update(da, jnp.nan_to_num(st["acceptance_rate"], nan=0.0))
            if adapt_mass:
                mm = jax.lax.cond(stage == 1, lambda m: mm_update(m, new.position), lambda m: m, mm)

                def end(mm_da):  # new mass matrix; restart dual averaging from the averaged step (as Stan)
                    m, d = mm_da
                    return mm_final(m), (da_init(da_final(d)) if adapt_step else d)

                mm, da = jax.lax.cond(window_end.astype(bool), end, lambda a: a, (mm, da))
                params = {**params, "inverse_mass_matrix": mm.inverse_mass_matrix}
            if adapt_step:
                params = {**params, "step_size": jnp.exp(da.log_step_size)}
            return (new, params, da, mm), {"position": new.position, **st}

        keys = jax.random.split(key, num_steps)
        (state, params, da, mm), trace = jax.lax.scan(one, (state, params, da, mm), (schedule, keys))
        if adapt_step:
            params = {**params, "step_size": da_final(da)}
        return Warmup(state, params, trace)

    # what a warmup of num_steps leaves unadapted although the sampler declares it adapted: the run's
    # attrs["adapted"] leaves it out (samplax.run._adapted_names)
    warmup.unadapted = lambda num_steps: (("inverse_mass_matrix",) if adapt_mass and num_steps < MIN_MASS_WARMUP
                                          else ())
    return warmup
