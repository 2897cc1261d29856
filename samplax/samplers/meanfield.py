"""Mean-field underdamped Langevin as a population sampler: `samplax.sample(target, "meanfield", num_particles=N, ...)`.

N particles follow underdamped Langevin on H_N(x) = sum_i V(x_i) + 1/(2N) sum_{i,j} W(x_i - x_j) at temperature
sigma2 with V = -target.logdensity (unconstrained space, as every sampler sees the Target); see samplax.meanfield for
the dynamics and integrators (Fu & Wilson 2023, arXiv 2312.16360). W=None (the default): no interaction, the N
particles are independent underdamped Langevin chains and, with sigma2 = 1, each ends (after num_steps, up to the
integrator's bias and the burn-in) as a draw from the target: the posterior holds the last position of every
particle, populations x particles as for the other population samplers. With W the particles sample the N-particle
Gibbs law exp(-H_N / sigma2), whose one-particle marginal tends to the mean-field minimiser of
F(mu) = int V dmu + 1/2 iint W dmu dmu + sigma2 Ent(mu) as N grows (with bias O(1/N)).

Settings: W (callable of z = x - y, or of (x, y) with pairwise=True; None), sigma2 (1.0), step_size (0.1), friction
(1.0), num_steps (1000), integrator ("obabo", "baoab", "randomized_midpoint"), pairwise (False), interaction_batch
(None: exact O(N^2) interaction; B: random batches of B), init_scale (None: the target's own init per particle; a
number s: N(0, s^2) in unconstrained space). Nothing is adapted: step_size and friction are used as given.

Counts: n_grad counts gradients of the target's log-density, one per particle per force evaluation (the initial
force, then 1 per step for obabo / baoab, 2 for randomized_midpoint); gradients of W are counted apart in
stage_stats["n_grad_interaction"] (one per particle pair per evaluation: N^2, or N B with random batches), since
they cost nothing like a model gradient in a Bayesian model but dominate for a cheap V and large N. The energy
trace reuses the log-density values of those gradient evaluations (no further evaluations). Not counted: the
start-point checks of `Target.init` (one gradient per try, at least one per particle) when init_scale is None.

stage_stats, one row per step: time (t = k h), ess (= N: the particles are equally weighted, nothing is
resampled), n_grad, n_grad_interaction, energy (mean of V over the particles + 1/2 iint W at the empirical measure),
kinetic_energy (per particle; sigma2 d / 2 at stationarity). No log Z is estimated (NaN, estimates_log_z False).
With W the particles of a population are dependent (they share the mean field): the trust check's population
R-hat, built for independent particles, can then flag a healthy run with few particles per population.
The compiled program is reused across calls with the same target program, settings (W by the content of its
traced program) and layout.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from samplax import checks, meanfield as mf
from samplax.particles import base


@dataclasses.dataclass(frozen=True)
class CachedPopulationSampler(base.PopulationSampler):
    """A PopulationSampler whose compiled program `sample()` may reuse: `cache_key(target)` keys everything `run`
    closes over besides the model (which the runner keys by its program digest); a None key disables reuse."""

    cache_key: Callable[[Any], Any] | None = None


@base.register("meanfield")
def meanfield(W: Callable | None = None, sigma2: float = 1.0, step_size: float = 0.1, friction: float = 1.0,
              num_steps: int = 1000, integrator: str = "obabo", pairwise: bool = False,
              interaction_batch: int | None = None, init_scale: float | None = None) -> base.PopulationSampler:
    """N-particle underdamped Langevin on V = -logdensity at temperature sigma2, particles interacting through W.

    W=None: independent particles, each ending as a draw of the target (sigma2 = 1) after num_steps of size
    step_size; W(z) (or W(x, y) with pairwise=True): the N-particle law of F(mu) = int V + 1/2 iint W + sigma2 Ent.
    integrator: "obabo" / "baoab" (1 gradient per particle per step) or "randomized_midpoint" (2);
    interaction_batch=B: random batches of B for the interaction. n_grad counts gradients of the log-density;
    gradients of W are in stage_stats["n_grad_interaction"]. Nothing is adapted.
    """
    checks.positive("sigma2", sigma2)
    checks.positive("step_size", step_size)
    checks.positive("friction", friction)
    checks.integer("num_steps", num_steps, 1)
    if not checks.member(integrator, mf.INTEGRATORS):
        raise ValueError(f"integrator must be one of {mf.INTEGRATORS}, got {integrator!r}")
    if not isinstance(pairwise, bool):
        raise ValueError(f"pairwise must be True or False, got {pairwise!r}")
    if W is not None and not callable(W):
        raise ValueError(f"W must be a callable W(z) of z = x - y (W(x, y) with pairwise=True), or None for no "
                         f"interaction, got {type(W).__name__}")
    if W is None and pairwise:
        raise ValueError("pairwise=True describes W(x, y), but W is None")
    if interaction_batch is not None:
        checks.integer("interaction_batch", interaction_batch, 2)
        if W is None:
            raise ValueError("interaction_batch is given but W is None: there is no interaction to batch")
    if init_scale is not None:
        checks.positive("init_scale", init_scale)
    settings = dict(W=W, sigma2=sigma2, step_size=step_size, friction=friction, num_steps=num_steps,
                    integrator=integrator, pairwise=pairwise, interaction_batch=interaction_batch,
                    init_scale=init_scale)
    per_step = mf.evaluations_per_step(integrator)

    def run(model, key, n, progress):
        from samplax.particles.run import as_target

        target = as_target(model)
        d = target.dim

        def V(x):
            return -target.logdensity(x)

        mf.check_settings(V, W, d, integrator=integrator, pairwise=pairwise, interaction_batch=interaction_batch,
                          num_particles=n, v_name="the target's -logdensity")
        k_init, k_run = jax.random.split(key)
        if init_scale is None:
            x0 = jax.vmap(target.init)(jax.random.split(k_init, n))
        else:
            x0 = init_scale * jax.random.normal(k_init, (n, d))
        final, trace = mf.run_population(V, W, k_run, x0, step_size=step_size, friction=friction, sigma2=sigma2,
                                         num_steps=num_steps, integrator=integrator, pairwise=pairwise,
                                         interaction_batch=interaction_batch)
        progress.update(num_steps - 1, num_steps * step_size, n)
        g = np.full(num_steps, n * per_step, dtype=np.int64)
        g[0] += n  # the force at the start
        pairs = mf.pair_gradients(n, interaction_batch, W is not None)
        gi = np.full(num_steps, pairs * per_step, dtype=np.int64)
        gi[0] += pairs
        dtype = final.position.dtype
        stats = {"time": step_size * jnp.arange(1, num_steps + 1, dtype=dtype),
                 "ess": jnp.full((num_steps,), float(n), dtype),
                 "n_grad": base.stage_counts(g), "n_grad_interaction": base.stage_counts(gi, "n_grad_interaction"),
                 "energy": trace["energy"], "kinetic_energy": trace["kinetic_energy"],
                 # kinetic energy per particle over its equilibrium value d sigma2 / 2 (equipartition): ~1 once the
                 # dynamics are stationary, far above 1 when an unstable step made them blow up
                 "kinetic_temperature": trace["kinetic_energy"] / (0.5 * d * sigma2)}
        n_grad = jnp.sum(stats["n_grad"].astype(base.count_dtype()))
        return base.Population(final.position, jnp.full((), jnp.nan, dtype), stats, n_grad)

    def cache_key(target):
        from samplax.compile_cache import Uncacheable, content_key

        pt = jax.ShapeDtypeStruct((int(target.dim),), jnp.result_type(float))
        try:
            w_key = None if W is None else mf.function_digest(W, *((pt, pt) if pairwise else (pt,)))
            return ("meanfield", content_key({k: v for k, v in settings.items() if k != "W"}), w_key)
        except Uncacheable:
            return None

    return CachedPopulationSampler("meanfield", run, settings, stage_label="time", estimates_log_z=False,
                                   cache_key=cache_key)
