"""Microcanonical samplers from blackjax: unadjusted MCLMC and adjusted MCLMC (MAMS); the warmup they share
with `secd` (restricted to the params the user did not give): an L-BFGS descent from a far start, a gradient-based
(Fisher) low-rank or diagonal preconditioner re-estimated in nutpie's growing windows, blackjax's energy-error
step-size rule and L from the autocorrelation time (`fisher_tuner`); metric="variance_diag" keeps blackjax's own
`mclmc_find_L_and_step_size` (the default before, which failed on badly scaled posteriors: earn_height means
3,550 MCSE off)."""

from __future__ import annotations

from typing import Callable

import blackjax
import jax
import jax.numpy as jnp
import numpy as np
from blackjax.adaptation.mclmc_adaptation import MCLMCAdaptationState
from blackjax.adaptation.step_size import dual_averaging_adaptation
from blackjax.mcmc import adjusted_mclmc_dynamic, integrators
from blackjax.mcmc import mclmc as bj_mclmc
from blackjax.mcmc.dynamic_hmc import DynamicHMCState
from blackjax.util import generate_unit_vector

from samplax import checks
from samplax.samplers.base import (Algorithm, DefaultValue, Sampler, Warmup, adapted_names, nonfinite_state, register,
                                   resolve_target_accept)

# Both use the isokinetic McLachlan integrator: two gradient evaluations per step
# (blackjax default; Robnik et al. 2023, "Microcanonical Hamiltonian Monte Carlo").
GRADS_PER_STEP = 2


def tuning_budget(num_steps, fractions):
    # blackjax tunes over fractions of "the number of steps that will be run"; we express
    # the user's num_warmup as that budget so warmup costs about num_warmup steps.
    return max(int(round(num_steps / sum(fractions))), 1)


class Microcanonical:
    """Params L, step_size, inverse_mass_matrix (diagonal; with rank > 0 also the low-rank factors metric_U,
    metric_lam, see `kernel_metric`) of a microcanonical sampler: which are given, which adapted, and a warmup
    running a tuner whose kernel always uses the given (fixed) values. A given inverse_mass_matrix is diagonal and
    used alone (inert low-rank factors)."""

    def __init__(self, name, *, L, step_size, inverse_mass_matrix, diagonal_preconditioning, adapt, rank=0):
        self.name = name
        # rank(d) (or an int): > 0: params also hold the low-rank factors metric_U (d, rank), metric_lam (rank,)
        self.rank = rank if callable(rank) else (lambda d, r=int(rank): r)
        checks.given_scale("L", L)
        checks.given_scale("step_size", step_size)
        checks.given_inverse_mass_matrix(inverse_mass_matrix)
        self.given = {"L": L, "step_size": step_size, "inverse_mass_matrix": inverse_mass_matrix}
        tunable = ("L", "step_size") + (("inverse_mass_matrix",) if diagonal_preconditioning else ())
        self.adapted = adapted_names(adapt, tunable, self.given)
        missing = [n for n in ("L", "step_size") if n not in self.adapted and self.given[n] is None]
        if missing:
            raise ValueError(f"{name}: adapt={adapt!r} leaves {missing} neither given nor adapted: pass them")

    def imm(self, target):
        imm = self.given["inverse_mass_matrix"]
        imm = jnp.ones(target.dim) if imm is None else jnp.asarray(imm, float)
        if imm.shape != (target.dim,):
            raise ValueError(f"{self.name}: inverse_mass_matrix must be diagonal, shape ({target.dim},), got "
                             f"{imm.shape}")
        return imm

    def default_params(self, target):
        if self.given["L"] is None or self.given["step_size"] is None:
            raise ValueError(f"num_warmup=0 leaves {self.name} untuned: pass L=... and step_size=..., or use "
                             "num_warmup > 0")
        return {"L": jnp.asarray(self.given["L"], float), "step_size": jnp.asarray(self.given["step_size"], float),
                "inverse_mass_matrix": self.imm(target), **self.no_low_rank(target)}

    def no_low_rank(self, target):
        """Inert low-rank factors (the metric is the diagonal alone); {} for a diagonal metric."""
        r = self.rank(target.dim)
        if not r:
            return {}
        return {"metric_U": jnp.zeros((target.dim, r)), "metric_lam": jnp.ones(r)}

    def fixed(self, target):
        out = {k: jnp.asarray(v, float) for k, v in self.given.items()
               if v is not None and k not in self.adapted and k != "inverse_mass_matrix"}
        if "inverse_mass_matrix" not in self.adapted:
            out["inverse_mass_matrix"] = self.imm(target)
        return out

    def warmup(self, init: Callable, tune: Callable, grads_per_step: int, L_scales_with_step: Callable):
        """None when nothing is adapted (plain burn-in); else warmup(target, key, position, num_steps).

        tune(fixed, state, key, target, num_steps, start) -> (state, MCLMCAdaptationState, kernel steps, other
        gradients evaluated, steps reverted at a non-finite value (None: not known)), with
        `start` the given values (a dict; starting values of what is adapted); L_scales_with_step(num_steps):
        whether the tuner's final L is proportional to its own step size (then a fixed step size rescales it).
        """
        if not self.adapted:
            return None

        def warmup(target, key, position, num_steps):
            fixed = self.fixed(target)
            d = target.dim
            init_key, tune_key = jax.random.split(key)
            state = init(position, target.logdensity, init_key)
            start = {k: jnp.asarray(v, float) for k, v in self.given.items() if v is not None}
            if "inverse_mass_matrix" in start:
                start["inverse_mass_matrix"] = self.imm(target)
            state, p, n_tune, n_extra, n_rev = tune(fixed, state, tune_key, target, num_steps, start)
            L = p.L
            if "step_size" in fixed and "L" not in fixed and L_scales_with_step(num_steps):
                L = p.L * fixed["step_size"] / p.step_size
            params = {"L": fixed.get("L", L), "step_size": fixed.get("step_size", p.step_size)}
            params.update(metric_params(p.inverse_mass_matrix, d, self.rank(d)))
            if "inverse_mass_matrix" in fixed:
                params.update(inverse_mass_matrix=fixed["inverse_mass_matrix"], **self.no_low_rank(target))
            trace = {"n_grad_total": jnp.asarray(n_tune * grads_per_step + n_extra)}
            if n_rev is not None:
                trace["n_reverted_total"] = jnp.asarray(n_rev)
            return Warmup(state, params, trace)

        return warmup


