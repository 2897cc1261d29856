"""`samplax.compare`: several samplers on one target under the same budget, one ranked table."""

from __future__ import annotations

import dataclasses
import math
import warnings

import numpy as np
import pandas as pd

from samplax import checks

BUDGET_KINDS = ("gradients", "seconds")
DEFAULT_GRADIENT_BUDGET = 100_000


@dataclasses.dataclass
class Comparison:
    """The ranked table, the runs it was made from and how each run's length was chosen."""

    table: pd.DataFrame
    runs: dict
    plan: dict

    def __str__(self) -> str:
        with pd.option_context("display.width", 200, "display.max_columns", 50, "display.float_format",
                               "{:.4g}".format):
            return self.table.to_string()


COMPARE_OWNS = ("num_chains", "num_warmup", "seed", "progress", "num_samples", "num_particles")


def _check(target, samplers, budget, budget_kind, num_chains, num_warmup, pilot_samples):
    from samplax.target import Target

    if not isinstance(target, Target):
        raise TypeError(f"target must be a samplax.Target, got {type(target).__name__}")
    if isinstance(samplers, str):
        samplers = [s.strip() for s in samplers.split(",") if s.strip()]
    if not samplers:
        raise ValueError("samplers must name at least one sampler, e.g. ['nuts', 'mclmc']")
    from samplax import particles
    from samplax import samplers as chain_samplers
    from samplax.api import canonical_name

    samplers = [canonical_name(s) for s in samplers]
    unknown = [s for s in samplers if not (isinstance(s, str) and (s in chain_samplers.available()
                                                                  or s in particles.available()))]
    if unknown:  # refused before any sampler runs
        raise ValueError(f"compare: unknown sampler(s) {unknown}; chain samplers: "
                         f"{', '.join(chain_samplers.available())}; population samplers: "
                         f"{', '.join(particles.available())}")
    if not checks.member(budget_kind, BUDGET_KINDS):
        raise ValueError(f"budget_kind must be one of {BUDGET_KINDS}, got {budget_kind!r}")
    if not checks.is_real(budget) or not (budget > 0 and math.isfinite(budget)):
        raise ValueError(f"budget must be a positive finite number of {budget_kind}, got {budget!r}")
    for name, v in (("num_chains", num_chains), ("pilot_samples", pilot_samples)):
        checks.integer(name, v, 1)
    if num_warmup is not None:
        checks.integer("num_warmup", num_warmup, 0)
    return list(samplers)


def _cost(dt, kind: str) -> tuple[float, float]:
    """(warmup cost, sampling cost per kept draw per chain) of a run, in gradients or seconds."""
    from samplax.diagnostics.mixing import gradient_count

    chains, draws = dt.posterior.sizes["chain"], dt.posterior.sizes["draw"]
    if kind == "gradients":
        warm = float(dt.attrs.get("n_grad_warmup", 0))
        samp = float(gradient_count(dt)) - warm
    else:
        warm = float(dt.attrs.get("warmup_time", 0.0))
        samp = float(dt.attrs.get("sampling_time", 0.0))
    return warm, samp / (draws * (chains if kind == "gradients" else 1))


def _w2_columns(dt, target, method) -> dict:
    """W2 to the truth with `method` (one estimator for every run of a comparison), its noise floor's mean and sd."""
    from samplax.diagnostics import wasserstein

    try:
        w = wasserstein(dt, target, method=method, per_chain=False)
    except (ValueError, TypeError) as err:
        warnings.warn(f"compare: W2 not available for {dt.attrs.get('sampler')}: {err}", stacklevel=3)
        return {}
    floor = w.floor
    return {"w2": float(w.pooled), "w2_floor": float(floor.mean) if floor else float("nan"),
            "w2_floor_sd": float(floor.std) if floor else float("nan"), "w2_method": w.method}


def _has_truth(target) -> bool:
    return target is not None and (target.sample is not None or target.mean is not None
                                   or bool(target.reference_draws))


