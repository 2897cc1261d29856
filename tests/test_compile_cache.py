"""The compiled-phase cache keys sampler settings by content: a changed array setting is never served stale."""

import os
import subprocess
import sys

import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest

import samplax
from samplax import compile_cache
from samplax.compile_cache import Uncacheable, content_key, executable_cache, program_digest

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

    def target():  # a new Target of the same log-density: served the same compiled programs (by content)
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


def _regression(x, y):
    slope = numpyro.sample("slope", dist.Normal(0, 1))
    sigma = numpyro.sample("sigma", dist.HalfNormal(1))
    numpyro.sample("y", dist.Normal(slope * x, sigma), obs=y)


DATA = dict(x=np.linspace(-1, 1, 1200), y=np.sin(np.linspace(-1, 1, 1200)))  # > 1000 entries: repr elides


def _programs(target):
    return compile_cache._target_programs(target)


def test_new_target_and_other_run_lengths_reuse_the_compiled_programs():
    """A new Target of the same model and data, and another num_samples, compile nothing; the shared draws agree."""
    kw = dict(num_chains=2, num_warmup=30, seed=3, progress=False)
    first = samplax.Target.from_numpyro(_regression, **DATA)
    run_a = samplax.sample(first, "nuts", num_samples=40, **kw)
    programs = _programs(first)
    n_programs = sum(len(v) for v in programs.values())
    again = samplax.Target.from_numpyro(_regression, **{k: v.copy() for k, v in DATA.items()})
    assert again is not first and program_digest(again) == program_digest(first)
    run_b = samplax.sample(again, "nuts", num_samples=57, **kw)
    assert _programs(again) is programs and sum(len(v) for v in programs.values()) == n_programs  # none compiled
    for v in ("slope", "sigma"):
        a, b = np.asarray(run_a.posterior[v]), np.asarray(run_b.posterior[v])
        assert b.shape == (2, 57)
        np.testing.assert_array_equal(a, b[:, :40])
    # every count is this run's own: 57 draws' gradients, not 40's
    assert run_b.attrs["n_grad_sampling"] == int(np.sum(np.asarray(run_b.sample_stats.n_grad)))
    assert run_b.attrs["n_grad_sampling"] > run_a.attrs["n_grad_sampling"]


def test_targets_with_python_callbacks_never_share_programs():
    """A callback is code the trace cannot show: two log-densities that differ only in their callback must not
    be served each other's program (the second's callback would never run)."""
    import jax

    calls = {"a": 0, "b": 0}

    def make(which):
        def tick(_):
            calls[which] += 1

        def logdensity(x):
            jax.debug.callback(tick, x[0])
            return -0.5 * jnp.sum(x**2)

        return samplax.Target.from_logdensity(logdensity, 2)

    a, b = make("a"), make("b")
    assert program_digest(a) != program_digest(b)
    kw = dict(num_chains=1, num_warmup=5, num_samples=5, seed=0, progress=False)
    samplax.sample(a, "mala", **kw)
    samplax.sample(b, "mala", **kw)
    assert calls["a"] > 0 and calls["b"] > 0


def test_data_differing_in_one_entry_is_another_program():
    y = DATA["y"].copy()
    y[600] += 1.0  # in the middle a repr would elide
    a = samplax.Target.from_numpyro(_regression, **DATA)
    b = samplax.Target.from_numpyro(_regression, x=DATA["x"], y=y)
    assert program_digest(a) != program_digest(b) and _programs(a) is not _programs(b)
    kw = dict(num_chains=1, num_warmup=20, num_samples=10, seed=3, progress=False)
    assert not np.array_equal(np.asarray(samplax.sample(a, "mala", **kw).posterior.slope),
                              np.asarray(samplax.sample(b, "mala", **kw).posterior.slope))


_SCRIPT = """
import jax
from jax._src import monitoring
hits = []
monitoring.register_event_listener(lambda name, **kw: hits.append(name) if name == '/jax/compilation_cache/cache_hits' else None)
import samplax
t = samplax.Target.from_logdensity(lambda x: -0.5 * (x @ x), 3)
samplax.sample(t, 'nuts', num_chains=2, num_warmup=50, num_samples=50, seed=0, progress=False)
print('DIR', samplax.jax_cache.current_dir(), 'HITS', len(hits))
"""


def _script(env_value):
    env = {**os.environ, "SAMPLAX_COMPILATION_CACHE": env_value, "JAX_PLATFORMS": "cpu"}
    out = subprocess.run([sys.executable, "-c", _SCRIPT], env=env, capture_output=True, text=True, check=True)
    line = [ln for ln in out.stdout.splitlines() if ln.startswith("DIR")][-1].split()
    return line[1], int(line[3])


def test_persistent_compilation_cache_serves_a_second_process(tmp_path):
    directory, hits = _script(str(tmp_path / "cache"))
    assert directory == str(tmp_path / "cache") and hits == 0
    assert any((tmp_path / "cache").iterdir())  # programs written
    again, hits_again = _script(str(tmp_path / "cache"))
    assert again == directory and hits_again >= 2  # at least warmup and chunk read back (init may be too quick
    # to compile to be written: JAX writes programs that took >= jax_cache.MIN_COMPILE_SECONDS)
    off, off_hits = _script("0")
    assert off == "None" and off_hits == 0


def test_log_densities_differing_in_a_closed_over_number_are_different_programs():
    def make(a):
        return samplax.Target.from_logdensity(lambda x: -0.5 * a * jnp.sum(x**2), 2)

    assert program_digest(make(1.0)) == program_digest(make(1.0))
    assert program_digest(make(1.0)) != program_digest(make(1.0 + 1e-15))
    assert program_digest(make(0.1)) != program_digest(make(np.float32(0.1)))  # 0.1 rounded to float32


def test_default_directory_is_per_machine_kind(monkeypatch, tmp_path):
    """JAX's key has no CPU in it: programs compiled for one instruction set must not be read on another."""
    from samplax import jax_cache

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    here = jax_cache.default_dir()
    assert here.parent == tmp_path / "samplax" / "jax" and here.name == jax_cache.machine_tag()
    described = jax_cache._cpu_description()
    monkeypatch.setattr(jax_cache, "_cpu_description", lambda: described.replace("flags=", "flags=avx512f "))
    assert jax_cache.default_dir() != here  # one more feature flag: another directory
    monkeypatch.setattr(jax_cache, "_cpu_description", lambda: described)
    assert jax_cache.default_dir() == here  # and the same description the same one
