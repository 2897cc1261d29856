"""Dual averaging of the log step size (Hoffman & Gelman 2014, sec. 3.2.1), written so XLA compiles it alike
in every chain layout.

Same algorithm, defaults and state (`DualAveragingAdaptationState`) as blackjax's `dual_averaging_adaptation`.
The one change: blackjax updates the average error as `(1 - 1/(t+t0)) * avg + g / (t+t0)`, and XLA may or may
not rewrite `g / (t+t0)` into `g * (1/(t+t0))` (reusing the reciprocal), depending on the surrounding program:
a device-sharded (SPMD) program kept the division while the single-device one rewrote it, so "parallel" and
"vectorized" chains took step sizes differing in the last bit after a few warmup steps, which NUTS amplified to
different draws within tens of steps. Here the reciprocal is computed once and only multiplied, which leaves
XLA nothing to rewrite (see samplax/layout.py and tests/test_layouts.py).
"""

from __future__ import annotations

import jax.numpy as jnp
from blackjax.adaptation.step_size import DualAveragingAdaptationState


def dual_averaging_adaptation(target: float, t0: int = 10, gamma: float = 0.05, kappa: float = 0.75):
    """(init(step_size), update(state, acceptance_rate), final(state) -> step size), as blackjax's."""

    def init(step_size) -> DualAveragingAdaptationState:
        return DualAveragingAdaptationState(jnp.log(step_size), 0.0, 1, 0.0, jnp.log(10 * step_size))

    def update(state: DualAveragingAdaptationState, acceptance_rate) -> DualAveragingAdaptationState:
        log_step, avg_log_step, step, avg_error, mu = state
        gradient = target - acceptance_rate
        w = 1.0 / (step + t0)  # the only division: multiplied below, never divided by
        eta = step ** (-kappa)
        avg_error = (1 - w) * avg_error + gradient * w
        log_x = mu - (jnp.sqrt(step) / gamma) * avg_error
        log_x_avg = eta * log_step + (1 - eta) * avg_log_step
        return DualAveragingAdaptationState(log_x, log_x_avg, step + 1, avg_error, mu)

    def final(state: DualAveragingAdaptationState):
        return jnp.exp(state.log_step_size_avg)

    return init, update, final
