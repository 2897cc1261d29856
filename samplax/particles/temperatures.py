"""Fixed annealing schedules 0 = beta_0 < ... < beta_S = 1, shared by tempered SMC settings (benchmarks) and the
initial annealing of CMCD / SCLD (`beta_init`)."""

from __future__ import annotations

import numpy as np


def linear(stages: int) -> np.ndarray:
    """beta_k = k / S."""
    return np.linspace(0.0, 1.0, _stages(stages, 1) + 1)


def cubic(stages: int) -> np.ndarray:
    """beta_k = (k / S)^3: dense near the reference, where log(pi~ / r) changes fastest when r is much wider than the
    target's modes."""
    return linear(stages) ** 3


def two_ended(stages: int, tail: float = 1e-3) -> np.ndarray:
    """(k / h)^3 / 2 up to 1/2 over the first h = S // 2 stages, then 1 - beta geometric from 1/2 towards `tail`,
    which it would reach at the last stage, beta_S = 1 instead (so the last beta before 1 is
    1 - (1/2) (2 tail)^((S - h - 1) / (S - h))): dense at both ends. A funnel's wide end opens only as beta -> 1: Funnel-10d's exact tempered share of v > 3
    (reference N(0, I)) is 0.034 at beta = 0.99, 0.074 at 0.997 and 0.159 at 1 (`samplax.models.funnel.tempered`),
    so (k / S)^3's last jump, 0.963 -> 1 at S = 80, leaves it empty."""
    stages = _stages(stages, 2)
    if not 0.0 < tail < 0.5:
        raise ValueError(f"tail must be in (0, 0.5), got {tail!r}")
    h = stages // 2
    head = cubic(h) * 0.5
    rest = 1.0 - 0.5 * np.geomspace(1.0, tail / 0.5, stages - h + 1)
    sch = np.concatenate([head[:-1], rest])
    sch[-1] = 1.0
    return sch


def _stages(stages, least: int) -> int:
    if isinstance(stages, bool) or not isinstance(stages, (int, np.integer)) or stages < least:
        raise ValueError(f"stages must be an integer >= {least}, got {stages!r}")
    return int(stages)
