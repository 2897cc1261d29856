"""Report panels: each is one small function `(runs, ctx) -> Section | None`; PANELS is their order.

A new family adds its panel here (one function) and appends it to PANELS; a panel returns None
when it has nothing to show for these runs (e.g. no truth, no hitting set, no particle stages).
"""

from __future__ import annotations

import dataclasses
import html
import traceback
import warnings
from typing import Any, Callable

import numpy as np

# Flags for the summary table (Vehtari et al. 2021, "Rank-normalization, folding, and localization").
RHAT_BAD = 1.01
ESS_PER_CHAIN_BAD = 100
MCSE_OVER_SD_BAD = 0.1
MAX_PLOT_VARS = 6
MAX_PLOT_DRAWS = 1000  # plots show every k-th draw beyond this: rank envelopes cost O(draws^2)


@dataclasses.dataclass
class Section:
    title: str
    body: str


@dataclasses.dataclass
class Context:
    target: Any = None
    figures: Any = None
    hitting_set: Callable | None = None
    hitting_label: str = "set"
    hitting_oracle: float | None = None
    errors: list = dataclasses.field(default_factory=list)
    failed: dict = dataclasses.field(default_factory=dict)  # label -> message of runs that raised


def _table(rows: dict[str, dict], flags: dict | None = None) -> str:
    cols = list(dict.fromkeys(c for r in rows.values() for c in r))
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in cols)
    body = []
    for label, r in rows.items():
        cells = []
        for c in cols:
            v = r.get(c, "")
            number = isinstance(v, (int, float, np.integer, np.floating))
            text = f"{v:.4g}" if isinstance(v, (float, np.floating)) else html.escape(str(v))
            bad = flags is not None and flags.get((label, c), False)
            cells.append(f'<td class="bad">{text}</td>' if bad else f"<td>{text}</td>" if number
                         else f'<td class="t">{text}</td>')  # words and settings read left to right
        body.append(f"<tr><th>{html.escape(str(label))}</th>{''.join(cells)}</tr>")
    return f"<div class='scroll'><table><tr><th></th>{head}</tr>{''.join(body)}</table></div>"


def reference_size(target, default: int = 100_000) -> int:
    """How many exact draws a truth check may ask for: all reference draws when that is the truth."""
    if target.sample is None and target.reference_draws:
        return int(len(next(iter(target.reference_draws.values()))))
    return default


def _is_population(dt) -> bool:
    from samplax.diagnostics.population import is_population

    return is_population(dt)


def _var_names(dt) -> list[str]:
    return list(dt.posterior.data_vars)[:MAX_PLOT_VARS]