def metric_params(metric, d, rank):
    """Params of a kernel metric (a diagonal, or blackjax's LowRankInverseMassMatrix): inverse_mass_matrix is the
    diagonal (the low-rank form's sigma^2), metric_U / metric_lam its low-rank factors when rank > 0."""
    if hasattr(metric, "sigma"):
        out = {"inverse_mass_matrix": metric.sigma**2}
        if rank:
            out.update(metric_U=metric.U, metric_lam=metric.lam)
        return out
    out = {"inverse_mass_matrix": jnp.asarray(metric) * jnp.ones(d)}
    if rank:
        out.update(metric_U=jnp.zeros((d, rank)), metric_lam=jnp.ones(rank))
    return out


def kernel_metric(params):
    """The metric blackjax's isokinetic integrators take, from params: the diagonal, or the low-rank form
    diag(sigma) (I + U (diag(lam) - 1) U^T) diag(sigma) with sigma^2 = inverse_mass_matrix."""
    if "metric_U" not in params:
        return params["inverse_mass_matrix"]
    from blackjax.mcmc.metrics import LowRankInverseMassMatrix

    return LowRankInverseMassMatrix(jnp.sqrt(params["inverse_mass_matrix"]), params["metric_U"],
                                    params["metric_lam"])


# Fisher warmup schedule (fractions of the tuner's kernel steps): the last L_SHARE measures L from the
# autocorrelation time; before it, metric windows (nutpie's growing windows: early windows of 10 steps over
# EARLY_SHARE of the first part, then 80 steps growing 1.5x) re-estimate the Fisher diagonal, and the last
# STEP_ONLY_SHARE of the first part tunes only the step size at the final preconditioner.
L_SHARE = 0.25
EARLY_SHARE = 0.3
STEP_ONLY_SHARE = 0.2


def fisher_schedule(num_steps: int, adapt_metric: bool, adapt_L: bool):
    """(collect (n_main,) bool, switch (n_main,) bool, n_L): per step of the first part, whether (x, grad) feeds the
    preconditioner estimate and whether a window ends there (new preconditioner); n_L steps measure L after."""
    from blackjax.adaptation.low_rank_adaptation import build_growing_window_schedule

    n_L = int(round(L_SHARE * num_steps)) if adapt_L else 0
    n_L = n_L if n_L >= 2 else 0
    n_main = num_steps - n_L
    if adapt_metric and n_main >= 20:
        with jax.ensure_compile_time_eval():  # a static schedule, also when called under a trace
            sched = np.asarray(build_growing_window_schedule(n_main, early_window=EARLY_SHARE,
                                                             step_size_window=STEP_ONLY_SHARE))
        collect, switch = sched[:, 0] == 1, sched[:, 1] == 1
    else:
        collect = switch = np.zeros(n_main, bool)
    return collect, switch, n_L


# L-BFGS iterations at most before the microcanonical warmup (`descend`); 0: none
DESCENT_MAX_ITER = 100
DESCENT_TAIL = 8  # the last iterates of the descent path that give the first Fisher diagonal


