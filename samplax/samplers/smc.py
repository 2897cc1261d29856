"""Tempered SMC: prior -> posterior through p_b(x) ∝ prior(x) L(x)^b, b from 0 to 1, with log Z and its error.

`samplax.sample(target, "smc", num_particles=N, num_chains=C, seed=..., **settings)`. The sampler has the
blackjax shape: an `SMCState` (NamedTuple: particles, log_weights, log_z, log_lik, temperature, log_step,
ancestors, stage, buffers), `init(key) -> SMCState` and `step(key, state) -> (SMCState, StageInfo)`; the three
strategies (standard, waste-free, persistent) are `Strategy(init, step)` pairs run by one driver (`run_smc`,
a lax.while_loop over a `max_stages` buffer of StageInfo rows). blackjax pieces inside: the rwm / mala / hmc
kernels and the resampling schemes (the temperature bisection is on log(b' - b), see next_temperature).

Each stage (1) picks the next temperature: adaptively, the largest step whose conditional ESS (Zhou,
Johansen & Aston 2016) is `target_ess`·N, by bisection, or the next entry of a fixed schedule; (2) reweights by
L^(b'-b) and adds log sum_i W_i L_i^(b'-b) to log Z (the unbiased product estimator,
samplax.particles.reweight); (3) resamples; (4) moves the particles with a blackjax kernel that leaves p_b'
invariant, in coordinates whitened by the reweighted cloud (`mass`; standard and persistent SMC cross-fit: a
particle is moved in coordinates estimated from the other half of the lineages, smc_kernels.cross_whitening;
waste-free with adaptive spacing uses the whole cloud, whose half is only ~N / (2P) chains: cross-fitted, its
log Z came out biased low, benchmarks/smc_logz_calibration.py; with fixed spacing it cross-fits), for as many sweeps as the particles need to decorrelate
(smc_kernels.py: lag-1 autocorrelation from the squared jumps, n = log(threshold) / log rho).

Non-finite log-likelihoods: NaN and +inf are -inf (weight zero, a rejected MCMC proposal), never 0; every
log-likelihood evaluated at a particle (the prior draws, the moved particles) that was NaN or +inf is counted in
stage_stats["n_nonfinite"] (-inf, a zero likelihood, is legitimate and not counted).

Strategies: `waste_free=True` (the default unless persistent; Dau & Chopin 2022): resample M = ceil(N/P)
particles, run M chains keeping P = num_mcmc_steps states each (the first N kept), states spaced by an adaptive
number of sweeps. `waste_free=False`: standard SMC, resample when ESS < ess_threshold·N (default 0.5), move every
particle at least num_mcmc_steps sweeps, and (adapt_steps) until both rho^n and the measured correlation of the
particles with their resampled starts are below correlation_threshold (smc_kernels.start_correlation).
`persistent=True` (Karamanis et al. 2025; smc_persistent.py): all stages' particles kept and reweighted against
the mixture of the earlier tempered targets; its log Z is consistent, not unbiased. `ess_threshold` applies to
standard SMC only and is refused with the others.

Settings: schedule ("adaptive"; "pilot": the temperatures of an adaptive run on its own key, then a second run
with them, twice the cost, for an unbiased Z (`run_with_pilot`); or increasing temperatures 0 .. 1),
target_ess (0.5), kernel ("mala", "hmc", "rwm", "autostep": HMC whose step is doubled / halved per state,
samplers/autostep.py, for funnel-shaped intermediate distributions, ~5x HMC's gradients per sweep), num_mcmc_steps
(10: P for waste-free, the minimum sweeps per stage otherwise), num_integration_steps (hmc / autostep L, 5;
refused with rwm / mala),
step_size (None: the kernel's default, then adapted), mass ("dense" default, "diag", "identity"),
target_acceptance (None: the kernel's), resampling ("systematic"), ess_threshold (None), waste_free (None),
persistent (False), max_stages (200), adapt_steps (True; False: exactly num_mcmc_steps sweeps, or P states
one sweep apart), max_mcmc_steps (100: sweeps per stage and chain at most), correlation_threshold (0.1: the
start-to-end correlation the sweeps aim for), reference (None: the model's prior; (mean, scale): a Gaussian
reference, see samplax.tempering).

log Z error: stage_stats["log_z_var_increment"] estimates the variance of each stage's log-increment within
the population: with W the weights before the stage, w the incremental weights, l = sum W w and families f the
particles sharing an ancestor at the last resampling (for waste-free: a chain, or chains started from one
parent), var = sum_f (sum_{i in f} W_i (w_i / l - 1))^2. This is the chain-mean variance estimator of Dau &
Chopin 2022 for waste-free and a one-generation Lee & Whiteley (2018) estimator for standard SMC; their sum
over stages estimates var(log Z) of the population (samplax.particles.results pools it over populations).
Persistent sampling: a delta-method estimate over all stored particles (smc_persistent.log_z_variance), reported
as the last active stage's log_z_var_increment (0 at the other stages).

stage_stats per stage: temperature, ess (after reweighting), log_z_increment, log_z_var_increment,
acceptance_rate, resampled, n_grad (gradients really computed: kernel init at the new temperature + every
sweep, all chains; 0 for rwm), n_logdensity (log-density evaluations without a gradient: the log-likelihood of
the moved particles, every random-walk proposal; stage 0 also counts the prior draws), n_nonfinite (NaN / +inf
log-likelihoods at particles; stage 0 includes the prior draws), step_size (at the stage's first sweep),
n_steps (sweeps per chain), rho (estimated lag-1 autocorrelation, max over whitened coordinates), correlation
(waste-free: rho ** spacing, between consecutive kept states; standard SMC: the measured start-to-end
correlation; persistent: rho ** n_steps), active (rows of the max_stages buffer
really used).
"""

