"""`sample()`: warmup, chains (vectorised / sequential / sharded), progress, checkpoints, DataTree output."""

from __future__ import annotations

import math
import pathlib
import pickle
import time
import warnings
import weakref
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from samplax import samplers as _samplers
from samplax.progress import Progress
from samplax.results import to_datatree, versions
from samplax.samplers.base import Sampler, from_pair
from samplax.target import Target

CHAIN_METHODS = ("vectorized", "sequential", "parallel")
CHECKPOINT_VERSION = 1
# Streams folded into each chain's key, so warmup and sampling never share randomness.
_INIT, _WARMUP, _SAMPLE = 0, 1, 2


def resolve_sampler(sampler, settings: dict) -> Sampler:
    if isinstance(sampler, Sampler):
        if settings:
            raise TypeError(f"settings {sorted(settings)} given with a built Sampler; build it with them instead")
        return sampler
    if isinstance(sampler, str):
        return _samplers.get(sampler, **settings)
    if isinstance(sampler, tuple) and len(sampler) == 2 and all(map(callable, sampler)):
        return from_pair(*sampler)
    if hasattr(sampler, "init") and hasattr(sampler, "step"):
        return from_pair(sampler.init, sampler.step, name=type(sampler).__name__)
    raise TypeError(
        "sampler must be a registered name (one of: " + ", ".join(_samplers.available())
        + "), a samplax Sampler, a blackjax SamplingAlgorithm, or an (init, step) pair"
    )


