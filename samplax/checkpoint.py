"""Checkpoints of a chain run: atomic files fingerprinted by target and run settings. Training checkpoints of the
learned diffusion samplers (`diffusion/learned/train.py`) carry the same target fingerprint, compared by the
same `refuse_mismatch`.

File layout: a magic line, a JSON header line (format version, samplax version, payload length and
sha256), then the pickled payload; a truncated, corrupt or foreign file is refused by name before
anything is unpickled.

A checkpoint records what made it (target: name, dim, variable shapes and the log-density's values at fixed
points; run: sampler name and every setting by content, seed, chains, thinning, warmup length, ...), and
`load` refuses to resume a call that differs in any of them, naming the field.
"""

from __future__ import annotations

import hashlib
import json
import pathlib
import pickle
import types

import jax
import jax.numpy as jnp
import numpy as np

from samplax import checks
from samplax.compile_cache import Uncacheable, array_digest, content_key
from samplax.target import Target

VERSION = 3
MAGIC = b"SAMPLAX-CHECKPOINT\n"


def _samplax_version() -> str:
    import importlib.metadata as md

    try:
        return md.version("samplax")
    except md.PackageNotFoundError:
        return "unknown"


def check_path(path, what: str) -> pathlib.Path:
    """Refuse, before any sampling, a checkpoint path that can never be a file."""
    path = pathlib.Path(path)
    if path.is_dir():
        raise ValueError(f"{what}: {str(path)!r} is a directory; give a file path, e.g. {str(path / 'run.ckpt')!r}")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise ValueError(f"{what}: {str(parent)!r} is a file, so {str(path)!r} cannot be created")
            break
    return path


def _fixed_points(dim: int) -> np.ndarray:
    """Three points every target of this dimension is evaluated at (zero, a ramp, a fixed normal draw)."""
    ramp = np.linspace(-0.5, 0.5, dim) if dim > 1 else np.array([0.3])
    noise = 0.7 * np.random.default_rng(20260101).standard_normal(dim)
    return np.stack([np.zeros(dim), ramp, noise])


def target_fingerprint(target: Target) -> dict:
    values = np.asarray(jax.vmap(target.logdensity)(jnp.asarray(_fixed_points(target.dim))), dtype=float)
    # 12 significant digits: the same log-density gives the same text however XLA fuses it
    text = ",".join(f"{v:.12g}" for v in values)
    # the float width before the log-density's values, which it changes: a resume under the other width is
    # refused naming it, not as another model
    return {"target": target.name, "dim": int(target.dim),
            "var_shapes": {k: list(v) for k, v in target.var_shapes.items()},
            "float": jnp.result_type(float).name,
            "logdensity": hashlib.sha256(text.encode()).hexdigest()[:16]}


def describe(value) -> str:
    """A setting's value as text that changes with its content (arrays by shape, dtype and a hash); a numpy or
    jax scalar as its Python number, so `np.float64(0.5)` resumes a run given 0.5."""
    value = checks.scalar(value)
    if isinstance(value, (np.ndarray, jax.Array)) or (isinstance(value, (list, tuple)) and np.size(value) > 16):
        try:
            a = np.asarray(value)
            return f"array{a.shape} {a.dtype} sha256:{array_digest(a)[:16]}"
        except (Uncacheable, ValueError, TypeError):
            pass
    if isinstance(value, Target):  # e.g. two_level's surrogate: its log-density's values at fixed points
        return f"Target {target_fingerprint(value)}"
    try:
        content_key(value)
    except Uncacheable:
        return f"<{type(value).__name__} {getattr(value, '__qualname__', '')}> {NOT_COMPARABLE}"
    return repr(value)


NOT_COMPARABLE = "(not comparable by content)"


def program_fingerprint(sampler, target: Target) -> str:
    """What a sampler that is not registered by name computes (a user's (init, step) pair, a blackjax
    SamplingAlgorithm, a built Sampler): its init and step traced for this target -- the jaxpr text, constants by
    hash (compile_cache's program digest). Such a sampler has no settings to compare, so a checkpoint compares
    this: a pair built with another step size traces to another program."""
    from samplax.compile_cache import _jaxpr_digest

    h, objects = hashlib.sha256(), []
    try:
        alg = sampler.build(target, sampler.initial_params(target))
        x = jax.ShapeDtypeStruct((target.dim,), jnp.result_type(float))
        key = jax.random.PRNGKey(0)
        state = jax.eval_shape(alg.init, x, key)
        _jaxpr_digest(h, objects, alg.init, x, key)
        _jaxpr_digest(h, objects, alg.step, key, state)
    except Exception:  # noqa: BLE001 - untraceable: not comparable, and resume refuses it
        return f"<{sampler.name} program> {NOT_COMPARABLE}"
    # the parameters the jaxpr text cannot show: library functions (jax's PRNG implementations, custom-derivative
    # rules) by their qualified name -- the library versions are recorded too -- and address-free objects (meshes,
    # shardings) by their text; anything else (a user's callback) compares by identity only, which a file cannot keep
    for o in objects:
        module = getattr(o, "__module__", None) or ""
        if isinstance(o, (types.FunctionType, types.BuiltinFunctionType)):
            if module.split(".")[0] not in _LIBRARIES:
                return f"<{sampler.name} program with a user function {o.__qualname__}> {NOT_COMPARABLE}"
            h.update(f"{module}.{o.__qualname__}".encode())
        elif type(o).__module__.split(".")[0] in _LIBRARIES and " at 0x" not in repr(o):
            h.update(f"{type(o).__qualname__}:{o!r}".encode())
        else:
            return f"<{sampler.name} program with an opaque part {type(o).__name__}> {NOT_COMPARABLE}"
    return f"sha256:{h.hexdigest()[:16]}"


