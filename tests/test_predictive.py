"""samplax.predictive (samplax/predictive_checks.py): prior and posterior predictive draws of numpyro models, checked against exact answers.

Conjugate normal model with known variance: y_i ~ N(mu, 1), mu ~ N(0, 1), n observations. The posterior is
N(m, v) with v = 1 / (n + 1), m = sum(y) / (n + 1); a replicated observation is N(m, v + 1) exactly, and under the
prior N(0, 2). Moments are checked within 5 MCSE, gated on bulk ESS, with power (mean +- 0.1 sd and variance
x / 1.1 must be rejected by the same check): tests/moments.py.
"""

import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest
import xarray as xr

import samplax
from samplax.predictive_checks import posterior_predictive, prior_predictive
from moments import assert_moments

N_OBS = 5
Y = np.random.default_rng(3).normal(0.7, 1.0, N_OBS)
POST_VAR = 1.0 / (N_OBS + 1)
POST_MEAN = Y.sum() / (N_OBS + 1)


def conjugate(n, y=None):
    mu = numpyro.sample("mu", dist.Normal(0.0, 1.0))
    with numpyro.plate("obs_id", n):
        numpyro.sample("y", dist.Normal(mu, 1.0), obs=y)


def plated(J, x, y=None):
    a = numpyro.sample("a", dist.Normal(0.0, 1.0))
    b = numpyro.sample("b", dist.Normal(0.0, 1.0).expand([2]).to_event(1))  # a vector site
    s = numpyro.sample("s", dist.HalfNormal(1.0))
    numpyro.deterministic("ab", a + b)  # a function of latents only
    with numpyro.plate("J", J):
        yy = numpyro.sample("y", dist.Normal(a + b[0] * x + b[1] * x**2, s), obs=y)
    numpyro.deterministic("ymax", yy.max())  # a function of the data: replicated with it


@pytest.fixture(scope="module")
def conj_target():
    return samplax.Target.from_numpyro(conjugate, N_OBS, y=Y)


@pytest.fixture(scope="module")
def conj_run(conj_target):
    return samplax.sample(conj_target, "nuts", num_chains=4, num_warmup=300, num_samples=3000, seed=1)


def _posterior_tree(draws: dict[str, np.ndarray]):
    """A DataTree with only a `posterior` group (chain, draw, ...), as a run's."""
    ds = xr.Dataset({k: (("chain", "draw", *[f"{k}_dim_{i}" for i in range(v.ndim - 2)]), v)
                     for k, v in draws.items()})
    return xr.DataTree.from_dict({"posterior": ds})


def test_posterior_predictive_of_conjugate_normal_from_a_nuts_run(conj_target, conj_run):
    dt = posterior_predictive(conj_run, conj_target, seed=2)
    assert dt is conj_run  # extended in place and returned
    y_rep = dt["posterior_predictive"]["y"]
    assert y_rep.dims == ("chain", "draw", "obs_id") and y_rep.shape == (4, 3000, N_OBS)
    # every replicated observation is marginally N(m, v + 1)
    assert_moments(y_rep.values, np.full(N_OBS, POST_MEAN), np.full(N_OBS, POST_VAR + 1.0),
                   what="posterior predictive y (NUTS)")
    np.testing.assert_array_equal(dt["observed_data"]["y"].values, Y)


def test_posterior_predictive_of_exact_posterior_draws(conj_target):
    rng = np.random.default_rng(0)
    mu = POST_MEAN + np.sqrt(POST_VAR) * rng.standard_normal((2, 10_000))
    dt = posterior_predictive(_posterior_tree({"mu": mu}), conj_target, seed=5)
    y_rep = dt["posterior_predictive"]["y"].values
    assert_moments(y_rep, np.full(N_OBS, POST_MEAN), np.full(N_OBS, POST_VAR + 1.0),
                   what="posterior predictive y (exact posterior)")
    # given mu, y_rep - mu is N(0, 1) noise independent of mu: the draws are conditioned on the given mu
    resid = y_rep - mu[..., None]
    assert_moments(resid, np.zeros(N_OBS), np.ones(N_OBS), what="y_rep - mu")
    assert abs(np.corrcoef(resid[..., 0].ravel(), mu.ravel())[0, 1]) < 5 / np.sqrt(mu.size)
    assert "observed_data" in dt.children  # added when the DataTree lacks it


def test_prior_predictive_of_conjugate_normal(conj_target):
    dt = prior_predictive(conj_target, num_draws=20_000, seed=4)
    assert set(dt.children) == {"prior", "prior_predictive"}
    mu, y = dt["prior"]["mu"], dt["prior_predictive"]["y"]
    assert mu.dims == ("chain", "draw") and mu.shape == (1, 20_000)
    assert y.dims == ("chain", "draw", "obs_id")
    assert_moments(mu.values[..., None], np.zeros(1), np.ones(1), what="prior mu")
    assert_moments(y.values, np.zeros(N_OBS), np.full(N_OBS, 2.0), what="prior predictive y (var = 1 + 1)")


