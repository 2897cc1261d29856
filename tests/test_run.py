"""sample(): reproducibility across chain layouts and seeds, thinning, checkpoints, outputs, bad input."""

import os
import subprocess
import sys
import textwrap
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import samplax

SCALES = jnp.array([1.0, 2.0, 0.5])
# A batched-times-unbatched matrix product is where XLA rounds width-1 and wide batches differently.
W = jnp.array([[1.0, 0.3, 0.0], [0.2, 1.0, -0.4], [0.0, 0.1, 1.0]])


def _gauss():
    return samplax.Target.from_logdensity(lambda x: -0.5 * jnp.sum((W @ x / SCALES) ** 2), 3, name="g3")


def _draws(dt):
    return np.asarray(dt["posterior"]["x"])


@pytest.fixture(scope="module")
def target():
    return _gauss()


KW = dict(num_warmup=60, num_samples=40, progress=False)


@pytest.mark.parametrize("name", ["nuts", "mala"])
def test_vectorized_and_sequential_identical(target, name):
    """Widths 1-3 of the batched program are one rounding class (`layout.widening`): bitwise equal. "mapped" (the
    CPU default) runs the unbatched program, its own class: same random numbers, equal to rounding (g3, 100
    steps, float64: bitwise under jax 0.12.0; NUTS 3e-11, MALA 3e-14 under 0.12.1)."""
    a = samplax.sample(target, name, num_chains=3, seed=3, chain_method="vectorized", **KW)
    b = samplax.sample(target, name, num_chains=3, seed=3, chain_method="sequential", **KW)
    np.testing.assert_array_equal(_draws(a), _draws(b))
    np.testing.assert_array_equal(np.asarray(a.sample_stats.lp), np.asarray(b.sample_stats.lp))
    m = samplax.sample(target, name, num_chains=3, seed=3, chain_method="mapped", **KW)
    np.testing.assert_allclose(_draws(m), _draws(b), rtol=0, atol=1e-9)


@pytest.mark.parametrize("method", ["vectorized", "mapped"])
def test_mclmc_layouts_share_randomness(method):
    """MCLMC's tuning (blackjax) rounds differently with the batch width; the draws agree to rounding, which its
    tuning amplifies (4 chains vectorised vs sequential: 2.5e-9 after 100 steps, float64)."""
    t = samplax.Target.from_logdensity(lambda x: -0.5 * jnp.sum((x / SCALES) ** 2), 3)
    a = samplax.sample(t, "mclmc", num_chains=4, seed=3, chain_method=method, **KW)
    b = samplax.sample(t, "mclmc", num_chains=4, seed=3, chain_method="sequential", **KW)
    np.testing.assert_allclose(_draws(a), _draws(b), rtol=0, atol=1e-7)


@pytest.mark.parametrize("method", ["vectorized", "mapped"])
def test_chain_draws_do_not_depend_on_number_of_chains(target, method):
    a = samplax.sample(target, "nuts", num_chains=3, seed=5, chain_method=method, **KW)
    b = samplax.sample(target, "nuts", num_chains=1, seed=5, chain_method=method, **KW)
    np.testing.assert_array_equal(_draws(a)[:1], _draws(b))


def test_wide_batches_agree_to_rounding(target):
    """From 4 chains XLA rounds batched products differently; same random streams, equal to rounding."""
    a = samplax.sample(target, "mala", num_chains=4, seed=5, chain_method="vectorized", **KW)
    b = samplax.sample(target, "mala", num_chains=4, seed=5, chain_method="sequential", **KW)
    np.testing.assert_allclose(_draws(a), _draws(b), rtol=1e-7, atol=1e-9)


def test_same_seed_same_draws_other_seed_different(target):
    a = samplax.sample(target, "hmc", num_chains=2, seed=11, **KW)
    b = samplax.sample(target, "hmc", num_chains=2, seed=11, **KW)
    c = samplax.sample(target, "hmc", num_chains=2, seed=12, **KW)
    np.testing.assert_array_equal(_draws(a), _draws(b))
    assert not np.allclose(_draws(a), _draws(c))
    assert not np.allclose(_draws(a)[0], _draws(a)[1])  # each chain has its own random stream


