"""Two-level MCMC with a cheap surrogate against single-level samplers on the expensive model.

The damped-oscillator inverse problem (`samplax.models.oscillator`): the expensive model solves the ODE with
diffrax Tsit5 on 1000 constant steps, the surrogate with Heun on 40. Each sampler runs 4 chains x (1000 warmup +
N draws) on the expensive model, side by side in one process; printed per sampler:

- expensive evaluations per effective draw (min bulk ESS over the three parameters), warmup + sampling. An
  expensive *gradient* (MALA, NUTS) is counted as one evaluation here, which flatters them: reverse-mode through
  the ODE solve costs several forward solves (the `grad/value` column measures the ratio on this machine);
- seconds per effective draw (warmup + sampling, compilation apart) and the compile seconds;
- the ratio of each figure to two_level's.

    .venv/bin/python benchmarks/two_level.py            # 4 x 20,000 draws (a few minutes on 2 cores)
    .venv/bin/python benchmarks/two_level.py --quick    # 4 x 4,000 draws
"""

from __future__ import annotations

import argparse
import time
import warnings

import jax
import numpy as np

import samplax
from samplax.diagnostics import summary

SITES = ("omega", "zeta", "y0")


def grad_over_value_seconds(target, reps: int = 200) -> float:
    x = jax.numpy.zeros(target.dim)
    value, grad = jax.jit(target.logdensity), jax.jit(jax.grad(target.logdensity))
    value(x).block_until_ready(), grad(x).block_until_ready()
    out = []
    for fn in (value, grad):
        t0 = time.perf_counter()
        for _ in range(reps):
            jax.block_until_ready(fn(x))
        out.append(time.perf_counter() - t0)
    return out[1] / out[0]


def expensive_evaluations(name: str, dt) -> float:
    ss, a = dt["sample_stats"], dt.attrs
    if name == "two_level":  # one value per warmup step and per draw, plus the initial state of each chain
        return float(ss["n_expensive"].sum()) + a["num_chains"] * (a["num_warmup"] + 1)
    return float(a["n_grad_warmup"] + a["n_grad_sampling"])  # value-and-gradient evaluations


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    n = 4_000 if args.quick else 20_000
    fine = samplax.models.get("damped_oscillator", solver="fine")
    coarse = samplax.models.get("damped_oscillator", solver="coarse")
    runs = {
        "two_level": ("two_level", dict(surrogate=coarse)),
        "two_level rwm x4": ("two_level", dict(surrogate=coarse, move="rwm", subchain_length=4, mass_matrix="dense")),
        "mala": ("mala", dict(mass_matrix="diagonal")),
        "nuts": ("nuts", {}),
    }
    rows = {}
    for label, (name, kw) in runs.items():
        t0 = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            dt = samplax.sample(fine, name, num_chains=4, num_warmup=1000, num_samples=n, seed=args.seed,
                                progress=False, **kw)
        wall = time.perf_counter() - t0
        ess = float(min(summary(dt).loc[s, "ess_bulk"] for s in SITES))
        a = dt.attrs
        run_s = a["warmup_time"] + a["sampling_time"]
        rows[label] = dict(evals=expensive_evaluations(name, dt), ess=ess, run_s=run_s, compile_s=a["compile_time"],
                           wall=wall, trusted=bool(a.get("trusted", 1)),
                           warned=any(issubclass(w.category, RuntimeWarning) for w in caught))
    ratio = grad_over_value_seconds(fine)
    print(f"damped oscillator, expensive = diffrax Tsit5 x 1000 steps, surrogate = Heun x 40; 4 chains x (1000 + {n})")
    print(f"one expensive gradient costs {ratio:.1f}x one expensive value on this machine (not counted below)\n")
    base = rows["two_level"]
    head = (f"{'sampler':<18} {'min ESS':>8} {'exp. evals':>11} {'evals/ESS':>10} {'x two_level':>11} "
            f"{'s/1k ESS':>9} {'x two_level':>11} {'compile s':>9} trusted")
    print(head)
    print("-" * len(head))
    for label, r in rows.items():
        per = r["evals"] / r["ess"]
        s_per = 1000 * r["run_s"] / r["ess"]
        print(f"{label:<18} {r['ess']:>8.0f} {r['evals']:>11.0f} {per:>10.1f} "
              f"{per / (base['evals'] / base['ess']):>11.2f} {s_per:>9.2f} "
              f"{s_per / (1000 * base['run_s'] / base['ess']):>11.2f} {r['compile_s']:>9.1f} "
              f"{'yes' if r['trusted'] else 'NO'}")


if __name__ == "__main__":
    main()
