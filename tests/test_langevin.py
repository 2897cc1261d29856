"""Langevin samplers against exact answers: discretised stationary laws, target moments, weak order, SGLD."""

import blackjax
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg

import samplax
from moments import assert_mean_within_mcse
from samplax import Target
from samplax.samplers import langevin

EULER_GAMMA = 0.5772156649015329


def _diag_gaussian(sd):
    sd = jnp.asarray(sd, float)
    return Target.from_logdensity(lambda x: -0.5 * jnp.sum((x / sd) ** 2), sd.size, name="diag_gaussian",
                                  mean=jnp.zeros(sd.size), cov=jnp.diag(sd**2))


def _gumbel(scale):
    scale = jnp.asarray(scale, float)

    def logdensity(x):
        z = x / scale
        return -jnp.sum(z + jnp.exp(-z))

    return Target.from_logdensity(logdensity, scale.size, name="gumbel", mean=EULER_GAMMA * scale,
                                  cov=jnp.diag(np.pi**2 / 6 * scale**2))


# ---------------------------------------------------------------- ULA: the discretised law, not the target's
@pytest.mark.parametrize("precondition", [False, True])
def test_ula_stationary_variance_is_the_discretised_one(precondition):
    # x' = (1 - h/s2) x + sqrt(2h) xi has variance v = 2h / (1 - (1 - h/s2)^2) = s2 / (1 - h / (2 s2));
    # with C = diag(s2) each coordinate becomes x' = (1 - h) x + sqrt(2h s2) xi, so v = s2 / (1 - h/2).
    sd, h = np.array([0.4, 0.7, 1.0]), (0.5 if precondition else 0.2)
    s2 = sd**2
    imm = s2 if precondition else np.ones(3)
    v_exact = s2 / (1 - h * imm / (2 * s2))
    target = _diag_gaussian(sd)
    n_chains = 8
    start = np.random.default_rng(1).normal(size=(n_chains, 3)) * np.sqrt(v_exact)  # start in the stationary law
    dt = samplax.sample(target, "ula", num_chains=n_chains, num_warmup=0, num_samples=4000, seed=3,
                        step_size=h, inverse_mass_matrix=imm, init_positions=start, progress=False)
    x = np.asarray(dt["posterior"]["x"])
    mean_sq, mcse = assert_mean_within_mcse(x**2, v_exact, "ULA E[x^2]")
    assert np.all(np.abs(mean_sq - s2) > 5 * mcse), "test cannot tell the discretised variance from the target's"


def test_ula_dense_preconditioning_scales_the_whole_covariance():
    # with C = Sigma, y = Sigma^{-1/2} x runs isotropic ULA on N(0, I): stationary cov = Sigma / (1 - h/2)
    cov = np.array([[1.0, 0.9], [0.9, 1.0]])
    prec, h = np.linalg.inv(cov), 0.3
    target = Target.from_logdensity(lambda x: -0.5 * x @ jnp.asarray(prec) @ x, 2, mean=jnp.zeros(2), cov=cov)
    v_exact = cov / (1 - h / 2)
    start = np.random.default_rng(2).multivariate_normal(np.zeros(2), v_exact, size=8)
    dt = samplax.sample(target, "ula", num_chains=8, num_warmup=0, num_samples=3000, seed=4, step_size=h,
                        inverse_mass_matrix=cov, init_positions=start, progress=False)
    x = np.asarray(dt["posterior"]["x"])
    moments = np.stack([x[..., 0] ** 2, x[..., 1] ** 2, x[..., 0] * x[..., 1]], axis=-1)
    assert_mean_within_mcse(moments, [v_exact[0, 0], v_exact[1, 1], v_exact[0, 1]], "dense-preconditioned ULA moments")


# ---------------------------------------------------------------- adjusted samplers hit the target
ILL = dict(sd=np.geomspace(0.1, 1.0, 4))  # variances span a factor 100
GUMBEL = dict(scale=np.array([0.5, 1.0, 2.0]))
# (sampler, settings, target, draws per chain): sized from the measured MCSE so that moments.py's power check
# (truth +- 0.1 sd rejected) holds; identity MALA on the condition-100 Gaussian is left out (bulk ESS ~1e-3 per
# draw: no affordable run has power; its kernel is checked against blackjax's below, its moments on the Gumbel)
ADJUSTED = [
    ("mala", {}, "gumbel", 100000),
    ("mala", {"mass_matrix": "diagonal"}, "ill_conditioned", 6000),
    ("mala", {"mass_matrix": "diagonal"}, "gumbel", 24000),
    ("mala", {"mass_matrix": "dense"}, "ill_conditioned", 6000),
    ("mala", {"mass_matrix": "dense"}, "gumbel", 24000),
    ("underdamped", {"adjusted": True, "mass_matrix": "diagonal", "gamma": 1.0}, "ill_conditioned", 6000),
    ("underdamped", {"adjusted": True, "mass_matrix": "diagonal", "gamma": 1.0}, "gumbel", 24000),
]