def test_thinning_keeps_every_kth_step(target):
    full = samplax.sample(target, "mala", num_chains=2, seed=1, num_warmup=30, num_samples=12, progress=False)
    thin = samplax.sample(target, "mala", num_chains=2, seed=1, num_warmup=30, num_samples=4, thinning=3,
                          progress=False)
    np.testing.assert_array_equal(_draws(full)[:, 2::3], _draws(thin))
    # a kept draw accounts for the gradients of the steps thinned away
    assert int(thin.sample_stats.n_grad.sum()) == int(full.sample_stats.n_grad.sum())


def test_thinned_divergences_and_ebfmi_count_every_step():
    """A thinned run's divergence counts (all, and those that met a NaN) and E-BFMI's mean squared energy change
    are those of every step, as the unthinned run of the same steps has them (they used to be the kept draws')."""
    from samplax.diagnostics.mixing import divergences, ebfmi, nonfinite_divergences

    # NaN beyond x = 1 (non-finite divergences) and a step size that overshoots the Gaussian (curvature ones)
    t = samplax.Target.from_logdensity(lambda x: jnp.where(x[0] < 1.5, -0.5 * jnp.sum(x ** 2 / jnp.array([1.0, 0.01])),
                                                           jnp.nan), 2, name="nan-beyond")
    kw = dict(num_chains=2, seed=0, num_warmup=0, progress=False, step_size=0.25, adapt=False,
              init_positions=np.zeros((2, 2)))
    full = samplax.sample(t, "nuts", num_samples=400, **kw)
    thin = samplax.sample(t, "nuts", num_samples=100, thinning=4, **kw)
    np.testing.assert_array_equal(_draws(full)[:, 3::4], _draws(thin))
    div, nf = divergences(full), nonfinite_divergences(full)
    assert np.all(nf > 0) and np.all(div - nf > 0), (div, nf)  # both kinds occur, so the check can fail
    np.testing.assert_array_equal(divergences(thin), div)
    np.testing.assert_array_equal(nonfinite_divergences(thin), nf)
    any_in_window = np.asarray(full.sample_stats.diverging).reshape(2, -1, 4).any(-1).sum(1)
    assert np.all(any_in_window < div)  # what the kept draws alone said
    e = np.asarray(full.sample_stats.energy)
    num = np.mean(np.diff(e, axis=1) ** 2, axis=1)
    np.testing.assert_allclose(ebfmi(thin) * np.var(e[:, 3::4], axis=1, ddof=1), num, rtol=1e-6)


def test_checkpoint_resume_gives_the_uninterrupted_run(target, tmp_path):
    ck = tmp_path / "run.ckpt"
    whole = samplax.sample(target, "nuts", num_chains=2, seed=7, **KW)
    samplax.sample(target, "nuts", num_chains=2, seed=7, checkpoint=ck, checkpoint_every=15, **KW)
    # simulate a crash after the first checkpoint: keep only a partial file by re-running a shorter job
    part = samplax.sample(target, "nuts", num_chains=2, seed=7, num_warmup=60, num_samples=15, progress=False,
                          checkpoint=ck, checkpoint_every=15)
    assert part.posterior.sizes["draw"] == 15
    resumed = samplax.sample(target, "nuts", num_chains=2, seed=7, resume=ck, **KW)
    np.testing.assert_array_equal(_draws(whole), _draws(resumed))
    assert resumed.attrs["resumed_from_draw"] == 15


def test_resume_with_other_settings_is_refused(target, tmp_path):
    ck = tmp_path / "run.ckpt"
    samplax.sample(target, "nuts", num_chains=2, seed=7, num_warmup=20, num_samples=5, progress=False,
                   checkpoint=ck)
    with pytest.raises(ValueError, match="seed"):
        samplax.sample(target, "nuts", num_chains=2, seed=8, num_warmup=20, num_samples=10, resume=ck,
                       progress=False)


