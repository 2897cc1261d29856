"""Diagnostics: mixing, hitting time, Wasserstein error; `report` lays them out."""

from samplax.diagnostics.hitting import (
    HittingResult,
    ball,
    first_hit_times,
    halfspace,
    hit_times_from_draws,
    sampler_grads,
    sublevel_set,
)
from samplax.diagnostics.hitting import summarize as summarize_hitting
from samplax.diagnostics.mixing import check, divergences, ebfmi, ess_per_gradient, summary
from samplax.diagnostics.wasserstein import (
    Distance,
    NoiseFloor,
    WassersteinResult,
    exact_wasserstein,
    gaussian_fit_w2,
    gaussian_w2,
    noise_floor,
    second_moment_bias_curve,
    sinkhorn_w2,
    sliced_w2,
    w2_1d,
    wasserstein,
    wasserstein_curve,
)

__all__ = [
    "Distance", "HittingResult", "NoiseFloor", "WassersteinResult", "ball", "check", "divergences", "ebfmi",
    "ess_per_gradient", "exact_wasserstein", "first_hit_times", "gaussian_fit_w2", "gaussian_w2", "halfspace",
    "hit_times_from_draws", "noise_floor", "sampler_grads", "second_moment_bias_curve", "sinkhorn_w2", "sliced_w2", "sublevel_set",
    "summarize_hitting", "summary", "w2_1d", "wasserstein", "wasserstein_curve",
]

from samplax.diagnostics import report  # noqa: E402,F401  (the module; its function is report.report)


def __getattr__(name):
    """Submodules not imported above (hitting_theory, evidence_check, ...) load on first use."""
    from samplax._lazy import submodule

    return submodule(__name__, name)
