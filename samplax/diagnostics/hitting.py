"""Hitting times: first step at which independent runs enter a set, with censoring-aware summaries.

Runs that never enter the set within the budget are right-censored at the budget; the summaries use the
Kaplan-Meier estimator (scipy.stats.ecdf on CensoredData), so the budget never silently biases a mean.
"""

from __future__ import annotations

import warnings
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from samplax import checks

UNITS = ("steps", "grads", "time")


class HittingResult(NamedTuple):
    """First-hit times of independent runs; `hit=False` means right-censored at the budget.

    times: steps taken when the run first was in the set (0 if it started there), or the budget if never.
    grads: gradient evaluations spent up to the same moment (per run; NaN when no count was given).
    budget: steps available to every run.  dt: physical time per step.
    nonfinite: per run, whether it reached a NaN/inf position before hitting (None: not recorded). Such a run
      can never hit, so it counts as never hitting within the budget (censored at it), and says so: a blown-up
      sampler reads as "k runs went non-finite", not as runs that explored the whole budget.
    """

    times: np.ndarray
    hit: np.ndarray
    grads: np.ndarray
    budget: int
    dt: float = 1.0
    nonfinite: np.ndarray | None = None

    @property
    def num_nonfinite(self) -> int:
        return 0 if self.nonfinite is None else int(np.sum(self.nonfinite))

    def in_units(self, unit: str = "steps") -> np.ndarray:
        """Times in "steps", "grads" (gradient evaluations) or "time" (steps * dt)."""
        if unit == "steps":
            return np.asarray(self.times, float)
        if unit == "grads":
            g = np.asarray(self.grads, float)
            if np.isnan(g).any():
                raise ValueError("these hitting times carry no gradient count: pass n_grad= (e.g. "
                                 "sampler_grads(sampler, params)) or grads_per_step= to first_hit_times, or give "
                                 "hit_times_from_draws a run with sample_stats.n_grad")
            return g
        if unit == "time":
            return np.asarray(self.times, float) * self.dt
        raise ValueError(f"unit must be one of {UNITS}, got {unit!r}")

    @property
    def physical_times(self) -> np.ndarray:
        return self.in_units("time")

    @property
    def fraction_hit(self) -> float:
        return float(np.mean(self.hit))


# ----------------------------------------------------------------------------------------------- sets


def sublevel_set(F: Callable, level: float) -> Callable:
    """{x : F(x) <= level}."""
    return lambda x: F(x) <= level


def ball(center, radius: float) -> Callable:
    """{x : |x - center| <= radius} (Euclidean)."""
    radius = checks.positive("radius", radius)
    c = jnp.asarray(center)
    if not bool(jnp.all(jnp.isfinite(c))):
        raise ValueError(f"center must be finite, got {center!r}")

    def inside(x):
        if jnp.size(x) != c.size:
            raise ValueError(f"ball center has {c.size} coordinate(s) but the positions have {jnp.size(x)}")
        return jnp.sum((jnp.reshape(x, c.shape) - c) ** 2) <= radius**2

    return inside


def halfspace(axis: int, threshold: float, side: str = "above") -> Callable:
    """{x : x[axis] >= threshold} for side="above", {x : x[axis] <= threshold} for side="below"."""
    if not checks.member(side, ("above", "below")):
        raise ValueError(f"side must be 'above' or 'below', got {side!r}")
    if not isinstance(axis, (int, np.integer)) or isinstance(axis, bool):
        raise ValueError(f"axis must be an integer (a coordinate of the position), got {axis!r}")
    threshold = checks.finite("threshold", threshold)

    def coordinate(x):
        flat = jnp.ravel(x)
        if not -flat.size <= axis < flat.size:  # jax would clamp the index and test another coordinate
            raise ValueError(f"halfspace axis {axis} is out of range for positions of {flat.size} coordinate(s)")
        return flat[axis]

    if side == "above":
        return lambda x: coordinate(x) >= threshold
    return lambda x: coordinate(x) <= threshold


# ------------------------------------------------------------------------------------------ simulation


