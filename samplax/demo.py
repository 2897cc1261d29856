"""The main job (`make demo`): eight schools (non-centred) with NUTS and MCLMC, side by side; writes the runs,
report.txt (verdict, ranking, W2 with its noise-floor verdict), report.html and trace / rank PNGs."""

from __future__ import annotations

import pathlib

import numpy as np

SAMPLERS = ("nuts", "mclmc")


def _plots(dt, label: str, out: pathlib.Path) -> list[pathlib.Path]:
    import matplotlib

    matplotlib.use("Agg")
    import arviz_plots as azp
    import matplotlib.pyplot as plt

    paths = []
    for kind, fn in (("trace", azp.plot_trace_dist), ("rank", azp.plot_rank)):
        pc = fn(dt, var_names=["mu", "tau", "theta"], backend="matplotlib")
        path = out / f"{label}_{kind}.png"
        pc.savefig(path, dpi=80)
        plt.close("all")
        paths.append(path)
    return paths


def _reference_table(runs: dict, target):
    import pandas as pd

    from samplax.diagnostics.mixing import summary

    ref = target.reference_draws
    rows = {}
    for name in ("mu", "tau"):
        r = np.asarray(ref[name])
        rows[name] = {"reference mean": r.mean(), "reference sd": r.std()}
        for label, dt in runs.items():
            s = summary(dt, var_names=[name]).iloc[0]
            rows[name][f"{label} mean"] = s["mean"]
            rows[name][f"{label} |err|/mcse"] = abs(s["mean"] - r.mean()) / s["mcse_mean"]
    return pd.DataFrame(rows).T


def run_demo(out: pathlib.Path, quick: bool = False, progress: bool | None = None) -> dict:
    import jax

    jax.config.update("jax_enable_x64", True)
    import samplax
    from samplax.diagnostics.report import text_report

    out.mkdir(parents=True, exist_ok=True)
    target = samplax.models.get("eight_schools_noncentered")
    n_warm, n_samp = (300, 300) if quick else (1000, 1000)
    runs = {}
    for s in SAMPLERS:
        runs[s] = samplax.sample(target, s, num_chains=4, num_warmup=n_warm, num_samples=n_samp, seed=0,
                                 progress=progress)
        samplax.save(runs[s], out / f"eight_schools_{s}.nc")
    text = text_report(runs, target)
    with __import__("pandas").option_context("display.width", 200, "display.float_format", "{:.4g}".format):
        n_ref = len(np.asarray(target.reference_draws["mu"]))
        text += f"\n\n== against posteriordb reference draws (Stan NUTS, {n_ref} thinned draws) ==\n" + \
            _reference_table(runs, target).to_string()
    pngs = [p for s, dt in runs.items() for p in _plots(dt, f"eight_schools_{s}", out)]
    (out / "report.txt").write_text(text + "\n")
    html_path = samplax.report(runs, target, out / "report.html")  # verdict, ranking and every panel, offline
    print(text)
    print("\nwrote:", ", ".join(str(p) for p in [*(out / f"eight_schools_{s}.nc" for s in runs), out / "report.txt",
                                                  html_path, *pngs]))
    return runs
