"""HMC and NUTS from blackjax (NUTS with Stan's seam U-turn checks added: `nuts_kernel`). Whichever of step
size and metric the user did not give is adapted during warmup (`adapt=` overrides: True adapts both, a name or
tuple adapts exactly those); `metric=` picks the metric:

- "low_rank" (the default): nutpie's gradient-based low-rank metric over growing windows
  (`adapt_low_rank.low_rank_warmup`), at most `max_rank` directions (None: min(d, 100)), sampled through
  `adapt_low_rank.kernel_metric` (blackjax's low-rank metric in elementwise arithmetic, so draws do not depend on
  the chain layout);
- "diag": Stan's window adaptation with a diagonal Welford estimate (`adapt.window_warmup`; the default before
  issue 18);
- "dense": the same with a dense estimate (`dense_mass=True` is an alias);
- "fisher_diag": the same warmup with the Fisher diagonal sqrt(Var x / Var grad) (nutpie's default metric).
"""

from __future__ import annotations

import blackjax
import jax
import jax.numpy as jnp

from samplax import checks
from samplax.samplers.adapt import window_warmup
from samplax.samplers.adapt_low_rank import LowRankWarmup, low_rank_warmup
from samplax.samplers.adapt_low_rank import kernel_metric as _imm
from samplax.samplers.base import (Algorithm, DefaultValue, Sampler, adapted_names, nonfinite_state, register,
                                   resolve_target_accept)
from samplax.samplers.nuts_kernel import nuts as robust_nuts


TUNABLE = ("step_size", "inverse_mass_matrix")
DEFAULT_TARGET_ACCEPT = DefaultValue(0.8)  # Stan's, numpyro's and blackjax's
DEFAULT_STEP_JITTER = 0.1  # nuts-rs StepSizeSettings.jitter
METRICS = ("diag", "dense", "low_rank", "fisher_diag")
DEFAULT_METRIC = "low_rank"  # nutpie's warmup; "diag" is Stan's (benchmarks/README.md, NUTS vs nutpie)


def _metric(metric, dense_mass):
    """The metric name from `metric=` and the `dense_mass=` alias (True means metric="dense")."""
    if metric is None:
        return "dense" if dense_mass else DEFAULT_METRIC
    if not checks.member(metric, METRICS):
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    if dense_mass and metric != "dense":
        raise ValueError(f"dense_mass=True is metric='dense' and contradicts metric={metric!r}: pass one of them")
    return metric


def _setup(name, metric, max_rank, target_accept, step_size, inverse_mass_matrix, adapt, build, stats):
    """(default_params, warmup, adapted, target_accept): given values are used as given; the rest is adapted;
    target_accept: as given, or the default when the step size is adapted (`resolve_target_accept`)."""
    if max_rank is not None:
        checks.integer("max_rank", max_rank, 1)
        if metric != "low_rank":
            raise ValueError(f"max_rank={max_rank!r} bounds the low-rank metric and is not used by metric={metric!r}: "
                             "drop max_rank, or pass metric='low_rank'")
    checks.given_scale("step_size", step_size)
    checks.given_inverse_mass_matrix(inverse_mass_matrix)
    given = {"step_size": step_size, "inverse_mass_matrix": inverse_mass_matrix}
    adapted = adapted_names(adapt, TUNABLE, given)
    adapt_mass = "inverse_mass_matrix" in adapted
    dense = metric == "dense"

    def params(target):
        if inverse_mass_matrix is None:
            imm = jnp.eye(target.dim) if dense else jnp.ones(target.dim)
        else:
            imm = jnp.asarray(inverse_mass_matrix, float)
            # a given matrix that is not adapted is used as given, diagonal (d,) or dense (d, d), whatever `metric`
            shapes = ([(target.dim, target.dim)] if dense else [(target.dim,)]) if adapt_mass else \
                [(target.dim,), (target.dim, target.dim)]
            if imm.shape not in shapes:
                raise ValueError(f"inverse_mass_matrix must have shape {' or '.join(map(str, shapes))} "
                                 f"(metric={metric!r}{', adapted' if adapt_mass else ''}), got {imm.shape}")
        return {"step_size": None if step_size is None else jnp.asarray(step_size, float), "inverse_mass_matrix": imm}

    def default_params(target):
        if step_size is None:
            raise ValueError(
                f"num_warmup=0 leaves the step size of {name} untuned: pass step_size=... (and optionally "
                "inverse_mass_matrix=...) as sampler settings, or use num_warmup > 0"
            )
        return params(target)

    if "step_size" not in adapted and step_size is None:
        raise ValueError(f"{name}: adapt={adapt!r} leaves step_size neither given nor adapted: pass step_size=...")
    target_accept = resolve_target_accept(name, target_accept, DEFAULT_TARGET_ACCEPT, "step_size" in adapted)
    warmup = None
    if adapt_mass and metric in ("low_rank", "fisher_diag"):
        warmup = low_rank_warmup(build, stats, params, max_rank=0 if metric == "fisher_diag" else max_rank,
                                 adapt_step="step_size" in adapted, target_accept=target_accept,
                                 start_from_given=inverse_mass_matrix is not None)
    elif adapted:
        warmup = window_warmup(build, stats, params, adapt_step="step_size" in adapted, adapt_mass=adapt_mass,
                               dense=dense, target_accept=target_accept)
    return default_params, warmup, adapted, target_accept


