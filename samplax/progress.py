"""A vmap-safe tqdm bar fed from inside `lax.scan` by a host callback every k draws."""

from __future__ import annotations

import sys

import jax
import jax.numpy as jnp
import numpy as np


_ACTIVE: list = []  # the bar currently shown; compiled callbacks reach it through _dispatch


def _dispatch(draw, acc, n_div):
    if _ACTIVE:
        _ACTIVE[-1]._host(draw, acc, n_div)


class Progress:
    """Live draw count, mean acceptance and divergences; a no-op when disabled."""

    def __init__(self, enabled: bool, total: int, label: str, updates: int = 50):
        self.enabled, self.total, self.label = enabled, total, label
        self.every = max(1, total // updates)
        self._bar = None
        self._last = -1

    @classmethod
    def create(cls, progress: bool | None, total: int, label: str) -> "Progress":
        if progress is None:
            progress = sys.stderr.isatty()
        return cls(bool(progress), total, label)

    def note(self, message: str) -> None:
        if self.enabled:
            print(message, file=sys.stderr, flush=True)

    def start(self, initial: int = 0) -> None:
        if self.enabled:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=self.total, initial=initial, desc=f"{self.label} sampling", file=sys.stderr,
                             dynamic_ncols=True)
            _ACTIVE.append(self)

    def _host(self, draw, acc, n_div):
        bar = self._bar
        if bar is None:
            return
        draw = int(draw)
        if draw < self._last:  # sequential chains: next chain starts over
            bar.reset()
        self._last = draw
        bar.n = min(draw + 1, self.total)
        post = {"div": int(n_div)}
        if not np.isnan(acc):
            post = {"acc": f"{float(acc):.2f}", **post}
        bar.set_postfix(post, refresh=False)
        bar.refresh()

    def runtime_args(self):
        """(period, last draw) of the callbacks, passed to compiled code as values so that a program compiled
        for one run length serves every other."""
        return jnp.asarray([self.every, self.total - 1], jnp.int32)

    def update(self, draw, acceptance, n_div, every, last) -> None:
        """Called inside traced code; emits a callback on every `every`-th draw and on draw `last`."""
        if not self.enabled:
            return
        acc = jnp.nan if acceptance is None else jnp.mean(acceptance)
        show = (draw % every == 0) | (draw == last)
        jax.lax.cond(show, lambda: jax.debug.callback(_dispatch, draw, acc, n_div), lambda: None)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.n = self.total
            self._bar.refresh()
            self._bar.close()
            self._bar = None
            if self in _ACTIVE:
                _ACTIVE.remove(self)