def descend(logdensity, position, logdensity_value, grad, max_iter=DESCENT_MAX_ITER, tail=DESCENT_TAIL,
            memory=10, max_backtrack=30):
    """L-BFGS on -log p from `position` while its quadratic model predicts a gain above d / 2 in log-density for
    the full step (over a typical set the log-density spreads ~ sqrt(d / 2) around d / 2 below the mode): a far
    start is brought to the bulk in a few dozen gradients, which isokinetic dynamics cannot do (their speed is
    fixed in preconditioned units, so a start 10^7 local scales away takes ~10^8 steps; earn_height's initial
    points are).

    Line search: backtracking (halving from the quasi-Newton step) to Armijo's condition; the first direction is
    the steepest descent of length 1. Every trial point costs one value-and-gradient and is counted; there is no
    `lax.cond` (whose branches would both run under vmap). A non-finite trial counts as a failed trial.
    Returns (position, log-density, gradient, Fisher diagonal of the path's last `tail` iterates (NaN where
    undefined), gradients evaluated). The start's value and gradient are given (no evaluation)."""
    from samplax.samplers import fisher

    d = position.shape[-1]
    dtype = position.dtype
    min_gain = 0.5 * d
    neg_vg = jax.value_and_grad(lambda x: -logdensity(x))

    def direction(g, S, Y, rho, count):
        # the two-loop recursion as two scans over the memory (unrolled, it was ~20% of the warmup's HLO text)
        ks = (count - 1 - jnp.arange(memory)) % memory  # newest to oldest
        valid = jnp.arange(memory) < jnp.minimum(count, memory)

        def newest_first(q, kv):
            k, ok = kv
            a_j = jnp.where(ok, rho[k] * jnp.dot(S[k], q), 0.0)
            return q - a_j * Y[k], a_j

        q, alphas = jax.lax.scan(newest_first, g, (ks, valid))
        newest = (count - 1) % memory
        yy = jnp.dot(Y[newest], Y[newest])
        gamma = jnp.where(count > 0, jnp.dot(S[newest], Y[newest]) / jnp.where(yy > 0, yy, 1.0),
                          1.0 / jnp.maximum(jnp.linalg.norm(g), jnp.finfo(dtype).tiny))

        def oldest_first(r, kva):
            k, ok, a_j = kva
            b = rho[k] * jnp.dot(Y[k], r)
            return r + jnp.where(ok, (a_j - b), 0.0) * S[k], None

        r, _ = jax.lax.scan(oldest_first, gamma * q, (ks, valid, alphas), reverse=True)
        return -r

    def search(x, v, g, p, step):
        slope = jnp.dot(g, p)

        def cond(c):
            t, v_new, _, n = c
            bad = ~jnp.isfinite(v_new) | (v_new > v + 1e-4 * t * slope)
            return bad & (n < max_backtrack)

        def body(c):
            t, _, _, n = c
            t = jnp.where(n > 0, 0.5 * t, t)
            v_new, g_new = neg_vg(x + t * p)
            return t, v_new, g_new, n + 1

        n0 = jnp.where(step, 0, max_backtrack)  # no step: no evaluation
        t, v_new, g_new, n = jax.lax.while_loop(cond, body, (jnp.asarray(1.0, dtype), jnp.asarray(jnp.inf, dtype),
                                                             g, n0))
        return t, v_new, g_new, n - n0

    zeros = jnp.zeros((memory, d), dtype)
    buf = jnp.zeros((tail, d), dtype)
    carry0 = (position, -logdensity_value, -grad, zeros, zeros, jnp.zeros(memory, dtype), jnp.asarray(0),
              jnp.asarray(0), jnp.asarray(0), jnp.asarray(True), buf.at[0].set(position), buf.at[0].set(grad),
              jnp.asarray(1))

    def cond(c):
        return (c[7] < max_iter) & c[9]

    def body(c):
        x, v, g, S, Y, rho, count, i, n, _, xs, gs, filled = c
        p = direction(g, S, Y, rho, count)
        descent = jnp.dot(p, g) < 0
        # the quadratic model's gain of the full step (half the Newton decrement): below d / 2 the model puts its
        # mode within a typical set's log-density spread: stop there
        step = ~(descent & (count > 0) & (-0.5 * jnp.dot(p, g) < min_gain))
        p = jnp.where(descent, p, -g / jnp.maximum(jnp.linalg.norm(g), jnp.finfo(dtype).tiny))
        t, v_new, g_new, n_ls = search(x, v, g, p, step)
        x_new = x + t * p
        ok = step & jnp.isfinite(v_new) & jnp.all(jnp.isfinite(g_new)) & (v_new <= v)
        s_k, y_k = x_new - x, g_new - g
        sy = jnp.dot(s_k, y_k)
        store = ok & (sy > 1e-10 * jnp.sqrt(jnp.dot(s_k, s_k) * jnp.dot(y_k, y_k)))
        k = count % memory
        S = jnp.where(store, S.at[k].set(s_k), S)
        Y = jnp.where(store, Y.at[k].set(y_k), Y)
        rho = jnp.where(store, rho.at[k].set(1.0 / jnp.where(sy > 0, sy, 1.0)), rho)
        count = count + store.astype(count.dtype)
        slot = filled % tail
        xs = jnp.where(ok, xs.at[slot].set(x_new), xs)
        gs = jnp.where(ok, gs.at[slot].set(-g_new), gs)
        go_on = ok
        x, v, g = jnp.where(ok, x_new, x), jnp.where(ok, v_new, v), jnp.where(ok, g_new, g)
        filled = filled + ok.astype(filled.dtype)
        return x, v, g, S, Y, rho, count, i + 1, n + n_ls, go_on, xs, gs, filled

    x, v, g, _, _, _, _, _, n, _, xs, gs, filled = jax.lax.while_loop(cond, body, carry0)
    rows = jnp.minimum(filled, tail)  # path points in the circular buffer (start included)
    w = (jnp.arange(tail) < rows).astype(dtype)
    m, _ = jax.lax.scan(lambda m, r: (fisher.moments_update(m, *r), None), fisher.moments_init(d, dtype),
                        (xs, gs, w))
    var_x, var_g = fisher.moments_variances(m)
    diag = fisher.fisher_diag_from_moments(var_x, var_g, jnp.full(d, jnp.nan, dtype))
    return x, -v, -g, jnp.where(rows >= 3, diag, jnp.nan), n


