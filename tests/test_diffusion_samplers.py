"""Diffusion samplers from exact Gaussian-mixture scores: W2 to the truth, DEIS order, PF-ODE log-densities,
NFE counts, bad input."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import samplax
from samplax.diagnostics.wasserstein import distance, noise_floor
from samplax.diffusion import ScoreModel, vp

WEIGHTS, MEANS, VARS = [0.3, 0.7], [[-2.0, 0.0], [1.5, 1.0]], [0.3, 0.5]


@pytest.fixture(scope="module")
def model():
    return ScoreModel.gaussian_mixture(WEIGHTS, MEANS, VARS)


def _draws(dt):
    return np.asarray(dt["posterior"]["x"]).reshape(-1, 2)


# every integrator with enough NFE for its bias to sit below the sampling noise of 1000 draws
INTEGRATORS = [
    ("reverse_sde", dict(num_steps=500)),
    ("pc", dict(num_steps=200, num_corrector_steps=1)),
    ("pf_ode", dict(num_steps=50, solver="heun", log_prob=False)),
    ("adaptive_sde", dict(tol=2e-2)),
] + [("deis", dict(num_steps=30, order=r)) for r in range(4)]


@pytest.mark.slow  # eight compiled integrators and exact W2 at 1000 points: ~2 min on 2 shared cores
def test_w2_within_noise_floor_every_integrator(model):
    target = model.as_target()
    n = 1000
    floor = noise_floor(target, n, method="exact", reps=5, seed=7)
    ref = np.asarray(target.sample(jax.random.PRNGKey(123), n))
    for i, (name, kw) in enumerate(INTEGRATORS):
        dt = samplax.sample(model, name, num_particles=n // 2, num_chains=2, seed=11 + i, progress=False, **kw)
        w2 = float(distance(_draws(dt), ref, "exact"))
        assert w2 < 1.5 * floor.mean, f"{name} {kw}: W2 {w2:.3f} vs 1.5 x noise floor {floor.mean:.3f}"
        assert samplax.diagnostics.summary(dt) is not None  # the mixing diagnostics read the output


@pytest.mark.slow  # nine compiles
def test_deis_convergence_order(model):
    """Deterministic error of DEIS against a tight diffrax Tsit5 solve from the same prior draws."""
    n = 32
    ref = samplax.sample(model, "pf_ode", num_particles=n, num_chains=1, seed=3, progress=False, solver="tsit5",
                         rtol=1e-10, atol=1e-10, log_prob=False, max_steps=100_000)
    xr = _draws(ref)
    ks = np.array([40, 80])
    for order in range(4):
        errs, nfe = [], []
        for k in ks:
            dt = samplax.sample(model, "deis", num_particles=n, num_chains=1, seed=3, progress=False,
                                num_steps=int(k), order=order)
            errs.append(np.sqrt(np.mean((_draws(dt) - xr) ** 2)))
            nfe.append(k)  # the order is in the step size h ~ 1/num_steps (RK4 start-up adds a constant NFE)
        slope = -np.polyfit(np.log(nfe), np.log(errs), 1)[0]
        assert abs(slope - (order + 1)) < 0.3, f"order {order}: errors {errs} at NFE {nfe}, slope {slope:.2f}"


def test_deis_order0_is_ddim(model):
    from samplax.diffusion import deis, integrators

    ts = integrators.time_grid(model.process, 7, "uniform")
    ratio, C = deis.coefficients(model.process, ts, 0)
    a, s = np.asarray(model.process.alpha(ts)), np.asarray(model.process.sigma(ts))
    np.testing.assert_allclose(ratio, a[1:] / a[:-1], rtol=1e-12)
    np.testing.assert_allclose(C[:, 0], s[1:] - a[1:] * s[:-1] / a[:-1], rtol=1e-9, atol=1e-12)


def test_pf_ode_log_density_matches_exact():
    # beta_max = 40: alpha(t_max) ~ 5e-5, so p_{t_max} equals the N(0, I) prior to ~1e-4 in log-density and the
    # density the ODE pushes forward is the mixture's own p_{t_min}
    m = ScoreModel.gaussian_mixture(WEIGHTS, MEANS, VARS, process=vp(beta_max=40.0))
    dt = samplax.sample(m, "pf_ode", num_particles=200, num_chains=1, seed=5, progress=False, solver="tsit5",
                        rtol=1e-8, atol=1e-8)
    x = _draws(dt)
    lp = np.asarray(dt["particle_stats"]["log_prob"]).ravel()
    exact = np.asarray(jax.vmap(lambda y: m.log_prob(y, m.process.t_min))(jnp.asarray(x)))
    assert np.max(np.abs(lp - exact)) < 1e-3, np.max(np.abs(lp - exact))


def test_pf_ode_hutchinson_unbiased():
    m = ScoreModel.gaussian_mixture(WEIGHTS, MEANS, VARS, process=vp(beta_max=40.0))
    kw = dict(num_particles=200, num_chains=1, seed=5, progress=False, solver="euler", num_steps=10)
    exact = np.asarray(samplax.sample(m, "pf_ode", **kw)["particle_stats"]["log_prob"]).ravel()
    hutch = np.asarray(samplax.sample(m, "pf_ode", exact_trace_max_dim=1, num_probes=2, **kw)
                       ["particle_stats"]["log_prob"]).ravel()
    diff = hutch - exact
    assert np.std(diff) > 0  # the estimator really ran
    assert abs(diff.mean()) < 5 * diff.std(ddof=1) / np.sqrt(diff.size), (diff.mean(), diff.std())


@pytest.mark.parametrize("name,kw", [
    ("reverse_sde", dict(num_steps=3)), ("pc", dict(num_steps=3)), ("deis", dict(num_steps=3)),
    ("pf_ode", dict(num_steps=3, log_prob=False)), ("adaptive_sde", dict(tol=0.5)),
])
def test_no_log_z_estimate_is_nan_not_zero(model, name, kw):
    # a score carries no normaliser: these samplers estimate no log Z, so they report NaN (before: 0 +- 0)
    import warnings

    assert samplax.particles.get(name).estimates_log_z is False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        dt = samplax.sample(model, name, num_particles=8, num_chains=2, seed=0, progress=False, **kw)
    assert np.isnan(dt.attrs["log_z"]) and np.isnan(dt.attrs["log_z_se"])
    assert np.all(np.isnan(dt.attrs["log_z_per_population"]))


def _counting(model, jvps=None):
    """A score model that counts its evaluations in `calls` (points) and, when `jvps` is a list, the
    Jacobian-vector products of the score (one per point and tangent direction) in `jvps`."""
    calls, d = [], model.dim

    def counted(x, t):
        # under vmap the callback runs once per batch with the batched x: count its points
        jax.debug.callback(lambda xb: calls.append(np.asarray(xb).size // d), x)
        return model.score(x, t)

    if jvps is None:
        return ScoreModel(score=counted, process=model.process, dim=d, name="counted"), calls
    score = jax.custom_jvp(counted)

    @score.defjvp
    def _(primals, tangents):
        x, t = primals
        out, tan = jax.jvp(lambda y: model.score(y, t), (x,), (tangents[0],))
        # the output tangent is batched over points and directions: d values per JVP
        jax.debug.callback(lambda tb: jvps.append(np.asarray(tb).size // d), tan)
        return counted(x, t), tan

    return ScoreModel(score=score, process=model.process, dim=d, name="counted"), calls


@pytest.mark.parametrize("name,kw,per_particle", [
    pytest.param("reverse_sde", dict(num_steps=7), 7, marks=pytest.mark.slow),
    pytest.param("pc", dict(num_steps=5, num_corrector_steps=2), 15, marks=pytest.mark.slow),
    ("deis", dict(num_steps=6, order=3), 6 + 2 * 3),
    ("pf_ode", dict(num_steps=5, solver="tsit5", log_prob=False), 1 + 5 * 6),
    # with the log-density: each field evaluation is a score evaluation + d = 2 JVPs (exact divergence)
    ("pf_ode", dict(num_steps=5, solver="heun"), 10 * (1 + 2)),
    # Hutchinson: + one JVP per probe
    pytest.param("pf_ode", dict(num_steps=5, solver="heun", exact_trace_max_dim=1, num_probes=3), 10 * (1 + 3),
                 marks=pytest.mark.slow),
])
def test_nfe_counts_are_the_score_calls(model, name, kw, per_particle):
    # one unit per score evaluation and per JVP of the score (before: pf_ode's log-density JVPs were not counted)
    jvps = []
    counted, calls = _counting(model, jvps)
    n = 3
    dt = samplax.sample(counted, name, num_particles=n, num_chains=1, seed=0, progress=False, **kw)
    assert dt.attrs["n_grad_sampling"] == sum(calls) + sum(jvps) == n * per_particle
    assert int(dt["stage_stats"]["n_grad"].sum()) == n * per_particle
    assert dt["stage_stats"]["n_grad"].dtype == np.int64


@pytest.mark.slow
def test_nfe_adaptive_counts(model):
    counted, calls = _counting(model)
    n = 3
    dt = samplax.sample(counted, "adaptive_sde", num_particles=n, num_chains=1, seed=0, progress=False, tol=0.05)
    nfe = np.asarray(dt["particle_stats"]["nfe"]).ravel()
    assert dt.attrs["n_grad_sampling"] == nfe.sum() == int(dt["stage_stats"]["n_grad"].sum())
    acc = np.asarray(dt["particle_stats"]["accepted"]).ravel()
    rej = np.asarray(dt["particle_stats"]["rejected"]).ravel()
    np.testing.assert_array_equal(nfe, 2 * (acc + rej))
    assert sum(calls) == n * nfe.max()  # vmapped while_loop: every lane runs until the slowest particle is done

    calls.clear()
    dtf = samplax.sample(counted, "pf_ode", num_particles=n, num_chains=1, seed=0, progress=False, solver="tsit5",
                         rtol=1e-5, atol=1e-5, log_prob=False)
    steps = int(dtf["stage_stats"]["num_steps"].values.ravel()[0])
    assert dtf.attrs["n_grad_sampling"] == sum(calls) == n * (1 + 6 * steps)


@pytest.mark.parametrize("name,kw,match", [
    ("reverse_sde", dict(num_steps=0), "num_steps"),
    ("deis", dict(order=4), "order"),
    ("deis", dict(num_steps=2.5), "num_steps"),
    ("adaptive_sde", dict(tol=0.0), "tol"),
    ("adaptive_sde", dict(num_steps=10), "tol="),
    ("pc", dict(snr=-1.0), "snr"),
    ("pf_ode", dict(solver="rk99"), "solver"),
    ("pf_ode", dict(rtol=1e-5), "atol"),
    ("pf_ode", dict(rtol=1e-5, atol=1e-5, num_steps=50), "num_steps=50 would be ignored"),  # was silently ignored
    ("pf_ode", dict(rtol=1e-5, atol=1e-5, grid="quadratic"), "grid='quadratic' would be ignored"),
    ("pf_ode", dict(num_probes=0), "num_probes"),
    ("adaptive_sde", dict(brownian="bridge"), "brownian"),
])
def test_bad_settings(model, name, kw, match):
    with pytest.raises((ValueError, TypeError), match=match):
        samplax.sample(model, name, num_particles=4, num_chains=1, progress=False, **kw)


def test_target_without_score_is_refused():
    target = samplax.models.get("gaussian") if "gaussian" in samplax.models.list() else None
    if target is None:
        target = samplax.Target.from_logdensity(lambda x: -0.5 * jnp.sum(x ** 2), 2)
    with pytest.raises(TypeError, match="score model"):
        samplax.sample(target, "reverse_sde", num_particles=4, num_chains=1, progress=False, num_steps=2)


def _quiet_sample(model, name, **kw):
    """sample() with the trust check's RuntimeWarning silenced (these runs are meant to fail it)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return samplax.sample(model, name, seed=0, progress=False, **kw)


