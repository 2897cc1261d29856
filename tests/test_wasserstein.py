"""Wasserstein diagnostics against closed forms (Gaussian W2, sliced Gaussian W2, uniform 1D noise floor)."""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import ot
import pytest
import scipy.linalg
from arviz_base import from_dict
from arviz_stats import ess

import samplax
from samplax.diagnostics.wasserstein import (
    draws_array,
    exact_wasserstein,
    gaussian_fit_w2,
    gaussian_w2,
    noise_floor,
    second_moment_bias_curve,
    sinkhorn_w2,
    sliced_w2,
    sphere_directions,
    w2_1d,
    wasserstein,
    wasserstein_curve,
)
from samplax.diagnostics.wasserstein import distance as wdistance
from samplax.target import Target

SEED = 0
D = 2
MU = np.array([1.0, 0.5])
SIGMA = np.array([[2.0, 0.6], [0.6, 0.5]])
CHOL = np.linalg.cholesky(SIGMA)


def std_normal(key, n):
    return jax.random.normal(key, (n, D))


def shifted(key, n):
    return jnp.asarray(MU) + jax.random.normal(key, (n, D)) @ jnp.asarray(CHOL).T


def gaussian_target(mean, cov, var_name="x"):
    mean, cov = np.asarray(mean, float), np.asarray(cov, float)
    prec, chol = np.linalg.inv(cov), np.linalg.cholesky(cov)

    def logdensity(x):
        r = x - mean
        return -0.5 * r @ (prec @ r)

    def sample(key, n):
        return jnp.asarray(mean) + jax.random.normal(key, (n, len(mean))) @ jnp.asarray(chol).T

    return Target.from_logdensity(logdensity, len(mean), mean=jnp.asarray(mean), cov=jnp.asarray(cov),
                                  sample=sample, var_name=var_name)


def slope(ns, values):
    return np.polyfit(np.log(ns), np.log(values), 1)[0]


# ------------------------------------------------------------------ estimators vs closed forms
SQRT_SIGMA = np.real(scipy.linalg.sqrtm(SIGMA))


def sliced_gaussian_w2(theta):
    """Exact sliced W2 between N(0, I) and N(MU, SIGMA) over the given directions (1D Gaussian W2 per direction)."""
    s0 = np.sqrt(np.sum(theta * theta, axis=0))
    s1 = np.sqrt(np.einsum("dk,de,ek->k", theta, SIGMA, theta))
    return float(np.sqrt(np.mean((MU @ theta) ** 2 + (s0 - s1) ** 2)))


def dual_value(X, Y, theta=None):
    """Kantorovich dual of W2^2(N(0,I), N(MU,SIGMA)) at the exact Brenier potentials, averaged over X and Y.

    Its mean is the exact W2^2; it is a feasible dual pair for the empirical problem too, so the
    plug-in W2^2 is >= it for every sample, and plug-in minus dual is the (positive) plug-in bias
    without the first-order sampling fluctuation. theta: per-direction 1D potentials for sliced W2.
    """
    if theta is None:
        u = X @ MU + 0.5 * np.einsum("ni,ij,nj->n", X, SQRT_SIGMA, X)  # Brenier map x -> MU + SIGMA^1/2 x
        r = Y - MU
        u_conj = 0.5 * np.einsum("ni,ij,nj->n", r, np.linalg.inv(SQRT_SIGMA), r)
        return np.mean(np.sum(X**2, 1) - 2 * u) + np.mean(np.sum(Y**2, 1) - 2 * u_conj)
    s0 = np.sqrt(np.sum(theta**2, 0))
    s1 = np.sqrt(np.einsum("dk,de,ek->k", theta, SIGMA, theta))
    m, t, s = MU @ theta, X @ theta, Y @ theta
    u, u_conj = m * t + 0.5 * (s1 / s0) * t**2, 0.5 * (s - m) ** 2 * (s0 / s1)
    return float(np.mean(np.mean(t**2 - 2 * u, 0) + np.mean(s**2 - 2 * u_conj, 0)))


