"""nutpie's warmup (Seyboldt, Carlson & Carpenter; nuts-rs `adapt_strategy.rs`) for any HMC-family Sampler: the
gradient-based low-rank (or Fisher-diagonal) inverse mass matrix over growing windows, the step size by dual
averaging.

What it takes from blackjax 1.7 (`blackjax.adaptation.low_rank_adaptation` and its pieces):
- the schedule, `build_growing_window_schedule` (nutpie's: every step up to the last 15% adapts the metric;
  windows of 10 steps over the first 30%, then 80 steps growing x1.5, the last one absorbing the rest
  (nuts-rs' `is_late` rule));
- the estimator, `_compute_low_rank_metric` (ported as `_low_rank_fit`, divisions written as multiplications so
  every chain layout rounds alike; C = diag(s) (I + U (diag(lam) - 1) U^T) diag(s): s = (Var x / Var grad)^(1/4),
  then the SPD mean Cov(x) # Cov(grad)^-1 in the span of the top principal directions of the scaled draws and
  gradients, eigenvalues in [1/2, 2] set to 1), on nutpie's partial-forget buffer (a window
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
- the last window does not switch the buffer (nuts-rs never switches once `is_late`): the final metric is fitted
  to that window and the one before it, not to the last window alone. On gp_pois_regr (500 warmup steps) fitting
  the last window alone left one chain of four with a poor metric (131 divergences in 1000 draws, min bulk ESS
  110, seed 1); with both, 6-30 divergences a chain and min bulk ESS 270-350 over seeds 1-3;
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
from blackjax.adaptation.metric_estimators import _relative_pd_floor, _spd_mean
from blackjax.adaptation.metric_recipes import _shift_buffer_left, seed_low_rank_sigma_from_grad
from blackjax.mcmc.metrics import LowRankInverseMassMatrix, Metric, generate_gaussian_noise
from jax.flatten_util import ravel_pytree

from samplax import checks
from samplax.samplers.base import Warmup
from samplax.samplers.dual_averaging import dual_averaging_adaptation

MAX_STEP_SIZE = float(np.pi)  # nuts-rs DualAverageOptions.max_step_size
LOW_RANK_KEYS = ("metric_sigma", "metric_U", "metric_lam")
# directions the default low-rank metric may keep (nuts-rs keeps every eigenvalue outside [1/2, 2]). 32 was too few
# for a 100-d Gaussian with 100 log-spaced eigenvalues: 78 ESS per 1k gradients at rank 32, 178 at rank 100 (nutpie
# 178; benchmarks/README.md "NUTS vs nutpie"). The kernel's products cost 2 d k per gradient.
DEFAULT_MAX_RANK = 100


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


def _matvec(y, U, scales):
    """(I + U (diag(scales) - 1) U^T) y, as blackjax's `_low_rank_matvec` but with both products written as
    elementwise products and sums: XLA compiles a matrix-vector product of a per-chain U differently for an
    unbatched program ("mapped" chains) and a batched one ("sequential" / "vectorized"), so the draws of one
    chain differed between chain layouts after the first metric update (tests/test_run.py); the reductions
    round alike in both (samplax/layout.py)."""
    return y + jnp.sum(U * ((scales - 1.0) * jnp.sum(U * y[:, None], axis=0))[None, :], axis=1)


def low_rank_metric(imm: LowRankInverseMassMatrix) -> Metric:
    """blackjax's `gaussian_euclidean_low_rank` (same momentum draws, energy, U-turn check and scaling) with the
    layout-stable `_matvec`: the metric the samplax kernels run with a low-rank `LowRankInverseMassMatrix`."""
    sigma, U, lam = imm
    inv_sigma, sqrt_lam = 1.0 / sigma, jnp.sqrt(lam)
    inv_sqrt_lam = 1.0 / sqrt_lam

    def momentum_generator(rng_key, position):
        eps, unravel = ravel_pytree(generate_gaussian_noise(rng_key, position))
        return unravel(inv_sigma * _matvec(eps, U, inv_sqrt_lam))

    def kinetic_energy(momentum, position=None):
        # q^T (I + U (diag(lam) - 1) U^T) q as |q - U c|^2 + sum(lam c^2), c = U^T q: a sum of non-negative terms,
        # so an overflowing momentum gives +inf (a divergence). blackjax's form q . (q + U ((lam - 1) c)) gave
        # inf - inf = -inf at a momentum ~1e200 (a step of pi on arma11 early in warmup, gradient ~1e201): an
        # energy of -inf made H0 - H = +inf, a transition accepted with probability 1 and not divergent, to a
        # log-density of -3e201, where the chain stayed (the step then adapted to 1e-66)
        q = sigma * ravel_pytree(momentum)[0]
        c = jnp.sum(U * q[:, None], axis=0)
        perp = q - jnp.sum(U * c[None, :], axis=1)
        return 0.5 * (jnp.sum(perp**2) + jnp.sum(lam * c**2))

    def is_turning(momentum_left, momentum_right, momentum_sum, position_left=None, position_right=None):
        m_left, m_right, m_sum = (ravel_pytree(m)[0] for m in (momentum_left, momentum_right, momentum_sum))
        vel_left, vel_right = (sigma * _matvec(sigma * m, U, lam) for m in (m_left, m_right))
        rho = m_sum - (m_right + m_left) / 2
        return (jnp.dot(vel_left, rho) <= 0) | (jnp.dot(vel_right, rho) <= 0)

    def scale(position, element, *, inv, trans):
        e, unravel = ravel_pytree(element)
        if not inv:
            out = _matvec(inv_sigma * e, U, inv_sqrt_lam) if trans else inv_sigma * _matvec(e, U, inv_sqrt_lam)
        else:
            out = _matvec(sigma * e, U, sqrt_lam) if trans else sigma * _matvec(e, U, sqrt_lam)
        return unravel(out)

    return Metric(momentum_generator, kinetic_energy, is_turning, scale)


def kernel_metric(params: dict):
    """What samplax's blackjax kernels take: the layout-stable `low_rank_metric` from the low-rank factors, else
    the diagonal / dense array."""
    imm = inverse_mass_matrix(params)
    return low_rank_metric(imm) if isinstance(imm, LowRankInverseMassMatrix) else imm


def effective_rank(max_rank: int | None, dim: int) -> int:
    """`max_rank` capped at the dimension (None: the full dimension up to DEFAULT_MAX_RANK); an integer >= 0 (0: the
    diagonal alone), else a ValueError (int() would truncate 1.7 or parse "2")."""
    return min(dim, DEFAULT_MAX_RANK) if max_rank is None else min(checks.integer("max_rank", max_rank, 0), dim)


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


def _low_rank_fit(draws, grads, n, max_rank: int, gamma: float, cutoff: float):
    """blackjax's `_compute_low_rank_metric` (Algorithm 1 of Seyboldt et al., nuts-rs `compute_update`) on the
    first `n` rows, returning (sigma, U, lam), with every division written as a multiplication by a reciprocal
    computed once. blackjax divides by the row count, by sigma and by gamma; XLA may or may not rewrite such a
    division into a multiplication depending on the surrounding program, and it did so differently in the
    device-sharded ("parallel") and single-device programs, so the chains' metrics differed in the last bit
    from the first recompute on (tests/test_layouts.py; the same cause as in `dual_averaging.py`)."""
    dtype = draws.dtype  # computed in float64 when x64 is on (blackjax's choice: float32 made it indefinite)
    draws, grads = (a.astype(jnp.float64 if jax.config.jax_enable_x64 else dtype) for a in (draws, grads))
    B, d = draws.shape
    mask = (jnp.arange(B) < n).astype(draws.dtype)[:, None]
    inv_n = 1.0 / jnp.maximum(n, 2).astype(draws.dtype)
    mean_x, mean_g = (mask * draws).sum(0) * inv_n, (mask * grads).sum(0) * inv_n
    diff_x, diff_g = mask * (draws - mean_x), mask * (grads - mean_g)
    var_x, var_g = (diff_x**2).sum(0) * inv_n, (diff_g**2).sum(0) * inv_n  # population variances, as nutpie
    sigma = jnp.clip(jnp.power(jnp.clip(var_x * (1.0 / jnp.maximum(var_g, 1e-10)), 0.0, None), 0.25), 1e-20, 1e20)
    X, A = diff_x * (1.0 / sigma), diff_g * sigma  # scaled centred draws and gradients
    U_x = jnp.linalg.svd(X, full_matrices=False)[2][:max_rank].T
    U_a = jnp.linalg.svd(A, full_matrices=False)[2][:max_rank].T
    Q = jnp.linalg.qr(jnp.concatenate([U_x, U_a], axis=1))[0]  # the span of both principal subspaces
    P_x, P_a = Q.T @ X.T, Q.T @ A.T
    q = Q.shape[1]
    inv_gamma = 1.0 / gamma  # nutpie: P P^T / gamma + I, not scaled by n
    C_x, C_a = (P_x @ P_x.T) * inv_gamma + jnp.eye(q), (P_a @ P_a.T) * inv_gamma + jnp.eye(q)
    vals, vecs = jnp.linalg.eigh(_spd_mean(C_x, jnp.linalg.inv(C_a)))  # C_x # C_a^-1
    vals = jnp.maximum(vals, _relative_pd_floor(vals))
    rank = min(max_rank, q)
    order = jnp.argsort(-jnp.abs(vals - 1.0))[:rank]  # the directions farthest from 1 ...
    U, lam = (Q @ vecs)[:, order], vals[order]
    lam = jnp.where((lam < 1.0 / cutoff) | (lam > cutoff), lam, 1.0)  # ... outside [1/cutoff, cutoff]
    if rank < max_rank:
        U = jnp.concatenate([U, jnp.zeros((d, max_rank - rank), U.dtype)], axis=1)
        lam = jnp.concatenate([lam, jnp.ones(max_rank - rank, lam.dtype)])
    return sigma.astype(dtype), U.astype(dtype), lam.astype(dtype)


def _recompute(buf: _Buffer, imm: LowRankInverseMassMatrix, rank: int, gamma: float, cutoff: float):
    """The low-rank Fisher metric of the buffer; the previous one while fewer than 3 rows or if not finite."""
    sigma, U, lam = _low_rank_fit(buf.draws, buf.grads, buf.n, max(rank, 1), gamma, cutoff)
    ok = (buf.n >= 3) & jnp.all(jnp.isfinite(sigma)) & jnp.all(sigma > 0) & jnp.all(jnp.isfinite(U)) \
        & jnp.all(jnp.isfinite(lam)) & jnp.all(lam > 0)
    pick = lambda new, old: jnp.where(ok, new, old)  # noqa: E731
    return LowRankInverseMassMatrix(pick(sigma, imm.sigma), pick(U, imm.U), pick(lam, imm.lam))


class Adapting(NamedTuple):
    """The warmup's state between steps (carried through one loop, or through the fused program of `run`)."""

    imm: LowRankInverseMassMatrix
    buf: _Buffer
    da: object  # DualAveragingAdaptationState
    step: jax.Array  # the step size in use
    switched: jax.Array  # the first metric switch has happened (dual averaging restarted)
    keys: jax.Array  # (num_steps, 2): the key of each warmup step
    n_grad: jax.Array  # gradients made by the warmup steps


