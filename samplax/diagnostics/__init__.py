"""Diagnostics: mixing, hitting time, Wasserstein error."""
from samplax.diagnostics.mixing import check, divergences, ebfmi, summary

__all__ = ["check", "divergences", "ebfmi", "summary"]
