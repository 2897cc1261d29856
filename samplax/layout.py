"""Chain layouts: how a chain-batched phase runs (vmap, one chain at a time, `lax.map`, or sharded over devices).

Every phase function maps over a leading chain axis with vmap and gets chain `c`'s own random stream
(`fold_in(key(seed), c)`, see `phases`), so all layouts consume the same random numbers. What can still
differ between layouts is floating-point rounding, because XLA compiles the same arithmetic differently for
different batch widths. The guarantee (README "Reproducibility" repeats it with measured numbers;
`tests/test_run.py` and `tests/test_layouts.py` pin it down):

1. A chain's draws are a function of (seed, chain index, settings) and of the rounding class of the program
   it runs in -- not of the other chains' values, the number of chains, chunking, checkpoints, devices or
   processes.
2. Batched programs of widths 1, 2 and 3 are one class: a lone chain runs beside a shadow copy of itself
   (`widening`), because XLA squeezes a width-1 batch axis and rewrites products and divisions. So
   "sequential", "vectorized" with up to 3 chains and "parallel" with up to 3 chains per device are bitwise
   identical. "parallel" runs, on each device, the vectorised program over that device's block (`shard_map`,
   no cross-device arithmetic); it matched the single-device programs bitwise in float64 once the
   dual-averaging update stopped dividing (`samplers/dual_averaging.py`).
3. From width 4 on, XLA's SIMD code rounds batched matrix products differently (models without them, e.g.
   eight schools, stay bitwise identical at every width).
4. "mapped" runs the unbatched program inside `lax.map` (no shadow copy, which would cost 2-3x): its own
   class, bitwise equal to "sequential" on some models, equal to rounding on others.
Across classes the draws agree to rounding at first; an adaptive NUTS warmup can amplify that into different
(equally valid) paths within tens of steps, and float32 makes it earlier.

`chain_method=None` picks the measured-faster method for the backend (`default_chain_method`).
Multi-process (`jax.distributed.initialize()` on every host first): "parallel" shards the chains over
every device of every process (`jax.devices()` is global), feeds each process's shards from the same
host values (every process computes the same chain keys and initial positions from the seed) and gathers
the outputs, so every process returns the same, complete draws; only process 0 writes files (`is_writer`).
The other methods run every chain in every process (redundantly, same draws).
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np

from samplax import checks
from samplax.compile_cache import compiled

CHAIN_METHODS = ("vectorized", "sequential", "parallel", "mapped")

# Measured (benchmarks/README.md "Chain methods on CPU"; NUTS, 4 chains): on CPU, NUTS under vmap runs every
# chain to the longest tree in the batch; `lax.map` runs each chain's own loop in one program, 2-3x faster
# (eight schools, 100-d Gaussian). On GPU/TPU the batch runs in parallel lanes, so vmap stays.
DEFAULT_CHAIN_METHOD = {"cpu": "mapped"}


def default_chain_method(backend: str | None = None) -> str:
    """The chain method `chain_method=None` resolves to on `backend` (default: `jax.default_backend()`)."""
    return DEFAULT_CHAIN_METHOD.get(backend or jax.default_backend(), "vectorized")


def resolve_chain_method(chain_method: str | None) -> str:
    return default_chain_method() if chain_method is None else chain_method


def check_chain_method(chain_method: str | None, num_chains: int) -> None:
    chain_method = resolve_chain_method(chain_method)
    if not checks.member(chain_method, CHAIN_METHODS):
        raise ValueError(f"chain_method must be None (the backend's default) or one of {CHAIN_METHODS}, "
                         f"got {chain_method!r}")
    if chain_method == "parallel" and num_chains % jax.device_count():
        where = (f"the {jax.device_count()} devices of {jax.process_count()} processes" if jax.process_count() > 1
                 else f"the {jax.device_count()} devices")
        raise ValueError(f"chain_method='parallel' needs num_chains divisible by {where}, got {num_chains}")


def is_writer() -> bool:
    """Whether this process writes files (checkpoints): process 0 only, so processes never race on one path."""
    return jax.process_index() == 0


def widening(batch: int) -> int:
    """Shadow copies per chain for a batch of `batch` chains (2 for a lone chain, else 1).

    XLA squeezes a width-1 batch axis and then rewrites products and divisions differently from a
    batched program, so a lone chain runs beside a shadow copy of itself: widths 1, 2 and 3 then give
    bitwise identical draws. From width 4 on, XLA's SIMD path rounds batched matrix products
    differently (same random streams; draws agree to rounding). See the module docstring.
    """
    return 2 if batch == 1 else 1


def _mesh():
    from jax.sharding import Mesh

    return Mesh(np.array(jax.devices()), ("chain",))


def _global(tree, sharding):
    """Place host-side values as (global) arrays with `sharding`; each process supplies its own shards."""
    if jax.process_count() == 1:
        return jax.tree.map(lambda x: jax.device_put(x, sharding), tree)

    def one(x):
        x = np.asarray(x)
        return jax.make_array_from_callback(x.shape, sharding, lambda idx: x[idx])

    return jax.tree.map(one, tree)


def shard_chains(tree):
    """Place the leading chain axis across all (global) devices; divisibility is checked in `check_chain_method`."""
    from jax.sharding import NamedSharding, PartitionSpec

    return _global(tree, NamedSharding(_mesh(), PartitionSpec("chain")))


def _sharded(fn, n_args: int, n_shared: int):
    """`fn` run by every device on its own block of chains (no cross-device arithmetic)."""
    from jax.sharding import PartitionSpec

    spec = PartitionSpec("chain")
    return jax.shard_map(fn, mesh=_mesh(), in_specs=(spec,) * n_args + (PartitionSpec(),) * n_shared,
                         out_specs=spec, check_vma=False)  # user code need not annotate varying values


def _mapped(fn, n_args: int, k: int):
    """`fn` run chain by chain with `lax.map` inside one program, each chain as a batch of k copies.

    k = 1 ("mapped"): the unbatched program, the fastest on CPU (README "Reproducibility": no shadow copy,
    so it is its own rounding class); k = 2 would reproduce "sequential" bitwise at 2-3x the run time."""

    def prog(*xs):
        args, shared = xs[:n_args], xs[n_args:]

        def one(chain_args):
            wide = jax.tree.map(lambda x: jnp.repeat(x[None], k, axis=0), chain_args)
            return jax.tree.map(lambda y: y[0], fn(*wide, *shared))

        return jax.lax.map(one, args)

    return prog


class Layout:
    """Runs phases under one chain method, compiling each through `cache` and adding up compile seconds."""

    def __init__(self, chain_method: str | None, num_chains: int, cache: dict, note=None):
        self.chain_method, self.num_chains, self.cache = resolve_chain_method(chain_method), num_chains, cache
        self.compile_time = 0.0
        self.note = note  # message -> None: says when a program is being compiled (the progress bar's note)

    def run(self, name, fn, *args, shared=()):
        """`fn(*args, *shared)` with a leading chain axis on `args`; returns (output, seconds running)."""
        method, n = self.chain_method, self.num_chains
        if method == "mapped":
            return self._call(name, _mapped(fn, len(args), 1), (*args, *shared), 1)
        if method == "sequential":
            outs, run_time = [], 0.0
            for c in range(n):
                part = jax.tree.map(lambda x: x[c:c + 1], args)
                out, t = self._call(name, fn, (*self._widen(part, 2), *shared), 2)
                outs.append(out)
                run_time += t
            return jax.tree.map(lambda *xs: jnp.concatenate(xs), *outs), run_time
        if method == "parallel":
            from jax.sharding import NamedSharding, PartitionSpec

            k = widening(n // jax.device_count())
            part = shard_chains(self._widen(args, k))
            rest = _global(shared, NamedSharding(_mesh(), PartitionSpec()))
            return self._call(name, _sharded(fn, len(args), len(shared)), (*part, *rest), k)
        k = widening(n)
        return self._call(name, fn, (*self._widen(args, k), *shared), k)

    @staticmethod
    def _widen(tree, k):
        return jax.tree.map(lambda x: jnp.repeat(x, k, axis=0), tree) if k > 1 else tree

    def _call(self, name, fn, args, k):
        """Compile (cached) and run; drop the shadow copies; gather across processes. -> (output, seconds)."""
        phase = name[0] if isinstance(name, tuple) else name
        say = None if self.note is None else (lambda: self.note(f"  compiling the {phase} program ..."))
        exe, tc = compiled(self.cache, name, fn, args, before=say)
        if tc and self.note is not None:
            self.note(f"  compiled the {phase} program in {tc:.1f} s")
        self.compile_time += tc
        t0 = time.perf_counter()
        out = jax.block_until_ready(exe(*args))
        run_time = time.perf_counter() - t0
        if jax.process_count() > 1 and self.chain_method == "parallel":
            from jax.experimental import multihost_utils

            out = multihost_utils.process_allgather(out, tiled=True)
        return (jax.tree.map(lambda x: x[::k], out) if k > 1 else out), run_time
