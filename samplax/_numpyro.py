"""Build a `Target` from a numpyro model: flat unconstrained log-density, constrain, checks."""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from samplax.target import MAX_INIT_TRIES, make_init, model_arguments



def _trace(model, args, kwargs, seed=0):
    from numpyro import handlers
    from numpyro.infer.initialization import init_to_uniform

    # init_to_uniform fills continuous latents as numpyro's initialize_model does, so sites that cannot be
    # sampled (ImproperUniform, e.g. Stan's flat or ordered parameters) trace; discrete ones still sample.
    seeded = handlers.substitute(handlers.seed(model, rng_seed=seed), substitute_fn=init_to_uniform)
    return handlers.trace(seeded).get_trace(*args, **kwargs)


def _dist_name(fn) -> str:
    while hasattr(fn, "base_dist") and type(fn).__name__ in ("ExpandedDistribution", "Independent", "MaskedDistribution"):
        fn = fn.base_dist
    return type(fn).__name__


def _check_sites(model, args, kwargs, trace, allow_latent_leaves: bool) -> None:
    latent = [n for n, s in trace.items() if s["type"] == "sample" and not s["is_observed"]]
    if not latent:
        raise ValueError(
            f"model {model.__name__!r} has no latent sample sites: nothing to sample. "
            "Did you pass data for every site?"
        )
    for n in latent:
        fn = trace[n]["fn"]
        if getattr(fn, "is_discrete", False) or getattr(getattr(fn, "support", None), "is_discrete", False):
            raise ValueError(
                f"latent site {n!r} is discrete ({_dist_name(fn)}); samplax's samplers need continuous "
                "latents. Marginalise it out (sum over its values with logsumexp) or pass its value as data."
            )
    if allow_latent_leaves:
        return
    none_args = [k for k, v in model_arguments(model, args, kwargs).items() if v is None]
    if not none_args:
        return
    from numpyro.infer.inspect import get_dependencies

    try:
        deps = get_dependencies(model, args, kwargs)["prior_dependencies"]
    except Exception:  # noqa: BLE001 - the dependency tracer is best effort
        return
    used = {up for down, ups in deps.items() for up in ups if up != down}
    for n in latent:
        parents = [u for u in deps.get(n, {}) if u != n and u in latent]
        if n not in used and parents:
            raise ValueError(
                f"latent site {n!r} depends on {parents} but nothing depends on it, and model argument(s) "
                f"{none_args} are None: it looks like an observed site whose data is missing. Pass the data "
                f"(e.g. {none_args[0]}=...), or Target.from_numpyro(..., allow_latent_leaves=True) to sample it."
            )


def _diagnose_nonfinite(model, args, kwargs, unconstrained: dict) -> str:
    """Name the sites whose log-probability is not finite at an unconstrained point."""
    from numpyro import handlers
    from numpyro.infer.util import constrain_fn

    try:
        params = constrain_fn(model, args, kwargs, unconstrained)
        tr = handlers.trace(handlers.substitute(handlers.seed(model, 0), data=params)).get_trace(*args, **kwargs)
    except Exception as err:  # noqa: BLE001
        return f"(evaluating the model failed: {err})"
    bad = []
    for n, s in tr.items():
        if s["type"] != "sample":
            continue
        lp = jnp.sum(s["fn"].log_prob(s["value"]))
        if not bool(jnp.isfinite(lp)):
            bad.append(f"{n!r} ({_dist_name(s['fn'])}, log_prob={float(lp)})")
    return ", ".join(bad) if bad else "(no single site; the sum or its gradient is not finite)"


def build_numpyro_target(cls, model: Callable, args: tuple, kwargs: dict, *, name: str,
                         init_radius: float, allow_latent_leaves: bool):
    from numpyro.infer.util import initialize_model, init_to_uniform

    model_arguments(model, args, kwargs)
    try:
        trace = _trace(model, args, kwargs)
    except Exception as err:  # noqa: BLE001
        raise ValueError(f"model {name!r} failed when run with the given arguments: {err}") from err
    _check_sites(model, args, kwargs, trace, allow_latent_leaves)

    key = jax.random.PRNGKey(0)
    try:
        info = initialize_model(
            key, model, model_args=args, model_kwargs=kwargs,
            init_strategy=init_to_uniform(radius=init_radius), dynamic_args=False,
        )
    except RuntimeError as err:
        latent = {n: s["value"] for n, s in trace.items() if s["type"] == "sample" and not s["is_observed"]}
        from numpyro.infer.util import unconstrain_fn

        try:
            at = _diagnose_nonfinite(model, args, kwargs, unconstrain_fn(model, args, kwargs, latent))
        except Exception:  # noqa: BLE001
            at = "(could not evaluate the sites)"
        raise ValueError(
            f"model {name!r}: no finite log-density found in {MAX_INIT_TRIES} initialisation tries. "
            f"Sites with non-finite log-probability at a prior draw: {at}. Check the data against each "
            "site's support (e.g. negative data under a positive distribution) or its parameters."
        ) from err

    flat0, unravel = ravel_pytree(info.param_info.z)
    potential_fn = info.potential_fn
    postprocess = info.postprocess_fn
    dim = int(flat0.size)

    def logdensity(x):
        return -potential_fn(unravel(x))

    def constrain(x):
        return postprocess(unravel(x))

    shapes = {k: tuple(np.shape(v)) for k, v in jax.eval_shape(constrain, flat0).items()}
    init = make_init(logdensity, dim, init_radius)
    return cls(
        logdensity=logdensity, dim=dim, init=init, constrain=constrain, var_shapes=shapes, name=name,
        info={"model": model, "model_args": args, "model_kwargs": kwargs, "unravel": unravel},
    )
