"""Checks for population runs (SMC, Feynman-Kac correctors, diffusion samplers): never along a particle index.

A population's particles are exchangeable and systematic resampling sorts them, so R-hat, ESS, trace, rank
and autocorrelation computed along the particle axis measure nothing. What can be checked instead:
agreement between independent populations (their means and spreads, as a population R-hat that does not
split or order the particles; their log Z against its standard error), each population's final ESS, the
acceptance of the MCMC moves at every stage, and non-finite weights, particles and log Z.
"""

from __future__ import annotations

import numpy as np

# Population R-hat above this flags disagreeing populations. Between-population spread of a mean is
# ~ W / N_eff, so for C = 4 healthy populations R-hat^2 - 1 ~ chi2_3 / (3 N_eff): its 99.9% point is 5.4 / N_eff,
# under 0.06 (R-hat 1.03) once each population holds N_eff >= 100 effective particles. One population 0.6 sd off
# gives R-hat ~1.04. The chains' 1.01 would fire on healthy SMC runs of a few hundred effective particles.
POP_RHAT_MAX = 1.03
MIN_ACCEPTANCE = 0.05  # a stage whose moves accept less than this left its particles where resampling put them
MIN_FINAL_ESS_FRACTION = 0.01
LOG_Z_CHI2_P = 1e-3  # populations' log Z disagree when their chi-square spread has p below this


def is_population(dt) -> bool:
    return "stage_stats" in dt.children or bool(dt.attrs.get("population", 0))


def population_rhat(x: np.ndarray) -> float:
    """Non-split, rank-normalised R-hat of (populations, particles) draws: invariant to the particles' order."""
    x = np.asarray(x, dtype=float)
    c, n = x.shape
    if c < 2 or n < 2 or not np.all(np.isfinite(x)):
        return float("nan")
    from scipy.stats import norm, rankdata

    r = rankdata(x, method="average").reshape(c, n)
    z = norm.ppf((r - 0.375) / (x.size + 0.25))
    w = np.mean(np.var(z, axis=1, ddof=1))
    b = n * np.var(np.mean(z, axis=1), ddof=1)
    if w == 0:
        return float("nan")
    return float(np.sqrt(((n - 1) / n * w + b / n) / w))


def flat_entries(dt):
    """(name[index], (populations, particles) array) for every scalar entry of the posterior."""
    post = dt["posterior"]
    for name in post.data_vars:
        a = np.asarray(post[name])
        c, n = a.shape[:2]
        flat = a.reshape(c, n, -1)
        for j in range(flat.shape[-1]):
            label = name if flat.shape[-1] == 1 else f"{name}[{j}]"
            yield label, flat[:, :, j]


def nonfinite_particles(dt) -> np.ndarray:
    """(populations, particles) bools: the particle has a NaN/inf entry in any posterior variable (one particle counts
    once however many of its coordinates are bad; the count agrees with attrs["n_nonfinite"])."""
    post = dt["posterior"]
    c, n = int(post.sizes["chain"]), int(post.sizes["draw"])
    bad = np.zeros((c, n), bool)
    for name in post.data_vars:
        a = np.asarray(post[name], dtype=float).reshape(c, n, -1)
        bad |= ~np.isfinite(a).all(axis=-1)
    return bad


def _unfinished(dt):
    """(populations, particles) bools from particle_stats["finished"] (adaptive solvers): True where a particle's
    solve used up max_steps before t_min; None when the sampler does not report it."""
    if "particle_stats" not in dt.children or "finished" not in dt["particle_stats"]:
        return None
    return ~np.asarray(dt["particle_stats"]["finished"]).astype(bool)


def _setting(attrs, key, default):
    """One of the sampler's settings (attrs["settings"] is their repr), or `default` when it cannot be read."""
    import ast

    try:
        return ast.literal_eval(str(attrs.get("settings", ""))).get(key, default)
    except (ValueError, SyntaxError, AttributeError, TypeError):
        return default


def _stage(dt, key):
    st = dt["stage_stats"]
    if key not in st:
        return None
    v = np.asarray(st[key], dtype=float)
    if "active" in st:
        v = np.where(np.asarray(st["active"]).astype(bool), v, np.nan)
    return v


KINETIC_TEMPERATURE_MAX = 2.0  # mean-field Langevin: mean kinetic energy / (d sigma2 / 2) over the second half


