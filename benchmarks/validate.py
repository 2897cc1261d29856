"""Validate every posteriordb port with NUTS, MCLMC and MAMS against the posteriordb reference draws.

Prints one table: posterior, dim, max |z| of the means and of the sds (errors over the combined MCSE of
the run and of the reference), sliced W2 to the reference draws over its noise floor, ESS per 1000
gradients, seconds (compile + warmup + sampling).

    .venv/bin/python benchmarks/validate.py            # 4 chains x (1000 warmup + 1000 draws)
    .venv/bin/python benchmarks/validate.py --quick    # 4 x (300 + 300), a subset of ports
"""

from __future__ import annotations

import argparse
import time

import jax
import numpy as np

jax.config.update("jax_enable_x64", True)

import samplax  # noqa: E402
from samplax.diagnostics import summary, wasserstein  # noqa: E402
from samplax.diagnostics.mixing import gradient_count  # noqa: E402
from samplax.diagnostics.reference import reference_z  # noqa: E402
from samplax.models.posteriordb import PORTS  # noqa: E402

ALL = sorted(PORTS) + ["eight_schools_noncentered"]
QUICK = ["eight_schools_noncentered", "gp_pois_regr", "kidscore_momiq", "logmesquite"]


def z_scores(dt, target) -> tuple[float, float]:
    """max |z| of the means and of the sds over every reference coordinate."""
    z = reference_z(dt, target.reference_draws)
    return float(np.abs(z["z_mean"]).max()), float(np.abs(z["z_sd"]).max())


def one(name, sampler, chains, warmup, draws, seed=0) -> dict:
    target = samplax.models.get(name)
    t0 = time.perf_counter()
    dt = samplax.sample(target, sampler, num_chains=chains, num_warmup=warmup, num_samples=draws, seed=seed,
                        progress=False)
    wall = time.perf_counter() - t0
    zm, zs = z_scores(dt, target)
    w = wasserstein(dt, target, method="sliced_qmc", per_chain=False)
    floor = w.floor.mean if w.floor is not None else np.nan
    ess = float(summary(dt)["ess_bulk"].min())
    return {"posterior": name, "sampler": sampler, "dim": target.dim, "max|z| mean": zm, "max|z| sd": zs,
            "W2/floor": float(w.pooled) / floor, "ESS/1k grad": 1000 * ess / gradient_count(dt), "seconds": wall}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--samplers", default="nuts,mclmc,mams")
    p.add_argument("--posteriors", default=None, help="comma-separated subset")
    args = p.parse_args(argv)
    names = args.posteriors.split(",") if args.posteriors else (QUICK if args.quick else ALL)
    warmup = draws = 300 if args.quick else 1000
    t_all = time.perf_counter()
    rows = []
    for name in names:
        for sampler in args.samplers.split(","):
            try:
                rows.append(one(name, sampler, 4, warmup, draws))
            except Exception as err:  # noqa: BLE001 - a failing port is a row, not the end of the table
                rows.append({"posterior": name, "sampler": sampler, "error": f"{type(err).__name__}: {err}"})
            r = rows[-1]
            print("  ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in r.items()), flush=True)
    import pandas as pd

    with pd.option_context("display.width", 200, "display.float_format", "{:.3g}".format):
        print()
        print(pd.DataFrame(rows).to_string(index=False))
    print(f"\n{len(names)} posteriors x {len(args.samplers.split(','))} samplers, 4 chains x ({warmup} + {draws}); "
          f"|z| over combined MCSE (run and reference); total {time.perf_counter() - t_all:.0f} s")


if __name__ == "__main__":
    main()
