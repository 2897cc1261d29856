"""Argument checks shared across samplax: each names the argument it refuses and what it must be."""

from __future__ import annotations

import math

import numpy as np


def integer(name: str, v, low: int) -> int:
    """`v` as an int when it is a Python / numpy integer or a 0-d integer array (a value read back from a run),
    not a bool, >= `low`; else a ValueError naming `name`."""
    v = scalar(v)
    if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {v!r}")
    return int(v)


MAX_SEED = 2**32


def seed(v, name: str = "seed") -> int:
    """`v` as an int when it is a Python / numpy integer (not a bool) in [0, 2**32), else a ValueError naming it."""
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)) or not 0 <= v < MAX_SEED:
        raise ValueError(f"{name} must be an integer in [0, 2**32) (a Python or numpy int), got {v!r}")
    return int(v)


def flag(name: str, v) -> bool:
    """`v` as a bool when it is True / False (a numpy bool too), else a ValueError naming `name`: 'no', 0 or None
    would otherwise be read as truthy or falsy and do what the user did not write."""
    if not isinstance(v, (bool, np.bool_)):
        raise ValueError(f"{name} must be True or False, got {v!r}")
    return bool(v)


def is_real(v) -> bool:
    """Whether `v` is a Python / numpy real number that is not a bool (a string, an array or None is not)."""
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)


def scalar(v):
    """A 0-d numpy / jax array of numbers or bools as its Python value (so `np.float32(2)` and `jnp.asarray(2.0)` pass as
    numbers); anything else, a traced value included, unchanged."""
    import jax

    if isinstance(v, jax.core.Tracer):
        return v
    if getattr(v, "ndim", None) == 0 and hasattr(v, "item") and getattr(getattr(v, "dtype", None), "kind", "") in "biuf":
        return v.item()
    return v


def positive(name: str, v) -> float:
    """`v` as a float when it is a positive finite number (not a bool), else a ValueError naming `name`."""
    v = scalar(v)
    if not is_real(v) or not (v > 0 and math.isfinite(v)):
        raise ValueError(f"{name} must be a positive finite number, got {v!r}")
    return float(v)


def finite(name: str, v) -> float:
    """`v` as a float when it is a finite real number (not a bool), else a ValueError naming `name`."""
    v = scalar(v)
    if not is_real(v) or not math.isfinite(v):
        raise ValueError(f"{name} must be a finite number, got {v!r}")
    return float(v)


def member(v, choices) -> bool:
    """`v in choices`, but False for what cannot be one of a set of names or numbers: an array with a shape, a list,
    a dict or anything unhashable (where `in` would raise numpy's "truth value ... is ambiguous" or "unhashable
    type" instead of the caller's message naming the argument)."""
    if isinstance(v, (list, dict, set)) or getattr(v, "ndim", 0) != 0:
        return False
    try:
        return bool(v in choices)
    except (TypeError, ValueError):
        return False


def _floats(v, refusal: str):
    """`v` as a float array, None for a traced value (checked where it was made), else a ValueError `refusal`."""
    import jax

    if isinstance(v, jax.core.Tracer):
        return None
    try:
        return np.asarray(v, dtype=float)
    except (TypeError, ValueError):
        raise ValueError(refusal) from None


def given_scale(name: str, v):
    """A given step_size / L / friction (None: adapted or defaulted): one positive finite number (a Python or numpy
    number, or a 0-d array), shared by every chain. Arrays are refused: the run gives every chain the whole value,
    so a (d,) array would silently become per-coordinate and a (num_chains,) one would not broadcast. Returned
    unchanged: the run uses it as given."""
    refusal = f"{name} must be a positive finite number (or None to adapt it), got {v!r}"
    a = None if v is None else _floats(v, refusal)
    if a is not None and a.ndim != 0:
        what = "step sizes" if name == "step_size" else f"{name} values"
        raise ValueError(f"{name} must be a number; per-chain (or per-coordinate) {what} are not supported: pass one "
                         f"number shared by all chains, or None to adapt it (got an array of shape {a.shape})")
    if a is not None and (isinstance(v, (bool, np.bool_)) or a.size == 0 or not np.all(np.isfinite(a))
                          or not np.all(a > 0)):
        raise ValueError(refusal)
    return v


def given_inverse_mass_matrix(v, name: str = "inverse_mass_matrix"):
    """A given inverse mass matrix (None: adapted or the identity): finite; a diagonal (d,) positive in every entry,
    a dense (d, d) symmetric positive definite. The shape against the target is the sampler's check. Returned
    unchanged."""
    a = None if v is None else _floats(v, f"{name} must be a (d,) or (d, d) array of numbers, got {v!r}")
    if a is None:
        return v
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} has non-finite entries ({int(np.sum(~np.isfinite(a)))} of {a.size}): a mass "
                         "matrix must be finite")
    if a.ndim == 1 and not np.all(a > 0):
        bad = np.flatnonzero(a <= 0)
        raise ValueError(f"{name} (diagonal) must be positive in every entry; entries {bad[:5].tolist()} are "
                         f"{a[bad[:5]].tolist()}")
    if a.ndim == 2 and a.shape[0] == a.shape[1] and a.size:
        if not np.allclose(a, a.T, rtol=0.0, atol=1e-8 * max(np.max(np.abs(a)), 1e-300)):
            raise ValueError(f"{name} (dense) must be symmetric; max |C - C^T| = {np.max(np.abs(a - a.T)):.3g}")
        try:
            np.linalg.cholesky(a)
        except np.linalg.LinAlgError:
            raise ValueError(f"{name} (dense) must be positive definite; its smallest eigenvalue is "
                             f"{np.linalg.eigvalsh(a)[0]:.3g}") from None
    return v
