"""The sampler contract and the registry every sampler family plugs into.

A chain sampler is the blackjax shape: `init(position, key) -> State` and
`step(key, State) -> (State, Info)`, pure and jittable. A samplax `Sampler` adds what a
run needs around that pair:

- `build(target, params)` returns the blackjax-shaped pair for tunable `params`
  (a dict of arrays such as `step_size`, `inverse_mass_matrix`), so warmup can adapt them
  and chains can carry their own values under `vmap`;
- `warmup(target, key, position, num_steps)` (optional) returns a `Warmup` with the adapted
  state and params plus a per-step trace; `adapted` names the params it adapts. A value the
  user passes is used as given and not adapted unless they ask (`adapt=...`, see `adapted_names`);
  with nothing to adapt `warmup` is None and the run loop's warmup is plain burn-in;
- `stats(state, info, params)` maps one step's output to `sample_stats` fields
  (`lp`, `acceptance_rate`, `diverging`, `energy`, `n_grad`, `step_size`, `tree_depth` ...).
  `n_grad` (gradient evaluations this step) is required: ESS per gradient is how samplers
  are compared. It is the count really made, NaN when unknown (a user's pair that reports none).
  Samplers that revert non-finite steps (MCLMC, sECD) report them in a bool stat `nonfinite`; the others mark a
  step that met a NaN/inf log-density or gradient as `diverging` and `diverging_nonfinite`, so it is named as the
  model's NaN/inf region, never as curvature (HMC / NUTS / MAMS / adjusted underdamped: a trajectory end; MALA,
  ULA, underdamped, two_level: the proposal; GPSS: any log-density evaluation of the step).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from samplax.target import Target

Params = dict[str, Any]

# per-step stats that mark a step's divergence as a NaN/inf log-density or gradient rather than curvature: HMC / NUTS
# `diverging_nonfinite`, and `nonfinite` of the samplers that revert non-finite steps (MCLMC, sECD); read by the run
# loop (phases, counting a thinned window's) and by `mixing.nonfinite_divergences`
NONFINITE_FLAGS = ("diverging_nonfinite", "nonfinite")


def nonfinite_state(*states):
    """Whether any of these states (with `logdensity` and `logdensity_grad`) has a NaN/inf log-density or gradient."""
    bad = jnp.zeros((), bool)
    for st in states:
        bad = bad | ~jnp.isfinite(st.logdensity) | ~jnp.all(jnp.isfinite(st.logdensity_grad))
    return bad


class Algorithm(NamedTuple):
    """A blackjax-shaped pair with a key-taking `init` (some blackjax inits need one)."""

    init: Callable[[jax.Array, jax.Array], Any]
    step: Callable[[jax.Array, Any], tuple[Any, Any]]


class Warmup(NamedTuple):
    state: Any
    params: Params
    trace: dict[str, jax.Array]  # per warmup step: "position", "lp", "acceptance_rate", "n_grad", ...


@dataclasses.dataclass(frozen=True)
class Sampler:
    name: str
    build: Callable[[Target, Params], Algorithm]
    stats: Callable[[Any, Any, Params], dict[str, jax.Array]]
    default_params: Callable[[Target], Params] | None = None
    warmup: Callable[[Target, jax.Array, jax.Array, int], Warmup] | None = None
    settings: dict[str, Any] = dataclasses.field(default_factory=dict)
    adapted: tuple[str, ...] = ()  # names of the params `warmup` adapts for these settings
    # the warmup as steps (`begin` / `params` / `update` / `final` / `schedule`, e.g. `adapt_low_rank.LowRankWarmup`):
    # `run` then carries it through the sampling program, so the kernel is compiled once (None: `warmup` is used)
    adaptation: Any = None

    def initial_params(self, target: Target) -> Params:
        if self.default_params is None:
            return {}
        return self.default_params(target)


_REGISTRY: dict[str, Callable[..., Sampler]] = {}


def register(name: str):
    """Decorator: `@register("nuts")` on a factory `(**settings) -> Sampler`."""

    def deco(factory):
        if name in _REGISTRY:
            raise ValueError(f"sampler {name!r} is already registered")
        _REGISTRY[name] = factory
        return factory

    return deco


def available() -> list[str]:
    return sorted(_REGISTRY)


def get(name: str, **settings) -> Sampler:
    """Build a registered sampler with its static settings."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown sampler {name!r}; available: {', '.join(available())}")
    try:
        return _REGISTRY[name](**settings)
    except TypeError as err:
        raise TypeError(f"bad settings for sampler {name!r}: {err}") from err


