"""Mean-field underdamped Langevin against closed forms: quadratic V and W give Gaussian laws known exactly, for the
mean-field limit, for N particles (continuous Lyapunov equation) and for the OBABO / BAOAB chains at any step size
(discrete Lyapunov equation of the linear map). Statistical checks are gated on arviz-stats MCSE of the per-step
trace and must reject a variance 10% off."""

import jax.numpy as jnp
import numpy as np
import pytest
from arviz_stats import ess, mcse
from scipy.linalg import solve_continuous_lyapunov, solve_discrete_lyapunov

from samplax.meanfield import gaussian_meanfield_variance, gaussian_particle_variance, sample_meanfield

K = 5.0  # tolerance in MCSE
MIN_ESS = 400


def _stiffness(a, b, n):
    return (a + b) * np.eye(n) - b / n * np.ones((n, n))  # Hessian of H_N per coordinate


def _lyapunov_sde_variance(a, b, s2, n, gamma):
    """Stationary Var(x_1) of the N-particle SDE from its drift/diffusion matrices."""
    A = np.block([[np.zeros((n, n)), np.eye(n)], [-_stiffness(a, b, n), -gamma * np.eye(n)]])
    D = np.zeros((2 * n, 2 * n))
    D[n:, n:] = 2 * gamma * s2 * np.eye(n)
    return solve_continuous_lyapunov(A, -D)[0, 0]


def _lyapunov_chain_variance(a, b, s2, n, gamma, h, integrator):
    """Stationary Var(x_1) of the linear OBABO / BAOAB chain z' = M z + noise, written out independently."""
    Kn, I, Z = _stiffness(a, b, n), np.eye(n), np.zeros((n, n))
    B = np.block([[I, Z], [-h / 2 * Kn, I]])
    Ah = lambda t: np.block([[I, t * I], [Z, I]])  # noqa: E731

    def O(t):
        c = np.exp(-gamma * t)
        return np.block([[I, Z], [Z, c * I]]), np.vstack([Z, np.sqrt(s2 * (1 - c**2)) * I])

    if integrator == "obabo":
        (O1, L1), (O2, L2) = O(h / 2), O(h / 2)
        mid = B @ Ah(h) @ B
        M = O2 @ mid @ O1
        G = [O2 @ mid @ L1, L2]
    else:
        O1, L1 = O(h)
        M = B @ Ah(h / 2) @ O1 @ Ah(h / 2) @ B
        G = [B @ Ah(h / 2) @ L1]
    Q = sum(g @ g.T for g in G)
    return solve_discrete_lyapunov(M, Q)[0, 0]


@pytest.mark.parametrize("integrator", ["obabo", "baoab"])
@pytest.mark.parametrize("n", [1, 2, 5, 16])
def test_exact_variance_formula_matches_lyapunov(integrator, n):
    a, b, s2, gamma = 1.3, 2.0, 0.7, 0.8
    assert np.isclose(gaussian_particle_variance(a, b, s2, n), _lyapunov_sde_variance(a, b, s2, n, gamma), rtol=1e-8)
    for h in (0.05, 0.3, 0.8):
        got = gaussian_particle_variance(a, b, s2, n, h, integrator)
        assert np.isclose(got, _lyapunov_chain_variance(a, b, s2, n, gamma, h, integrator), rtol=1e-6)
    # the N -> infinity limit is the mean-field law N(0, sigma2 / (a + b))
    assert np.isclose(gaussian_particle_variance(a, b, s2, 10**9), gaussian_meanfield_variance(a, b, s2), rtol=1e-6)


def _run(a, b, s2, center, n, h, seed, integrator, steps, pops, gamma=1.0):
    c = jnp.asarray(center)
    dt = sample_meanfield(lambda x: a * jnp.sum((x - c) ** 2) / 2, lambda z: b * jnp.sum(z**2) / 2, c.size,
                          num_particles=n, step_size=h, friction=gamma, sigma2=s2, num_steps=steps,
                          num_populations=pops, seed=seed, integrator=integrator)
    return dt


def _marginal_variance_trace(dt, center, burn):
    """Per step: (1/(N d)) sum_i |x_i - m|^2, whose stationary mean is one particle's coordinate variance."""
    mean = np.asarray(dt["trace"]["mean"])[:, burn:]
    var = np.asarray(dt["trace"]["empirical_variance"])[:, burn:]
    return (var + (mean - np.asarray(center)) ** 2).mean(-1)


