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


def test_mams_given_and_adapted_values_start_the_warmup(monkeypatch):
    # L and step_size given with adapt=True are the warmup's starting values (DESIGN: "given values become starting
    # values"); before, MAMS started its unadjusted tuner at L = sqrt(d) and dual averaging at the unadjusted
    # chain's step size whatever was given
    import jax

    import samplax.samplers.mclmc as mc

    seen = {"L": [], "step_size": []}
    record = lambda name: (lambda v: seen[name].extend(np.ravel(np.asarray(v)).tolist()))  # noqa: E731
    da = mc._step_size_dual_averaging

    def spy_da(kernel, logdensity_fn, state, p, *args):
        jax.debug.callback(record("step_size"), p.step_size)
        return da(kernel, logdensity_fn, state, p, *args)

    tuner = mc.microcanonical_tuner

    def spy_tuner(*a, **kw):
        tune, L_scales = tuner(*a, **kw)

        def spied(fixed, state, key, target, num_steps, start):
            jax.debug.callback(record("L"), start["L"] if isinstance(start, dict) else start.L)
            return tune(fixed, state, key, target, num_steps, start)

        return spied, L_scales

    monkeypatch.setattr(mc, "_step_size_dual_averaging", spy_da)
    monkeypatch.setattr(mc, "microcanonical_tuner", spy_tuner)
    t = Target.from_logdensity(lambda x: -0.5 * jnp.sum(x**2) / 1.37, 3)  # its own program: the spies are traced
    dt = samplax.sample(t, "mams", L=2.75, step_size=0.61, adapt=True, num_chains=2, num_warmup=60, num_samples=5,
                        seed=0, progress=False)
    assert set(_attr(dt.attrs["adapted"])) >= {"L", "step_size"}
    np.testing.assert_allclose(seen["L"], 2.75)
    np.testing.assert_allclose(seen["step_size"], 0.61)


@pytest.mark.parametrize("settings", [{"num_warmup": 20}, {"num_warmup": 0, "L": 1.0, "step_size": 0.5}],
                         ids=["warmup", "given"])
def test_mams_refuses_a_1d_target(settings):
    """Isokinetic dynamics are degenerate in 1-D (mclmc is refused by blackjax): mams ran, never moved and spent
    thousands of gradients per draw."""
    t = Target.from_logdensity(lambda x: -0.5 * jnp.sum(x**2), 1)
    with pytest.raises(ValueError, match=r"mams needs a target of dimension >= 2.*degenerate in 1-D.*use nuts"):
        samplax.sample(t, "mams", num_chains=1, num_samples=5, seed=0, progress=False, **settings)


def test_trajectory_length_is_capped():
    """L / step_size, capped: a step size driven to ~0 no longer asks for ~1e8 integration steps per trajectory."""
    from samplax.samplers.mclmc import MAMS_MAX_MEAN_STEPS, mams_steps

    assert float(mams_steps(2.0, 0.5)) == 4.0
    assert float(mams_steps(0.8, 1e-9)) == MAMS_MAX_MEAN_STEPS


def test_a_collapsing_step_size_cannot_stall_the_warmup():
    """A 2-d Gaussian whose log-density is NaN where x0 > 1: every proposal into that half-plane is rejected, the
    dual averaging drives one chain's step to ~1e-12, and 300 warmup steps used to take 17.9 M gradients (98 s);
    capped, a few hundred thousand, and the run says it is not to be trusted."""
    import warnings

    t = Target.from_logdensity(lambda x: jnp.where(x[0] > 1.0, jnp.nan, -0.5 * jnp.sum(x ** 2)), 2, name="nan-half")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dt = samplax.sample(t, "mams", num_chains=2, seed=0, progress=False, num_warmup=300, num_samples=50)
    assert dt.attrs["n_grad_warmup"] < 1_000_000
    assert dt.attrs["trusted"] == 0
