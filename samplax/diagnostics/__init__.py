"""Diagnostics: mixing, hitting time, Wasserstein error."""
from samplax.diagnostics.mixing import check, divergences, ebfmi, summary
from samplax.diagnostics.hitting import HittingResult, ball, first_hit_times, halfspace, hit_times_from_draws, sublevel_set, summarize as summarize_hitting  # noqa: E501

__all__ = ["check", "divergences", "ebfmi", "summary"]
