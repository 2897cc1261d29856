"""Experiments beside the sampling core: simulators used by benchmarks and notebooks, not by `sample()`."""


def __getattr__(name):
    """Submodules not imported above load on first use (`samplax._lazy`)."""
    from samplax._lazy import submodule

    return submodule(__name__, name)
