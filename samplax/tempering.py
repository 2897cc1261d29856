"""Prior / likelihood split of a Target, for tempering (SMC moves from the prior to the posterior).

`tempering_parts(target, reference=None)` returns `(log_prior, log_likelihood, sample_prior)` on the
unconstrained flat vector, with log_prior + log_likelihood = target.logdensity:

- from the Target's own `log_prior`, `log_likelihood`, `sample_prior` fields when set;
- for numpyro targets, derived with numpyro handlers: the log prior is the latent sites' log_prob plus
  the Jacobian of the unconstraining transforms, the log likelihood is the observed sites' log_prob
  (and `numpyro.factor` terms, which prior draws cannot honour); prior draws come from
  `numpyro.infer.Predictive` and are unconstrained draw by draw (supports may depend on other sites);
- with `reference=(mean, scale)`: a Gaussian reference N(mean, scale^2 I) (mean, scale scalars or
  (dim,) vectors) is the "prior" and the "likelihood" is logdensity - log reference. This is the only
  option for plain log-densities, and overrides the model's prior when given.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

CHECK_POINTS = 3


def _gaussian_reference(target, reference):
    try:
        mean, scale = reference
    except (TypeError, ValueError):
        raise ValueError(f"reference must be a pair (mean, scale), got {reference!r}") from None
    dim = target.dim
    # numpy: this runs while the sampler is traced, and the checks below need concrete values
    mean = np.broadcast_to(np.asarray(mean, dtype=float), (dim,)) if np.ndim(mean) == 0 else np.asarray(mean, float)
    scale = np.broadcast_to(np.asarray(scale, dtype=float), (dim,)) if np.ndim(scale) == 0 else np.asarray(scale, float)
    if mean.shape != (dim,) or scale.shape != (dim,):
        raise ValueError(f"reference mean and scale must be scalars or of shape ({dim},) for target {target.name!r}, "
                         f"got {mean.shape} and {scale.shape}")
    if not (np.all(np.isfinite(scale)) and np.all(scale > 0) and np.all(np.isfinite(mean))):
        raise ValueError(f"reference scale must be positive and finite and mean finite, got {mean}, {scale}")
    mean, scale = jnp.asarray(mean), jnp.asarray(scale)

    def log_prior(x):
        return jnp.sum(jax.scipy.stats.norm.logpdf(x, mean, scale))

    def log_likelihood(x):
        return target.logdensity(x) - log_prior(x)

    def sample_prior(key, n):
        return mean + scale * jax.random.normal(key, (n, dim), dtype=mean.dtype)

    return log_prior, log_likelihood, sample_prior


def _base_dist(fn):
    while hasattr(fn, "base_dist"):
        fn = fn.base_dist
    return fn


def _check_proper(model, args, kwargs, name, params):
    """Raise for latent sites with an improper prior (ImproperUniform), naming the site."""
    from numpyro import handlers
    from numpyro.distributions import ImproperUniform
    from numpyro.infer.util import _unconstrain_params

    # substitute values rather than sample: an improper site cannot be sampled
    tr = handlers.trace(_unconstrain_params(model, params)).get_trace(*args, **kwargs)
    for site in tr.values():
        if site["type"] == "sample" and not site["is_observed"] and isinstance(_base_dist(site["fn"]), ImproperUniform):
            raise ValueError(f"tempering needs a proper prior to draw from, but site {site['name']!r} of model {name!r} "
                             f"has an improper prior ({type(_base_dist(site['fn'])).__name__}); give it a proper prior, "
                             "or pass reference=(mean, scale) for a Gaussian reference in the unconstrained space")


def _numpyro_parts(target):
    from jax.flatten_util import ravel_pytree
    from numpyro.infer import Predictive
    from numpyro.infer.util import _unconstrain_params, compute_log_probs, unconstrain_fn

    model, args, kwargs, unravel = (target.info[k] for k in ("model", "model_args", "model_kwargs", "unravel"))
    _check_proper(model, args, kwargs, target.name, unravel(jnp.zeros(target.dim)))
    latent = tuple(unravel(jnp.zeros(target.dim)).keys())
    jac_sites = {f"_{k}_log_det" for k in latent}

    def split(x):
        logps, tr = compute_log_probs(_unconstrain_params(model, unravel(x)), args, kwargs, {})
        lp = jnp.zeros(())
        ll = jnp.zeros(())
        for name, v in logps.items():
            # Jacobian factors of the unconstraining transforms are observed "factor" sites; they belong to the prior
            if tr[name]["is_observed"] and name not in jac_sites:
                ll = ll + v
            else:
                lp = lp + v
        return lp, ll

    def log_prior(x):
        return split(x)[0]

    def log_likelihood(x):
        return split(x)[1]

    def sample_prior(key, n):
        draws = Predictive(model, num_samples=n, return_sites=list(latent))(key, *args, **kwargs)
        # each draw is unconstrained with the transforms of its own trace: supports may depend on other sites
        flat = jax.vmap(lambda d: ravel_pytree(unconstrain_fn(model, args, kwargs, d))[0])(
            {k: draws[k] for k in latent})
        return flat

    return log_prior, log_likelihood, sample_prior


def _check_split(target, log_prior, log_likelihood, sample_prior, what):
    """log_prior + log_likelihood must equal logdensity at prior draws; raise naming the target otherwise."""
    x = sample_prior(jax.random.PRNGKey(20240601), CHECK_POINTS)
    if x.shape != (CHECK_POINTS, target.dim):
        raise ValueError(f"sample_prior of target {target.name!r} must return shape (n, {target.dim}), "
                         f"got {x.shape} for n={CHECK_POINTS}")
    lp, ll, ld = (np.asarray(jax.vmap(f)(x)) for f in (log_prior, log_likelihood, target.logdensity))
    ok = np.isfinite(ld)
    if not np.any(ok):
        raise ValueError(f"target {target.name!r}: log-density is not finite at any of {CHECK_POINTS} prior draws "
                         f"({what}); check the model, or pass reference=(mean, scale)")
    err = np.abs(lp + ll - ld)[ok]
    tol = 1e-6 * (1 + np.abs(ld[ok]))
    if np.any(err > tol):
        raise ValueError(f"target {target.name!r}: log_prior + log_likelihood differs from logdensity by up to "
                         f"{err.max():.3g} at prior draws ({what}); the prior/likelihood split is wrong")


def tempering_parts(target, reference=None, check: bool = True):
    """(log_prior, log_likelihood, sample_prior) of `target` in its unconstrained space; see the module docstring."""
    # samplers call this while being traced: build constants and run the check eagerly, not as staged tracers
    with jax.ensure_compile_time_eval():
        return _tempering_parts(target, reference, check)


def _tempering_parts(target, reference, check):
    if reference is not None:
        parts, what = _gaussian_reference(target, reference), "Gaussian reference"
    else:
        fields = {"log_prior": target.log_prior, "log_likelihood": target.log_likelihood,
                  "sample_prior": target.sample_prior}
        given = [k for k, v in fields.items() if v is not None]
        if len(given) == 3:
            parts, what = (fields["log_prior"], fields["log_likelihood"], fields["sample_prior"]), "Target fields"
        elif given:
            missing = [k for k in fields if k not in given]
            raise ValueError(f"target {target.name!r} sets {given} but not {missing}; tempering needs all of "
                             "log_prior, log_likelihood and sample_prior, or pass reference=(mean, scale)")
        elif all(k in target.info for k in ("model", "model_args", "model_kwargs", "unravel")):
            parts, what = _numpyro_parts(target), "numpyro prior/likelihood"
        else:
            raise ValueError(f"target {target.name!r} is a plain log-density with no prior to draw from; pass "
                             "reference=(mean, scale) for a Gaussian reference N(mean, scale^2 I), or build the Target "
                             "with log_prior, log_likelihood and sample_prior")
    if check:
        _check_split(target, *parts, what)
    return parts
