"""Experiments beside the sampling core: simulators used by benchmarks and notebooks, not by `sample()`."""