def window_plan(num_steps: int, adapt_metric: bool, adapt_L: bool):
    """(sizes, update flags, n_L): the first part's steps as consecutive windows, each ending with a new
    preconditioner (update True) or not (the final step-size-only window); then n_L steps measure L."""
    collect, switch, n_L = fisher_schedule(num_steps, adapt_metric, adapt_L)
    n_main = len(collect)
    sizes, updates, start = [], [], 0
    for end in np.nonzero(switch)[0]:
        sizes.append(int(end) + 1 - start)
        updates.append(True)
        start = int(end) + 1
    if n_main > start:
        sizes.append(n_main - start)
        updates.append(False)
    return np.asarray(sizes, int), np.asarray(updates, bool), n_L


def fisher_tuner(kernel, desired_energy_var, l_factor=0.4, rank=0, trust_in_estimate=1.5,
                 num_effective_samples=150):
    """Microcanonical warmup with a gradient-based (Fisher) preconditioner, for a blackjax-signature
    `kernel(rng_key, state, logdensity_fn, inverse_mass_matrix, L, step_size)` whose state carries
    `logdensity_grad` and whose info has `energy_change` and `nonans` (MCLMC, sECD).

    0. A far start is first brought to the bulk by L-BFGS (`descend`, its gradients counted).
    1. The preconditioner starts at the Fisher diagonal of the descent's last iterates, else 1 / |grad| at the
       initial point (nutpie's start).
    2. Metric windows (`fisher_schedule`: nutpie's growing windows): every step's (x, grad) is kept; at a window
       end the preconditioner is re-estimated from the last two windows (nuts-rs's foreground / background
       switch): the diagonal sqrt(Var x / Var grad) (`rank=0`) or the low-rank Fisher metric of that rank
       (`fisher.low_rank`; its low-rank part only from >= LOW_RANK_MIN_ROWS x d rows), and the step-size estimate
       restarts in the new geometry.
    3. Throughout, blackjax's MCLMC step-size rule (energy-error variance per dimension = `desired_energy_var`,
       Var E ~ eps^6, reverted non-finite steps cap the step); then L = `l_factor` x step x the autocorrelation
       time of the last L_SHARE of the steps (blackjax's `make_adaptation_L`).
    Values in `fixed` are used as given (the kernel always runs with them); `start` holds given values that are
    adapted (starting points). Returns (state, MCLMCAdaptationState, kernel steps run, descent gradients, steps
    reverted at a non-finite log-density or gradient); the state's inverse_mass_matrix is the kernel's metric (a
    diagonal, or blackjax's LowRankInverseMassMatrix)."""
    from blackjax.adaptation.mclmc_adaptation import handle_nans
    from blackjax.diagnostics import effective_sample_size

    from samplax.samplers import fisher

    decay = (num_effective_samples - 1.0) / (num_effective_samples + 1.0)

    def tune(fixed, state, key, target, num_steps, start):
        d = target.dim
        k = int(rank(d) if callable(rank) else rank)
        logdensity = target.logdensity
        adapt_imm, adapt_eps, adapt_L = ("inverse_mass_matrix" not in fixed, "step_size" not in fixed,
                                         "L" not in fixed)
        sizes, updates, n_L = window_plan(num_steps, adapt_imm, adapt_L)
        n_main = int(sizes.sum())
        grad0 = state.logdensity_grad
        n_descent = jnp.asarray(0)
        path_diag = jnp.full(d, jnp.nan)
        if DESCENT_MAX_ITER > 0:
            x, lp, g, path_diag, n_descent = descend(logdensity, state.position, state.logdensity, grad0)
            state = state._replace(position=x, logdensity=lp, logdensity_grad=g)
        if "inverse_mass_matrix" in fixed:
            imm = fixed["inverse_mass_matrix"]
        elif "inverse_mass_matrix" in start:
            imm = start["inverse_mass_matrix"]
        else:  # the descent path's Fisher diagonal, else 1 / |grad| at the initial point (nutpie's start)
            imm = jnp.where(jnp.isfinite(path_diag), path_diag, fisher.gradient_init_diag(grad0))
        imm = jnp.asarray(imm, float) * jnp.ones(d)
        metric = fisher.LowRankMetric(jnp.sqrt(imm), jnp.zeros((d, k), imm.dtype), jnp.ones(k, imm.dtype))

        def kernel_metric(m):
            return fisher.to_blackjax(m) if k else m.sigma**2

        L0 = jnp.asarray(fixed.get("L", start.get("L", jnp.sqrt(d) * 1.0)), float)
        eps0 = jnp.asarray(fixed.get("step_size", start.get("step_size", 0.25 * jnp.sqrt(d))), float)
        zero = jnp.zeros((), eps0.dtype)
        fresh_step = (zero, zero, jnp.asarray(jnp.inf, eps0.dtype))  # (time, x_average, step_size_max)
        B = int(sizes[updates].max()) if updates.any() else 1  # rows kept per window
        empty = (jnp.zeros((B, d), imm.dtype), jnp.zeros((B, d), imm.dtype), jnp.zeros(B, imm.dtype))
        late_from = n_main // 2

        def whitened_size(late, metric):
            # whitened size of the posterior: sqrt(sum Var(x_i) / C_ii) over the second half (sqrt(d) if well
            # preconditioned); the starting L of the autocorrelation stage, and L itself without one
            var_x, _ = fisher.moments_variances(late)
            L_var = jnp.sqrt(jnp.sum(var_x / fisher.diagonal(metric)))
            return jnp.where((late.weight >= 3) & jnp.isfinite(L_var) & (L_var > 0), L_var, L0)

        def window(carry, xs):
            size, update, first, l_stage = xs
            state, metric, eps, step_avg, prev, late, trail, n_rev = carry
            kmetric = kernel_metric(metric)
            # the last window measures L (blackjax's `make_adaptation_L`, here in the same loop, so the kernel is
            # compiled once): the step size held, L from the whitened size, every position kept for the ESS
            L_now = jnp.where(l_stage, whitened_size(late, metric), L0) if adapt_L and n_L else L0

            def one(j, c):
                state, eps, step_avg, cur, late, trail, n_rev = c
                t = first + j
                k_step, k_nan = jax.random.split(jax.random.fold_in(key, t))
                new, info = kernel(rng_key=k_step, state=state, logdensity_fn=logdensity,
                                   inverse_mass_matrix=kmetric, L=L_now, step_size=eps)
                time, x_avg, eps_max = step_avg
                success, new, eps_max, energy_change = handle_nans(state, new, eps, eps_max, info.energy_change,
                                                                   info.nonans, k_nan)
                if n_L:
                    trail = jax.lax.cond(l_stage, lambda b: b.at[jnp.minimum(j, n_L - 1)].set(new.position),
                                         lambda b: b, trail)
                if adapt_eps:  # blackjax's predictor (mclmc_adaptation.make_L_step_size_adaptation)
                    xi = jnp.square(energy_change) / (d * desired_energy_var) + 1e-8
                    w = jnp.exp(-0.5 * jnp.square(jnp.log(xi) / (6.0 * trust_in_estimate)))
                    x_avg = decay * x_avg + w * (xi / jnp.power(eps, 6.0))
                    time = decay * time + w
                    eps = jnp.where(l_stage, eps, jnp.minimum(jnp.power(x_avg / time, -1.0 / 6.0), eps_max))
                x, g = new.position, new.logdensity_grad
                row = jnp.minimum(j, B - 1)
                wt = jnp.where(success & update, 1.0, 0.0)
                cur = (cur[0].at[row].set(x), cur[1].at[row].set(g), cur[2].at[row].set(wt))
                late = fisher.moments_update(late, x, g, jnp.where((t >= late_from) & (t < n_main) & success, 1.0, 0.0))
                return new, eps, (time, x_avg, eps_max), cur, late, trail, n_rev + (~success).astype(n_rev.dtype)

            state, eps, step_avg, cur, late, trail, n_rev = jax.lax.fori_loop(
                0, size, one, (state, eps, step_avg, empty, late, trail, n_rev))
            rows = [jnp.concatenate([a, b]) for a, b in zip(prev, cur)]
            if k:
                new_metric = fisher.low_rank(rows[0], rows[1], k, weights=rows[2], previous=metric)
                # the low-rank part only from at least LOW_RANK_MIN_ROWS x d rows (blackjax's support gate; from the
                # 20 rows of two early windows it was noise, and on eight schools it led a chain into tau's tail)
                trusted = jnp.sum(rows[2]) >= LOW_RANK_MIN_ROWS * d
                new_metric = new_metric._replace(U=jnp.where(trusted, new_metric.U, 0.0),
                                                 lam=jnp.where(trusted, new_metric.lam, 1.0))
            else:
                tot = jnp.maximum(jnp.sum(rows[2]), 1.0)
                mx, mg = rows[2] @ rows[0] / tot, rows[2] @ rows[1] / tot
                vx = rows[2] @ (rows[0] - mx) ** 2 / tot
                vg = rows[2] @ (rows[1] - mg) ** 2 / tot
                diag = fisher.fisher_diag_from_moments(vx, vg, metric.sigma**2)
                new_metric = metric._replace(sigma=jnp.sqrt(diag))
            enough = update & (jnp.sum(rows[2]) >= 3)
            metric = jax.tree.map(lambda a, b: jnp.where(enough, a, b), new_metric, metric)
            step_avg = jax.tree.map(lambda a, b: jnp.where(enough, a, b), fresh_step, step_avg)
            prev = jax.tree.map(lambda a, b: jnp.where(update, a, b), cur, prev)
            return (state, metric, eps, step_avg, prev, late, trail, n_rev), None

        l_stage = np.zeros(len(sizes), bool)
        if n_L:
            sizes, updates, l_stage = np.append(sizes, n_L), np.append(updates, False), np.append(l_stage, True)
        starts = (np.cumsum(sizes) - sizes).astype(int)
        trail = jnp.zeros((max(n_L, 1), d), imm.dtype)
        carry = (state, metric, eps0, fresh_step, empty, fisher.moments_init(d, imm.dtype), trail,
                 jnp.zeros((), jnp.int32))
        (state, metric, eps, _, _, late, trail, n_rev), _ = jax.lax.scan(
            window, carry, (jnp.asarray(sizes), jnp.asarray(updates), jnp.asarray(starts), jnp.asarray(l_stage)))
        L = whitened_size(late, metric) if adapt_L else L0
        if n_L:  # L = l_factor x step size x the autocorrelation time, over the informative (finite) dimensions
            tau = n_L / effective_sample_size(trail[None])
            finite = jnp.isfinite(tau)
            L = jnp.where(jnp.any(finite), l_factor * eps * jnp.mean(tau, where=finite), L)
        return state, MCLMCAdaptationState(L, eps, kernel_metric(metric)), n_main + n_L, n_descent, n_rev

    def L_scales(num_steps):  # L is measured with the step size the kernel really used
        return False

    return tune, L_scales


