"""The population-sampler contract and its registry (SMC, Feynman-Kac correctors, diffusion samplers).

A population sampler moves N particles through a fixed number of stages S (a tempering ladder,
or the time grid of a reverse diffusion). `run(key, num_particles, progress)` is pure JAX for
one population and returns a `Population`; `sample()` vmaps it over independent populations
(`num_chains`) keyed by `fold_in(key(seed), c)`, exactly as chain samplers are keyed.
Adaptive schemes whose stage count is not known in advance allocate `max_stages` rows and mark
the rows used in `stage_stats["active"]`.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array


class Population(NamedTuple):
    """One population's result.

    particles: (N, d) final particles, equally weighted (resample at the end when weights differ).
    log_z: scalar estimate of log Z (of the target's unnormalised density, or of the composed
      model's normaliser for Feynman-Kac correctors); NaN from samplers that estimate none
      (`PopulationSampler.estimates_log_z=False`).
    stage_stats: dict of (S,) arrays: e.g. "temperature" or "time", "ess", "log_z_increment",
      "acceptance_rate", "resampled", "n_grad" (gradient or score evaluations at that stage).
    n_grad: total gradient / score / log-density-gradient evaluations made, all stages, all particles.
    particle_stats: optional dict of (N,) arrays, one value per final particle (e.g. "log_prob", the
      probability-flow log-density of each sample); written as the DataTree group "particle_stats".
    """

    particles: Array
    log_z: Array
    stage_stats: dict[str, Array]
    n_grad: Array
    particle_stats: dict[str, Array] = {}  # noqa: RUF012  (never mutated; an empty pytree node)


@dataclasses.dataclass(frozen=True)
class PopulationSampler:
    name: str
    run: Callable[[Any, Array, int, Any], Population]  # (model, key, num_particles, progress) -> Population
    settings: dict[str, Any] = dataclasses.field(default_factory=dict)
    # what the stage axis means ("temperature", "time", ...), the first stage stat shown by the progress bar
    stage_label: str = "stage"
    # False for samplers that estimate no log Z (diffusion samplers from a score, the unweighted FKC baseline):
    # their populations' log_z is NaN, and a NaN log Z is then expected rather than a failure
    estimates_log_z: bool = True


# ------------------------------------------------------------------------------------------- counts
# n_grad units (every population sampler): one gradient / score evaluation = 1, and one Jacobian-vector product of
# the score (a forward-mode pass: exact divergences cost d of them, a Hutchinson estimate one per probe) = 1.
INT32_MAX = 2**31 - 1


def count_dtype():
    """int64 under jax_enable_x64. Without x64 JAX has no int64: counts are int32, each stage's count must fit
    (`stage_counts` refuses one that does not), and the host sums the stages in int64 (`total_n_grad`)."""
    return jnp.int64 if jax.config.jax_enable_x64 else jnp.int32


def stage_counts(counts, what: str = "n_grad"):
    """Static per-stage counts (Python / numpy integers) as a device array of `count_dtype()`; without x64 a stage
    count above 2**31 - 1 is refused by name instead of wrapping."""
    c = np.asarray(counts, dtype=np.int64)
    if not jax.config.jax_enable_x64 and c.size and int(c.max()) > INT32_MAX:
        raise ValueError(f"{what}: {int(c.max())} evaluations in one stage do not fit the int32 counts JAX uses "
                         "without 64-bit mode; enable it (jax.config.update('jax_enable_x64', True)) or use fewer "
                         "particles per population")
    return jnp.asarray(c, count_dtype())


def final_weight_stats(log_w, num_stages: int) -> dict:
    """Stage stats of a population weighted once, at the end of its paths (the learned samplers, SFS), both at the
    last of `num_stages` stages: its own variance of log Z (`state.log_z_var`, which `particles.results` pools into
    log_z_se: from the 4 populations' spread alone the SE has 3 degrees of freedom) and `n_logdensity`, the final
    log pi~(x_K) of each path, a log-density evaluation without a gradient (as SMC's stat)."""
    from samplax.particles.state import log_z_var

    n = log_w.shape[0]
    return {"log_z_var_increment": jnp.zeros((num_stages,), log_w.dtype).at[-1].set(log_z_var(log_w)),
            "n_logdensity": stage_counts(np.r_[np.zeros(num_stages - 1, int), n], "n_logdensity")}


def total_n_grad(n_grad, stage_stats) -> np.ndarray:
    """Per-population totals as host int64. Without x64 the device total is int32 and wraps past 2**31 - 1; the
    per-stage counts summed here in int64 do not. The stage sum is used where it agrees with the device total
    modulo 2**32 (a sampler whose stage counts do not add up to its total keeps its own total)."""
    total = np.asarray(n_grad).astype(np.int64)
    stages = None if stage_stats is None else stage_stats.get("n_grad")
    if stages is None or not np.issubdtype(np.asarray(stages).dtype, np.integer):
        return total
    s = np.asarray(stages).astype(np.int64).reshape(*total.shape, -1).sum(axis=-1)
    return np.where((s - total) % 2**32 == 0, s, total)


_REGISTRY: dict[str, Callable[..., PopulationSampler]] = {}


def register(name: str):
    """Decorator: `@register("smc")` on a factory `(**settings) -> PopulationSampler`."""

    def deco(factory):
        if name in _REGISTRY:
            raise ValueError(f"population sampler {name!r} is already registered")
        _REGISTRY[name] = factory
        return factory

    return deco


def _load_families() -> None:
    import samplax.particles.families  # noqa: F401  (registration side effects)


def available() -> list[str]:
    _load_families()
    return sorted(_REGISTRY)


def is_registered(name) -> bool:
    _load_families()
    return isinstance(name, str) and name in _REGISTRY


def get(name: str, **settings) -> PopulationSampler:
    _load_families()
    if name not in _REGISTRY:
        raise ValueError(f"unknown population sampler {name!r}; available: {', '.join(available())}")
    try:
        return _REGISTRY[name](**settings)
    except TypeError as err:
        raise TypeError(f"bad settings for sampler {name!r}: {err}") from err
