"""nutpie's warmup (Seyboldt, Carlson & Carpenter; nuts-rs `adapt_strategy.rs`) for any HMC-family Sampler: the
gradient-based low-rank (or Fisher-diagonal) inverse mass matrix over growing windows, the step size by dual
averaging.

What it takes from blackjax 1.7 (`blackjax.adaptation.low_rank_adaptation` and its pieces):
- the schedule, `build_growing_window_schedule` (nutpie's: every step up to the last 15% adapts the metric;
  windows of 10 steps over the first 30%, then 80 steps growing x1.5, the last one absorbing the rest
  (nuts-rs' `is_late` rule));
- the estimator, `_compute_low_rank_metric` (C = diag(s) (I + U (diag(lam) - 1) U^T) diag(s): s = (Var x /
  Var grad)^(1/4), then the SPD mean Cov(x) # Cov(grad)^-1 in the span of the top principal directions of the
  scaled draws and gradients, eigenvalues in [1/2, 2] set to 1), on nutpie's partial-forget buffer (a window
  switch drops only the window before the last one, `_shift_buffer_left`, sized by
  `_accumulating_buffer_capacity`). blackjax's accumulating core is not used as is: it decides per chain whether
  to recompute, and under vmap (every samplax layout batches chains) a `cond` on a per-chain value runs both
  branches, i.e. the SVDs at every step (measured: 265 s of warmup on diamonds instead of ~15 s). Here the
  recompute steps are static: every window switch (and every `recompute_every` adapting steps if asked);
- the gradient-based start, `seed_low_rank_sigma_from_grad` (C = 1 / |grad| at the initial point).

What it does as nuts-rs does and blackjax's `window_adaptation_low_rank` does not:
- one dual averaging for the whole warmup, restarted once, at the first metric switch, from the step size then
  in use (nuts-rs re-initialises it once, after the first mass-matrix change; blackjax restarts at every
  window end, i.e. every 10 steps in the early phase), the step capped at pi (nuts-rs `max_step_size`);
- a draw that did not move (a rejected / zero-length trajectory) is not added to the buffer (nuts-rs
  `DrawGradCollector.is_good`);
- the chain continues from its last warmup state (blackjax restarts it at the estimated centre mu*, a point
  estimate that can be atypical, e.g. the neck of a funnel; the translation does not change HMC's dynamics).

The loop runs samplax's `build` / `stats` pair, so the warmup trace and its `n_grad` are the kernel's own counts:
the only gradient outside the steps is the initial state's, the one the gradient-based start reuses.
`max_rank=0` is the Fisher diagonal (nutpie's default metric) on the same schedule.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from blackjax.adaptation.low_rank_adaptation import _accumulating_buffer_capacity, build_growing_window_schedule
from blackjax.adaptation.metric_estimators import _compute_low_rank_metric
from blackjax.adaptation.metric_recipes import _shift_buffer_left, seed_low_rank_sigma_from_grad
from blackjax.mcmc.metrics import LowRankInverseMassMatrix

from samplax.samplers.base import Warmup
from samplax.samplers.dual_averaging import dual_averaging_adaptation

MAX_STEP_SIZE = float(np.pi)  # nuts-rs DualAverageOptions.max_step_size
LOW_RANK_KEYS = ("metric_sigma", "metric_U", "metric_lam")


def metric_params(imm: LowRankInverseMassMatrix, max_rank: int) -> dict:
    """The params entries for a metric: `inverse_mass_matrix` (d,) for the diagonal (max_rank 0), else the three
    low-rank factors (flat arrays, so each chain carries its own under vmap and the run records them)."""
    if max_rank == 0:
        return {"inverse_mass_matrix": imm.sigma**2}
    return {"metric_sigma": imm.sigma, "metric_U": imm.U, "metric_lam": imm.lam}


def inverse_mass_matrix(params: dict):
    """What blackjax's kernels take: a `LowRankInverseMassMatrix` from the low-rank factors, else the array."""
    if "metric_sigma" in params:
        return LowRankInverseMassMatrix(params["metric_sigma"], params["metric_U"], params["metric_lam"])
    return params["inverse_mass_matrix"]


