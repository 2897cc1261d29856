"""Target: the one object every sampler consumes and every diagnostic can check against."""

from __future__ import annotations

import dataclasses
import operator
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

# re-exported: make_init / model_arguments / MAX_INIT_TRIES used to live here
from samplax.init import MAX_INIT_TRIES, callable_name, make_init, model_arguments  # noqa: F401

Array = jax.Array


def _flat_names(shapes: dict[str, tuple[int, ...]]) -> tuple[str, ...]:
    names = []
    for name, shape in shapes.items():
        if shape == ():
            names.append(name)
        else:
            names.extend(f"{name}[{','.join(map(str, idx))}]" for idx in np.ndindex(*shape))
    return tuple(names)


def _in_float_dtype(fn):
    """`fn` with its value cast to JAX's default float dtype (float64 with x64 on)."""

    def wrapped(x):
        return jnp.asarray(fn(x), jnp.result_type(float))

    return wrapped


@dataclasses.dataclass(frozen=True, eq=False)
class Target:
    """A log-density on an unconstrained flat vector, plus optional ground truth.

    `logdensity(x)` takes `x` of shape `(dim,)` (jit/vmap/grad-able; Jacobians of
    constraining transforms included). `constrain(x)` maps it to the named, constrained
    values a user reads: for numpyro models the model's own transforms at `x` (so supports that
    depend on other parameters are honoured) plus deterministic sites; for plain log-densities the
    identity, under `var_name` or the leaf names of the `example` pytree.

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
        example: Any = None,
        init_scale: float = 1.0,
        var_name: str = "x",
        name: str = "logdensity",
        **truth,
    ) -> "Target":
        """Wrap a log-density on R^dim. Give `dim`, or an `example` position (any pytree).

        With `example`, `fn` receives positions shaped like it and every leaf is its own named variable
        (dict keys, joined by '.' when nested; `var_name` for a single array, `var_name.0`... in a tuple).
        """
        if not callable(fn):
            raise TypeError(f"fn must be callable x -> log-density, got {type(fn).__name__}")
        if dim is not None:
            dim = _check_dim(dim)
        if example is not None:
            fn, dim, shapes, constrain = _from_example(fn, example, dim, var_name)
        elif dim is None:
            raise ValueError("from_logdensity needs dim=... or example=... (a position of the right shape)")
        else:
            shapes = {var_name: (dim,)}
            constrain = lambda x: {var_name: x}  # noqa: E731
        from samplax._numpyro_checks import name_problem

        for k in shapes:  # a sample dim's name would make the variable vanish; a "/" lost the run after sampling
            problem = name_problem(k)
            if problem:
                raise ValueError(f"variable {k!r} {problem} (var_name=, or the example's keys)")
        try:
            value = jax.eval_shape(fn, jax.ShapeDtypeStruct((dim,), jnp.result_type(float)))
        except Exception as err:  # noqa: BLE001 - re-raised with context
            raise ValueError(f"log-density could not be evaluated on a vector of shape ({dim},): {err}") from err
        if value.shape != ():
            raise ValueError(f"log-density must return a scalar, got shape {value.shape}; sum over dimensions?")
        if value.dtype != jnp.result_type(float):
            # e.g. float32 arithmetic inside with x64 on: the samplers' loops carry the log-density in the
            # positions' dtype, and a float32 one broke their while-loop carries (MCLMC raised a dtype mismatch).
            # Widening is exact; the value is not rounded.
            fn = _in_float_dtype(fn)

        init = make_init(fn, dim, init_scale, "init_scale")
        return cls(logdensity=fn, dim=dim, init=init, constrain=constrain, var_shapes=shapes, name=name, **truth)

    @classmethod
    def from_numpyro(
        cls,
        model: Callable,
        *args,
        name: str | None = None,
        init_radius: float | None = None,
        allow_latent_leaves: bool | None = None,
        model_kwargs: dict | None = None,
        **kwargs,
    ) -> "Target":
        """Unconstrained flat log-density of a numpyro model conditioned on its data: `model(*args, **kwargs)`.

        name, init_radius (default 2.0: initial points are drawn in [-2, 2] unconstrained), allow_latent_leaves
        (default False) are this function's options. A model argument with one of their names goes in
        `model_kwargs={...}` (merged with `**kwargs`; the keywords are then the options); without model_kwargs,
        such a keyword is refused as ambiguous.
        """
        from samplax._numpyro import build_numpyro_target

        own = {"name": name, "init_radius": init_radius, "allow_latent_leaves": allow_latent_leaves}
        if model_kwargs is not None:
            if not isinstance(model_kwargs, dict):
                raise TypeError(f"model_kwargs must be a dict of the model's keyword arguments, got "
                                f"{type(model_kwargs).__name__}")
            twice = sorted(set(model_kwargs) & set(kwargs))
            if twice:
                raise ValueError(f"model argument(s) {twice} given both in model_kwargs and as keywords")
            kwargs = {**kwargs, **model_kwargs}
        # with model_kwargs given, the keywords are this function's options; without it, a keyword the model also
        # takes is ambiguous (it used to be taken as the option and never reached the model)
        clash = [k for k, v in own.items() if v is not None and model_kwargs is None and _takes_keyword(model, k)]
        if clash:
            raise ValueError(f"from_numpyro: {clash} name(s) both an option of from_numpyro and an argument of the "
                             f"model {callable_name(model)!r}; pass the model's value as model_kwargs="
                             f"{{{clash[0]!r}: ...}} (with model_kwargs given, {clash[0]}= is from_numpyro's "
                             "option)")
        return build_numpyro_target(
            cls, model, args, kwargs,
            name=name or callable_name(model),
            init_radius=2.0 if init_radius is None else init_radius,
            allow_latent_leaves=bool(allow_latent_leaves),
        )


def _takes_keyword(fn, key: str) -> bool:
    """Whether `fn` has a parameter named `key` (not counting a **kwargs catch-all)."""
    import inspect

    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    p = params.get(key)
    return p is not None and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)


def _check_dim(dim) -> int:
    """`dim` as a positive int; a float such as 2.7 is an error, never truncated."""
    try:
        if isinstance(dim, (bool, np.bool_)):
            raise TypeError
        value = operator.index(dim)
    except TypeError:
        raise TypeError(f"dim must be a positive integer (the length of the position vector), got {dim!r} "
                        f"({type(dim).__name__})") from None
    if value < 1:
        raise ValueError(f"dim must be >= 1, got {value}")
    return value


def _leaf_name(path, var_name: str) -> str:
    parts = []
    for key in path:
        for attr in ("key", "name", "idx"):  # DictKey, GetAttrKey, SequenceKey
            if hasattr(key, attr):
                parts.append(str(getattr(key, attr)))
                break
        else:
            parts.append(str(key))
    if not path or not isinstance(path[0], (jax.tree_util.DictKey, jax.tree_util.GetAttrKey)):
        parts.insert(0, var_name)  # a bare array or a tuple/list: name it after var_name
    return ".".join(parts)


def _from_example(fn, example, dim, var_name):
    """Log-density on the flat vector, and named per-leaf constrained values, from an example pytree."""
    example = jax.tree.map(lambda v: jnp.asarray(v, dtype=jnp.result_type(float)), example)
    leaves_with_path, _ = jax.tree_util.tree_flatten_with_path(example)
    if not leaves_with_path:
        raise ValueError("example has no array leaves: give a position such as {'mu': 0.0, 'theta': jnp.zeros(3)}")
    names = [_leaf_name(path, var_name) for path, _ in leaves_with_path]
    if len(set(names)) != len(names):
        raise ValueError(f"example's leaves give clashing variable names {names}; rename its keys")
    flat, unravel = ravel_pytree(example)
    if dim is not None and dim != flat.size:
        raise ValueError(f"dim={dim} disagrees with example of size {flat.size}")
    shapes = {n: tuple(leaf.shape) for n, (_, leaf) in zip(names, leaves_with_path)}

    def logdensity(x):
        return fn(unravel(x))

    def constrain(x):
        return dict(zip(names, jax.tree.leaves(unravel(x))))

    return logdensity, int(flat.size), shapes, constrain