def _for_plots(dt):
    """The run thinned to at most MAX_PLOT_DRAWS draws per chain (plots only; every number uses all draws)."""
    k = -(-dt.posterior.sizes["draw"] // MAX_PLOT_DRAWS)
    return dt if k == 1 else dt.isel(draw=slice(None, None, k), missing_dims="ignore")


def _thin_note(dt) -> str:
    k = -(-dt.posterior.sizes["draw"] // MAX_PLOT_DRAWS)
    return "" if k == 1 else f"<p class='small'>plots show every {k}th draw</p>"


# ---------------------------------------------------------------------------------------------- panels
def verdict_panel(runs, ctx) -> Section:
    """The answer first: one line per run (trusted, or not and why), then the ranking with an SE per figure and ties
    called ties, and log Z +- SE of population runs (the same lines as the text report)."""
    from samplax.diagnostics.report import TIE_SE, log_z_lines, ranking_lines, verdict

    items = []
    for label, dt in runs.items():
        ok, bad = verdict(dt)
        why = "" if ok else ": " + "; ".join(bad)
        items.append(f"<li class='{'ok' if ok else 'bad'}'><b>{html.escape(label)}</b>: "
                     f"{'trusted' if ok else 'NOT trusted'}{html.escape(why)}</li>")
    for label, message in ctx.failed.items():  # runs that raised: no draws, and no other panel shows them
        items.append(f"<li class='bad'><b>{html.escape(label)}</b>: FAILED, no draws: {html.escape(message)}</li>")
    body = f"<ul class='verdict'>{''.join(items)}</ul>"
    rank = ranking_lines(runs)
    if len(runs) > 1 or any("+-" in r for r in rank):
        body += (f"<p><b>Ranking</b> by min bulk ESS per 1000 gradients, &plusmn; a jackknife SE over chains; within "
                 f"{TIE_SE:g} SE is a tie (shared rank, '=')</p><ol class='ranking'>"
                 + "".join(f"<li>{html.escape(r.strip().replace('+-', '±'))}</li>" for r in rank) + "</ol>")
    lz = log_z_lines(runs)
    if lz:
        body += "<p><b>log Z</b></p><ul>" + "".join(f"<li>{html.escape(x.replace('+-', '±'))}</li>" for x in lz) + "</ul>"
    return Section("Verdict", body)


def runs_panel(runs, ctx) -> Section:
    """Settings, versions, seed, timings (compile / warmup / sampling) and gradient counts."""
    from samplax.diagnostics.mixing import gradient_count
    from samplax.diagnostics.report import waited_seconds

    rows = {}
    for label, dt in runs.items():
        a = dt.attrs
        known = "n_grad_sampling" in a or "n_grad" in dt.get("sample_stats", {})
        rows[label] = {
            "sampler": a.get("sampler", "?"), "seed": a.get("seed", "?"), "chains": dt.posterior.sizes["chain"],
            "draws": dt.posterior.sizes["draw"],
            "compile s": float(a.get("compile_time", np.nan)), "warmup s": float(a.get("warmup_time", np.nan)),
            "sampling s": float(a.get("sampling_time", np.nan)),
            **({"check s": float(a["check_time"])} if "check_time" in a else {}),
            "total s": waited_seconds(a),
            "gradients": gradient_count(dt) if known else "unknown",
            "settings": a.get("settings", ""),
        }
        if "log_z" in a:
            rows[label]["log Z"] = float(a["log_z"])
            rows[label]["log Z se"] = float(a.get("log_z_se", np.nan))
    versions = {k: dt.attrs.get(k) for dt in runs.values() for k in ("python", "samplax", "jax", "blackjax",
                                                                        "numpyro", "arviz-base", "arviz-stats")}
    vtext = ", ".join(f"{k} {v}" for k, v in versions.items() if v is not None)
    return Section("Runs", _table(rows) + f"<p class='small'>versions: {html.escape(vtext)}</p>")


ADVICE = {
    "r_hat": "chains disagree: run longer, check for multimodality, or reparameterise (e.g. non-centred)",
    "ess": "few effective draws: run longer, or use a sampler with better ESS per gradient (see compare())",
    "mcse": "Monte Carlo error is large relative to the posterior sd: run longer",
    "divergences": "divergent transitions: raise target_accept (e.g. 0.95) or reparameterise the model",
    "ebfmi": "low E-BFMI: the momentum resampling explores energy poorly; reparameterise (heavy tails / funnels)",
}


def summary_panel(runs, ctx) -> Section:
    """Per-run summary table with problem cells flagged, and plain-language warnings that say what to do."""
    from samplax.diagnostics.mixing import check, is_constant, summary

    parts = []
    for label, dt in runs.items():
        if _is_population(dt):
            parts.append(_population_summary(label, dt, check))
            continue
        s = summary(dt)
        chains = dt.posterior.sizes["chain"]
        rows, flags = {}, {}
        for name, r in s.iterrows():
            rows[name] = {c: float(r[c]) for c in ("mean", "sd", "mcse_mean", "ess_bulk", "ess_tail", "r_hat")
                          if c in r}
            sd, mean = float(r.get("sd", np.nan)), float(r.get("mean", np.nan))
            if not (np.isfinite(sd) and np.isfinite(mean)):  # NaN / inf draws: flagged, never called constant
                rows[name]["note"] = "non-finite draws"
                flags[(name, "mean")] = True
                continue
            if is_constant(sd, mean):
                rows[name]["note"] = "constant"
                continue
            flags[(name, "r_hat")] = bool(r["r_hat"] > RHAT_BAD)
            flags[(name, "ess_bulk")] = bool(r["ess_bulk"] < ESS_PER_CHAIN_BAD * chains)
            flags[(name, "ess_tail")] = bool(r["ess_tail"] < ESS_PER_CHAIN_BAD * chains)
            flags[(name, "mcse_mean")] = bool(r["mcse_mean"] / sd > MCSE_OVER_SD_BAD)
        warns = check(dt)
        advice = sorted({ADVICE[k] for (n, c), bad in flags.items() if bad
                         for k in ADVICE if c.startswith(k)})
        items = "".join(f"<li>{html.escape(w)}</li>" for w in warns + [f"what to do: {a}" for a in advice])
        parts.append(f"<h3>{html.escape(label)}</h3>" + _table(rows, flags)
                     + (f"<ul class='warn'>{items}</ul>" if items else "<p class='ok'>no problems detected</p>"))
    return Section("Summary", "".join(parts))


def _population_summary(label, dt, check) -> str:
    """Mean and sd per population (no R-hat / ESS / MCSE along particles) and the population findings."""
    from samplax.diagnostics.population import flat_entries
    from samplax.diagnostics.trust import problems

    rows = {}
    for key, v in flat_entries(dt):
        v = v.astype(float)
        rows[key] = {"mean": float(np.mean(v)), "sd": float(np.std(v, ddof=1)),  # as the text report's
                     **{f"mean (population {c})": float(np.mean(v[c])) for c in range(v.shape[0])}}
    findings = check(dt)
    items = "".join(f"<li>{html.escape(w)}</li>" for w in findings)
    ok = not problems(findings)
    return (f"<h3>{html.escape(label)}</h3>" + _table(rows)
            + (f"<ul class='{'ok' if ok else 'warn'}'>{items}</ul>" if items else "")
            + ("<p class='ok'>no problems detected</p>" if ok else ""))


def trace_rank_panel(runs, ctx) -> Section | None:
    """Trace and rank plots (arviz-plots) per chain run (particles have no draw order to plot)."""
    import arviz_plots as azp

    parts = []
    for label, dt in runs.items():
        if _is_population(dt):
            continue
        names = _var_names(dt)
        parts.append(f"<h3>{html.escape(label)}</h3>" + _thin_note(dt))
        dt = _for_plots(dt)
        for kind, fn in (("trace", azp.plot_trace_dist), ("rank", azp.plot_rank)):
            pc = fn(dt, var_names=names, backend="matplotlib")
            parts.append(ctx.figures.from_plot_collection(pc, f"{label}_{kind}", f"{kind} plot of {label}"))
    return Section("Trace and rank plots", "".join(parts)) if parts else None


def energy_panel(runs, ctx) -> Section | None:
    """Energy distributions and E-BFMI for runs that record an energy."""
    import arviz_plots as azp

    from samplax.diagnostics.mixing import ebfmi

    parts = []
    for label, dt in runs.items():
        if "sample_stats" not in dt.children or "energy" not in dt.sample_stats:
            continue
        e = np.asarray(ebfmi(dt))
        pc = azp.plot_energy(_for_plots(dt), backend="matplotlib")
        parts.append(f"<h3>{html.escape(label)}</h3><p>E-BFMI per chain: {np.round(e, 3).tolist()}</p>"
                     + ctx.figures.from_plot_collection(pc, f"{label}_energy", f"energy plot of {label}"))
    return Section("Energy and E-BFMI", "".join(parts)) if parts else None


def divergence_panel(runs, ctx) -> Section | None:
    """Where the divergences are: the first two coordinates with divergent draws highlighted."""
    import matplotlib.pyplot as plt

    parts = []
    for label, dt in runs.items():
        if "sample_stats" not in dt.children or "diverging" not in dt.sample_stats:
            continue
        div = np.asarray(dt.sample_stats["diverging"]).astype(bool).ravel()
        cols = []
        for name in dt.posterior.data_vars:
            v = np.asarray(dt.posterior[name])
            flat = v.reshape(v.shape[0] * v.shape[1], -1)
            cols += [(f"{name}[{i}]" if flat.shape[1] > 1 else name, flat[:, i]) for i in range(flat.shape[1])]
            if len(cols) >= 2:
                break
        if len(cols) < 2:
            continue
        (nx, x), (ny, y) = cols[:2]
        fig, ax = plt.subplots(figsize=(4.5, 4))
        ax.scatter(x[~div], y[~div], s=3, alpha=0.3, label="draws")
        ax.scatter(x[div], y[div], s=10, color="red", label=f"divergent ({int(div.sum())})")
        ax.set_xlabel(nx)
        ax.set_ylabel(ny)
        ax.legend(loc="best", fontsize=8)
        ax.set_title(label)
        parts.append(f"<h3>{html.escape(label)}</h3>"
                     + ctx.figures.img(fig, f"{label}_divergences", f"divergences of {label}"))
    return Section("Divergences", "".join(parts)) if parts else None


def autocorr_panel(runs, ctx) -> Section | None:
    import arviz_plots as azp

    parts = []
    for label, dt in runs.items():
        if dt.posterior.sizes["draw"] < 4 or _is_population(dt):
            continue
        pc = azp.plot_autocorr(_for_plots(dt), var_names=_var_names(dt), backend="matplotlib")
        parts.append(f"<h3>{html.escape(label)}</h3>"
                     + ctx.figures.from_plot_collection(pc, f"{label}_autocorr", f"autocorrelation of {label}"))
    return Section("Autocorrelation", "".join(parts)) if parts else None


def truth_panel(runs, ctx) -> Section | None:
    """W2 and squared bias of second moments against gradient evaluations, all runs on one axis."""
    import matplotlib.pyplot as plt

    from samplax.diagnostics import second_moment_bias_curve, wasserstein, wasserstein_curve

    t = ctx.target
    if t is None or (t.sample is None and t.mean is None and not t.reference_draws):
        return None
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.6))
    rows = {}
    for label, dt in runs.items():
        try:
            r = wasserstein(dt, t, per_chain=False)
            rows[label] = {"W2": float(r.pooled), "noise floor": float(r.floor.mean) if r.floor else np.nan,
                           "method": r.method}
        except (ValueError, TypeError) as err:
            rows[label] = {"W2": f"not available ({err})"}
        if _is_population(dt):
            continue  # particles have no draw-index axis to grow: the table says it
        try:
            c = wasserstein_curve(dt, t, include_warmup=True)
            line, = a1.loglog(c["n_grad"], c["value"], marker="o", label=label)
            a1.loglog(c["n_grad"], c["floor_mean"], ls=":", color=line.get_color())
        except (ValueError, TypeError, AttributeError) as err:
            ctx.errors.append(f"W2 curve of {label}: {err}")
        try:
            b = second_moment_bias_curve(dt, t, include_warmup=True, n_ref=reference_size(t))
            a2.loglog(b["n_grad"], b["b2_avg"], label=label)
        except (ValueError, TypeError, AttributeError) as err:
            ctx.errors.append(f"second-moment bias curve of {label}: {err}")
    a1.set(xlabel="gradient evaluations per chain", ylabel="W2 to the truth (dotted: noise floor)",
           title="Wasserstein-2")
    a2.set(xlabel="gradient evaluations per chain", ylabel="b2_avg (squared bias of E[x^2] / Var[x^2])",
           title="second-moment bias")
    for a in (a1, a2):
        if a.lines:
            a.legend(fontsize=8)
    return Section("Against the truth", _table(rows) + ctx.figures.img(fig, "truth_curves", "W2 and bias curves"))