@pytest.mark.parametrize("name,settings,target_name,n", ADJUSTED,
                         ids=[f"{a[0]}-{'-'.join(map(str, a[1].values())) or 'identity'}-{a[2]}" for a in ADJUSTED])
def test_adjusted_samplers_match_target(name, settings, target_name, n):
    target = _diag_gaussian(ILL["sd"]) if target_name == "ill_conditioned" else _gumbel(GUMBEL["scale"])
    dt = samplax.sample(target, name, num_chains=4, num_warmup=1000, num_samples=n, seed=11, progress=False,
                        **settings)
    x = np.asarray(dt["posterior"]["x"])
    mean, var = np.asarray(target.mean), np.diag(np.asarray(target.cov))
    assert_mean_within_mcse(x, mean, f"{name} {settings} mean")
    assert_mean_within_mcse((x - mean) ** 2, var, f"{name} {settings} variance")


def test_preconditioned_mala_with_identity_is_blackjax_mala():
    # same keys, same proposal: positions and acceptance probabilities must agree exactly
    target = _gumbel(GUMBEL["scale"])
    ref = blackjax.mala(target.logdensity, 0.3)
    state = ref.init(jnp.array([0.3, -1.0, 2.0]))
    for i in range(5):
        key = jax.random.PRNGKey(i)
        s_ref, i_ref = ref.step(key, state)
        s_own, i_own = langevin.pmala_kernel(key, state, target.logdensity, 0.3, jnp.ones(3))
        np.testing.assert_allclose(s_own.position, s_ref.position, rtol=1e-12)
        np.testing.assert_allclose(i_own.acceptance_rate, i_ref.acceptance_rate, rtol=1e-10)
        state = s_ref


# ---------------------------------------------------------------- splittings: weak order 2
def _affine(splitting, h, gamma):
    """(M, Q) of one step z' = M z + noise(cov Q), z = (x, p), on N(0, 1) with C = 1, by composing A, B, O."""
    def a(t):
        return np.array([[1.0, t], [0.0, 1.0]]), np.zeros((2, 2))

    def b(t):
        return np.array([[1.0, 0.0], [-t, 1.0]]), np.zeros((2, 2))

    def o(t):
        c = np.exp(-gamma * t)
        return np.diag([1.0, c]), np.diag([0.0, 1 - c**2])

    parts = ([b(h / 2), a(h / 2), o(h), a(h / 2), b(h / 2)] if splitting == "baoab"
             else [o(h / 2), b(h / 2), a(h), b(h / 2), o(h / 2)])
    m, q = np.eye(2), np.zeros((2, 2))
    for mi, qi in parts:
        m, q = mi @ m, mi @ q @ mi.T + qi
    return m, q


def _stationary_cov(splitting, h, gamma):
    return scipy.linalg.solve_discrete_lyapunov(*_affine(splitting, h, gamma))


def _simulate_second_moments(splitting, hs, gamma, dim=500, n_chains=4, n_steps=12000):
    """Per-draw mean over `dim` iid N(0,1) coordinates of x^2 and p^2, from the samplax kernel, for each h."""
    target = _diag_gaussian(np.ones(dim))
    sampler = samplax.samplers.get("underdamped", splitting=splitting, gamma=gamma)

    @jax.jit
    def run(h, cov, key):
        alg = sampler.build(target, {"step_size": h, "inverse_mass_matrix": jnp.ones(dim)})

        def chain(key):
            k0, k1, k2 = jax.random.split(key, 3)
            z = jax.random.multivariate_normal(k0, jnp.zeros(2), cov, (dim,))  # exact stationary start
            state = alg.init(z[:, 0], k1)._replace(momentum=z[:, 1])

            def one(s, k):
                s, _ = alg.step(k, s)
                return s, (jnp.mean(s.position**2), jnp.mean(s.momentum**2))

            return jax.lax.scan(one, state, jax.random.split(k2, n_steps))[1]

        return jax.vmap(chain)(jax.random.split(key, n_chains))

    out = []
    for h in hs:
        cov = _stationary_cov(splitting, h, gamma)
        xx, pp = run(h, jnp.asarray(cov), jax.random.PRNGKey(7))
        out.append((np.stack([np.asarray(xx), np.asarray(pp)], axis=-1), cov))
    return out


