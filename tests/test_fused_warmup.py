"""NUTS / HMC carry their warmup through the sampling program (`Phases.fused_chunk`): one compiled kernel, the same
draws as the separate warmup program, programs keyed on everything that shapes them."""

import jax.numpy as jnp
import numpy as np
import pytest

import samplax
import samplax.compile_cache
import samplax.phases
from samplax.compile_cache import executable_cache
from samplax.layout import resolve_chain_method

W = jnp.array([[1.0, 0.3, 0.0], [0.2, 1.0, -0.4], [0.0, 0.1, 1.0]])


def _target(name="g3f", scale=1.0):
    """A correlated 3-d Gaussian; `scale` makes a Target of other content (compiled programs are cached by content)."""
    return samplax.Target.from_logdensity(
        lambda x: -0.5 * jnp.sum((W @ x / jnp.array([1.0, 2.0, 0.5]) / scale) ** 2), 3, name=name)


def _draws(dt):
    return np.asarray(dt.posterior["x"])


KW = dict(num_chains=2, seed=4, num_samples=50, progress=False)


@pytest.mark.parametrize("name", ["nuts", "hmc"])
def test_fused_warmup_gives_the_separate_warmups_draws(name, monkeypatch):
    fused = samplax.sample(_target(), name, num_warmup=80, **KW)
    monkeypatch.setattr(samplax.phases, "FUSED", False)
    separate = samplax.sample(_target(), name, num_warmup=80, **KW)
    np.testing.assert_allclose(_draws(fused), _draws(separate), rtol=0, atol=1e-10)
    assert fused.attrs["n_grad_warmup"] == separate.attrs["n_grad_warmup"] > 0
    assert fused.attrs["n_grad_sampling"] == separate.attrs["n_grad_sampling"]


def test_one_program_runs_the_kernel():
    t = _target("g3-programs", scale=1.5)
    samplax.sample(t, "nuts", num_warmup=40, **KW)
    cache = executable_cache(t, "nuts", {}, (resolve_chain_method(None), False, 2))
    phases = sorted({k[0] if isinstance(k[0], str) else k[0][0] for k in cache})
    assert phases == ["begin", "fused", "init"], phases  # no separate "warmup" or "chunk" program


def test_programs_are_keyed_on_the_warmup_length():
    """A program compiled for one warmup length is not reused for another (the warmup's key array and buffer
    are sized by it): a run after one of another length gives the draws of a fresh process's run."""
    t = _target("g3-lengths", scale=2.0)
    samplax.sample(t, "nuts", num_warmup=60, **KW)
    after = samplax.sample(t, "nuts", num_warmup=20, **KW)
    samplax.compile_cache._BY_CONTENT.clear()  # as in a fresh process
    fresh = samplax.sample(_target("g3-lengths", scale=2.0), "nuts", num_warmup=20, **KW)
    np.testing.assert_array_equal(_draws(after), _draws(fresh))


def test_keep_warmup_and_thinning_use_the_separate_warmup():
    t = _target("g3-keep", scale=3.0)
    dt = samplax.sample(t, "nuts", num_warmup=30, keep_warmup=True, **KW)
    assert dt.warmup_posterior["x"].shape[:2] == (2, 30)
    thinned = samplax.sample(t, "nuts", num_warmup=30, thinning=2, **KW)
    assert thinned.posterior["x"].shape[:2] == (2, 50)
