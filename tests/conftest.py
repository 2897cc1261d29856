"""Shared test set-up: float64 everywhere (moment checks at 5 MCSE need it), slow-test gating."""

import os

import jax
import pytest

jax.config.update("jax_enable_x64", True)

SLOW = os.environ.get("SAMPLAX_SLOW") == "1"


# Runs first, so that pytest-xdist's --dist loadgroup (the Makefile's) sees the groups: a module's tests stay on
# one worker (module-scoped fixtures, e.g. shared sampler runs, are computed once), except the notebooks, each
# of which is long and independent and goes to whichever worker is free.
INDEPENDENT_TESTS = ("test_examples.py",)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    for item in items:
        independent = item.path.name in INDEPENDENT_TESTS
        item.add_marker(pytest.mark.xdist_group(item.nodeid if independent else item.module.__name__))
    if SLOW:
        return
    skip = pytest.mark.skip(reason="slow check: run with `make test-slow` (SAMPLAX_SLOW=1)")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
