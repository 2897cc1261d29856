"""Sampler families; importing a module registers its samplers by name."""

from samplax.samplers import hmc, langevin, mclmc  # noqa: F401  (registration side effects)
from samplax.samplers.base import Algorithm, Sampler, Warmup, available, from_pair, get, register

__all__ = ["Algorithm", "Sampler", "Warmup", "available", "from_pair", "get", "register"]
