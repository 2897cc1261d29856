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
        if k in out:  # the same key twice (`--set a=1 --set a=2`): which one was meant is not ours to guess
            raise SystemExit(f"error: {what} gives {k!r} twice ({k}={out[k]!r} and {item}); give it once")
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


def _settings_per_sampler(items: list[str] | None, samplers: list[str]) -> dict[str, dict]:
    """`--set a=1` applies to every sampler; `--set nuts.a=1` only to nuts. Values are checked against the type
    of the setting's default (`--set target_accept=high` is refused, naming the setting and the expected type)."""
    from samplax.api import canonical_name, check_setting_types

    per = {s: {} for s in samplers}
    for k, v in _kv(items, "--set").items():
        if "." in k:
            name, key = k.split(".", 1)
            name = canonical_name(name)
            if name not in per:
                raise SystemExit(f"error: --set {k}=...: {name!r} is not one of the samplers {samplers}")
            per[name][key] = v
        else:
            for s in samplers:
                per[s].setdefault(k, v)
    for name, settings in per.items():
        try:
            check_setting_types(name, settings, how="--set")
        except TypeError as err:
            raise SystemExit(f"error: {err}") from None
    return per


def _sampler_names(values: list[str] | None, default=()) -> list[str]:
    """`--samplers nuts mala`, `--samplers nuts,mala`, `--samplers nuts --samplers mala` and `--sampler ...`
    alike: names in the registry's case; `default` when none was given."""
    from samplax.api import canonical_name

    names = [canonical_name(x.strip()) for v in values or [] for x in v.split(",") if x.strip()]
    return list(dict.fromkeys(names)) or list(default)


def _sample_one(target, sampler, settings, args, out: pathlib.Path):
    import samplax
    from samplax import particles
    from samplax.particles import families  # noqa: F401  (registers population samplers)

    if particles.is_population(target, sampler):
        defaults = subparser("sample")  # the flags' defaults as the parser has them, not restated here
        given = [flag for dest, flag in CHAIN_ONLY_FLAGS.items() if getattr(args, dest) != defaults.get_default(dest)]
        if given:  # they shape chain runs; a population run is sized by --particles (and --chains populations)
            print(f"note: {', '.join(given)} set chain samplers' runs; population sampler {sampler} ignores them "
                  "(it is sized by --particles)", file=sys.stderr)
        return samplax.sample(target, sampler, num_particles=args.particles, num_chains=args.chains,
                              seed=args.seed, progress=args.progress, **settings)
    ckpt = out / f"{sampler}.ckpt"
    resume = ckpt if args.resume and ckpt.exists() else None
    if args.resume and resume is None:
        print(f"note: --resume: no checkpoint {ckpt}; {sampler} starts from scratch", file=sys.stderr)
    return samplax.sample(
        target, sampler, num_chains=args.chains, num_warmup=args.warmup, num_samples=args.samples,
        seed=args.seed, thinning=args.thinning, chain_method=args.chain_method, progress=args.progress,
        checkpoint=ckpt if (args.checkpoint_every or args.resume) else None,
        checkpoint_every=args.checkpoint_every, resume=resume, **settings,
    )


# `sample` flags that shape chain runs only (a population run is sized by --particles)
CHAIN_ONLY_FLAGS = {"warmup": "--warmup", "samples": "--samples", "thinning": "--thinning",
                    "chain_method": "--chain-method", "checkpoint_every": "--checkpoint-every", "resume": "--resume"}


def subparser(name: str) -> argparse.ArgumentParser:
    """The parser of one command (`sample`, `compare`, ...)."""
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return action.choices[name]


def _target(args):
    import samplax
    from samplax.user_model import target_from_file

    if ":" in args.model or args.model.endswith(".py"):
        # --model-arg adds to (never silently replaces) the --data file's arguments
        return target_from_file(args.model, args.data, extra=_kv(args.model_arg, "--model-arg"))
    if args.data is not None:
        raise ValueError(f"--data is for models from a file (FILE.py:FUNCTION); built-in model {args.model!r} "
                         "brings its own data")
    return samplax.models.get(args.model, **_kv(args.model_arg, "--model-arg"))


