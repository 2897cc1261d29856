"""`sample()`: warm up and sample chains, with progress and checkpoints, and return a DataTree.

The pieces live next door: `phases` (the per-phase programs and random streams), `layout` (vectorised /
sequential / sharded chains), `compile_cache` (compiled phases reused across calls), `checkpoint`.
"""

from __future__ import annotations

import contextlib
import math
import os
import pathlib
import signal
import sys
import threading
import time
import warnings
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from samplax import checks
from samplax import checkpoint as _ckpt
from samplax import streaming as _streaming
from samplax import samplers as _samplers
from samplax.compile_cache import compiled, executable_cache
from samplax.diagnostics import stein as _stein
from samplax.diagnostics.trust import verify
from samplax.init_values import is_site_dict, positions_from_sites
from samplax.layout import CHAIN_METHODS, Layout, check_chain_method, is_writer, resolve_chain_method
from samplax.phases import Phases
from samplax.progress import Progress
from samplax.results import to_datatree, versions
from samplax.samplers.base import Sampler, from_pair
from samplax.target import Target

__all__ = ["CHAIN_METHODS", "resolve_sampler", "sample"]
MAX_STEPS = 2**31 - 2  # per chain: warmup + sampling steps (int32 step counters; the progress total is steps - 1)
SMALL_PARAM = 16  # params with at most this many entries are recorded in attrs in full


def resolve_sampler(sampler, settings: dict) -> Sampler:
    if isinstance(sampler, Sampler):
        if settings:
            raise TypeError(f"settings {sorted(settings)} given with a built Sampler; build it with them instead")
        return sampler
    if isinstance(sampler, str):
        return _samplers.get(sampler, **settings)
    if settings:
        raise TypeError(f"settings {sorted(settings)} apply to registered samplers only; a user's sampler "
                        "takes its settings when it is built")
    if isinstance(sampler, tuple) and len(sampler) == 2 and all(map(callable, sampler)):
        return from_pair(*sampler)
    if hasattr(sampler, "init") and hasattr(sampler, "step"):
        return from_pair(sampler.init, sampler.step, name=type(sampler).__name__)
    raise TypeError(
        "sampler must be a registered name (one of: " + ", ".join(_samplers.available())
        + "), a samplax Sampler, a blackjax SamplingAlgorithm, or an (init, step) pair"
    )


def _validate(target, num_chains, num_warmup, num_samples, thinning, chain_method, checkpoint_every, seed):
    if not isinstance(target, Target):
        raise TypeError(f"target must be a samplax.Target (Target.from_numpyro / from_logdensity), got {type(target).__name__}")
    for name, value, low in (("num_chains", num_chains, 1), ("num_warmup", num_warmup, 0),
                             ("num_samples", num_samples, 1), ("thinning", thinning, 1)):
        checks.integer(name, value, low)
    steps = int(num_warmup) + int(num_samples) * int(thinning)
    if steps > MAX_STEPS:  # step counters and the progress totals are int32 on the device
        raise ValueError(f"num_warmup + num_samples x thinning = {steps:,} steps per chain is more than samplax "
                         f"counts ({MAX_STEPS:,}); ask for fewer steps, or make several runs with different seeds")
    checks.seed(seed)
    check_chain_method(chain_method, num_chains)
    if checkpoint_every is not None and (not isinstance(checkpoint_every, (int, np.integer))
                                         or isinstance(checkpoint_every, bool) or checkpoint_every < 1):
        raise ValueError(f"checkpoint_every must be an integer >= 1 (draws per checkpoint), got {checkpoint_every!r}")