def _validate(target, num_chains, num_warmup, num_samples, thinning, chain_method, checkpoint_every):
    if not isinstance(target, Target):
        raise TypeError(f"target must be a samplax.Target (Target.from_numpyro / from_logdensity), got {type(target).__name__}")
    for name, value, low in (("num_chains", num_chains, 1), ("num_warmup", num_warmup, 0),
                             ("num_samples", num_samples, 1), ("thinning", thinning, 1)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    if chain_method not in CHAIN_METHODS:
        raise ValueError(f"chain_method must be one of {CHAIN_METHODS}, got {chain_method!r}")
    if chain_method == "parallel" and num_chains % jax.device_count():
        raise ValueError(f"chain_method='parallel' needs num_chains divisible by the {jax.device_count()} devices, "
                         f"got {num_chains}")
    if checkpoint_every is not None and (not isinstance(checkpoint_every, int) or checkpoint_every < 1):
        raise ValueError(f"checkpoint_every must be an integer >= 1 (draws per checkpoint), got {checkpoint_every!r}")


class _Runner:
    """Holds the compiled per-phase functions for one (target, sampler, settings) combination."""

    def __init__(self, target: Target, sampler: Sampler, thinning: int, num_warmup: int, progress: Progress):
        self.target, self.sampler, self.thinning, self.num_warmup = target, sampler, thinning, num_warmup
        self.progress = progress

    # Each phase maps over a leading chain axis with vmap; "sequential" calls it with one chain.
    def init_positions(self, chain_keys):
        return jax.vmap(lambda ck: self.target.init(jax.random.fold_in(ck, _INIT)))(chain_keys)

    def warmup(self, chain_keys, positions):
        s = self.sampler
        if s.warmup is not None:
            def one(ck, pos):
                return s.warmup(self.target, jax.random.fold_in(ck, _WARMUP), pos, self.num_warmup)

            w = jax.vmap(one)(chain_keys, positions)
            return w.state, w.params, w.trace
        params = jax.vmap(lambda _: s.initial_params(self.target))(chain_keys)
        states = self.start(chain_keys, positions, params)
        # No adaptation available: warmup is plain burn-in with the given params.
        states, (pos, stats) = self.chunk(chain_keys, states, params, 0, self.num_warmup, stream=_WARMUP)
        return states, params, {"position": pos, **stats}

    def start(self, chain_keys, positions, params):
        def one(ck, pos, p):
            return self.sampler.build(self.target, p).init(pos, jax.random.fold_in(ck, _WARMUP))

        return jax.vmap(one)(chain_keys, positions, params)

    def chunk(self, chain_keys, states, params, t0, n, stream=_SAMPLE):
        """Advance all chains by `n` kept draws (each `thinning` steps) from draw index `t0`."""
        s, target, thin, bar = self.sampler, self.target, self.thinning, self.progress

        stream_keys = jax.vmap(lambda ck: jax.random.fold_in(ck, stream))(chain_keys)

        def step_all(states, t):
            def one(sk, st, p):
                new, info = s.build(target, p).step(jax.random.fold_in(sk, t), st)
                return new, s.stats(new, info, p)

            return jax.vmap(one)(stream_keys, states, params)

        def body(carry, i):
            states, n_div = carry
            draw = t0 + i
            n_grad, div, acc = 0, False, 0.0
            for j in range(thin):
                states, stats = step_all(states, draw * thin + j)
                n_grad = n_grad + stats["n_grad"]
                div = div | stats.get("diverging", False)
                acc = acc + stats.get("acceptance_rate", 0.0)
            # a kept draw reports the thinned-away steps too: gradients summed, any divergence, mean acceptance
            out = {**stats, "n_grad": n_grad}
            if "diverging" in stats:
                out["diverging"] = div
            if "acceptance_rate" in stats:
                out["acceptance_rate"] = acc / thin
            if bar.enabled:  # the running divergence count only feeds the progress bar
                n_div = n_div + jnp.sum(out.get("diverging", False)).astype(n_div.dtype)
                bar.update(draw, out.get("acceptance_rate"), n_div)
            return (states, n_div), (states.position, out)

        (states, _), ys = jax.lax.scan(body, (states, jnp.zeros((), jnp.int32)), jnp.arange(n))
        return states, jax.tree.map(lambda x: jnp.swapaxes(x, 0, 1), ys)  # chain axis first


# Compiled phases, per target, reused across sample() calls with the same sampler name, settings,
# run lengths and shapes (a notebook re-running a cell, or a test suite, compiles once).
_EXECUTABLES: "weakref.WeakKeyDictionary[Target, dict]" = weakref.WeakKeyDictionary()


def _executable_cache(target: Target, sampler_arg, settings: dict, run_key: tuple) -> dict:
    if not isinstance(sampler_arg, str):
        return {}  # user objects: no reliable identity to key on
    per_target = _EXECUTABLES.setdefault(target, {})
    return per_target.setdefault((sampler_arg, repr(sorted(settings.items())), run_key), {})


def _compiled(cache, key, fn, args):
    """Compile `fn` for `args` once per cache key; returns the executable and seconds spent compiling."""
    leaves, treedef = jax.tree.flatten(args)
    key = (key, str(treedef), tuple((jnp.shape(x), jnp.result_type(x)) for x in leaves))
    if key in cache:
        return cache[key], 0.0
    t0 = time.perf_counter()
    cache[key] = jax.jit(fn).lower(*args).compile()
    return cache[key], time.perf_counter() - t0


def _widening(batch: int) -> int:
    """Shadow copies per chain for a batch of one chain.

    XLA squeezes a width-1 batch axis and then rewrites products and divisions differently from
    a batched program, so a lone chain runs beside a shadow copy of itself. With that, sequential
    and vectorised runs give bitwise identical draws for up to 3 chains; from 4 chains on, XLA's
    SIMD code path rounds batched matrix products differently, so draws agree to rounding (same
    random streams) and may drift apart over long trajectories. See README "Reproducibility".
    """
    return 2 if batch == 1 else 1


def _shard_chains(tree):
    """Place the leading chain axis across devices (divisibility is checked in `_validate`)."""
    from jax.sharding import Mesh, NamedSharding, PartitionSpec

    mesh = Mesh(np.array(jax.devices()), ("chain",))
    sharding = NamedSharding(mesh, PartitionSpec("chain"))
    return jax.tree.map(lambda x: jax.device_put(x, sharding), tree)


def sample(
    target: Target,
    sampler: Any = "nuts",
    *,
    num_chains: int = 4,
    num_warmup: int = 1000,
    num_samples: int = 1000,
    seed: int = 0,
    thinning: int = 1,
    chain_method: str = "vectorized",
    init_positions=None,
    progress: bool | None = None,
    keep_warmup: bool = False,
    checkpoint: str | pathlib.Path | None = None,
    checkpoint_every: int | None = None,
    resume: str | pathlib.Path | None = None,
    **settings,
):
    """Warm up and sample `num_chains` chains; return an ArviZ DataTree.

    sampler: a registered name (`samplax.samplers.available()`), a `Sampler`, a blackjax
      `SamplingAlgorithm` or an `(init, step)` pair; extra keyword `settings` go to the named sampler.
    chain_method: "vectorized" (vmap), "sequential" (one chain after another) or "parallel" (chains
      sharded over `jax.devices()`). All three use the same random streams; README "Reproducibility"
      says when the draws are bitwise identical and when equal to rounding.
    checkpoint / checkpoint_every: write the run's state every `checkpoint_every` draws to
      `checkpoint`; `resume=path` continues such a run exactly (same draws as an uninterrupted run).
    """
    _validate(target, num_chains, num_warmup, num_samples, thinning, chain_method, checkpoint_every)
    s = resolve_sampler(sampler, settings)
    bar = Progress.create(progress, total=num_samples, label=s.name)
    runner = _Runner(target, s, thinning, num_warmup, bar)
    root = jax.random.PRNGKey(seed)
    chain_keys = jax.vmap(lambda c: jax.random.fold_in(root, c))(jnp.arange(num_chains))
    attrs: dict[str, Any] = {
        "sampler": s.name, "settings": repr(s.settings), "seed": seed, "num_chains": num_chains,
        "num_warmup": num_warmup, "num_samples": num_samples, "thinning": thinning,
        "chain_method": chain_method, "target": target.name, **versions(),
    }
    times = {"compile_time": 0.0, "warmup_time": 0.0, "sampling_time": 0.0}

    cache = _executable_cache(target, sampler, settings,
                              (thinning, num_warmup, bar.enabled, bar.every, num_samples, chain_method))

    def run_phase(name, fn, *args, shared=()):
        """Run a chain-batched phase (leading chain axis on `args`) under the chosen chain_method."""
        if chain_method == "sequential":
            parts = [jax.tree.map(lambda x: x[c:c + 1], args) for c in range(num_chains)]
        else:
            parts = [args]
        per_device = 1 if chain_method == "sequential" else num_chains // (
            jax.device_count() if chain_method == "parallel" else 1)
        k = _widening(per_device)
        outs, run_time = [], 0.0
        for part in parts:
            if k > 1:
                part = jax.tree.map(lambda x: jnp.repeat(x, k, axis=0), part)
            if chain_method == "parallel":
                part = _shard_chains(part)
            exe, tc = _compiled(cache, name, fn, (*part, *shared))
            times["compile_time"] += tc
            t0 = time.perf_counter()
            out = jax.block_until_ready(exe(*part, *shared))
            run_time += time.perf_counter() - t0
            outs.append(jax.tree.map(lambda x: x[::k], out) if k > 1 else out)
        if len(outs) == 1:
            return outs[0], run_time
        return jax.tree.map(lambda *xs: jnp.concatenate(xs), *outs), run_time

    if resume is not None:
        ck = _load_checkpoint(resume, s, seed, num_chains, thinning, num_samples)
        states, params = ck["states"], ck["params"]
        draws, stat_chunks, t_done = ck["positions"], ck["stats"], ck["t_done"]
        warm_pos, warm_stats, attrs_saved = ck["warmup_positions"], ck["warmup_stats"], ck["attrs"]
        times.update(ck["times"])
        attrs["n_grad_warmup"] = attrs_saved["n_grad_warmup"]
        attrs["resumed_from_draw"] = t_done
    else:
        positions = _initial_positions(target, runner, chain_keys, init_positions, num_chains)
        warm_pos = warm_stats = None
        if num_warmup > 0:
            bar.note(f"{s.name}: warmup ({num_warmup} steps x {num_chains} chains)")
            (states, params, trace), tw = run_phase("warmup", runner.warmup, chain_keys, positions)
            times["warmup_time"] = tw
            trace = {k: np.asarray(v) for k, v in trace.items()}
            if "n_grad_total" in trace:
                attrs["n_grad_warmup"] = int(trace["n_grad_total"].sum())
            else:
                attrs["n_grad_warmup"] = int(trace["n_grad"].sum())
            if keep_warmup:
                if "position" not in trace:
                    warnings.warn(f"keep_warmup=True: sampler {s.name!r} does not record warmup draws", stacklevel=2)
                else:
                    warm_pos = trace.pop("position")
                    warm_stats = {k: v for k, v in trace.items() if v.ndim >= 2}
        else:
            params = jax.vmap(lambda _: s.initial_params(target))(chain_keys)
            states, _ = run_phase("start", runner.start, chain_keys, positions, params)
            attrs["n_grad_warmup"] = 0
        draws, stat_chunks, t_done = [], [], 0

    every = checkpoint_every or num_samples
    if checkpoint is not None and checkpoint_every is None:
        every = max(1, math.ceil(num_samples / 10))
    bar.start(t_done)
    while t_done < num_samples:
        n = min(every, num_samples - t_done)
        chunk = lambda ck, st, p, t0, n=n: runner.chunk(ck, st, p, t0, n)  # noqa: E731
        (states, (pos, stats)), tr = run_phase(("chunk", n), chunk, chain_keys, states, params,
                                               shared=(jnp.asarray(t_done),))
        times["sampling_time"] += tr
        draws.append(np.asarray(pos))
        stat_chunks.append({k: np.asarray(v) for k, v in stats.items()})
        t_done += n
        if checkpoint is not None:
            _save_checkpoint(checkpoint, s, seed, num_chains, thinning, states, params, draws, stat_chunks,
                             t_done, warm_pos, warm_stats, attrs, times)
    bar.close()

    positions = np.concatenate(draws, axis=1)
    stats = {k: np.concatenate([c[k] for c in stat_chunks], axis=1) for k in stat_chunks[0]}
    attrs["n_grad_sampling"] = int(stats["n_grad"].sum())
    attrs["adapted_params"] = repr({k: np.asarray(v).tolist() if np.size(v) <= 16 else f"array{np.shape(v)}"
                                    for k, v in params.items()})
    attrs.update(times)
    _report_nonfinite(target, s, positions, stats, attrs)
    return to_datatree(target, positions, stats, warmup_positions=warm_pos, warmup_stats=warm_stats, attrs=attrs)