def mclmc_tuner(kernel, fractions, desired_energy_var, l_factor=None):
    """blackjax's MCLMC tuner (energy-error step size, diagonal preconditioner, L from autocorrelation) for
    `kernel(rng_key, state, logdensity_fn, inverse_mass_matrix, L, step_size)`, holding `fixed` params.
    l_factor: L = l_factor x step size x autocorrelation time in stage 3 (None: blackjax's default, 0.4)."""
    extra = {} if l_factor is None else {"l_factor": l_factor}

    def tune(fixed, state, key, target, num_steps, start):
        def held(**kw):
            return kernel(**{**kw, **fixed})

        d = target.dim
        if start:  # given values start the tuning (nothing given: blackjax's own starting values)
            start = MCLMCAdaptationState(jnp.asarray(start.get("L", jnp.sqrt(d)), float),
                                         jnp.asarray(start.get("step_size", 0.25 * jnp.sqrt(d)), float),
                                         jnp.asarray(start.get("inverse_mass_matrix", 1.0), float) * jnp.ones(d))
        else:
            start = None
        return *blackjax.mclmc_find_L_and_step_size(
            mclmc_kernel=held, num_steps=tuning_budget(num_steps, fractions), state=state, rng_key=key,
            logdensity_fn=target.logdensity, frac_tune1=fractions[0], frac_tune2=fractions[1],
            frac_tune3=fractions[2], desired_energy_var=desired_energy_var,
            diagonal_preconditioning="inverse_mass_matrix" not in fixed,
            params=start, **extra), 0, None  # blackjax reverts non-finite steps inside, uncounted

    def L_scales(num_steps):  # stage 3 (L = l_factor * step_size * autocorrelation time) runs
        return round(tuning_budget(num_steps, fractions) * fractions[2]) >= 2

    return tune, L_scales


