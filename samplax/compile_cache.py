"""Compiled phases reused across `sample()` calls, keyed on the *content* of the sampler settings.

A notebook re-running a cell, or a test suite, compiles once per (target, sampler name, settings, run
lengths, shapes). Settings can be baked into a compiled program (e.g. an initial mass matrix a warmup
closes over), so the key must change whenever any setting's value does: arrays are keyed by shape, dtype and
a hash of their bytes (their repr elides entries beyond 1000 elements), containers recursively, and a setting
that cannot be keyed by content (a function, an arbitrary object) disables caching for that call.
"""

from __future__ import annotations

import hashlib
import time
import weakref

import jax
import jax.numpy as jnp
import numpy as np

from samplax.target import Target


class Uncacheable(TypeError):
    """A value whose content cannot be keyed (so a program depending on it must be compiled fresh)."""


def array_digest(x) -> str:
    a = np.ascontiguousarray(np.asarray(x))
    if a.dtype.kind not in "biufc":
        raise Uncacheable(f"array of dtype {a.dtype}")
    return hashlib.sha256(a.tobytes()).hexdigest()


def content_key(obj):
    """A hashable key equal for equal content; raises `Uncacheable` for anything it cannot key by content."""
    if obj is None or isinstance(obj, (bool, str, bytes)):
        return (type(obj).__name__, obj)
    if isinstance(obj, int):
        return ("int", int(obj))
    if isinstance(obj, float):
        return ("float", obj.hex())  # hex: exact, and NaN equals itself
    if isinstance(obj, complex):
        return ("complex", obj.real.hex(), obj.imag.hex())
    if isinstance(obj, (np.ndarray, np.generic, jax.Array)):
        if isinstance(obj, jax.core.Tracer):
            raise Uncacheable("a traced array")
        a = np.asarray(obj)
        return ("array", a.shape, a.dtype.str, array_digest(a))
    if isinstance(obj, (list, tuple)):
        return (type(obj).__module__, type(obj).__qualname__, tuple(content_key(v) for v in obj))
    if isinstance(obj, dict):
        items = [(content_key(k), content_key(v)) for k, v in obj.items()]
        return ("dict", tuple(sorted(items, key=repr)))
    raise Uncacheable(f"{type(obj).__name__} value")


_EXECUTABLES: "weakref.WeakKeyDictionary[Target, dict]" = weakref.WeakKeyDictionary()


def executable_cache(target: Target, sampler_arg, settings: dict, run_key: tuple) -> dict:
    """The dict of compiled phases for this call; a fresh, unshared dict when the call cannot be keyed."""
    if not isinstance(sampler_arg, str):
        return {}  # user objects: no reliable identity to key on
    try:
        key = (sampler_arg, content_key(settings), content_key(run_key))
    except Uncacheable:
        return {}
    return _EXECUTABLES.setdefault(target, {}).setdefault(key, {})


def compiled(cache: dict, key, fn, args):
    """Compile `fn` for `args` once per cache key; returns the executable and seconds spent compiling."""
    leaves, treedef = jax.tree.flatten(args)
    key = (key, str(treedef), tuple((jnp.shape(x), jnp.result_type(x)) for x in leaves))
    if key in cache:
        return cache[key], 0.0
    t0 = time.perf_counter()
    cache[key] = jax.jit(fn).lower(*args).compile()
    return cache[key], time.perf_counter() - t0
