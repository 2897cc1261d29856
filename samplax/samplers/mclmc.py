"""Microcanonical samplers from blackjax: unadjusted MCLMC and adjusted MCLMC (MAMS); the tuning they share
with `secd` (blackjax's L / step-size tuners, restricted to the params the user did not give)."""

from __future__ import annotations

from typing import Callable

import blackjax
import jax
import jax.numpy as jnp
from blackjax.adaptation.mclmc_adaptation import MCLMCAdaptationState
from blackjax.adaptation.step_size import dual_averaging_adaptation
from blackjax.mcmc import adjusted_mclmc_dynamic, integrators
from blackjax.mcmc import mclmc as bj_mclmc
from blackjax.mcmc.dynamic_hmc import DynamicHMCState
from blackjax.util import generate_unit_vector

from samplax.samplers.base import Algorithm, Sampler, Warmup, adapted_names, register

# Both use the isokinetic McLachlan integrator: two gradient evaluations per step
# (blackjax default; Robnik et al. 2023, "Microcanonical Hamiltonian Monte Carlo").
GRADS_PER_STEP = 2


def tuning_budget(num_steps, fractions):
    # blackjax tunes over fractions of "the number of steps that will be run"; we express
    # the user's num_warmup as that budget so warmup costs about num_warmup steps.
    return max(int(round(num_steps / sum(fractions))), 1)


class Microcanonical:
    """Params L, step_size, inverse_mass_matrix (diagonal) of a microcanonical sampler: which are given, which
    adapted, and a warmup running a blackjax tuner whose kernel always uses the given (fixed) values."""

    def __init__(self, name, *, L, step_size, inverse_mass_matrix, diagonal_preconditioning, adapt):
        self.name = name
        self.given = {"L": L, "step_size": step_size, "inverse_mass_matrix": inverse_mass_matrix}
        tunable = ("L", "step_size") + (("inverse_mass_matrix",) if diagonal_preconditioning else ())
        self.adapted = adapted_names(adapt, tunable, self.given)
        missing = [n for n in ("L", "step_size") if n not in self.adapted and self.given[n] is None]
        if missing:
            raise ValueError(f"{name}: adapt={adapt!r} leaves {missing} neither given nor adapted: pass them")

    def imm(self, target):
        imm = self.given["inverse_mass_matrix"]
        imm = jnp.ones(target.dim) if imm is None else jnp.asarray(imm, float)
        if imm.shape != (target.dim,):
            raise ValueError(f"{self.name}: inverse_mass_matrix must be diagonal, shape ({target.dim},), got "
                             f"{imm.shape}")
        return imm

    def default_params(self, target):
        if self.given["L"] is None or self.given["step_size"] is None:
            raise ValueError(f"num_warmup=0 leaves {self.name} untuned: pass L=... and step_size=..., or use "
                             "num_warmup > 0")
        return {"L": jnp.asarray(self.given["L"], float), "step_size": jnp.asarray(self.given["step_size"], float),
                "inverse_mass_matrix": self.imm(target)}

    def fixed(self, target):
        out = {k: jnp.asarray(v, float) for k, v in self.given.items()
               if v is not None and k not in self.adapted and k != "inverse_mass_matrix"}
        if "inverse_mass_matrix" not in self.adapted:
            out["inverse_mass_matrix"] = self.imm(target)
        return out

    def warmup(self, init: Callable, tune: Callable, grads_per_step: int, L_scales_with_step: Callable):
        """None when nothing is adapted (plain burn-in); else warmup(target, key, position, num_steps).

        tune(fixed, state, key, target, num_steps, start) -> (state, MCLMCAdaptationState, integrator steps);
        L_scales_with_step(num_steps): whether the tuner's final L is proportional to its own step size (then a
        fixed step size rescales it: the tuner measured autocorrelations in steps of the fixed size).
        """
        if not self.adapted:
            return None

        def warmup(target, key, position, num_steps):
            fixed = self.fixed(target)
            d = target.dim
            init_key, tune_key = jax.random.split(key)
            state = init(position, target.logdensity, init_key)
            g = {k: v for k, v in self.given.items() if v is not None}
            start = None  # nothing given: blackjax's own starting values
            if g:
                start = MCLMCAdaptationState(jnp.asarray(g.get("L", jnp.sqrt(d)), float),
                                             jnp.asarray(g.get("step_size", 0.25 * jnp.sqrt(d)), float),
                                             fixed.get("inverse_mass_matrix", self.imm(target)))
            state, p, n_tune = tune(fixed, state, tune_key, target, num_steps, start)
            L = p.L
            if "step_size" in fixed and "L" not in fixed and L_scales_with_step(num_steps):
                L = p.L * fixed["step_size"] / p.step_size
            params = {"L": fixed.get("L", L), "step_size": fixed.get("step_size", p.step_size),
                      "inverse_mass_matrix": fixed.get("inverse_mass_matrix",
                                                       jnp.asarray(p.inverse_mass_matrix) * jnp.ones(d))}
            return Warmup(state, params, {"n_grad_total": jnp.asarray(n_tune * grads_per_step)})

        return warmup