def sampler_grads(sampler, params) -> Callable:
    """`n_grad(state, info)` for `first_hit_times`: the gradient count a samplax Sampler reports per step."""
    return lambda state, info: sampler.stats(state, info, params)["n_grad"]


def _check_grads(n_grad, grads_per_step):
    if n_grad is not None and grads_per_step is not None:
        raise ValueError("give either n_grad (a per-step count read from the step's output) or grads_per_step "
                         "(a fixed cost), not both")
    if grads_per_step is not None and not checks.finite("grads_per_step", grads_per_step) >= 0:
        raise ValueError(f"grads_per_step must be >= 0, got {grads_per_step}")
    if n_grad is not None and not callable(n_grad):
        raise TypeError(f"n_grad must be a function (state, info) -> gradient count, got {type(n_grad).__name__}")


def _check_set(in_set):
    if not callable(in_set):
        raise TypeError(f"in_set must be a function of a position returning True inside the set (e.g. "
                        f"samplax.diagnostics.ball(center, radius) or sublevel_set(F, level)), got {in_set!r}")


def first_hit_times(step_fn: Callable, init_states: Any, in_set: Callable, max_steps: int, key, *,
                    target=None, position_fn: Callable = lambda s: s.position, n_grad: Callable | None = None,
                    grads_per_step: float | None = None, dt: float = 1.0, chunk: int = 1000) -> HittingResult:
    """Run independent trajectories until each first enters `in_set`, keeping only the first-hit step.

    step_fn(key, state) -> (state, info): any blackjax/samplax step (`sampler.build(target, params).step`)
    or optimiser step.  init_states: a pytree whose leaves have a leading axis of size num_runs.
    target: when given, `in_set` sees `target.constrain_flat(position)`: the constrained values in
      `target.names` order, the same values `hit_times_from_draws` tests on a run's posterior (for a
      numpyro model, e.g. sigma itself, not its log). Without a target, `in_set` sees the raw position.
    n_grad: fn(state, info) -> gradient evaluations of that step (`sampler_grads(sampler, params)` reads
      the sampler's own `stats`), summed step by step; or grads_per_step: a fixed cost per step.
      With neither, `grads` is NaN and `in_units("grads")` raises: no count is guessed.
    Run r uses key fold_in(key, r) and, at step t, fold_in(that, t), so results do not depend on `chunk`
    (steps per compiled block; the simulation stops early, block by block, once every run has hit).
    """
    _check_set(in_set)
    max_steps = checks.integer("max_steps", max_steps, 1)
    chunk = checks.integer("chunk", chunk, 1)
    checks.positive("dt", dt)
    _check_grads(n_grad, grads_per_step)
    leaves = jax.tree_util.tree_leaves(init_states)
    if not leaves or jnp.ndim(leaves[0]) < 1:
        raise ValueError("init_states must be a pytree with a leading run axis (num_runs, ...)")
    num_runs = int(jnp.shape(leaves[0])[0])
    if num_runs < 1:
        raise ValueError(f"init_states must hold >= 1 run, got {num_runs}")
    values = position_fn if target is None else (lambda s: target.constrain_flat(position_fn(s)))
    one = jax.tree_util.tree_map(lambda a: a[0], init_states)
    out = jax.eval_shape(lambda st: in_set(values(st)), one)
    if int(np.prod(out.shape)) != 1:
        raise ValueError(f"in_set must return one boolean per position, got shape {out.shape}; "
                         "reduce over coordinates (e.g. jnp.all) or use ball/halfspace/sublevel_set")
    chunk = min(chunk, max_steps)
    run_keys = jax.vmap(lambda r: jax.random.fold_in(key, r))(jnp.arange(num_runs))
    inside = jax.vmap(lambda s: jnp.asarray(in_set(values(s)), bool).reshape(()))
    finite = jax.vmap(lambda s: jnp.all(jnp.isfinite(jnp.asarray(position_fn(s)))))
    if n_grad is None:
        per_step = np.nan if grads_per_step is None else float(grads_per_step)
        cost = lambda states, infos: jnp.full(num_runs, per_step)  # noqa: E731
    else:
        cost = jax.vmap(lambda s, i: jnp.asarray(n_grad(s, i), float).reshape(()))

    def one_step(carry, t):
        states, hit, times, spent, grads, bad = carry
        keys = jax.vmap(lambda k: jax.random.fold_in(k, t))(run_keys)
        states, infos = jax.vmap(step_fn)(keys, states)
        live = ~hit & (t < max_steps)  # steps past a run's hit (or the budget) are not charged to it
        spent = spent + jnp.where(live, cost(states, infos), 0.0)
        new = live & inside(states)
        bad = bad | (live & ~new & ~finite(states))  # a NaN/inf position never enters a set: the run is dead
        return (states, hit | new, jnp.where(new, t + 1, times), spent, jnp.where(new, spent, grads), bad), None

    @jax.jit
    def block(carry, t0):
        carry, _ = jax.lax.scan(one_step, carry, t0 + jnp.arange(chunk))
        return carry

    @jax.jit
    def run(states):
        hit0 = inside(states)
        times0 = jnp.where(hit0, 0, max_steps)
        zero = jnp.zeros(num_runs)
        bad0 = ~hit0 & ~finite(states)

        def cond(c):  # dead runs are stepped (and charged) to the budget too, as the censored runs they count as
            (_, hit, *_), t0 = c
            return (t0 < max_steps) & ~jnp.all(hit)

        def body(c):
            carry, t0 = c
            return block(carry, t0), t0 + chunk

        (_, hit, times, spent, grads, bad), _ = jax.lax.while_loop(
            cond, body, ((states, hit0, times0, zero, zero, bad0), jnp.asarray(0)))
        return hit, times, jnp.where(hit, grads, spent), bad & ~hit

    hit, times, grads, bad = run(init_states)
    result = HittingResult(times=np.asarray(times), hit=np.asarray(hit), grads=np.asarray(grads, float),
                           budget=int(max_steps), dt=float(dt), nonfinite=np.asarray(bad))
    _warn_nonfinite(result)
    return result


