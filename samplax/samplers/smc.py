"""Tempered SMC: prior -> posterior through p_b(x) ∝ prior(x) L(x)^b, b from 0 to 1, with an unbiased log Z.

`samplax.sample(target, "smc", num_particles=N, num_chains=C, seed=..., **settings)`. Each stage
(1) picks the next temperature: adaptively, the largest step whose conditional ESS (Zhou, Johansen &
Aston 2016) is `target_ess`·N, found by bisection (blackjax.smc.solver.dichotomy), or the next entry
of a fixed schedule; (2) reweights by L^(b'-b) and adds log sum_i W_i L_i^(b'-b) to log Z (the
standard unbiased product estimator, samplax.particles.reweight); (3) resamples when ESS < ess_threshold·N
(systematic by default); (4) moves every particle `num_mcmc_steps` steps of a blackjax kernel (rwm,
mala, hmc) that leaves p_b' invariant, in coordinates whitened by the weighted particle mean and
standard deviation (a diagonal mass matrix), the step size steered towards the kernel's target
acceptance after every sweep from the population's acceptance rate (and carried to the next stage).

Defaults: waste-free moves (below) with P = 10, adaptive schedule with target_ess = 0.5, MALA moves (chosen by
benchmarks/smc_blackjax.py at equal gradients: log Z sd 0.022 vs 0.050 for HMC L = 5, P = 5 on the bimodal
target, 0.012 vs 0.018 on eight schools; see docs/DESIGN.md). Without
waste-free, ess_threshold = 0.5 makes the adaptive schedule resample at nearly every stage (the ESS after a
step is about target_ess·N); a fixed schedule resamples only when the ESS drops. waste-free resamples at
every stage (ess_threshold is not used). Options: `waste_free=True` (the default unless persistent) (Dau & Chopin 2022: resample M = ceil(N/P) particles, run M chains of P-1
steps with P = num_mcmc_steps and keep all states, the first N); `persistent=True` (Karamanis et al. 2025,
persistent sampling: particles of all earlier stages are kept and reweighted against the mixture of
the earlier tempered targets; its log Z is consistent, not unbiased; see smc_persistent.py).

stage_stats per stage: temperature, ess (after reweighting), log_z_increment, acceptance_rate,
resampled, n_grad (gradients really computed: kernel init at the new temperature + every MCMC step,
all particles; 0 for rwm), n_logdensity (log-density evaluations made without a gradient: the
log-likelihood of the moved particles, every random-walk proposal; stage 0 also counts the prior draws),
step_size (at the stage's first sweep), active (rows of the max_stages buffer really used by the adaptive schedule).
"""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import numpy as np
from blackjax.smc.solver import dichotomy
from jax.scipy.special import logsumexp

from samplax.particles import base
from samplax.particles.resampling import check_threshold, maybe_resample, scheme
from samplax.particles.state import ParticleState, conditional_ess, ess, reweight
from samplax.samplers.smc_kernels import KERNELS, TARGET_ACCEPTANCE, make_kernel, run_chains

STATS = ("temperature", "ess", "log_z_increment", "acceptance_rate", "resampled", "n_grad", "n_logdensity",
         "step_size", "active")
STEP_GAIN = 1.0  # log step += STEP_GAIN * (acceptance - target) after each sweep: a sweep at 0 acceptance halves hmc's step


def _warn_unfinished(beta, max_stages):
    if float(beta) >= 1.0:
        return
    warnings.warn(f"smc: the tempering reached temperature {float(beta):.4g} < 1 after max_stages={int(max_stages)} "
                  "stages, so the particles are not posterior draws and log Z is NaN; raise max_stages or lower "
                  "target_ess", RuntimeWarning, stacklevel=2)


def cloud_scale(x, log_weights, adapt_mass: bool):
    """Weighted mean and per-coordinate standard deviation of the particles (ones without adapt_mass)."""
    w = jax.nn.softmax(log_weights)
    m = w @ x
    sd = jnp.sqrt(w @ (x - m) ** 2)
    ok = jnp.isfinite(sd) & (sd > 0)
    sd = jnp.where(ok, sd, 1.0) if adapt_mass else jnp.ones_like(m)
    return m, sd


def next_temperature(beta, log_weights, ll, target_ess):
    """Largest b' <= 1 with conditional ESS of the increments (b'-b)·ll >= target_ess·N (bisection)."""
    n = ll.shape[0]

    def f(delta):
        return jnp.log(conditional_ess(log_weights, jnp.nan_to_num(delta * ll))) - jnp.log(target_ess * n)

    delta = dichotomy(f, 0.0, 1.0 - beta, eps=1e-6)
    new = beta + delta
    return jnp.where(1.0 - new < 1e-10, 1.0, new)


