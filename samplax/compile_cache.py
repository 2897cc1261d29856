"""Compiled phases reused across `sample()` calls, keyed on the *content* of the sampler settings.

A notebook re-running a cell, or a test suite, compiles once per (target program, sampler name, settings,
layout, shapes); run lengths are runtime values (see `phases.Phases.chunk`), and a new Target of the same
model and data is recognised by the content of its traced program (`program_digest`). Settings can be baked
into a compiled program (e.g. an initial mass matrix a warmup closes over), so the key must change whenever
any setting's value does: arrays are keyed by shape, dtype and a hash of their bytes (their repr elides
entries beyond 1000 elements), containers recursively, and a setting that cannot be keyed by content (a
function, an arbitrary object) disables caching for that call.
"""

from __future__ import annotations

import collections
import enum
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


# Programs per target: each Target keeps its own while it lives (weakly keyed, so a long-lived Target is never
# evicted); a new Target whose log-density and init trace to the same program (jaxpr text, constants by hash)
# as one of the last MAX_TARGETS digests seen is handed that Target's programs.
MAX_TARGETS = 16
_BY_CONTENT: "collections.OrderedDict[tuple, dict]" = collections.OrderedDict()
_BY_OBJECT: "weakref.WeakKeyDictionary[Target, dict]" = weakref.WeakKeyDictionary()
_DIGESTS: "weakref.WeakKeyDictionary[Target, tuple | None]" = weakref.WeakKeyDictionary()


_PRINTED = (int, float, complex, bool, str, bytes, type(None), np.dtype, np.generic, enum.Enum)


def _hash_consts(h, consts) -> None:
    for c in consts:
        a = np.asarray(c)
        h.update(repr((a.shape, a.dtype.str)).encode())
        h.update(array_digest(a).encode())


def _walk(jaxpr, h, objects: list) -> None:
    """Hash every equation parameter (the jaxpr text need not show them all) and the constants of inner closed
    jaxprs; collect the opaque parameters (callbacks, custom-derivative rules, meshes, ...) to be compared by
    their own equality."""
    from jax.extend.core import ClosedJaxpr, Jaxpr

    def param(v):
        if isinstance(v, ClosedJaxpr):
            _hash_consts(h, v.consts)
            _walk(v.jaxpr, h, objects)
        elif isinstance(v, Jaxpr):
            _walk(v, h, objects)
        elif isinstance(v, (tuple, list)):
            for x in v:
                param(x)
        elif isinstance(v, _PRINTED):  # hashed here too: the pretty-printer may leave some parameters out
            h.update(repr((type(v).__name__, v)).encode())
        else:
            hash(v)  # an unhashable parameter: no content key (TypeError -> keyed by object)
            objects.append(v)

    for eqn in jaxpr.eqns:
        for name, v in sorted(eqn.params.items()):
            h.update(f"{eqn.primitive.name}.{name}".encode())
            param(v)


def _jaxpr_digest(h, objects: list, fn, *args) -> None:
    closed = jax.make_jaxpr(fn)(*args)
    h.update(str(closed.jaxpr).encode())
    _hash_consts(h, closed.consts)
    _walk(closed.jaxpr, h, objects)


def program_digest(target: Target):
    """A key for what the compiled phases take from `target`: its dimension, the float width and the traced
    programs of `logdensity` and `init` -- the jaxpr text, every constant (e.g. the data) by hash, and the
    parameters the text cannot show (callbacks, custom-derivative rules) as objects compared by their own
    equality (a Python callback is equal only to itself, so a target with callbacks never shares programs
    with another). None when they cannot be traced or the target carries state the trace does not show
    (`info["minibatch"]`, used by sgld). Equal keys mean the same computation, so compiled programs are
    interchangeable. Memoised per Target."""
    if target in _DIGESTS:
        return _DIGESTS[target]
    key = None
    if "minibatch" not in target.info:
        try:
            h, objects = hashlib.sha256(repr((target.dim, jnp.result_type(float).str)).encode()), []
            _jaxpr_digest(h, objects, target.logdensity,
                          jax.ShapeDtypeStruct((target.dim,), jnp.result_type(float)))
            _jaxpr_digest(h, objects, target.init, jax.random.PRNGKey(0))
            key = (h.hexdigest(), tuple(objects))
        except Exception:  # noqa: BLE001 - anything untraceable or unhashable is keyed by object identity
            key = None
    _DIGESTS[target] = key
    return key


def _target_programs(target: Target) -> dict:
    """The programs of `target`: its own as long as it lives (weakly keyed), shared with every other Target of
    the same program digest while that digest is among the last MAX_TARGETS seen."""
    if target in _BY_OBJECT:
        return _BY_OBJECT[target]
    digest = program_digest(target)
    slot = _BY_CONTENT.get(digest, {}) if digest is not None else {}
    _BY_OBJECT[target] = slot
    if digest is not None:
        _BY_CONTENT[digest] = slot
        _BY_CONTENT.move_to_end(digest)
        while len(_BY_CONTENT) > MAX_TARGETS:
            _BY_CONTENT.popitem(last=False)
    return slot


def executable_cache(target: Target, sampler_arg, settings: dict, run_key: tuple) -> dict:
    """The dict of compiled phases for this call; a fresh, unshared dict when the call cannot be keyed."""
    if not isinstance(sampler_arg, str):
        return {}  # user objects: no reliable identity to key on
    try:
        key = (sampler_arg, content_key(settings), content_key(run_key))
    except Uncacheable:
        return {}
    return _target_programs(target).setdefault(key, {})


def compiled(cache: dict, key, fn, args, before=None):
    """Compile `fn` for `args` once per cache key; returns the executable and seconds spent compiling.
    before: called (no arguments) just before a compilation, not on a cache hit."""
    leaves, treedef = jax.tree.flatten(args)
    key = (key, str(treedef), tuple((jnp.shape(x), jnp.result_type(x)) for x in leaves))
    if key in cache:
        return cache[key], 0.0
    if before is not None:
        before()
    t0 = time.perf_counter()
    cache[key] = jax.jit(fn).lower(*args).compile()
    return cache[key], time.perf_counter() - t0
