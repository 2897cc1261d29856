"""Diagnostics: mixing, hitting time, Wasserstein error."""
from samplax.diagnostics.mixing import check, divergences, ebfmi, summary
from samplax.diagnostics.wasserstein import Distance, NoiseFloor, WassersteinResult, exact_wasserstein, gaussian_fit_w2, gaussian_w2, noise_floor, second_moment_bias_curve, sinkhorn_w2, sliced_w2, w2_1d, wasserstein, wasserstein_curve  # noqa: E501
from samplax.diagnostics.hitting import HittingResult, ball, first_hit_times, halfspace, hit_times_from_draws, sublevel_set, summarize as summarize_hitting  # noqa: E501

__all__ = ["check", "divergences", "ebfmi", "summary"]