class LowRankWarmup:
    """nutpie's warmup as a callable `warmup(target, key, position, num_steps) -> Warmup` (the `Sampler.warmup`
    contract) and as steps: `begin`, then per step the kernel with `params(...)` followed by `update(...)`, then
    `final(...)`. `run` uses the steps to carry the warmup through the same compiled loop as the sampling
    (`Sampler.adaptation`), so the kernel is compiled once; `__call__` runs them in a scan of its own."""

    def __init__(self, build, stats, initial_params: Callable, *, max_rank: int | None = None,
                 adapt_step: bool = True, target_accept: float = 0.8, initial_step_size: float = 1.0,
                 gradient_init: bool = True, start_from_given: bool = False, recompute_every: int | None = None,
                 gamma: float = 1e-5, cutoff: float = 2.0):
        if recompute_every is not None and recompute_every < 1:
            raise ValueError(f"recompute_every must be >= 1, got {recompute_every}")
        self.build, self.stats, self.initial_params = build, stats, initial_params
        self.max_rank, self.adapt_step, self.initial_step_size = max_rank, adapt_step, initial_step_size
        self.gradient_init, self.start_from_given, self.recompute_every = gradient_init, start_from_given, \
            recompute_every
        self.gamma, self.cutoff = gamma, cutoff
        self.da_init, self.da_update, self.da_final = dual_averaging_adaptation(target_accept)

    def schedule(self, num_steps: int) -> np.ndarray:
        """(num_steps, 4) static int rows: (stage, window_end, recompute, switch) of each warmup step."""
        with jax.ensure_compile_time_eval():  # a static (num_steps, 2) array, also under jit / vmap
            schedule = np.asarray(build_growing_window_schedule(num_steps), int).reshape(num_steps, 2)
        # which steps recompute the metric: every `recompute_every`-th adapting step and every window end. Static,
        # so the `cond` in `update` stays a branch under vmap (a per-chain predicate would run the SVDs every step)
        slow, ends = schedule[:, 0] == 1, (schedule[:, 0] == 1) & (schedule[:, 1] == 1)
        every = self.recompute_every
        due = ends | (slow & (np.cumsum(slow) % every == 0) if every else ends)
        # the last window does not switch (nuts-rs `is_late`): the final metric sees the window before it as well
        switches = ends.copy()
        if ends.any():
            switches[np.flatnonzero(ends)[-1]] = False
        return np.stack([schedule[:, 0], schedule[:, 1], due, switches], axis=1).astype(np.int32)

    def _rank(self, target):
        return effective_rank(self.max_rank, target.dim)

    def params(self, target, a: Adapting) -> dict:
        """The kernel's params for the next step (the metric and step size in use)."""
        return self._to_params(target, a.imm, a.step)

    def _to_params(self, target, imm, step_size):
        rank = self._rank(target)
        if rank == 0:  # the Fisher diagonal: the low-rank part (one inert slot) is dropped
            imm = LowRankInverseMassMatrix(imm.sigma, imm.U[:, :0], imm.lam[:0])
        others = {k: v for k, v in dict(self.initial_params(target)).items()
                  if k not in ("step_size", "inverse_mass_matrix")}
        return {**others, "step_size": step_size, **metric_params(imm, rank)}

    def begin(self, target, key, position, num_steps):
        """(initial state, Adapting) for a warmup of `num_steps` steps from `position`."""
        d = target.dim
        k = max(self._rank(target), 1)
        given = dict(self.initial_params(target))
        step = given.get("step_size")
        if step is None:
            if not self.adapt_step:
                raise ValueError("step_size is neither given nor adapted: pass step_size=... or adapt it")
            step = self.initial_step_size
        step = jnp.asarray(step, float)
        imm = LowRankInverseMassMatrix(jnp.ones(d), jnp.zeros((d, k)), jnp.ones(k))
        imm0 = given.get("inverse_mass_matrix") if self.start_from_given else None
        if imm0 is not None:
            imm = imm._replace(sigma=jnp.sqrt(jnp.asarray(imm0, float)))
        init_key, key = jax.random.split(key)
        state = self.build(target, self._to_params(target, imm, step)).init(position, init_key)
        if self.gradient_init and imm0 is None:  # the one gradient outside the steps: the initial state's, reused
            imm = imm._replace(sigma=seed_low_rank_sigma_from_grad(
                _Seed(imm), state.logdensity_grad).inverse_mass_matrix.sigma)
        cap = max(_accumulating_buffer_capacity(self.schedule(num_steps)[:, :2]), 3)
        z = jnp.zeros((cap, d))
        buf = _Buffer(z, z, jnp.zeros((), int), jnp.zeros((), int))
        return state, Adapting(imm, buf, self.da_init(step), step, jnp.zeros((), bool),
                               jax.random.split(key, num_steps), jnp.zeros((), int))

    def update(self, target, a: Adapting, old, new, st, row) -> Adapting:
        """The adaptation after one kernel step from `old` to `new` with stats `st`; `row`: this step's schedule
        row (unbatched, so its `cond`s stay branches under vmap)."""
        rank = self._rank(target)
        stage, window_end, recompute, switch = row[0], row[1], row[2].astype(bool), row[3].astype(bool)
        da, step, switched = a.da, a.step, a.switched
        if self.adapt_step:
            da = self.da_update(da, jnp.nan_to_num(st["acceptance_rate"], nan=0.0))
            da = da._replace(log_step_size=jnp.minimum(da.log_step_size, jnp.log(MAX_STEP_SIZE)))
        # a draw that did not move (or has a non-finite gradient) carries no information (nuts-rs is_good)
        moved = jnp.any(new.position != old.position) & jnp.all(jnp.isfinite(new.logdensity_grad)) \
            & jnp.all(jnp.isfinite(new.position))
        end = (stage == 1) & window_end.astype(bool)
        buf = _push(a.buf, new.position, new.logdensity_grad, (stage == 1) & moved)

        def refresh(b_imm):
            b, m = b_imm
            b = jax.lax.cond(switch, _switch, lambda x: x, b)
            return b, _recompute(b, m, rank, self.gamma, self.cutoff)

        buf, imm = jax.lax.cond(recompute, refresh, lambda v: v, (buf, a.imm))
        if self.adapt_step:
            # one dual averaging for the warmup, restarted once: at the first metric switch (nuts-rs)
            first = end & ~switched
            da = jax.lax.cond(first, lambda v: self.da_init(jnp.exp(v.log_step_size)), lambda v: v, da)
            switched = switched | end
            step = jnp.exp(da.log_step_size)
        n_grad = a.n_grad + jnp.asarray(st["n_grad"]).astype(a.n_grad.dtype)
        return Adapting(imm, buf, da, step, switched, a.keys, n_grad)

    def final(self, target, a: Adapting) -> dict:
        """The params to sample with after the warmup."""
        step = jnp.minimum(self.da_final(a.da), MAX_STEP_SIZE) if self.adapt_step else a.step
        return self._to_params(target, a.imm, step)

    def __call__(self, target, key, position, num_steps):
        state, a = self.begin(target, key, position, num_steps)

        def one(carry, xs):
            state, a = carry
            row, k = xs
            params = self.params(target, a)
            new, info = self.build(target, params).step(k, state)
            st = self.stats(new, info, params)
            return (new, self.update(target, a, state, new, st, row)), {"position": new.position, **st}

        (state, a), trace = jax.lax.scan(one, (state, a), (jnp.asarray(self.schedule(num_steps)), a.keys))
        return Warmup(state, self.final(target, a), trace)