def cmd_sample(args) -> int:
    _setup_jax(not args.float32)
    import samplax
    from samplax.diagnostics.report import text_report

    try:
        target = _target(args)
    except (ValueError, TypeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    samplers = _sampler_names(args.samplers, args.default_samplers)
    per_sampler = _settings_per_sampler(args.set, samplers)
    out = pathlib.Path(args.out)
    runs, failed = {}, {}
    for sampler in samplers:
        try:
            dt = _sample_one(target, sampler, per_sampler[sampler], args, out)
        except (ValueError, TypeError, FileNotFoundError) as err:
            failed[sampler] = f"{type(err).__name__}: {err}"
            print(f"error: {sampler}: {err}", file=sys.stderr)
            if (out / f"{sampler}.nc").exists():  # `samplax summary/report` on the folder would read it as this run's
                failed[sampler] += f" ({out / f'{sampler}.nc'} is left from an earlier run, not from this one)"
                print(f"warning: {out / f'{sampler}.nc'} is from an earlier run; this one failed", file=sys.stderr)
            continue
        out.mkdir(parents=True, exist_ok=True)  # only once there is something to write
        samplax.save(dt, out / f"{sampler}.nc")
        runs[sampler] = dt
    if not runs:
        return 2
    talk = args.progress if args.progress is not None else sys.stderr.isatty()
    if talk:  # W2 against reference draws and the plots take a while: say so
        print("computing diagnostics (R-hat, ESS, W2 against the reference) for the report ...", file=sys.stderr,
              flush=True)
    text = text_report(runs, target)
    if talk:
        print("writing the HTML report ...", file=sys.stderr, flush=True)
    html_path = _html_report(runs, target, out / "report.html", failed=failed)
    if failed:
        text += "\n\n== failed ==\n" + "\n".join(f"{k}: {v}" for k, v in failed.items())
    (out / "report.txt").write_text(text + "\n")
    print(text)
    print(f"\nwrote {', '.join(str(out / f'{s}.nc') for s in runs)}, {out / 'report.txt'} and {html_path}")
    return 2 if failed else 0


def _html_report(runs, target, path, failed=None):
    import samplax

    path = samplax.report(runs, target, path, failed=failed)
    for err in samplax.report.last_errors:
        print(f"warning: report panel failed: {err}", file=sys.stderr)
    return path


def cmd_compare(args) -> int:
    _setup_jax(not args.float32)
    import samplax
    from samplax.compare import compare

    samplers = _sampler_names(args.samplers, args.default_samplers)
    try:
        target = _target(args)
        settings = {k: v for k, v in _settings_per_sampler(args.set, samplers).items() if v}
        result = compare(target, samplers, budget=args.budget, budget_kind=args.budget_kind, num_chains=args.chains,
                         num_warmup=args.warmup, seed=args.seed, settings=settings, progress=args.progress)
    except (ValueError, TypeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name, dt in result.runs.items():
        samplax.save(dt, out / f"{name}.nc")
    text = str(result)
    (out / "compare.txt").write_text(text + "\n")
    result.table.to_csv(out / "compare.csv")
    html_path = _html_report({k: result.runs[k] for k in result.table.index}, target, out / "report.html")
    print(text)
    print(f"\nwrote {out / 'compare.txt'}, {out / 'compare.csv'}, {html_path} and one .nc per sampler")
    return 0


def cmd_report(args) -> int:
    import samplax

    try:
        paths = _run_paths(args.paths)
        runs = dict(zip(_labels(paths), (samplax.load(p) for p in paths)))
        target = samplax.models.get(args.model, **_kv(args.model_arg, "--model-arg")) if args.model else None
        if target is None and args.model_arg:
            raise ValueError("--model-arg needs --model (the built-in model whose ground truth to compare against)")
    except (FileNotFoundError, ValueError, TypeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except Exception as err:  # noqa: BLE001 - corrupt files raise many types
        print(f"error: could not read the runs ({type(err).__name__}: {err})", file=sys.stderr)
        return 2
    path = _html_report(runs, target, pathlib.Path(args.out))
    print(f"wrote {path}")
    return 0


def _labels(paths: list[pathlib.Path]) -> list[str]:
    """A run's label: its file stem, or folder/stem where stems repeat (two folders' nuts.nc were one run)."""
    stems = [p.stem for p in paths]
    labels = [f"{p.parent.name}/{p.stem}" if stems.count(p.stem) > 1 else p.stem for p in paths]
    return [lab if labels.count(lab) == 1 else f"{lab}#{labels[:i + 1].count(lab)}" for i, lab in enumerate(labels)]


def _run_paths(paths: list[str]) -> list[pathlib.Path]:
    """Files as given; a folder stands for the .nc / .zarr runs inside it."""
    out = []
    for p in map(pathlib.Path, paths):
        if p.is_dir() and p.suffix != ".zarr":
            found = sorted([*p.glob("*.nc"), *p.glob("*.zarr")])
            if not found:
                raise FileNotFoundError(f"run folder {str(p)!r} holds no .nc or .zarr runs")
            out.extend(found)
        else:
            out.append(p)
    return out


def sampler_settings() -> dict[str, str]:
    """Each registered sampler's settings with defaults, read from its factory's signature (a factory's
    catch-all `**kwargs`, which only exists to refuse unknown names with a better message, is not a setting)."""
    from samplax import particles, samplers
    from samplax.api import settings_of
    from samplax.particles import families  # noqa: F401

    out = {}
    for name in {**samplers.base._REGISTRY, **particles.base._REGISTRY}:
        params = settings_of(name).values()
        out[name] = ", ".join(f"{p.name}={p.default!r}" if p.default is not p.empty else p.name for p in params)
    return dict(sorted(out.items()))


def describe_sampler(name: str) -> str:
    """One sampler's kind, docstring and settings (name, default, type), for `samplax samplers NAME`."""
    import inspect

    from samplax import samplers
    from samplax.api import _TYPE_WORDS, expected_type, factory, settings_of

    f = factory(name)
    kind = "chain sampler" if name in samplers.base._REGISTRY else "population sampler (use num_particles)"
    doc = inspect.cleandoc(f.__doc__ or "").strip()
    lines = [f"{name}: {kind}", *(["", doc] if doc else []), "", "settings (name = default, expected type):"]
    params = settings_of(name)
    for p in params.values():
        types = expected_type(p)
        default = "(required)" if p.default is p.empty else repr(p.default)
        ann = p.annotation if p.annotation is not p.empty else None
        what = _TYPE_WORDS[types] if types else (str(ann) if ann else "a name (see the docstring)"
                                                 if isinstance(p.default, str) else "any")
        lines.append(f"  {p.name:24s} = {default:14s} {what}")
    if not params:
        lines.append("  (no settings)")
    lines += ["", f"give them as keywords (samplax.sample(target, {name!r}, key=value)) or on the command line "
              f"(--set key=value)"]
    return "\n".join(lines)


def cmd_samplers(args) -> int:
    from samplax.api import canonical_name, factory

    if args.names:
        names = [canonical_name(n) for n in args.names]
        unknown = [n for n in names if factory(n) is None]
        if unknown:
            import difflib

            close = {n: difflib.get_close_matches(n.lower(), list(sampler_settings()), n=1) for n in unknown}
            print("error: unknown sampler(s) " + ", ".join(f"{n!r}" + (f" (did you mean {c[0]}?)" if c else "")
                                                          for n, c in close.items())
                  + f"; available: {', '.join(sampler_settings())}", file=sys.stderr)
            return 2
        print("\n\n".join(describe_sampler(n) for n in names))
        return 0
    for name, settings in sampler_settings().items():
        print(f"{name:14s} {settings or '(no settings)'}")
    print("\n`samplax samplers NAME` describes one sampler and its settings")
    return 0


def cmd_summary(args) -> int:
    import samplax
    from samplax.diagnostics.report import text_report

    runs = {}
    try:
        paths = _run_paths(args.paths)
    except FileNotFoundError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for path, label in zip(paths, _labels(paths)):
        try:
            dt = samplax.load(path)
        except (FileNotFoundError, ValueError) as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        except Exception as err:  # noqa: BLE001 - corrupt files raise many types; name the file
            print(f"error: {str(path)!r} is not a readable results file ({type(err).__name__}: {err})",
                  file=sys.stderr)
            return 2
        if "posterior" not in getattr(dt, "children", {}):
            print(f"error: {str(path)!r} has no posterior group: not a samplax/ArviZ run", file=sys.stderr)
            return 2
        runs[label] = dt
    print(text_report(runs, None))
    return 0


def cmd_demo(args) -> int:
    from samplax.demo import run_demo

    run_demo(pathlib.Path(args.out), quick=args.quick, progress=args.progress)
    return 0


class _Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    pass


def _sample_description() -> str:
    from samplax import particles, samplers
    from samplax.particles import families  # noqa: F401

    return ("Sample a model and write <sampler>.nc plus report.txt to --out.\n"
            f"chain samplers: {', '.join(samplers.available())}\n"
            f"population samplers (use --particles): {', '.join(particles.available())}\n"
            "each sampler's settings and their defaults: `samplax samplers`")


def _model_arguments(p) -> None:
    """The model, its data or constructor arguments, and the float width: shared by `sample` and `compare`."""
    p.add_argument("model", help="a built-in model name (see `samplax models`) or FILE.py:FUNCTION, a numpyro model")
    p.add_argument("--data", default=None, help="JSON or .npz file of the model's arguments (for FILE.py:FUNCTION)")
    p.add_argument("--model-arg", nargs="*", action="extend", metavar="KEY=VALUE",
                   help="built-in model arguments, e.g. dim=20 (repeatable)")
    p.add_argument("--float32", action="store_true", help="run in float32 (default float64)")


def _sampler_arguments(p, default: list[str]) -> None:
    """One spelling in every command: `--samplers a b` or `--samplers a,b`; `--sampler` is the same option."""
    # "extend": repeating the option adds names (argparse's default "store" kept only the last one); the default is
    # filled in by _sampler_names, as extend would add to a default list
    p.add_argument("--samplers", "--sampler", dest="samplers", nargs="+", action="extend", default=None,
                   metavar="NAME", help="one or several sampler names, space- or comma-separated, any case "
                   f"(`samplax samplers`; default {' '.join(default)})")
    p.set_defaults(default_samplers=default)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="samplax", description="Sample a model and read how well it worked.")
    sub = p.add_subparsers(dest="command", required=True)

    m = sub.add_parser("models", help="list the built-in models")
    m.set_defaults(fn=cmd_models)

    ss = sub.add_parser("samplers", help="list the samplers with their settings and defaults; NAME: one in detail")
    ss.add_argument("names", nargs="*", metavar="NAME", help="samplers to describe (any case)")
    ss.set_defaults(fn=cmd_samplers)

    s = sub.add_parser("sample", help="sample a built-in model or your own with one or several samplers",
                       description=_sample_description(), formatter_class=_Formatter)
    _model_arguments(s)
    _sampler_arguments(s, ["nuts"])
    s.add_argument("--chains", type=int, default=4, help="chains (or populations)")
    s.add_argument("--warmup", type=int, default=1000, help="warmup steps per chain")
    s.add_argument("--samples", type=int, default=1000, help="kept draws per chain")
    s.add_argument("--thinning", type=int, default=1, help="keep every k-th step")
    s.add_argument("--seed", type=int, default=0, help="random seed (integer)")
    s.add_argument("--chain-method", default=None, choices=["vectorized", "sequential", "parallel", "mapped"],
                   help="how chains run: default 'mapped' (lax.map) on CPU, 'vectorized' (vmap) on GPU/TPU")
    s.add_argument("--checkpoint-every", type=int, default=None, help="checkpoint every N draws into --out")
    s.add_argument("--resume", action="store_true",
                   help="continue each sampler from its checkpoint <out>/<sampler>.ckpt when there is one")
    s.add_argument("--particles", type=int, default=1000, help="particles per population (population samplers)")
    s.add_argument("--set", nargs="*", action="extend", metavar="KEY=VALUE",
                   help="sampler settings for every sampler (target_accept=0.9) or one (nuts.target_accept=0.9); "
                        "repeatable")
    s.add_argument("--out", default="runs/latest", help="directory for <sampler>.nc and report.txt")
    s.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None)
    s.set_defaults(fn=cmd_sample)

    r = sub.add_parser("summary", help="report on saved runs (.nc / .zarr files, or folders of them)")
    r.add_argument("paths", nargs="+")
    r.set_defaults(fn=cmd_summary)

    c = sub.add_parser("compare", help="several samplers on one model under the same budget, ranked",
                       formatter_class=_Formatter)
    _model_arguments(c)
    _sampler_arguments(c, ["nuts", "mclmc"])
    c.add_argument("--budget", type=float, default=None,
                   help="gradient evaluations over all chains, warmup included (default 100,000), or seconds with "
                        "--budget-kind seconds (then required)")
    c.add_argument("--budget-kind", default="gradients", choices=["gradients", "seconds"])
    c.add_argument("--chains", type=int, default=4, help="chains per sampler")
    c.add_argument("--warmup", type=int, default=None, help="warmup steps (default: from the budget, at most 1000)")
    c.add_argument("--seed", type=int, default=0, help="the same seed for every sampler")
    c.add_argument("--set", nargs="*", action="extend", metavar="KEY=VALUE",
                   help="settings, e.g. nuts.target_accept=0.9 (repeatable)")
    c.add_argument("--out", default="runs/compare", help="directory for the table, the report and the runs")
    c.add_argument("--progress", action=argparse.BooleanOptionalAction, default=False)
    c.set_defaults(fn=cmd_compare)

    rp = sub.add_parser("report", help="write the HTML diagnostics report of saved runs (files or folders)")
    rp.add_argument("paths", nargs="+")
    rp.add_argument("--out", default="report.html", help="the HTML file to write")
    rp.add_argument("--model", default=None, help="built-in model whose ground truth to compare against")
    rp.add_argument("--model-arg", nargs="*", action="extend", metavar="KEY=VALUE",
                    help="its arguments, as the runs were sampled with (e.g. a=3)")
    rp.set_defaults(fn=cmd_report)

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
    if args.command in ("sample", "demo", "compare"):
        print(f"done in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