def hitting_panel(runs, ctx) -> Section | None:
    """Kaplan-Meier survival of the time to reach the user's set, with bands and the oracle when given."""
    if ctx.hitting_set is None:
        return None
    import matplotlib.pyplot as plt

    from samplax.diagnostics import hit_times_from_draws, summarize_hitting

    chains = {label: dt for label, dt in runs.items() if not _is_population(dt)}
    note = "".join(f"<p class='small'>{html.escape(label)}: no hitting time (a population run's particles have no "
                   "time order)</p>" for label in runs if label not in chains)
    if not chains:
        return Section("Hitting time", note)
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    rows = {}
    for label, dt in chains.items():
        res = hit_times_from_draws(dt, ctx.hitting_set)
        s = summarize_hitting(res, unit="steps")
        line, = ax.step(s.km_times, s.km_survival, where="post", label=label)
        ax.fill_between(s.km_times, s.km_low, s.km_high, step="post", alpha=0.2, color=line.get_color())
        rows[label] = {"runs": s.num_runs, "fraction hit": s.fraction_hit, s.mean_kind: s.mean,
                       "se": s.mean_se, "median": s.median}
    if ctx.hitting_oracle is not None:
        tt = np.linspace(0, ax.get_xlim()[1], 200)
        ax.plot(tt, np.exp(-tt / ctx.hitting_oracle), "k--", label=f"oracle (mean {ctx.hitting_oracle:.3g})")
    ax.set(xlabel="sampler steps", ylabel=f"P(not yet in {ctx.hitting_label})", title="hitting time")
    ax.legend(fontsize=8)
    return Section("Hitting time", _table(rows) + note
                   + ctx.figures.img(fig, "hitting_survival", "hitting-time survival"))


