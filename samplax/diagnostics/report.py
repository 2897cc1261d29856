"""Lay out the diagnostics of one or several runs side by side: the numbers come from mixing/wasserstein."""

from __future__ import annotations

import numpy as np
import pandas as pd

from samplax.diagnostics.mixing import check, divergences, ebfmi, gradient_count, summary
from samplax.diagnostics.population import is_population

# per-variable columns a population run has: particles are exchangeable (and sorted by resampling), so R-hat,
# ESS and MCSE along the particle index mean nothing
POPULATION_COLUMNS = ("mean", "sd")


def run_table(runs: dict) -> pd.DataFrame:
    """One row per run: cost, min ESS, ESS per 1000 gradients, divergences, E-BFMI, wall time."""
    rows = {}
    for label, dt in runs.items():
        grads = gradient_count(dt)
        if is_population(dt):
            rows[label] = _population_row(dt, grads)
            continue
        s = summary(dt)
        e = ebfmi(dt)
        rows[label] = {
            "sampler": dt.attrs.get("sampler", label),
            "chains": int(dt.posterior.sizes["chain"]),
            "draws": int(dt.posterior.sizes["draw"]),
            "gradients": grads if grads == grads else "unknown",
            "min_ess_bulk": float(s["ess_bulk"].min()),
            "min_ess_tail": float(s["ess_tail"].min()),
            "ess_per_1k_grad": 1000.0 * float(s["ess_bulk"].min()) / grads if grads and grads == grads else np.nan,
            "max_r_hat": float(s["r_hat"].max()),
            "divergences": int(divergences(dt).sum()),
            "min_ebfmi": float(np.nanmin(e)) if np.isfinite(e).any() else np.nan,
            "compile_s": float(dt.attrs.get("compile_time", np.nan)),
            # what the user waited for: compile (dominant on small models) + warmup + sampling
            "seconds": sum(float(dt.attrs.get(k, 0.0)) for k in ("compile_time", "warmup_time", "sampling_time")),
        }
    return pd.DataFrame(rows).T


def _population_row(dt, grads) -> dict:
    """A population run's row: no chain diagnostics (NaN), its log Z and worst final ESS instead."""
    from samplax.particles.run import final_ess

    fe = final_ess(dt["stage_stats"]) if "ess" in dt["stage_stats"] else np.array([np.nan])
    return {
        "sampler": dt.attrs.get("sampler", "?"), "chains": int(dt.posterior.sizes["chain"]),
        "draws": int(dt.posterior.sizes["draw"]), "gradients": grads if grads == grads else "unknown",
        "min_ess_bulk": np.nan, "min_ess_tail": np.nan, "ess_per_1k_grad": np.nan, "max_r_hat": np.nan,
        "divergences": 0, "min_ebfmi": np.nan, "compile_s": float(dt.attrs.get("compile_time", np.nan)),
        "seconds": sum(float(dt.attrs.get(k, 0.0)) for k in ("compile_time", "warmup_time", "sampling_time")),
        "log_z": float(dt.attrs.get("log_z", np.nan)), "log_z_se": float(dt.attrs.get("log_z_se", np.nan)),
        "min_final_ess": float(np.nanmin(fe)) if np.isfinite(fe).any() else np.nan,
    }


def side_by_side(runs: dict, columns=("mean", "sd", "ess_bulk", "r_hat")) -> pd.DataFrame:
    """Per-variable summaries of several runs, columns grouped by run label (populations: mean and sd only)."""
    parts = {}
    for label, dt in runs.items():
        if is_population(dt):
            parts[label] = summary(dt, kind="stats")[[c for c in columns if c in POPULATION_COLUMNS]]
        else:
            parts[label] = summary(dt)[list(columns)]
    return pd.concat(parts, axis=1)


def report(runs, target=None, *, wasserstein: bool = True) -> str:
    """Plain-text report: run table, per-variable side-by-side summary, warnings, and W2 when truth is known."""
    if not isinstance(runs, dict):
        runs = {runs.attrs.get("sampler", "run"): runs}
    with pd.option_context("display.width", 200, "display.max_columns", 50, "display.float_format", "{:.4g}".format):
        out = ["== runs ==", run_table(runs).to_string(), "", "== posterior ==", side_by_side(runs).to_string()]
        truth = target is not None and (target.sample is not None or target.mean is not None
                                        or target.reference_draws is not None)
        if wasserstein and truth:
            from samplax.diagnostics.wasserstein import wasserstein as w2

            out += ["", "== Wasserstein-2 to the truth (pooled draws vs n exact draws; noise floor = two "
                    "independent exact samples of the sizes n, m compared) =="]
            for label, dt in runs.items():
                try:
                    r = w2(dt, target, per_chain=False)
                    out.append(f"{label}: {r}")
                except ValueError as err:
                    out.append(f"{label}: not available ({err})")
        out += ["", "== warnings =="]
        for label, dt in runs.items():
            warns = check(dt)
            out += [f"{label}: " + ("none" if not warns else "")] + [f"  - {w}" for w in warns]
    return "\n".join(out)
