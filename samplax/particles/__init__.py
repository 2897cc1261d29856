"""The particle core shared by SMC, Feynman-Kac correctors and diffusion samplers."""

from samplax.particles.base import Population, PopulationSampler, available, get, register
from samplax.particles.resampling import maybe_resample, resample
from samplax.particles.results import pooled_log_z
from samplax.particles.run import is_population, sample_population
from samplax.particles.state import ParticleState, conditional_ess, ess, init, normalized_weights, reweight

__all__ = [
    "ParticleState", "Population", "PopulationSampler", "available", "conditional_ess", "ess", "get", "init",
    "is_population", "maybe_resample", "normalized_weights", "pooled_log_z", "register", "resample", "reweight",
    "sample_population",
]


def __getattr__(name):
    """Submodules not imported above load on first use (`samplax._lazy`)."""
    from samplax._lazy import submodule

    return submodule(__name__, name)