def mclmc_tuner(kernel, fractions, desired_energy_var, l_factor=None):
    """blackjax's MCLMC tuner (energy-error step size, diagonal preconditioner, L from autocorrelation) for
    `kernel(rng_key, state, logdensity_fn, inverse_mass_matrix, L, step_size)`, holding `fixed` params.
    l_factor: L = l_factor x step size x autocorrelation time in stage 3 (None: blackjax's default, 0.4)."""
    extra = {} if l_factor is None else {"l_factor": l_factor}

    def tune(fixed, state, key, target, num_steps, start):
        def held(**kw):
            return kernel(**{**kw, **fixed})

        return blackjax.mclmc_find_L_and_step_size(
            mclmc_kernel=held, num_steps=tuning_budget(num_steps, fractions), state=state, rng_key=key,
            logdensity_fn=target.logdensity, frac_tune1=fractions[0], frac_tune2=fractions[1],
            frac_tune3=fractions[2], desired_energy_var=desired_energy_var,
            diagonal_preconditioning="inverse_mass_matrix" not in fixed,
            params=start, **extra)

    def L_scales(num_steps):  # stage 3 (L = l_factor * step_size * autocorrelation time) runs
        return round(tuning_budget(num_steps, fractions) * fractions[2]) >= 2

    return tune, L_scales


MCLMC_FRACTIONS = (0.4, 0.3, 0.3)


@register("mclmc")
def mclmc(*, diagonal_preconditioning: bool = True, desired_energy_var: float = 5e-4,
          L: float | None = None, step_size: float | None = None, inverse_mass_matrix=None, adapt=None) -> Sampler:
    """Unadjusted microcanonical Langevin MC with blackjax's L / step-size tuning of what is not given."""
    mc = Microcanonical("mclmc", L=L, step_size=step_size, inverse_mass_matrix=inverse_mass_matrix,
                        diagonal_preconditioning=diagonal_preconditioning, adapt=adapt)

    def build(target, params):
        alg = blackjax.mclmc(target.logdensity, L=params["L"], step_size=params["step_size"],
                             inverse_mass_matrix=params["inverse_mass_matrix"])
        return Algorithm(lambda x, key: alg.init(x, key), alg.step)

    def stats(state, info, params):
        # blackjax reverts a non-finite step (position kept, fresh momentum): `nonfinite` counts those
        return {"lp": state.logdensity, "energy_change": info.energy_change, "diverging": ~info.nonans,
                "nonfinite": ~info.nonans, "n_grad": jnp.asarray(GRADS_PER_STEP), "step_size": params["step_size"],
                "L": params["L"]}

    tune, L_scales = mclmc_tuner(bj_mclmc.build_kernel(desired_energy_var=desired_energy_var), MCLMC_FRACTIONS,
                                 desired_energy_var)
    return Sampler(
        name="mclmc", build=build, stats=stats, default_params=mc.default_params, adapted=mc.adapted,
        warmup=mc.warmup(lambda x, logdensity, key: bj_mclmc.init(x, logdensity, key), tune, GRADS_PER_STEP,
                         L_scales),
        settings={"diagonal_preconditioning": diagonal_preconditioning, "desired_energy_var": desired_energy_var},
    )