def from_pair(init: Callable, step: Callable, name: str = "custom") -> Sampler:
    """Wrap a user's blackjax-shaped `init`/`step` (or a blackjax `SamplingAlgorithm`)."""
    import inspect

    try:
        takes_key = len(inspect.signature(init).parameters) >= 2
    except (TypeError, ValueError):
        takes_key = False

    def build(target, params):
        return Algorithm(
            init=(lambda x, key: init(x, key)) if takes_key else (lambda x, key: init(x)),
            step=step,
        )

    return Sampler(name=name, build=build, stats=generic_stats)


def generic_stats(state, info, params) -> dict[str, jax.Array]:
    """Read what a blackjax state/info carries.

    `n_grad` is the info's `num_integration_steps` (blackjax HMC / NUTS: one gradient per velocity-Verlet
    step) when it has one, else NaN: a user's pair closes over its own log-density, so samplax cannot see
    how many gradients a step takes, and a guess (one per step is wrong for MCLMC-like kernels) is not a count.
    """
    out: dict[str, jax.Array] = {}
    if hasattr(state, "logdensity"):
        out["lp"] = state.logdensity
    for src, dst in (("acceptance_rate", "acceptance_rate"), ("is_divergent", "diverging"), ("energy", "energy")):
        if hasattr(info, src):
            out[dst] = getattr(info, src)
    steps = getattr(info, "num_integration_steps", None)
    out["n_grad"] = jnp.asarray(jnp.nan) if steps is None else jnp.asarray(steps, float)
    return out


class DefaultValue(float):
    """A setting's default number, told apart from the same number given by the user (`isinstance`), so a given
    value that nothing would use can be refused while signatures and `samplax samplers` still show the number."""

    __slots__ = ()


class DefaultInt(int):
    """`DefaultValue` for an integer setting."""

    __slots__ = ()


class DefaultStr(str):
    """`DefaultValue` for a string setting."""

    __slots__ = ()


def given_settings(**settings) -> list[str]:
    """"name=value" of the settings the user gave: those not left at a DefaultValue / DefaultInt / DefaultStr
    default. For refusing settings that nothing would use in the configuration chosen."""
    return [f"{k}={v!r}" for k, v in settings.items() if not isinstance(v, (DefaultValue, DefaultInt, DefaultStr))]


def resolve_target_accept(name: str, target_accept, default: float, step_adapted: bool) -> float | None:
    """The acceptance rate the warmup tunes the step size for: as given, or the default (a `DefaultValue`, or
    `default` for None). A value given for a step size that is given and not adapted would be ignored, so it is
    refused; None is returned when nothing uses it."""
    if target_accept is None or isinstance(target_accept, DefaultValue):
        return float(default if target_accept is None else target_accept) if step_adapted else None
    if not step_adapted:
        raise ValueError(f"{name}: target_accept={target_accept!r} tunes the step size in warmup, but step_size is "
                         "given and not adapted, so nothing would use it: drop target_accept, or drop step_size "
                         "(or pass adapt='step_size' to start the tuning from it)")
    try:
        ok = 0 < float(target_accept) < 1  # NaN fails too
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(f"target_accept must be a number in (0, 1), got {target_accept!r}")
    return float(target_accept)


def adapted_names(adapt, tunable: tuple[str, ...], given: dict[str, Any]) -> tuple[str, ...]:
    """Which of `tunable` a warmup adapts: those the user did not give, unless `adapt` says otherwise.

    adapt: None (default) adapts every tunable param not given; True adapts all of them (given values are
      then initial values); False adapts none; a name or tuple of names adapts exactly those (given or not).
    """
    if getattr(adapt, "shape", None) == () and hasattr(adapt, "dtype") and np.dtype(adapt.dtype).kind == "b":
        adapt = bool(adapt)  # a numpy bool or a 0-d bool array is a bool
    if adapt is None:
        return tuple(n for n in tunable if given.get(n) is None)
    if adapt is True:
        return tuple(tunable)
    if adapt is False:
        return ()
    if isinstance(adapt, str):
        names = (adapt,)
    else:
        try:
            names = tuple(adapt)
        except TypeError:
            raise ValueError(f"adapt must be None, True, False, a param name or a tuple of names from "
                             f"{list(tunable)}, got {adapt!r}") from None
    unknown = [n for n in names if n not in tunable]
    if unknown:
        raise ValueError(f"adapt: {unknown} cannot be adapted here; choose from {list(tunable)}, or pass adapt=True "
                         "(all) / False (none)")
    return tuple(n for n in tunable if n in names)
