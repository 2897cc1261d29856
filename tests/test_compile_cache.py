"""The compiled-phase cache keys sampler settings by content: a changed array setting is never served stale."""

import jax.numpy as jnp
import numpy as np
import pytest

import samplax
from samplax.compile_cache import Uncacheable, content_key, executable_cache

DIM = 1001  # numpy's repr elides arrays of more than 1000 entries


def _pair():
    a = np.linspace(0.5, 1.5, DIM)
    b = a.copy()
    b[DIM // 2] *= 2.0  # one entry in the elided middle
    return a, b


def test_content_key_sees_every_entry():
    a, b = _pair()
    assert repr(a) == repr(b)  # why repr cannot be the key
    assert content_key({"m": a}) != content_key({"m": b})
    assert content_key({"m": a, "n": [1, (2.0, None)]}) == content_key({"n": [1, (2.0, None)], "m": a.copy()})
    assert content_key(jnp.asarray(a)) == content_key(a)
    assert content_key(a.astype(np.float32)) != content_key(a)  # dtype is part of the content
    assert content_key([1, 2]) != content_key((1, 2))
    assert content_key(float("nan")) == content_key(float("nan"))
    assert content_key(True) != content_key(1)


def test_settings_without_content_key_compile_fresh():
    t = samplax.Target.from_logdensity(lambda x: -jnp.sum(x**2), 2)
    with pytest.raises(Uncacheable):
        content_key({"fn": lambda x: x})
    first = executable_cache(t, "mala", {"fn": lambda x: x}, ())
    first["x"] = 1
    assert executable_cache(t, "mala", {"fn": lambda x: x}, ()) == {}  # never shared
    assert executable_cache(t, "mala", {"step_size": 0.1}, ()) is executable_cache(t, "mala", {"step_size": 0.1}, ())


def test_large_array_settings_are_not_served_a_stale_program():
    """Two inverse mass matrices equal but for one entry: the second run must be its own, not the first's."""
    a, b = _pair()

    def target():  # a new Target object has an empty cache: a fresh compile
        # wide (sd 100), so the first untuned MALA steps are accepted and the draws depend on the mass matrix
        return samplax.Target.from_logdensity(lambda x: -0.5e-4 * jnp.sum(x**2), DIM, name="g1001")

    kw = dict(mass_matrix="diagonal", num_chains=2, num_warmup=3, num_samples=3, seed=1, progress=False,
              init_positions=jnp.full(DIM, 0.1))
    t = target()
    run_a = samplax.sample(t, "mala", inverse_mass_matrix=a, **kw)
    run_b = samplax.sample(t, "mala", inverse_mass_matrix=b, **kw)
    fresh_b = samplax.sample(target(), "mala", inverse_mass_matrix=b, **kw)
    np.testing.assert_array_equal(np.asarray(run_b.posterior.x), np.asarray(fresh_b.posterior.x))
    assert not np.array_equal(np.asarray(run_a.posterior.x), np.asarray(run_b.posterior.x))