def _step_size_dual_averaging(kernel, logdensity_fn, state, p, num_steps, key, target_accept):
    """Dual averaging (blackjax's) of the adjusted kernel's step size to `target_accept` at the fixed L of `p`, as the
    MAMS authors' warmup does; the step is not capped at L (blackjax's adjusted tuner caps it at L / 1.1): a
    trajectory is at least one step, so a step above L is one-step proposals, which may be what the acceptance
    target asks for. Returns (state, final step size, integration steps made)."""
    da_init, da_update, da_final = dual_averaging_adaptation(target_accept)

    def one(carry, k):
        state, da = carry
        h = jnp.exp(da.log_step_size)
        state, info = kernel(k, state, logdensity_fn, h, inverse_mass_matrix=p.inverse_mass_matrix,
                             integration_steps_params=(p.L / h,))
        acc = jnp.where(jnp.isfinite(info.acceptance_rate), info.acceptance_rate, 0.0)
        return (state, da_update(da, acc)), info.num_integration_steps

    (state, da), n = jax.lax.scan(one, (state, da_init(p.step_size)), jax.random.split(key, num_steps))
    return state, da_final(da), jnp.sum(n)


# MAMS warmup (Robnik, Cohn-Gordon & Seljak, arXiv 2503.01707, as their benchmark code runs it): unadjusted MCLMC
# tuning reaches the typical set and estimates the diagonal preconditioner and L (stage 3: L = l_factor x the
# autocorrelation time, blackjax's `make_adaptation_L`), then dual averaging tunes the adjusted kernel's step size
# to `target_accept` at that fixed L (`_step_size_dual_averaging`). Share of
# the num_warmup steps run unadjusted (one integration step each); the rest are adjusted trajectories.
MAMS_UNADJUSTED_SHARE = 0.75
# the adjusted kernel's isokinetic integrator: (blackjax integrator, gradients per step)
MAMS_INTEGRATORS = {"leapfrog": (integrators.isokinetic_velocity_verlet, 1),
                    "mclachlan": (integrators.isokinetic_mclachlan, 2)}


