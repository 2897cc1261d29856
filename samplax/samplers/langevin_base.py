"""What the Langevin samplers share: stats, settings checks, and which params a warmup adapts and how.

Step sizes (`num_warmup > 0`, `step_size` not given, or named in `adapt`):
- adjusted samplers (`mala`, `underdamped(adjusted=True)`) tune h by dual averaging towards `target_accept`,
  with Stan-style windowed estimation of C when `mass_matrix` is "diagonal" or "dense" and C is not given;
- unadjusted samplers (`ula`, `underdamped(adjusted=False)`, `sgld`) run exactly that warmup with their
  Metropolis-adjusted counterpart (MALA for ula / sgld, adjusted OBABO for underdamped) at `target_accept=0.9`,
  then sample *without* the accept step at the tuned h. Rule and reason: the adjusted kernel's rejection rate is
  a computable measure of one step's discretisation error at the current point, so 10% rejections puts h at a
  fixed fraction of the local stability limit whatever the target's scale and conditioning, with no hand-tuning.
  It does not bound the stationary bias, which for ULA grows like sqrt(d) h; raise `target_accept` (e.g. 0.98)
  for a smaller bias, or pass `step_size`.
A given `step_size` is used as given: with C still to estimate, the warmup runs the sampler itself at that h
and only estimates C; with nothing to adapt, warmup is plain burn-in.
"""

from __future__ import annotations

import jax.numpy as jnp

from samplax import checks
from samplax.samplers.adapt import window_warmup
from samplax.samplers.base import DefaultValue, Warmup, adapted_names, nonfinite_state, resolve_target_accept
from samplax.samplers.precondition import MASS_MATRICES, initial_imm

UNADJUSTED_TARGET_ACCEPT = DefaultValue(0.9)


def stats(state, info, params, n_grad=1):
    """One step's sample_stats. A step whose proposal met a NaN/inf log-density or gradient (`info.nonfinite`, or
    the end of adjusted OBABO's trajectory, `info.proposal`) is `diverging` and `diverging_nonfinite`: the model's
    NaN region, which a rejection hides from the draws and an unadjusted step carries into them."""
    out = {"lp": state.logdensity, "n_grad": jnp.asarray(n_grad), "step_size": params["step_size"]}
    if hasattr(info, "acceptance_rate"):
        out["acceptance_rate"] = info.acceptance_rate
    nonfinite = (info.nonfinite if hasattr(info, "nonfinite")
                 else nonfinite_state(info.proposal) if hasattr(info, "proposal")
                 else ~jnp.isfinite(state.logdensity))
    out["diverging"] = getattr(info, "is_divergent", nonfinite)
    out["diverging_nonfinite"] = out["diverging"] & nonfinite
    if hasattr(info, "energy"):
        out["energy"] = info.energy
    return out


def check_settings(mass_matrix, step_size):
    if not checks.member(mass_matrix, MASS_MATRICES):
        raise ValueError(f"mass_matrix must be one of {MASS_MATRICES}, got {mass_matrix!r}")
    checks.given_scale("step_size", step_size)


def setup(name, *, mass_matrix, target_accept, default_target_accept, step_size, inverse_mass_matrix, adapt, build,
          tune_build=None, to_state=None, step_stats=None):
    """(default_params, warmup, adapted, target_accept) of a Langevin sampler; target_accept as given, or
    `default_target_accept` when the step size is adapted (None when it is not: `resolve_target_accept`).

    tune_build: the adjusted counterpart that tunes h for an unadjusted sampler (None: the sampler is adjusted);
    to_state: converts the counterpart's final state into the sampler's. step_stats: the sampler's own `stats`
    when its counts differ from this module's one gradient per step (two_level: subchain_length surrogate
    gradients and one expensive evaluation), so its warmup is counted as it runs.
    """
    checks.given_inverse_mass_matrix(inverse_mass_matrix)  # step_size: check_settings, which every caller runs first
    tunable = ("step_size",) + (() if mass_matrix == "identity" else ("inverse_mass_matrix",))
    adapted = adapted_names(adapt, tunable, {"step_size": step_size, "inverse_mass_matrix": inverse_mass_matrix})
    if "step_size" not in adapted and step_size is None:
        raise ValueError(f"{name}: adapt={adapt!r} leaves step_size neither given nor adapted: pass step_size=...")
    target_accept = resolve_target_accept(name, target_accept, default_target_accept, "step_size" in adapted)

    def params(target):
        return {"step_size": None if step_size is None else jnp.asarray(step_size, float),
                "inverse_mass_matrix": initial_imm(target, mass_matrix, inverse_mass_matrix)}

    def default_params(target):
        if step_size is None:
            raise ValueError(f"num_warmup=0 leaves {name} untuned: pass step_size=..., or use num_warmup > 0")
        return params(target)

    if not adapted:
        return default_params, None, adapted, target_accept
    adapt_step, adapt_mass = "step_size" in adapted, "inverse_mass_matrix" in adapted
    tuned_by_counterpart = adapt_step and tune_build is not None
    warmup = window_warmup(tune_build if tuned_by_counterpart else build,
                           stats if step_stats is None or tuned_by_counterpart else step_stats, params,
                           adapt_step=adapt_step,
                           adapt_mass=adapt_mass, dense=mass_matrix == "dense", target_accept=target_accept,
                           initial_step_size=1.0 if adapt_mass else 0.1)
    if tuned_by_counterpart and to_state is not None:
        warmup = convert_warmup(warmup, to_state)
    return default_params, warmup, adapted, target_accept


def convert_warmup(warmup, convert):
    def run(target, key, position, num_steps):
        w = warmup(target, key, position, num_steps)
        return Warmup(convert(w.state), w.params, w.trace)

    if hasattr(warmup, "unadapted"):
        run.unadapted = warmup.unadapted
    return run