from __future__ import annotations

import math

import warnings
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import logsumexp

from samplax import checks
from samplax.particles import base
from samplax.particles.progress import StageProgress
from samplax.particles.resampling import check_threshold, maybe_resample, scheme
from samplax.particles.state import ParticleState, conditional_ess, ess, increment_variance, reweight
from samplax.samplers.base import DefaultInt, DefaultValue, given_settings
from samplax.samplers.smc_kernels import (KERNELS, MASSES, TARGET_ACCEPTANCE, MoveSettings, cross_whitening,
                                          make_kernel, move, next_spacing, whitening)

FAMILY_DEPTH = 2
DEFAULT_INTEGRATION_STEPS = 5  # hmc / autostep leapfrog steps per proposal when num_integration_steps is None
DEFAULT_MAX_MCMC_STEPS = DefaultInt(100)  # the adaptive sweeps' cap (per stage and chain)
DEFAULT_CORRELATION = DefaultValue(0.1)  # the start-to-end correlation the adaptive sweeps aim for
DEFAULT_TARGET_ESS = DefaultValue(0.5)  # the adaptive schedule's conditional ESS per stage (as a fraction of N)
DEFAULT_MAX_STAGES = DefaultInt(200)  # the adaptive schedule's cap on stages
MIN_FIXED_DENSE_SWEEPS = 5  # fewer fixed sweeps with the dense mass: warned (smc_kernels, cross-fitting)
CROSS_FIT = True  # cross-fitted whitening (private switch for probes; waste-free only with adapt_steps=False)
MEASURED_STOP = True  # standard SMC: sweep until the measured start-to-end correlation is below threshold too
STEP_GAIN = 1.0  # log step += STEP_GAIN * (acceptance - target) after each sweep: a sweep at 0 acceptance halves hmc's step
Array = jax.Array


class SMCState(NamedTuple):
    """One population between stages. `log_lik` (N,) at the particles (non-finite -> -inf); `parents` (N,) the
    index of each particle's parent at the last resampling, `ancestors` (N,) its family for the log Z variance
    (the parent for standard SMC, the parent's parent for waste-free); `buffers` holds a strategy's own arrays
    (persistent sampling's stored stages; standard and waste-free: each particle's lineage label 0 / 1 for the
    cross-fitted whitening)."""

    particles: Array
    log_weights: Array
    log_z: Array
    log_lik: Array
    temperature: Array
    log_step: Array
    ancestors: Array
    parents: Array
    stage: Array
    buffers: Any = None
    spacing: Any = None  # waste-free with adapt_steps: sweeps between kept states at the next stage


class StageInfo(NamedTuple):
    temperature: Array
    ess: Array
    log_z_increment: Array
    log_z_var_increment: Array
    acceptance_rate: Array
    resampled: Array
    n_grad: Array
    n_logdensity: Array
    n_nonfinite: Array
    step_size: Array
    n_steps: Array
    rho: Array
    correlation: Array
    active: Array


