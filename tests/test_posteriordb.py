"""posteriordb ports: reference draws map onto the numpyro sites, and NUTS on each port matches them."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

import samplax
from samplax import models
from samplax.diagnostics.mixing import entry_label, summary
from samplax.models.posteriordb import DATA_DIR, PORTS

ALL = sorted(PORTS) + ["eight_schools_noncentered", "eight_schools_centered"]
# At least half of the ports run in `make test` (each costs ~10 s, mostly compiling NUTS); the rest are slow.
FAST = {"eight_schools_noncentered", "logmesquite", "earn_height", "kidscore_momiq", "blr", "arma11", "gp_pois_regr"}
# Centred eight schools is left out of the NUTS comparison: its funnel makes NUTS biased on tau
# (divergences), which is the sampler's problem, not the port's; its port is checked exactly below.
NUTS_CASES = [pytest.param(n, marks=() if n in FAST else pytest.mark.slow) for n in ALL if n != "eight_schools_centered"]
# gp_pois_regr's curvature varies across its posterior: under any fixed linear metric (its covariance, or the Fisher
# metric of the reference draws) sqrt(largest Hessian eigenvalue) at the 99th percentile is 2.5x the median, so a
# step size tuned to target_accept=0.8 diverges in ~1-3% of it: the default run has 20-60 divergences and min bulk
# ESS ~270-350 of 4000 draws (measured, issue 18). At 0.95 a chain still stalls now and then in the tail (alpha
# large): seeds 1-24, 2000 draws, jax 0.12.0: 1 run in 24 with ~200 divergences in one chain and min bulk ESS 108
# (2 in 24 with 1000 warmup steps), and seed 1 (this module's seed) under jax 0.12.1, ESS 87. The trust check flags
# those runs; its advice ("raise target_accept"), followed here: 0.99 and 2000 draws a chain (seeds 1-24 under
# 0.12.0 and 1-12 under 0.12.1: no divergence at all, min bulk ESS 656-1146; ESS >= 400 is what the comparisons
# need to judge).
RUN_SETTINGS = {"gp_pois_regr": {"target_accept": 0.99, "num_samples": 2000}}


@pytest.fixture(scope="module")
def targets():
    return {}


@pytest.fixture(scope="module")
def nuts_runs():
    return {}


def nuts_run(targets, runs, name):
    """One NUTS run per port (default metric), shared by the tests of this module (4 x 1000 draws unless
    RUN_SETTINGS says otherwise: ESS >= 400 per site)."""
    if name not in runs:
        settings = {"num_samples": 1000, **RUN_SETTINGS.get(name, {})}
        runs[name] = samplax.sample(get(targets, name), "nuts", num_chains=4, num_warmup=500, seed=1, progress=False,
                                    **settings)
    return runs[name]


def get(targets, name):
    if name not in targets:
        targets[name] = models.get(name)
    return targets[name]


def unconstrain(t, params):
    """Flat unconstrained vectors (one per draw) for constrained draws of the model's latent sites."""
    from numpyro.infer.util import unconstrain_fn

    latent = t.info["unravel"](jnp.zeros(t.dim)).keys()
    model, args, kwargs = t.info["model"], t.info["model_args"], t.info["model_kwargs"]

    def one(p):
        return ravel_pytree(unconstrain_fn(model, args, kwargs, {k: p[k] for k in latent}))[0]

    return jax.vmap(one)(params)


def flat_reference(t):
    ref = t.reference_draws
    return np.concatenate([ref[k].reshape(ref[k].shape[0], -1) for k in t.var_shapes if k in ref], axis=1)


@pytest.mark.parametrize("name", ALL)
def test_reference_draws_cover_every_site_with_its_shape(targets, name):
    t = get(targets, name)
    assert set(t.reference_draws) == set(t.var_shapes)
    for site, arr in t.reference_draws.items():
        assert arr.shape == (5000, *t.var_shapes[site]), site
        assert np.all(np.isfinite(arr)), site


def test_stan_one_based_names_become_zero_based_site_indices():
    with np.load(DATA_DIR / "hmm_example-hmm_example.npz") as z:
        names, draws = list(z["names"]), z["draws"].reshape(-1, len(z["names"]))
    ref = models.get("hmm_example").reference_draws
    np.testing.assert_array_equal(ref["theta1"][:, 1], draws[:, names.index("theta1[2]")])
    np.testing.assert_array_equal(ref["mu"][:, 0], draws[:, names.index("mu[1]")])
    # posteriordb reference mean of theta[1] (info.json, eight_schools-eight_schools_noncentered)
    assert np.mean(models.get("eight_schools_noncentered").reference_draws["theta"][:, 0]) == pytest.approx(6.15, abs=0.2)


@pytest.mark.parametrize("name", ALL)
def test_reference_draws_round_trip_through_the_model_transforms(targets, name):
    """Stan's draws lie in our support: unconstrain -> finite log-density -> constrain gives them back."""
    t = get(targets, name)
    idx = np.random.default_rng(0).choice(5000, 200, replace=False)
    params = {k: jnp.asarray(v[idx]) for k, v in t.reference_draws.items()}
    x = unconstrain(t, params)
    assert np.all(np.isfinite(jax.vmap(t.logdensity)(x)))
    back = jax.vmap(t.constrain_flat)(x)
    np.testing.assert_allclose(back, flat_reference(t)[idx], rtol=1e-5, atol=1e-6)


def test_constrained_reference_draws_respect_the_stan_constraints(targets):
    hmm = get(targets, "hmm_example").reference_draws
    np.testing.assert_allclose(hmm["theta1"].sum(1), 1.0, atol=1e-6)
    assert np.all((0 < hmm["mu"][:, 0]) & (hmm["mu"][:, 0] < hmm["mu"][:, 1]))
    mix = get(targets, "low_dim_gauss_mix").reference_draws
    assert np.all(mix["mu"][:, 0] < mix["mu"][:, 1])