def _estimate(y):
    est = float(y.mean())
    se = float(mcse(y, method="mean", chain_axis=0, draw_axis=1))
    e = float(ess(y, method="bulk", chain_axis=0, draw_axis=1))
    assert e >= MIN_ESS, f"bulk ESS {e:.0f} < {MIN_ESS}: MCSE not trusted, run longer"
    return est, se


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("integrator", ["obabo", "baoab", "randomized_midpoint"])
def test_stationary_law_matches_exact_chain(integrator, seed):
    """Mean (shifted V, catches sign errors) and one particle's variance match the exact discrete-time answer."""
    a, b, s2, h, n = 1.0, 2.0, 0.5, 0.35, 64
    center = [1.0, -0.5]
    dt = _run(a, b, s2, center, n, h, seed, integrator, steps=3000, pops=4)
    burn = 300
    truth = gaussian_particle_variance(a, b, s2, n, h, integrator)
    est, se = _estimate(_marginal_variance_trace(dt, center, burn))
    assert abs(est - truth) < K * se, (est, truth, se)
    for wrong in (1.1 * truth, truth / 1.1):  # power: a variance 10% off is rejected
        assert abs(est - wrong) > K * se, f"no power: {est} +- {se} cannot reject {wrong}"
    mean = np.asarray(dt["trace"]["mean"])[:, burn:]
    for j, cj in enumerate(center):
        m, mse = float(mean[..., j].mean()), float(mcse(mean[..., j], method="mean", chain_axis=0, draw_axis=1))
        sd = np.sqrt(truth)
        assert abs(m - cj) < K * mse, (j, m, cj, mse)
        assert abs(m - (cj + 0.1 * sd)) > K * mse and abs(m - (cj - 0.1 * sd)) > K * mse, "no power for the mean"
    # posterior holds the final particles, (population, particle, d)
    assert np.asarray(dt["posterior"]["x"]).shape == (4, n, 2)
    # the energy trace is int V dmu_N + 1/2 iint W dmu_N^2, for these V, W a function of the traced mean and spread
    tr = dt["trace"]
    spread, mean_all = np.asarray(tr["empirical_variance"]), np.asarray(tr["mean"])
    expected = (a / 2 * (spread + (mean_all - np.asarray(center)) ** 2) + b / 2 * spread).sum(-1)
    np.testing.assert_allclose(np.asarray(tr["energy"]), expected, rtol=1e-8, atol=1e-10)
    if integrator == "obabo":  # OBABO ends on an exact O step: momenta are N(0, sigma2), kinetic energy d sigma2 / 2
        ke, kse = _estimate(np.asarray(tr["kinetic_energy"])[:, burn:])
        ke_truth = len(center) * s2 / 2
        assert abs(ke - ke_truth) < K * kse, (ke, ke_truth, kse)
        assert min(abs(ke - 1.1 * ke_truth), abs(ke - ke_truth / 1.1)) > K * kse, "no power for the kinetic energy"