@register("mams")
def mams(*, target_accept: float = 0.9, diagonal_preconditioning: bool = True, l_factor: float = 0.4,
         desired_energy_var: float = 5e-4, integrator: str = "mclachlan",
         L: float | None = None, step_size: float | None = None, inverse_mass_matrix=None, adapt=None) -> Sampler:
    """Metropolis-adjusted microcanonical sampler (adjusted MCLMC, random trajectory length).

    Warmup (what is adapted): unadjusted MCLMC at `desired_energy_var` finds the typical set, the diagonal
    preconditioner and L (`l_factor` x the autocorrelation time of that chain); then the step size is tuned by dual
    averaging to `target_accept` at that L. The unadjusted chain's own step size is internal to the warmup.
    """
    if not 0 < target_accept < 1:
        raise ValueError(f"target_accept must be in (0, 1), got {target_accept}")
    if not l_factor > 0:
        raise ValueError(f"l_factor must be > 0, got {l_factor}")
    if integrator not in MAMS_INTEGRATORS:
        raise ValueError(f"integrator must be one of {sorted(MAMS_INTEGRATORS)}, got {integrator!r}")
    integrate, grads = MAMS_INTEGRATORS[integrator]
    mc = Microcanonical("mams", L=L, step_size=step_size, inverse_mass_matrix=inverse_mass_matrix,
                        diagonal_preconditioning=diagonal_preconditioning, adapt=adapt)
    steps_fn = adjusted_mclmc_dynamic.make_random_trajectory_length_fn(True)
    kernel = adjusted_mclmc_dynamic.build_kernel(integration_steps_fn=steps_fn, integrator=integrate)
    unadjusted_tune, _ = mclmc_tuner(bj_mclmc.build_kernel(desired_energy_var=desired_energy_var), MCLMC_FRACTIONS,
                                     desired_energy_var, l_factor=l_factor)

    def build(target, params):
        def step(key, state):
            return kernel(key, state, target.logdensity, params["step_size"],
                          inverse_mass_matrix=params["inverse_mass_matrix"],
                          integration_steps_params=(params["L"] / params["step_size"],))

        return Algorithm(lambda x, key: adjusted_mclmc_dynamic.init(x, target.logdensity, key), step)

    def tune(fixed, state, key, target, num_steps, start):
        d = target.dim
        momentum_key, unadjusted_key, adjusted_key = jax.random.split(key, 3)
        n_adjusted = 0 if "step_size" in fixed else max(int(round((1 - MAMS_UNADJUSTED_SHARE) * num_steps)), 1)
        n_unadjusted = num_steps - n_adjusted
        p = MCLMCAdaptationState(fixed.get("L", jnp.sqrt(d)), fixed.get("step_size", 0.25 * jnp.sqrt(d)),
                                 fixed.get("inverse_mass_matrix", jnp.ones(d)))
        n_tune = 0
        if n_unadjusted > 0 and ("L" not in fixed or "inverse_mass_matrix" not in fixed or n_adjusted > 0):
            # the unadjusted chain starts from the warmup's state (its gradient reused: no extra evaluation) and
            # holds a given L / preconditioner; a given step size belongs to the adjusted kernel, not to it
            u_state = integrators.IntegratorState(state.position, generate_unit_vector(momentum_key, state.position),
                                                  state.logdensity, state.logdensity_grad)
            u_fixed = {k: v for k, v in fixed.items() if k != "step_size"}
            u_start = p._replace(step_size=0.25 * jnp.sqrt(d))
            u_state, u, n_u = unadjusted_tune(u_fixed, u_state, unadjusted_key, target, n_unadjusted, u_start)
            state = DynamicHMCState(u_state.position, u_state.logdensity, u_state.logdensity_grad,
                                    state.random_generator_arg)
            # L: a length in time, so it carries over from the unadjusted chain as it is
            p = MCLMCAdaptationState(fixed.get("L", u.L), fixed.get("step_size", u.step_size),
                                     fixed.get("inverse_mass_matrix", jnp.asarray(u.inverse_mass_matrix) * jnp.ones(d)))
            n_tune += GRADS_PER_STEP * n_u  # blackjax's MCLMC kernel: isokinetic McLachlan
        if n_adjusted > 0:
            state, h, n_a = _step_size_dual_averaging(kernel, target.logdensity, state, p, n_adjusted, adjusted_key,
                                                       target_accept)
            p = p._replace(step_size=h)
            n_tune += grads * n_a
        return state, p, n_tune  # gradients, not integration steps (two integrators)

    def stats(state, info, params):
        return {"lp": state.logdensity, "acceptance_rate": info.acceptance_rate, "diverging": info.is_divergent,
                "energy": info.energy, "n_grad": grads * jnp.asarray(info.num_integration_steps),
                "step_size": params["step_size"], "L": params["L"]}

    return Sampler(
        name="mams", build=build, stats=stats, default_params=mc.default_params, adapted=mc.adapted,
        # L comes from the unadjusted chain's autocorrelation in units of time: a fixed step size does not rescale it
        warmup=mc.warmup(adjusted_mclmc_dynamic.init, tune, 1, lambda n: False),
        settings={"target_accept": target_accept, "diagonal_preconditioning": diagonal_preconditioning,
                  "l_factor": l_factor, "desired_energy_var": desired_energy_var, "integrator": integrator},
    )
