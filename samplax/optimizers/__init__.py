"""Optimisers as optax transformations: the ECD optimiser (ECDSep with energy-preserving noise)."""

from samplax.optimizers.ecd import ECDOptState, MinimizeResult, ecd, minimize

__all__ = ["ECDOptState", "MinimizeResult", "ecd", "minimize"]
from samplax.optimizers.annealing import SCHEDULES, make_schedule, minimize as anneal  # noqa: F401,E402  (simulated annealing)


def __getattr__(name):
    """Submodules not imported above load on first use (`samplax._lazy`)."""
    from samplax._lazy import submodule

    return submodule(__name__, name)