def test_pf_ode_log_prob_is_nan_where_the_particle_is_nan():
    # a particle that ends NaN has no density (before: it kept the finite log-density integral it carried)
    base = ScoreModel.gaussian_mixture([1.0], [[0.0]], [1.0])
    score = lambda x, t: jnp.where((x[0] > 1.0) & (t < 0.05), jnp.nan, base.score(x, t))  # noqa: E731
    m = ScoreModel(score=score, process=base.process, dim=1, name="nan_part")
    dt = _quiet_sample(m, "pf_ode", num_particles=64, num_chains=1, num_steps=5)
    x = np.asarray(dt["posterior"]["x"]).ravel()
    lp = np.asarray(dt["particle_stats"]["log_prob"]).ravel()
    assert np.isnan(x).any() and np.isfinite(x).any()
    np.testing.assert_array_equal(np.isnan(lp), np.isnan(x))


@pytest.mark.parametrize("make,kw,match", [
    ("vp", dict(t_min=0.5, t_max=0.5), "t_min < t_max"),  # before: the prior returned as a trusted result
    ("vp", dict(t_min=0.9, t_max=0.1), "t_min < t_max"),
    ("vp", dict(t_min=-0.1), "t_min must be >= 0"),
    ("vp", dict(t_max=float("nan")), "t_max must be a finite number"),
    ("vp", dict(t_min=0.0), r"sigma\(t_min=0.0\) = 0.0"),  # VP: no noise at t = 0
    ("vp_cosine", dict(t_max=1.5), r"sigma\(t_max=1.5\)"),  # past the cosine schedule's end: NaN
    ("vp_cosine", dict(t_min="0.1"), "t_min must be a finite number"),
    ("ve", dict(t_min=-1.0), "t_min must be >= 0"),
    ("ve", dict(t_max=float("inf")), "t_max must be a finite number"),
])
def test_process_time_range_is_checked(make, kw, match):
    from samplax.diffusion import process

    with pytest.raises(ValueError, match=match):
        getattr(process, make)(**kw)
    assert process.ve(t_min=0.0).t_min == 0.0  # VE has sigma_min > 0 at t = 0


