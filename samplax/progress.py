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
    """Live draw count, mean acceptance and divergences; a no-op when disabled.

    The bar counts draws over all chains when the layout runs chains one after another (`passes` > 1: the
    "mapped" CPU default and "sequential"), so it advances steadily instead of restarting per chain; it is
    created at the first draw, so its rate and ETA leave out the compilation before it."""

    def __init__(self, enabled: bool, total: int, label: str, updates: int = 50):
        self.enabled, self.total, self.label = enabled, total, label
        self.every = max(1, total // updates)
        self._bar = None
        self._last = None
        self._passes, self._done, self._t0 = 1, 0, 0

    @classmethod
    def create(cls, progress: bool | None, total: int, label: str) -> "Progress":
        if progress is None:
            progress = sys.stderr.isatty()
        return cls(bool(progress), total, label)

    def note(self, message: str) -> None:
        if self.enabled:
            print(message, file=sys.stderr, flush=True)

    def start(self, initial: int = 0, passes: int = 1) -> None:
        """Show draws from `initial` (a resumed run) on; `passes`: chains run one after another."""
        if self.enabled:
            self._passes, self._done = passes, initial * passes
            _ACTIVE.append(self)

    def begin_chunk(self, t0: int) -> None:
        """The next compiled call draws from index t0 (in every chain)."""
        self._t0, self._last = t0, None

    def _host(self, draw, acc, n_div):
        if not self.enabled or self not in _ACTIVE:
            return
        if self._bar is None:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=self.total * self._passes, initial=self._done, desc=f"{self.label} sampling",
                             unit="draw", file=sys.stderr, dynamic_ncols=True)
        draw = int(draw)
        # a draw not above the last one seen: the next chain of this chunk started (at the chunk's first index)
        self._done += draw - (self._t0 - 1 if self._last is None or draw <= self._last else self._last)
        self._last = draw
        bar = self._bar
        bar.n = min(self._done, self.total * self._passes)
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
            self._bar.n = min(self._done, self._bar.total)
            self._bar.refresh()
            self._bar.close()
            self._bar = None
        if self in _ACTIVE:
            _ACTIVE.remove(self)