def effective_rank(max_rank: int | None, dim: int) -> int:
    """`max_rank` capped at the dimension (None: the full dimension up to 32)."""
    return min(dim, 32) if max_rank is None else min(int(max_rank), dim)


class _Buffer(NamedTuple):
    """nutpie's partial-forget buffer of (draw, gradient) rows: the first `n` rows are valid, the first
    `background` of them are the previous window's (dropped at the next switch)."""

    draws: jax.Array
    grads: jax.Array
    n: jax.Array
    background: jax.Array


def _push(buf: _Buffer, x, g, keep) -> _Buffer:
    """Append (x, g) when `keep` (no branch: under vmap a `cond` on a per-chain value runs both sides)."""
    cap = buf.draws.shape[0]
    idx = jnp.minimum(buf.n, cap - 1)
    keep = keep & (buf.n < cap)
    row = lambda a, v: jax.lax.dynamic_update_slice(a, jnp.where(keep, v, a[idx])[None], (idx, 0))  # noqa: E731
    return _Buffer(row(buf.draws, x), row(buf.grads, g), buf.n + keep.astype(buf.n.dtype), buf.background)


def _switch(buf: _Buffer) -> _Buffer:
    """nuts-rs `switch()`: drop the background rows; what is left becomes the next background."""
    n = buf.n - buf.background
    return _Buffer(_shift_buffer_left(buf.draws, buf.background), _shift_buffer_left(buf.grads, buf.background), n, n)


def _recompute(buf: _Buffer, imm: LowRankInverseMassMatrix, rank: int, gamma: float, cutoff: float):
    """The low-rank Fisher metric of the buffer; the previous one while fewer than 3 rows or if not finite."""
    sigma, _, U, lam = _compute_low_rank_metric(buf.draws, buf.grads, buf.n, max(rank, 1), gamma, cutoff)
    ok = (buf.n >= 3) & jnp.all(jnp.isfinite(sigma)) & jnp.all(sigma > 0) & jnp.all(jnp.isfinite(U)) \
        & jnp.all(jnp.isfinite(lam)) & jnp.all(lam > 0)
    pick = lambda new, old: jnp.where(ok, new, old)  # noqa: E731
    return LowRankInverseMassMatrix(pick(sigma, imm.sigma), pick(U, imm.U), pick(lam, imm.lam))