def _initial_positions(target, runner, chain_keys, init_positions, num_chains):
    if init_positions is None:
        positions = jax.jit(runner.init_positions)(chain_keys)
        bad = np.where(~np.all(np.isfinite(np.asarray(positions)), axis=1))[0]
        if bad.size:
            raise ValueError(
                f"target {target.name!r}: no finite log-density found for chain(s) {bad.tolist()} after "
                "repeated random initialisation; pass init_positions=... (shape (num_chains, dim)) or check the model"
            )
        return positions
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
    return positions


def _report_nonfinite(target, s, positions, stats, attrs):
    bad_lp = ~np.isfinite(stats["lp"]) if "lp" in stats else np.zeros(positions.shape[:2], bool)
    bad = bad_lp | ~np.all(np.isfinite(positions), axis=-1)
    attrs["n_nonfinite"] = int(bad.sum())
    if bad.any():
        chains = np.where(bad.any(axis=1))[0]
        first = [int(np.argmax(bad[c])) for c in chains]
        warnings.warn(
            f"{s.name} on {target.name!r}: {int(bad.sum())} draws have a non-finite log-density or position "
            f"(chains {chains.tolist()}, first at draws {first}). The draws are kept as they are, not repaired; "
            "check the model for regions where it is NaN/inf, or reduce the step size.",
            RuntimeWarning, stacklevel=3,
        )