def test_datatree_layout_and_attrs(target):
    dt = samplax.sample(target, "nuts", num_chains=2, seed=0, keep_warmup=True, **KW)
    assert dt.posterior["x"].dims == ("chain", "draw", "x_dim_0")
    assert dt.posterior["x"].shape == (2, 40, 3)
    for k in ("lp", "acceptance_rate", "diverging", "energy", "n_grad", "step_size", "tree_depth"):
        assert k in dt.sample_stats, k
    assert dt.sample_stats["diverging"].dtype == bool
    # lp is the log-density (not its negative) at the reported draw
    x = _draws(dt)
    lp = jax.vmap(jax.vmap(target.logdensity))(jnp.asarray(x))
    np.testing.assert_allclose(np.asarray(dt.sample_stats.lp), np.asarray(lp), rtol=1e-10)
    assert dt.warmup_posterior["x"].shape == (2, 60, 3)
    assert dt.attrs["sampler"] == "nuts" and dt.attrs["seed"] == 0
    assert dt.attrs["n_grad_sampling"] == int(dt.sample_stats.n_grad.sum()) > 0
    assert dt.attrs["n_grad_warmup"] > 0 and dt.attrs["sampling_time"] > 0
    assert sorted(_attr_value(dt.attrs["adapted"])) == ["inverse_mass_matrix", "step_size"]
    params = _attr_value(dt.attrs["params"])  # final values per chain
    # the default metric (low_rank) is recorded by its factors, C = diag(s) (I + U (diag(lam) - 1) U^T) diag(s)
    assert len(params["step_size"]) == 2 and np.shape(params["metric_sigma"]) == (2, 3)


@pytest.mark.parametrize("suffix", [".nc", ".zarr"])
def test_save_load_roundtrip(target, tmp_path, suffix):
    dt = samplax.sample(target, "mala", num_chains=2, seed=0, **KW)
    path = samplax.save(dt, tmp_path / f"out{suffix}")
    back = samplax.load(path)
    np.testing.assert_array_equal(_draws(back), _draws(dt))
    np.testing.assert_array_equal(np.asarray(back.sample_stats.lp), np.asarray(dt.sample_stats.lp))
    assert back.attrs["sampler"] == "mala"


@pytest.mark.parametrize("suffix", [".nc", ".zarr"])
def test_a_save_failing_half_way_leaves_nothing_that_looks_complete(target, tmp_path, suffix):
    """sample_stats carries an attribute no format can write: the save fails after the posterior is written.
    Nothing is left at the path (and no temporary file); an older file at the path is kept intact."""
    dt = samplax.sample(target, "mala", num_chains=2, seed=0, **KW)
    bad = dt.copy()
    bad["sample_stats"].attrs["unwritable"] = object()
    path = tmp_path / f"out{suffix}"
    with pytest.raises(Exception):
        samplax.save(bad, path)
    assert list(tmp_path.iterdir()) == []
    samplax.save(dt, path)
    with pytest.raises(Exception):
        samplax.save(bad, path)
    assert [p.name for p in tmp_path.iterdir()] == [path.name]
    np.testing.assert_array_equal(np.asarray(samplax.load(path).sample_stats.lp), np.asarray(dt.sample_stats.lp))
    samplax.save(dt, path)  # a good save onto an existing file or store replaces it, leaving nothing beside it
    assert [p.name for p in tmp_path.iterdir()] == [path.name]
    np.testing.assert_array_equal(np.asarray(samplax.load(path).sample_stats.lp), np.asarray(dt.sample_stats.lp))


def test_numpyro_model_reports_constrained_named_draws():
    import numpyro
    import numpyro.distributions as dist

    def model(y=None):
        s = numpyro.sample("s", dist.HalfNormal(1.0))
        m = numpyro.sample("m", dist.Normal(0, 1))
        numpyro.deterministic("twice", 2 * m)
        numpyro.sample("y", dist.Normal(m, s), obs=y)

    t = samplax.Target.from_numpyro(model, y=jnp.array([0.3, -0.1, 0.5]))
    dt = samplax.sample(t, "nuts", num_chains=2, seed=0, **KW)
    assert set(dt.posterior.data_vars) == {"s", "m", "twice"}
    assert float(dt.posterior["s"].min()) > 0
    np.testing.assert_allclose(np.asarray(dt.posterior["twice"]), 2 * np.asarray(dt.posterior["m"]))