def _settings_check(schedule, target_ess, kernel, num_mcmc_steps, num_integration_steps, step_size,
                    resampling, ess_threshold, waste_free, persistent, max_stages):
    if isinstance(schedule, str):
        if schedule != "adaptive":
            raise ValueError(f"schedule must be 'adaptive' or an increasing array of temperatures from 0 to 1, "
                             f"got {schedule!r}")
        temps = None
    else:
        temps = np.asarray(schedule, dtype=float)
        if temps.ndim != 1 or temps.size < 2 or temps[0] != 0.0 or temps[-1] != 1.0 or np.any(np.diff(temps) <= 0):
            raise ValueError("schedule must be 'adaptive' or a strictly increasing 1-D array of temperatures "
                             f"starting at 0 and ending at 1, got {schedule!r}")
    if not 0.0 < float(target_ess) < 1.0 and not persistent:
        raise ValueError(f"target_ess must be a fraction of the particles in (0, 1), got {target_ess!r}")
    if persistent and not float(target_ess) > 0:
        raise ValueError(f"target_ess (persistent: ESS over all stored particles / N, may exceed 1) must be > 0, "
                         f"got {target_ess!r}")
    if kernel not in KERNELS:
        raise ValueError(f"kernel must be one of {KERNELS}, got {kernel!r}")
    for name, v, low in (("num_mcmc_steps", num_mcmc_steps, 1), ("num_integration_steps", num_integration_steps, 1),
                         ("max_stages", max_stages, 1)):
        if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {v!r}")
    if step_size is not None and not float(step_size) > 0:
        raise ValueError(f"step_size must be positive (or None for the kernel's default), got {step_size!r}")
    scheme(resampling)
    check_threshold(ess_threshold)
    if waste_free and persistent:
        raise ValueError("waste_free and persistent are two different ways to reuse particles; set at most one")
    if waste_free and num_mcmc_steps < 2:
        raise ValueError(f"waste_free=True runs chains of num_mcmc_steps = P states; P must be >= 2, got {num_mcmc_steps}")
    return temps


@base.register("smc")
def smc(schedule="adaptive", target_ess=0.5, kernel="mala", num_mcmc_steps=10, num_integration_steps=5,
        step_size=None, adapt_mass=True, target_acceptance=None, resampling="systematic", ess_threshold=0.5,
        waste_free=None, persistent=False, max_stages=200, reference=None) -> base.PopulationSampler:
    """Tempered SMC (module docstring); `reference=(mean, scale)` sets a Gaussian reference as the prior.

    waste_free=None (default) means True unless persistent=True: at equal gradients it gave the lowest log Z
    sd in benchmarks/smc_blackjax.py (see docs/DESIGN.md).
    """
    if waste_free is None:
        waste_free = not persistent
    temps = _settings_check(schedule, target_ess, kernel, num_mcmc_steps, num_integration_steps, step_size,
                            resampling, ess_threshold, waste_free, persistent, max_stages)
    settings = dict(schedule=schedule if temps is None else temps.tolist(), target_ess=target_ess, kernel=kernel,
                    num_mcmc_steps=num_mcmc_steps, num_integration_steps=num_integration_steps, step_size=step_size,
                    adapt_mass=adapt_mass, target_acceptance=target_acceptance, resampling=resampling,
                    ess_threshold=ess_threshold, waste_free=waste_free, persistent=persistent,
                    max_stages=max_stages if temps is None else temps.size - 1, reference=reference)
    mk = make_kernel(kernel, num_integration_steps)
    acc_target = TARGET_ACCEPTANCE[kernel] if target_acceptance is None else float(target_acceptance)

    def run(model, key, num_particles, progress):
        from samplax.particles.run import as_target
        from samplax.tempering import tempering_parts

        target = as_target(model)
        parts = tempering_parts(target, reference)
        if persistent:
            from samplax.samplers.smc_persistent import run_persistent

            return run_persistent(parts, target.dim, key, num_particles, progress, settings, mk, acc_target, temps)
        return _run_standard(parts, target.dim, key, num_particles, progress, settings, mk, acc_target, temps)

    return base.PopulationSampler("smc", run, settings, stage_label="temperature")