def test_groups_dims_plate_vector_and_deterministic_sites():
    x = np.linspace(-1.0, 1.0, 6)
    y = np.sin(2 * x)
    target = samplax.Target.from_numpyro(plated, 6, x, y=y)
    prior = prior_predictive(target, num_draws=50, seed=0)
    assert prior["prior"]["b"].dims == ("chain", "draw", "b_dim_0") and prior["prior"]["b"].shape == (1, 50, 2)
    assert prior["prior_predictive"]["y"].dims == ("chain", "draw", "J")
    assert set(prior["prior"].data_vars) == {"a", "b", "s", "ab", "ymax"}
    assert set(prior["prior_predictive"].data_vars) == {"y"}
    np.testing.assert_allclose(prior["prior"]["ab"].values, prior["prior"]["a"].values[..., None]
                               + prior["prior"]["b"].values)
    np.testing.assert_allclose(prior["prior"]["ymax"].values, prior["prior_predictive"]["y"].values.max(-1))

    # the prior draws as a "posterior" of 2 chains x 25 draws (ab and ymax as a run's constrain() gives them)
    p = prior["prior"]
    post = {k: p[k].values.reshape(2, 25, *p[k].shape[2:]) for k in ("a", "b", "s", "ab")}
    post["ymax"] = np.full((2, 25), y.max())  # at the observed data, as in a run's posterior
    dt = posterior_predictive(_posterior_tree(post), target, seed=1, num_draws=10)
    pp = dt["posterior_predictive"]
    assert set(pp.data_vars) == {"y", "ymax"}  # ab depends on latents only: it stays in the posterior
    assert pp["y"].dims == ("chain", "draw", "J") and pp["y"].shape == (2, 10, 6)
    np.testing.assert_array_equal(pp["draw"].values, np.linspace(0, 24, 10).round().astype(int))
    np.testing.assert_allclose(pp["ymax"].values, pp["y"].values.max(-1))
    # each replicated y is drawn at its own posterior draw: y_rep / s is N(mean / s, 1) noise around it
    idx = pp["draw"].values
    a, b, s = post["a"][:, idx], post["b"][:, idx], post["s"][:, idx]
    z = (pp["y"].values - (a[..., None] + b[..., :1] * x + b[..., 1:] * x**2)) / s[..., None]
    assert np.all(np.abs(z) < 6)
    assert dt["observed_data"]["y"].dims == ("J",)


def test_bad_inputs(conj_target, conj_run):
    plain = samplax.Target.from_logdensity(lambda x: -0.5 * (x**2).sum(), 2)
    with pytest.raises(ValueError, match="no generative model"):
        prior_predictive(plain)
    with pytest.raises(ValueError, match="no generative model"):
        posterior_predictive(conj_run, plain)
    with pytest.raises(TypeError, match="target"):
        posterior_predictive(conj_run)
    with pytest.raises(TypeError, match="target"):
        posterior_predictive(conj_run, "conjugate")
    with pytest.raises(ValueError, match="posterior"):
        posterior_predictive(xr.DataTree(), conj_target)
    with pytest.raises(ValueError, match="num_draws"):
        prior_predictive(conj_target, num_draws=0)
    def factor_only(y):  # a likelihood through numpyro.factor has no observed site to simulate
        mu = numpyro.sample("mu", dist.Normal(0.0, 1.0))
        numpyro.factor("lik", dist.Normal(mu, 1.0).log_prob(y).sum())

    with pytest.raises(ValueError, match="no observed sites"):
        posterior_predictive(_posterior_tree({"mu": np.zeros((1, 5))}), samplax.Target.from_numpyro(factor_only, Y))
    with pytest.raises(ValueError, match="latent site"):
        posterior_predictive(_posterior_tree({"nu": np.zeros((1, 5))}), conj_target)


def test_predictive_counts_and_seeds_are_checked(conj_target, conj_run):
    """num_draws=2.7 became 2 draws and seed=2**40 was taken, where sample() refuses both."""
    for kw, match in (({"num_draws": 2.7}, "num_draws must be an integer >= 1"),
                      ({"num_draws": float("nan")}, "num_draws must be an integer"),
                      ({"seed": 2**40}, r"seed must be an integer in \[0, 2\*\*32\)"),
                      ({"seed": 1.5}, "seed must be an integer")):
        with pytest.raises(ValueError, match=match):
            samplax.predictive(conj_target, **kw)
        with pytest.raises(ValueError, match=match):
            samplax.predictive(conj_target, conj_run, **kw)


