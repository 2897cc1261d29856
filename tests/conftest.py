"""Shared test set-up: float64 everywhere (moment checks at 5 MCSE need it), slow-test gating.

Slow tests: those marked `slow` in their file, and those listed in `tests/ci_slow.txt` (node ids, or whole files):
checks that took 4 s or more each in a cold run (empty compilation cache, 2 cores), moved out of `make test` to
keep CI under its 20 minutes. `make test-slow` (SAMPLAX_SLOW=1) runs everything.
"""

import os
import pathlib

import jax
import pytest

jax.config.update("jax_enable_x64", True)

SLOW = os.environ.get("SAMPLAX_SLOW") == "1"


def _listed_slow() -> set[str]:
    path = pathlib.Path(__file__).with_name("ci_slow.txt")
    lines = (ln.split("#")[0].strip() for ln in path.read_text().splitlines()) if path.exists() else ()
    return {ln for ln in lines if ln}


def pytest_collection_modifyitems(config, items):
    listed = _listed_slow()
    for item in items:
        # a node id, a test with all its parameters (the id without "[...]"), or a whole file
        if {item.nodeid, item.nodeid.split("[")[0], item.nodeid.split("::")[0]} & listed:
            item.add_marker(pytest.mark.slow)
    if SLOW:
        return
    skip = pytest.mark.skip(reason="slow check: run with `make test-slow` (SAMPLAX_SLOW=1)")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


_TIMES = os.environ.get("SAMPLAX_TEST_TIMES")  # a file to append "seconds phase:outcome nodeid" lines to, as they end


def pytest_runtest_logreport(report):
    if _TIMES:
        with open(_TIMES, "a") as f:
            f.write(f"{report.duration:.2f} {report.when}:{report.outcome} {report.nodeid}\n")
