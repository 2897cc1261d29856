"""What ArviZ users expect of a numpyro run: plate-named dims, observed/constant data, pointwise log-likelihood."""

import numpy as np
import pytest
import scipy.stats

import samplax


@pytest.fixture(scope="module")
def run():
    t = samplax.models.get("eight_schools")
    return t, samplax.sample(t, "nuts", num_chains=2, num_warmup=200, num_samples=150, seed=2, progress=False)


def test_dims_follow_the_plates(run):
    _, dt = run
    assert dt.posterior["theta"].dims == ("chain", "draw", "school")
    assert dt.log_likelihood["y"].dims == ("chain", "draw", "school")


def test_observed_and_constant_data(run):
    t, dt = run
    data = samplax.models.posteriordb.load_data("eight_schools")
    np.testing.assert_array_equal(dt.observed_data["y"].values, np.asarray(data["y"], float))
    np.testing.assert_array_equal(dt.constant_data["sigma"].values, np.asarray(data["sigma"], float))


def test_pointwise_log_likelihood_is_exact(run):
    _, dt = run
    data = samplax.models.posteriordb.load_data("eight_schools")
    theta = dt.posterior["theta"].values
    want = scipy.stats.norm.logpdf(np.asarray(data["y"], float), theta, np.asarray(data["sigma"], float))
    np.testing.assert_allclose(dt.log_likelihood["y"].values, want, rtol=1e-10, atol=1e-10)


def test_loo_works_and_survives_save_load(run, tmp_path):
    from arviz_stats import loo

    _, dt = run
    res = loo(dt)
    assert np.isfinite(res.elpd) and res.elpd < 0
    samplax.save(dt, tmp_path / "r.nc")
    back = samplax.load(tmp_path / "r.nc")
    assert {"log_likelihood", "observed_data", "constant_data"} <= set(back.children)


def test_plain_log_density_has_no_model_groups():
    t = samplax.models.get("gaussian", dim=2)
    dt = samplax.sample(t, "mala", num_chains=2, num_warmup=50, num_samples=50, progress=False)
    assert "log_likelihood" not in dt.children and "observed_data" not in dt.children


def test_huge_log_likelihood_is_skipped_loudly(run, monkeypatch):
    import samplax.results as results

    t, _ = run
    monkeypatch.setattr(results, "MAX_LOG_LIKELIHOOD_VALUES", 100)
    with pytest.warns(RuntimeWarning, match="log_likelihood group skipped"):
        dt = samplax.sample(t, "nuts", num_chains=2, num_warmup=200, num_samples=150, seed=2, progress=False)
    assert "log_likelihood" not in dt.children and "observed_data" in dt.children


def _mvn_in_plate(plate_name, size):
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist

    def model():
        with numpyro.plate(plate_name, size):
            z = numpyro.sample("z", dist.MultivariateNormal(jnp.zeros(2), jnp.eye(2)))
            numpyro.deterministic("zsum", z.sum(-1))

    return samplax.Target.from_numpyro(model)


@pytest.mark.parametrize("plate_name, size", [("obs", 3), ("grp", 2)])
def test_event_axes_are_not_plate_axes(plate_name, size):
    from samplax.numpyro_groups import site_dims

    # z has shape (size, 2): the plate covers the batch axis, the event axis gets a site-named dim
    # (before: an MVN(2) in plate("obs", 3) got z_dim_0, z_dim_1; in plate("grp", 2) "grp" landed on the event axis)
    dims = site_dims(_mvn_in_plate(plate_name, size))
    assert dims["z"] == [plate_name, "z_dim_1"]
    assert dims["zsum"] == [plate_name]


def test_a_site_named_as_a_stat_or_an_argument_keeps_its_own_dims():
    """A site `L` (an LKJ factor) beside mclmc's stat `L`, and a model argument named as a site: each group takes
    the site's dims only for its sites (the run used to die in arviz after sampling, its draws lost)."""
    import numpyro
    import numpyro.distributions as dist

    def lkj():
        numpyro.sample("L", dist.LKJCholesky(3, 2.0))

    dt = samplax.sample(samplax.Target.from_numpyro(lkj), "mclmc", num_chains=2, num_warmup=50, num_samples=20,
                        seed=0, progress=False)
    assert dt.posterior["L"].shape == (2, 20, 3, 3) and dt.sample_stats["L"].shape == (2, 20)

    def with_scale(y, theta):
        with numpyro.plate("N", 3):
            th = numpyro.sample("theta", dist.Normal(0, theta))
            numpyro.sample("y", dist.Normal(th, 1), obs=y)

    dt = samplax.sample(samplax.Target.from_numpyro(with_scale, np.array([0.3, -0.2, 1.1]), 2.0), "mala",
                        num_chains=2, num_warmup=20, num_samples=10, seed=0, progress=False)
    assert dt.posterior["theta"].dims == ("chain", "draw", "N")
    assert float(dt.constant_data["theta"]) == 2.0


