"""Target.from_numpyro against hand-derived conjugate posteriors (awkward supports), and bad-input errors."""

from math import factorial

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import integrate, stats

import samplax
from samplax.diagnostics.mixing import summary
from samplax.target import Target

Y_POIS = np.array([3, 1, 4, 1, 5])
COUNTS = np.array([5, 0, 2])
ALPHA = np.array([1.0, 2.0, 3.0])


def conjugate_model(y_pois, k_binom, counts):
    """Independent blocks, one per constraint type, each with a posterior known in closed form."""
    import numpyro
    import numpyro.distributions as dist
    from numpyro.distributions import constraints

    lam = numpyro.sample("lam", dist.Gamma(2.0, 1.0))  # positive
    numpyro.sample("y_pois", dist.Poisson(lam).expand([len(y_pois)]), obs=y_pois)
    p = numpyro.sample("p", dist.Beta(2.0, 3.0))  # unit interval
    numpyro.sample("k_binom", dist.Binomial(20, p), obs=k_binom)
    w = numpyro.sample("w", dist.Dirichlet(jnp.asarray(ALPHA)))  # simplex
    numpyro.sample("counts", dist.Multinomial(int(np.sum(counts)), w), obs=counts)
    # ordered: density prod phi(x_i) on x1 < x2 < x3 is the law of the order statistics of 3 iid N(0, 1)
    x = numpyro.sample("x", dist.ImproperUniform(constraints.ordered_vector, (), (3,)))
    numpyro.factor("x_normal", dist.Normal(0.0, 1.0).log_prob(x).sum())
    a = numpyro.sample("a", dist.Uniform(0.0, 1.0))  # bound set by another parameter
    numpyro.sample("b", dist.Uniform(0.0, a))


def order_stat_moments(k, n=3):
    """Mean and variance of the k-th (1-based) order statistic of n iid N(0, 1), by quadrature."""
    c = factorial(n) / (factorial(k - 1) * factorial(n - k))
    f = lambda x, p: x**p * c * stats.norm.cdf(x) ** (k - 1) * stats.norm.sf(x) ** (n - k) * stats.norm.pdf(x)  # noqa: E731
    m1 = integrate.quad(f, -np.inf, np.inf, args=(1,))[0]
    m2 = integrate.quad(f, -np.inf, np.inf, args=(2,))[0]
    return m1, m2 - m1**2


def truth():
    """Exact posterior mean and variance per flat name."""
    out = {}
    a_g, b_g = 2.0 + Y_POIS.sum(), 1.0 + len(Y_POIS)  # Gamma-Poisson
    out["lam"] = (a_g / b_g, a_g / b_g**2)
    a_b, b_b = 2.0 + 7, 3.0 + 20 - 7  # Beta-Binomial
    out["p"] = (a_b / (a_b + b_b), a_b * b_b / ((a_b + b_b) ** 2 * (a_b + b_b + 1)))
    post = ALPHA + COUNTS  # Dirichlet-Multinomial
    s = post.sum()
    for i, ai in enumerate(post):
        out[f"w[{i}]"] = (ai / s, ai * (s - ai) / (s**2 * (s + 1)))
    for i in range(3):
        out[f"x[{i}]"] = order_stat_moments(i + 1)
    out["a"] = (0.5, 1 / 12)  # p(a) = 1 on (0, 1)
    out["b"] = (0.25, 1 / 9 - 1 / 16)  # b | a ~ U(0, a): E b = E a / 2, E b^2 = E a^2 / 3
    return out


@pytest.fixture(scope="module", params=[0])
def run(request):
    t = Target.from_numpyro(conjugate_model, Y_POIS, 7, COUNTS)
    dt = samplax.sample(t, "nuts", num_chains=4, num_warmup=500, num_samples=1000, seed=request.param,
                        progress=False)
    return t, dt, summary(dt)


def test_order_statistic_means_are_the_textbook_ones():
    # E max of 3 iid N(0,1) = 3 / (2 sqrt(pi)) (David & Nagaraja, Order Statistics, 3rd ed., ex. 3.2)
    assert order_stat_moments(3)[0] == pytest.approx(3 / (2 * np.sqrt(np.pi)))
    assert order_stat_moments(2)[0] == pytest.approx(0.0, abs=1e-12)
    assert order_stat_moments(1)[0] == pytest.approx(-0.8463, abs=1e-4)


def test_names_and_shapes_follow_the_sites(run):
    t, dt, _ = run
    assert t.dim == 1 + 1 + 2 + 3 + 1 + 1  # the simplex of 3 has 2 unconstrained coordinates
    assert set(t.names) == set(truth())
    assert dt["posterior"]["w"].shape[-1] == 3 and dt["posterior"]["x"].shape[-1] == 3


@pytest.mark.parametrize("name", list(truth()))
def test_posterior_mean_and_sd_match_conjugate_truth(run, name):
    _, _, s = run
    mean, var = truth()[name]
    row = s.loc[name]
    assert row["r_hat"] < 1.05, row
    assert abs(row["mean"] - mean) < 5 * row["mcse_mean"], (row["mean"], mean, row["mcse_mean"])
    assert abs(row["sd"] - np.sqrt(var)) < 5 * row["mcse_sd"], (row["sd"], np.sqrt(var), row["mcse_sd"])


def test_every_reported_draw_is_in_its_support(run):
    _, dt, _ = run
    post = {k: np.asarray(dt["posterior"][k]) for k in ("lam", "p", "w", "x", "a", "b")}
    assert np.all(post["lam"] > 0)
    assert np.all((0 < post["p"]) & (post["p"] < 1))
    assert np.all(post["w"] > 0)
    np.testing.assert_allclose(post["w"].sum(-1), 1.0, atol=1e-12)
    assert np.all(np.diff(post["x"], axis=-1) > 0)
    assert np.all((0 < post["b"]) & (post["b"] < post["a"]) & (post["a"] < 1))


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
