"""Chain methods on one machine, side by side in one run: vmap ("vectorized") vs `lax.map` in one program
("mapped") vs one program call per chain ("sequential") for NUTS.

vmapped NUTS runs every chain's tree-building loop until the longest tree of the batch is done; `lax.map` runs
each chain to its own tree length but gives up the batch's SIMD width. Per method: compile seconds (first
call), warmup + sampling seconds (second call, compiled code reused), min bulk ESS over all variables and
min ESS per second of warmup + sampling. The draws are the same in every method (README "Reproducibility"),
so ESS is identical across methods up to the rounding class stated there.

Usage: python benchmarks/chain_methods.py [--quick] [--chains 4] [--float64]
"""

from __future__ import annotations

import argparse
import sys

import jax


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="200 warmup + 200 draws instead of 1000 + 1000")
    p.add_argument("--chains", type=int, default=4)
    p.add_argument("--float64", action="store_true")
    p.add_argument("--methods", default="vectorized,mapped,sequential")
    a = p.parse_args(argv)
    if a.float64:
        jax.config.update("jax_enable_x64", True)
    import samplax

    n = 200 if a.quick else 1000
    targets = [("eight schools (non-centred)", samplax.models.get("eight_schools_noncentered")),
               ("100-d Gaussian, condition 100", samplax.models.get("ill_conditioned_gaussian", dim=100,
                                                                     condition_number=100.0))]
    methods = a.methods.split(",")
    print(f"backend {jax.default_backend()}, {jax.device_count()} device(s), NUTS, {a.chains} chains, "
          f"{n} warmup + {n} draws, {'float64' if a.float64 else 'float32'}")
    for label, target in targets:
        print(f"\n{label}")
        print(f"{'method':12s} {'compile s':>10s} {'warm+samp s':>12s} {'grads/chain':>12s} {'min ESS':>8s} "
              f"{'ESS/s':>8s} {'time / vectorized':>18s}")
        base = None
        for m in methods:
            kw = dict(num_chains=a.chains, num_warmup=n, num_samples=n, seed=0, progress=False, chain_method=m)
            first = samplax.sample(target, "nuts", **kw)
            dt = samplax.sample(target, "nuts", **kw)  # compiled programs reused: pure run time
            run = dt.attrs["warmup_time"] + dt.attrs["sampling_time"]
            ess = float(samplax.diagnostics.summary(dt)["ess_bulk"].min())
            grads = (dt.attrs["n_grad_warmup"] + dt.attrs["n_grad_sampling"]) / a.chains
            base = base or run
            print(f"{m:12s} {first.attrs['compile_time']:10.2f} {run:12.2f} {grads:12.0f} {ess:8.0f} "
                  f"{ess / run:8.0f} {run / base:18.2f}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