@pytest.mark.parametrize("method", ["exact", "sinkhorn", "sliced_qmc", "sliced"])
def test_estimators_match_gaussian_closed_form_within_noise(method):
    # plug-in W2^2 = exact W2^2 + first-order fluctuation (the dual value's) + a positive bias of the order of the
    # noise floors: bias in [0, F0^2 + F1^2] (= 2 E F^2 when Y is a shifted X, where E bias = E F^2 exactly).
    n, reps = 300, 6
    theta = None
    kw = {}
    if method.startswith("sliced"):
        kw = {"direction_seed": SEED + 3}
        theta = sphere_directions(D, 128, "sobol" if method == "sliced_qmc" else "random", seed=SEED + 3)
        truth = sliced_gaussian_w2(theta)
    else:
        truth = gaussian_w2(np.zeros(D), np.eye(D), MU, SIGMA)
    bias, dual = [], []
    for r in range(reps):
        X = np.asarray(std_normal(jax.random.PRNGKey(SEED + 100 + r), n))
        Y = np.asarray(shifted(jax.random.PRNGKey(SEED + 200 + r), n))
        dual.append(dual_value(X, Y, theta))
        bias.append(float(wdistance(X, Y, method, **kw)) ** 2 - dual[-1])
    bias, dual = np.array(bias), np.array(dual)
    assert abs(dual.mean() - truth**2) < 5 * dual.std(ddof=1) / np.sqrt(reps)  # the closed form itself
    if method != "sinkhorn":
        assert bias.min() > -1e-9  # weak duality
    f0 = noise_floor(std_normal, n, method=method, reps=reps, seed=SEED + 300, **kw)
    f1 = noise_floor(shifted, n, method=method, reps=reps, seed=SEED + 400, **kw)
    se = bias.std(ddof=1) / np.sqrt(reps) + np.sqrt(np.var(f0.values**2) + np.var(f1.values**2)) / np.sqrt(reps)
    assert -5 * se < bias.mean() < np.mean(f0.values**2) + np.mean(f1.values**2) + 5 * se, (bias, f0, f1)
    assert f0.mean < 0.5 * truth  # the test has power: the floor is well below the distance


def test_exact_w2_shift_identity_and_pot():
    # For any coupling, a shift D of Y changes the W2^2 cost by -2 D.(mean X - mean Y) + |D|^2.
    rng = np.random.default_rng(SEED)
    X, Y = rng.standard_normal((70, 3)), rng.standard_normal((50, 3)) * 1.5
    shift = np.array([2.0, -1.0, 0.5])
    w, ws = exact_wasserstein(X, Y), exact_wasserstein(X, Y + shift)
    assert float(ws) ** 2 == pytest.approx(float(w) ** 2 - 2 * shift @ (X.mean(0) - Y.mean(0)) + shift @ shift,
                                           rel=1e-9)
    assert float(w) ** 2 == pytest.approx(ot.emd2([], [], ot.dist(X, Y)), rel=1e-12)
    w1 = exact_wasserstein(X, Y, p=1)
    assert float(w1) == pytest.approx(ot.emd2([], [], ot.dist(X, Y, metric="euclidean")), rel=1e-12)
    assert float(w1) <= float(w)  # W1 <= W2 (Jensen)


def test_sinkhorn_shift_identity_and_close_to_exact():
    # epsilon is relative to the within-set spread, so the debiased divergence obeys the same shift identity
    rng = np.random.default_rng(SEED + 1)
    X, Y = rng.standard_normal((200, 2)), rng.standard_normal((200, 2)) @ CHOL.T
    shift = np.array([3.0, -2.0])
    a, b = sinkhorn_w2(X, Y).info["divergence"], sinkhorn_w2(X, Y + shift).info["divergence"]
    assert b == pytest.approx(a - 2 * shift @ (X.mean(0) - Y.mean(0)) + shift @ shift, rel=1e-4)
    exact = float(exact_wasserstein(X, Y + shift)) ** 2
    assert b == pytest.approx(exact, rel=0.03)
    assert b < exact  # entropic smoothing lowers the debiased divergence here


def test_sliced_matches_pot_and_backends_agree():
    rng = np.random.default_rng(SEED + 2)
    X, Y = rng.standard_normal((37, 4)), rng.standard_normal((53, 4)) + 0.3  # unequal sizes
    theta = sphere_directions(4, 64, "halton", seed=SEED + 1)
    pot = ot.sliced_wasserstein_distance(X, Y, projections=theta, p=2)
    assert float(sliced_w2(X, Y, projections=theta, backend="numpy")) == pytest.approx(pot, rel=1e-12)
    assert float(sliced_w2(X, Y, projections=theta, backend="jax")) == pytest.approx(pot, rel=1e-10)
    assert np.allclose(np.linalg.norm(theta, axis=0), 1.0)


def test_sliced_and_exact_agree_in_1d():
    rng = np.random.default_rng(SEED + 3)
    x, y = rng.gamma(2.0, size=41), rng.standard_normal(29)  # skewed, unequal sizes
    exact = float(exact_wasserstein(x, y))
    assert float(w2_1d(x, y)) == pytest.approx(exact, rel=1e-10)
    assert float(sliced_w2(x, y, directions="random", n_projections=5)) == pytest.approx(exact, rel=1e-10)
    assert float(w2_1d(x, y)) == pytest.approx(np.sqrt(ot.wasserstein_1d(x, y, p=2)), rel=1e-10)