def _row(dt, target, hitting_set, kind_cost):
    from samplax.diagnostics.mixing import divergences, gradient_count, summary
    from samplax.diagnostics.population import is_population
    from samplax.diagnostics.report import ess_per_1k_grad

    grads = gradient_count(dt)
    # what the run cost: warmup + sampling; compiling is reported apart (a program cached by the pilot or an earlier
    # call compiles in no time, so counting it would rank by cache state, not by the sampler)
    secs = sum(float(dt.attrs.get(k, 0.0)) for k in ("warmup_time", "sampling_time"))
    row = {"gradients": grads, "seconds": secs, "compile_s": float(dt.attrs.get("compile_time", float("nan")))}
    if is_population(dt):  # particles have no draw order: no ESS / R-hat along them; log Z instead
        row.update({"min_ess_bulk": float("nan"), "ess_per_1k_grad": float("nan"), "ess_per_1k_grad_se": float("nan"),
                    "ess_per_s": float("nan"), "max_r_hat": float("nan"), "divergences": 0,
                    "log_z": float(dt.attrs.get("log_z", float("nan"))),
                    "log_z_se": float(dt.attrs.get("log_z_se", float("nan")))})
    else:
        from samplax.diagnostics.mixing import constant_rows, nonfinite_draws

        s = summary(dt)
        live = ~constant_rows(s).to_numpy()  # constants: no ESS / R-hat
        if nonfinite_draws(dt):  # a variable with NaN/inf draws has no ESS / R-hat: the run's min / max are unknown
            live[:] = False
        ess = float(s["ess_bulk"][live].min()) if live.any() else float("nan")
        row.update({
            "min_ess_bulk": ess, "ess_per_1k_grad": 1000.0 * ess / grads if grads else float("nan"),
            "ess_per_1k_grad_se": ess_per_1k_grad(dt)[1],  # jackknife over chains
            "ess_per_s": ess / secs if secs > 0 else float("nan"),
            "max_r_hat": float(s["r_hat"][live].max()) if live.any() else float("nan"),
            "divergences": int(divergences(dt).sum()),
        })
    # the run's own trust check (R-hat, ESS, divergences, NaN steps, ...): failed runs rank after trusted ones
    row["trusted"] = bool(int(dt.attrs.get("trusted", 1)))
    if _has_truth(target):  # W2 is added once every run is done, with one estimator for all (`compare`)
        from samplax.diagnostics import second_moment_bias_curve
        from samplax.reporting.panels import reference_size

        try:
            b = second_moment_bias_curve(dt, target, n_ref=reference_size(target))
            row["b2_avg"] = float(b["b2_avg"][-1])
        except (ValueError, TypeError) as err:
            warnings.warn(f"compare: second-moment bias not available: {err}", stacklevel=3)
    if hitting_set is not None and not is_population(dt):  # particles have no time order: no hitting time (NaN)
        from samplax.diagnostics import hit_times_from_draws, summarize_hitting

        h = summarize_hitting(hit_times_from_draws(dt, hitting_set))
        row["hit_fraction"], row[f"hit_{h.mean_kind}"] = h.fraction_hit, h.mean
    elif hitting_set is not None:
        row["hit_fraction"] = float("nan")
    if "log_likelihood" in dt.children:
        try:
            from arviz_stats import loo

            res = loo(dt)
            k_max = float(np.nanmax(np.asarray(res.pareto_k))) if getattr(res, "pareto_k", None) is not None \
                else float("nan")
            n_obs = int(np.size(res.pareto_k)) if getattr(res, "pareto_k", None) is not None else 0
            row["loo_pareto_k_max"] = k_max
            if not k_max <= 0.7 or n_obs < 2:  # PSIS cannot be trusted: not a number to rank by
                why = ("one pointwise value per draw (an observed site with event dims, e.g. .to_event(1), has "
                       "no per-point likelihood)" if n_obs < 2 else f"Pareto k up to {k_max:.2f} > 0.7")
                warnings.warn(f"compare: elpd_loo of {dt.attrs.get('sampler')} is not reliable ({why}); reported "
                              "as NaN", RuntimeWarning, stacklevel=3)
                row["elpd_loo"] = float("nan")
            else:
                row["elpd_loo"] = float(res.elpd)
        except Exception as err:  # noqa: BLE001 - LOO is optional
            warnings.warn(f"compare: LOO not available: {err}", stacklevel=3)
    row.update(kind_cost)
    return row


MIN_WARMUP = 20  # fewer adaptation steps than this leave the step size and metric unadapted
WARMUP_SHARE = 0.5  # a default warmup may take at most this share of the budget; more and it is scaled down
PILOT_PARTICLES = 64  # population pilot: particles per population to measure the cost per particle
MIN_PARTICLES = 16