def _run_standard(parts, dim, key, n, progress, st, mk, acc_target, temps):
    log_prior, log_lik, sample_prior = parts
    S = st["max_stages"]
    K = st["num_mcmc_steps"]
    waste_free = st["waste_free"]
    # waste-free: ceil(N / P) chains of P states; when P does not divide N the last chain's tail is dropped
    # (every kept state is still marginally a draw from the stage's target)
    n_chains = -(-n // K) if waste_free else n
    steps = K - 1 if waste_free else K
    resample_fn = scheme(st["resampling"])
    schedule = None if temps is None else jnp.asarray(temps)

    k0, key = jax.random.split(key)
    x = sample_prior(k0, n)
    ll = jax.vmap(log_lik)(x)
    dtype = x.dtype
    stats = {k: jnp.zeros((S,), jnp.bool_ if k in ("resampled", "active") else
                          (jnp.int64 if jax.config.jax_enable_x64 else jnp.int32) if k.startswith("n_") else dtype)
             for k in STATS}
    stats["n_logdensity"] = stats["n_logdensity"].at[0].set(n)
    log_step0 = jnp.log(jnp.asarray(mk.initial_step_size(dim) if st["step_size"] is None else st["step_size"], dtype))
    carry = (key, ParticleState(x, jnp.zeros((n,), dtype), jnp.zeros((), dtype)), ll, jnp.zeros((), dtype),
             log_step0, jnp.array(0), stats)

    def cond(c):
        return (c[3] < 1.0) & (c[5] < S)

    def body(c):
        key, state, ll, beta, log_step, s, stats = c
        key, k_res, k_move = jax.random.split(key, 3)
        if schedule is None:
            beta_new = next_temperature(beta, state.log_weights, ll, st["target_ess"])
        else:
            beta_new = schedule[s + 1]
        lz_before = state.log_z
        state = reweight(state, jnp.nan_to_num((beta_new - beta) * ll))
        ess_now = ess(state.log_weights)
        centre, sd = cloud_scale(state.particles, state.log_weights, st["adapt_mass"])
        if waste_free:
            idx = resample_fn(k_res, jax.nn.softmax(state.log_weights), n_chains)
            starts, resampled = state.particles[idx], jnp.array(True)
        else:
            state, resampled, _ = maybe_resample(k_res, state, st["ess_threshold"], st["resampling"])
            starts = state.particles

        def logdens(z):
            return log_prior(z) + beta_new * log_lik(z)

        step_size = jnp.exp(log_step)
        moved, acc, log_step = run_chains(mk, k_move, starts, logdens, centre, sd, log_step, steps, waste_free,
                                          acc_target, STEP_GAIN)
        if waste_free:
            state = ParticleState(moved.reshape(n_chains * K, dim)[:n], jnp.zeros((n,), dtype), state.log_z)
        else:
            state = ParticleState(moved, state.log_weights, state.log_z)
        ll = jax.vmap(log_lik)(state.particles)
        progress.update(s, beta_new, ess_now)
        row = dict(temperature=beta_new, ess=ess_now, log_z_increment=state.log_z - lz_before, acceptance_rate=acc,
                   resampled=resampled, n_grad=n_chains * (mk.grads_init + steps * mk.grads_step),
                   n_logdensity=stats["n_logdensity"][s] + n_chains * (mk.logd_init + steps * mk.logd_step) + n,
                   step_size=step_size, active=True)
        stats = {k: v.at[s].set(jnp.asarray(row[k]).astype(v.dtype)) for k, v in stats.items()}
        return key, state, ll, beta_new, log_step, s + 1, stats

    key, state, ll, beta, _, _, stats = jax.lax.while_loop(cond, body, carry)
    # equally weighted output: one last resampling when the weights are not uniform (log Z unchanged)
    particles = final_resample(key, state, st["resampling"])
    return finish(particles, state.log_z, beta, stats, S)


def final_resample(key, state, method):
    """Equally weighted particles: resample once more only when the weights are not all equal."""
    lw = state.log_weights
    idx = jax.lax.cond(jnp.all(lw == lw[0]), lambda: jnp.arange(lw.shape[0]),
                       lambda: scheme(method)(key, jax.nn.softmax(lw), lw.shape[0]).astype(int))
    return state.particles[idx]


def finish(particles, log_z, beta, stats, S):
    """Population with NaN log Z and a RuntimeWarning when the temperature did not reach 1."""
    done = beta >= 1.0
    # called for every population (under vmap, once per population); warns only for unfinished ones
    jax.debug.callback(_warn_unfinished, beta, S)
    log_z = jnp.where(done, log_z, jnp.nan)
    return base.Population(particles, log_z, stats, jnp.sum(stats["n_grad"]))
