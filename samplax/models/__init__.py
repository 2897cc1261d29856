"""Model library: toy targets with exact ground truth, classic numpyro models, posteriordb ports.

`samplax.models.list()` names them; `samplax.models.get(name, **kwargs)` builds a `Target`.
Each module registers its constructors with `register(name, description)`.
"""

from __future__ import annotations

import builtins
import importlib
from typing import Callable

_REGISTRY: dict[str, tuple[Callable, str]] = {}
# modules whose import registers models; add yours here (one line)
_MODULES = [
    "gaussian",
    "asymmetric",
    "banana",
    "funnel",
    "eight_schools",
    "posteriordb",
    "wells",
    "conjugate",
    "mixtures",
    "diffusion_benchmarks",
    "oscillator",
]


def register(name: str, description: str):
    def deco(fn):
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is already registered")
        _REGISTRY[name] = (fn, description)
        return fn

    return deco


def _load():
    for mod in _MODULES:
        importlib.import_module(f"samplax.models.{mod}")


def list() -> builtins.list[str]:  # noqa: A001 - the documented name
    """Names of all models."""
    _load()
    return sorted(_REGISTRY)


def describe() -> dict[str, str]:
    _load()
    return {k: v[1] for k, v in sorted(_REGISTRY.items())}


def get(name: str, **kwargs):
    """Build the named model's Target."""
    _load()
    if name not in _REGISTRY:
        raise ValueError(f"unknown model {name!r}; available: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name][0](**kwargs)


def __getattr__(name):
    """Submodules not imported above load on first use (`samplax._lazy`)."""
    from samplax._lazy import submodule

    return submodule(__name__, name)
