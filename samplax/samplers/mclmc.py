"""Microcanonical samplers from blackjax: unadjusted MCLMC and adjusted MCLMC (MAMS)."""

from __future__ import annotations

import blackjax
import jax
import jax.numpy as jnp
from blackjax.mcmc import adjusted_mclmc_dynamic, integrators
from blackjax.mcmc import mclmc as bj_mclmc

from samplax.samplers.base import Algorithm, Sampler, Warmup, register

# Both use the isokinetic McLachlan integrator: two gradient evaluations per step
# (blackjax default; Robnik et al. 2023, "Microcanonical Hamiltonian Monte Carlo").
GRADS_PER_STEP = 2


def _untuned(name, L, step_size, dim):
    if L is None or step_size is None:
        raise ValueError(f"num_warmup=0 leaves {name} untuned: pass L=... and step_size=..., or use num_warmup > 0")
    return {"L": jnp.asarray(L, float), "step_size": jnp.asarray(step_size, float),
            "inverse_mass_matrix": jnp.ones(dim)}


def _split(num_steps, fractions):
    # blackjax tunes over fractions of "the number of steps that will be run"; we express
    # the user's num_warmup as that budget so warmup costs about num_warmup steps.
    return max(int(round(num_steps / sum(fractions))), 1)


@register("mclmc")
def mclmc(*, diagonal_preconditioning: bool = True, desired_energy_var: float = 5e-4,
          L: float | None = None, step_size: float | None = None) -> Sampler:
    """Unadjusted microcanonical Langevin MC with blackjax's L / step-size tuning."""
    fracs = (0.4, 0.3, 0.3)

    def build(target, params):
        alg = blackjax.mclmc(target.logdensity, L=params["L"], step_size=params["step_size"],
                             inverse_mass_matrix=params["inverse_mass_matrix"])
        return Algorithm(lambda x, key: alg.init(x, key), alg.step)

    def warmup(target, key, position, num_steps):
        init_key, tune_key = jax.random.split(key)
        state = bj_mclmc.init(position, target.logdensity, init_key)
        kernel = bj_mclmc.build_kernel(desired_energy_var=desired_energy_var)
        state, p, n_tune = blackjax.mclmc_find_L_and_step_size(
            mclmc_kernel=kernel, num_steps=_split(num_steps, fracs), state=state, rng_key=tune_key,
            logdensity_fn=target.logdensity, frac_tune1=fracs[0], frac_tune2=fracs[1], frac_tune3=fracs[2],
            desired_energy_var=desired_energy_var, diagonal_preconditioning=diagonal_preconditioning,
        )
        params = {"L": p.L, "step_size": p.step_size, "inverse_mass_matrix": jnp.asarray(p.inverse_mass_matrix)
                  * jnp.ones(target.dim)}
        return Warmup(state, params, {"n_grad_total": jnp.asarray(n_tune * GRADS_PER_STEP)})

    def stats(state, info, params):
        return {"lp": state.logdensity, "energy_change": info.energy_change, "diverging": ~info.nonans,
                "n_grad": jnp.asarray(GRADS_PER_STEP), "step_size": params["step_size"], "L": params["L"]}

    return Sampler(
        name="mclmc", build=build, stats=stats, warmup=warmup,
        default_params=lambda t: _untuned("mclmc", L, step_size, t.dim),
        settings={"diagonal_preconditioning": diagonal_preconditioning, "desired_energy_var": desired_energy_var},
    )


@register("mams")
def mams(*, target_accept: float = 0.9, diagonal_preconditioning: bool = True,
         L: float | None = None, step_size: float | None = None) -> Sampler:
    """Metropolis-adjusted microcanonical sampler (adjusted MCLMC, random trajectory length)."""
    if not 0 < target_accept < 1:
        raise ValueError(f"target_accept must be in (0, 1), got {target_accept}")
    steps_fn = adjusted_mclmc_dynamic.make_random_trajectory_length_fn(True)
    kernel = adjusted_mclmc_dynamic.build_kernel(integration_steps_fn=steps_fn,
                                                 integrator=integrators.isokinetic_mclachlan)
    fracs = (0.4, 0.4, 0.0)

    def build(target, params):
        def step(key, state):
            return kernel(key, state, target.logdensity, params["step_size"],
                          inverse_mass_matrix=params["inverse_mass_matrix"],
                          integration_steps_params=(params["L"] / params["step_size"],))

        return Algorithm(lambda x, key: adjusted_mclmc_dynamic.init(x, target.logdensity, key), step)

    def warmup(target, key, position, num_steps):
        init_key, tune_key = jax.random.split(key)
        state = adjusted_mclmc_dynamic.init(position, target.logdensity, init_key)
        state, p, n_tune = blackjax.adjusted_mclmc_find_L_and_step_size(
            mclmc_kernel=kernel, logdensity_fn=target.logdensity, num_steps=_split(num_steps, fracs),
            state=state, rng_key=tune_key, target=target_accept, frac_tune1=fracs[0], frac_tune2=fracs[1],
            frac_tune3=fracs[2], diagonal_preconditioning=diagonal_preconditioning,
        )
        params = {"L": p.L, "step_size": p.step_size, "inverse_mass_matrix": jnp.asarray(p.inverse_mass_matrix)
                  * jnp.ones(target.dim)}
        return Warmup(state, params, {"n_grad_total": jnp.asarray(n_tune * GRADS_PER_STEP)})

    def stats(state, info, params):
        return {"lp": state.logdensity, "acceptance_rate": info.acceptance_rate, "diverging": info.is_divergent,
                "energy": info.energy, "n_grad": GRADS_PER_STEP * jnp.asarray(info.num_integration_steps),
                "step_size": params["step_size"], "L": params["L"]}

    return Sampler(
        name="mams", build=build, stats=stats, warmup=warmup,
        default_params=lambda t: _untuned("mams", L, step_size, t.dim),
        settings={"target_accept": target_accept, "diagonal_preconditioning": diagonal_preconditioning},
    )
