"""Target.from_numpyro whole path (build, NUTS, constrained draws, diagnostics) on awkward supports with exact answers.

One model of independent blocks, so one compile covers them all:
  lam       Gamma-Poisson (positive);  p  Beta-Binomial (unit interval);  w  Dirichlet-Multinomial (simplex).
  x         ordered 3-vector with density prod phi(x_i): the order statistics of 3 iid N(0, 1).
  a, b      a ~ U(0, 1), b flat on (0, 1 - a) (Stan's real<upper=1-a> b): p(a, b) = 2 on the triangle,
            E = 1/3, Var = 1/18 for both.
  c, d      c ~ N(0, 1), d flat on (c, inf) with factor log phi(d - c): d = c + |N(0, 1)|;
            E d = sqrt(2/pi), Var d = 2 - 2/pi (light tails, so 10% variance errors are detectable).
The ImproperUniform bounds on b and d depend on other parameters in a way numpyro's static postprocess misses.
The model must have no site that numpyro itself flags as dynamic (e.g. Uniform(0, u)) and no deterministic
site: either makes numpyro replay the model for every site, which would hide the bug these tests catch.
"""

from math import factorial

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import integrate, stats

import samplax
from moments import assert_moments
from samplax.diagnostics import summary
from samplax.target import Target

Y_POIS = np.array([3, 1, 4, 1, 5])
K_BINOM = 7
COUNTS = np.array([5, 0, 2])
ALPHA = np.array([1.0, 2.0, 3.0])


def triangle():
    import numpyro
    import numpyro.distributions as dist
    from numpyro.distributions import constraints

    a = numpyro.sample("a", dist.Uniform(0.0, 1.0))
    numpyro.sample("b", dist.ImproperUniform(constraints.interval(0.0, 1.0 - a), (), ()))


def awkward_model(y_pois, k_binom, counts):
    import numpyro
    import numpyro.distributions as dist
    from numpyro.distributions import constraints

    lam = numpyro.sample("lam", dist.Gamma(2.0, 1.0))
    numpyro.sample("y_pois", dist.Poisson(lam).expand([len(y_pois)]), obs=y_pois)
    p = numpyro.sample("p", dist.Beta(2.0, 3.0))
    numpyro.sample("k_binom", dist.Binomial(20, p), obs=k_binom)
    w = numpyro.sample("w", dist.Dirichlet(jnp.asarray(ALPHA)))
    numpyro.sample("counts", dist.Multinomial(int(np.sum(counts)), w), obs=counts)
    x = numpyro.sample("x", dist.ImproperUniform(constraints.ordered_vector, (), (3,)))
    numpyro.factor("x_normal", dist.Normal(0.0, 1.0).log_prob(x).sum())
    triangle()
    c = numpyro.sample("c", dist.Normal(0.0, 1.0))
    d = numpyro.sample("d", dist.ImproperUniform(constraints.greater_than(c), (), ()))
    numpyro.factor("d_half_normal", dist.Normal(0.0, 1.0).log_prob(d - c))


def order_stat_moments(k, n=3):
    """Mean and variance of the k-th (1-based) order statistic of n iid N(0, 1), by quadrature."""
    c = factorial(n) / (factorial(k - 1) * factorial(n - k))
    f = lambda x, p: x**p * c * stats.norm.cdf(x) ** (k - 1) * stats.norm.sf(x) ** (n - k) * stats.norm.pdf(x)  # noqa: E731
    m1 = integrate.quad(f, -np.inf, np.inf, args=(1,))[0]
    m2 = integrate.quad(f, -np.inf, np.inf, args=(2,))[0]
    return m1, m2 - m1**2


def truth():
    """Exact posterior (mean, variance) per variable, arrays over its flat coordinates."""
    a_g, b_g = 2.0 + Y_POIS.sum(), 1.0 + len(Y_POIS)  # Gamma-Poisson
    a_b, b_b = 2.0 + K_BINOM, 3.0 + 20 - K_BINOM  # Beta-Binomial
    post = ALPHA + COUNTS  # Dirichlet-Multinomial
    s = post.sum()
    x = [order_stat_moments(k) for k in (1, 2, 3)]
    return {
        "lam": ([a_g / b_g], [a_g / b_g**2]),
        "p": ([a_b / (a_b + b_b)], [a_b * b_b / ((a_b + b_b) ** 2 * (a_b + b_b + 1))]),
        "w": (post / s, post * (s - post) / (s**2 * (s + 1))),
        "x": ([m for m, _ in x], [v for _, v in x]),
        "a": ([1 / 3], [1 / 18]),
        "b": ([1 / 3], [1 / 18]),
        "c": ([0.0], [1.0]),
        "d": ([np.sqrt(2 / np.pi)], [2 - 2 / np.pi]),
    }


