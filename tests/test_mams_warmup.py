"""MAMS warmup (the MAMS authors' scheme: unadjusted MCLMC for the preconditioner and L, then dual averaging of the
adjusted step size): every gradient counted, given values held, the step not capped at L."""

import ast
import json

import jax.numpy as jnp
import numpy as np
import pytest

import samplax
from samplax import Target
from test_sampler_contract import Counting, _quartic, _reported, _run, overhead  # noqa: F401 (fixture)


def _attr(v):
    """attrs hold lists / dicts as JSON or Python-literal text"""
    if not isinstance(v, str):
        return v
    try:
        return json.loads(v)
    except ValueError:
        return ast.literal_eval(v)


@pytest.mark.parametrize("settings", [{}, {"integrator": "leapfrog"}, {"L": 1.5}, {"inverse_mass_matrix": [1.0, 2.0, 0.5]}],
                         ids=["default", "leapfrog", "L", "imm"])
def test_mams_warmup_counts_every_gradient_and_holds_given_values(overhead, settings):
    width, extra = overhead
    c = Counting(_quartic)
    t = Target.from_logdensity(c.fn, 3)
    dt = _run(t, "mams", 80, 20, **settings)
    assert c.n == width * _reported(dt) + extra, f"counted {c.n}, reported {_reported(dt)}"
    adapted = set(_attr(dt.attrs["adapted"]))
    for name in ("L", "inverse_mass_matrix"):
        assert (name in adapted) == (name not in settings)
    assert "step_size" in adapted
    if "L" in settings:
        np.testing.assert_array_equal(np.asarray(dt.sample_stats["L"]), settings["L"])


def test_mams_step_is_tuned_to_the_acceptance_target_on_a_gaussian():
    # N(0, diag(s^2)), d = 20: the preconditioner makes it isotropic; dual averaging must reach ~target acceptance
    # (blackjax's adjusted tuner capped the step at L / 1.1, which held acceptance far above the target)
    s2 = np.logspace(-1, 1, 20)
    t = Target.from_logdensity(lambda x: -0.5 * jnp.sum(x**2 / s2), 20)
    dt = samplax.sample(t, "mams", num_chains=4, num_warmup=1000, num_samples=1000, seed=0, progress=False)
    acc = float(np.asarray(dt.sample_stats["acceptance_rate"]).mean())
    assert 0.8 < acc < 0.97, acc
    v = np.asarray(dt.posterior["x"]).reshape(-1, 20).var(axis=0) / s2
    assert np.all((v > 0.8) & (v < 1.25)), v
