"""A per-stage tqdm bar for population samplers, fed from traced code by a host callback."""

from __future__ import annotations

import sys

import jax
import jax.numpy as jnp

_ACTIVE: list = []


def _dispatch(stage, value, ess):
    if _ACTIVE:
        _ACTIVE[-1]._host(stage, value, ess)


class StageProgress:
    """Shows the stage reached, the temperature / time there and the ESS; a no-op when disabled."""

    def __init__(self, enabled: bool, total: int, label: str, value_name: str):
        self.enabled, self.total, self.label, self.value_name = enabled, total, label, value_name
        self._bar = None

    @classmethod
    def create(cls, progress: bool | None, total: int, label: str, value_name: str) -> "StageProgress":
        if progress is None:
            progress = sys.stderr.isatty()
        return cls(bool(progress), total, label, value_name)

    def note(self, message: str) -> None:
        if self.enabled:
            print(message, file=sys.stderr, flush=True)

    def start(self) -> None:
        if self.enabled:
            from tqdm.auto import tqdm

            # an adaptive schedule has no known number of stages (total 0): count stages without a total
            self._bar = tqdm(total=self.total or None, desc=self.label, unit="stage", file=sys.stderr,
                             dynamic_ncols=True)
            _ACTIVE.append(self)

    def _host(self, stage, value, ess):
        if self._bar is None:
            return
        self._bar.n = int(stage) + 1 if not self.total else min(int(stage) + 1, self.total)
        self._bar.set_postfix({self.value_name: f"{float(value):.4g}", "ess": f"{float(ess):.0f}"}, refresh=False)
        self._bar.refresh()

    def update(self, stage, value, ess) -> None:
        """Call inside traced code once per stage (vmapped populations each report; the bar shows the last)."""
        if self.enabled:
            jax.debug.callback(_dispatch, stage, jnp.asarray(value), jnp.asarray(ess))

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
            if self in _ACTIVE:
                _ACTIVE.remove(self)
