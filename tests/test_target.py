"""Target constructors: bad-input errors naming the argument or site, and the names they give variables.

The whole-path checks against exact posteriors (awkward supports) are in test_constraints.py."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from samplax.target import Target


# ------------------------------------------------------------------------------------ bad input
def _discrete_latent():
    import numpyro
    import numpyro.distributions as dist

    k = numpyro.sample("k_latent", dist.Poisson(3.0))
    numpyro.sample("obs", dist.Normal(k, 1.0), obs=1.0)


def _exponential(y):
    import numpyro
    import numpyro.distributions as dist

    rate = numpyro.sample("rate", dist.Gamma(2.0, 1.0))
    numpyro.sample("waits", dist.Exponential(rate), obs=y)


def _poisson(counts):
    import numpyro
    import numpyro.distributions as dist

    rate = numpyro.sample("rate", dist.Gamma(2.0, 1.0))
    numpyro.sample("events", dist.Poisson(rate), obs=counts)


def test_discrete_latent_site_is_named():
    with pytest.raises(ValueError, match="latent site 'k_latent' is discrete"):
        Target.from_numpyro(_discrete_latent)


def test_missing_observed_data_is_named():
    from samplax.models.eight_schools import eight_schools_noncentered_model

    with pytest.raises(ValueError, match=r"latent site 'y'.*\['y'\] are None"):
        Target.from_numpyro(eight_schools_noncentered_model, 8, np.ones(8), y=None)


@pytest.mark.parametrize("model,data,site", [
    (_exponential, np.array([1.0, -2.0]), "waits"),
    (_poisson, np.array([2, -1]), "events"),
    (_poisson, np.array([2.0, 1.5]), "events"),
])
def test_data_outside_the_support_names_the_site(model, data, site):
    with pytest.raises(ValueError, match=f"no finite log-density.*'{site}'"):
        Target.from_numpyro(model, data)


@pytest.mark.parametrize("args,kwargs,match", [
    ((8,), {}, "missing a required argument: 'sigma'"),
    ((8, np.ones(8)), {"y": np.ones(8), "schools": 8}, "unexpected keyword argument 'schools'"),
])
def test_wrong_model_arguments_are_named(args, kwargs, match):
    from samplax.models.eight_schools import eight_schools_noncentered_model

    with pytest.raises(TypeError, match=match):
        Target.from_numpyro(eight_schools_noncentered_model, *args, **kwargs)


def test_from_logdensity_rejects_bad_input():
    with pytest.raises(ValueError, match="needs dim"):
        Target.from_logdensity(lambda x: -x @ x)
    with pytest.raises(ValueError, match="must return a scalar"):
        Target.from_logdensity(lambda x: -x**2, 3)
    t = Target.from_logdensity(lambda x: -0.5 * x @ x, 2)
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        t.check_position(jnp.zeros(3))
    assert np.isfinite(t.logdensity(t.init(jax.random.PRNGKey(0))))


@pytest.mark.parametrize("dim", [2.7, 3.0, "3", True])
def test_from_logdensity_dim_must_be_an_integer(dim):
    with pytest.raises(TypeError, match=f"dim must be a positive integer.*got {dim!r}"):
        Target.from_logdensity(lambda x: -x @ x, dim)
    assert Target.from_logdensity(lambda x: -x @ x, np.int64(3)).dim == 3


def test_from_logdensity_example_leaves_are_named_variables():
    from samplax.results import to_datatree

    def logdensity(p):
        return -0.5 * p["mu"] ** 2 - 0.5 * jnp.sum((p["theta"] - p["mu"]) ** 2)

    t = Target.from_logdensity(logdensity, example={"mu": 0.0, "theta": jnp.zeros(3)})
    assert t.dim == 4 and t.var_shapes == {"mu": (), "theta": (3,)}
    assert t.names == ("mu", "theta[0]", "theta[1]", "theta[2]")
    x = jnp.array([0.5, 1.0, 2.0, 3.0])
    assert float(t.logdensity(x)) == pytest.approx(-0.125 - 0.5 * (0.25 + 2.25 + 6.25))
    np.testing.assert_allclose(t.constrain_flat(x), x)
    positions = np.arange(2 * 5 * 4, dtype=float).reshape(2, 5, 4)
    dt = to_datatree(t, positions, {"lp": np.zeros((2, 5))})
    assert set(dt["posterior"].data_vars) == {"mu", "theta"}
    np.testing.assert_allclose(dt["posterior"]["mu"], positions[..., 0])
    np.testing.assert_allclose(dt["posterior"]["theta"], positions[..., 1:])
    nested = Target.from_logdensity(lambda p: -jnp.sum(p[0] ** 2) - p[1]["s"] ** 2, example=(jnp.zeros(2), {"s": 1.0}))
    assert nested.var_shapes == {"x.0": (2,), "x.1.s": ()}


def _one_normal(y):
    import numpyro
    import numpyro.distributions as dist

    mu = numpyro.sample("mu", dist.Normal(0.0, 1.0))
    numpyro.sample("y", dist.Normal(mu, 1.0), obs=y)


def _no_latent(y):
    import numpyro
    import numpyro.distributions as dist

    numpyro.sample("y", dist.Normal(0.0, 1.0), obs=y)


def test_functools_partial_models_are_accepted_and_named():
    t = Target.from_numpyro(functools.partial(_one_normal, y=1.0))
    assert t.name == "_one_normal" and t.var_shapes == {"mu": ()}
    # posterior N(1/2, 1/2): log-density at mu differs from mu = 0 by -(mu^2 - mu)
    assert float(t.logdensity(jnp.array([1.0])) - t.logdensity(jnp.array([0.0]))) == pytest.approx(0.0)
    with pytest.raises(ValueError, match="model '_no_latent' has no latent sample sites"):
        Target.from_numpyro(functools.partial(_no_latent, y=1.0))


def _subsampled(y):
    import numpyro
    import numpyro.distributions as dist

    mu = numpyro.sample("mu", dist.Normal(0.0, 1.0))
    with numpyro.plate("data", len(y), subsample_size=3) as idx:
        numpyro.sample("y", dist.Normal(mu, 1.0), obs=y[idx])


def test_subsampling_plate_is_refused_at_build():
    with pytest.raises(ValueError, match=r"plate 'data' subsamples \(size=10, subsample_size=3\).*minibatch_target.*'sgld'"):
        Target.from_numpyro(_subsampled, jnp.arange(10.0))


def _delta_latent():
    import numpyro
    import numpyro.distributions as dist

    z = numpyro.sample("z", dist.Delta(1.0))
    numpyro.sample("y", dist.Normal(z, 1.0), obs=0.5)


def test_delta_latent_site_is_named():
    with pytest.raises(ValueError, match="latent site 'z' has a Delta distribution"):
        Target.from_numpyro(_delta_latent)


def test_init_helpers_live_in_one_module_and_stay_importable_from_target():
    import samplax.init
    import samplax.target

    assert samplax.target.make_init is samplax.init.make_init
    assert samplax.target.model_arguments is samplax.init.model_arguments
    assert samplax.target.MAX_INIT_TRIES == samplax.init.MAX_INIT_TRIES


def test_float32_log_density_under_x64_samples_right():
    """A log-density computed in float32 while x64 is on (e.g. `x.astype(jnp.float32)` inside) returns a float32
    value; MCLMC's warmup carried it in a float64 while-loop and raised a dtype mismatch. The Target widens the
    value (exactly), so every sampler runs, and the draws are still right (mean 0, variance 4)."""
    import samplax
    from moments import assert_moments

    t = Target.from_logdensity(lambda x: -0.125 * jnp.sum(x.astype(jnp.float32) ** 2), 2)
    assert t.logdensity(jnp.ones(2)).dtype == jnp.result_type(float)
    dt = samplax.sample(t, "mclmc", num_chains=4, num_warmup=300, num_samples=12000, seed=3, progress=False)
    draws = np.asarray(dt.posterior["x"])
    assert_moments(draws, np.zeros(2), np.full(2, 4.0), what="mclmc on a float32 log-density")


@pytest.mark.parametrize("value", [-2.0, 0.0, float("nan"), float("inf"), "2", True])
def test_init_radius_and_init_scale_are_checked(value):
    """init_radius=-2 gave every chain the same start [2, 2, ...] (uniform(+2, -2) clamps), NaN blamed the model."""
    import numpyro
    import numpyro.distributions as dist

    def model():
        numpyro.sample("x", dist.Normal(0, 1).expand([3]))

    with pytest.raises(ValueError, match="init_radius must be a positive finite number"):
        Target.from_numpyro(model, init_radius=value)
    with pytest.raises(ValueError, match="init_scale must be a positive finite number"):
        Target.from_logdensity(lambda x: -0.5 * (x**2).sum(), 3, init_scale=value)