def test_user_supplied_blackjax_pair(target):
    import blackjax

    alg = blackjax.mala(target.logdensity, 0.2)
    dt = samplax.sample(target, (alg.init, alg.step), num_chains=2, seed=0, num_warmup=10, num_samples=20,
                        progress=False)
    assert dt.posterior["x"].shape == (2, 20, 3)
    assert "acceptance_rate" in dt.sample_stats
    dt2 = samplax.sample(target, alg, num_chains=2, seed=0, num_warmup=10, num_samples=20, progress=False)
    np.testing.assert_array_equal(_draws(dt), _draws(dt2))


class _WalkState(NamedTuple):
    position: jax.Array
    logdensity: jax.Array


def test_nonfinite_logdensity_is_reported_not_hidden():
    # finite at the start, NaN beyond x > 3: an unadjusted walk that gets there must be reported
    t = samplax.Target.from_logdensity(lambda x: jnp.where(x[0] > 3.0, jnp.nan, -0.5 * jnp.sum(x**2) / 25), 2)

    def init(x):
        return _WalkState(x, t.logdensity(x))

    def step(key, st):
        x = st.position + jax.random.normal(key, st.position.shape)
        return _WalkState(x, t.logdensity(x)), ()

    with pytest.warns(RuntimeWarning, match="non-finite"):
        dt = samplax.sample(t, (init, step), num_chains=2, seed=0, num_warmup=0, num_samples=300,
                            progress=False, init_positions=jnp.zeros(2))
    assert dt.attrs["n_nonfinite"] > 0
    assert any("non-finite" in w for w in samplax.diagnostics.check(dt))


@pytest.mark.parametrize("kwargs, message", [
    (dict(num_chains=0), "num_chains must be an integer >= 1, got 0"),
    (dict(num_samples=0), "num_samples"),
    (dict(num_warmup=-1), "num_warmup"),
    (dict(thinning=0), "thinning"),
    (dict(chain_method="threads"), "chain_method"),
    (dict(init_positions=np.zeros((2, 5))), r"init_positions must have shape \(2, 3\)"),
    (dict(num_warmup=0), "step_size"),
])
def test_bad_arguments_name_themselves(target, kwargs, message):
    base = dict(num_chains=2, num_warmup=10, num_samples=10, progress=False)
    with pytest.raises(ValueError, match=message):
        samplax.sample(target, "nuts", **{**base, **kwargs})


def test_unknown_sampler_and_bad_settings(target):
    with pytest.raises(ValueError, match="unknown sampler 'nutz'.*nuts"):
        samplax.sample(target, "nutz", progress=False)
    with pytest.raises(TypeError, match="bad settings for sampler 'nuts'"):
        samplax.sample(target, "nuts", max_tree_depth=3, progress=False)
    with pytest.raises(TypeError, match="samplax.Target"):
        samplax.sample(lambda x: x, "nuts")


def test_init_positions_outside_support_are_refused():
    t = samplax.Target.from_logdensity(lambda x: jnp.where(x[0] > 0, -x[0], -jnp.inf), 1)
    with pytest.raises(ValueError, match="not finite for chain"):
        samplax.sample(t, "mala", num_chains=2, init_positions=jnp.array([[1.0], [-1.0]]), progress=False)


@pytest.mark.slow  # CI time: tests/test_layouts.py checks parallel == sequential bitwise on 4 devices
def test_sharded_chains_match_vectorized():
    """chain_method='parallel' over 2 forced host devices: same streams, draws equal to rounding (own process)."""
    code = textwrap.dedent("""
        import jax, jax.numpy as jnp, numpy as np
        jax.config.update("jax_enable_x64", True)
        assert jax.device_count() == 2, jax.devices()
        import samplax
        t = samplax.Target.from_logdensity(lambda x: -0.5 * jnp.sum(x**2 * jnp.arange(1., 4.)), 3)
        kw = dict(num_chains=2, seed=2, num_warmup=40, num_samples=30, progress=False)
        a = samplax.sample(t, "nuts", **kw)
        b = samplax.sample(t, "nuts", chain_method="parallel", **kw)
        np.testing.assert_allclose(np.asarray(a.posterior.x), np.asarray(b.posterior.x), rtol=1e-7, atol=1e-9)
        c = samplax.sample(t, "nuts", **{**kw, "num_chains": 4})
        d = samplax.sample(t, "nuts", **{**kw, "num_chains": 4}, chain_method="parallel")
        np.testing.assert_allclose(np.asarray(c.posterior.x), np.asarray(d.posterior.x), rtol=1e-7, atol=1e-9)
        try:
            samplax.sample(t, "nuts", **{**kw, "num_chains": 3}, chain_method="parallel")
            raise SystemExit("3 chains on 2 devices should be refused")
        except ValueError as err:
            assert "divisible" in str(err)
        print("OK")
    """)
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "OK" in out.stdout