STATS = StageInfo._fields


class Strategy(NamedTuple):
    """`init(key) -> (SMCState, n_logdensity, n_nonfinite)` at temperature 0, `step(key, state) -> (state, info)`;
    `log_z_var(state) -> variance of log Z` (optional): a strategy whose variance estimate is not a sum of per-stage
    terms (persistent sampling) computes it once from the final state; the driver reports it as the last active
    stage's log_z_var_increment (the others 0), so the sum over stages is still the population's variance."""

    name: str
    init: Callable
    step: Callable
    resampling: str = "systematic"  # the scheme of the final resampling to equal weights
    log_z_var: Callable | None = None


def _warn_unfinished(beta, max_stages):
    if float(beta) >= 1.0:
        return
    warnings.warn(f"smc: the tempering reached temperature {float(beta):.4g} < 1 after max_stages={int(max_stages)} "
                  "stages, so the particles are not posterior draws and log Z is NaN; raise max_stages or lower "
                  "target_ess", RuntimeWarning, stacklevel=2)


def safe_log_lik(log_lik: Callable):
    """Vectorised log-likelihood with NaN / +inf -> -inf; returns (values, number that were NaN or +inf)."""

    def f(x):
        raw = jax.vmap(log_lik)(x)
        bad = jnp.isnan(raw) | (raw == jnp.inf)
        return jnp.where(bad, -jnp.inf, raw), jnp.sum(bad)

    return f


def tempered(log_prior, log_lik, beta):
    """log prior + beta log L with any non-finite value other than -inf (NaN, +inf) as -inf."""

    def f(x):
        ll = log_lik(x)
        ll = jnp.where(jnp.isnan(ll) | (ll == jnp.inf), -jnp.inf, ll)
        v = log_prior(x) + jnp.where(ll == -jnp.inf, -jnp.inf, beta * ll)
        return jnp.where(jnp.isnan(v) | (v == jnp.inf), -jnp.inf, v)

    return f


def increments(delta, ll):
    """delta · ll with -inf likelihoods -inf at any delta (also delta = 0: a zero likelihood is weight zero)."""
    return jnp.where(ll == -jnp.inf, -jnp.inf, delta * ll)


def next_temperature(beta, log_weights, ll, target_ess, iterations: int = 64):
    """Largest b' <= 1 with conditional ESS of the increments (b'-b)·ll >= target_ess·N.

    Bisection on log(b' - b) between log(tiny) and log(1 - b), not on b' - b: prior draws can have
    log-likelihoods like -1e120 (arma11: |theta| > 1 makes the recursion explode), where the step is ~1e-120 and
    a linear bisection (blackjax's dichotomy, 100 halvings) returns 0 and the schedule stalls. When even the
    smallest step is below the target (zero likelihoods), that smallest step is taken: the stage removes them."""
    n = ll.shape[0]
    dtype = ll.dtype
    top = 1.0 - beta

    def f(log_delta):
        return jnp.log(conditional_ess(log_weights, increments(jnp.exp(log_delta), ll))) - jnp.log(target_ess * n)

    lo0 = jnp.asarray(np.log(np.finfo(np.dtype(dtype)).tiny) + 20.0, dtype)
    hi0 = jnp.log(jnp.maximum(top, jnp.finfo(dtype).tiny))

    def body(_, ab):
        a, b = ab
        mid = 0.5 * (a + b)
        ok = f(mid) >= 0  # NaN (all weights zero) counts as too far
        return jnp.where(ok, mid, a), jnp.where(ok, b, mid)

    a, _ = jax.lax.fori_loop(0, iterations, body, (lo0, hi0))
    delta = jnp.where(f(hi0) >= 0, top, jnp.exp(a))
    new = beta + delta
    return jnp.where(1.0 - new < 1e-10, 1.0, new)


def _int():
    return jnp.int64 if jax.config.jax_enable_x64 else jnp.int32


def _stat_buffers(S, dtype) -> StageInfo:
    kinds = {"resampled": jnp.bool_, "active": jnp.bool_, "n_grad": _int(), "n_logdensity": _int(),
             "n_nonfinite": _int(), "n_steps": _int()}
    return StageInfo(*(jnp.zeros((S,), kinds.get(k, dtype)) for k in STATS))


class _Loop(NamedTuple):
    key: Array
    state: SMCState
    stats: StageInfo


