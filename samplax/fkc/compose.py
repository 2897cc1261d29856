"""Compositions of score models sharing one forward process: p^beta, p1 p2, p1^gamma p2^(1-gamma), p exp(lam r).

Each returns a `Composition` that `samplax.sample(composed, "fkc", num_particles=N, num_steps=K)`
samples with Feynman-Kac correctors (weights: `samplax.fkc.weights`). `as_target()` names the
particles; for exact Gaussian-mixture inputs it is the exact composed target at t_min (unnormalised
log-density, its log Z, mean, cov and an exact sampler) from `samplax.models.mixtures`.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp

from samplax import checks
from samplax.diffusion.score import ScoreModel

Array = jax.Array
KINDS = ("anneal", "product", "geometric", "tilt")


@dataclasses.dataclass(frozen=True, eq=False)
class Composition:
    """q_t = prod_i p_{i,t}^{exponents_i} * exp(b(t) reward(x)), b(t) from 0 at t_max to `lam` at t_min."""

    kind: str
    models: tuple
    exponents: tuple
    reward: Callable[[Array], Array] | None = None
    lam: float = 0.0
    name: str = "composition"

    @property
    def process(self):
        return self.models[0].process

    @property
    def dim(self) -> int:
        return self.models[0].dim

    @property
    def total_exponent(self) -> float:
        return float(sum(self.exponents))

    @property
    def exact(self) -> bool:
        """All inputs are exact Gaussian mixtures (closed-form log_prob at every t)."""
        return all(m.log_prob is not None and {"weights", "means", "covs"} <= set(m.info) for m in self.models)

    def reward_schedule(self, t):
        """(b(t), db/dtau): linear in t, 0 at t_max and lam at t_min; tau = t_max - t."""
        p = self.process
        span = p.t_max - p.t_min
        return self.lam * (p.t_max - t) / span, self.lam / span

    def log_q(self, x, t):
        """Unnormalised log q_t(x) = sum_i beta_i log p_{i,t}(x) + b(t) r(x); needs exact log_prob."""
        if not all(m.log_prob is not None for m in self.models):
            raise ValueError(f"composition {self.name!r}: log q needs every input model's log_prob")
        out = sum(b * m.log_prob(x, t) for b, m in zip(self.exponents, self.models))
        if self.reward is not None:
            out = out + self.reward_schedule(t)[0] * self.reward(x)
        return out

    def as_target(self):
        """Exact composed Target at t_min for exact mixture inputs in 1-2D (or a product in any d), else names only."""
        from samplax.models import mixtures

        if self.exact and (self.kind == "product" or self.dim <= 2):
            return mixtures.composed_target(self)
        return _names_only(self)

    def __repr__(self) -> str:
        return f"Composition({self.kind}, {self.name!r}, exponents={self.exponents}, lam={self.lam})"


def _names_only(comp: Composition):
    """Names the particles; the log-density is exact when the inputs' log_prob are known (log Z unknown)."""
    from samplax.target import Target

    dim = comp.dim
    if all(m.log_prob is not None for m in comp.models):
        t0 = jnp.asarray(comp.process.t_min, float)
        return Target.from_logdensity(lambda x: comp.log_q(x, t0), dim, name=comp.name)
    return Target(logdensity=lambda x: jnp.full((), jnp.nan), dim=dim, init=lambda key: jnp.zeros(dim),
                  constrain=lambda x: {"x": x}, var_shapes={"x": (dim,)}, name=comp.name)


def _check_model(m, what: str) -> ScoreModel:
    if isinstance(m, Composition):
        raise TypeError(f"{what} is already a composition ({m!r}); compositions take samplax.diffusion.ScoreModel inputs")
    if not isinstance(m, ScoreModel):
        raise TypeError(f"{what} must be a samplax.diffusion.ScoreModel, got {type(m).__name__}")
    return m


def _same_process(m1: ScoreModel, m2: ScoreModel):
    p, q = m1.process, m2.process
    if (p.name, p.params, p.t_min, p.t_max) != (q.name, q.params, q.t_min, q.t_max):
        raise ValueError(f"m1 and m2 must share one forward process, got {p.name}{p.params} on [{p.t_min}, {p.t_max}] "
                         f"and {q.name}{q.params} on [{q.t_min}, {q.t_max}]; build both with the same process=")
    if m1.dim != m2.dim:
        raise ValueError(f"m1 and m2 must have the same dimension, got {m1.dim} and {m2.dim}")


def _positive(value, what: str) -> float:
    # not float(value): float("2") and float(True) would turn a string or a flag into an exponent
    return checks.positive(what, value)


def anneal(m: ScoreModel, beta: float) -> Composition:
    """p^beta (beta > 1 sharpens, beta < 1 flattens); drift uses beta * score."""
    m = _check_model(m, "m")
    beta = _positive(beta, "beta")
    return Composition("anneal", (m,), (beta,), name=f"{m.name}^{beta:g}")


def product(m1: ScoreModel, m2: ScoreModel) -> Composition:
    """p1 * p2 (product of experts); drift uses s1 + s2."""
    m1, m2 = _check_model(m1, "m1"), _check_model(m2, "m2")
    _same_process(m1, m2)
    return Composition("product", (m1, m2), (1.0, 1.0), name=f"{m1.name}*{m2.name}")


def geometric(m1: ScoreModel, m2: ScoreModel, gamma: float) -> Composition:
    """p1^gamma p2^(1-gamma) (classifier-free-guidance style; gamma > 1 extrapolates); drift gamma s1 + (1-gamma) s2."""
    m1, m2 = _check_model(m1, "m1"), _check_model(m2, "m2")
    _same_process(m1, m2)
    gamma = checks.finite("gamma", gamma)  # a real number, not a string or a bool coerced by float()
    return Composition("geometric", (m1, m2), (gamma, 1.0 - gamma), name=f"{m1.name}^{gamma:g}*{m2.name}^{1 - gamma:g}")


def tilt(m: ScoreModel, reward: Callable[[Array], Array], lam: float) -> Composition:
    """p(x) exp(lam r(x)); r(x) for one x of shape (dim,) -> scalar, differentiable twice (its Laplacian enters the weights)."""
    m = _check_model(m, "m")
    if not callable(reward):
        raise TypeError(f"reward must be callable x -> scalar, got {type(reward).__name__}")
    out = jax.eval_shape(reward, jax.ShapeDtypeStruct((m.dim,), jnp.result_type(float)))
    if out.shape != ():
        raise ValueError(f"reward(x) must return a scalar for x of shape ({m.dim},), got shape {out.shape}")
    lam = checks.finite("lam", lam)  # a real number, not a string or a bool coerced by float()
    return Composition("tilt", (m,), (1.0,), reward=reward, lam=lam, name=f"{m.name}*exp({lam:g}r)")


def as_composition(model) -> Composition:
    """A Composition, or a plain ScoreModel as the trivial one (p^1: no correction needed)."""
    if isinstance(model, Composition):
        return model
    if isinstance(model, ScoreModel):
        return Composition("anneal", (model,), (1.0,), name=model.name)
    raise TypeError(f"fkc samples a composed score model from samplax.fkc.anneal/product/geometric/tilt (or a "
                    f"samplax.diffusion.ScoreModel); got {type(model).__name__}")