def test_progress_bar_shows_acceptance_and_divergences(target, capsys):
    dt = samplax.sample(target, "nuts", num_chains=2, seed=0, num_warmup=20, num_samples=30, progress=True)
    err = capsys.readouterr().err
    assert "nuts sampling" in err and "acc=" in err and "div=" in err
    # the CPU default runs the chains one after another, and the bar counts the draws of both
    assert ("60/60" if samplax.layout.resolve_chain_method(None) in ("mapped", "sequential") else "30/30") in err
    # the bar must not change the draws
    quiet = samplax.sample(target, "nuts", num_chains=2, seed=0, num_warmup=20, num_samples=30, progress=False)
    np.testing.assert_array_equal(_draws(dt), _draws(quiet))


def test_progress_is_off_without_a_tty(target, capsys):
    samplax.sample(target, "mala", num_chains=2, seed=0, num_warmup=10, num_samples=10)
    assert "sampling" not in capsys.readouterr().err


# ---------------------------------------------------------------- run loop: counts, random streams, seeds
def _counting_gauss(dim=2):
    """A Gaussian whose every gradient evaluation bumps a host counter (once per chain under vmap)."""
    grads = []

    @jax.custom_jvp
    def logdensity(x):
        return -0.5 * jnp.sum(x**2)

    @logdensity.defjvp
    def _jvp(primals, tangents):
        (x,), (dx,) = primals, tangents
        jax.debug.callback(lambda _: grads.append(1), x)
        return logdensity(x), jnp.dot(-x, dx)

    return samplax.Target.from_logdensity(logdensity, dim, name="counted"), grads


def _recording_mala(step_size, used_keys):
    """blackjax MALA (one gradient per step and per init) as a samplax Sampler without warmup, recording on the
    host every key it consumes: its init key and the two halves of `split` (what a typical init draws with),
    each step key and its halves."""
    import blackjax
    from blackjax.mcmc.mala import MALAState

    from samplax.samplers.base import Algorithm, Sampler

    def record(key):
        a, b = jax.random.split(key)
        jax.debug.callback(lambda *ks: used_keys.extend(tuple(np.asarray(k).tolist()) for k in ks), key, a, b)
        return a

    def build(target, params):
        alg = blackjax.mala(target.logdensity, step_size)

        def init(x, key):
            record(key)
            return alg.init(x)

        def step(key, state):
            return alg.step(record(key), MALAState(*state))

        return Algorithm(init, step)

    def stats(state, info, params):
        return {"lp": state.logdensity, "acceptance_rate": info.acceptance_rate, "n_grad": jnp.asarray(1)}

    return Sampler(name="recording_mala", build=build, stats=stats)


@pytest.fixture
def returned_shapes(monkeypatch):
    """Shapes of every array a compiled phase returns to the caller (the run loop blocks on each result)."""
    shapes = []
    real = jax.block_until_ready

    def spy(out):
        shapes.extend(np.shape(x) for x in jax.tree.leaves(out))
        return real(out)

    monkeypatch.setattr(jax, "block_until_ready", spy)
    return shapes


