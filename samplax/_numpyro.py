"""Build a `Target` from a numpyro model: flat unconstrained log-density, per-draw constrain, checks."""

from __future__ import annotations

from typing import Callable

import jax
import numpy as np
from jax.flatten_util import ravel_pytree
from numpyro.primitives import Messenger

from samplax._numpyro_checks import (NameClash, check_names, check_sites, check_subsampling, diagnose_nonfinite,
                                     latent_names, trace_model)
from samplax.init import MAX_INIT_TRIES, make_init, model_arguments


class _DefaultKey(Messenger):
    """Give `numpyro.prng_key()` a fixed key, as numpyro's initialize_model does for the potential."""

    def process_message(self, msg):
        if msg["type"] == "prng_key" and msg["value"] is None:
            msg["value"] = jax.random.PRNGKey(0)


def _prepare(model, trace):
    """The model as numpyro's initialize_model prepares it: param/mutable sites fixed at their traced values."""
    from numpyro import handlers

    fixed = {k: s["value"] for k, s in trace.items() if s["type"] in ("param", "mutable")}
    if fixed:
        model = handlers.substitute(model, data=fixed)
    return _DefaultKey(model)


def build_numpyro_target(cls, model: Callable, args: tuple, kwargs: dict, *, name: str,
                         init_radius: float, allow_latent_leaves: bool):
    from numpyro.distributions.transforms import biject_to
    from numpyro.infer.util import constrain_fn, potential_energy, unconstrain_fn
    from numpyro.util import _validate_model

    model_arguments(model, args, kwargs)
    try:
        trace = trace_model(model, args, kwargs)
    except NameClash:
        raise
    except Exception as err:  # noqa: BLE001
        raise ValueError(f"model {name!r} failed when run with the given arguments: {err}") from err
    check_subsampling(trace, name)
    check_names(trace, name)
    check_sites(model, args, kwargs, trace, allow_latent_leaves)
    _validate_model(trace, plate_warning="loose")  # numpyro's missing-plate warnings, as initialize_model gives
    prepared = _prepare(model, trace)

    latent = latent_names(trace)
    z0 = {n: biject_to(trace[n]["fn"].support).inv(trace[n]["value"]) for n in latent}
    flat0, unravel = ravel_pytree(z0)
    dim = int(flat0.size)

    def logdensity(x):
        # potential_energy re-derives every site's transform from this point, so supports that depend on
        # other parameters (Stan's real<upper=1-a> b) get the right transform and Jacobian
        return -potential_energy(prepared, args, kwargs, unravel(x))

    def constrain(x):
        # the model's own transforms at this draw (not fixed at a trace), plus its deterministic sites
        return constrain_fn(prepared, args, kwargs, unravel(x), return_deterministic=True)

    init = make_init(logdensity, dim, init_radius)
    # one compiled search for a finite start (the same one sample() runs), instead of numpyro's eager one
    try:
        x0 = np.asarray(jax.jit(init)(jax.random.PRNGKey(0)))
    except Exception as err:  # noqa: BLE001 - re-raised with the model's name
        raise ValueError(f"model {name!r}: evaluating its log-density and gradient failed: {err}") from err
    if not np.all(np.isfinite(x0)):
        try:
            values = {n: trace[n]["value"] for n in latent}
            at = diagnose_nonfinite(model, args, kwargs, unconstrain_fn(model, args, kwargs, values))
        except Exception:  # noqa: BLE001
            at = "(could not evaluate the sites)"
        raise ValueError(
            f"model {name!r}: no finite log-density found in {MAX_INIT_TRIES} initialisation tries. "
            f"Sites with non-finite log-probability at a prior draw: {at}. Check the data against each "
            "site's support (e.g. negative data under a positive distribution) or its parameters."
        )

    shapes = {k: tuple(np.shape(v)) for k, v in jax.eval_shape(constrain, flat0).items()}
    return cls(
        logdensity=logdensity, dim=dim, init=init, constrain=constrain, var_shapes=shapes, name=name,
        info={"model": model, "model_args": args, "model_kwargs": kwargs, "unravel": unravel},
    )