def test_population_nan_finding_counts_particles():
    # 100 NaN particles (every coordinate) over 2 populations of 50: "100 of 100", the same as attrs["n_nonfinite"]
    # (before: any over the populations, then a sum over the 3 coordinates: "150 particle entries")
    from samplax.particles import base

    def run(model, key, n, progress):
        x = jax.random.normal(key, (n, 3))
        x = jnp.where(jnp.arange(n)[:, None] < 50, jnp.nan, x)
        return base.Population(x, jnp.zeros(()), {"n_grad": base.stage_counts([1]), "ess": jnp.full((1,), float(n))},
                               jnp.ones((), base.count_dtype()))

    sampler = base.PopulationSampler("nan_probe", run, stage_label="stage", estimates_log_z=False)
    t = samplax.Target.from_logdensity(lambda x: -0.5 * jnp.sum(x ** 2), 3)
    dt = _quiet_sample(t, sampler, num_particles=80, num_chains=2)
    assert dt.attrs["n_nonfinite"] == 100
    assert "100 of 160 particle(s) are NaN/inf" in dt.attrs["trust_findings"]


def test_adaptive_sde_out_of_max_steps_names_max_steps(model):
    # unfinished particles are NaN for want of steps, not because the model is NaN somewhere (before: only the
    # generic "check the model for NaN/inf regions" finding)
    dt = _quiet_sample(model, "adaptive_sde", num_particles=6, num_chains=2, tol=1e-2, max_steps=5, brownian="fresh",
                       num_bins=2)
    fin = np.asarray(dt["particle_stats"]["finished"]).astype(bool)
    assert (~fin).sum() == 12 and np.isnan(np.asarray(dt["posterior"]["x"])).all()
    found = dt.attrs["trust_findings"]
    assert "12 of 12 particle(s) did not reach t_min within max_steps = 5" in found
    assert "NaN regions" not in found and dt.attrs["trusted"] == 0


