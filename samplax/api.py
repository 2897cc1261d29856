"""`samplax.sample`: the one front door; chain samplers go to `run.sample`, population samplers to `particles`."""

from __future__ import annotations

from typing import Any


def sample(model, sampler: Any = "nuts", **kwargs):
    """Sample `model` (a Target, or a score model for diffusion / Feynman-Kac samplers) with `sampler`.

    Chain samplers (`samplax.samplers.available()`): see `samplax.run.sample` for the arguments
    (num_chains, num_warmup, num_samples, seed, ...). Population samplers
    (`samplax.particles.available()`: smc, fkc, diffusion samplers, trained samplers): see
    `samplax.particles.sample_population` (num_particles, num_chains, seed, num_steps, ...).
    """
    from samplax import particles
    from samplax.particles import families  # noqa: F401  (registers the population families)
    from samplax import samplers
    from samplax.run import sample as sample_chains

    if particles.is_population(model, sampler):
        return particles.sample_population(model, sampler, **kwargs)
    if isinstance(sampler, str) and sampler not in samplers.available():
        raise ValueError(f"unknown sampler {sampler!r}; chain samplers: {', '.join(samplers.available())}; "
                         f"population samplers: {', '.join(particles.available())}")
    return sample_chains(model, sampler, **kwargs)
