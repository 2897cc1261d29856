"""Prior and posterior predictive draws of a numpyro model's Target, as ArviZ DataTree groups.

`predictive(target, dt=None)` (exported as `samplax.predictive`) is the one entry point: the prior predictive when
no posterior is given, else the posterior predictive added to `dt`; it delegates to the two functions below.
`posterior_predictive(dt, target)` runs numpyro's `Predictive` at the run's constrained posterior draws with every
observed site released (its value simulated instead of fixed to the data) and adds `posterior_predictive` (the
observed sites' simulated values, plus deterministic sites that are functions of them) and `observed_data`.
`prior_predictive(target)` draws the whole model forward: `prior` (latent and deterministic sites) and
`prior_predictive` (observed sites). Dims follow the run's: `chain, draw`, then plate names where a plate covers an
axis (`samplax.numpyro_groups.site_dims`), so `arviz_plots.plot_ppc_dist` reads them.

A run's DataTree keeps only its target's name, not the model, so `posterior_predictive` takes the Target
explicitly. A Target built from a plain log-density has no generative model and is refused.
"""

from __future__ import annotations

import jax
import numpy as np
from numpyro.primitives import Messenger

from samplax import checks
from samplax._numpyro_checks import is_factor as _is_factor
from samplax._numpyro_checks import is_improper

__all__ = ["posterior_predictive", "predictive", "prior_predictive"]

PRIOR_DRAWS = 500  # prior predictive draws when num_draws is not given


class _Unobserve(Messenger):
    """Release observed sample sites: their value is drawn from the site's distribution instead of the data
    (`numpyro.factor` terms stay as they are)."""

    def process_message(self, msg):
        if msg["type"] == "sample" and msg.get("is_observed") and not _is_factor(msg):
            msg["value"] = None
            msg["is_observed"] = False


def _model_parts(target, what: str):
    from samplax.target import Target

    if not isinstance(target, Target):
        raise TypeError(f"{what} needs target=<the samplax.Target the run sampled> (Target.from_numpyro(model, ...)); "
                        f"got {type(target).__name__}")
    info = target.info
    if "model" not in info:
        raise ValueError(f"target {target.name!r} has no generative model: predictive draws need a Target built "
                         "by Target.from_numpyro(model, *args, **kwargs), not a plain log-density")
    return info["model"], tuple(info.get("model_args", ())), dict(info.get("model_kwargs", {}))


def _trace(model, args, kwargs):
    from samplax._numpyro_checks import trace_model

    return trace_model(model, args, kwargs)  # improper sites (flat priors) filled as initialize_model fills them


def _site_kinds(model, args, kwargs):
    """(observed sample sites, latent sample sites, deterministic sites) of one seeded run of the model."""
    tr = _trace(model, args, kwargs)
    observed = [n for n, s in tr.items() if s["type"] == "sample" and s["is_observed"] and not _is_factor(s)]
    latent = [n for n, s in tr.items() if s["type"] == "sample" and not s["is_observed"]]
    determ = [n for n, s in tr.items() if s["type"] == "deterministic"]
    return observed, latent, determ


def _prior_problems(model, args, kwargs, name: str) -> None:
    """Refuse a prior predictive of a model with improper latent sites (nothing to draw from), and warn that
    `numpyro.factor` terms are left out of forward simulation (a prior penalty written as a factor is not in the
    draws; numpyro's Predictive skips it)."""
    import warnings

    tr = _trace(model, args, kwargs)
    improper = [n for n, s in tr.items() if s["type"] == "sample" and not s["is_observed"] and is_improper(s)]
    if improper:
        raise ValueError(f"prior_predictive of {name!r}: latent site(s) {improper} have an improper prior "
                         "(ImproperUniform: a flat prior, as Stan's unbounded parameters), which cannot be drawn "
                         "from; give them a proper prior in the model, or use the posterior predictive")
    factors = [n for n, s in tr.items() if s["type"] == "sample" and _is_factor(s)]
    if factors:
        warnings.warn(f"prior_predictive of {name!r}: numpyro.factor term(s) {factors} are left out of the "
                      "forward simulation, so these are draws of the model without them (a prior penalty written "
                      "as a factor does not shape the prior draws)", UserWarning, stacklevel=3)


def _dims(target, names):
    from samplax.numpyro_groups import site_dims

    dims = site_dims(target)
    return {k: v for k, v in dims.items() if k in names}


def _datasets(groups: dict[str, dict], dims: dict) -> dict:
    from samplax.results import group_datasets

    return group_datasets(groups, dims)