def check(dt, *, rhat_max: float = POP_RHAT_MAX) -> list[str]:
    """Plain-language findings for a population run; an empty list means no problem was detected."""
    from scipy.stats import chi2

    from samplax.particles.run import final_ess

    a = dt.attrs
    out = []
    n_particles = int(dt["posterior"].sizes["draw"])
    n_pop = int(dt["posterior"].sizes["chain"])

    bad = nonfinite_particles(dt)  # (populations, particles): any coordinate NaN/inf
    bad_particles = int(bad.sum())
    unfinished = _unfinished(dt)
    if unfinished is not None and unfinished.any():
        out.append(f"{int(unfinished.sum())} of {unfinished.size} particle(s) did not reach t_min within "
                   f"max_steps = {_setting(a, 'max_steps', '?')} steps of the solver (particle_stats['finished'] "
                   "is False) and are NaN: raise max_steps, or loosen the tolerance (tol / rtol, atol).")
        bad_other = int((bad & ~unfinished).sum())  # NaN for another reason than the step budget
    else:
        bad_other = bad_particles
    if bad_other:
        out.append(f"{bad_other} of {bad.size} particle(s) are NaN/inf: the run broke down; nothing was repaired. "
                   "Check the model for NaN/inf regions, or use more stages / smaller steps.")
    n_nonfinite = int(a.get("n_nonfinite_loglik", 0))
    if n_nonfinite:
        out.append(f"{n_nonfinite} log-likelihood evaluation(s) were NaN/inf; those particles got weight zero (the "
                   "model is NaN/inf somewhere the particles went: check it, e.g. a log of a negative number).")
    outside = _stage(dt, "n_outside_support")
    if outside is not None and np.nansum(outside) > 0:
        out.append(f"{int(np.nansum(outside))} particle(s) were outside the target's support (log-density -inf) where "
                   "the population resampled or moved: the intermediate targets are truncated there and log Z is "
                   "biased low (on a half-normal, untrained: SCLD -0.11, NETS -0.79, 15 and 89 standard errors). "
                   "Sample in unconstrained coordinates (e.g. a numpyro model), or run without resampling and moves.")
    estimates = bool(a.get("estimates_log_z", 1))
    lz = np.atleast_1d(np.asarray(a.get("log_z_per_population", []), dtype=float))
    if estimates and lz.size and not np.all(np.isfinite(lz)):
        out.append(f"log Z is not finite in population(s) {np.where(~np.isfinite(lz))[0].tolist()} "
                   f"({lz.tolist()}): the tempering did not finish or the weights broke down.")
    kt = _stage(dt, "kinetic_temperature")
    if kt is not None:  # underdamped mean-field dynamics: equipartition says ~1 at equilibrium
        half = np.asarray(kt, float)[:, kt.shape[1] // 2:]
        with np.errstate(invalid="ignore"):
            level = np.mean(half, axis=1)
        hot = np.where(~np.isfinite(level) | (level > KINETIC_TEMPERATURE_MAX))[0]
        if hot.size:
            out.append(f"the dynamics blew up in population(s) {hot.tolist()}: kinetic energy over the second half "
                       f"{np.array2string(level[hot], precision=3)} x its equilibrium value d sigma2 / 2 (about 1 when "
                       "stationary); the particles are not draws of the target: lower step_size (the integrator is "
                       "unstable where the target is stiff).")
    temps = _stage(dt, "temperature")
    if temps is not None:
        last = np.nanmax(np.where(np.isfinite(temps), temps, -np.inf), axis=1)
        short = np.where(last < 1.0)[0]
        if short.size:
            out.append(f"the tempering stopped at temperature {np.round(last[short], 4).tolist()} < 1 in population(s) "
                       f"{short.tolist()}: the particles are not posterior draws; raise max_stages.")
    if "ess" in dt["stage_stats"]:
        fe = final_ess(dt["stage_stats"])
        low = np.where(fe < max(2.0, MIN_FINAL_ESS_FRACTION * n_particles))[0]
        if low.size:
            out.append(f"final ESS {np.round(fe[low], 1).tolist()} of N = {n_particles} in population(s) "
                       f"{low.tolist()}: the weights are degenerate, the particles are copies of a few and log Z "
                       "rests on them; use more steps / stages or a better-fitted sampler.")
    acc = _stage(dt, "acceptance_rate")
    if acc is not None:
        with np.errstate(invalid="ignore"):
            stuck = np.where(np.nan_to_num(acc, nan=1.0) < MIN_ACCEPTANCE)
        if stuck[0].size:
            worst = float(np.nanmin(acc))
            out.append(f"the MCMC moves accepted under {MIN_ACCEPTANCE:.0%} at {stuck[0].size} stage(s) (worst "
                       f"{worst:.3f}, population {int(stuck[0][0])} stage {int(stuck[1][0])}): the particles "
                       "stayed copies of their resampled ancestors; use more moves per stage or smaller steps.")
    if n_pop >= 2 and not bad_particles:
        worst, worst_fold = (None, 1.0), (None, 1.0)
        for label, v in flat_entries(dt):
            r = population_rhat(v)
            rf = population_rhat(np.abs(v - np.median(v)))
            if np.isfinite(r) and r > worst[1]:
                worst = (label, r)
            if np.isfinite(rf) and rf > worst_fold[1]:
                worst_fold = (label, rf)
        if worst[1] > rhat_max:
            out.append(f"the {n_pop} populations disagree on means: population R-hat {worst[1]:.3f} > {rhat_max} "
                       f"(worst {worst[0]}): the particles have not reached the posterior; use more MCMC moves per "
                       "stage, more particles, or a better reference.")
        if worst_fold[1] > rhat_max:
            out.append(f"the {n_pop} populations disagree on spreads: folded population R-hat {worst_fold[1]:.3f} > "
                       f"{rhat_max} (worst {worst_fold[0]}): variances and tails are not to be trusted.")
    if "log_z_se_per_population" in a:
        se_pop = np.atleast_1d(np.asarray(a["log_z_se_per_population"], dtype=float))
    else:  # SMC reports each population's within-population variance of its log Z estimate
        se_pop = np.sqrt(np.atleast_1d(np.asarray(a.get("log_z_var_per_population", []), dtype=float)))
    if estimates and lz.size >= 2 and se_pop.size == lz.size and np.all(np.isfinite(lz)) \
            and np.all(np.isfinite(se_pop)) and np.all(se_pop > 0):
        wts = 1.0 / se_pop ** 2
        centre = np.sum(wts * lz) / np.sum(wts)
        stat = float(np.sum(wts * (lz - centre) ** 2))
        p = float(chi2.sf(stat, lz.size - 1))
        if p < LOG_Z_CHI2_P:
            out.append(f"the populations' log Z ({np.round(lz, 3).tolist()}) disagree beyond their standard errors "
                       f"({np.round(se_pop, 3).tolist()}; chi-square p = {p:.1e}): log Z and its SE are not to be "
                       "trusted; use more particles or MCMC moves per stage.")
    for f in str(a.get("reference_findings", "")).split("\n"):
        if f.strip():
            out.append(f.strip())
    return out