def test_burn_in_steps_counts_and_keys_are_honest(returned_shapes):
    """No-warmup sampler: burn-in is num_warmup unthinned steps, every gradient counted, no key used twice."""
    t, grads = _counting_gauss()
    used = []
    init_keys = []

    def init(key):
        jax.debug.callback(lambda k: init_keys.append(tuple(np.asarray(k).tolist())), key)
        return jax.random.normal(key, (t.dim,))

    t = t.replace(init=init)
    chains, warm, draws, thin = 2, 7, 4, 3
    dt = samplax.sample(t, _recording_mala(0.5, used), num_chains=chains, num_warmup=warm, num_samples=draws,
                        thinning=thin, seed=np.int64(3), keep_warmup=True, progress=False)
    assert dt.attrs["seed"] == 3
    # keys: position init, kernel init (+ halves), every warmup and sampling step (+ halves): all distinct
    assert len(used) == 3 * chains * (1 + warm + draws * thin) and len(init_keys) == chains
    every = used + init_keys
    assert len(set(every)) == len(every)
    assert dt.attrs["n_grad_warmup"] == chains * warm  # not warm * thin
    assert dt.attrs["n_grad_sampling"] == chains * draws * thin
    assert len(grads) == chains + dt.attrs["n_grad_warmup"] + dt.attrs["n_grad_sampling"]  # + one per kernel init
    assert dt.warmup_posterior["x"].shape == (chains, warm, t.dim)
    assert (chains, warm, t.dim) in returned_shapes  # kept warmup draws come back


def test_warmup_draws_stay_on_device_unless_kept(returned_shapes):
    """keep_warmup=False: no phase returns a (chain, warmup step, ...) array to the host."""
    t, _ = _counting_gauss()
    dt = samplax.sample(t, _recording_mala(0.5, []), num_chains=2, num_warmup=7, num_samples=3, progress=False)
    assert dt.attrs["n_grad_warmup"] == 2 * 7
    assert returned_shapes and not [s for s in returned_shapes if s[:2] == (2, 7)], returned_shapes


@pytest.mark.parametrize("seed", ["abc", 1.5, 2**70, -1, True, np.float64(2.0), 2**32])
def test_bad_seed_says_what_a_seed_must_be(target, seed):
    with pytest.raises(ValueError, match=r"seed must be an integer in \[0, 2\*\*32\)"):
        samplax.sample(target, "mala", seed=seed, num_chains=2, num_warmup=5, num_samples=5, progress=False)


def _moved(draws):
    """Per step and chain: did the chain leave its last position (an accepted MALA proposal)?"""
    return np.any(np.diff(draws, axis=1) != 0, axis=-1)


def test_user_pair_equals_named_mala(target):
    """The named "mala" is blackjax's MALA: the same accept / reject decisions, the same draws to rounding. Not
    bitwise: the pair's step is a Python constant XLA can fold, the named sampler's a runtime parameter (bitwise
    equal under jax 0.12.0, 4e-16 apart under 0.12.1)."""
    import blackjax

    h = 0.4
    alg = blackjax.mala(target.logdensity, h)
    kw = dict(num_chains=2, seed=4, num_warmup=0, num_samples=30, progress=False)
    pair = samplax.sample(target, (alg.init, alg.step), **kw)
    named = samplax.sample(target, "mala", step_size=h, **kw)
    np.testing.assert_array_equal(_moved(_draws(pair)), _moved(_draws(named)))
    assert 0 < _moved(_draws(named)).mean() < 1  # both kinds of decision occur
    np.testing.assert_allclose(_draws(pair), _draws(named), rtol=0, atol=1e-12)
    for k in ("lp", "acceptance_rate"):
        np.testing.assert_allclose(np.asarray(pair.sample_stats[k]), np.asarray(named.sample_stats[k]), rtol=1e-12,
                                   atol=1e-12)
    assert named.attrs["n_grad_sampling"] == 2 * 30  # MALA: one gradient per step
    # blackjax's MALA info carries no gradient count, so the pair's count is unknown (NaN), never a guess
    g = pair.attrs["n_grad_sampling"]
    assert np.isnan(g) or g == named.attrs["n_grad_sampling"]
    assert _attr_value(named.attrs["adapted"]) == []  # nothing adapted without warmup
    assert _attr_value(named.attrs["params"])["step_size"] == [h, h]


def _attr_value(text):
    """attrs hold lists / dicts as JSON or Python-literal text (netCDF attrs are flat)."""
    import ast
    import json

    if not isinstance(text, str):
        return text
    try:
        return json.loads(text)
    except ValueError:
        return ast.literal_eval(text)
