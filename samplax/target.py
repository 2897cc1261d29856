"""Target: the one object every sampler consumes and every diagnostic can check against."""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

Array = jax.Array
MAX_INIT_TRIES = 100


def _flat_names(shapes: dict[str, tuple[int, ...]]) -> tuple[str, ...]:
    names = []
    for name, shape in shapes.items():
        if shape == ():
            names.append(name)
        else:
            names.extend(f"{name}[{','.join(map(str, idx))}]" for idx in np.ndindex(*shape))
    return tuple(names)


@dataclasses.dataclass(frozen=True, eq=False)
class Target:
    """A log-density on an unconstrained flat vector, plus optional ground truth.

    `logdensity(x)` takes `x` of shape `(dim,)` (jit/vmap/grad-able; Jacobians of
    constraining transforms included). `constrain(x)` maps it to the named, constrained
    values a user reads (for plain log-densities the identity, under `var_name`).

    Ground truth, `None` when unknown, is expressed on the *constrained* variables flattened
    in `names` order: `mean` and `cov` (shape `(n,)`, `(n, n)`), `sample(key, n) -> (n, n_names)`,
    `log_z` (log normalising constant of `exp(logdensity)`), `reference_draws` (dict of arrays
    with a leading draw axis), `score(x, t)` for diffusion targets.
    """

    logdensity: Callable[[Array], Array]
    dim: int
    init: Callable[[Array], Array]
    constrain: Callable[[Array], dict[str, Array]]
    var_shapes: dict[str, tuple[int, ...]]
    name: str = "target"
    mean: Array | None = None
    cov: Array | None = None
    sample: Callable[[Array, int], Array] | None = None
    log_z: float | None = None
    score: Callable[..., Array] | None = None
    reference_draws: dict[str, np.ndarray] | None = None
    # Tempering (SMC): unconstrained log-prior + log-likelihood = logdensity, and a prior sampler
    # `sample_prior(key, n) -> (n, dim)` in the unconstrained space; None when unknown.
    log_prior: Callable[[Array], Array] | None = None
    log_likelihood: Callable[[Array], Array] | None = None
    sample_prior: Callable[[Array, int], Array] | None = None
    info: dict[str, Any] = dataclasses.field(default_factory=dict)

    # ----------------------------------------------------------------- views
    @property
    def names(self) -> tuple[str, ...]:
        """Flat names of the constrained variables, e.g. ('mu', 'theta[0]', ...)."""
        return _flat_names(self.var_shapes)

    def constrain_flat(self, x: Array) -> Array:
        """Constrained values of `x` flattened in `names` order (what ground truth refers to)."""
        values = self.constrain(x)
        return jnp.concatenate([jnp.reshape(values[k], (-1,)) for k in self.var_shapes])

    def replace(self, **changes) -> "Target":
        return dataclasses.replace(self, **changes)

    def check_position(self, x: Array, what: str = "position") -> Array:
        x = jnp.asarray(x)
        if x.shape != (self.dim,):
            raise ValueError(f"{what} must have shape ({self.dim},) for target {self.name!r}, got {x.shape}")
        return x

    # ---------------------------------------------------------- constructors
    @classmethod
    def from_logdensity(
        cls,
        fn: Callable[[Array], Array],
        dim: int | None = None,
        *,
        example: Array | None = None,
        init_scale: float = 1.0,
        var_name: str = "x",
        name: str = "logdensity",
        **truth,
    ) -> "Target":
        """Wrap a log-density on R^dim. Give `dim`, or an `example` position (any pytree)."""
        if example is not None:
            flat, unravel = ravel_pytree(example)
            if dim is not None and dim != flat.size:
                raise ValueError(f"dim={dim} disagrees with example of size {flat.size}")
            dim = int(flat.size)
            user_fn = fn
            fn = lambda x: user_fn(unravel(x))  # noqa: E731
            shapes = {var_name: (dim,)}
        elif dim is None:
            raise ValueError("from_logdensity needs dim=... or example=... (a position of the right shape)")
        else:
            shapes = {var_name: (int(dim),)}
        dim = int(dim)
        if dim < 1:
            raise ValueError(f"dim must be >= 1, got {dim}")
        if not callable(fn):
            raise TypeError(f"fn must be callable x -> log-density, got {type(fn).__name__}")
        try:
            value = jax.eval_shape(fn, jax.ShapeDtypeStruct((dim,), jnp.result_type(float)))
        except Exception as err:  # noqa: BLE001 - re-raised with context
            raise ValueError(f"log-density could not be evaluated on a vector of shape ({dim},): {err}") from err
        if value.shape != ():
            raise ValueError(f"log-density must return a scalar, got shape {value.shape}; sum over dimensions?")

        init = make_init(fn, dim, init_scale)
        target = cls(
            logdensity=fn, dim=dim, init=init, constrain=lambda x: {var_name: x},
            var_shapes=shapes, name=name, **truth,
        )
        return target

    @classmethod
    def from_numpyro(
        cls,
        model: Callable,
        *args,
        name: str | None = None,
        init_radius: float = 2.0,
        allow_latent_leaves: bool = False,
        **kwargs,
    ) -> "Target":
        """Unconstrained flat log-density of a numpyro model conditioned on its data."""
        from samplax._numpyro import build_numpyro_target

        return build_numpyro_target(
            cls, model, args, kwargs,
            name=name or getattr(model, "__name__", "model"),
            init_radius=init_radius, allow_latent_leaves=allow_latent_leaves,
        )


def model_arguments(model: Callable, args: tuple, kwargs: dict) -> dict[str, Any]:
    """The model's bound arguments by name (defaults applied), for error messages."""
    try:
        bound = inspect.signature(model).bind(*args, **kwargs)
    except TypeError as err:
        raise TypeError(f"arguments do not fit model {getattr(model, '__name__', model)}: {err}") from err
    bound.apply_defaults()
    return dict(bound.arguments)


def make_init(logdensity: Callable, dim: int, radius: float) -> Callable[[Array], Array]:
    """Uniform(-radius, radius) in unconstrained space, retried until log-density and gradient are finite.

    Returns NaNs if no try succeeds, which `sample()` reports as an error naming the target.
    """
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