def test_w2_1d_matches_gaussian_closed_form():
    n = 4000
    x = np.asarray(jax.random.normal(jax.random.PRNGKey(SEED + 1), (n,)))
    y = 1.0 + 2.0 * np.asarray(jax.random.normal(jax.random.PRNGKey(SEED + 2), (n,)))
    truth = gaussian_w2([0.0], [[1.0]], [1.0], [[4.0]])
    floor = noise_floor(lambda k, m: 1.0 + 2.0 * jax.random.normal(k, (m,)), n, method="1d", reps=5, seed=SEED + 7)
    assert abs(float(w2_1d(x, y)) - truth) < 3 * floor.mean


def test_gaussian_fit_within_its_floor():
    n = 500
    X = np.asarray(shifted(jax.random.PRNGKey(SEED + 5), n))
    fit_err = float(gaussian_fit_w2(X, MU, SIGMA))  # distance of the fit to the truth it was drawn from
    est = float(gaussian_fit_w2(X, np.zeros(D), np.eye(D)))
    truth = gaussian_w2(MU, SIGMA, np.zeros(D), np.eye(D))
    assert abs(est - truth) <= fit_err + 1e-12  # triangle inequality of the Bures-Wasserstein metric
    floor = noise_floor(shifted, n, method="gaussian_fit", reps=10, mean=MU, cov=SIGMA, seed=SEED + 9)
    assert fit_err < floor.mean + 5 * floor.std
    pot = ot.gaussian.bures_wasserstein_distance(X.mean(0), MU, np.cov(X, rowvar=False), SIGMA)
    assert fit_err == pytest.approx(float(pot), rel=1e-8)


# ------------------------------------------------------------------ noise floor
def test_uniform_1d_floor_matches_exact_expectation_and_rate():
    # Two uniform samples of size n: E W2^2 = 2/n sum_i Var(U_(i)) = 1/(3(n+1)), hence the n^-1/2 rate.
    ns, reps = [100, 400, 1600, 6400], 40
    uniform = lambda key, m: jax.random.uniform(key, (m,))  # noqa: E731
    means = []
    for n in ns:
        f = noise_floor(uniform, n, method="1d", reps=reps, seed=SEED + n)
        sq = f.values**2
        assert abs(sq.mean() - 1 / (3 * (n + 1))) < 5 * sq.std(ddof=1) / np.sqrt(reps)
        means.append(f.mean)
    assert -0.6 < slope(ns, means) < -0.4


def test_sliced_floor_rate_is_dimension_free():
    # Sliced W2 averages 1D problems: ~sqrt(log log n / n) for Gaussian projections (slope -0.46 over
    # n = 100..3200), whatever d; exact W2 in d = 10 decays far slower (n^(-1/d) asymptotically).
    ns = [100, 400, 1600]
    target = lambda key, m: jax.random.normal(key, (m, 10))  # noqa: E731
    sliced = [noise_floor(target, n, method="sliced_qmc", reps=3, seed=SEED + n).mean for n in ns]
    exact = [noise_floor(target, n, method="exact", reps=2, seed=SEED + n).mean for n in ns]
    assert -0.6 < slope(ns, sliced) < -0.38
    assert -0.3 < slope(ns, exact) < -0.05


# ------------------------------------------------------------------ DataTree / Target API
@pytest.fixture(scope="module")
def nuts_run():
    target = gaussian_target(MU, SIGMA)
    dt = samplax.sample(target, "nuts", num_chains=2, num_warmup=200, num_samples=300, seed=SEED, progress=False)
    return target, dt


def test_wasserstein_on_datatree(nuts_run):
    target, dt = nuts_run
    res = wasserstein(dt, target, reps=5)
    assert res.method == "exact" and res.num_chains == 2 and res.num_draws == 300
    assert res.pooled.n == 600 and res.floor.n == 600 and res.per_chain.shape == (2,)
    assert res.floor_per_chain.n == 300 and res.floor_per_chain.mean > res.floor.mean
    # correlated draws carry the noise of about ESS iid draws: compare with the floor at the (min) bulk ESS
    n_eff = int(min(np.asarray(ess(dt, method="bulk")["x"])))
    floor_eff = noise_floor(target, n_eff, m=600, method="exact", reps=10, seed=SEED + 50)
    assert float(res.pooled) < floor_eff.mean + 5 * floor_eff.std
    # the same draws against a target shifted by 1 show the known W2 = 1 above the floor
    wrong = gaussian_target(MU + np.array([1.0, 0.0]), SIGMA)
    bad = wasserstein(dt, wrong, per_chain=False, reps=3)
    assert bad.per_chain is None and abs(float(bad.pooled) - 1.0) < 3 * bad.floor.mean
    assert float(bad.pooled) > bad.floor.mean + 5 * bad.floor.std
    arr = wasserstein(draws_array(dt, target), target, method="sliced_qmc", reps=3)  # array path
    assert arr.method == "sliced_qmc" and float(arr.pooled) < arr.floor.mean + 5 * arr.floor.std
    assert "noise floor" in str(res)


