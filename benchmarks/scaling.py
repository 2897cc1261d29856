"""Scaling of one `sample()` run, side by side in one run: time and peak memory against chains, dimension and
devices.

Each measurement runs in its own Python process (peak RSS is per process, and the device count is fixed when
JAX starts; devices are forced host devices, `XLA_FLAGS=--xla_force_host_platform_device_count=D`).
Sampler: MALA (adaptive step size, diagonal mass matrix) on a standard Gaussian, float32, seed 0.
Columns: compile seconds (all phases), warmup + sampling seconds (compile excluded), peak resident memory of
the process (MB) and its increase over the same process just before `sample()` (the run's own memory: compiled
programs, chain states, draws), and ratios against the first row of each table.

1. chains 1, 4, 16, 64, 256, 1024 at dimension 100 (chain_method="vectorized");
2. dimension 10, 100, 1000, 10000 with 4 chains (vectorized);
3. devices 1, 2, 4 with 64 chains at dimension 1000 (chain_method="parallel": chains sharded over devices;
   1 device = vectorized). On a machine with fewer cores than devices the forced devices share the cores.

Usage: python benchmarks/scaling.py [--quick] [--warmup N] [--samples N]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

CHAINS = [1, 4, 16, 64, 256, 1024]
DIMS = [10, 100, 1000, 10000]
DEVICES = [1, 2, 4]


def _rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kB


def one(spec: dict) -> dict:
    """One measurement, in this process (called through `--one JSON` by `measure`)."""
    t_start = time.perf_counter()
    import jax
    import jax.numpy as jnp

    import samplax

    dim = spec["dim"]
    target = samplax.Target.from_logdensity(lambda x: -0.5 * jnp.sum(x * x), dim, name=f"gauss{dim}")
    before = _rss_mb()
    dt = samplax.sample(target, "mala", num_chains=spec["chains"], num_warmup=spec["warmup"],
                        num_samples=spec["samples"], seed=0, progress=False, chain_method=spec["method"])
    a = dt.attrs
    return {**spec, "devices_seen": jax.device_count(), "compile_s": a["compile_time"],
            "run_s": a["warmup_time"] + a["sampling_time"], "peak_mb": _rss_mb(), "run_mb": _rss_mb() - before,
            "process_s": time.perf_counter() - t_start}


def measure(spec: dict) -> dict:
    env = {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={spec['devices']}"}
    out = subprocess.run([sys.executable, __file__, "--one", json.dumps(spec)], env=env, capture_output=True,
                         text=True, timeout=3600)
    if out.returncode != 0:
        return {**spec, "error": out.stderr.strip().splitlines()[-1] if out.stderr.strip() else "failed"}
    return json.loads(out.stdout.strip().splitlines()[-1])


def table(title: str, key: str, rows: list[dict]) -> None:
    print(f"\n{title}")
    print(f"{key:>8s} {'compile s':>10s} {'run s':>8s} {'run/1st':>8s} {'peak MB':>8s} {'run MB':>8s} "
          f"{'run MB/1st':>10s}  note")
    base = next((r for r in rows if "error" not in r), None)
    for r in rows:
        if "error" in r:
            print(f"{r[key]:>8} failed: {r['error']}")
            continue
        note = f"{r['chains']} chains, dim {r['dim']}, {r['method']}, {r['devices_seen']} device(s)"
        print(f"{r[key]:>8} {r['compile_s']:10.2f} {r['run_s']:8.3f} {r['run_s'] / base['run_s']:8.2f} "
              f"{r['peak_mb']:8.0f} {r['run_mb']:8.0f} {r['run_mb'] / max(base['run_mb'], 1.0):10.2f}  {note}",
              flush=True)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="a subset: chains 1/16/256, dims 10/1000, devices 1/4")
    p.add_argument("--warmup", type=int, default=None, help="warmup steps (default 500; --quick 100)")
    p.add_argument("--samples", type=int, default=None, help="draws (default 500; --quick 100)")
    p.add_argument("--one", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.one:
        print(json.dumps(one(json.loads(a.one))))
        return 0
    warmup = a.warmup or (100 if a.quick else 500)
    samples = a.samples or (100 if a.quick else 500)
    chains, dims, devices = (CHAINS[::2], DIMS[::2], DEVICES[::2]) if a.quick else (CHAINS, DIMS, DEVICES)
    base = dict(warmup=warmup, samples=samples, devices=1, method="vectorized")
    print(f"MALA on a standard Gaussian, {warmup} warmup + {samples} draws, float32; one process per row")
    table("chains (dimension 100, vectorized)", "chains",
          [measure({**base, "chains": c, "dim": 100}) for c in chains])
    table("dimension (4 chains, vectorized)", "dim", [measure({**base, "chains": 4, "dim": d}) for d in dims])
    table("devices (64 chains, dimension 1000, parallel)", "devices",
          [measure({**base, "chains": 64, "dim": 1000, "devices": n,
                    "method": "parallel" if n > 1 else "vectorized"}) for n in devices])
    return 0


if __name__ == "__main__":
    sys.exit(main())