def sample(
    target: Target,
    sampler: Any = "nuts",
    *,
    num_chains: int = 4,
    num_warmup: int = 1000,
    num_samples: int = 1000,
    seed: int = 0,
    thinning: int = 1,
    chain_method: str | None = None,
    init_positions=None,
    progress: bool | None = None,
    keep_warmup: bool = False,
    checkpoint: str | pathlib.Path | None = None,
    checkpoint_every: int | None = None,
    resume: str | pathlib.Path | None = None,
    out: str | pathlib.Path | None = None,
    keep: list[str] | None = None,
    moments_only: bool = False,
    overwrite: bool = False,
    chunk_size: int | None = None,
    **settings,
):
    """Warm up and sample `num_chains` chains; return an ArviZ DataTree.

    sampler: a registered name (`samplax.samplers.available()`), a `Sampler`, a blackjax
      `SamplingAlgorithm` or an `(init, step)` pair; extra keyword `settings` go to the named sampler.
    num_warmup: steps of the sampler's adaptive warmup, or of plain burn-in when it adapts nothing
      (never thinned). seed: an integer in [0, 2**32).
    init_positions: None (random starts, `Target.init`), flat unconstrained positions of shape (num_chains, dim)
      or (dim,), or for a numpyro target a dict {site: value} of every latent site's constrained value (the
      site's shape, or (num_chains, *shape) per chain), as numpyro's `init_to_value` takes them.
    chain_method: "vectorized" (vmap), "sequential" (one chain after another), "mapped" (`lax.map` over
      chains in one program) or "parallel" (chains sharded over `jax.devices()`, every process's after
      `jax.distributed.initialize()`); None: the backend's faster one (`layout.default_chain_method`). All
      use the same random streams; README "Reproducibility" says when the draws are bitwise identical.
    keep_warmup: return the warmup draws and stats (otherwise they never leave the device).
    checkpoint / checkpoint_every: write the run's state every `checkpoint_every` draws to
      `checkpoint`; `resume=path` continues such a run exactly (same draws as an uninterrupted run)
      and refuses a checkpoint of another target or other settings, naming the field.
    out: stream the draws chunk by chunk to this zarr store (`.zarr`; refused if it exists unless
      `overwrite=True`) instead of keeping them in memory, and return it opened lazily (`samplax.load(out)`
      gives the same DataTree); `keep=[names]` writes only those posterior variables, `moments_only=True`
      only per-chain running means and variances (see `samplax.streaming`). Not combinable with checkpoints.
    chunk_size: draws per compiled chunk (default `_chunk_size`: 128, about a twentieth of longer runs, fewer
      for short runs or big chains x dim; streamed: at most 2**19 values). Ctrl-C stops at the end of a chunk.
    """
    _validate(target, num_chains, num_warmup, num_samples, thinning, chain_method, checkpoint_every, seed)
    chain_method = resolve_chain_method(chain_method)
    if chunk_size is not None and (not isinstance(chunk_size, (int, np.integer)) or isinstance(chunk_size, bool)
                                   or chunk_size < 1 or checkpoint_every not in (None, chunk_size)):
        raise ValueError(f"chunk_size must be an integer >= 1 and equal checkpoint_every if both are given, got "
                         f"chunk_size={chunk_size!r}, checkpoint_every={checkpoint_every!r}")
    if checkpoint_every is not None and checkpoint is None and resume is None:
        raise ValueError(f"checkpoint_every={checkpoint_every!r} without checkpoint= writes nothing; pass "
                         "checkpoint='run.ckpt' too (or chunk_size= to set the draws per compiled chunk)")
    if keep_warmup and moments_only:
        raise ValueError("keep_warmup=True with moments_only=True: a moments-only store keeps no draws, so the "
                         "warmup draws would be dropped; pass one of them")
    writer = _streaming.check(target, out, keep, moments_only, overwrite, checkpoint, resume)
    # numpy integers are accepted above; from here on Python ints (bit arithmetic, attrs, fingerprints)
    seed, num_chains, num_warmup, num_samples, thinning = map(int, (seed, num_chains, num_warmup, num_samples,
                                                                    thinning))
    checkpoint_every, chunk_size = (None if v is None else int(v) for v in (checkpoint_every, chunk_size))
    if is_site_dict(init_positions):  # {site: constrained value}: flat positions before anything keys on them
        init_positions = positions_from_sites(target, init_positions, num_chains)
    if checkpoint is not None:
        _ckpt.check_path(checkpoint, "checkpoint")
    if resume is not None:
        _ckpt.check_path(resume, "resume")
    s = resolve_sampler(sampler, settings)
    bar = Progress.create(progress, total=num_samples, label=s.name)
    phases = Phases(target, s, thinning, num_warmup, bar, keep_warmup)
    # Programs are keyed on what changes them: the sampler and its settings, the layout and whether a progress
    # bar is compiled in here; each phase adds its own (warmup: its length; chunks: thinning and buffer length).
    # Run lengths themselves (num_samples, the last chunk's length, the bar's period) are runtime values.
    t_key = time.perf_counter()  # keying traces the target once (see compile_cache.program_digest): compile time
    cache = executable_cache(target, sampler, settings, (chain_method, bar.enabled, num_chains))
    key_s = time.perf_counter() - t_key
    layout = Layout(chain_method, num_chains, cache, note=bar.note)
    root = jax.random.PRNGKey(seed)
    chain_keys = jax.vmap(lambda c: jax.random.fold_in(root, c))(jnp.arange(num_chains))
    attrs: dict[str, Any] = {
        "sampler": s.name, "settings": repr(s.settings), "seed": seed, "num_chains": num_chains,
        "num_warmup": num_warmup, "num_samples": num_samples, "thinning": thinning,
        "chain_method": chain_method, "target": target.name, **versions(),
    }
    times = {"compile_time": key_s, "warmup_time": 0.0, "sampling_time": 0.0}

    def make_fingerprint():
        fp = {**_ckpt.target_fingerprint(target), **_ckpt.run_fingerprint(
            s.name, s.settings, settings, seed=seed, num_chains=num_chains, thinning=thinning,
            num_warmup=num_warmup, keep_warmup=keep_warmup, init_positions=init_positions)}
        if not isinstance(sampler, str):  # a user's pair / algorithm / Sampler: compared by what it computes
            fp["program"] = _ckpt.program_fingerprint(s, target)
        return fp

    fingerprint = make_fingerprint() if (checkpoint is not None or resume is not None) else None

    every = checkpoint_every or chunk_size or _chunk_size(num_samples, num_chains, target.dim)
    if writer is not None:
        every = checkpoint_every or chunk_size or _streaming.chunk_draws(  # big chunks: each append costs
            num_samples, num_chains, target.dim, 1 << (num_samples - 1).bit_length())
    fused = lambda ck, st, p, ad, on, t0, n, b: phases.fused_chunk(ck, st, p, ad, on, t0, n, b, every)  # noqa: E731
    adapting = None  # the adaptation state the fused program carries (unused once the warmup is done)
    if resume is not None:
        ck = _ckpt.load(resume, fingerprint, num_samples)
        states, params = ck["states"], ck["params"]
        draws, stat_chunks, t_done = ck["positions"], ck["stats"], ck["t_done"]
        warm_pos, warm_stats = ck["warmup_positions"], ck["warmup_stats"]
        times.update(ck["times"])
        attrs["n_grad_warmup"] = ck["n_grad_warmup"]
        if ck.get("n_reverted_warmup") is not None:
            attrs["n_reverted_warmup"] = ck["n_reverted_warmup"]
        attrs["resumed_from_draw"] = t_done
    else:
        positions, init_compile_s = _initial_positions(target, phases, chain_keys, init_positions,
                                                      num_chains, cache)
        times["compile_time"] += init_compile_s
        warm_pos = warm_stats = None
        if num_warmup > 0 and phases.fused():  # the warmup runs in the sampling program (Phases.fused_chunk)
            bar.note(f"{s.name}: warmup ({num_warmup} steps x {num_chains} chains)")
            # `begin` is a small program of its own: inside the fused one (under a `cond`) it rounded differently in
            # the device-sharded and the per-chain programs, and the chains' draws parted (tests/test_layouts.py)
            begun, t_begin = layout.run(("begin", num_warmup), phases.begin, chain_keys, positions)
            (states, params, adapting, _), t_warm = layout.run(
                ("fused", every, num_warmup), fused, chain_keys, *begun,
                shared=(jnp.asarray(True), jnp.asarray(0, jnp.int32), jnp.asarray(0, jnp.int32),
                        bar.runtime_args()))
            times["warmup_time"] = t_begin + t_warm
            attrs["n_grad_warmup"] = _count(np.asarray(adapting.n_grad))
        elif num_warmup > 0:
            bar.note(f"{s.name}: warmup ({num_warmup} steps x {num_chains} chains)")
            (states, params, trace), times["warmup_time"] = layout.run(("warmup", num_warmup, bool(keep_warmup)),
                                                                       phases.warmup, chain_keys, positions)
            trace = {k: np.asarray(v) for k, v in trace.items()}  # without keep_warmup: one total per chain
            attrs["n_grad_warmup"] = _count(trace["n_grad_total"] if "n_grad_total" in trace else trace["n_grad"])
            if "n_reverted_total" in trace:  # burn-in steps reverted at a NaN/inf log-density: counted, not lost
                attrs["n_reverted_warmup"] = int(np.sum(trace["n_reverted_total"]))
            if "n_expensive_total" in trace:  # two_level: the expensive log-density evaluations of its warmup
                attrs["n_expensive_warmup"] = int(np.sum(trace["n_expensive_total"]))
            if keep_warmup:
                if "position" not in trace:
                    warnings.warn(f"keep_warmup=True: sampler {s.name!r} does not record warmup draws", stacklevel=2)
                else:
                    warm_pos = trace.pop("position")
                    warm_stats = {k: v for k, v in trace.items()
                                  if v.ndim >= 2 and k not in ("n_reverted_total", "n_expensive_total")}
        else:
            params = jax.vmap(lambda _: s.initial_params(target))(chain_keys)
            states, _ = layout.run("start", phases.start, chain_keys, positions, params)
            attrs["n_grad_warmup"] = 0
        draws, stat_chunks, t_done = [], [], 0

    def save_checkpoint(path, fp):
        if not is_writer():  # multi-process: process 0 writes, the others hold the same state
            return
        _ckpt.save(path, fingerprint=fp, states=states, params=params, draws=draws, stats=stat_chunks,
                   t_done=t_done, warm_pos=warm_pos, warm_stats=warm_stats, n_grad_warmup=attrs["n_grad_warmup"],
                   n_reverted_warmup=attrs.get("n_reverted_warmup"),
                   times={**times, "compile_time": times["compile_time"] + layout.compile_time})

    stein_every = (_stein.stride(num_samples, _streaming.TRUST_DRAWS if writer is not None else None)
                   if _stein.applies(s.name, s.settings) else 0)
    stein_kept = []  # streamed: the draws the bias check reads (every stein_every-th), the only ones kept
    if writer is not None:  # streamed: chunks are written and dropped; only per-chain tallies stay in memory
        writer.num_draws, tally = num_samples, None
    bar.start(t_done, passes=num_chains if layout.chain_method in ("mapped", "sequential") else 1)
    stop = _Interrupt()
    chunk = lambda ck, st, p, t0, n, b: phases.chunk(ck, st, p, t0, n, b, every)  # noqa: E731
    with stop, (writer or contextlib.nullcontext()):
        while t_done < num_samples and not stop.requested:
            n = min(every, num_samples - t_done)
            bar.begin_chunk(t_done)
            if phases.fused():  # the program that ran the warmup (one compiled kernel)
                if adapting is None:  # resumed: past its warmup, the program never reads the adaptation state
                    adapting = phases.placeholders(chain_keys, states.position)[2]
                (states, params, adapting, (pos, stats)), tr = layout.run(
                    ("fused", every, num_warmup), fused, chain_keys, states, params, adapting,
                    shared=(jnp.asarray(False), jnp.asarray(t_done, jnp.int32), jnp.asarray(n, jnp.int32),
                            bar.runtime_args()))
            else:
                (states, (pos, stats)), tr = layout.run(
                    ("chunk", every, thinning), chunk, chain_keys, states, params,
                    shared=(jnp.asarray(t_done, jnp.int32), jnp.asarray(n, jnp.int32), bar.runtime_args()))
            pos, stats = np.asarray(pos)[:, :n], {k: np.asarray(v)[:, :n] for k, v in stats.items()}
            times["sampling_time"] += tr
            if writer is None:
                draws.append(pos)
                stat_chunks.append(stats)
            else:
                writer.append(pos, stats)
                tally = _tally(tally, pos, stats, t_done)
                if stein_every:
                    stein_kept.append(pos[:, (-t_done) % stein_every::stein_every])
            t_done += n
            if checkpoint is not None:
                save_checkpoint(checkpoint, fingerprint)
    bar.close()
    if t_done < num_samples:  # Ctrl-C: keep what was drawn, say so, and leave a checkpoint to resume from
        if t_done == 0:
            if writer is not None:
                writer.abort()
            raise KeyboardInterrupt
        if writer is not None:  # the store is finished as it is, marked partial; a streamed run is not resumable
            attrs.update(partial=1, interrupted_at_draw=t_done)
            warnings.warn(f"{s.name} on {target.name!r}: interrupted after {t_done} of {num_samples} draws; the store "
                          f"{str(out)!r} is PARTIAL (attrs['partial'] = 1) and cannot be resumed",
                          RuntimeWarning, stacklevel=2)
        elif checkpoint is None:
            checkpoint = _interrupted_path(target, s)
            save_checkpoint(checkpoint, fingerprint or make_fingerprint())
        if writer is None:
            attrs.update(partial=1, interrupted_at_draw=t_done, checkpoint_to_resume=str(checkpoint))
            warnings.warn(f"{s.name} on {target.name!r}: interrupted after {t_done} of {num_samples} draws; the "
                          f"returned DataTree is PARTIAL (attrs['partial'] = 1). Resume with the same call plus "
                          f"resume={str(checkpoint)!r}.", RuntimeWarning, stacklevel=2)
    times["compile_time"] += layout.compile_time

    if writer is None:
        positions = np.concatenate(draws, axis=1)
        stats = {k: np.concatenate([c[k] for c in stat_chunks], axis=1) for k in stat_chunks[0]}
        tally = _tally(None, positions, stats, 0)
    attrs["n_grad_sampling"] = _count(tally["n_grad"])
    if "desired_energy_var" in (s.settings or {}):  # the trust check compares the energy error with it
        attrs["desired_energy_var"] = float(s.settings["desired_energy_var"])
    attrs["adapted"] = _adapted_names(s, params, num_warmup)
    attrs["params"] = _params_summary(params)
    attrs.update(times)
    _count_nonfinite(tally, attrs)
    bias = []
    if stein_every:  # unadjusted samplers: their step-size bias against the target's Stein identities
        kept = (np.concatenate(stein_kept, axis=1) if writer is not None
                else positions[:, ::stein_every])
        t_check = time.perf_counter()
        bias, info = _stein.check(target.logdensity, kept, _stein.coordinate_names(target))
        attrs.update(info, check_time=time.perf_counter() - t_check)  # its compile and gradients, timed apart
    if writer is not None:
        dt = writer.finish(attrs, warmup_positions=warm_pos, warmup_stats=warm_stats)
        _streaming.record_trust(dt, writer, stacklevel=4, extra=bias)
        return dt
    dt = to_datatree(target, positions, stats, warmup_positions=warm_pos, warmup_stats=warm_stats, attrs=attrs)
    verify(dt, stacklevel=4, extra=bias)
    return dt