@pytest.mark.parametrize("splitting,which", [("obabo", 0), ("baoab", 1)])
def test_splitting_weak_order_two(splitting, which):
    # the biased second moment: OBABO's E[x^2]; BAOAB's E[p^2] (its E[x^2] is exact on Gaussians)
    gamma, hs = 1.0, np.array([0.25, 0.5, 1.0])
    biases = []
    for h, (moments, cov) in zip(hs, _simulate_second_moments(splitting, hs, gamma)):
        assert_mean_within_mcse(moments, [cov[0, 0], cov[1, 1]], f"{splitting} h={h} second moments")
        biases.append(np.mean(moments[..., which]) - 1.0)
    slope = np.polyfit(np.log(hs), np.log(np.abs(biases)), 1)[0]
    assert abs(slope - 2) < 0.3, f"{splitting}: fitted weak order {slope:.2f}, expected 2 (biases {biases})"
    small = np.geomspace(1e-3, 1e-1, 5)
    exact = [abs(_stationary_cov(splitting, h, gamma)[which, which] - 1) for h in small]
    assert abs(np.polyfit(np.log(small), np.log(exact), 1)[0] - 2) < 0.05
    if splitting == "baoab":
        assert abs(_stationary_cov("baoab", 0.5, gamma)[0, 0] - 1) < 1e-12


# ---------------------------------------------------------------- SGLD on a conjugate Gaussian-mean model
def test_sgld_posterior_mean_and_variance_inflation():
    rng = np.random.default_rng(0)
    n, batch, s, tau, h = 200, 100, 1.0, 10.0, 0.004
    y = rng.normal(loc=[1.0, -2.0], scale=s, size=(n, 2))
    lam = 1 / tau**2 + n / s**2  # posterior precision per coordinate
    post_mean = (y.sum(0) / s**2) / lam
    # the gradient noise does not depend on theta: N/B sum over a batch drawn without replacement, so
    # Var = N^2 / B * popvar(y) (N - B) / (N - 1) / s^4, and x' = (1 - h lam) x + h noise + sqrt(2h) xi gives
    noise_var = n**2 / batch * y.var(0) * (n - batch) / (n - 1) / s**4
    v_sgld = (2 + h * noise_var) / (lam * (2 - h * lam))
    target = langevin.minibatch_target(
        lambda th: -0.5 * jnp.sum(th**2) / tau**2,
        lambda th, yi: -0.5 * jnp.sum((yi - th) ** 2) / s**2,
        y, batch, 2)
    start = post_mean + rng.normal(size=(4, 2)) * np.sqrt(v_sgld)
    dt = samplax.sample(target, "sgld", num_chains=4, num_warmup=0, num_samples=3000, seed=5, step_size=h,
                        init_positions=start, progress=False)
    x = np.asarray(dt["posterior"]["x"])
    assert_mean_within_mcse(x, post_mean, "SGLD mean")
    _, mcse = assert_mean_within_mcse((x - post_mean) ** 2, v_sgld, "SGLD variance")
    v_ula = 2 / (lam * (2 - h * lam))  # what full-gradient ULA would give: the inflation must be visible
    assert np.all(v_sgld - v_ula > 5 * mcse)
    assert np.allclose(np.asarray(dt["sample_stats"]["data_fraction"]), batch / n)


def test_sgld_warmup_tunes_a_step_without_hand_tuning():
    rng = np.random.default_rng(1)
    y = rng.normal(size=(50, 1))
    target = langevin.minibatch_target(lambda th: -0.5 * jnp.sum(th**2), lambda th, yi: -0.5 * jnp.sum((yi - th) ** 2),
                                       y, 10, 1)
    dt = samplax.sample(target, "sgld", num_chains=2, num_warmup=300, num_samples=200, seed=0, progress=False)
    h = np.asarray(dt["sample_stats"]["step_size"])
    assert np.all(np.isfinite(h)) and np.all(h > 0) and np.all(h * 51 < 2)  # positive and stable (lam = 51)


