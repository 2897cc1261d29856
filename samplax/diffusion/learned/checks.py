"""Shared by the learned samplers' training functions: setting checks (each names the setting it refuses), the
loss check and the progress bar."""

from __future__ import annotations

import math
import sys

import numpy as np


def integer(name: str, v, low: int) -> int:
    if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {v!r}")
    return int(v)


def positive(name: str, v) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) \
            or not (v > 0 and math.isfinite(v)):
        raise ValueError(f"{name} must be a positive finite number, got {v!r}")
    return float(v)


def finite_loss(value, iteration: int, what: str, advice: str) -> float:
    """The loss as a float; a NaN / inf loss stops training, naming the iteration and what to change."""
    value = float(value)
    if not math.isfinite(value):
        raise FloatingPointError(f"{what} training: loss is {value} at iteration {iteration}; {advice}")
    return value


def training_bar(progress, total: int, desc: str, initial: int = 0):
    """A tqdm bar on stderr for `total` iterations when `progress` (None: when stderr is a terminal), else None."""
    show = sys.stderr.isatty() if progress is None else bool(progress)
    if not show or not total:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc=desc, file=sys.stderr, dynamic_ncols=True)