CHUNK_DRAWS = 128  # default draws per compiled chunk for runs up to 20 x 128 draws
CHUNK_VALUES = 1 << 22  # at most this many position values per chunk buffer (32 MB in float64)


def _chunk_size(num_samples: int, num_chains: int, dim: int) -> int:
    """Draws per compiled chunk, always a power of two: CHUNK_DRAWS, or for longer runs the power of two
    nearest a twentieth of the run (so a long run is not slowed by thousands of chunk calls); at most the
    next power of two above the run, and fewer when a chunk would hold more than CHUNK_VALUES positions.
    Runs of other lengths in the same band reuse the compiled program (the last chunk runs only the draws
    left: its length is a runtime value); Ctrl-C takes effect at the end of a chunk."""
    fit = max(1, CHUNK_VALUES // max(1, num_chains * dim))
    by_length = 1 << max(0, round(math.log2(max(1.0, num_samples / 20))))
    return min(max(CHUNK_DRAWS, by_length), 1 << (max(1, num_samples) - 1).bit_length(),
               1 << (fit.bit_length() - 1))


class _Interrupt:
    """While sampling, SIGINT (Ctrl-C) only sets a flag; the loop stops at the end of the current chunk,
    so a chunk's draws and the chain states never disagree. Outside the main thread: Python's default."""

    def __init__(self):
        self.requested = False
        self._old = None

    def _handler(self, signum, frame):
        if self.requested:  # a second Ctrl-C: the user insists
            raise KeyboardInterrupt
        self.requested = True
        print("\nsamplax: interrupt received, stopping after the current chunk of draws (Ctrl-C again to abort)",
              file=sys.stderr, flush=True)

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._old = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *exc):
        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)
        return False