def test_centered_and_noncentered_eight_schools_are_the_same_posterior(targets):
    """log p_c(mu, tau, theta) = log p_nc(mu, tau, theta_tilde) - J log tau at theta = mu + tau theta_tilde."""
    c, nc = get(targets, "eight_schools_centered"), get(targets, "eight_schools_noncentered")
    x_nc = jax.random.normal(jax.random.PRNGKey(0), (20, nc.dim)) * 2
    p = jax.vmap(nc.constrain)(x_nc)
    x_c = unconstrain(c, {"mu": p["mu"], "tau": p["tau"], "theta": p["theta"]})
    diff = jax.vmap(c.logdensity)(x_c) - jax.vmap(nc.logdensity)(x_nc)
    np.testing.assert_allclose(diff, -8 * np.log(p["tau"]), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("name", ["earn_height", "logmesquite"])
def test_flat_prior_regression_truth_matches_reference_draws(targets, name):
    t = get(targets, name)
    ref = flat_reference(t)
    z = (ref.mean(0) - np.asarray(t.mean)) / (ref.std(0) / np.sqrt(len(ref)))
    assert np.max(np.abs(z)) < 5, z
    np.testing.assert_allclose(ref.std(0), np.sqrt(np.diag(t.cov)), rtol=0.1)


def _ref_mcse(ref, method):
    """MCSE of the reference draws' mean or sd (arviz-stats; posteriordb's draws as one chain)."""
    from arviz_stats import mcse

    return float(mcse(np.asarray(ref, float)[None, :, None], method=method, chain_axis=0, draw_axis=1)[0])


@pytest.mark.parametrize("name", NUTS_CASES)
def test_nuts_matches_posteriordb_reference(targets, nuts_runs, name):
    """Per site: mean and sd within 5 combined MCSEs, sqrt(mcse_run^2 + mcse_ref^2), of the reference's."""
    t = get(targets, name)
    dt = nuts_run(targets, nuts_runs, name)
    s = summary(dt)
    for site, ref in t.reference_draws.items():
        post = np.asarray(dt["posterior"][site]).reshape(-1, *t.var_shapes[site])
        for idx in np.ndindex(*t.var_shapes[site]):
            label = entry_label(dt.posterior[site], idx)
            r, ours, row = ref[(slice(None), *idx)], post[(slice(None), *idx)], s.loc[label]
            assert row["r_hat"] < 1.05, (label, row)
            assert row["ess_bulk"] >= 400 and row["ess_tail"] >= 100, (label, "too few effective draws", row)
            se = np.hypot(row["mcse_mean"], _ref_mcse(r, "mean"))
            assert abs(ours.mean() - r.mean()) < 5 * se, (label, ours.mean(), r.mean(), se)
            se_sd = np.hypot(row["mcse_sd"], _ref_mcse(r, "sd"))
            assert abs(row["sd"] - r.std(ddof=1)) < 5 * se_sd, (label, row["sd"], r.std(ddof=1), se_sd)
    if t.mean is not None:
        mean = np.array([s.loc[n, "mean"] for n in t.names])
        mcse = np.array([s.loc[n, "mcse_mean"] for n in t.names])
        z = (mean - np.asarray(t.mean)) / mcse
        assert np.max(np.abs(z)) < 5, z


@pytest.mark.parametrize("name", NUTS_CASES)
def test_nuts_sliced_w2_to_reference_within_noise_floor(targets, nuts_runs, name):
    """Pooled sliced W2 (QMC directions) between the NUTS draws and posteriordb's reference draws, within 1.5x
    the noise floor: the W2 between disjoint sets of reference draws of the run's effective size (min bulk ESS,
    since correlated draws carry the noise of ESS iid ones) and of the reference size. The estimator's own noise
    sets a minimum: its relative sd is 8-25% on these posteriors (200 reps), so 1.5x alone would fail up to
    4.5% of exact runs (kidscore_momiq); the bound is max(1.5 x floor mean, floor mean + 4 floor sd)."""
    from samplax.diagnostics.wasserstein import noise_floor, wasserstein

    t = get(targets, name)
    dt = nuts_run(targets, nuts_runs, name)
    w = wasserstein(dt, t, method="sliced_qmc", per_chain=False, reps=5)
    assert (w.pooled.n, w.pooled.m) == (2500, 2500)  # the run thinned to fit the 5000 reference draws
    n_eff = int(min(summary(dt)["ess_bulk"].min(), w.pooled.n))
    assert n_eff >= 400, (name, "too few effective draws to judge", n_eff)
    floor = noise_floor(t, n_eff, method="sliced_qmc", reps=50, m=w.pooled.m, seed=7)
    bound = max(1.5 * floor.mean, floor.mean + 4 * floor.std)
    assert float(w.pooled) <= bound, (name, str(w), n_eff, floor.mean, floor.std)


def test_report_shows_w2_and_floor_for_reference_draws(targets, nuts_runs):
    """eight schools has 5000 reference draws and no sampler: the report gives W2 and its noise floor for
    a default-size run (4 x 1000 draws, compared at 2500 + 2500 so the floor's disjoint sets fit the pool)."""
    from samplax.diagnostics.report import report

    es = get(targets, "eight_schools_noncentered")
    text = report({"nuts": nuts_run(targets, nuts_runs, "eight_schools_noncentered")}, es)
    line = next(ln for ln in text.splitlines() if ln.startswith("nuts: sliced_qmc: pooled"))
    assert "noise floor" in line and "n=2500, m=2500" in line and "not available" not in text, text
