"""Initial positions and model-argument binding shared by every Target constructor."""

from __future__ import annotations

import functools
import inspect
from typing import Any, Callable

import jax
import jax.numpy as jnp

Array = jax.Array
MAX_INIT_TRIES = 100


def callable_name(fn: Callable) -> str:
    """A readable name for a model or function, also for functools.partial and callable objects."""
    while isinstance(fn, functools.partial):
        fn = fn.func
    return getattr(fn, "__name__", None) or type(fn).__name__


def model_arguments(model: Callable, args: tuple, kwargs: dict) -> dict[str, Any]:
    """The model's bound arguments by name (defaults applied), for error messages."""
    try:
        bound = inspect.signature(model).bind(*args, **kwargs)
    except TypeError as err:
        raise TypeError(f"arguments do not fit model {callable_name(model)}: {err}") from err
    bound.apply_defaults()
    return dict(bound.arguments)


def make_init(logdensity: Callable, dim: int, radius: float, name: str = "init_radius") -> Callable[[Array], Array]:
    """Uniform(-radius, radius) in unconstrained space, retried until log-density and gradient are finite.

    radius must be a positive finite number, refused naming the argument `name` (a negative one gave every chain
    the same start, a NaN one blamed the model). Returns NaNs if no try succeeds, which `sample()` reports as an
    error naming the target.
    """
    from samplax import checks

    radius = checks.positive(name, radius)
    vg = jax.value_and_grad(logdensity)

    def ok(x):
        v, g = vg(x)
        return jnp.isfinite(v) & jnp.all(jnp.isfinite(g))

    def init(key):
        def cond(c):
            i, x, good = c
            return (~good) & (i < MAX_INIT_TRIES)

        def body(c):
            i, _, _ = c
            x = jax.random.uniform(jax.random.fold_in(key, i), (dim,), minval=-radius, maxval=radius)
            return i + 1, x, ok(x)

        x0 = jnp.zeros((dim,))
        _, x, good = jax.lax.while_loop(cond, body, (0, x0, jnp.array(False)))
        return jnp.where(good, x, jnp.nan)

    return init