def test_prior_predictive_names_improper_sites_and_warns_of_factors():
    """An improper prior raised a bare NotImplementedError(''); a numpyro.factor prior penalty was left out of the
    forward simulation without a word (prior sd of mu 0.99 where the model's is 0.71)."""
    def flat(y):
        mu = numpyro.sample("mu", dist.ImproperUniform(dist.constraints.real, (), ()))
        with numpyro.plate("obs_id", len(y)):
            numpyro.sample("y", dist.Normal(mu, 1.0), obs=y)

    t = samplax.Target.from_numpyro(flat, Y)
    with pytest.raises(ValueError, match=r"latent site\(s\) \['mu'\] have an improper prior"):
        samplax.predictive(t)
    # the posterior predictive needs no prior draws: it works for the flat prior (posterior N(mean(y), 1/n))
    draws = np.random.default_rng(0).normal(Y.mean(), np.sqrt(1 / N_OBS), (1, 400))
    dt = posterior_predictive(_posterior_tree({"mu": draws}), t)
    assert dt["posterior_predictive"]["y"].shape == (1, 400, N_OBS)

    def penalised(n, y=None):
        mu = numpyro.sample("mu", dist.Normal(0.0, 1.0))
        numpyro.factor("extra_prior", dist.Normal(0.0, 1.0).log_prob(mu))
        with numpyro.plate("obs_id", n):
            numpyro.sample("y", dist.Normal(mu, 1.0), obs=y)

    with pytest.warns(UserWarning, match=r"numpyro.factor term\(s\) \['extra_prior'\] are left out"):
        samplax.predictive(samplax.Target.from_numpyro(penalised, N_OBS, y=Y), num_draws=10)


def test_reports_still_work_with_predictive_groups(conj_target, conj_run, tmp_path):
    dt = posterior_predictive(conj_run, conj_target, num_draws=50)
    assert "posterior_predictive" in dt.children
    text = samplax.text_report({"nuts": dt})
    assert "nuts" in text
    out = samplax.report({"nuts": dt}, out=tmp_path / "r.html")
    html = out.read_text()
    assert "nuts" in html and len(html) > 1000
    assert samplax.report.last_errors == []
    ppc = html.split(">Posterior predictive checks</h2>")[1].split("<h2")[0]  # the PPC panel, headed by the run
    assert ppc.startswith("<h3>nuts</h3>") and 'alt="posterior predictive check of nuts: y"' in ppc
    path = samplax.save(dt, tmp_path / "run.nc")
    back = samplax.load(path)
    assert back["posterior_predictive"]["y"].shape == (4, 50, N_OBS)
    import arviz_plots as azp
    import matplotlib

    matplotlib.use("Agg")
    assert azp.plot_ppc_dist(dt) is not None  # ArviZ reads the groups (posterior_predictive vs observed_data)


def test_samplax_predictive_is_prior_without_a_posterior_and_posterior_with_one(conj_target):
    import types

    import samplax.predictive_checks as pc

    assert callable(samplax.predictive) and not isinstance(samplax.predictive, types.ModuleType)
    assert samplax.predictive is pc.predictive and {"predictive", "posterior_predictive",
                                                     "prior_predictive"} <= set(samplax.__all__)
    # no posterior: the prior predictive, the same draws as prior_predictive with the same seed
    prior = samplax.predictive(conj_target, seed=4, num_draws=300)
    assert set(prior.children) == {"prior", "prior_predictive"}
    ref = prior_predictive(conj_target, num_draws=300, seed=4)
    np.testing.assert_array_equal(prior["prior_predictive"]["y"].values, ref["prior_predictive"]["y"].values)
    other = samplax.predictive(conj_target, seed=5, num_draws=300)  # the seed is passed on
    assert not np.array_equal(other["prior_predictive"]["y"].values, ref["prior_predictive"]["y"].values)
    assert samplax.predictive(conj_target)["prior_predictive"]["y"].shape == (1, pc.PRIOR_DRAWS, N_OBS)

    # with a posterior: posterior_predictive added to that DataTree, in place, as posterior_predictive does it
    rng = np.random.default_rng(1)
    mu = POST_MEAN + np.sqrt(POST_VAR) * rng.standard_normal((2, 400))
    dt = _posterior_tree({"mu": mu})
    out = samplax.predictive(conj_target, dt, seed=7, num_draws=100)
    assert out is dt and {"posterior", "posterior_predictive", "observed_data"} <= set(dt.children)
    assert dt["posterior_predictive"]["y"].shape == (2, 100, N_OBS)
    ref = posterior_predictive(_posterior_tree({"mu": mu}), conj_target, seed=7, num_draws=100)
    np.testing.assert_array_equal(dt["posterior_predictive"]["y"].values, ref["posterior_predictive"]["y"].values)
    full = samplax.predictive(conj_target, _posterior_tree({"mu": mu}))  # num_draws=None: every draw
    assert full["posterior_predictive"]["y"].shape == (2, 400, N_OBS)


def test_samplax_predictive_names_a_swapped_or_wrong_argument(conj_target):
    dt = _posterior_tree({"mu": np.zeros((1, 5))})
    with pytest.raises(TypeError, match="Target comes first"):
        samplax.predictive(dt, conj_target)
    with pytest.raises(TypeError, match="dt must be a run's DataTree"):
        samplax.predictive(conj_target, {"mu": np.zeros((1, 5))})
    with pytest.raises(ValueError, match="num_draws"):
        samplax.predictive(conj_target, num_draws=0)