MCLMC_FRACTIONS = (0.4, 0.3, 0.3)
# how the warmup preconditions: "fisher_low_rank" (default; `fisher_tuner`: descent, then the low-rank Fisher
# metric of rank LOW_RANK in growing windows), "fisher_diag" (the same with the diagonal sqrt(Var x / Var grad)) or
# "variance_diag" (blackjax's `mclmc_find_L_and_step_size`: the step-size-weighted draw variance of one window
# after an unpreconditioned first stage; samplax's default before the Fisher warmup)
METRICS = ("fisher_low_rank", "fisher_diag", "variance_diag")
LOW_RANK = 10  # nutpie's default maximal rank
LOW_RANK_MIN_ROWS = 2  # x d: fewer (x, grad) rows in a window pair give the diagonal alone
# up to this dimension "fisher_low_rank" keeps all d directions (the dense Fisher metric: the low-rank form at rank d
# is diag(sigma) U diag(lam) U^T diag(sigma), any SPD matrix; a d x d product per gradient is cheap there). At rank
# 10, diamonds' (d = 26, correlated predictors) whitened posterior covariance kept a condition number of ~1,000 and
# MCLMC's bulk ESS was ~10 of 4,000 draws; at rank 26 the condition number was ~3 and the ESS ~1,700.
DENSE_MAX_DIM = 50


def metric_rank(metric):
    """rank(d): the rank of the kernel metric's low-rank factors for a target of dimension d (0: diagonal)."""
    if not checks.member(metric, METRICS):
        raise ValueError(f"metric must be one of {list(METRICS)}, got {metric!r}")
    if metric == "fisher_low_rank":
        return lambda d: int(d) if d <= DENSE_MAX_DIM else LOW_RANK
    return lambda d: 0


def microcanonical_tuner(metric, kernel, desired_energy_var, l_factor=0.4):
    rank = metric_rank(metric)
    if metric.startswith("fisher"):
        return fisher_tuner(kernel, desired_energy_var, l_factor=l_factor, rank=rank)
    return mclmc_tuner(kernel, MCLMC_FRACTIONS, desired_energy_var, l_factor=l_factor)


@register("mclmc")
def mclmc(*, diagonal_preconditioning: bool = True, desired_energy_var: float = 5e-4, metric: str = "fisher_low_rank",
          L: float | None = None, step_size: float | None = None, inverse_mass_matrix=None, adapt=None) -> Sampler:
    """Unadjusted microcanonical Langevin MC; the warmup tunes what is not given: the diagonal preconditioner
    (`metric`, see METRICS; default the Fisher diagonal from draws and gradients, `fisher_tuner`), the step size
    (blackjax's energy-error rule) and L (from the autocorrelation time)."""
    checks.positive("desired_energy_var", desired_energy_var)
    mc = Microcanonical("mclmc", L=L, step_size=step_size, inverse_mass_matrix=inverse_mass_matrix,
                        diagonal_preconditioning=diagonal_preconditioning, adapt=adapt, rank=metric_rank(metric))

    def build(target, params):
        alg = blackjax.mclmc(target.logdensity, L=params["L"], step_size=params["step_size"],
                             inverse_mass_matrix=kernel_metric(params))
        return Algorithm(lambda x, key: alg.init(x, key), alg.step)

    def stats(state, info, params):
        # blackjax reverts a non-finite step (position kept, fresh momentum): `nonfinite` counts those
        return {"lp": state.logdensity, "energy_change": info.energy_change, "diverging": ~info.nonans,
                "nonfinite": ~info.nonans, "n_grad": jnp.asarray(GRADS_PER_STEP), "step_size": params["step_size"],
                "L": params["L"]}

    tune, L_scales = microcanonical_tuner(metric, bj_mclmc.build_kernel(desired_energy_var=desired_energy_var),
                                         desired_energy_var)
    return Sampler(
        name="mclmc", build=build, stats=stats, default_params=mc.default_params, adapted=mc.adapted,
        warmup=mc.warmup(lambda x, logdensity, key: bj_mclmc.init(x, logdensity, key), tune, GRADS_PER_STEP,
                         L_scales),
        settings={"diagonal_preconditioning": diagonal_preconditioning, "desired_energy_var": desired_energy_var,
                  "metric": metric},
    )