def test_wasserstein_curve_and_gradients(nuts_run):
    target, dt = nuts_run
    curve = wasserstein_curve(dt, target, num_points=4, min_draws=20, reps=3)
    ks = curve["draws"]
    assert ks[0] == 20 and ks[-1] == 300 and np.all(np.diff(ks) > 0)
    grads = np.cumsum(np.asarray(dt["sample_stats"]["n_grad"]), axis=1)
    np.testing.assert_allclose(curve["n_grad"], grads[:, ks - 1].mean(0))
    assert curve["floor_mean"][-1] < curve["floor_mean"][0]
    assert curve["value"][-1] < curve["value"][0]  # 15x more draws: the error shrinks with the floor
    wrong = wasserstein_curve(dt, gaussian_target(MU + np.array([1.0, 0.0]), SIGMA), num_points=2, reps=2)
    assert abs(wrong["value"][-1] - 1.0) < 3 * wrong["floor_mean"][-1]  # plateaus at the true W2 = 1


def test_reference_draws_and_gaussian_fit_paths(nuts_run):
    target, dt = nuts_run
    pool = np.asarray(target.sample(jax.random.PRNGKey(SEED + 60), 2000))
    ref_only = target.replace(sample=None, reference_draws={"x": pool})
    # 3x the iid floor: the error of correlated draws scales as 1/sqrt(ESS) and this run has ESS > n/9 (~n/4)
    res = wasserstein(dt, ref_only, per_chain=False, reps=3)  # 600 + 600 disjoint draws out of the pool
    assert res.floor.n == 600 and float(res.pooled) < 3 * res.floor.mean
    with pytest.raises(ValueError, match="2000 reference draws but 2400"):
        noise_floor(ref_only, 1200, method="exact", reps=2)
    fit = wasserstein(dt, target, method="gaussian_fit", reps=5)
    assert fit.pooled.method == "gaussian_fit" and fit.floor.m == 0 and fit.per_chain.shape == (2,)
    assert float(fit.pooled) < 3 * fit.floor.mean + 5 * fit.floor.std


def test_small_reference_pool_thins_the_run_and_records_the_sizes_used(nuts_run):
    """A pool of 1000 reference draws cannot give 600 + 600 disjoint ones: compare 500 run draws (thinned
    evenly) with 500 reference draws, and the floor at (500, 500) from two disjoint halves of the pool."""
    target, dt = nuts_run
    pool = np.asarray(target.sample(jax.random.PRNGKey(SEED + 61), 1000))
    res = wasserstein(dt, target.replace(sample=None, reference_draws={"x": pool}), reps=3)
    assert (res.pooled.n, res.pooled.m, res.floor.n, res.floor.m) == (500, 500, 500, 500)
    assert res.pooled.info["run_draws_given"] == 600 and "500 of 600 draws used" in str(res)
    assert (res.floor_per_chain.n, res.floor_per_chain.m) == (300, 300)  # one chain fits the pool as it is
    assert float(res.pooled) < 3 * res.floor.mean
    # the floor records what the estimator used, not what was asked for
    fl = noise_floor(lambda k, n: jax.random.normal(k, (n, 2)), 120, method="exact", reps=2, max_points=50)
    assert (fl.n, fl.m, fl.n_requested, fl.m_requested) == (50, 50, 120, 120)


def test_draws_array_follows_target_names():
    C, T = 2, 5
    rng = np.random.default_rng(SEED)
    a, b = rng.standard_normal((C, T)), rng.standard_normal((C, T, 2))
    dt = from_dict({"posterior": {"a": a, "b": b}})
    target = gaussian_target(np.zeros(3), np.eye(3)).replace(var_shapes={"b": (2,), "a": ()})
    assert target.names == ("b[0]", "b[1]", "a")
    arr = draws_array(dt, target)
    np.testing.assert_array_equal(arr[..., :2], b)
    np.testing.assert_array_equal(arr[..., 2], a)


