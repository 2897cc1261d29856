"""Learned samplers in whitened coordinates: `train(target, kind, reference="auto" | (mean, scale))`.

Every learned sampler starts from a reference N(0, sigma^2 I) at the origin of the target's (unconstrained)
coordinates. A real posterior is rarely there: kidscore's intercept sits at ~26, and PIS / DDS / CMCD / SCLD / NETS
trained from the origin on the posteriordb ports either fail at their first iteration (a non-finite loss) or end
with degenerate weights. With `reference` the sampler learns in coordinates y with x = mean + L y:

    log pi_y(y) = log pi~(mean + L y) + log |det L|,

the same normaliser Z, so log Z and the weights are unchanged in meaning; the particles are mapped back to x.
`reference="auto"` takes (mean, L) from `reference_fit.auto_reference` (the Laplace fit refined by importance
sampling, covariance x 4: what tempered SMC's reference="auto" starts from), so y's reference N(0, sigma^2) with the
default sigma = 1 is that Gaussian. (mean, scale) with scalars or vectors gives L = diag(scale), (mean, cov) its
Cholesky factor, parsed as tempered SMC's reference=... is (`tempering.gaussian_reference`).

The map is stored in the trained sampler's config ("affine": mean, chol), so a saved sampler samples in the same
coordinates; `wrap` applies it to a population sampler, `whiten` to a target.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np


def fit(target, reference) -> tuple[dict, tuple[str, ...]]:
    """The config entry {"mean", "chol", "source"} for `reference` ("auto", (mean, scale) or (mean, cov)) and the
    fit's notes."""
    if isinstance(reference, str):
        if reference != "auto":
            raise ValueError(f"reference must be None, 'auto', (mean, scale) or (mean, cov), got {reference!r}")
        from samplax.reference_fit import auto_reference

        with jax.ensure_compile_time_eval():
            g, notes = auto_reference(target)
        mean, chol = np.asarray(g.mean, float), np.asarray(g.chol, float)
        source = "auto"
    else:  # the same parser as tempered SMC's reference=(mean, scale) or (mean, cov)
        from samplax.tempering import gaussian_reference

        g = gaussian_reference(target, reference)
        mean, chol, notes, source = g.mean, g.chol, (), "given"
    return {"mean": mean.tolist(), "chol": chol.tolist(), "source": source}, tuple(notes)


def _arrays(affine):
    dtype = jnp.result_type(float)
    return jnp.asarray(affine["mean"], dtype), jnp.asarray(affine["chol"], dtype)


def whiten(target, affine):
    """The target in y = L^-1 (x - mean) coordinates, with the Jacobian: the same log Z."""
    from samplax.target import Target

    mean, chol = _arrays(affine)
    log_det = jnp.sum(jnp.log(jnp.abs(jnp.diagonal(chol))))
    logdensity = target.logdensity

    def lp(y):
        return logdensity(mean + chol @ y) + log_det

    return Target.from_logdensity(lp, target.dim, name=getattr(target, "name", "target"))


def to_x(y, affine):
    mean, chol = _arrays(affine)
    return mean + y @ chol.T


def wrap(sampler, config):
    """`sampler` (a base.PopulationSampler built for y) sampling the x-target when config holds an "affine" map."""
    affine = config.get("affine")
    if affine is None:
        return sampler
    inner = sampler.run

    def run(target_or_model, key, num_particles, progress):
        from samplax.particles.run import as_target

        pop = inner(whiten(as_target(target_or_model), affine), key, num_particles, progress)
        return pop._replace(particles=to_x(pop.particles, affine))

    # the run's settings (attrs["settings"]) name the map rather than carry its d x d matrix
    settings = {**sampler.settings, "affine": {"source": affine["source"], "dim": len(affine["mean"])}}
    return dataclasses.replace(sampler, run=run, settings=settings)