def test_pf_ode_step_budget():
    m = ScoreModel.gaussian_mixture([1.0], [[2.0]], [0.25])
    # fixed steps past max_steps: refused up front naming both (before: a runtime error from inside diffrax)
    with pytest.raises(ValueError, match="num_steps=30 exceeds max_steps=10"):
        samplax.sample(m, "pf_ode", num_particles=4, num_chains=1, num_steps=30, max_steps=10, progress=False)
    # an adaptive solve out of steps: NaN particles and log-densities, and a finding naming max_steps (before: a
    # runtime error from inside diffrax)
    dt = _quiet_sample(m, "pf_ode", num_particles=4, num_chains=2, solver="tsit5", rtol=1e-6, atol=1e-6, max_steps=3)
    assert np.isnan(np.asarray(dt["posterior"]["x"])).all()
    assert np.isnan(np.asarray(dt["particle_stats"]["log_prob"])).all()
    assert not np.asarray(dt["particle_stats"]["finished"]).any()
    assert "8 of 8 particle(s) did not reach t_min within max_steps = 3" in dt.attrs["trust_findings"]


@pytest.mark.parametrize("weights,means,covs,match", [
    ([np.nan, 1.0], [[0.0], [1.0]], [1.0, 1.0], "weights must be positive finite"),
    ([np.inf, 1.0], [[0.0], [1.0]], [1.0, 1.0], "weights must be positive finite"),
    ([-1.0, 2.0], [[0.0], [1.0]], [1.0, 1.0], "weights must be positive finite"),
    ([1.0], [[np.inf]], [1.0], "means must be finite"),
    ([1.0], [[0.0]], [np.nan], "covs must be finite"),
    ([1.0], [[0.0]], [-1.0], "must be >= 0"),
    ([1.0], [[0.0, 0.0]], [[2.0, 5.0], [0.0, 2.0]], "covs must be symmetric"),
    ([1.0], [[0.0, 0.0]], [[1.0, 2.0], [2.0, 1.0]], "positive semi-definite"),
    ([0.5, 0.5], [[0.0, 0.0], [3.0, 0.0]], [[1.0, 4.0], [1.0, 4.0]], r"give shape \(K, d, d\)"),
])
def test_gaussian_mixture_refuses_invalid_parameters(weights, means, covs, match):
    with pytest.raises(ValueError, match=match):
        ScoreModel.gaussian_mixture(weights, means, covs)