_LIBRARIES = {"jax", "jaxlib", "numpy", "scipy", "blackjax", "numpyro", "optax", "equinox", "diffrax", "samplax"}


def run_fingerprint(sampler_name, sampler_settings: dict, user_settings: dict, *, seed, num_chains, thinning,
                    num_warmup, keep_warmup, init_positions) -> dict:
    fp = {"sampler": sampler_name, "seed": int(seed), "num_chains": int(num_chains), "thinning": int(thinning),
          "num_warmup": int(num_warmup), "keep_warmup": bool(keep_warmup),
          "init_positions": None if init_positions is None else describe(np.asarray(init_positions, float))}
    for k, v in sorted({**sampler_settings, **user_settings}.items()):
        fp[f"settings.{k}"] = describe(v)
    return fp


def refuse_mismatch(path, saved: dict, fingerprint: dict) -> None:
    """Refuse to resume from `path` if its fingerprint `saved` differs from this call's in any field, naming it, or
    if a field cannot be compared by content (a function samplax cannot read: equal text would prove nothing)."""
    for name in list(fingerprint) + [k for k in saved if k not in fingerprint]:
        if NOT_COMPARABLE in str(fingerprint.get(name)) or NOT_COMPARABLE in str(saved.get(name)):
            raise ValueError(f"resume: {name}={fingerprint.get(name)!r} cannot be compared by content, so whether "
                             f"this call's {name} is the one checkpoint {str(path)!r} was made with cannot be told; "
                             "resume refused (start a new run; a setting given as a number, an array or a Target "
                             "can be compared)")
        if saved.get(name) != fingerprint.get(name):
            raise ValueError(f"resume: checkpoint {str(path)!r} was made with {name}={saved.get(name)!r} but this call "
                             f"has {name}={fingerprint.get(name)!r}; resume with the same {name} (or start a new run)")


def save(path, *, fingerprint, states, params, draws, stats, t_done, warm_pos, warm_stats, n_grad_warmup, times,
         n_reverted_warmup=None):
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "version": VERSION, "fingerprint": fingerprint, "t_done": t_done,
        "states": jax.device_get(states), "params": jax.device_get(params),
        "positions": draws, "stats": stats, "warmup_positions": warm_pos, "warmup_stats": warm_stats,
        "n_grad_warmup": n_grad_warmup, "n_reverted_warmup": n_reverted_warmup, "times": dict(times),
    }
    body = pickle.dumps(payload)
    header = {"version": VERSION, "samplax": _samplax_version(), "length": len(body),
              "sha256": hashlib.sha256(body).hexdigest()}
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "wb") as f:
        f.write(MAGIC + json.dumps(header).encode() + b"\n" + body)
    tmp.replace(path)  # atomic: a crash mid-write leaves the previous checkpoint intact


def _read(path: pathlib.Path) -> dict:
    """The payload of a checkpoint file, after checking its magic, header, length and checksum."""
    raw = path.read_bytes()
    if not raw.startswith(MAGIC):
        raise ValueError(f"resume: {str(path)!r} is not a samplax checkpoint (no samplax header); "
                         "pass a file written by sample(..., checkpoint=...)")
    head, sep, body = raw[len(MAGIC):].partition(b"\n")
    try:
        header = json.loads(head)
    except ValueError:
        header = None
    if not sep or not isinstance(header, dict):
        raise ValueError(f"resume: checkpoint {str(path)!r} has a corrupt header; start a new run")
    if header.get("version") != VERSION:
        raise ValueError(f"resume: checkpoint {str(path)!r} has format version {header.get('version')}, expected "
                         f"{VERSION}; start a new run without resume=")
    if header.get("samplax") != _samplax_version():
        raise ValueError(f"resume: checkpoint {str(path)!r} was written by samplax {header.get('samplax')}, this is "
                         f"{_samplax_version()}; resume with the same version or start a new run")
    if len(body) != header.get("length"):
        raise ValueError(f"resume: checkpoint {str(path)!r} is truncated ({len(body)} of {header.get('length')} "
                         "payload bytes); resume from an earlier copy or start a new run")
    if hashlib.sha256(body).hexdigest() != header.get("sha256"):
        raise ValueError(f"resume: checkpoint {str(path)!r} is corrupt (checksum mismatch); start a new run")
    ck = pickle.loads(body)
    if not isinstance(ck, dict):
        raise ValueError(f"resume: checkpoint {str(path)!r} holds a {type(ck).__name__}, not a samplax run")
    return ck


def load(path, fingerprint: dict, num_samples: int) -> dict:
    path = check_path(path, "resume")
    if not path.exists():
        raise FileNotFoundError(f"resume: no checkpoint at {str(path)!r}")
    ck = _read(path)
    if ck.get("version") != VERSION:
        raise ValueError(f"resume: checkpoint {str(path)!r} has payload version {ck.get('version')}, expected "
                         f"{VERSION}; start a new run without resume=")
    refuse_mismatch(path, ck["fingerprint"], fingerprint)
    if ck["t_done"] > num_samples:
        raise ValueError(f"resume: checkpoint already holds {ck['t_done']} draws > num_samples={num_samples}")
    ck["states"] = jax.tree.map(jnp.asarray, ck["states"])
    ck["params"] = jax.tree.map(jnp.asarray, ck["params"])
    return ck
