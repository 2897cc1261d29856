"""The sampler contract and the registry every sampler family plugs into.

A chain sampler is the blackjax shape: `init(position, key) -> State` and
`step(key, State) -> (State, Info)`, pure and jittable. A samplax `Sampler` adds what a
run needs around that pair:

- `build(target, params)` returns the blackjax-shaped pair for tunable `params`
  (a dict of arrays such as `step_size`, `inverse_mass_matrix`), so warmup can adapt them
  and chains can carry their own values under `vmap`;
- `warmup(target, key, position, num_steps)` (optional) returns a `Warmup` with the adapted
  state and params plus a per-step trace;
- `stats(state, info, params)` maps one step's output to `sample_stats` fields
  (`lp`, `acceptance_rate`, `diverging`, `energy`, `n_grad`, `step_size`, `tree_depth` ...).
  `n_grad` (gradient evaluations this step) is required: ESS per gradient is how samplers
  are compared.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

from samplax.target import Target

Params = dict[str, Any]


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
    """Read what a blackjax state/info carries; gradient count from integration steps if present."""
    out: dict[str, jax.Array] = {}
    if hasattr(state, "logdensity"):
        out["lp"] = state.logdensity
    for src, dst in (("acceptance_rate", "acceptance_rate"), ("is_divergent", "diverging"), ("energy", "energy")):
        if hasattr(info, src):
            out[dst] = getattr(info, src)
    out["n_grad"] = jnp.asarray(getattr(info, "num_integration_steps", 1))
    return out


def mass_matrix_default(target: Target, dense: bool) -> jax.Array:
    return jnp.eye(target.dim) if dense else jnp.ones(target.dim)