def _warn_nonfinite(result: HittingResult) -> None:
    if result.num_nonfinite:
        warnings.warn(f"{result.num_nonfinite} of {len(result.hit)} runs reached a NaN/inf position before hitting "
                      "the set: they count as never hitting within the budget (censored at it), which is what a "
                      "blown-up run does; a smaller step size may avoid it (HittingResult.nonfinite marks them)",
                      RuntimeWarning, stacklevel=3)


def _posterior_values(draws, target) -> np.ndarray:
    """(chain, draw, n) constrained values of a DataTree's posterior, flat in `target.names` order
    (or in the posterior's variable order without a target: the order `Target.constrain` returns)."""
    post = draws["posterior"]
    ds = post.dataset if hasattr(post, "dataset") else post
    names = list(ds.data_vars) if target is None else list(target.var_shapes)
    if not names:
        raise ValueError("draws DataTree has no posterior variables")
    missing = [n for n in names if n not in ds.data_vars]
    if missing:
        raise ValueError(f"posterior has no variables {missing} of target {target.name!r} "
                         f"(has {sorted(ds.data_vars)})")
    arrs = [np.asarray(ds[n].transpose("chain", "draw", ...)) for n in names]
    return np.concatenate([a.reshape(a.shape[0], a.shape[1], -1) for a in arrs], axis=-1)