def _interrupted_path(target, s) -> pathlib.Path:
    import tempfile

    name = "".join(c if c.isalnum() or c in "-_" else "_" for c in f"{target.name}-{s.name}")
    return pathlib.Path(tempfile.gettempdir()) / f"samplax-interrupted-{name}-{os.getpid()}.ckpt"


def _count(n_grad) -> int | float:
    """Total gradients; NaN (not a guess) when a step did not report its count."""
    total = np.sum(np.asarray(n_grad, dtype=float))
    return float("nan") if np.isnan(total) else int(round(total))


def _adapted_names(s: Sampler, params, num_warmup: int) -> list[str]:
    """Names of the params this run's warmup adapted (none without warmup or with plain burn-in)."""
    if s.warmup is None or num_warmup == 0:
        return []
    names = getattr(s, "adapted", None)
    # A sampler that has a warmup adapts something; one not declaring what (or predating `adapted`)
    # is taken to adapt every param its warmup returns.
    names = list(names) if names else sorted(params)
    unadapted = getattr(s.warmup, "unadapted", None)  # e.g. no mass matrix from a windowed warmup under 20 steps
    return [n for n in names if unadapted is None or n not in unadapted(num_warmup)]


def _params_summary(params) -> dict:
    """Final param values (per chain), JSON-safe: lists when small, shape and range when big."""
    out = {}
    for k, v in params.items():
        if v is None:
            out[k] = None
            continue
        a = np.asarray(v)
        if a.size <= SMALL_PARAM:
            out[k] = a.tolist()
        else:
            out[k] = {"shape": list(a.shape), "dtype": str(a.dtype), "min": float(np.min(a)),
                      "max": float(np.max(a)), "mean": float(np.mean(a))}
    return out


