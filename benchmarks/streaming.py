"""Peak host memory of a long run, in memory vs streamed to a zarr store (`sample(..., out=...)`).

A 100-dimensional Gaussian, MALA (1 chain, no warmup, fixed step size), float64: 1e6 draws are 800 MB of
positions. Each (mode, draws) run is a fresh subprocess, so its peak resident memory (VmHWM from
/proc/self/status at the end of the child) is its own; "before" is the child's resident memory just before
`sample()` (Python, JAX and samplax loaded). Seconds are the `sample()` call, compilation included; for the
streamed run they include writing the store (and the returned DataTree is opened lazily, not read).

Usage: python benchmarks/streaming.py [--quick]      (--quick: 1e4 vs 1e5 draws instead of 1e5 vs 1e6)
"""

from __future__ import annotations

import argparse
import json
import pathlib
import shutil
import subprocess
import sys
import tempfile

DIM = 100


def _status_mb(field: str) -> float:
    for line in pathlib.Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024  # kB
    return float("nan")


def child(mode: str, num_samples: int, out: str | None) -> None:
    import time

    import jax

    jax.config.update("jax_enable_x64", True)
    import samplax

    target = samplax.models.get("gaussian", dim=DIM)
    before = _status_mb("VmRSS")
    t0 = time.perf_counter()
    dt = samplax.sample(target, "mala", num_chains=1, num_warmup=0, num_samples=num_samples, seed=0,
                        progress=False, step_size=0.3, **({"out": out} if mode == "streamed" else {}))
    seconds = time.perf_counter() - t0
    assert dt["posterior"].sizes["draw"] == num_samples
    store_mb = (sum(p.stat().st_size for p in pathlib.Path(out).rglob("*") if p.is_file()) / 2**20
                if out else float("nan"))
    print(json.dumps({"mode": mode, "draws": num_samples, "seconds": seconds, "before_mb": before,
                      "peak_mb": _status_mb("VmHWM"), "store_mb": store_mb}))


def run_child(mode: str, num_samples: int, workdir: pathlib.Path) -> dict:
    out = str(workdir / f"run-{num_samples}.zarr") if mode == "streamed" else ""
    cmd = [sys.executable, __file__, "--child", mode, str(num_samples), out]
    res = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise RuntimeError(f"{mode} run with {num_samples} draws failed:\n{res.stderr[-3000:]}")
    if out:
        shutil.rmtree(out, ignore_errors=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="1e4 vs 1e5 draws")
    ap.add_argument("--child", nargs=3, metavar=("MODE", "DRAWS", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        mode, n, out = args.child
        child(mode, int(n), out or None)
        return
    sizes = (10_000, 100_000) if args.quick else (100_000, 1_000_000)
    rows = []
    with tempfile.TemporaryDirectory(prefix="samplax-streaming-") as tmp:
        for mode in ("in memory", "streamed"):
            for n in sizes:
                r = run_child("streamed" if mode == "streamed" else "memory", n, pathlib.Path(tmp))
                r["mode"] = mode
                rows.append(r)
                print(f"  {mode:9s} {n:>9,} draws: peak {r['peak_mb']:,.0f} MB, {r['seconds']:.1f} s", file=sys.stderr,
                      flush=True)
    print(f"\nGaussian d = {DIM}, MALA, 1 chain, no warmup, float64; positions of {sizes[1]:,} draws = "
          f"{sizes[1] * DIM * 8 / 1e6:,.0f} MB\n")
    print("| mode | draws | peak RSS MB | RSS before sampling MB | peak - before MB | seconds | store MB |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        store = f"{r['store_mb']:,.0f}" if r["store_mb"] == r["store_mb"] else "-"
        print(f"| {r['mode']} | {r['draws']:,} | {r['peak_mb']:,.0f} | {r['before_mb']:,.0f} | "
              f"{r['peak_mb'] - r['before_mb']:,.0f} | {r['seconds']:.1f} | {store} |")
    print()
    for mode in ("in memory", "streamed"):
        small, big = (r for r in rows if r["mode"] == mode)
        growth = (big["peak_mb"] - big["before_mb"]) / max(small["peak_mb"] - small["before_mb"], 1e-9)
        print(f"{mode}: peak ratio ({big['draws']:,} / {small['draws']:,} draws) = "
              f"{big['peak_mb'] / small['peak_mb']:.2f}x (above the pre-sampling baseline: {growth:.2f}x)")


if __name__ == "__main__":
    main()
