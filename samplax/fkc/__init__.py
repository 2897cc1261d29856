"""Feynman-Kac correctors (Skreta et al. 2025): compose score models and sample the composition with weights.

`anneal(m, beta)`, `product(m1, m2)`, `geometric(m1, m2, gamma)`, `tilt(m, reward, lam)` build a
`Composition`; `samplax.sample(composed, "fkc", num_particles=N, num_steps=K)` samples it (and
"fkc_naive" runs the same corrected-drift SDE without weights, the baseline). The weight formulas
and their derivation are in `samplax.fkc.weights`.
"""

from samplax.fkc.compose import Composition, anneal, as_composition, geometric, product, tilt
from samplax.fkc.weights import log_weight_rate, prior_log_z

__all__ = ["Composition", "anneal", "as_composition", "geometric", "log_weight_rate", "prior_log_z", "product", "tilt"]


def __getattr__(name):
    """Submodules not imported above load on first use (`samplax._lazy`)."""
    from samplax._lazy import submodule

    return submodule(__name__, name)