def _initial_positions(target, phases, chain_keys, init_positions, num_chains, cache):
    """(positions, seconds compiling); the init program is compiled once per cache entry."""
    if init_positions is None:
        exe, compile_s = compiled(cache, "init", phases.init_positions, (chain_keys,))
        positions = exe(chain_keys)
        bad = np.where(~np.all(np.isfinite(np.asarray(positions)), axis=1))[0]
        if bad.size:
            raise ValueError(
                f"target {target.name!r}: no finite log-density found for chain(s) {bad.tolist()} after "
                "repeated random initialisation; pass init_positions=... (shape (num_chains, dim)) or check the model"
            )
        return positions, compile_s
    positions = jnp.asarray(init_positions, dtype=float)
    if positions.shape == (target.dim,):
        positions = jnp.broadcast_to(positions, (num_chains, target.dim))
    if positions.shape != (num_chains, target.dim):
        raise ValueError(f"init_positions must have shape ({num_chains}, {target.dim}) or ({target.dim},), "
                         f"got {positions.shape}")
    lp = jax.vmap(target.logdensity)(positions)
    bad = np.where(~np.isfinite(np.asarray(lp)))[0]
    if bad.size:
        raise ValueError(f"init_positions: log-density of target {target.name!r} is not finite for chain(s) "
                         f"{bad.tolist()} (values {np.asarray(lp)[bad].tolist()}); choose points inside the support")
    return positions, 0.0