def _hmc_stats(state, info, params):
    # a divergence whose trajectory ended on a NaN/inf log-density is the model's NaN region, not curvature:
    # blackjax turns a NaN energy into a divergence, so the ends of the trajectory are what tell them apart
    ends = ((info.trajectory_leftmost_state, info.trajectory_rightmost_state)
            if hasattr(info, "trajectory_leftmost_state") else (info.proposal,))
    return {
        "lp": state.logdensity,
        "acceptance_rate": info.acceptance_rate,
        "diverging": info.is_divergent,
        "diverging_nonfinite": info.is_divergent & nonfinite_state(*ends),
        "energy": info.energy,
        "n_grad": jnp.asarray(info.num_integration_steps),
        "step_size": params["step_size"],
    }


def _nuts_stats(state, info, params):
    out = _hmc_stats(state, info, params)
    out["tree_depth"] = jnp.asarray(info.num_trajectory_expansions)
    return out


@register("nuts")
def nuts(*, metric: str | None = None, dense_mass: bool = False, max_rank: int | None = None,
         target_accept: float = DEFAULT_TARGET_ACCEPT, max_num_doublings: int = 10, step_size: float | None = None,
         inverse_mass_matrix=None, adapt=None, step_jitter: float | None = None) -> Sampler:
    """No-U-Turn sampler (multinomial, blackjax's, with Stan's seam U-turn checks: `nuts_kernel`); `metric` picks
    the adapted metric (module docstring).

    step_jitter: each transition (warmup and sampling) runs at the step size times a uniform factor in
      [1 - step_jitter, 1 + step_jitter], drawn from its own key (nutpie's default, 0.1; 0 turns it off, as Stan).
      None (default): 0.1, or 0 when `step_size` is given, so a given step is used as given. The adapted / given
      step size is the centre, and is what `step_size` in sample_stats reports. A step drawn independently of the
      state leaves the target invariant. ESS per 1k gradients over 5 seeds (`benchmarks/nutpie.py --seeds`):
      non-centred funnel 239 -> 263 (nutpie 264), gauss100 unchanged (169), kidscore_momiq 537 -> 492 and
      diamonds 275 -> 257 (about 2 se each); net about even."""
    if step_jitter is None:
        step_jitter = 0.0 if step_size is not None else DEFAULT_STEP_JITTER
    if not 0 <= step_jitter < 1:
        raise ValueError(f"step_jitter must be in [0, 1) (a fraction of the step size), got {step_jitter}")
    checks.integer("max_num_doublings", max_num_doublings, 1)
    metric = _metric(metric, dense_mass)

    def build(target, params):
        alg = robust_nuts(target.logdensity, params["step_size"], _imm(params), max_num_doublings=max_num_doublings)
        if not step_jitter:
            return Algorithm(lambda x, key: alg.init(x), alg.step)

        def step(key, state):
            k_jitter, k = jax.random.split(key)
            eps = params["step_size"] * jax.random.uniform(k_jitter, (), minval=1 - step_jitter, maxval=1 + step_jitter)
            return robust_nuts(target.logdensity, eps, _imm(params), max_num_doublings=max_num_doublings).step(k, state)

        return Algorithm(lambda x, key: alg.init(x), step)

    default_params, warmup, adapted, target_accept = _setup("nuts", metric, max_rank, target_accept, step_size,
                                                            inverse_mass_matrix, adapt, build, _nuts_stats)
    return Sampler(
        name="nuts", build=build, stats=_nuts_stats, default_params=default_params, warmup=warmup, adapted=adapted,
        adaptation=warmup if isinstance(warmup, LowRankWarmup) else None,
        settings={"metric": metric, "max_rank": max_rank, "target_accept": target_accept,
                  "max_num_doublings": max_num_doublings, "step_jitter": step_jitter},
    )


@register("hmc")
def hmc(*, num_integration_steps: int = 16, metric: str | None = None, dense_mass: bool = False,
        max_rank: int | None = None, target_accept: float = DEFAULT_TARGET_ACCEPT, step_size: float | None = None,
        inverse_mass_matrix=None, adapt=None) -> Sampler:
    """Static HMC (fixed number of leapfrog steps); `metric` picks the adapted metric (module docstring)."""
    if num_integration_steps < 1:
        raise ValueError(f"num_integration_steps must be >= 1, got {num_integration_steps}")
    metric = _metric(metric, dense_mass)

    def build(target, params):
        alg = blackjax.hmc(target.logdensity, params["step_size"], _imm(params), num_integration_steps)
        return Algorithm(lambda x, key: alg.init(x), alg.step)

    default_params, warmup, adapted, target_accept = _setup("hmc", metric, max_rank, target_accept, step_size,
                                                            inverse_mass_matrix, adapt, build, _hmc_stats)
    return Sampler(
        name="hmc", build=build, stats=_hmc_stats, default_params=default_params, warmup=warmup, adapted=adapted,
        adaptation=warmup if isinstance(warmup, LowRankWarmup) else None,
        settings={"num_integration_steps": num_integration_steps, "metric": metric, "max_rank": max_rank,
                  "target_accept": target_accept},
    )
