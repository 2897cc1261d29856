"""Diffusion samplers from a score: `samplax.sample(score_model, NAME, num_particles=N, num_steps=K, seed=...)`.

NAME: "reverse_sde" (Euler–Maruyama), "pf_ode" (probability-flow ODE with diffrax, plus each sample's
log-density), "deis" (exponential integrator, order 0..3), "pc" (predictor–corrector), "adaptive_sde"
(Gotta Go Fast adaptive steps; `tol=` instead of num_steps). Particles start from the process prior at
t_max (same draw for the same seed in every sampler) and end at t_min; the target is p_{t_min}
(`score_model.as_target()`). n_grad counts score evaluations (NFE) and Jacobian-vector products of the score, one
unit each (pf_ode with log_prob: d JVPs per field evaluation for the exact divergence, one per Hutchinson probe),
all particles; int64 (base.count_dtype). None of these samplers
estimates a log Z (a score carries no normalising constant): log_z is NaN and `estimates_log_z` False.

stage_stats: fixed grids (reverse_sde, deis, pc, fixed-step pf_ode) have one row per step: time (the
step's end), step_size, n_grad (score evaluations and JVPs in that step), ess (= N: particles stay equally
weighted). adaptive pf_ode: one row (time t_min, n_grad, num_steps, num_accepted, num_rejected from
diffrax's stats; n_grad counts each population's own steps: populations vectorized together run in lockstep, and
one that finishes first idles through evaluations XLA makes and discards, in no count, as for adaptive_sde).
adaptive_sde: `num_bins` rows over equal time bins of [t_min, t_max] (the per-step record is variable-length):
accepted, rejected, n_grad (2 per try) of steps starting in the bin.
particle_stats: pf_ode "log_prob" (NaN for a particle that ends NaN/inf) and, with adaptive steps, "finished";
adaptive_sde "nfe", "accepted", "rejected", "finished" per particle. "finished" is False for a particle whose solve
used up max_steps before t_min: it is NaN, and the trust check names max_steps and how many did not finish.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from samplax import checks
from samplax.diffusion import adaptive, deis as deis_mod, integrators, likelihood
from samplax.particles import base
from samplax.samplers.base import DefaultInt, DefaultStr, DefaultValue, given_settings


def _score_model(model):
    if not (hasattr(model, "score") and hasattr(model, "process") and hasattr(model, "dim")) or \
            not callable(getattr(model, "score", None)):
        raise TypeError(f"diffusion samplers need a score model (samplax.diffusion.ScoreModel with score(x, t) and "
                        f"a process), got {type(model).__name__}; for an unnormalised density use 'smc' or a "
                        f"learned diffusion sampler")
    return model


def _start(model, key, n):
    """Prior draw at t_max from the first half of the key (the same for every sampler), the rest for the run."""
    k_init, k_run = jax.random.split(key)
    return model.process.prior_sample(k_init, n, model.dim), k_run


def _grid_stats(ts, n, per_step, first_extra=0, startup_steps=0, startup_extra=0):
    """Stage stats of a fixed grid; n_grad per step = n x per_step, + n x first_extra in the first step (FSAL) and
    + n x startup_extra in each of the first `startup_steps` steps (DEIS's RK4 start-up), counted in int64."""
    k = ts.size - 1
    g = np.full(k, n * per_step, dtype=np.int64)
    g[0] += n * first_extra
    g[:startup_steps] += n * startup_extra
    return {"time": jnp.asarray(ts[1:]), "step_size": jnp.asarray(ts[:-1] - ts[1:]),
            "n_grad": base.stage_counts(g), "ess": jnp.full((k,), float(n))}


def _population(x, stats, particle_stats=None):
    # the stages' sum (int32 without x64 may wrap; the host re-sums the stages in int64: base.total_n_grad)
    n_grad = jnp.sum(stats["n_grad"].astype(base.count_dtype()))
    # no log Z estimate: NaN, not 0 (a 0 +- 0 would read as an exact normaliser)
    return base.Population(x, jnp.full((), jnp.nan, x.dtype), stats, n_grad, particle_stats or {})


@base.register("reverse_sde")
def reverse_sde(num_steps: int = 1000, grid: str = "uniform") -> base.PopulationSampler:
    """Euler–Maruyama on the reverse-time SDE, one score evaluation per step."""
    checks.integer("num_steps", num_steps, 1)
    if not checks.member(grid, integrators.GRIDS):
        raise ValueError(f"grid must be one of {integrators.GRIDS}, got {grid!r}")

    def run(model, key, n, progress):
        m = _score_model(model)
        x, key = _start(m, key, n)
        ts = integrators.time_grid(m.process, num_steps, grid)
        x = integrators.reverse_sde(m, key, x, ts, progress)
        return _population(x, _grid_stats(ts, n, 1))

    return base.PopulationSampler("reverse_sde", run, dict(num_steps=num_steps, grid=grid), stage_label="time",
                                  estimates_log_z=False)


@base.register("pc")
def pc(num_steps: int = 500, num_corrector_steps: int = 1, snr: float = DefaultValue(0.16),
       grid: str = "uniform") -> base.PopulationSampler:
    """Predictor–corrector (Song et al. 2021 Alg. 1/2): Langevin corrections then an Euler–Maruyama step; `snr` sets
    the corrections' step (refused with num_corrector_steps=0, which makes none)."""
    checks.integer("num_steps", num_steps, 1)
    checks.integer("num_corrector_steps", num_corrector_steps, 0)
    checks.positive("snr", snr)
    if num_corrector_steps == 0 and given_settings(snr=snr):
        raise ValueError(f"pc: snr={snr!r} sets the Langevin corrections' step, but num_corrector_steps=0 makes none, "
                         "so nothing would use it: drop snr, or use num_corrector_steps >= 1")
    snr = float(snr)
    if not checks.member(grid, integrators.GRIDS):
        raise ValueError(f"grid must be one of {integrators.GRIDS}, got {grid!r}")

    def run(model, key, n, progress):
        m = _score_model(model)
        x, key = _start(m, key, n)
        ts = integrators.time_grid(m.process, num_steps, grid)
        x = integrators.predictor_corrector(m, key, x, ts, num_corrector_steps, snr, progress)
        return _population(x, _grid_stats(ts, n, 1 + num_corrector_steps))

    settings = dict(num_steps=num_steps, num_corrector_steps=num_corrector_steps,
                    snr=snr if num_corrector_steps else None, grid=grid)  # None: not used
    return base.PopulationSampler("pc", run, settings, stage_label="time", estimates_log_z=False)


@base.register("deis")
def deis(num_steps: int = 20, order: int = 2, grid: str = "quadratic",
         startup: str = DefaultStr("rk4")) -> base.PopulationSampler:
    """DEIS (tAB-DEIS, Zhang & Chen 2022): exponential integrator of the PF ODE, eps extrapolated at `order`;
    `startup` takes the first order - 1 steps (refused with order 0 / 1, which need no start-up)."""
    checks.integer("num_steps", num_steps, 1)
    if isinstance(order, bool) or not checks.member(order, deis_mod.ORDERS):
        raise ValueError(f"order must be one of {deis_mod.ORDERS} (0 = DDIM), got {order!r}")
    if not checks.member(grid, integrators.GRIDS):
        raise ValueError(f"grid must be one of {integrators.GRIDS}, got {grid!r}")
    if not checks.member(startup, deis_mod.STARTUPS):
        raise ValueError(f"startup must be one of {deis_mod.STARTUPS}, got {startup!r}")
    if order < 2 and given_settings(startup=startup):
        raise ValueError(f"deis: startup={startup!r} takes the first order - 1 steps, but order={order} needs no "
                         "start-up, so nothing would use it: drop startup, or use order >= 2")
    startup = str(startup)

    def run(model, key, n, progress):
        m = _score_model(model)
        x, _ = _start(m, key, n)
        ts = integrators.time_grid(m.process, num_steps, grid)
        x = deis_mod.solve(m, x, ts, order, startup, progress)
        k_rk = deis_mod.num_rk4_steps(order, startup, num_steps)
        stats = _grid_stats(ts, n, 1, startup_steps=k_rk, startup_extra=3)  # RK4 start-up steps: 4 evaluations each
        return _population(x, stats)

    settings = dict(num_steps=num_steps, order=order, grid=grid, startup=startup if order >= 2 else None)
    return base.PopulationSampler("deis", run, settings, stage_label="time", estimates_log_z=False)


@base.register("pf_ode")
def pf_ode(num_steps: int | None = None, solver: str = "heun", rtol: float | None = None, atol: float | None = None,
           grid: str | None = None, log_prob: bool = True, exact_trace_max_dim: int = DefaultInt(16),
           num_probes: int = DefaultInt(1), max_steps: int = 4096) -> base.PopulationSampler:
    """Probability-flow ODE (diffrax), fixed `num_steps` (default 100) on `grid` (default "uniform"), or adaptive
    when rtol and atol are given (then num_steps and grid are refused: the controller picks the steps); with each
    sample's log-density (particle_stats["log_prob"]) unless log_prob=False."""
    if not checks.member(solver, likelihood.SOLVERS):
        raise ValueError(f"solver must be one of {sorted(likelihood.SOLVERS)}, got {solver!r}")
    if (rtol is None) != (atol is None):
        raise ValueError(f"adaptive steps need both rtol and atol (got rtol={rtol!r}, atol={atol!r}); "
                         "give neither for fixed num_steps")
    adaptive_steps = rtol is not None
    if adaptive_steps:
        checks.positive("rtol", rtol)
        checks.positive("atol", atol)
        given = [f"{k}={v!r}" for k, v in (("num_steps", num_steps), ("grid", grid)) if v is not None]
        if given:
            raise ValueError(f"pf_ode: {', '.join(given)} would be ignored with adaptive steps (rtol/atol given: the "
                             "step-size controller chooses the steps); drop it, or drop rtol/atol for fixed steps")
        if solver == "euler":
            raise ValueError("solver='euler' has no error estimate for adaptive steps; use e.g. 'tsit5' or 'heun', "
                             "or fixed num_steps without rtol/atol")
    else:
        num_steps = 100 if num_steps is None else num_steps
        grid = "uniform" if grid is None else grid
        num_steps = checks.integer("num_steps", num_steps, 1)
        if not checks.member(grid, integrators.GRIDS):
            raise ValueError(f"grid must be one of {integrators.GRIDS}, got {grid!r}")
    checks.integer("exact_trace_max_dim", exact_trace_max_dim, 0)
    checks.integer("num_probes", num_probes, 1)
    given = given_settings(exact_trace_max_dim=exact_trace_max_dim, num_probes=num_probes)
    if not log_prob and given:
        raise ValueError(f"pf_ode: {', '.join(given)} set how the log-density's divergence is computed, but "
                         "log_prob=False computes none, so nothing would use them: drop them, or keep log_prob=True")
    exact_trace_max_dim, num_probes = int(exact_trace_max_dim), int(num_probes)
    max_steps = checks.integer("max_steps", max_steps, 1)
    if not adaptive_steps and num_steps > max_steps:  # diffrax would stop the fixed grid part-way, deep in the solve
        raise ValueError(f"pf_ode: num_steps={num_steps} exceeds max_steps={max_steps} (the solver's step budget); "
                         f"raise max_steps to at least {num_steps}, or use fewer num_steps")
    per_step, initial = likelihood.evals_per_step(likelihood.SOLVERS[solver]())

    def run(model, key, n, progress):
        m = _score_model(model)
        x, key = _start(m, key, n)
        ts = None if adaptive_steps else integrators.time_grid(m.process, num_steps, grid)
        x, lp, steps, acc, rej, finished = likelihood.solve(
            m, key, x, solver=solver, ts=ts, rtol=rtol, atol=atol, max_steps=max_steps, with_log_prob=log_prob,
            exact_trace_max_dim=exact_trace_max_dim, num_probes=num_probes)
        if log_prob:  # a particle that ended NaN/inf has no density: NaN, not the finite integral it carried
            lp = jnp.where(jnp.all(jnp.isfinite(x), axis=-1), lp, jnp.nan)
        progress.update(0, m.process.t_min, n)
        # each vector-field evaluation: 1 score evaluation, + with log_prob the divergence's JVPs of the score
        # (d for the exact trace, one per Hutchinson probe); see likelihood.evals_per_field
        per_field = likelihood.evals_per_field(m.dim, log_prob, exact_trace_max_dim, num_probes)
        if adaptive_steps:
            it = base.count_dtype()
            stats = {"time": jnp.full((1,), m.process.t_min),
                     "n_grad": (n * per_field * (per_step * steps.astype(it) + initial))[None].astype(it),
                     "num_steps": steps[None].astype(it), "num_accepted": acc[None].astype(it),
                     "num_rejected": rej[None].astype(it), "ess": jnp.full((1,), float(n))}
        else:
            stats = _grid_stats(ts, n, per_step * per_field, initial * per_field)
        per = {"log_prob": lp} if log_prob else {}
        if adaptive_steps:  # False: the solve used up max_steps before t_min; those particles are NaN
            per["finished"] = finished
        return _population(x, stats, per)

    settings = dict(num_steps=num_steps, solver=solver, rtol=rtol, atol=atol, grid=grid, log_prob=log_prob,
                    exact_trace_max_dim=exact_trace_max_dim if log_prob else None,
                    num_probes=num_probes if log_prob else None, max_steps=max_steps)
    return base.PopulationSampler("pf_ode", run, settings, stage_label="time", estimates_log_z=False)


@base.register("adaptive_sde")
def adaptive_sde(tol: float = 1e-2, abs_tol: float = adaptive.DEFAULTS["abs_tol"],
                 h_init: float = adaptive.DEFAULTS["h_init"], safety: float = adaptive.DEFAULTS["safety"],
                 exponent: float = adaptive.DEFAULTS["exponent"], max_steps: int = 10_000,
                 num_bins: int = 20, error: str = "sde", brownian: str = "tree", **unexpected) -> base.PopulationSampler:
    """Adaptive reverse SDE (Jolicoeur-Martineau et al. 2021); tol is the relative tolerance, abs_tol the absolute."""
    if "num_steps" in unexpected:
        raise TypeError("adaptive_sde chooses its own steps: set tol= (relative tolerance) and abs_tol= instead of "
                        "num_steps")
    if unexpected:
        raise TypeError(f"unexpected settings {sorted(unexpected)}")
    for name, v in (("tol", tol), ("abs_tol", abs_tol), ("h_init", h_init), ("safety", safety),
                    ("exponent", exponent)):
        checks.positive(name, v)
    max_steps = checks.integer("max_steps", max_steps, 1)  # a Python int: the trust check reads it back
    checks.integer("num_bins", num_bins, 1)
    if not checks.member(error, adaptive.ERRORS):
        raise ValueError(f"error must be one of {adaptive.ERRORS}, got {error!r}")
    if not checks.member(brownian, adaptive.BROWNIANS):
        raise ValueError(f"brownian must be one of {adaptive.BROWNIANS}, got {brownian!r}")

    def run(model, key, n, progress):
        m = _score_model(model)
        x, key = _start(m, key, n)
        x, st = adaptive.solve(m, key, x, tol, abs_tol, h_init, safety, exponent, max_steps, num_bins, error, brownian)
        # a particle that used up max_steps before t_min is not a draw of p_{t_min}: NaN, so sample() warns
        x = jnp.where(st["finished"][:, None], x, jnp.nan)
        # rows: time bins from t_max down to t_min; each particle accepted/rejected counts summed
        edges = np.linspace(m.process.t_max, m.process.t_min, num_bins + 1)
        acc, rej = st["accepted"].sum(0), st["rejected"].sum(0)
        progress.update(0, m.process.t_min, n)
        stats = {"time": jnp.asarray(edges[1:]), "accepted": acc, "rejected": rej, "n_grad": 2 * (acc + rej),
                 "ess": jnp.full((num_bins,), float(n))}
        per = {"nfe": 2 * st["tries"], "accepted": st["accepted"].sum(-1), "rejected": st["rejected"].sum(-1),
               "finished": st["finished"]}
        return _population(x, stats, per)

    settings = dict(tol=tol, abs_tol=abs_tol, h_init=h_init, safety=safety, exponent=exponent, max_steps=max_steps,
                    num_bins=num_bins, error=error, brownian=brownian)
    return base.PopulationSampler("adaptive_sde", run, settings, stage_label="time", estimates_log_z=False)