@pytest.mark.parametrize("seed", [0, 1])
def test_particle_count_bias_is_order_one_over_n(seed):
    """One particle's variance exceeds the mean-field value by exactly (v(a) - v(a+b)) / N: the sampler sees it,
    it is distinguishable from zero at small N, and N x bias is the same constant for every N."""
    a, b, s2, h, gamma = 0.5, 3.0, 1.0, 0.3, 1.5
    vlim = gaussian_particle_variance(a, b, s2, 10**12, h)  # N -> infinity of the discrete chain
    coef = gaussian_particle_variance(a, b, s2, 1, h) - gaussian_particle_variance(a + b, 0.0, s2, 1, h)
    ns, biases, ses = [2, 4, 16], [], []
    for n in ns:
        dt = _run(a, b, s2, [0.0], n, h, seed, "obabo", steps=3000, pops=64 // n, gamma=gamma)
        est, se = _estimate(_marginal_variance_trace(dt, [0.0], 300))
        truth = gaussian_particle_variance(a, b, s2, n, h)
        assert np.isclose(truth - vlim, coef / n, rtol=1e-6)
        assert abs(est - truth) < K * se, (n, est, truth, se)
        assert abs(est - vlim) > K * se, f"N={n}: cannot tell the finite-N bias from zero ({est} +- {se} vs {vlim})"
        # the two modes apart: spread about the particle mean (stiffness a + b, sees the interaction's 1/N
        # normalisation) and the particle mean itself (stiffness a)
        v_ab, v_a = (gaussian_particle_variance(k, 0.0, s2, 1, h) for k in (a + b, a))
        spread, sse = _estimate(np.asarray(dt["trace"]["empirical_variance"])[:, 300:].mean(-1))
        assert abs(spread - (1 - 1 / n) * v_ab) < K * sse, (n, spread, (1 - 1 / n) * v_ab, sse)
        assert abs(spread - 1.1 * (1 - 1 / n) * v_ab) > K * sse, "no power for the spread"
        m2, mse = _estimate(np.asarray(dt["trace"]["mean"])[:, 300:, 0] ** 2)
        assert abs(m2 - v_a / n) < K * mse, (n, m2, v_a / n, mse)
        biases.append(est - vlim)
        ses.append(se)
    # N x bias against the exact coefficient, each within K MCSE (scaled by N)
    for n, bias, se in zip(ns, biases, ses, strict=True):
        assert abs(n * bias - coef) < K * n * se, (n, n * bias, coef, n * se)
    slope = np.polyfit(np.log(ns), np.log(biases), 1)[0]
    assert -1.25 < slope < -0.75, slope


def test_bad_settings_raise():
    with pytest.raises(ValueError, match="num_particles"):
        sample_meanfield(lambda x: 0.0, lambda z: 0.0, 1, num_particles=0)
    with pytest.raises(ValueError, match="integrator"):
        sample_meanfield(lambda x: 0.0, lambda z: 0.0, 1, integrator="euler")
    with pytest.raises(ValueError, match="step_size"):
        sample_meanfield(lambda x: 0.0, lambda z: 0.0, 1, step_size=0.0)
    with pytest.raises(ValueError, match="W must map"):
        sample_meanfield(lambda x: jnp.sum(x**2), lambda z: z**2, 2)
    with pytest.raises(ValueError, match="init_position"):
        sample_meanfield(lambda x: jnp.sum(x**2), lambda z: jnp.sum(z**2), 2, init_position=jnp.zeros((4, 3)))


@pytest.mark.parametrize("seed", [0, 1])
def test_skewed_confinement_without_interaction(seed):
    """W = 0, V(x) = e^x - x, sigma2 = 1: independent particles with law of log E, E ~ Exp(1), mean -Euler gamma,
    variance pi^2/6 (skewed, so a sign or drift error shows); h small enough that OBABO's O(h^2) bias is far below
    5 MCSE."""
    n, h, burn = 32, 0.1, 300
    dt = sample_meanfield(lambda x: jnp.sum(jnp.exp(x) - x), lambda z: 0.0 * jnp.sum(z), 1, num_particles=n,
                          step_size=h, friction=1.0, sigma2=1.0, num_steps=4000, num_populations=32, seed=seed)
    mean_truth, var_truth = -np.euler_gamma, np.pi**2 / 6
    m, mse = _estimate(np.asarray(dt["trace"]["mean"])[:, burn:, 0])
    v, vse = _estimate(np.asarray(dt["trace"]["empirical_variance"])[:, burn:, 0] * n / (n - 1))
    assert abs(m - mean_truth) < K * mse, (m, mean_truth, mse)
    assert abs(v - var_truth) < K * vse, (v, var_truth, vse)
    sd = np.sqrt(var_truth)
    assert min(abs(m - mean_truth - 0.1 * sd), abs(m - mean_truth + 0.1 * sd)) > K * mse, "no power for the mean"
    assert min(abs(v - 1.1 * var_truth), abs(v - var_truth / 1.1)) > K * vse, "no power for the variance"


def _gibbs_moments(V, W, n, s2, lo=-25.0, hi=5.0, m=321):
    """E[x_1], E[x_1^2] under exp(-H_N / sigma2), H_N = sum V(x_i) + 1/(2N) sum_{i,j} W(x_i - x_j), d = 1, by a grid."""
    g = np.linspace(lo, hi, m if n == 2 else 161)  # trapezoid: converged to ~1e-8 (checked against [-30, 6])
    X = np.meshgrid(*([g] * n), indexing="ij")
    H = sum(V(x) for x in X) + sum(W(X[i] - X[j]) for i in range(n) for j in range(n)) / (2 * n)
    w = np.exp(-(H - H.min()) / s2)
    w /= w.sum()
    return float((w * X[0]).sum()), float((w * X[0] ** 2).sum())


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("n", [2, 3])
def test_nonlinear_interaction_matches_finite_n_gibbs(n, seed):
    """Skewed V and a non-quadratic repulsive W: the N-particle chain's stationary law is exp(-H_N / sigma2), whose
    first two moments for N = 2, 3 come from quadrature; h small enough that OBABO's O(h^2) bias is below 5 MCSE."""
    c = 3.0
    Vn, Wn = (lambda x: np.exp(x) - x), (lambda z: c * np.exp(-z**2 / 2))
    m1, m2 = _gibbs_moments(Vn, Wn, n, 1.0)
    pops, h, burn = 96 // n, 0.1, 300
    dt = sample_meanfield(lambda x: jnp.sum(jnp.exp(x) - x), lambda z: c * jnp.exp(-jnp.sum(z**2) / 2), 1,
                          num_particles=n, step_size=h, friction=1.0, sigma2=1.0, num_steps=3000,
                          num_populations=pops, seed=seed)
    mean = np.asarray(dt["trace"]["mean"])[:, burn:, 0]
    sq = np.asarray(dt["trace"]["empirical_variance"])[:, burn:, 0] + mean**2
    e1, se1 = _estimate(mean)
    e2, se2 = _estimate(sq)
    assert abs(e1 - m1) < K * se1, (e1, m1, se1)
    assert abs(e2 - m2) < K * se2, (e2, m2, se2)
    var = m2 - m1**2
    assert min(abs(e1 - m1 - 0.1 * np.sqrt(var)), abs(e1 - m1 + 0.1 * np.sqrt(var))) > K * se1, "no power (mean)"
    # without the interaction the answer differs (W = 0: mean -Euler gamma)
    assert abs(e1 + np.euler_gamma) > K * se1, "cannot see the interaction"


def test_pairwise_form_of_a_convolution_interaction_is_the_same_run():
    V, b = (lambda x: jnp.sum(x**2) / 2), 1.7
    kw = dict(num_particles=8, step_size=0.2, num_steps=50, num_populations=2, seed=3)
    d1 = sample_meanfield(V, lambda z: b * jnp.sum(z**2) / 2, 2, **kw)
    d2 = sample_meanfield(V, lambda x, y: b * jnp.sum((x - y) ** 2) / 2, 2, pairwise=True, **kw)
    np.testing.assert_allclose(np.asarray(d1["posterior"]["x"]), np.asarray(d2["posterior"]["x"]), rtol=1e-10)
    np.testing.assert_allclose(np.asarray(d1["trace"]["energy"]), np.asarray(d2["trace"]["energy"]), rtol=1e-10)


@pytest.mark.parametrize("seed", [0, 1])
def test_pairwise_bilinear_interaction(seed):
    """W(x, y) = c x y (not a convolution): 1/2 iint W = c m^2 / 2 stiffens only the mean mode, to a + c, and leaves
    the N - 1 spread modes at a: spread (1 - 1/N) v(a), squared particle mean v(a + c) / N, exactly (OBABO, any h)."""
    a, c, h, n, burn = 1.0, 3.0, 0.25, 4, 300
    dt = sample_meanfield(lambda x: a * jnp.sum(x**2) / 2, lambda x, y: c * jnp.sum(x * y), 1, pairwise=True,
                          num_particles=n, step_size=h, num_steps=3000, num_populations=32, seed=seed)
    v_a, v_ac = (gaussian_particle_variance(k, 0.0, 1.0, 1, h) for k in (a, a + c))
    spread, sse = _estimate(np.asarray(dt["trace"]["empirical_variance"])[:, burn:, 0])
    m2, mse = _estimate(np.asarray(dt["trace"]["mean"])[:, burn:, 0] ** 2)
    assert abs(spread - (1 - 1 / n) * v_a) < K * sse, (spread, (1 - 1 / n) * v_a, sse)
    assert abs(m2 - v_ac / n) < K * mse, (m2, v_ac / n, mse)
    assert min(abs(spread - 1.1 * (1 - 1 / n) * v_a), abs(spread - (1 - 1 / n) * v_a / 1.1)) > K * sse, "no power"
    assert min(abs(m2 - 1.1 * v_ac / n), abs(m2 - v_ac / n / 1.1)) > K * mse, "no power (mean mode)"


# ---------------------------------------------------------- the registered sampler: samplax.sample(..., "meanfield")
import jax  # noqa: E402

import samplax  # noqa: E402
from samplax.meanfield import _rm_noise_cov, rm_mode_variance  # noqa: E402

MU, SD = np.array([1.0, -2.0]), np.array([0.5, 2.0])


def _gauss_target(mu=MU, sd=SD):
    m, s = jnp.asarray(mu), jnp.asarray(sd)
    return samplax.Target.from_logdensity(lambda x: -0.5 * jnp.sum(((x - m) / s) ** 2), len(mu), mean=np.asarray(mu),
                                          cov=np.diag(np.asarray(sd) ** 2))


def _iid_checks(x, mean, var):
    """x (M, d) independent draws: every mean and variance within K SE of the truth, and a variance 10% off (either
    way) rejected. SE of a variance from the fourth central moment, (m4 - s^4) / M."""
    m_hat, v_hat = x.mean(0), x.var(0, ddof=1)
    se_m = np.sqrt(v_hat / len(x))
    se_v = np.sqrt((((x - m_hat) ** 4).mean(0) - v_hat**2) / len(x))
    assert np.all(np.abs(m_hat - mean) < K * se_m), (m_hat, mean, se_m)
    assert np.all(np.abs(v_hat - var) < K * se_v), (v_hat, var, se_v)
    for wrong in (1.1 * var, var / 1.1):
        assert np.all(np.abs(v_hat - wrong) > K * se_v), f"no power: {v_hat} +- {se_v} cannot reject {wrong}"


@pytest.mark.parametrize("integrator", ["baoab", "obabo", "randomized_midpoint"])
def test_sample_gaussian_moments_without_interaction(integrator):
    """W = None: 4 x 8192 independent particles; each ends as a draw of the chain's stationary law, whose position
    variance is known exactly for each integrator (BAOAB: the target's; OBABO, randomized midpoint: their own bias)."""
    h = 0.25
    dt = samplax.sample(_gauss_target(), "meanfield", num_particles=8192, num_chains=4, seed=0, step_size=h,
                        num_steps=200, integrator=integrator, progress=False)
    x = np.asarray(dt["posterior"]["x"]).reshape(-1, 2)
    var = np.array([gaussian_particle_variance(1 / s**2, 0.0, 1.0, 1, h, integrator) for s in SD])
    _iid_checks(x, MU, var)
    if integrator == "baoab":
        assert np.allclose(var, SD**2)
    # population layout, per-step stage stats, counts of what ran (init_scale None: Target.init's checks apart)
    assert np.asarray(dt["posterior"]["x"]).shape == (4, 8192, 2)
    per = 2 if integrator == "randomized_midpoint" else 1
    assert dt.attrs["n_grad_sampling"] == 4 * 8192 * (per * 200 + 1)
    st = dt["stage_stats"]
    assert st.sizes["stage"] == 200 and np.allclose(st["time"][0], h * np.arange(1, 201))
    assert int(st["n_grad_interaction"].sum()) == 0 and np.all(np.asarray(st["ess"]) == 8192)
    assert dt.attrs["trusted"] == 1 and np.isnan(dt.attrs["log_z"])
    # energy trace = mean over particles of -logdensity (+ 0 interaction): about d/2 at stationarity (not gated)
    assert abs(float(st["energy"][:, -100:].mean()) - 1.0) < 0.1


def test_sample_counts_every_gradient_it_makes():
    """A log-density whose derivative rule counts its calls: n_grad and the per-stage counts equal what ran."""
    calls = []

    @jax.custom_jvp
    def logd(x):
        return -0.5 * jnp.sum(x**2)

    @logd.defjvp
    def _jvp(primals, tangents):
        (x,), (t,) = primals, tangents
        jax.debug.callback(lambda _: calls.append(1), x[0])
        return logd(x), -jnp.sum(x * t)

    target = samplax.Target.from_logdensity(logd, 2)
    for integrator, per in (("obabo", 1), ("randomized_midpoint", 2)):
        calls.clear()
        dt = samplax.sample(target, "meanfield", num_particles=8, num_chains=3, num_steps=5, init_scale=1.0,
                            integrator=integrator, W=lambda z: 0.3 * jnp.sum(z**2), interaction_batch=4,
                            progress=False, seed=1)
        assert len(calls) == dt.attrs["n_grad_sampling"] == 3 * 8 * (per * 5 + 1), (integrator, len(calls))
        assert int(dt["stage_stats"]["n_grad"].sum()) == len(calls)
        assert int(dt["stage_stats"]["n_grad_interaction"].sum()) == 3 * 8 * 4 * (per * 5 + 1)


@pytest.mark.filterwarnings("ignore:meanfield on")  # the populations' means differ: particles share their mean mode
@pytest.mark.filterwarnings("ignore:Found chain dimension")  # 256 populations of 16 particles
def test_sample_quadratic_interaction_closed_form():
    """V = a|x|^2/2 (the target N(0, 1/a)), W = b|z|^2/2, BAOAB: one particle's coordinate variance is exactly
    v(a)/N + v(a+b)(1 - 1/N) (the mean mode and the N-1 spread modes). Particles of a population are correlated
    through their mean, so the standard error comes from the spread of the 256 independent populations' estimates."""
    a, b, n, d = 1.0, 2.0, 16, 8
    target = _gauss_target(np.zeros(d), np.full(d, 1 / np.sqrt(a)))
    dt = samplax.sample(target, "meanfield", num_particles=n, num_chains=256, seed=0, W=lambda z: b * jnp.sum(z**2) / 2,
                        step_size=0.3, num_steps=300, integrator="baoab", init_scale=1.0, progress=False)
    x = np.asarray(dt["posterior"]["x"])  # (populations, particles, d)
    per_pop = (x**2).mean(axis=(1, 2))
    est, se = per_pop.mean(), per_pop.std(ddof=1) / np.sqrt(len(per_pop))
    truth = gaussian_particle_variance(a, b, 1.0, n, 0.3, "baoab")
    assert abs(est - truth) < K * se, (est, truth, se)
    for wrong in (1.1 * truth, truth / 1.1):
        assert abs(est - wrong) > K * se, f"no power: {est} +- {se} vs {wrong}"
    # and it is not the target's variance 1/a: the interaction is felt
    assert abs(est - 1 / a) > K * se
    spread = x.var(axis=1).mean(axis=1)  # about each population's mean: (1 - 1/N) v(a+b)
    s_est, s_se = spread.mean(), spread.std(ddof=1) / np.sqrt(len(spread))
    assert abs(s_est - (1 - 1 / n) / (a + b)) < K * s_se, (s_est, (1 - 1 / n) / (a + b), s_se)
    assert int(dt["stage_stats"]["n_grad_interaction"].sum()) == 256 * n * n * 301


@pytest.mark.filterwarnings("ignore:meanfield on")
def test_sample_reuses_its_compiled_program():
    """A second call with the same target program and settings (a new lambda for W, another seed) compiles nothing."""
    kw = dict(num_particles=16, num_chains=2, num_steps=20, progress=False, init_scale=1.0)
    d1 = samplax.sample(_gauss_target(), "meanfield", W=lambda z: 0.5 * jnp.sum(z**2), seed=0, **kw)
    d2 = samplax.sample(_gauss_target(), "meanfield", W=lambda z: 0.5 * jnp.sum(z**2), seed=1, **kw)
    d3 = samplax.sample(_gauss_target(), "meanfield", W=lambda z: 0.5 * jnp.sum(z**2), seed=0, **kw)
    assert d2.attrs["compile_time"] < 0.05 < d1.attrs["compile_time"] + 0.05
    np.testing.assert_array_equal(np.asarray(d1["posterior"]["x"]), np.asarray(d3["posterior"]["x"]))
    d4 = samplax.sample(_gauss_target(), "meanfield", W=lambda z: 0.7 * jnp.sum(z**2), seed=0, **kw)  # another W
    assert not np.allclose(np.asarray(d1["posterior"]["x"]), np.asarray(d4["posterior"]["x"]))


@pytest.mark.parametrize("kw, match", [
    (dict(W=3.0), "W must be a callable"),
    (dict(W=lambda z: z**2), "W must map"),
    (dict(integrator="euler"), "integrator must be one of"),
    (dict(step_size=0.0), "step_size must be a positive"),
    (dict(friction=-1.0), "friction must be a positive"),
    (dict(sigma2=float("nan")), "sigma2 must be a positive"),
    (dict(num_steps=0), "num_steps must be an integer >= 1"),
    (dict(W=lambda z: jnp.sum(z**2), interaction_batch=3), "interaction_batch must be an integer >= 2 that divides"),
    (dict(interaction_batch=2), "W is None"),
    (dict(pairwise=True), "pairwise=True"),
])
def test_sample_bad_settings_name_the_argument(kw, match):
    with pytest.raises(ValueError, match=match):
        samplax.sample(_gauss_target(), "meanfield", num_particles=8, num_chains=1, progress=False, **kw)


@pytest.mark.parametrize("k, h, gamma", [(3.0, 0.4, 1.0), (1.0, 0.2, 2.5), (0.5, 0.8, 0.3)])
def test_randomized_midpoint_variance_formula(k, h, gamma):
    """rm_mode_variance against an independent construction: covariances by adaptive quadrature, the alpha-average
    by adaptive quadrature of the 4x4 second-moment map; and the bias is O(h^3) (a halving divides it by ~8)."""
    from scipy.integrate import quad

    s2 = 0.7
    phi = lambda u: (1 - np.exp(-gamma * u)) / gamma  # noqa: E731

    def parts(al):
        tau = al * h
        g = [lambda s: phi(tau - s) * (s < tau), lambda s: phi(h - s), lambda s: np.exp(-gamma * (h - s))]
        C = np.array([[2 * gamma * s2 * quad(lambda s: g[i](s) * g[j](s), 0, h, points=[tau], epsabs=1e-14)[0]
                       for j in range(3)] for i in range(3)])
        # x_mid = x0 + phi(tau) p0 - k x0 int_0^tau phi(tau - s) ds + W1
        xm = np.array([1 - k * quad(lambda s: phi(tau - s), 0, tau)[0], phi(tau)])
        cx, cp = -k * h * phi(h - tau), -k * h * np.exp(-gamma * (h - tau))
        M = np.array([[1, phi(h)], [0, np.exp(-gamma * h)]]) + np.outer([cx, cp], xm)
        G = np.array([[cx, 1, 0], [cp, 0, 1]])
        return np.kron(M, M), G @ C @ G.T, C

    np.testing.assert_allclose(np.asarray(_rm_noise_cov(jnp.asarray(0.3), h, gamma, s2)), parts(0.3)[2], rtol=1e-9,
                               atol=1e-14)
    al = np.linspace(0, 1, 401)  # Simpson over alpha, independent of the library's Gauss-Legendre
    from scipy.integrate import simpson

    vals = [parts(x) for x in al]
    EMM = simpson(np.array([v[0] for v in vals]), x=al, axis=0)
    EQ = simpson(np.array([v[1] for v in vals]), x=al, axis=0)
    S = np.linalg.solve(np.eye(4) - EMM, EQ.reshape(-1)).reshape(2, 2)
    assert np.isclose(rm_mode_variance(k, s2, h, gamma), S[0, 0], rtol=1e-7)
    b1, b2 = (rm_mode_variance(k, s2, hh, gamma) - s2 / k for hh in (h / 4, h / 8))
    assert 6 < b1 / b2 < 10, b1 / b2


def test_random_batch_force_is_unbiased():
    """interaction_batch=B: the force equals the exact one for B = N, and averages to it over random batches."""
    from samplax.meanfield import _force_fn

    V, W = (lambda x: jnp.sum(x**2) / 2), (lambda z: jnp.exp(-jnp.sum(z**2)))
    x = jax.random.normal(jax.random.key(0), (8, 2))
    exact, v = _force_fn(V, W)(None, x)
    full, _ = _force_fn(V, W, batch=8)(jax.random.key(1), x)
    np.testing.assert_allclose(np.asarray(full), np.asarray(exact), rtol=1e-10, atol=1e-12)
    f = jax.vmap(lambda k: _force_fn(V, W, batch=2)(k, x)[0])(jax.random.split(jax.random.key(2), 4000))
    f = np.asarray(f)
    se = f.std(0) / np.sqrt(len(f))
    assert np.all(np.abs(f.mean(0) - np.asarray(exact)) < K * se + 1e-12)
    assert np.any(np.abs(f.mean(0) - 0.9 * np.asarray(exact)) > K * se)  # power: a 10% error in the force shows


def test_compare_runs_meanfield_within_its_budget():
    """`compare` sizes the population by its measured gradients per particle and ranks it by W2 to the truth."""
    target = samplax.models.get("gaussian")  # with exact draws, for W2
    cmp = samplax.compare(target, ["meanfield"], budget=200_000, num_chains=2, settings={
        "meanfield": dict(step_size=0.25, num_steps=200, integrator="baoab")}, progress=False)
    row = cmp.table.loc["meanfield"]
    assert row["gradients"] <= 200_000 and row["num_particles"] == 200_000 // (2 * 201)
    assert bool(row["trusted"]) and np.isfinite(row["w2"])


def test_sample_asymmetric_gumbel_target():
    """An asymmetric target (samplax.models "gumbel", three scales): 4 x 8192 independent particles, BAOAB with a
    small step; every mean and variance within K SE of the exact ones (a sign error in the force shifts the means),
    a variance 10% off rejected."""
    target = samplax.models.get("gumbel")
    dt = samplax.sample(target, "meanfield", num_particles=8192, num_chains=4, seed=0, step_size=0.1, num_steps=1000,
                        integrator="baoab", progress=False)
    x = np.asarray(dt["posterior"]["x"]).reshape(-1, target.dim)
    _iid_checks(x, np.asarray(target.mean), np.diag(np.asarray(target.cov)))


def test_sample_multimodal_tilted_double_well():
    """A multimodal target (samplax.models "tilted_double_well", barrier 2 at T = 1, unequal wells): particles start
    in [-2, 2] (the target's init), so the right mean (-2.38, far from both the start's 0 and either well's +-4)
    needs barrier crossings; mean, variance and the left well's mass within K SE, with power."""
    target = samplax.models.get("tilted_double_well")
    dt = samplax.sample(target, "meanfield", num_particles=8192, num_chains=4, seed=0, step_size=0.1, num_steps=3000,
                        integrator="baoab", progress=False)
    x = np.asarray(dt["posterior"]["x"]).reshape(-1, 1)
    _iid_checks(x, np.asarray(target.mean), np.diag(np.asarray(target.cov)))
    # the left well's mass against quadrature of exp(logdensity)
    g = np.linspace(-15, 15, 30001)
    w = np.exp(np.asarray(jax.vmap(target.logdensity)(jnp.asarray(g)[:, None])))
    p_left = float(w[g < 0].sum() / w.sum())
    left = (x[:, 0] < 0).mean()
    se = np.sqrt(p_left * (1 - p_left) / len(x))
    assert abs(left - p_left) < K * se, (left, p_left, se)
    assert abs(left - (p_left - 0.05)) > K * se and abs(left - 0.5) > K * se  # power: 5 points off, or no tilt


def test_a_run_the_integrator_blew_up_is_not_trusted():
    """OBABO at step 0.1 is unstable on a Gaussian of sd < 0.05: the draws grew to ~1e206 and stayed finite, and
    the run was trusted (populations exploding alike agree). Equipartition flags it; a stable run passes."""
    import warnings

    from samplax.diagnostics.population import check

    for sd, blown in ((0.2, False), (0.0495, True)):
        t = samplax.Target.from_logdensity(lambda x, sd=sd: -0.5 * jnp.sum((x / sd) ** 2), 2, name=f"g{sd}")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            dt = samplax.sample(t, "meanfield", num_chains=2, num_particles=200, seed=0, progress=False)
        kt = np.asarray(dt.stage_stats["kinetic_temperature"])[:, 500:]
        flagged = any("blew up" in f for f in check(dt))
        assert flagged == blown and bool(dt.attrs["trusted"]) != blown, (sd, np.mean(kt, axis=1))