def run_smc(strategy: Strategy, key, max_stages: int, progress) -> base.Population:
    """The one driver: init, then `step` until temperature 1 or max_stages; a Population with equal weights."""
    S = max_stages
    k0, key = jax.random.split(key)
    state, n_logd0, n_bad0 = strategy.init(k0)
    stats = _stat_buffers(S, state.particles.dtype)

    def cond(c: _Loop):
        return (c.state.temperature < 1.0) & (c.state.stage < S)

    def body(c: _Loop):
        key, k = jax.random.split(c.key)
        s = c.state.stage
        state, info = strategy.step(k, c.state)
        progress.update(s, info.temperature, info.ess)
        stats = jax.tree.map(lambda buf, v: buf.at[s].set(jnp.asarray(v).astype(buf.dtype)), c.stats, info)
        return _Loop(key, state._replace(stage=s + 1), stats)

    out = jax.lax.while_loop(cond, body, _Loop(key, state, stats))
    stats = out.stats._replace(n_logdensity=out.stats.n_logdensity.at[0].add(n_logd0),
                               n_nonfinite=out.stats.n_nonfinite.at[0].add(n_bad0))
    state = out.state
    if strategy.log_z_var is not None:
        v = jnp.asarray(strategy.log_z_var(state), stats.log_z_var_increment.dtype)
        last = jnp.clip(state.stage - 1, 0, S - 1)
        stats = stats._replace(log_z_var_increment=jnp.zeros_like(stats.log_z_var_increment).at[last].set(v))
    # equally weighted output: one last resampling when the weights are not uniform (log Z unchanged)
    particles = final_resample(out.key, ParticleState(state.particles, state.log_weights, state.log_z),
                               strategy.resampling)
    return finish(particles, state.log_z, state.temperature, stats._asdict(), S)


def _integration_steps(kernel, num_integration_steps):
    """num_integration_steps as given for the kernels that integrate (hmc, autostep; None: 5); refused for the
    one-step kernels (rwm, mala), which would silently ignore it."""
    if num_integration_steps is None:
        return DEFAULT_INTEGRATION_STEPS if kernel in ("hmc", "autostep") else None
    if kernel in ("rwm", "mala"):
        raise ValueError(f"num_integration_steps={num_integration_steps!r} is not used by kernel={kernel!r}, which "
                         "makes one proposal per sweep: drop it, or use kernel='hmc' or 'autostep'")
    return num_integration_steps


def _settings_check(schedule, target_ess, kernel, num_mcmc_steps, num_integration_steps, step_size,
                    resampling, ess_threshold, waste_free, persistent, max_stages, mass, max_mcmc_steps,
                    correlation_threshold, adapt_steps):
    if isinstance(schedule, str):
        if schedule not in ("adaptive", "pilot"):
            raise ValueError(f"schedule must be 'adaptive', 'pilot' or an increasing array of temperatures from 0 "
                             f"to 1, got {schedule!r}")
        if schedule == "pilot" and persistent:
            raise ValueError("schedule='pilot' is for standard and waste-free SMC; persistent SMC's log Z is "
                             "consistent, not unbiased, so a pilot schedule buys it nothing: use 'adaptive'")
        temps = None
    else:
        temps = np.asarray(schedule, dtype=float)
        if (temps.ndim != 1 or temps.size < 2 or not np.all(np.isfinite(temps)) or temps[0] != 0.0
                or temps[-1] != 1.0 or not np.all(np.diff(temps) > 0)):  # NaN passed `any(diff <= 0)`
            raise ValueError("schedule must be 'adaptive' or a strictly increasing 1-D array of temperatures "
                             f"starting at 0 and ending at 1, got {schedule!r}")
    if not 0.0 < float(target_ess) < 1.0 and not persistent:
        raise ValueError(f"target_ess must be a fraction of the particles in (0, 1), got {target_ess!r}")
    if persistent and not 0 < float(target_ess) < math.inf:  # inf was accepted, never reached, ran every stage
        raise ValueError(f"target_ess (persistent: ESS over all stored particles / N, may exceed 1) must be > 0, "
                         f"got {target_ess!r}")
    if not checks.member(kernel, KERNELS):
        raise ValueError(f"kernel must be one of {KERNELS}, got {kernel!r}")
    if not checks.member(mass, MASSES):
        raise ValueError(f"mass must be one of {MASSES}, got {mass!r}")
    for name, v, low in (("num_mcmc_steps", num_mcmc_steps, 1), ("num_integration_steps", num_integration_steps, 1),
                         ("max_stages", max_stages, 1), ("max_mcmc_steps", max_mcmc_steps, 1)):
        if v is not None:  # num_integration_steps of a one-step kernel
            checks.integer(name, v, low)
    if not isinstance(adapt_steps, bool):
        raise ValueError(f"adapt_steps must be True or False, got {adapt_steps!r}")
    if not 0.0 < float(correlation_threshold) < 1.0:
        raise ValueError(f"correlation_threshold must be in (0, 1), got {correlation_threshold!r}")
    checks.given_scale("step_size", step_size)  # None: the kernel's default
    scheme(resampling)
    if waste_free and persistent:
        raise ValueError("waste_free and persistent are two different ways to reuse particles; set at most one")
    if ess_threshold is not None:
        if waste_free or persistent:
            raise ValueError(f"ess_threshold={ess_threshold!r} is not used by "
                             f"{'waste-free' if waste_free else 'persistent'} SMC, which resamples at every stage; "
                             "drop it, or pass waste_free=False for standard SMC")
        check_threshold(ess_threshold)
    if waste_free and num_mcmc_steps < 2:
        raise ValueError(f"waste_free=True runs chains of num_mcmc_steps = P states; P must be >= 2, got {num_mcmc_steps}")
    if not waste_free and not persistent and num_mcmc_steps > max_mcmc_steps:
        raise ValueError(f"num_mcmc_steps ({num_mcmc_steps}, the minimum sweeps per stage) exceeds max_mcmc_steps "
                         f"({max_mcmc_steps})")
    return temps


