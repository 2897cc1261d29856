"""Shared by the learned samplers' training functions: the loss check and the progress bar (their setting checks
are `samplax.checks`)."""

from __future__ import annotations

import math
import sys


def finite_loss(value, iteration: int, what: str, advice: str, log_w=None) -> float:
    """The loss as a float; a NaN / inf loss stops training, naming the iteration and what to change.

    log_w: the batch's log-weights (any shape; read only when the loss is not finite). When some are -inf or NaN the
    message counts them and says why: a log-density of -inf (or NaN) where paths end, i.e. a target with bounded
    support, which no learning rate or clip fixes."""
    value = float(value)
    if not math.isfinite(value):
        msg = f"{what} training: loss is {value} at iteration {iteration}; "
        if log_w is not None:
            import numpy as np

            lw = np.asarray(log_w, dtype=float)
            n_inf, n_nan = int(np.sum(np.isneginf(lw))), int(np.sum(np.isnan(lw)))
            if n_inf or n_nan:
                raise FloatingPointError(
                    msg + f"{n_inf} of the batch's {lw.size} log-weights are -inf and {n_nan} NaN (log-densities of "
                    "-inf / NaN where paths end: points outside the target's support). A target with bounded "
                    "support must be given in unconstrained coordinates (e.g. y = log x for x > 0, with the "
                    "log-Jacobian added), so that its log-density is finite everywhere")
        raise FloatingPointError(msg + advice)
    return value


def training_bar(progress, total: int, desc: str, initial: int = 0):
    """A tqdm bar on stderr for `total` iterations when `progress` (None: when stderr is a terminal), else None."""
    show = sys.stderr.isatty() if progress is None else bool(progress)
    if not show or not total:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc=desc, file=sys.stderr, dynamic_ncols=True)