def test_order_statistic_moments_are_the_textbook_ones():
    # E max of 3 iid N(0,1) = 3 / (2 sqrt(pi)) (David & Nagaraja, Order Statistics, 3rd ed., ex. 3.2)
    assert order_stat_moments(3)[0] == pytest.approx(3 / (2 * np.sqrt(np.pi)))
    assert order_stat_moments(2)[0] == pytest.approx(0.0, abs=1e-12)
    assert order_stat_moments(1)[0] == pytest.approx(-0.8463, abs=1e-4)
    # 2 iid N(0, 1): E min = -1/sqrt(pi)
    assert order_stat_moments(1, n=2)[0] == pytest.approx(-1 / np.sqrt(np.pi))


def test_triangle_logdensity_and_constrain_are_exact_at_any_point():
    """Unconstrained x -> a = s(x0), b = (1 - a) s(x1); log-density = log Jacobian, as p(a, b) is flat."""
    t = Target.from_numpyro(triangle)
    xs = jax.random.normal(jax.random.PRNGKey(1), (50, 2)) * 3
    s0, s1 = jax.nn.sigmoid(xs[:, 0]), jax.nn.sigmoid(xs[:, 1])
    log_jac = jnp.log(s0 * (1 - s0)) + jnp.log((1 - s0) * s1 * (1 - s1))
    np.testing.assert_allclose(jax.jit(jax.vmap(t.logdensity))(xs), log_jac, rtol=1e-10)
    got = jax.jit(jax.vmap(t.constrain))(xs)
    np.testing.assert_allclose(got["a"], s0, rtol=1e-12)
    np.testing.assert_allclose(got["b"], (1 - s0) * s1, rtol=1e-12)


@pytest.fixture(scope="module")
def run():
    t = Target.from_numpyro(awkward_model, Y_POIS, K_BINOM, COUNTS)
    dt = samplax.sample(t, "nuts", num_chains=4, num_warmup=500, num_samples=10000, seed=0, progress=False)
    return t, dt


def test_names_and_shapes_follow_the_sites(run):
    t, dt = run
    assert t.dim == 1 + 1 + 2 + 3 + 2 + 2  # the simplex of 3 has 2 unconstrained coordinates
    assert set(t.var_shapes) == set(truth())
    assert dt["posterior"]["w"].shape[-1] == 3 and dt["posterior"]["x"].shape[-1] == 3


def test_every_draw_is_inside_its_support(run):
    _, dt = run
    p = {k: np.asarray(dt["posterior"][k]) for k in truth()}
    assert np.all(p["lam"] > 0) and np.all((0 < p["p"]) & (p["p"] < 1))
    assert np.all(p["w"] > 0)
    np.testing.assert_allclose(p["w"].sum(-1), 1.0, atol=1e-12)
    assert np.all(np.diff(p["x"], axis=-1) > 0)
    assert np.all((p["a"] > 0) & (p["b"] > 0) & (p["a"] + p["b"] < 1)), "draws outside the triangle"
    assert np.all(p["d"] > p["c"])


@pytest.mark.parametrize("name", list(truth()))
def test_moments_match_exact_answers(run, name):
    _, dt = run
    draws = np.asarray(dt["posterior"][name].transpose("chain", "draw", ...))
    draws = draws.reshape(draws.shape[0], draws.shape[1], -1)
    table = summary(draws, kind="all")
    assert np.all(table["ess_bulk"].to_numpy() >= 400), table
    assert np.all(table["r_hat"].to_numpy() < 1.02), table
    mean, var = truth()[name]
    assert_moments(draws, np.asarray(mean), np.asarray(var), what=name)


def test_hitting_and_report_see_constrained_values(run):
    t, dt = run
    ia, ib = t.names.index("a"), t.names.index("b")
    # constrained draws never leave the triangle: no run ever "hits" a + b >= 1
    res = samplax.diagnostics.hit_times_from_draws(dt, lambda p: p[ia] + p[ib] >= 1, target=t)
    assert not res.hit.any()
    # b > 1/2 has probability 1/4: every chain of 10000 draws gets there, at a time counted in gradients
    res = samplax.diagnostics.hit_times_from_draws(dt, lambda p: p[ib] > 0.5, target=t)
    assert res.hit.all() and np.all(res.grads > 0)
    from samplax.diagnostics.report import report

    text = report({"nuts": dt})
    assert "nuts" in text and "b" in text