def hit_times_from_draws(draws, in_set: Callable, *, target=None, dt: float = 1.0) -> HittingResult:
    """First-hit times along stored chains: an array (runs, steps, dim) or a samplax DataTree.

    Draw i counts as the state after i+1 steps (times `thinning` for a DataTree). For a DataTree,
    `in_set` sees the constrained, named values flat in `target.names` order (the posterior's variable
    order without a target), the same values `first_hit_times(..., target=target)` tests; gradient
    counts come from `sample_stats.n_grad` (NaN without it). An array is tested as given.
    """
    _check_set(in_set)
    checks.positive("dt", dt)
    n_grad = None
    thin = 1
    if hasattr(draws, "children") or hasattr(draws, "groups"):
        from samplax.diagnostics.population import is_population

        if is_population(draws):  # the particle index is no time: the same population shuffled hits at other "times"
            raise ValueError("hit_times_from_draws: a population run (SMC and other particle samplers) has no time "
                             "order along its particles, so it has no hitting time; use a chain sampler's run")
        x = _posterior_values(draws, target)
        thin = int(draws.attrs.get("thinning", 1))
        if "sample_stats" in draws and "n_grad" in draws["sample_stats"]:
            n_grad = np.asarray(draws["sample_stats"]["n_grad"].transpose("chain", "draw"), float)
    else:
        x = np.asarray(draws)
        if x.ndim == 2:
            x = x[..., None]
        if x.ndim != 3:
            raise ValueError(f"draws must have shape (runs, steps, dim), got {x.shape}")
    runs, steps = x.shape[:2]
    if steps < 1:
        raise ValueError("draws must hold at least one step")
    flags = np.asarray(jax.vmap(jax.vmap(lambda p: jnp.asarray(in_set(p), bool).reshape(())))(jnp.asarray(x)))
    hit = flags.any(axis=1)
    first = np.where(hit, flags.argmax(axis=1), steps - 1)
    times = np.where(hit, first + 1, steps) * thin
    if n_grad is not None:
        grads = np.cumsum(n_grad, axis=1)[np.arange(runs), first]
    else:
        grads = np.full(runs, np.nan)  # no count recorded: in_units("grads") refuses rather than guess
    nonfinite = ~hit & ~np.all(np.isfinite(x), axis=(1, 2))  # a NaN/inf draw never enters a set
    result = HittingResult(times=times, hit=hit, grads=grads, budget=int(steps * thin), dt=float(dt),
                           nonfinite=nonfinite)
    _warn_nonfinite(result)
    return result


# ------------------------------------------------------------------------------------------- summary


class HittingSummary(NamedTuple):
    """Censoring-aware summary of first-hit times.

    mean_kind is "mean" (every run hit: plain sample mean, standard error std/sqrt(n)) or
    "restricted_mean" (some runs censored: area under the Kaplan-Meier curve up to the last observed time -- for
    samplax's runs the budget --, a LOWER bound on the true mean unless the curve reaches 0 there; its standard
    error from the Greenwood-type formula).  median is NaN when
    fewer than half the runs hit; median_ci ends are NaN/inf where the survival band never crosses 1/2.
    """

    unit: str
    num_runs: int
    fraction_hit: float
    km_times: np.ndarray
    km_survival: np.ndarray
    km_low: np.ndarray
    km_high: np.ndarray
    median: float
    median_ci: tuple[float, float]
    mean: float
    mean_se: float
    mean_ci: tuple[float, float]
    mean_kind: str
    horizon: float
    confidence: float
    num_nonfinite: int = 0

    def describe(self) -> str:
        pct = int(round(100 * self.confidence))
        lo, hi = self.mean_ci
        if self.mean_kind == "mean":
            what = "mean"
        elif self.km_survival[-1] > 0:
            what = (f"restricted mean up to {self.horizon:g} (the last observed time; a lower bound: "
                    f"{100 * (1 - self.fraction_hit):.1f}% of runs never hit)")
        else:  # the curve reaches 0 at a hit after the last censoring: the area under it is the Kaplan-Meier mean
            what = (f"Kaplan-Meier mean ({100 * (1 - self.fraction_hit):.1f}% of runs censored before the last "
                    "hit)")
        dead = (f"; {self.num_nonfinite} run(s) went non-finite (NaN/inf) before hitting, counted as never "
                "hitting" if self.num_nonfinite else "")
        return (f"{self.fraction_hit:.1%} of {self.num_runs} runs hit; {what} = {self.mean:.4g} "
                f"[{pct}% CI {lo:.4g}, {hi:.4g}] {self.unit}; median {self.median:.4g} {self.unit}{dead}")


def _first_crossing(times: np.ndarray, surv: np.ndarray) -> float:
    """First time at which a right-continuous step survival curve is <= 1/2 (inf if never)."""
    idx = np.nonzero(surv <= 0.5)[0]
    return float(times[idx[0]]) if len(idx) else float("inf")