@pytest.mark.parametrize("dim", [2.7, True, "2"])
def test_from_function_dim_must_be_an_integer(dim):
    # before: int(dim) ran a 2-d model for dim=2.7 and a 1-d one for dim=True
    with pytest.raises(ValueError, match="dim must be an integer >= 1"):
        ScoreModel.from_function(lambda x, t: -x, dim)
    assert ScoreModel.from_function(lambda x, t: -x, np.int64(2)).dim == 2


def test_sfs_stability_check_counted_once():
    # the check runs once per sample() call: its Hessian-vector products are counted once, in population 0
    # (before: in every population)
    from samplax.diffusion.sfs import CURV_ITERS, CURV_POINTS

    t = samplax.Target.from_logdensity(lambda x: -0.5 * jnp.sum(x ** 2), 2, log_z=float(np.log(2 * np.pi)))
    n, k, mc, c = 8, 2, 2, 3
    dt = _quiet_sample(t, "sfs", num_particles=n, num_chains=c, num_steps=k, num_mc=mc)
    check = CURV_POINTS * CURV_ITERS
    assert dt.attrs["n_grad_sampling"] == c * n * k * mc + check
    np.testing.assert_array_equal(dt.attrs["n_grad_per_population"], [n * k * mc + check] + [n * k * mc] * (c - 1))
    assert int(dt["stage_stats"]["n_grad"].sum()) == dt.attrs["n_grad_sampling"]