def low_rank_warmup(build, stats, initial_params: Callable, *, max_rank: int | None = None, adapt_step: bool = True,
                    target_accept: float = 0.8, initial_step_size: float = 1.0, gradient_init: bool = True,
                    start_from_given: bool = False, recompute_every: int | None = None, gamma: float = 1e-5,
                    cutoff: float = 2.0):
    """Return `warmup(target, key, position, num_steps)` adapting the metric (and the step size if `adapt_step`).

    initial_params: target -> dict with "step_size" (None: start at `initial_step_size`) and
      "inverse_mass_matrix", a diagonal used as the starting metric when `start_from_given` (a user's value with
      adapt=True), else the start is 1 / |grad| at the initial point (`gradient_init`) or the identity. The returned
      params hold `metric_params(...)` in place of "inverse_mass_matrix" when the rank is > 0.
    recompute_every: the metric is recomputed from the buffer at every window switch and, if given, every this many
      adapting steps (nuts-rs recomputes at every draw). None (switches only): each recompute is two thin SVDs of
      the buffer; every 10 steps cost 4x the warmup's gradients on the 100-d Gaussian (26 s vs 6 s a chain) and
      gave the same ESS per gradient there and on diamonds (76 vs 75, 289 vs 282 per 1k).
    """
    if recompute_every is not None and recompute_every < 1:
        raise ValueError(f"recompute_every must be >= 1, got {recompute_every}")
    da_init, da_update, da_final = dual_averaging_adaptation(target_accept)

    def warmup(target, key, position, num_steps):
        d = target.dim
        rank = effective_rank(max_rank, d)
        given = dict(initial_params(target))
        step = given.get("step_size")
        if step is None:
            if not adapt_step:
                raise ValueError("step_size is neither given nor adapted: pass step_size=... or adapt it")
            step = initial_step_size
        step = jnp.asarray(step, float)
        others = {k: v for k, v in given.items() if k not in ("step_size", "inverse_mass_matrix")}

        with jax.ensure_compile_time_eval():  # a static (num_steps, 2) array, also under jit / vmap
            schedule = np.asarray(build_growing_window_schedule(num_steps), int).reshape(num_steps, 2)
        cap = max(_accumulating_buffer_capacity(schedule), 3)
        # which steps recompute the metric: every `recompute_every`-th adapting step and every window end. Static,
        # so the `cond` below stays a branch under vmap (a per-chain predicate would run the SVDs at every step)
        slow, ends = schedule[:, 0] == 1, (schedule[:, 0] == 1) & (schedule[:, 1] == 1)
        due = ends | (slow & (np.cumsum(slow) % recompute_every == 0) if recompute_every else ends)
        k = max(rank, 1)

        def to_params(imm, step_size):
            if rank == 0:  # the Fisher diagonal: the low-rank part (one inert slot) is dropped
                imm = LowRankInverseMassMatrix(imm.sigma, imm.U[:, :0], imm.lam[:0])
            return {**others, "step_size": step_size, **metric_params(imm, rank)}

        imm = LowRankInverseMassMatrix(jnp.ones(d), jnp.zeros((d, k)), jnp.ones(k))
        imm0 = given.get("inverse_mass_matrix") if start_from_given else None
        if imm0 is not None:
            imm = imm._replace(sigma=jnp.sqrt(jnp.asarray(imm0, float)))
        init_key, key = jax.random.split(key)
        state = build(target, to_params(imm, step)).init(position, init_key)
        if gradient_init and imm0 is None:  # the one gradient outside the steps: the initial state's, reused here
            imm = imm._replace(sigma=seed_low_rank_sigma_from_grad(
                _Seed(imm), state.logdensity_grad).inverse_mass_matrix.sigma)
        z = jnp.zeros((cap, d))
        buf = _Buffer(z, z, jnp.zeros((), int), jnp.zeros((), int))
        da = da_init(step)

        def one(carry, xs):
            state, imm, buf, da, step, switched = carry
            (stage, window_end, recompute), k = xs
            params = to_params(imm, step)
            new, info = build(target, params).step(k, state)
            st = stats(new, info, params)
            if adapt_step:
                da = da_update(da, jnp.nan_to_num(st["acceptance_rate"], nan=0.0))
                da = da._replace(log_step_size=jnp.minimum(da.log_step_size, jnp.log(MAX_STEP_SIZE)))
            # a draw that did not move (or has a non-finite gradient) carries no information (nuts-rs is_good)
            moved = jnp.any(new.position != state.position) & jnp.all(jnp.isfinite(new.logdensity_grad)) \
                & jnp.all(jnp.isfinite(new.position))
            end = (stage == 1) & window_end.astype(bool)
            buf = _push(buf, new.position, new.logdensity_grad, (stage == 1) & moved)

            def refresh(b_imm):
                b, m = b_imm
                b = jax.lax.cond(end, _switch, lambda x: x, b)
                return b, _recompute(b, m, rank, gamma, cutoff)

            buf, imm = jax.lax.cond(recompute, refresh, lambda a: a, (buf, imm))
            if adapt_step:
                # one dual averaging for the warmup, restarted once: at the first metric switch (nuts-rs)
                first = end & ~switched
                da = jax.lax.cond(first, lambda a: da_init(jnp.exp(a.log_step_size)), lambda a: a, da)
                switched = switched | end
                step = jnp.exp(da.log_step_size)
            return (new, imm, buf, da, step, switched), {"position": new.position, **st}

        keys = jax.random.split(key, num_steps)
        xs = ((jnp.asarray(schedule[:, 0]), jnp.asarray(schedule[:, 1]), jnp.asarray(due)), keys)
        carry = (state, imm, buf, da, step, jnp.zeros((), bool))
        (state, imm, buf, da, step, _), trace = jax.lax.scan(one, carry, xs)
        if adapt_step:
            step = jnp.minimum(da_final(da), MAX_STEP_SIZE)
        return Warmup(state, to_params(imm, step), trace)

    return warmup


class _Seed(NamedTuple):  # the one field blackjax's `seed_low_rank_sigma_from_grad` reads and replaces
    inverse_mass_matrix: LowRankInverseMassMatrix