@base.register("smc")
def smc(schedule="adaptive", target_ess=DEFAULT_TARGET_ESS, kernel="mala", num_mcmc_steps=10,
        num_integration_steps=None, step_size=None, mass="dense", target_acceptance=None, resampling="systematic",
        ess_threshold=None, waste_free=None, persistent=False, max_stages=DEFAULT_MAX_STAGES, adapt_steps=True, max_mcmc_steps=DEFAULT_MAX_MCMC_STEPS,
        correlation_threshold=DEFAULT_CORRELATION, reference=None, step_spread=1.0) -> base.PopulationSampler:
    """Tempered SMC (module docstring); `reference=(mean, scale)` sets a Gaussian reference as the prior.

    step_spread=R > 1 (kernel="hmc"): each particle's HMC step is log-uniform in [h / R, h R] per sweep instead of
    the +-50% jitter (smc_kernels' docstring: a funnel's neck and mouth each find steps that fit).

    waste_free=None (default) means True unless persistent=True: at equal gradients it gave the lowest log Z
    sd in benchmarks/smc_blackjax.py (see docs/DESIGN.md).
    """
    waste_free = None if waste_free is None else checks.flag("waste_free", waste_free)  # "yes" / "no" were truthy
    persistent = checks.flag("persistent", persistent)
    if waste_free is None:
        waste_free = not persistent
    temps = _settings_check(schedule, target_ess, kernel, num_mcmc_steps, num_integration_steps, step_size,
                            resampling, ess_threshold, waste_free, persistent, max_stages, mass, max_mcmc_steps,
                            correlation_threshold, adapt_steps)
    num_integration_steps = _integration_steps(kernel, num_integration_steps)
    if temps is not None:  # a fixed schedule: its temperatures are the stages; nothing picks or caps them
        given = given_settings(target_ess=target_ess, max_stages=max_stages)
        if given:
            raise ValueError(f"smc: {', '.join(given)} {'steers' if len(given) == 1 else 'steer'} the adaptive "
                             f"schedule, which a fixed schedule of {temps.size - 1} stages replaces, so nothing would "
                             f"use {'it' if len(given) == 1 else 'them'}: drop {'it' if len(given) == 1 else 'them'}, "
                             "or use schedule='adaptive' (or 'pilot')")
        target_ess = None
    if not adapt_steps:  # they steer the adaptive sweeps, which adapt_steps=False turns off
        given = given_settings(max_mcmc_steps=max_mcmc_steps, correlation_threshold=correlation_threshold)
        if given:
            raise ValueError(f"smc: {', '.join(given)} {'steers' if len(given) == 1 else 'steer'} the adaptive "
                             "number of sweeps, which adapt_steps=False "
                             "turns off (exactly num_mcmc_steps sweeps, or kept states one sweep apart), so nothing "
                             "would use them: drop them, or keep adapt_steps=True")
    max_mcmc_steps, correlation_threshold = int(max_mcmc_steps), float(correlation_threshold)
    if ess_threshold is None and not (waste_free or persistent):
        ess_threshold = 0.5
    if mass == "dense" and not adapt_steps and not waste_free and num_mcmc_steps < MIN_FIXED_DENSE_SWEEPS:
        warnings.warn(
            f"smc: mass='dense' with adapt_steps=False and num_mcmc_steps={num_mcmc_steps} (< "
            f"{MIN_FIXED_DENSE_SWEEPS} fixed sweeps per stage) biases log Z in many dimensions even with the "
            "cross-fitted whitening (50-d Gaussian, 2 sweeps: MALA +7.3 se 3.1, HMC -0.71 se 0.19): keep "
            f"adapt_steps=True (the default), or use num_mcmc_steps >= {MIN_FIXED_DENSE_SWEEPS} or mass='diag'",
            UserWarning, stacklevel=3)
    if mass == "dense" and not adapt_steps and waste_free and kernel == "mala":
        warnings.warn(
            "smc: waste-free MALA with mass='dense' and adapt_steps=False (fixed spacing between kept states) "
            "biases log Z in many dimensions, cross-fitted or not (50-d Gaussian, 8 populations: +9.6 se 1.7 at "
            "num_mcmc_steps=10, +11.4 at 5): keep adapt_steps=True (the default), or use kernel='hmc' or mass='diag'",
            UserWarning, stacklevel=3)
    settings = dict(schedule=schedule if temps is None else temps.tolist(), target_ess=target_ess, kernel=kernel,
                    num_mcmc_steps=num_mcmc_steps, num_integration_steps=num_integration_steps, step_size=step_size,
                    mass=mass, target_acceptance=target_acceptance, resampling=resampling,
                    ess_threshold=ess_threshold, waste_free=waste_free, persistent=persistent,
                    max_stages=max_stages if temps is None else temps.size - 1, adapt_steps=adapt_steps,
                    max_mcmc_steps=max_mcmc_steps, correlation_threshold=correlation_threshold, reference=reference,
                    step_spread=step_spread)
    mk = make_kernel(kernel, num_integration_steps or DEFAULT_INTEGRATION_STEPS, step_spread)
    if mk.log_step_change is not None and target_acceptance is not None:
        raise ValueError(f"target_acceptance is not used with kernel={kernel!r} (its base step follows the steps the "
                         "move picks per state, not an acceptance rate): leave it None")
    if target_acceptance is not None:
        target_acceptance = checks.scalar(target_acceptance)
        if not checks.is_real(target_acceptance) or not 0.0 < target_acceptance < 1.0:  # NaN fails both sides
            raise ValueError(f"target_acceptance must be a number in (0, 1) (the acceptance rate the step is steered "
                             f"towards), got {target_acceptance!r}")
    acc_target = TARGET_ACCEPTANCE.get(kernel) if target_acceptance is None else float(target_acceptance)
    if step_size is not None:  # used as the first stage's step, then steered like the default one: said so
        warnings.warn(f"smc: step_size={step_size!r} is the starting step; SMC steers the step towards the "
                      f"target acceptance ({acc_target}) at every stage, so later stages use other steps "
                      "(stage_stats['step_size'] holds them)", UserWarning, stacklevel=2)

    def run(model, key, num_particles, progress):
        from samplax.particles.run import as_target
        from samplax.tempering import tempering_parts

        target = as_target(model)
        # a reference's coverage findings go into the run's one trust warning (particles.run), not a second one
        parts = tempering_parts(target, reference, warn_coverage=False)
        if persistent:
            from samplax.samplers.smc_persistent import persistent_strategy

            strat = persistent_strategy(parts, target.dim, num_particles, settings, mk, acc_target, temps)
        elif isinstance(schedule, str) and schedule == "pilot":  # an array schedule must not meet `==` here
            return run_with_pilot(parts, target.dim, num_particles, settings, mk, acc_target, key,
                                  settings["max_stages"], progress)
        else:
            strat = tempered_strategy(parts, target.dim, num_particles, settings, mk, acc_target, temps)
        return run_smc(strat, key, settings["max_stages"], progress)

    return base.PopulationSampler("smc", run, settings, stage_label="temperature")