def _step_size_dual_averaging(kernel, logdensity_fn, state, p, num_steps, key, target_accept):
    """Dual averaging (blackjax's) of the adjusted kernel's step size to `target_accept` at the fixed L of `p`, as the
    MAMS authors' warmup does; the step is not capped at L (blackjax's adjusted tuner caps it at L / 1.1): a
    trajectory is at least one step, so a step above L is one-step proposals, which may be what the acceptance
    target asks for. Returns (state, final step size, integration steps made)."""
    da_init, da_update, da_final = dual_averaging_adaptation(target_accept)

    def one(carry, k):
        state, da = carry
        h = jnp.exp(da.log_step_size)
        state, info = kernel(k, state, logdensity_fn, h, inverse_mass_matrix=p.inverse_mass_matrix,
                             integration_steps_params=(mams_steps(p.L, h),))
        acc = jnp.where(jnp.isfinite(info.acceptance_rate), info.acceptance_rate, 0.0)
        return (state, da_update(da, acc)), info.num_integration_steps

    (state, da), n = jax.lax.scan(one, (state, da_init(p.step_size)), jax.random.split(key, num_steps))
    return state, da_final(da), jnp.sum(n)


# MAMS warmup (Robnik, Cohn-Gordon & Seljak, arXiv 2503.01707, as their benchmark code runs it): unadjusted MCLMC
# tuning reaches the typical set and estimates the preconditioner (here the low-rank Fisher metric) and L
# (stage 3: L = l_factor x the autocorrelation time, blackjax's `make_adaptation_L`), then dual averaging tunes the
# adjusted kernel's step size to `target_accept` at that fixed L (`_step_size_dual_averaging`). Share of the
# num_warmup steps run unadjusted (one integration step each); the rest are adjusted trajectories.
MAMS_UNADJUSTED_SHARE = 0.75
MAMS_TARGET_ACCEPT = DefaultValue(0.9)
MAMS_L_FACTOR = DefaultValue(0.4)  # L = l_factor x the autocorrelation time of the unadjusted chain
# the adjusted kernel's isokinetic integrator: (blackjax integrator, gradients per step)
MAMS_INTEGRATORS = {"leapfrog": (integrators.isokinetic_velocity_verlet, 1),
                    "mclachlan": (integrators.isokinetic_mclachlan, 2)}
# the mean trajectory length in integration steps is L / step_size, at most this: a step size that dual averaging
# drives towards 0 (every proposal rejected, e.g. at a NaN region) made L / h ~ 1e8 steps per trajectory, and a
# 2-d warmup ran for minutes (17.9 M gradients in 300 warmup steps); NUTS stops at 1023 steps (max depth 10) alike.
# The length does not depend on the state, so the cap keeps the kernel exact.
MAMS_MAX_MEAN_STEPS = 1024


def mams_steps(L, step_size):
    """The mean number of integration steps of a MAMS trajectory: L / step_size, capped at MAMS_MAX_MEAN_STEPS."""
    return jnp.minimum(L / step_size, MAMS_MAX_MEAN_STEPS)


def _mams_dimension(target):
    """Refuses a 1-d target: a 1-d isokinetic velocity is +1 or -1 and the dynamics are degenerate (mclmc is refused
    by blackjax; mams ran, never moved and spent thousands of gradients per draw)."""
    if target.dim < 2:
        raise ValueError(f"mams needs a target of dimension >= 2, got dim={target.dim}: isokinetic (fixed-speed) "
                         "dynamics are degenerate in 1-D (the velocity can only be +1 or -1); use nuts for a 1-D "
                         "target")