# ------------------------------------------------------------------ second-moment bias
def _iid_tree(sampler, C, T, d, seed):
    x = np.asarray(sampler(jax.random.PRNGKey(seed), C * T)).reshape(C, T, d)
    return from_dict({"posterior": {"x": x}, "sample_stats": {"n_grad": np.full((C, T), 3)}})


def test_second_moment_bias_near_zero_for_exact_draws():
    # iid draws: T * b2 per chain and coordinate is ~ chi2_1; its mean over chains and coordinates is 1 +- sqrt(2/(C d))
    C, T, d = 8, 1000, 10
    mean, var = np.linspace(-1, 1, d), np.linspace(0.5, 2, d)
    target = gaussian_target(mean, np.diag(var))
    dt = _iid_tree(target.sample, C, T, d, seed=SEED + 11)
    for assume in (True, False):
        curve = second_moment_bias_curve(dt, target, assume_gaussian=assume, n_ref=200_000)
        scaled = T * curve["b2_avg_per_chain"][:, -1].mean()
        assert abs(scaled - 1) < 5 * np.sqrt(2 / (C * d)), (assume, scaled)
        assert curve["b2_avg"][-1] < 0.01 and np.all(curve["b2_max"] >= curve["b2_avg"])
    np.testing.assert_array_equal(curve["n_grad"], 3 * np.arange(1, T + 1))


def test_second_moment_bias_matches_closed_form_when_biased():
    # draws from N(0, s2 I) against N(0, I): E_n[x^2] = s2 + e, Var e = 2 s2^2 / N; Var[x^2] = 2 under the target
    C, T, d, s2 = 4, 1000, 10, 1.2
    target = gaussian_target(np.zeros(d), np.eye(d))
    dt = _iid_tree(lambda k, n: np.sqrt(s2) * jax.random.normal(k, (n, d)), C, T, d, seed=SEED + 12)
    b2 = second_moment_bias_curve(dt, target, assume_gaussian=True)["b2_avg"][-1]
    delta, ve = s2 - 1, 2 * s2**2 / (C * T)
    expect = (delta**2 + ve) / 2
    sd = np.sqrt((4 * delta**2 * ve + 2 * ve**2) / 4 / d)
    assert abs(b2 - expect) < 5 * sd, (b2, expect, sd)


# ------------------------------------------------------------------ subsampling and bad input
def test_exact_subsamples_with_warning():
    rng = np.random.default_rng(SEED)
    X, Y = rng.standard_normal((120, 2)), rng.standard_normal((80, 2))
    with pytest.warns(RuntimeWarning, match="max_points=50.*random subsets of 50 x 50"):
        w = exact_wasserstein(X, Y, max_points=50)
    assert w.subsampled and (w.n, w.m) == (50, 50) and w.info["n_given"] == 120
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert not exact_wasserstein(X, Y).subsampled


def test_bad_inputs_give_clear_errors(nuts_run):
    target, dt = nuts_run
    rng = np.random.default_rng(SEED)
    X = rng.standard_normal((10, 2))
    with pytest.raises(ValueError, match="same dimension"):
        exact_wasserstein(X, rng.standard_normal((10, 3)))
    with pytest.raises(ValueError, match="at least 2 points"):
        sliced_w2(X[:1], X)
    with pytest.raises(ValueError, match="NaN/inf"):
        sliced_w2(np.vstack([X, [np.nan, 0.0]]), X)
    with pytest.raises(ValueError, match="power of 2"):
        sliced_w2(X, X, n_projections=100)
    with pytest.raises(ValueError, match="method must be one of"):
        wdistance(X, X, "wasserstein3")
    with pytest.raises(ValueError, match="needs one-dimensional"):
        wasserstein(dt, target, method="1d")
    with pytest.raises(ValueError, match=r"\(chain, draw, dim\)"):
        wasserstein(X, target)
    with pytest.raises(ValueError, match="dimension 3 but target"):
        wasserstein(rng.standard_normal((2, 10, 3)), target)
    blind = Target.from_logdensity(lambda x: -0.5 * x @ x, 2)
    with pytest.raises(ValueError, match="no ground truth"):
        wasserstein(dt, blind)
    with pytest.raises(ValueError, match="needs target.mean and target.cov"):
        wasserstein(dt, blind, method="gaussian_fit")
    with pytest.raises(ValueError, match="reps must be"):
        noise_floor(target, 10, reps=1)
    with pytest.raises(ValueError, match="Var\\[x\\^2\\]"):
        second_moment_bias_curve(dt, blind)