def posterior_predictive(dt, target=None, *, seed: int = 0, num_draws: int | None = None):
    """Add `posterior_predictive` (and `observed_data` when missing) to the DataTree `dt` of a run on `target`.

    dt: what `samplax.sample` returned (its `posterior` group holds the constrained draws, dims chain, draw, ...).
    target: the numpyro Target the run sampled (the DataTree does not keep the model; required).
    num_draws: use this many draws per chain, evenly spaced (default all). seed: the simulation's PRNG seed.
    Returns `dt`, extended in place. With `num_draws` the `posterior_predictive` group has fewer draws than
    `posterior`; its `draw` coordinate holds the posterior draw indices used.
    """
    if target is None:
        raise TypeError("posterior_predictive(dt, target=...) needs target: the samplax.Target the run sampled "
                        "(a run's DataTree keeps only its name, not the numpyro model)")
    if not hasattr(dt, "children") or "posterior" not in dt.children:
        raise ValueError("posterior_predictive needs a DataTree with a `posterior` group (what samplax.sample "
                         f"returns), got {type(dt).__name__}"
                         + (f" with groups {sorted(dt.children)}" if hasattr(dt, "children") else ""))
    model, args, kwargs = _model_parts(target, "posterior_predictive")
    seed = checks.seed(seed)
    observed, latent, determ = _site_kinds(model, args, kwargs)
    if not observed:
        raise ValueError(f"target {target.name!r} has no observed sites: nothing to predict "
                         "(pass the data as the model's obs= arguments)")
    post = dt["posterior"].to_dataset()
    missing = [n for n in latent if n not in post]
    if missing:
        raise ValueError(f"the posterior of this DataTree lacks the latent site(s) {missing} of target "
                         f"{target.name!r}: was it sampled from another model?")
    n_chain, n_draw = post.sizes["chain"], post.sizes["draw"]
    if num_draws is None:
        idx = np.arange(n_draw)
    else:
        num_draws = checks.integer("num_draws", num_draws, 1)
        idx = np.unique(np.linspace(0, n_draw - 1, min(num_draws, n_draw)).round().astype(int))
    samples = {n: np.asarray(post[n].transpose("chain", "draw", ...).values)[:, idx] for n in latent}

    from numpyro.infer import Predictive

    pred = Predictive(_Unobserve(model), posterior_samples=samples, batch_ndims=2, parallel=True)
    out = pred(jax.random.PRNGKey(seed), *args, **kwargs)
    out = {k: np.asarray(v) for k, v in out.items()}
    group = {n: out[n] for n in observed}
    for n in determ:  # deterministic sites that change with the simulated data (e.g. a replicated statistic)
        if n in out and n in post:
            at_post = np.asarray(post[n].transpose("chain", "draw", ...).values)[:, idx]
            if at_post.shape != out[n].shape or not np.allclose(at_post, out[n], equal_nan=True):
                group[n] = out[n]
    dims = _dims(target, set(group) | set(observed))
    ds = _datasets({"posterior_predictive": group}, dims)["posterior_predictive"]
    ds = ds.assign_coords(draw=post["draw"].values[idx], chain=post["chain"].values)
    dt["posterior_predictive"] = ds
    if "observed_data" not in dt.children:
        tr = _trace(model, args, kwargs)
        obs = {n: np.asarray(tr[n]["value"]) for n in observed}
        dt["observed_data"] = _datasets({"observed_data": obs}, dims)["observed_data"]
    return dt


def prior_predictive(target, *, num_draws: int = PRIOR_DRAWS, seed: int = 0):
    """Draws of the model run forward from its prior: a DataTree with `prior` (latent and deterministic sites)
    and `prior_predictive` (observed sites, simulated), dims (chain=1, draw=num_draws, ...)."""
    from xarray import DataTree

    model, args, kwargs = _model_parts(target, "prior_predictive")
    num_draws = checks.integer("num_draws", num_draws, 1)
    seed = checks.seed(seed)
    _prior_problems(model, args, kwargs, target.name)
    observed, latent, determ = _site_kinds(model, args, kwargs)

    from numpyro.infer import Predictive

    pred = Predictive(_Unobserve(model), num_samples=num_draws, parallel=True, return_sites=[*latent, *determ,
                                                                                               *observed])
    out = {k: np.asarray(v)[None] for k, v in pred(jax.random.PRNGKey(seed), *args, **kwargs).items()}
    prior = {n: out[n] for n in (*latent, *determ) if n in out}
    pp = {n: out[n] for n in observed if n in out}
    groups = {"prior": prior}
    if pp:
        groups["prior_predictive"] = pp
    dims = _dims(target, set(out))
    dt = DataTree.from_dict(_datasets(groups, dims))
    dt.attrs.update({"target": target.name, "seed": int(seed), "num_draws": num_draws})
    return dt


def predictive(target, dt=None, *, seed: int = 0, num_draws: int | None = None):
    """Predictive draws of a numpyro model, numpyro's `Predictive` as ArviZ groups.

    Without `dt`: the prior predictive, a new DataTree with `prior` and `prior_predictive` groups
    (`num_draws` draws, default 500). With `dt` (what `samplax.sample` returned for `target`): the posterior
    predictive, `posterior_predictive` (and `observed_data`) added to `dt` in place and `dt` returned
    (`num_draws` draws per chain, evenly spaced; default all). Either way `arviz_plots.plot_ppc_dist` reads the
    result (`group="prior_predictive"` for the prior).
    """
    from samplax.target import Target

    def _is_tree(x):
        return hasattr(x, "children") and not isinstance(x, Target)

    if _is_tree(target) and isinstance(dt, Target):
        raise TypeError("predictive(target, dt): the Target comes first, then the run's DataTree "
                        "(got them the other way round)")
    if dt is None:
        return prior_predictive(target, num_draws=PRIOR_DRAWS if num_draws is None else num_draws, seed=seed)
    if not _is_tree(dt):
        raise TypeError(f"predictive(target, dt): dt must be a run's DataTree (what samplax.sample returned) or "
                        f"None for the prior predictive, got {type(dt).__name__}")
    return posterior_predictive(dt, target, seed=seed, num_draws=num_draws)