@register("mams")
def mams(*, target_accept: float = MAMS_TARGET_ACCEPT, diagonal_preconditioning: bool = True,
         l_factor: float = MAMS_L_FACTOR,
         desired_energy_var: float = 5e-4, integrator: str = "mclachlan", metric: str = "fisher_low_rank",
         L: float | None = None, step_size: float | None = None, inverse_mass_matrix=None, adapt=None) -> Sampler:
    """Metropolis-adjusted microcanonical sampler (adjusted MCLMC, random trajectory length).

    Warmup (what is adapted): unadjusted MCLMC's warmup (`fisher_tuner` for the default `metric`) at
    `desired_energy_var` finds the typical set, the preconditioner and L (`l_factor` x the autocorrelation time of
    that chain); then the step size is tuned by dual averaging to `target_accept` at that L (a given step size with
    adapt=True starts it). The unadjusted chain's own step size is internal to the warmup.
    """
    if not l_factor > 0:
        raise ValueError(f"l_factor must be > 0, got {l_factor}")
    checks.positive("desired_energy_var", desired_energy_var)
    if not checks.member(integrator, MAMS_INTEGRATORS):
        raise ValueError(f"integrator must be one of {sorted(MAMS_INTEGRATORS)}, got {integrator!r}")
    integrate, grads = MAMS_INTEGRATORS[integrator]
    mc = Microcanonical("mams", L=L, step_size=step_size, inverse_mass_matrix=inverse_mass_matrix,
                        diagonal_preconditioning=diagonal_preconditioning, adapt=adapt, rank=metric_rank(metric))
    target_accept = resolve_target_accept("mams", target_accept, MAMS_TARGET_ACCEPT, "step_size" in mc.adapted)
    if "L" not in mc.adapted:
        if not isinstance(l_factor, DefaultValue):  # it scales the measured L, and L is given, not measured
            raise ValueError(f"mams: l_factor={l_factor!r} scales the L the warmup measures, but L is given and not "
                             "adapted, so nothing would use it: drop l_factor, or drop L (or pass adapt='L')")
        l_factor = None
    l_factor_value = MAMS_L_FACTOR if l_factor is None else float(l_factor)
    steps_fn = adjusted_mclmc_dynamic.make_random_trajectory_length_fn(True)
    kernel = adjusted_mclmc_dynamic.build_kernel(integration_steps_fn=steps_fn, integrator=integrate)
    unadjusted_tune, _ = microcanonical_tuner(metric, bj_mclmc.build_kernel(desired_energy_var=desired_energy_var),
                                              desired_energy_var, l_factor=l_factor_value)

    def build(target, params):
        _mams_dimension(target)

        def step(key, state):
            return kernel(key, state, target.logdensity, params["step_size"],
                          inverse_mass_matrix=kernel_metric(params),
                          integration_steps_params=(mams_steps(params["L"], params["step_size"]),))

        return Algorithm(lambda x, key: adjusted_mclmc_dynamic.init(x, target.logdensity, key), step)

    def tune(fixed, state, key, target, num_steps, start):
        _mams_dimension(target)
        d = target.dim
        momentum_key, unadjusted_key, adjusted_key = jax.random.split(key, 3)
        n_adjusted = 0 if "step_size" in fixed else max(int(round((1 - MAMS_UNADJUSTED_SHARE) * num_steps)), 1)
        n_unadjusted = num_steps - n_adjusted
        p = MCLMCAdaptationState(fixed.get("L", jnp.sqrt(d)), fixed.get("step_size", 0.25 * jnp.sqrt(d)),
                                 fixed.get("inverse_mass_matrix", jnp.ones(d)))
        n_tune, n_rev = 0, jnp.zeros((), jnp.int32)
        if n_unadjusted > 0 and ("L" not in fixed or "inverse_mass_matrix" not in fixed or n_adjusted > 0):
            # the unadjusted chain starts from the warmup's state (its gradient reused: no extra evaluation) and
            # holds a given L / preconditioner; a given step size belongs to the adjusted kernel, not to it
            u_state = integrators.IntegratorState(state.position, generate_unit_vector(momentum_key, state.position),
                                                  state.logdensity, state.logdensity_grad)
            u_fixed = {k: v for k, v in fixed.items() if k != "step_size"}
            # given-and-adapted L / preconditioner start it; the adjusted step size is not its step size
            u_start = {k: v for k, v in start.items() if k != "step_size"}
            u_state, u, n_u, n_extra, n_rev = unadjusted_tune(u_fixed, u_state, unadjusted_key, target,
                                                              n_unadjusted, u_start)
            state = DynamicHMCState(u_state.position, u_state.logdensity, u_state.logdensity_grad,
                                    state.random_generator_arg)
            # L: a length in time, so it carries over from the unadjusted chain as it is
            p = MCLMCAdaptationState(fixed.get("L", u.L), fixed.get("step_size", start.get("step_size", u.step_size)),
                                     fixed.get("inverse_mass_matrix", u.inverse_mass_matrix))
            n_tune += GRADS_PER_STEP * n_u + n_extra  # blackjax's MCLMC kernel: isokinetic McLachlan
        if n_adjusted > 0:
            state, h, n_a = _step_size_dual_averaging(kernel, target.logdensity, state, p, n_adjusted, adjusted_key,
                                                       target_accept)
            p = p._replace(step_size=h)
            n_tune += grads * n_a
        return state, p, n_tune, 0, n_rev  # gradients, not integration steps (two integrators)

    def stats(state, info, params):
        # a divergence whose trajectory ended on a NaN/inf log-density or gradient is the model's, not curvature
        return {"lp": state.logdensity, "acceptance_rate": info.acceptance_rate, "diverging": info.is_divergent,
                "diverging_nonfinite": info.is_divergent & nonfinite_state(info.proposal),
                "energy": info.energy, "n_grad": grads * jnp.asarray(info.num_integration_steps),
                "step_size": params["step_size"], "L": params["L"]}

    def default_params(target):
        _mams_dimension(target)
        return mc.default_params(target)

    return Sampler(
        name="mams", build=build, stats=stats, default_params=default_params, adapted=mc.adapted,
        # L comes from the unadjusted chain's autocorrelation in units of time: a fixed step size does not rescale it
        warmup=mc.warmup(adjusted_mclmc_dynamic.init, tune, 1, lambda n: False),
        settings={"target_accept": target_accept, "diagonal_preconditioning": diagonal_preconditioning,
                  "l_factor": l_factor, "desired_energy_var": desired_energy_var, "integrator": integrator,
                  "metric": metric},
    )