def run_with_pilot(parts, dim, n, st, mk, acc_target, key, max_stages, progress) -> base.Population:
    """schedule="pilot": an adaptive run on its own key fixes the temperatures; a second run, on another key,
    uses them as a fixed schedule and gives the particles and log Z. The adaptive schedule picks each temperature
    from the weights that then estimate that stage's increment, which biases log Z low (50-d Gaussian, standard
    SMC: mean z -0.34 over 100 x 4 populations; benchmarks/smc_logz_calibration.py); a schedule independent of the
    particles that use it keeps Z unbiased, at twice the cost. The pilot's work is counted: its gradients and
    log-density evaluations are added to the first stage's row of stage_stats. A pilot that does not reach
    temperature 1 within max_stages leaves log Z NaN."""
    k_pilot, k_main = jax.random.split(key)
    pilot = run_smc(tempered_strategy(parts, dim, n, st, mk, acc_target, None), k_pilot, max_stages,
                  StageProgress(False, 0, "pilot", "temperature"))  # the pilot shows nothing
    done = pilot.stage_stats["active"]
    temps = jnp.concatenate([jnp.zeros((1,), pilot.stage_stats["temperature"].dtype),
                             jnp.where(done, pilot.stage_stats["temperature"], 1.0)])
    main = run_smc(tempered_strategy(parts, dim, n, st, mk, acc_target, temps), k_main, max_stages, progress)
    stats = dict(main.stage_stats)
    for k in ("n_grad", "n_logdensity", "n_nonfinite"):
        stats[k] = stats[k].at[0].add(jnp.sum(pilot.stage_stats[k]).astype(stats[k].dtype))
    log_z = jnp.where(jnp.isfinite(pilot.log_z), main.log_z, jnp.nan)
    return base.Population(main.particles, log_z, stats, jnp.sum(stats["n_grad"]))