def _tally(tally, positions, stats, t0):
    """Per-chain totals of draws t0, t0+1, ...: gradients, non-finite draws, reverted steps, first non-finite draw
    (-1: none), added to `tally` (the totals of the draws before t0) when given."""
    bad_lp = ~np.isfinite(stats["lp"]) if "lp" in stats else np.zeros(positions.shape[:2], bool)
    bad = bad_lp | ~np.all(np.isfinite(positions), axis=-1)
    # samplers that undo a non-finite step (MCLMC, sECD) report it in `nonfinite`: counted, never hidden
    # (`n_reverted`: every reverted step, thinned-away ones included; without it, whether a kept draw's step was)
    reverted = (np.asarray(stats["n_reverted"], np.int64) if "n_reverted" in stats
                else np.asarray(stats["nonfinite"], bool) if "nonfinite" in stats else np.zeros_like(bad))
    new = {"n_grad": np.sum(np.asarray(stats["n_grad"], dtype=float), axis=1), "bad": bad.sum(axis=1),
           "reverted": reverted.sum(axis=1), "first": np.where(bad.any(axis=1), t0 + np.argmax(bad, axis=1), -1)}
    if tally is None:
        return new
    return {"n_grad": tally["n_grad"] + new["n_grad"], "bad": tally["bad"] + new["bad"],
            "reverted": tally["reverted"] + new["reverted"],
            "first": np.where(tally["first"] >= 0, tally["first"], new["first"])}


def _count_nonfinite(tally, attrs):
    """Reverted steps (MCLMC, sECD undo a non-finite step) and draws with a non-finite log-density or position,
    counted apart: the trust check at the end of `sample()` reports each once."""
    attrs["n_reverted"] = int(tally["reverted"].sum())
    attrs["n_nonfinite"] = int(tally["bad"].sum())
    if tally["bad"].any():
        attrs["first_nonfinite_draw"] = np.asarray(tally["first"], np.int64)
