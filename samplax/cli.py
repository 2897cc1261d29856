"""`samplax` console entry point: models, sample, summary, demo."""

from __future__ import annotations

import argparse
import ast
import pathlib
import sys
import time


def _kv(items: list[str] | None, what: str) -> dict:
    """Parse ["a=1", "b=true", "c=name"] into typed values (Python literals, else strings)."""
    out = {}
    for item in items or []:
        if "=" not in item:
            raise SystemExit(f"error: {what} must look like key=value, got {item!r}")
        k, v = item.split("=", 1)
        try:
            out[k] = ast.literal_eval(v)
        except (ValueError, SyntaxError):
            out[k] = {"true": True, "false": False}.get(v.lower(), v)
    return out


def _setup_jax(x64: bool) -> None:
    import jax

    if x64:
        jax.config.update("jax_enable_x64", True)


def cmd_models(args) -> int:
    import samplax

    for name, desc in samplax.models.describe().items():
        print(f"{name:28s} {desc}")
    return 0


def _sample_one(target, sampler, args, out: pathlib.Path):
    import samplax

    dt = samplax.sample(
        target, sampler, num_chains=args.chains, num_warmup=args.warmup, num_samples=args.samples,
        seed=args.seed, thinning=args.thinning, chain_method=args.chain_method, progress=args.progress,
        checkpoint=(out / f"{sampler}.ckpt") if args.checkpoint_every else None,
        checkpoint_every=args.checkpoint_every, **_kv(args.set, "--set"),
    )
    samplax.save(dt, out / f"{sampler}.nc")
    return dt


def cmd_sample(args) -> int:
    _setup_jax(not args.float32)
    import samplax
    from samplax.diagnostics.report import report

    try:
        target = samplax.models.get(args.model, **_kv(args.model_arg, "--model-arg"))
    except (ValueError, TypeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    runs = {}
    for sampler in args.sampler:
        try:
            runs[sampler] = _sample_one(target, sampler, args, out)
        except (ValueError, TypeError) as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
    text = report(runs, target)
    (out / "report.txt").write_text(text + "\n")
    print(text)
    print(f"\nwrote {', '.join(str(out / f'{s}.nc') for s in runs)} and {out / 'report.txt'}")
    return 0


def cmd_summary(args) -> int:
    import samplax
    from samplax.diagnostics.report import report

    runs = {}
    for path in args.paths:
        try:
            runs[pathlib.Path(path).stem] = samplax.load(path)
        except (FileNotFoundError, ValueError) as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
    print(report(runs, None))
    return 0


def cmd_demo(args) -> int:
    from samplax.demo import run_demo

    run_demo(pathlib.Path(args.out), quick=args.quick, progress=args.progress)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="samplax", description="Sample a model and read how well it worked.")
    sub = p.add_subparsers(dest="command", required=True)

    m = sub.add_parser("models", help="list the built-in models")
    m.set_defaults(fn=cmd_models)

    s = sub.add_parser("sample", help="sample a built-in model with one or several samplers")
    s.add_argument("model", help="model name (see `samplax models`)")
    s.add_argument("--sampler", nargs="+", default=["nuts"], help="one or several sampler names")
    s.add_argument("--chains", type=int, default=4)
    s.add_argument("--warmup", type=int, default=1000)
    s.add_argument("--samples", type=int, default=1000)
    s.add_argument("--thinning", type=int, default=1)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--chain-method", default="vectorized", choices=["vectorized", "sequential", "parallel"])
    s.add_argument("--checkpoint-every", type=int, default=None, help="checkpoint every N draws into --out")
    s.add_argument("--set", nargs="*", metavar="KEY=VALUE", help="sampler settings, e.g. target_accept=0.9")
    s.add_argument("--model-arg", nargs="*", metavar="KEY=VALUE", help="model constructor arguments, e.g. dim=20")
    s.add_argument("--out", default="runs/latest", help="directory for <sampler>.nc and report.txt")
    s.add_argument("--float32", action="store_true", help="run in float32 (default float64)")
    s.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None)
    s.set_defaults(fn=cmd_sample)

    r = sub.add_parser("summary", help="report on saved runs (.nc / .zarr)")
    r.add_argument("paths", nargs="+")
    r.set_defaults(fn=cmd_summary)

    d = sub.add_parser("demo", help="eight schools with NUTS and MCLMC, side by side")
    d.add_argument("--out", default="runs/demo")
    d.add_argument("--quick", action="store_true", help="small run (for tests)")
    d.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None)
    d.set_defaults(fn=cmd_demo)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    t0 = time.perf_counter()
    code = args.fn(args)
    if args.command in ("sample", "demo"):
        print(f"done in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