def particles_panel(runs, ctx) -> Section | None:
    """Population samplers: ESS and temperature / time per stage, log Z increments per stage."""
    import matplotlib.pyplot as plt

    pops = {k: dt for k, dt in runs.items() if _is_population(dt)}
    if not pops:
        return None
    parts = []
    for label, dt in pops.items():
        st = dt["stage_stats"]
        keys = [k for k in ("temperature", "time", "ess", "log_z_increment", "acceptance_rate") if k in st]
        fig, axes = plt.subplots(1, len(keys), figsize=(3.2 * len(keys), 3), squeeze=False)
        active = np.asarray(st["active"]).astype(bool) if "active" in st else None
        n = int(dt["posterior"].sizes["draw"])  # particles per population
        for ax, k in zip(axes[0], keys):
            v = np.asarray(st[k], dtype=float) / (n if k == "ess" else 1)
            for c in range(v.shape[0]):
                y = v[c] if active is None else np.where(active[c], v[c], np.nan)
                ax.plot(np.arange(v.shape[1]), y, lw=1)
            ax.set(xlabel="stage", title="ESS / N (weight degeneracy)" if k == "ess" else k)
        parts.append(f"<h3>{html.escape(label)}</h3>" + _log_z_table(dt) + _degeneracy_line(st, active, n)
                     + ctx.figures.img(fig, f"{label}_stages", f"per-stage statistics of {label}"))
    return Section("Particle methods: log Z and per-stage statistics", "".join(parts))


