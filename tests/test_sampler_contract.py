"""The sampler contract, for every registered chain sampler: given values are used as given (not adapted),
`n_grad` is the count of gradients really evaluated, and reverted non-finite steps are reported."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import samplax
from moments import assert_mean_within_mcse
from samplax import Target
from samplax.samplers.base import generic_stats
from samplax.samplers.langevin import minibatch_target


class Counting:
    """A log-density whose every gradient evaluation bumps a host counter (a callback inside the JVP rule)."""

    def __init__(self, logdensity):
        self.n = 0

        @jax.custom_jvp
        def f(x):
            return logdensity(x)

        @f.defjvp
        def f_jvp(primals, tangents):
            (x,), (dx,) = primals, tangents
            jax.debug.callback(self._bump, x)  # under vmap: once per batch element
            return jax.jvp(logdensity, (x,), (dx,))

        self.fn = f

    def _bump(self, x):
        self.n += 1


def _quartic(x):
    return -0.5 * jnp.sum(x**2) - 0.1 * jnp.sum(x**4)


def _run(target, name, num_warmup, num_samples, **settings):
    return samplax.sample(target, name, num_chains=1, chain_method="sequential", num_warmup=num_warmup,
                          num_samples=num_samples, seed=0, progress=False, **settings)


def _reported(dt):
    return dt.attrs["n_grad_warmup"] + dt.attrs["n_grad_sampling"]


@pytest.fixture(scope="module")
def overhead():
    """(gradients per reported gradient, fixed extra gradients of a run) from two ULA runs, whose steps take one
    gradient each by construction: a lone chain runs beside a shadow copy, and the run's set-up (initial point
    search, kernel init) evaluates a few gradients outside any step."""
    c = Counting(_quartic)
    t = Target.from_logdensity(c.fn, 3)
    counts = []
    for n in (5, 15):
        c.n = 0
        _run(t, "ula", 0, n, step_size=0.1)
        counts.append(c.n)
    width = (counts[1] - counts[0]) / 10
    return width, counts[0] - width * 5


# (sampler, settings with one given value, the stat that must show it unchanged, names the warmup must adapt)
GIVEN = [
    ("nuts", {"step_size": 0.4}, "step_size", ("inverse_mass_matrix",)),
    ("hmc", {"num_integration_steps": 5, "inverse_mass_matrix": [1.0, 2.0, 0.5]}, None, ("step_size",)),
    ("mala", {"step_size": 0.3}, "step_size", ()),
    ("ula", {"step_size": 0.2, "mass_matrix": "diagonal"}, "step_size", ("inverse_mass_matrix",)),
    ("underdamped", {"adjusted": True, "step_size": 0.5}, "step_size", ()),
    ("underdamped", {"mass_matrix": "diagonal"}, None, ("step_size", "inverse_mass_matrix")),
    ("mclmc", {"L": 1.3}, "L", ("step_size", "inverse_mass_matrix")),
    ("mams", {"step_size": 0.6}, "step_size", ("L", "inverse_mass_matrix")),
    ("secd", {"L": 1.3, "step_size": 0.4, "adapt": ("step_size",)}, "L", ("step_size",)),
]


@pytest.mark.parametrize("name, settings, stat, adapted", GIVEN, ids=[f"{g[0]}-{'-'.join(g[1])}" for g in GIVEN])
def test_given_values_are_used_and_gradients_counted(overhead, name, settings, stat, adapted):
    width, extra = overhead
    c = Counting(_quartic)
    t = Target.from_logdensity(c.fn, 3)
    dt = _run(t, name, 60, 20, **settings)
    assert samplax.samplers.get(name, **settings).adapted == adapted
    if stat is not None:
        np.testing.assert_array_equal(np.asarray(dt.sample_stats[stat]), settings[stat])
    if "adapt" in settings:  # asked for: the given step size was only a starting value
        assert np.all(np.asarray(dt.sample_stats["step_size"]) != settings["step_size"])
    assert c.n == width * _reported(dt) + extra, f"{name}: counted {c.n}, reported {_reported(dt)}"


def test_sgld_counts_minibatch_gradients_and_keeps_its_step(overhead):
    width, _ = overhead
    c = Counting(lambda th: -0.5 * jnp.sum(th**2))  # the prior: evaluated once per minibatch gradient
    y = np.random.default_rng(0).normal(size=(20, 2))
    t = minibatch_target(c.fn, lambda th, yi: -0.5 * jnp.sum((yi - th) ** 2), y, 5, 2)
    dt = _run(t, "sgld", 40, 25, step_size=0.01)
    np.testing.assert_array_equal(np.asarray(dt.sample_stats["step_size"]), 0.01)
    assert dt.attrs["n_grad_sampling"] == 25 and dt.attrs["n_grad_warmup"] == 40
    assert c.n == width * 65 + 1  # + the initial point search's full-data gradient


def test_sgld_warmup_is_the_ula_step_rule():
    # without a step size sgld tunes h exactly as ula does (MALA at 90% acceptance on the full data): same keys,
    # same tuned step, paid for in full-data gradients
    rng = np.random.default_rng(1)
    y = rng.normal(size=(50, 1))
    t = minibatch_target(lambda th: -0.5 * jnp.sum(th**2), lambda th, yi: -0.5 * jnp.sum((yi - th) ** 2), y, 10, 1)
    kw = dict(num_chains=2, num_warmup=300, num_samples=5, seed=0, progress=False)
    s, u = samplax.sample(t, "sgld", **kw), samplax.sample(t, "ula", **kw)
    np.testing.assert_allclose(np.asarray(s.sample_stats["step_size"]), np.asarray(u.sample_stats["step_size"]),
                               rtol=1e-12)
    assert s.attrs["n_grad_warmup"] == 2 * 300


def test_ula_given_step_is_not_adapted_by_warmup():
    # ULA on N(0, I) at h: x' = (1 - h) x + sqrt(2h) xi, stationary variance 1 / (1 - h/2) exactly. Warmup on:
    # a given h must be the h sampled with (the old code adapted it to ~0.38, variance ~1.23)
    d, h, n_chains = 50, 0.2, 16
    t = Target.from_logdensity(lambda x: -0.5 * jnp.sum(x**2), d)
    dt = samplax.sample(t, "ula", step_size=h, num_chains=n_chains, num_warmup=500, num_samples=2000, seed=0,
                        progress=False)
    x = np.asarray(dt.posterior["x"])
    mean_sq = np.mean(x**2, axis=-1, keepdims=True)  # one scalar per draw: the coordinates are exchangeable
    assert_mean_within_mcse(mean_sq, [1 / (1 - h / 2)], "ULA E[x^2] at the given h, warmup on")


@pytest.mark.parametrize("name", ["mclmc", "secd"])
def test_reverted_nonfinite_steps_are_counted(name):
    # log-density NaN beyond x_0 > 1: the kernels revert such steps (blackjax handle_nans / secd's own) and
    # must report them in `nonfinite`, not only as a generic divergence
    t = Target.from_logdensity(lambda x: jnp.where(x[0] > 1.0, jnp.nan, -0.5 * jnp.sum(x**2)), 3)
    dt = samplax.sample(t, name, num_chains=2, num_warmup=0, num_samples=300, L=1.0, step_size=0.5, seed=0,
                        init_positions=np.zeros((2, 3)), progress=False)
    bad = np.asarray(dt.sample_stats["nonfinite"])
    assert bad.dtype == bool and bad.sum() > 0
    assert np.all(np.isfinite(np.asarray(dt.posterior["x"])))  # reverted, so the draws themselves are finite


@pytest.mark.parametrize("name", ["mclmc", "secd"])
def test_reverted_steps_are_counted_between_kept_draws(name):
    # thinning 5 runs the same steps as thinning 1 (step keys are indexed by step, not by draw): every reverted
    # step must be counted, not only those that land on a kept draw (before: about 1 in 5 was counted)
    import warnings

    t = Target.from_logdensity(lambda x: jnp.where(x[0] > 1.0, jnp.nan, -0.5 * jnp.sum(x**2)), 3)
    kw = dict(num_chains=2, num_warmup=0, L=1.0, step_size=0.5, seed=0, init_positions=np.zeros((2, 3)),
              progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        every = samplax.sample(t, name, num_samples=300, thinning=1, **kw)
        thinned = samplax.sample(t, name, num_samples=60, thinning=5, **kw)
    per_step = np.asarray(every.sample_stats["nonfinite"], bool)  # host-side count, step by step
    # the same steps in another program (a scan of 5-step blocks): equal to rounding (bitwise under jax 0.12.0,
    # 2e-15 apart for MCLMC under 0.12.1), with the same reverts step by step (below)
    np.testing.assert_allclose(np.asarray(thinned.posterior["x"]), np.asarray(every.posterior["x"])[:, 4::5],
                               rtol=0, atol=1e-12)
    per_draw = per_step.reshape(2, 60, 5).sum(axis=-1)
    assert per_step.sum() > per_step[:, 4::5].sum()  # reverts between kept draws exist: a kept-draws count is short
    assert thinned.attrs["n_reverted"] == every.attrs["n_reverted"] == per_step.sum()
    np.testing.assert_array_equal(np.asarray(thinned.sample_stats["n_reverted"]), per_draw)
    np.testing.assert_array_equal(np.asarray(thinned.sample_stats["nonfinite"]), per_draw > 0)


def test_user_pair_without_a_count_reports_nan_gradients():
    import blackjax

    t = Target.from_logdensity(lambda x: -0.5 * jnp.sum(x**2), 2)
    alg = blackjax.mclmc(t.logdensity, L=1.0, step_size=0.5)  # two gradients per step, says nothing about it
    state = alg.init(jnp.zeros(2), jax.random.PRNGKey(0))
    new, info = alg.step(jax.random.PRNGKey(1), state)
    assert np.isnan(generic_stats(new, info, {})["n_grad"])
    nuts = blackjax.nuts(t.logdensity, 0.5, jnp.ones(2))
    new, info = nuts.step(jax.random.PRNGKey(1), nuts.init(jnp.zeros(2)))
    assert generic_stats(new, info, {})["n_grad"] == info.num_integration_steps


def test_adapt_names_are_checked():
    with pytest.raises(ValueError, match="adapt"):
        samplax.samplers.get("nuts", adapt=("L",))
    with pytest.raises(ValueError, match="step_size"):
        samplax.samplers.get("mala", adapt=False)
    assert samplax.samplers.get("nuts", step_size=0.1, adapt=True).adapted == ("step_size", "inverse_mass_matrix")
    assert samplax.samplers.get("mala", mass_matrix="diagonal", step_size=0.1).adapted == ("inverse_mass_matrix",)


def test_chain_and_population_names_are_disjoint():
    """`sample()` routes a name to the chain runner without loading the population families (which import the
    diffusion stack); that is only right while no name is both."""
    assert not set(samplax.samplers.available()) & set(samplax.particles.available())


def test_chain_run_does_not_import_the_diffusion_stack():
    """A fresh process sampling with a chain sampler never imports the population families: importing them
    (diffrax, equinox) cost about a second of every cold `sample()`, counted in its wall time."""
    import subprocess
    import sys

    code = ("import sys, jax.numpy as jnp, samplax\n"
            "t = samplax.Target.from_logdensity(lambda x: -0.5 * jnp.sum(x ** 2), 1)\n"
            "samplax.sample(t, 'NUTS', num_chains=1, num_warmup=20, num_samples=20, progress=False)\n"
            "bad = sorted(m for m in sys.modules if m.startswith(('samplax.particles.families', 'samplax.samplers.diffusion',"
            " 'diffrax', 'equinox')))\n"
            "print('LOADED', bad)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         env={**__import__('os').environ, "SAMPLAX_COMPILATION_CACHE": "0"})
    assert out.returncode == 0, out.stderr[-2000:]
    assert "LOADED []" in out.stdout, out.stdout[-2000:]


@pytest.mark.parametrize("sampler,settings", [
    ("nuts", {"step_size": [0.05, 1.0]}),  # d = 2 chains = 2: was silently per-coordinate
    ("nuts", {"step_size": np.array([0.05, 0.2, 1.0])}),  # per-chain: was a broadcasting error
    ("mala", {"step_size": jnp.array([0.3, 0.5])}),
    ("mclmc", {"step_size": jnp.array([0.3, 0.5]), "L": 1.0}),
    ("secd", {"step_size": jnp.array([0.3, 0.5]), "L": 1.0}),
    ("secd", {"step_size": 0.3, "L": jnp.array([1.0, 2.0])}),
    ("hmc", {"step_size": np.array([0.1])}),
], ids=["nuts-per-coordinate", "nuts-per-chain", "mala", "mclmc", "secd-step", "secd-L", "hmc-shape-1"])
def test_an_array_step_size_or_L_is_refused_naming_it(sampler, settings):
    """checks.given_scale promised per-chain arrays, but a run gives every chain the whole value: a (d,) step was
    used per coordinate by nuts and a (num_chains,) one crashed secd / mclmc / mala with raw JAX errors."""
    name = next(k for k, v in settings.items() if np.ndim(v))
    t = Target.from_logdensity(lambda x: -0.5 * jnp.sum(x**2), 2)
    with pytest.raises(ValueError, match=rf"{name} must be a number; per-chain .* not supported"):
        samplax.sample(t, sampler, num_chains=len(np.ravel(settings[name])), num_warmup=0, num_samples=5, seed=0,
                       progress=False, **settings)


def test_a_number_or_0d_step_size_is_still_accepted():
    from samplax import checks

    for v in (0.3, np.float32(0.3), np.array(0.3), jnp.asarray(0.3), 2):
        assert checks.given_scale("step_size", v) is v
    assert checks.given_scale("L", None) is None


@pytest.mark.parametrize("adapt", [0, 1, 2.5])
def test_adapt_must_be_a_bool_a_name_or_names(adapt):
    """adapt=0 / 1 raised "TypeError: 'int' object is not iterable" from tuple(adapt)."""
    with pytest.raises(ValueError, match=r"adapt must be None, True, False, a param name or a tuple of names"):
        samplax.samplers.get("nuts", adapt=adapt)


def test_a_numpy_bool_adapt_is_a_bool():
    for np_b, b in ((np.True_, True), (np.False_, False), (jnp.asarray(True), True)):
        got = samplax.samplers.get("mala", step_size=0.1, adapt=np_b).adapted
        assert got == samplax.samplers.get("mala", step_size=0.1, adapt=b).adapted
    assert samplax.samplers.get("nuts", step_size=0.1, adapt=np.True_).adapted == ("step_size", "inverse_mass_matrix")
