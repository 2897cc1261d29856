"""What ArviZ users expect of a numpyro model's DataTree: plate-named dims, observed and constant data, and
the pointwise log-likelihood (so `arviz_stats.loo` works). `numpyro.factor` terms are neither observed data nor
log-likelihood here (arviz_base's numpyro converter puts them in both): samplax cannot tell a prior penalty from a
likelihood written as a factor; write a likelihood as an observed site (`obs=`) for LOO."""

from __future__ import annotations

from typing import Any

import jax
import numpy as np

from samplax._numpyro_checks import is_factor


def _model_parts(target):
    info = target.info
    if "model" not in info:
        return None
    return info["model"], info.get("model_args", ()), info.get("model_kwargs", {})


def _trace(model, args, kwargs):
    from numpyro import handlers
    from numpyro.infer.initialization import init_to_uniform

    seeded = handlers.substitute(handlers.seed(model, rng_seed=0), substitute_fn=init_to_uniform)
    return handlers.trace(seeded).get_trace(*args, **kwargs)


def site_dims(target) -> dict[str, list[str]]:
    """Dimension names per site: plate names where a plate covers a batch axis, `<site>_dim_<i>` elsewhere
    (event axes included)."""
    parts = _model_parts(target)
    if parts is None:
        return {}
    tr = _trace(*parts)
    out = {}
    for name, site in tr.items():
        if site["type"] not in ("sample", "deterministic"):
            continue
        shape = np.shape(site["value"])
        dims = [f"{name}_dim_{i}" for i in range(len(shape))]
        # a plate's dim counts from the right of the batch shape: event axes (e.g. an MVN's last axis) sit
        # to its right and keep their site-named dims. Deterministic sites have no event shape unless the
        # model names them through infer={"event_dims": [names]} (as arviz's numpyro converter reads them).
        if site["type"] == "sample":
            event_ndim = int(getattr(site["fn"], "event_dim", 0))
        else:
            named = [str(d) for d in (site.get("infer") or {}).get("event_dims", ())]
            event_ndim = min(len(named), len(shape))
            if event_ndim:
                dims[len(shape) - event_ndim:] = named[-event_ndim:]
        batch_ndim = max(len(shape) - event_ndim, 0)
        for frame in site.get("cond_indep_stack", ()):
            axis = batch_ndim + frame.dim if frame.dim < 0 else frame.dim
            if 0 <= axis < batch_ndim and shape[axis] == frame.size:
                dims[axis] = frame.name
        out[name] = dims
    return out


def observed_and_constant(target) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Observed sites' values, and the model's array arguments that are not observations."""
    parts = _model_parts(target)
    if parts is None:
        return {}, {}
    model, args, kwargs = parts
    tr = _trace(model, args, kwargs)
    observed = {n: np.asarray(s["value"]) for n, s in tr.items()
                if s["type"] == "sample" and s["is_observed"] and not is_factor(s)}
    from samplax.init import model_arguments  # the model's bound arguments by name

    constant = {}
    for k, v in model_arguments(model, args, kwargs).items():
        if v is None or callable(v):
            continue
        arr = np.asarray(v) if isinstance(v, (list, tuple, np.ndarray, jax.Array, int, float)) else None
        if arr is None or arr.dtype == object:
            continue
        if any(arr.shape == o.shape and np.array_equal(arr, o) for o in observed.values()):
            continue  # the observation itself lives in observed_data
        constant[k] = arr
    return observed, constant


def pointwise_log_likelihood(target, posterior: dict[str, np.ndarray], observed=None) -> dict[str, np.ndarray]:
    """log p(y_i | theta) per observed site (the names `observed`), shape (chain, draw, *site shape), at each
    posterior draw. numpyro's log_likelihood also returns `numpyro.factor` terms; they are left out, as from
    observed_data: a factor is a log-density term, a prior penalty as often as a likelihood, and arviz_stats.loo
    refused a log_likelihood group holding one beside the data ("several log likelihood arrays")."""
    parts = _model_parts(target)
    if parts is None:
        return {}
    from numpyro.infer.util import log_likelihood

    model, args, kwargs = parts
    if observed is None:
        observed = observed_and_constant(target)[0]
    # deterministic sites are substituted too: they equal what the model recomputes from the latent ones
    out = log_likelihood(model, {k: np.asarray(v) for k, v in posterior.items()}, *args, batch_ndims=2, **kwargs)
    return {k: np.asarray(v) for k, v in out.items() if k in observed}


def numpyro_groups(target, posterior: dict[str, np.ndarray]) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """Extra DataTree groups and the dims of every variable, for a numpyro Target (empty otherwise)."""
    if _model_parts(target) is None:
        return {}, {}
    dims = site_dims(target)
    observed, constant = observed_and_constant(target)
    groups: dict[str, Any] = {}
    if observed:
        groups["observed_data"] = observed
        groups["log_likelihood"] = pointwise_log_likelihood(target, posterior, observed)
    if constant:
        groups["constant_data"] = constant
    return groups, dims
