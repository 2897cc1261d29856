"""Argument checks shared across samplax: each names the argument it refuses and what it must be."""

from __future__ import annotations

import math

import numpy as np


def integer(name: str, v, low: int) -> int:
    """`v` as an int when it is a Python / numpy integer (not a bool) >= `low`, else a ValueError naming `name`."""
    if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {v!r}")
    return int(v)


def positive(name: str, v) -> float:
    """`v` as a float when it is a positive finite number (not a bool), else a ValueError naming `name`."""
    if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) \
            or not (v > 0 and math.isfinite(v)):
        raise ValueError(f"{name} must be a positive finite number, got {v!r}")
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
