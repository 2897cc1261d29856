"""Where tempered SMC and SCLD lose log Z on Funnel-10d: each stage's cumulative log Ẑ against the exact tempered
normaliser, and the final draws' share of the neck and the mouth against the exact ones.

    .venv/bin/python benchmarks/funnel_stages.py                       # smc_tail, smc_wf, scld_hmc, scld_hmc_two_ended
    .venv/bin/python benchmarks/funnel_stages.py --methods scld_hmc_two_ended --moves 2 8 32
    .venv/bin/python benchmarks/funnel_stages.py --quick               # the harness's --quick settings

The methods are `diffusion_learned.py`'s rows at its settings (budget, training, seed). Every stage of either
sampler targets gamma_beta = r^(1 - beta) pi~^beta with the reference r = N(0, I) (SCLD's boundaries at its learned
beta), whose normaliser log Z_beta and v-marginal are exact up to a 1-d quadrature
(`samplax.models.get("funnel").info["tempered"]`): the x_i integrals are Gaussian given v. The cumulative sum of a
population's log Z increments estimates log Z_beta, so the table shows at which temperatures the error appears;
the shares show which region the draws miss (the neck v < -3 needs small steps; the mouth v > 3 opens only as
beta -> 1: exact P(v > 3) is 0.034 at beta 0.99, 0.074 at 0.997, 0.159 at 1).

--moves M...: SCLD sampled with M HMC moves per boundary instead of the row's 2 (the same trained model), to show
how the error falls with sampling effort (gradients per particle printed). Sampling runs 8 populations x 2,000.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
from scipy.stats import norm

import diffusion_learned as dl  # benchmarks/ is the script's directory
import samplax

REGIONS = ((-6.0, "<"), (-4.5, "<"), (-3.0, "<"), (3.0, ">"), (4.5, ">"), (6.0, ">"))


def _exact_share(q, side):
    return norm.cdf(q / 3.0) if side == "<" else norm.sf(q / 3.0)


def report(target, dt, label, show_stages=True):
    ss = dt.stage_stats
    temp = np.asarray(ss["temperature"].values, float)
    inc = np.asarray(ss["log_z_increment"].values, float)
    active = np.asarray(ss["active"].values, bool) if "active" in ss else np.ones_like(inc, bool)
    err = np.asarray(dt.attrs["log_z_per_population"], float) - target.log_z
    pops = inc.shape[0]
    n_grad = int(dt.attrs["n_grad_sampling"]) / (pops * dt.posterior["x"].shape[1])
    print(f"\n{label}: log Ẑ - log Z {err.mean():+.3f} ± {err.std(ddof=1):.3f} over {pops} populations; "
          f"{n_grad:,.0f} sampling gradients per particle")
    x = dt.posterior["x"].values.reshape(-1, target.dim)[:, 0]
    cells = []
    for q, side in REGIONS:
        got = np.mean(x < q) if side == "<" else np.mean(x > q)
        cells.append(f"P(v {side} {q:g}) {got:.3f} ({_exact_share(q, side):.3f})")
    print("  final draws, exact in brackets: " + ", ".join(cells))
    if not show_stages:
        return
    print("  | stage | beta | exact log Z_beta | mean cumulative error | sd over populations | exact P_beta(v > 3) |")
    print("  |---|---|---|---|---|---|")
    cum = np.zeros(pops)
    for i in range(inc.shape[1]):
        if not active[0, i]:
            continue
        cum = cum + inc[:, i]
        b = float(temp[0, i])
        lz, v, p = target.info["tempered"](b)
        if i % max(1, inc.shape[1] // 16) == 0 or b > 0.97:  # every stage near the end, about 16 before
            print(f"  | {i} | {b:.5f} | {lz:.3f} | {np.mean(cum - lz):+.3f} | {np.std(cum - lz, ddof=1):.3f} | "
                  f"{p[v > 3].sum():.3f} |")


def main(mode="full", methods=("smc_tail", "smc_wf", "scld_hmc", "scld_hmc_two_ended"), moves=(), seed=0):
    s = dl._settings(mode)
    spec = dl.TARGETS["funnel"]
    target = spec.make()
    pops, n = 8, s["N"]
    for m in methods:
        t0 = time.perf_counter()
        fitted = dl.METHODS[m](target, spec, s, seed)
        runs = [(fitted.label, fitted.as_population_sampler())]
        if hasattr(fitted.sampler, "as_population_sampler"):
            for mv in moves:
                kw = {**fitted.sample_kwargs, "mcmc_steps": int(mv)}
                runs.append((f"{fitted.label} sampled with {mv} moves per boundary",
                             fitted.sampler.as_population_sampler(**kw)))
        for label, sampler in runs:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # the tables show what the warnings would
                dt = samplax.sample(target, sampler, num_particles=n, num_chains=pops, seed=seed + 1, progress=False)
            report(target, dt, label)
        print(f"({m}: {time.perf_counter() - t0:.0f} s with training)")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--methods", nargs="+", default=["smc_tail", "smc_wf", "scld_hmc", "scld_hmc_two_ended"],
                    choices=list(dl.METHODS))
    ap.add_argument("--moves", nargs="*", type=int, default=[])
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    main("quick" if a.quick else "full", a.methods, a.moves, a.seed)