def _degeneracy_line(st, active, n: int) -> str:
    """The worst weight degeneracy: the smallest ESS / N over each population's stages, and where."""
    if "ess" not in st:
        return ""
    e = np.asarray(st["ess"], dtype=float) / n
    if active is not None:
        e = np.where(active, e, np.nan)
    if not np.isfinite(e).any():
        return ""
    c, s = np.unravel_index(np.nanargmin(e), e.shape)
    return (f"<p>weight degeneracy: smallest ESS / N {e[c, s]:.3g} (population {c}, stage {s}); "
            f"median over stages {np.nanmedian(e):.3g}</p>")


def _log_z_table(dt) -> str:
    """log Z per population (± its within-population SE when the sampler estimates one) and pooled."""
    a = dt.attrs
    if "log_z" not in a or not np.isfinite(float(a["log_z"])):
        return ""
    rows = {}
    per = np.atleast_1d(np.asarray(a.get("log_z_per_population", []), dtype=float))
    var = np.atleast_1d(np.asarray(a.get("log_z_var_per_population", np.full(per.shape, np.nan)), dtype=float))
    for c, lz in enumerate(per):
        rows[f"population {c}"] = {"log Z": float(lz), "SE": float(np.sqrt(var[c])) if c < var.size else np.nan}
    rows["pooled"] = {"log Z": float(a["log_z"]), "SE": float(a.get("log_z_se", np.nan))}
    return _table(rows)


PPC_NUM_SAMPLES = 50  # replicated data sets drawn over the observed data in the PPC panel


def ppc_sites(dt) -> list[str]:
    """Observed sites a posterior predictive check can show: in both `posterior_predictive` and `observed_data`."""
    if "posterior_predictive" not in dt.children or "observed_data" not in dt.children:
        return []
    obs = dt["observed_data"]
    return [n for n in dt["posterior_predictive"].data_vars if n in obs.data_vars]


