"""Load a package's submodule on first attribute access (PEP 562 module __getattr__)."""

from __future__ import annotations

import importlib
import importlib.util


def submodule(package: str, name: str):
    """`package.name` imported, when `name` is a submodule of `package`; else the AttributeError Python gives."""
    if not name.startswith("_") and importlib.util.find_spec(f"{package}.{name}") is not None:
        return importlib.import_module(f"{package}.{name}")
    raise AttributeError(f"module {package!r} has no attribute {name!r}")