def summarize(result: HittingResult, unit: str = "steps", *, confidence: float = 0.95) -> HittingSummary:
    """Kaplan-Meier survival curve, fraction hit, median (CI) and mean (CI) of first-hit times.

    Uses scipy.stats.ecdf (Kaplan-Meier, log-log Greenwood band).  The median CI inverts the pointwise
    survival band (Brookmeyer & Crowley 1982).
    """
    from scipy.stats import CensoredData, ecdf, norm

    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    t = result.in_units(unit)
    hit = np.asarray(result.hit, bool)
    n = t.size
    if n < 2:
        raise ValueError(f"need >= 2 runs to summarise hitting times, got {n}")
    # the Kaplan-Meier curve is known up to the last observed time (samplax's runs censor at the budget, after
    # every hit; a hand-built result may hold a hit after its last censoring time)
    horizon = float(np.max(t))
    z = float(norm.ppf(0.5 + confidence / 2))

    if hit.any():
        res = ecdf(CensoredData(uncensored=t[hit], right=t[~hit]))
        km_t, km_s = np.asarray(res.sf.quantiles), np.asarray(res.sf.probabilities)
        with np.errstate(divide="ignore", invalid="ignore"), warnings.catch_warnings():
            # the log-log band is undefined where S = 0 or 1; those ends are filled with 0 and 1 below
            warnings.simplefilter("ignore", RuntimeWarning)
            band = res.sf.confidence_interval(confidence, method="log-log")
        km_lo = np.nan_to_num(np.asarray(band.low.probabilities), nan=0.0)
        km_hi = np.nan_to_num(np.asarray(band.high.probabilities), nan=1.0)
    else:
        km_t, km_s, km_lo, km_hi = np.array([horizon]), np.ones(1), np.ones(1), np.ones(1)

    median = _first_crossing(km_t, km_s)
    median = median if np.isfinite(median) else float("nan")
    median_ci = (_first_crossing(km_t, km_lo), _first_crossing(km_t, km_hi))

    if hit.all():
        mean, se, kind = float(np.mean(t)), float(np.std(t, ddof=1) / np.sqrt(n)), "mean"
    else:
        mean, se = _restricted_mean(t, hit, horizon)
        kind = "restricted_mean"
    return HittingSummary(unit=unit, num_runs=n, fraction_hit=float(hit.mean()), km_times=km_t,
                          km_survival=km_s, km_low=km_lo, km_high=km_hi, median=median,
                          median_ci=median_ci, mean=mean, mean_se=se, mean_ci=(mean - z * se, mean + z * se),
                          mean_kind=kind, horizon=horizon, confidence=confidence,
                          num_nonfinite=result.num_nonfinite)


def _restricted_mean(t: np.ndarray, hit: np.ndarray, horizon: float) -> tuple[float, float]:
    """Area under the Kaplan-Meier curve on [0, horizon] and its Greenwood-type standard error.

    Var = sum_i A_i^2 d_i / (n_i (n_i - d_i)) over event times t_i <= horizon, A_i the area under the
    curve from t_i to the horizon (Klein & Moeschberger, Survival Analysis, 2nd ed., sec. 4.5).
    """
    ev = np.unique(t[hit & (t <= horizon)])
    d = np.array([np.sum((t == u) & hit) for u in ev], float)
    n_risk = np.array([np.sum(t >= u) for u in ev], float)
    surv = np.cumprod(1 - d / n_risk)
    # S is a step function: 1 on [0, ev_0), surv_i on [ev_i, ev_{i+1}), last value up to the horizon
    knots = np.concatenate([[0.0], ev, [horizon]])
    levels = np.concatenate([[1.0], surv])
    widths = np.diff(knots)
    pieces = levels * widths
    rmst = float(pieces.sum())
    tail = np.cumsum(pieces[::-1])[::-1][1:]  # area from ev_i to the horizon
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(n_risk > d, tail**2 * d / (n_risk * (n_risk - d)), 0.0)
    return rmst, float(np.sqrt(terms.sum()))
