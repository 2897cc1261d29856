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
