"""Shared by the learned samplers' training functions: the loss check and the progress bar (their setting checks
are `samplax.checks`)."""

from __future__ import annotations

import math
import sys


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
