"""Shared test set-up: float64 everywhere (moment checks at 5 MCSE need it), slow-test gating."""

import os

import jax
import pytest

jax.config.update("jax_enable_x64", True)

SLOW = os.environ.get("SAMPLAX_SLOW") == "1"


def pytest_collection_modifyitems(config, items):
    if SLOW:
        return
    skip = pytest.mark.skip(reason="slow check: run with `make test-slow` (SAMPLAX_SLOW=1)")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