def test_sample_dims_are_not_site_or_variable_names():
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist

    def site_draw():
        numpyro.sample("draw", dist.Normal(0, 1))

    def plate_chain():
        with numpyro.plate("chain", 3):
            numpyro.sample("theta", dist.Normal(0, 1))

    for model, what in ((site_draw, "sample 'draw'"), (plate_chain, "plate 'chain'")):
        with pytest.raises(ValueError, match=f"{what} has the name of a sample dimension"):
            samplax.Target.from_numpyro(model)
    with pytest.raises(ValueError, match="variable 'draw' has the name of a sample dimension"):
        samplax.Target.from_logdensity(lambda p: -jnp.sum(p["draw"] ** 2), example={"draw": jnp.zeros(2)})


def test_names_the_results_cannot_hold_are_refused_before_sampling():
    """A scoped site ("grp/mu", numpyro's default divider) sampled to the end and then lost the whole run in
    DataTree.from_dict; a site and a plate of one name hid the site ("no latent sample sites")."""
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist
    from numpyro import handlers

    def sub(y):
        mu = numpyro.sample("mu", dist.Normal(0, 1))
        with numpyro.plate("N", len(y)):
            numpyro.sample("y", dist.Normal(mu, 1), obs=y)

    y = np.array([0.5, 1.5, -0.3])
    with pytest.raises(ValueError, match=r"sample 'grp/mu' contains '/'.*divider='\.'"):
        samplax.Target.from_numpyro(lambda y: handlers.scope(sub, prefix="grp")(y), y)
    dotted = samplax.Target.from_numpyro(lambda y: handlers.scope(sub, prefix="grp", divider=".")(y), y)
    dt = samplax.sample(dotted, "mala", num_chains=2, num_warmup=20, num_samples=10, seed=0, progress=False)
    assert "grp.mu" in dt.posterior
    with pytest.raises(ValueError, match="variable 'x/y' contains '/'"):
        samplax.Target.from_logdensity(lambda p: -jnp.sum(p["x/y"] ** 2), example={"x/y": jnp.zeros(2)})

    def clash(y):
        n = numpyro.sample("N", dist.Normal(0, 1))
        with numpyro.plate("N", len(y)):
            numpyro.sample("y", dist.Normal(n, 1), obs=y)

    with pytest.raises(ValueError, match=r"\['N'\] name\(s\) both a site and a plate"):
        samplax.Target.from_numpyro(clash, y)


def test_factor_terms_are_neither_data_nor_log_likelihood():
    """arviz's converter (and samplax before) put a numpyro.factor prior penalty into observed_data (an empty
    variable) and log_likelihood, and arviz_stats.loo then refused the group ("several log likelihood arrays")."""
    import arviz_stats
    import numpyro
    import numpyro.distributions as dist

    y = np.random.default_rng(0).normal(0.5, 1.0, 8)

    def model(y):
        mu = numpyro.sample("mu", dist.Normal(0, 1))
        numpyro.factor("extra_prior", dist.Normal(0, 1).log_prob(mu))
        with numpyro.plate("N", len(y)):
            numpyro.sample("y", dist.Normal(mu, 1), obs=y)

    dt = samplax.sample(samplax.Target.from_numpyro(model, y), "nuts", num_chains=2, num_warmup=200,
                        num_samples=200, seed=0, progress=False)
    assert list(dt["observed_data"].data_vars) == ["y"]
    assert list(dt["log_likelihood"].data_vars) == ["y"]
    mu = dt.posterior["mu"].values
    np.testing.assert_allclose(dt["log_likelihood"]["y"].values,
                               scipy.stats.norm.logpdf(y[None, None, :], mu[..., None], 1.0), rtol=1e-5)
    assert np.isfinite(float(arviz_stats.loo(dt).elpd))


def test_model_arguments_named_as_from_numpyro_options_reach_the_model(tmp_path):
    """`init_radius` as a model argument was taken as from_numpyro's option and never reached the model."""
    import json

    import numpyro
    import numpyro.distributions as dist

    from samplax.user_model import target_from_file

    def model(y, init_radius=0.0):
        mu = numpyro.sample("mu", dist.Normal(init_radius, 1.0))
        numpyro.sample("y", dist.Normal(mu, 1.0), obs=y)

    y = np.array([0.0])
    with pytest.raises(ValueError, match="model_kwargs="):
        samplax.Target.from_numpyro(model, y, init_radius=10.0)
    exact = lambda m: scipy.stats.norm.logpdf(m, 10.0, 1.0) + scipy.stats.norm.logpdf(0.0, m, 1.0)  # noqa: E731
    t = samplax.Target.from_numpyro(model, y, model_kwargs={"init_radius": 10.0}, init_radius=0.5)
    assert float(t.logdensity(np.array([3.0]))) == pytest.approx(exact(3.0), rel=1e-6)
    # the CLI's --data file: its keys are the model's arguments
    src = tmp_path / "m.py"
    src.write_text("import numpyro, numpyro.distributions as dist\n"
                   "def model(y, init_radius=0.0):\n"
                   "    mu = numpyro.sample('mu', dist.Normal(init_radius, 1.0))\n"
                   "    numpyro.sample('y', dist.Normal(mu, 1.0), obs=y)\n")
    data = tmp_path / "d.json"
    data.write_text(json.dumps({"y": [0.0], "init_radius": 10.0}))
    t = target_from_file(f"{src}:model", data)
    assert float(t.logdensity(np.array([3.0]))) == pytest.approx(exact(3.0), rel=1e-6)