def _ppc_hist(dt, site: str, label: str):
    """Histogram overlay: every replicated value (pooled over draws) against the observed values; one observed
    value (a scalar site has no spread to draw a density of) is a vertical line with its posterior predictive
    p-value P(y_rep >= y). Integer data get one bin per integer."""
    import matplotlib.pyplot as plt

    rep = np.asarray(dt["posterior_predictive"][site], dtype=float)
    obs = np.asarray(dt["observed_data"][site], dtype=float).ravel()
    rep = rep.reshape(rep.shape[0] * rep.shape[1], -1)  # (chain * draw, observed values)
    both = np.concatenate([rep.ravel(), obs])
    both = both[np.isfinite(both)]
    lo, hi = (float(both.min()), float(both.max())) if both.size else (0.0, 1.0)
    integer = both.size > 0 and np.all(both == np.round(both)) and hi - lo <= 200
    bins = np.arange(lo - 0.5, hi + 1.5) if integer else np.linspace(lo, hi if hi > lo else lo + 1.0, 41)
    fig, ax = plt.subplots(figsize=(5.5, 3))
    ax.hist(rep.ravel(), bins=bins, density=True, alpha=0.5, color="C0", label="replicated")
    if obs.size == 1:
        ax.axvline(obs[0], color="k", lw=2, label="observed")
        title = f"{label}: {site}  (P(y_rep >= y) = {float(np.mean(rep >= obs)):.2f})"
    else:
        ax.hist(obs, bins=bins, density=True, histtype="step", color="k", lw=2, label="observed")
        title = f"{label}: {site}"
    ax.set(title=title, xlabel=site, yticks=[])
    ax.legend(fontsize=8)
    return fig


def ppc_panel(runs, ctx) -> Section | None:
    """Posterior predictive checks: per observed site, replicated data sets drawn over the observed data, for runs
    with `posterior_predictive` and `observed_data` groups (`samplax.predictive(target, dt)`)."""
    import arviz_plots as azp

    parts = []
    for label, dt in runs.items():
        sites = ppc_sites(dt)
        if not sites:
            continue
        n_rep = int(np.prod([dt["posterior_predictive"].sizes[d] for d in ("chain", "draw")]))
        block = [f"<h3>{html.escape(label)}</h3><p class='small'>blue: {min(PPC_NUM_SAMPLES, n_rep)} of {n_rep} "
                 "replicated data sets drawn from the posterior predictive; black: the observed data</p>"]
        for site in sites:
            alt = f"posterior predictive check of {label}: {site}"
            name = f"{label}_ppc_{site}"
            if int(np.prod(dt["observed_data"][site].shape)) < 2:
                block.append(ctx.figures.img(_ppc_hist(dt, site, label), name, alt))
                continue
            import matplotlib.pyplot as plt

            before = set(plt.get_fignums())
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", UserWarning)  # "look discrete": the fallback below bins them
                    pc = azp.plot_ppc_dist(dt, var_names=[site], num_samples=min(PPC_NUM_SAMPLES, n_rep),
                                           backend="matplotlib")
            except Exception as err:  # noqa: BLE001 - e.g. arviz-plots' ECDF of discrete data; said in the page
                for num in set(plt.get_fignums()) - before:  # the half-drawn figure of the failed call
                    plt.close(num)
                block.append(f"<p class='small'>{html.escape(site)}: arviz_plots.plot_ppc_dist failed "
                             f"({html.escape(type(err).__name__)}: {html.escape(str(err))}); histograms of all "
                             "replicated values and of the observed values instead</p>"
                             + ctx.figures.img(_ppc_hist(dt, site, label), name, alt))
                continue
            fig = pc.viz["figure"]
            fig = fig.item() if hasattr(fig, "item") else fig
            for ax in fig.axes:  # each plot titled by its run and site
                ax.set_title(f"{label}: {ax.get_title() or site}")
            block.append(ctx.figures.img(fig, name, alt))
        parts.append("".join(block))
    return Section("Posterior predictive checks", "".join(parts)) if parts else None


PANELS: list[Callable] = [verdict_panel, runs_panel, summary_panel, truth_panel, hitting_panel, particles_panel,
                          ppc_panel, trace_rank_panel, energy_panel, divergence_panel, autocorr_panel]


def render(panel, runs, ctx) -> Section | None:
    """Run one panel; a panel that fails shows its error in the page instead of losing the whole report."""
    try:
        return panel(runs, ctx)
    except Exception as err:  # noqa: BLE001 - shown in the report and recorded
        ctx.errors.append(f"{panel.__name__}: {type(err).__name__}: {err}")
        tb = html.escape("".join(traceback.format_exception_only(type(err), err)))
        return Section(panel.__name__.replace("_panel", ""), f"<pre class='bad'>this panel failed: {tb}</pre>")