# ---------------------------------------------------------------- bad input
def test_bad_input_is_named():
    target = _diag_gaussian(np.ones(2))
    with pytest.raises(ValueError, match="mass_matrix"):
        samplax.samplers.get("mala", mass_matrix="full")
    with pytest.raises(ValueError, match="splitting='obabo'"):
        samplax.samplers.get("underdamped", splitting="baoab", adjusted=True)
    with pytest.raises(ValueError, match="splitting"):
        samplax.samplers.get("underdamped", splitting="leapfrog")
    with pytest.raises(ValueError, match="inverse_mass_matrix must have shape"):
        samplax.sample(target, "ula", num_warmup=0, num_samples=2, step_size=0.1, inverse_mass_matrix=np.ones(3),
                       progress=False)
    with pytest.raises(ValueError, match="minibatch_target"):
        samplax.sample(target, "sgld", num_warmup=0, num_samples=2, step_size=0.1, progress=False)
    with pytest.raises(ValueError, match="batch_size"):
        langevin.minibatch_target(lambda t: 0.0, lambda t, y: 0.0, np.zeros((5, 1)), 6, 1)
    with pytest.raises(ValueError, match="num_warmup=0 leaves ula untuned"):
        samplax.sample(target, "ula", num_warmup=0, num_samples=2, progress=False)


def test_unadjusted_step_rule_is_mala_at_ninety_percent():
    # the documented rule: ula samples at the step where MALA accepts ~90% of its proposals
    target = _gumbel(GUMBEL["scale"])
    dt = samplax.sample(target, "ula", num_chains=2, num_warmup=1000, num_samples=10, seed=0, progress=False)
    h = np.asarray(dt["sample_stats"]["step_size"])[:, 0]
    for i, hi in enumerate(h):
        m = samplax.sample(target, "mala", num_chains=4, num_warmup=0, num_samples=1000, seed=i, step_size=float(hi),
                           init_positions=np.asarray(dt["posterior"]["x"])[i, -1], progress=False)
        acc = float(np.mean(m["sample_stats"]["acceptance_rate"]))
        assert 0.85 < acc < 0.95, f"MALA acceptance at ula's warmup step {hi:.3f}: {acc:.3f}, rule says 0.9"


def test_baoab_dense_mass_has_exact_gaussian_positions():
    # BAOAB's position marginal is exact on Gaussians at any stable h (Leimkuhler & Matthews 2013), also with a
    # dense mass matrix (a linear change of variables): an end-to-end check through samplax.sample
    cov = np.array([[2.0, 1.2], [1.2, 1.0]])
    prec = np.linalg.inv(cov)
    target = Target.from_logdensity(lambda x: -0.5 * x @ jnp.asarray(prec) @ x, 2, mean=jnp.zeros(2), cov=cov)
    start = np.random.default_rng(3).multivariate_normal(np.zeros(2), cov, size=4)
    dt = samplax.sample(target, "underdamped", splitting="baoab", gamma=1.0, step_size=0.8, inverse_mass_matrix=cov,
                        num_chains=4, num_warmup=0, num_samples=3000, init_positions=start, seed=2, progress=False)
    x = np.asarray(dt["posterior"]["x"])
    moments = np.stack([x[..., 0], x[..., 1], x[..., 0] ** 2, x[..., 1] ** 2, x[..., 0] * x[..., 1]], axis=-1)
    assert_mean_within_mcse(moments, [0, 0, cov[0, 0], cov[1, 1], cov[0, 1]], "BAOAB dense-mass moments")


def test_mala_builds_from_a_step_size_alone():
    """`get_sampler("mala").build(t, {"step_size": h})` (benchmarks/langevin_dimension.py does this) is C = 1: it
    raised KeyError once MALA at C = 1 became samplax's kernel; the same draws as with C given as ones."""
    import jax

    from samplax.samplers import get as get_sampler

    t = samplax.models.get("gaussian", dim=3)
    a = get_sampler("mala").build(t, {"step_size": 0.3})
    b = get_sampler("mala").build(t, {"step_size": 0.3, "inverse_mass_matrix": jnp.ones(3)})
    key = jax.random.key(0)
    sa, sb = a.init(jnp.ones(3), key), b.init(jnp.ones(3), key)
    for k in jax.random.split(key, 20):
        sa, sb = a.step(k, sa)[0], b.step(k, sb)[0]
    np.testing.assert_array_equal(np.asarray(sa.position), np.asarray(sb.position))
