"""Chain layouts: run a chain-batched phase vectorised (vmap), one chain at a time, or sharded over devices."""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np

from samplax.compile_cache import compiled

CHAIN_METHODS = ("vectorized", "sequential", "parallel")


def check_chain_method(chain_method: str, num_chains: int) -> None:
    if chain_method not in CHAIN_METHODS:
        raise ValueError(f"chain_method must be one of {CHAIN_METHODS}, got {chain_method!r}")
    if chain_method == "parallel" and num_chains % jax.device_count():
        raise ValueError(f"chain_method='parallel' needs num_chains divisible by the {jax.device_count()} devices, "
                         f"got {num_chains}")


def widening(batch: int) -> int:
    """Shadow copies per chain for a batch of one chain.

    XLA squeezes a width-1 batch axis and then rewrites products and divisions differently from
    a batched program, so a lone chain runs beside a shadow copy of itself. With that, sequential
    and vectorised runs give bitwise identical draws for up to 3 chains; from 4 chains on, XLA's
    SIMD code path rounds batched matrix products differently, so draws agree to rounding (same
    random streams) and may drift apart over long trajectories. See README "Reproducibility".
    """
    return 2 if batch == 1 else 1


def shard_chains(tree):
    """Place the leading chain axis across devices (divisibility is checked in `check_chain_method`)."""
    from jax.sharding import Mesh, NamedSharding, PartitionSpec

    mesh = Mesh(np.array(jax.devices()), ("chain",))
    sharding = NamedSharding(mesh, PartitionSpec("chain"))
    return jax.tree.map(lambda x: jax.device_put(x, sharding), tree)


class Layout:
    """Runs phases under one chain method, compiling each through `cache` and adding up compile seconds."""

    def __init__(self, chain_method: str, num_chains: int, cache: dict):
        self.chain_method, self.num_chains, self.cache = chain_method, num_chains, cache
        self.compile_time = 0.0

    def run(self, name, fn, *args, shared=()):
        """`fn(*args, *shared)` with a leading chain axis on `args`; returns (output, seconds running)."""
        method, n = self.chain_method, self.num_chains
        parts = [jax.tree.map(lambda x: x[c:c + 1], args) for c in range(n)] if method == "sequential" else [args]
        per_device = 1 if method == "sequential" else n // (jax.device_count() if method == "parallel" else 1)
        k = widening(per_device)
        outs, run_time = [], 0.0
        for part in parts:
            if k > 1:
                part = jax.tree.map(lambda x: jnp.repeat(x, k, axis=0), part)
            if method == "parallel":
                part = shard_chains(part)
            exe, tc = compiled(self.cache, name, fn, (*part, *shared))
            self.compile_time += tc
            t0 = time.perf_counter()
            out = jax.block_until_ready(exe(*part, *shared))
            run_time += time.perf_counter() - t0
            outs.append(jax.tree.map(lambda x: x[::k], out) if k > 1 else out)
        if len(outs) == 1:
            return outs[0], run_time
        return jax.tree.map(lambda *xs: jnp.concatenate(xs), *outs), run_time