# ---------------------------------------------------------------------------- checkpoints
def _save_checkpoint(path, s, seed, num_chains, thinning, states, params, draws, stats, t_done,
                     warm_pos, warm_stats, attrs, times):
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "version": CHECKPOINT_VERSION, "sampler": s.name, "settings": repr(s.settings), "seed": seed,
        "num_chains": num_chains, "thinning": thinning, "t_done": t_done,
        "states": jax.device_get(states), "params": jax.device_get(params),
        "positions": draws, "stats": stats, "warmup_positions": warm_pos, "warmup_stats": warm_stats,
        "attrs": {"n_grad_warmup": attrs.get("n_grad_warmup", 0)}, "times": dict(times),
    }
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "wb") as f:
        pickle.dump(payload, f)
    tmp.replace(path)  # atomic: a crash mid-write leaves the previous checkpoint intact


def _load_checkpoint(path, s, seed, num_chains, thinning, num_samples):
    path = pathlib.Path(path)
    if not path.exists():
        raise FileNotFoundError(f"resume: no checkpoint at {str(path)!r}")
    with open(path, "rb") as f:
        ck = pickle.load(f)
    if ck.get("version") != CHECKPOINT_VERSION:
        raise ValueError(f"resume: checkpoint {str(path)!r} has version {ck.get('version')}, expected {CHECKPOINT_VERSION}")
    for name, mine in (("sampler", s.name), ("settings", repr(s.settings)), ("seed", seed),
                       ("num_chains", num_chains), ("thinning", thinning)):
        if ck[name] != mine:
            raise ValueError(f"resume: checkpoint has {name}={ck[name]!r} but this call has {name}={mine!r}; "
                             "resume with the same settings")
    if ck["t_done"] > num_samples:
        raise ValueError(f"resume: checkpoint already holds {ck['t_done']} draws > num_samples={num_samples}")
    ck["states"] = jax.tree.map(jnp.asarray, ck["states"])
    ck["params"] = jax.tree.map(jnp.asarray, ck["params"])
    return ck