def compare(target, samplers, budget: float | None = None, *, budget_kind: str = "gradients", num_chains: int = 4,
            num_warmup: int | None = None, seed: int = 0, pilot_samples: int = 100, hitting_set=None,
            settings: dict | None = None, progress: bool | None = False, report: str | None = None) -> Comparison:
    """Run each sampler with the same seed and chains so that its whole run costs about `budget`.

    budget: gradient evaluations summed over all chains, warmup included (budget_kind="gradients"; default
      100,000), or wall-clock seconds of warmup + sampling (budget_kind="seconds"; no default). Each sampler first makes a
      pilot run (`pilot_samples` draws) to measure its warmup cost and cost per draw; the measured run
      then gets num_samples = (budget - warmup cost) / cost per draw (seconds budgets: a second pilot separates the
      fixed per-run cost from the cost per draw; machine load still makes time vary, and a run that used under 75% or
      over 133% of its budget says so in a warning, its share in plan[name]["budget_used"]). The table reports
      the gradients and seconds each run really used (pilot runs not included; their cost is in `plan`); `seconds` and
      `ess_per_s` are warmup + sampling, compilation is in `compile_s`.
    num_warmup: default min(1000, budget per chain / 50), at least 50; when a sampler's default warmup costs more
      than half the budget it is scaled down (at least MIN_WARMUP steps) with a warning, recorded in `plan`. A
      warmup given explicitly is never changed: a budget it does not fit is refused.
    Population samplers (smc, fkc, diffusion samplers) get the same budget as particles: a pilot with
      PILOT_PARTICLES particles per population measures the gradients per particle, and the run gets
      num_particles = budget / (num_chains x gradients per particle) (gradient budgets only).
    hitting_set: the set's indicator, as `samplax.diagnostics.hit_times_from_draws` takes it, adds `hit_fraction` and
      the mean hitting time (`hit_mean`, or `hit_restricted_mean` when chains were censored) in steps counted from
      the first kept draw: the warmup is not included, so a sampler whose warmup already reached the set hits at
      once, and the samplers' warmups may differ in length (scaled to the budget); NaN for population runs, whose
      particles have no time order.
    Ranked by W2 to the truth when known (one estimator for every run; a W2 within its noise floor counts as 0:
    such runs tie and go by ESS per 1000 gradients), else by ESS per 1000 gradients (best first); runs that failed their
    trust check (column `trusted`, findings in the run's attrs["trust_findings"]) rank after every trusted run.
    """
    from samplax import particles
    from samplax.api import sample

    if budget is None and budget_kind == "seconds":  # the gradients default read as seconds would be 28 hours
        raise ValueError("budget_kind='seconds' needs budget=... (wall-clock seconds); the default budget, "
                         f"{DEFAULT_GRADIENT_BUDGET:,}, is for budget_kind='gradients'")
    budget = DEFAULT_GRADIENT_BUDGET if budget is None else budget
    samplers = _check(target, samplers, budget, budget_kind, num_chains, num_warmup, pilot_samples)
    from samplax.api import canonical_name

    settings = {canonical_name(k): v for k, v in (settings or {}).items()}
    unknown = set(settings) - set(samplers)
    if unknown:
        raise ValueError(f"settings for {sorted(unknown)}, which are not among samplers {samplers}")
    for name, given in settings.items():
        if not isinstance(given, dict):
            raise ValueError(f"settings[{name!r}] must be a dict of that sampler's settings, got {given!r}")
        own = sorted(set(given) & set(COMPARE_OWNS))
        if own:  # compare sets these itself (the same for every sampler, or from the budget)
            raise ValueError(f"settings[{name!r}] sets {own}: these are compare()'s own arguments, the same for "
                             "every sampler (num_chains, num_warmup, seed) or set from the budget (num_samples, "
                             "num_particles); pass them to compare() or leave them out")
    populations = [s for s in samplers if particles.is_population(target, s)]
    if populations and budget_kind != "gradients":  # refused before anything runs
        raise ValueError(f"compare: population samplers {populations} are sized by a gradient budget; use "
                         "budget_kind='gradients' or leave them out")
    explicit_warmup = num_warmup is not None
    if num_warmup is None:
        per_chain = budget / num_chains if budget_kind == "gradients" else 4000
        # adaptive samplers spend 10-50 gradients per warmup step: keep warmup well under the budget
        num_warmup = int(min(1000, max(50, per_chain // 50)))
    runs, plan, rows = {}, {}, {}
    for name in samplers:
        if name in populations:
            dt, plan[name] = _population_run(sample, target, name, budget, num_chains, seed, progress,
                                             settings.get(name, {}))
            runs[name] = dt
            rows[name] = _row(dt, target, hitting_set, {"num_particles": plan[name]["num_particles"]})
            continue
        warmup = num_warmup
        while True:
            kw = dict(num_chains=num_chains, num_warmup=warmup, seed=seed, progress=progress,
                      **settings.get(name, {}))
            with warnings.catch_warnings():  # a short pilot only measures cost; its trust check is not the result
                warnings.filterwarnings("ignore", message=".*trust check", category=RuntimeWarning)
                pilot = sample(target, name, num_samples=pilot_samples, **kw)
            warm, per_draw = _cost(pilot, budget_kind)
            if explicit_warmup or warm <= WARMUP_SHARE * budget or warmup <= MIN_WARMUP:
                break
            # warmup cost is about linear in its steps: aim at a third of the budget, then measure again
            smaller = max(MIN_WARMUP, int(warmup * budget / (3 * warm)))
            warnings.warn(f"compare: {name}'s warmup of {warmup} steps costs {warm:.4g} {budget_kind}, more than "
                          f"{WARMUP_SHARE:.0%} of budget={budget:g}; scaled down to {smaller} steps "
                          "(pass num_warmup= to fix it, or raise the budget)", UserWarning, stacklevel=2)
            plan.setdefault(name, {})["warmup_scaled_from"] = plan.get(name, {}).get("warmup_scaled_from", warmup)
            warmup = smaller
        left = budget - warm
        per_run_draw = per_draw * (num_chains if budget_kind == "gradients" else 1)
        if left <= 0 or not math.isfinite(per_draw) or per_draw <= 0 or left < 10 * per_run_draw:
            need = warm + 10 * per_run_draw
            which = "num_warmup" if explicit_warmup else f"the smallest warmup ({warmup} steps)"
            raise ValueError(f"compare: budget={budget:g} {budget_kind} is too small for {name}: {which} alone costs "
                             f"{warm:.4g} {budget_kind} and 10 draws per chain {10 * per_run_draw:.4g} more; the "
                             f"minimum budget is about {need:.4g} (or lower num_warmup)")
        n = max(10, int(left // per_run_draw))
        fixed = 0.0
        if budget_kind == "seconds":  # time per draw = a fixed cost per run + a cost per draw: measure both
            n, fixed, per_draw, n1 = _seconds_fit(sample, target, name, kw, pilot_samples, pilot, left, n)
        dt = sample(target, name, num_samples=n, **kw)
        plan[name] = {**plan.get(name, {}), "num_warmup": warmup, "num_samples": n,
                      f"pilot_warmup_{budget_kind}": warm, f"pilot_{budget_kind}_per_draw": per_draw,
                      **({"pilot_seconds_fixed": fixed, "second_pilot_samples": n1} if budget_kind == "seconds"
                         else {})}
        runs[name] = dt
        rows[name] = _row(dt, target, hitting_set, {"num_samples": n})
        if budget_kind == "seconds":
            used = rows[name]["seconds"]  # warmup + sampling, as the table reports it
            plan[name]["budget_used"] = used / budget
            if not SECONDS_BAND[0] <= used / budget <= SECONDS_BAND[1]:
                warnings.warn(f"compare: {name} used {used:.3g} s of budget={budget:g} s ({used / budget:.0%}): its "
                              "time per draw in the run differed from the pilots' (machine load, or a cost that "
                              "grows with the run); the samplers did not get equal budgets, so compare by ESS per "
                              "second (ess_per_s) or use budget_kind='gradients'", RuntimeWarning, stacklevel=2)
    if _has_truth(target) and runs:
        from samplax.diagnostics.wasserstein import auto_method

        # one estimator for every run: auto_method switches with the number of draws, and W2 by another estimator
        # is not comparable (an SMC population measured 'exact' ranked after chains measured 'sliced_qmc')
        method = auto_method(min(int(np.prod([dt.posterior.sizes[k] for k in ("chain", "draw")]))
                                 for dt in runs.values()), target.dim)
        for name, dt in runs.items():
            rows[name].update(_w2_columns(dt, target, method))
    table = pd.DataFrame(rows).T
    table = rank(table)
    if report is not None:
        from samplax.reporting import report as html_report

        html_report({k: runs[k] for k in table.index}, target, report, hitting_set=hitting_set)
    return Comparison(table=table, runs=runs, plan=plan)


SECONDS_BAND = (0.75, 1.33)  # a seconds budget used outside this share of it is named in a warning


def _seconds_fit(sample, target, name, kw, pilot_samples, pilot, left, n_guess):
    """(num_samples, fixed seconds, seconds per draw, the second pilot's draws) for `left` seconds of sampling, from
    the pilot and a second pilot of a quarter of the first guess (at least 4 x pilot_samples draws): sampling time =
    fixed + per draw x n. The first pilot's time per draw alone counts the fixed per-call costs as per-draw costs:
    MALA on a 5-d Gaussian got 5-17% of a 1-4 s budget from it."""
    n0, t0 = pilot_samples, float(pilot.attrs.get("sampling_time", 0.0))
    n1 = int(max(4 * pilot_samples, n_guess // 4))
    with warnings.catch_warnings():  # a pilot only measures cost; its trust check is not the result
        warnings.filterwarnings("ignore", message=".*trust check", category=RuntimeWarning)
        second = sample(target, name, num_samples=n1, **kw)
    t1 = float(second.attrs.get("sampling_time", 0.0))
    per_draw = (t1 - t0) / (n1 - n0)
    fixed = t0 - per_draw * n0
    if not (per_draw > 0 and fixed >= 0):  # timing noise: the larger pilot's average, no fixed part
        per_draw, fixed = t1 / n1, 0.0
    return max(10, int((left - fixed) // per_draw)), fixed, per_draw, n1


def _population_run(sample, target, name, budget, num_chains, seed, progress, settings):
    """A population sampler under a gradient budget: a pilot measures gradients per particle, the run gets as many
    particles as the budget buys (at least MIN_PARTICLES, else the budget is refused, naming its minimum)."""
    from samplax.diagnostics.mixing import gradient_count

    kw = dict(num_chains=num_chains, seed=seed, progress=progress, **settings)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*trust check", category=RuntimeWarning)
        pilot = sample(target, name, num_particles=PILOT_PARTICLES, **kw)
    per_particle = float(gradient_count(pilot)) / (num_chains * PILOT_PARTICLES)
    if not math.isfinite(per_particle) or per_particle <= 0:
        raise ValueError(f"compare: {name} does not report its gradient count; it cannot be given a gradient budget")
    n = int(budget // (num_chains * per_particle))
    if n < MIN_PARTICLES:
        raise ValueError(f"compare: budget={budget:g} gradients buys {name} only {n} particles per population "
                         f"({per_particle:.4g} gradients per particle); the minimum budget is about "
                         f"{MIN_PARTICLES * num_chains * per_particle:.4g}")
    dt = sample(target, name, num_particles=n, **kw)
    return dt, {"num_particles": n, "pilot_gradients_per_particle": per_particle}


def rank(table: pd.DataFrame) -> pd.DataFrame:
    """`table` sorted best first, with a leading `rank` column: trusted runs before the others; then by W2 to the
    truth when known (one estimator for every run, `w2_method`), where a W2 within its Monte Carlo noise floor
    (`w2_floor` + W2_FLOOR_SD x `w2_floor_sd`, the W2 of exact draws of the same size) counts as 0, so such runs
    tie (each of them measures the noise, not its error); ties and tables without W2 go by ESS per 1000
    gradients."""
    from samplax.diagnostics.report import W2_FLOOR_SD

    ess = -pd.to_numeric(table["ess_per_1k_grad"], errors="coerce")
    keys = pd.DataFrame({"trusted": ~table["trusted"].astype(bool)}, index=table.index)
    if "w2" in table:
        w2 = pd.to_numeric(table["w2"], errors="coerce")
        floor = pd.to_numeric(table["w2_floor"], errors="coerce").fillna(0.0) if "w2_floor" in table else 0.0
        sd = pd.to_numeric(table["w2_floor_sd"], errors="coerce").fillna(0.0) if "w2_floor_sd" in table else 0.0
        # within its noise floor (the report's verdict: mean + W2_FLOOR_SD sd) a W2 measures the noise of its own
        # sample size, not an error: such runs tie at 0 and go by ESS; above it, by W2
        keys["w2"] = w2.where(w2 > floor + W2_FLOOR_SD * sd, 0.0).where(w2.notna())
    keys["ess"] = ess
    order = keys.sort_values(list(keys.columns), na_position="last").index
    out = table.loc[order]
    out.insert(0, "rank", np.arange(1, len(out) + 1))
    return out