def low_rank_warmup(build, stats, initial_params: Callable, **options) -> LowRankWarmup:
    """nutpie's warmup for the Sampler contract: `warmup(target, key, position, num_steps) -> Warmup`, adapting the
    metric (and the step size if `adapt_step`).

    initial_params: target -> dict with "step_size" (None: start at `initial_step_size`) and
      "inverse_mass_matrix", a diagonal used as the starting metric when `start_from_given` (a user's value with
      adapt=True), else the start is 1 / |grad| at the initial point (`gradient_init`) or the identity. The returned
      params hold `metric_params(...)` in place of "inverse_mass_matrix" when the rank is > 0.
    recompute_every: the metric is recomputed from the buffer at every window switch and, if given, every this many
      adapting steps (nuts-rs recomputes at every draw). None (switches only): each recompute is two thin SVDs of
      the buffer; every 10 steps cost 4x the warmup's gradients on the 100-d Gaussian (26 s vs 6 s a chain) and
      gave the same ESS per gradient there and on diamonds (76 vs 75, 289 vs 282 per 1k).
    """
    return LowRankWarmup(build, stats, initial_params, **options)


class _Seed(NamedTuple):  # the one field blackjax's `seed_low_rank_sigma_from_grad` reads and replaces
    inverse_mass_matrix: LowRankInverseMassMatrix