def move_settings(st, acc_target, keep: int, measured: bool = False) -> MoveSettings:
    return MoveSettings(keep=keep, min_steps=1 if keep else st["num_mcmc_steps"], max_steps=st["max_mcmc_steps"],
                        adapt=st["adapt_steps"], threshold=float(st["correlation_threshold"]),
                        acc_target=acc_target, gain=STEP_GAIN, measured=measured)


def initial_state(parts, dim, key, n, st, mk, dtype=None):
    """Prior draws at temperature 0: (SMCState, log-likelihood evaluations, non-finite ones)."""
    log_prior, log_lik, sample_prior = parts
    x = sample_prior(key, n)
    ll, bad = safe_log_lik(log_lik)(x)
    dtype = x.dtype
    log_step0 = jnp.log(jnp.asarray(mk.initial_step_size(dim) if st["step_size"] is None else st["step_size"], dtype))
    state = SMCState(x, jnp.zeros((n,), dtype), jnp.zeros((), dtype), ll, jnp.zeros((), dtype), log_step0,
                     jnp.arange(n), jnp.arange(n), jnp.array(0))
    return state, n, bad


def tempered_strategy(parts, dim, n, st, mk, acc_target, temps) -> Strategy:
    """Standard (st["waste_free"] False) or waste-free tempered SMC as an (init, step) pair."""
    log_prior, log_lik, _ = parts
    lik = safe_log_lik(log_lik)
    waste_free = st["waste_free"]
    P = st["num_mcmc_steps"]
    # waste-free: ceil(N / P) chains of P states; when P does not divide N the last chain's tail is dropped
    # (every kept state is still marginally a draw from the stage's target)
    n_chains = -(-n // P) if waste_free else n
    ms = move_settings(st, acc_target, P if waste_free else 0, measured=MEASURED_STOP and not waste_free)
    resample_fn = scheme(st["resampling"])
    schedule = None if temps is None else jnp.asarray(temps)

    def init(key):
        state, n_logd, n_bad = initial_state(parts, dim, key, n, st, mk)
        # the first stage keeps every sweep's state (spacing 1); later stages space them by the rho the stage
        # before measured (smc_kernels.move: never by the current stage's own jumps)
        return state._replace(buffers=jnp.arange(n, dtype=jnp.int32) % 2,
                              spacing=jnp.array(1, jnp.int32)), n_logd, n_bad

    def step(key, state: SMCState):
        k_res, k_move = jax.random.split(key)
        beta = state.temperature
        if schedule is None:
            beta_new = next_temperature(beta, state.log_weights, state.log_lik, st["target_ess"])
        else:
            beta_new = schedule[state.stage + 1]
        inc = increments(beta_new - beta, state.log_lik)
        var_inc = increment_variance(state.log_weights, inc, state.ancestors)
        ps = reweight(ParticleState(state.particles, state.log_weights, state.log_z), inc)
        ess_now = ess(ps.log_weights)
        # cross-fitted whitening (smc_kernels.cross_whitening): a particle is moved in coordinates estimated
        # from the other half of the cloud. The halves are lineages: `buffers` holds each particle's label (0 / 1),
        # inherited by its copies and descendants, so a particle's relatives are never in the half that whitens it
        # waste-free with adaptive spacing (the default) moves in the whole cloud's whitening instead: its cloud is
        # ceil(N / P) chains of P correlated states, so half of it is ~N / (2P) starts, and the factor estimated
        # from it (50-d Gaussian, N = 500: 25 chains) made log Z biased low (mean z -0.71 over 40 repeats, bias
        # -0.073; whole cloud -0.02 / -0.013; benchmarks/smc_logz_calibration.py). With fixed spacing
        # (adapt_steps=False: one sweep between kept states) the self-fitted contraction returns (same Gaussian,
        # reference N(0, 15^2), 40 fixed temperatures, HMC dense, P = 5: +6.7 se 1.1 whole cloud, -0.30 se 0.43
        # cross-fitted; tests/test_smc_metric.py), so fixed-spacing waste-free cross-fits
        cross = CROSS_FIT and (not waste_free or not st["adapt_steps"])
        group = state.buffers
        white = (cross_whitening(ps.particles, ps.log_weights, group, st["mass"]) if cross
                 else whitening(ps.particles, ps.log_weights, st["mass"]))
        if waste_free:
            idx = resample_fn(k_res, jax.nn.softmax(ps.log_weights), n_chains)
            starts, resampled = ps.particles[idx], jnp.array(True)
            g_starts = group[idx]
        else:
            ps, resampled, idx = maybe_resample(k_res, ps, st["ess_threshold"], st["resampling"])
            starts = ps.particles
            g_starts = jnp.where(resampled, group[idx], group)
        out, mi = move(mk, k_move, starts, tempered(log_prior, log_lik, beta_new), white, state.log_step, ms,
                       group=g_starts if cross else None, spacing_given=state.spacing if waste_free else None)
        if waste_free:
            x = out.reshape(n_chains * P, dim)[:n]
            new_group = jnp.repeat(g_starts, P)[:n]
            lw = jnp.zeros((n,), x.dtype)
            par = jnp.repeat(idx, P)[:n]
            anc = jnp.repeat(state.parents[idx], P)[:n] if FAMILY_DEPTH == 2 else par
        else:
            x, lw = out, ps.log_weights
            new_group = g_starts
            par = jnp.where(resampled, idx, state.parents)
            anc = par
        # labels drift with resampling; when one half holds under a quarter of the particles, relabel (by chain)
        share = jnp.mean(new_group.astype(x.dtype))
        fresh = (jnp.repeat(jnp.arange(n_chains) % 2, P)[:n] if waste_free else jnp.arange(n) % 2).astype(jnp.int32)
        new_group = jnp.where((share < 0.25) | (share > 0.75), fresh, new_group).astype(jnp.int32)
        ll, bad = lik(x)
        sweeps = mi.n_steps
        info = StageInfo(
            temperature=beta_new, ess=ess_now, log_z_increment=ps.log_z - state.log_z, log_z_var_increment=var_inc,
            acceptance_rate=mi.acceptance_rate, resampled=resampled,
            n_grad=n_chains * mk.grads_init + mi.n_grad,
            n_logdensity=n_chains * (mk.logd_init + sweeps * mk.logd_step) + n, n_nonfinite=bad,
            step_size=jnp.exp(state.log_step), n_steps=sweeps, rho=mi.rho, correlation=mi.correlation,
            active=jnp.array(True))
        spacing = next_spacing(mi.rho, ms).astype(jnp.int32) if waste_free else state.spacing
        new = SMCState(x, lw, ps.log_z, ll, beta_new, mi.log_step, anc.astype(state.ancestors.dtype),
                       par.astype(state.parents.dtype), state.stage, new_group, spacing)
        return new, info

    return Strategy("waste_free" if waste_free else "standard", init, step, st["resampling"])


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
