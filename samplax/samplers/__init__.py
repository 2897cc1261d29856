"""Sampler families; importing a module registers its samplers by name."""

from samplax.samplers import hmc, mclmc, overdamped, sgld, underdamped  # noqa: F401  (registration side effects)
from samplax.samplers import ecd  # noqa: F401,E402  (registers "secd")
from samplax.samplers import gpss  # noqa: F401,E402  (registers "gpss")
from samplax.samplers import two_level  # noqa: F401,E402  (registers "two_level")
from samplax.samplers.base import Algorithm, Sampler, Warmup, available, from_pair, get, register

__all__ = ["Algorithm", "Sampler", "Warmup", "available", "from_pair", "get", "register"]


def __getattr__(name):
    """Submodules not imported above load on first use (`samplax._lazy`)."""
    from samplax._lazy import submodule

    return submodule(__name__, name)
