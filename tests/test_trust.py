"""The trust check at the end of every sample(): chains and populations, findings in attrs, one warning."""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest
from arviz_base import dict_to_dataset, from_dict

import samplax
from samplax.diagnostics.population import POP_RHAT_MAX, check as population_check, population_rhat


def nan_model():
    # log x is NaN for x < 0: the model has a NaN region the samplers walk into
    x = numpyro.sample("x", dist.Normal(1.0, 1.0))
    numpyro.factor("f", jnp.log(x))


def _run(target, sampler, **kw):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dt = samplax.sample(target, sampler, progress=False, **kw)
    trust = [w for w in caught if issubclass(w.category, RuntimeWarning) and "trust check" in str(w.message)]
    return dt, trust


def test_nuts_names_nan_divergences_and_warns_once():
    dt, trust = _run(samplax.Target.from_numpyro(nan_model), "nuts", num_chains=2, num_warmup=300, num_samples=300)
    assert len(trust) == 1
    msg = str(trust[0].message)
    div = int(dt.sample_stats["diverging"].sum())
    nan_div = int(dt.sample_stats["diverging_nonfinite"].sum())
    assert div > 0 and nan_div > 0.5 * div  # most divergences here are the NaN region, and the run says so
    assert "NaN/inf log-density" in msg
    assert dt.attrs["trusted"] == 0 and "NaN/inf" in dt.attrs["trust_findings"]


def nan_model_2d():
    nan_model()
    numpyro.sample("y", dist.Normal(0.0, 1.0))  # blackjax's MCLMC needs dim >= 2


def test_mclmc_reports_reverted_steps_once():
    dt, trust = _run(samplax.Target.from_numpyro(nan_model_2d), "mclmc", num_chains=2, num_warmup=300, num_samples=300)
    assert dt.attrs["n_reverted"] > 0
    assert dt.attrs["n_nonfinite"] == 0  # the draws themselves are finite: they were reverted
    findings = samplax.diagnostics.check(dt)
    assert sum("reverted" in f and not f.startswith("note:") for f in findings) == 1
    assert not any("divergent" in f for f in findings)
    assert not any("non-finite log-density or position" in f for f in findings)
    assert len(trust) == 1


def walled_model():
    # a NaN region the samplers meet often: the log-density is NaN where |x| > 1.5 (x ~ N(0, 1) otherwise); the
    # warmups below revert 100-390 steps on it (seeds 0-2), where nan_model_2d gave secd and mams one each
    x = numpyro.sample("x", dist.Normal(0.0, 1.0))
    numpyro.sample("y", dist.Normal(0.0, 1.0))
    numpyro.factor("wall", jnp.where(jnp.abs(x) < 1.5, 0.0, jnp.nan))


@pytest.mark.parametrize("sampler", ["mclmc", "secd", "mams"])
def test_microcanonical_warmup_counts_its_reverted_steps(sampler):
    """The Fisher tuner reverts a step that meets NaN/inf (blackjax's handle_nans) and counts it: before, its
    reverted steps were in no count (attrs had no n_reverted_warmup for an adaptive warmup)."""
    dt, _ = _run(samplax.Target.from_numpyro(walled_model), sampler, num_chains=2, num_warmup=300, num_samples=50)
    n = dt.attrs["n_reverted_warmup"]
    assert n >= 20
    findings = samplax.diagnostics.check(dt)
    assert sum(f.startswith(f"note: {n} warmup step(s) met a NaN/inf log-density") for f in findings) == 1
    clean = samplax.sample(samplax.models.get("gaussian", dim=2), sampler, num_chains=1, num_warmup=100,
                           num_samples=10, progress=False)
    assert clean.attrs["n_reverted_warmup"] == 0


NAN_REGION_SAMPLERS = {
    "mala": {}, "ula": {}, "underdamped": {}, "underdamped-adjusted": {"adjusted": True}, "mams": {}, "gpss": {},
    "two_level": {"surrogate": lambda z: -0.5 * jnp.sum(z ** 2)},
}


@pytest.mark.parametrize("name", list(NAN_REGION_SAMPLERS))
def test_every_sampler_names_the_nan_region_it_met(name):
    """The walled model is NaN where |x| > 1.5. MALA and GPSS rejected those proposals without a word (the run was
    trusted, the draws those of a truncated normal), and ULA / underdamped / MAMS / two_level called each one
    curvature, with the advice to raise target_accept. Now every one is a divergence that met a NaN/inf."""
    from samplax.diagnostics.mixing import divergences, nonfinite_divergences

    sampler = name.split("-")[0]
    dt, trust = _run(samplax.Target.from_numpyro(walled_model), sampler, num_chains=2, num_warmup=200,
                     num_samples=200, seed=0, **NAN_REGION_SAMPLERS[name])
    nf, div = nonfinite_divergences(dt), divergences(dt)
    assert nf.sum() >= 5 and nf.sum() >= 0.9 * div.sum(), (nf, div)
    assert len(trust) == 1 and "met a NaN/inf log-density or gradient" in str(trust[0].message)


def bounded_logdensity(x):
    # a half-normal in x[0] written with -inf outside its support: zero density, not a NaN region
    return jnp.where(x[0] > 0, -0.5 * jnp.sum(x ** 2), -jnp.inf)


@pytest.mark.parametrize("sampler", ["mala", "gpss"])
def test_a_clean_minus_inf_is_a_rejection_not_a_nan_region(sampler):
    """-inf is zero density, which MH and slice sampling handle exactly: no divergence is reported for it, and the
    half-normal's mean comes out right (sqrt(2 / pi), within 5 MCSE)."""
    from samplax.diagnostics.mixing import divergences

    t = samplax.Target.from_logdensity(bounded_logdensity, 2, name="half-normal")
    dt, trust = _run(t, sampler, num_chains=2, num_warmup=300, num_samples=1000, seed=0,
                     init_positions=np.array([[0.5, 0.0], [1.0, 0.3]]))
    assert divergences(dt).sum() == 0 and not any("NaN/inf" in str(w.message) for w in trust), divergences(dt)
    row = samplax.diagnostics.summary(dt).loc["x[0]"]
    assert row["ess_bulk"] >= 400 and abs(row["mean"] - np.sqrt(2 / np.pi)) < 5 * row["mcse_mean"], row


def test_clean_run_is_trusted_and_silent():
    target = samplax.models.get("gaussian", dim=2)
    dt, trust = _run(target, "nuts", num_chains=4, num_warmup=500, num_samples=1000)
    assert trust == []
    assert dt.attrs["trusted"] == 1


def overflow_model():
    x = numpyro.sample("x", dist.Normal(0.0, 1.0))
    numpyro.deterministic("y", jnp.exp(1000.0 * x))  # +inf wherever x > 0.71: about a quarter of the draws


def test_a_run_whose_draws_overflow_warns():
    """The log-density is finite everywhere, so nothing counts the overflow but the draws: R-hat and ESS of `y`
    rank its draws and stay finite, and the run used to end trusted with an infinite mean of y."""
    dt, trust = _run(samplax.Target.from_numpyro(overflow_model), "mala", num_chains=2, num_warmup=200,
                     num_samples=400, seed=0)
    n_inf = int(np.isinf(np.asarray(dt.posterior["y"])).sum())
    assert n_inf > 50
    assert np.isfinite(samplax.diagnostics.summary(dt).loc["y", "r_hat"])
    assert len(trust) == 1 and f"{n_inf} value(s) in 1 variable(s)" in str(trust[0].message)
    assert dt.attrs["trusted"] == 0


def _pop_tree(x, *, log_z=None, log_z_se=None, ess=None, acc=None):
    c, n = x.shape[:2]
    stages = {"ess": np.full((c, 3), float(n)) if ess is None else ess,
              "acceptance_rate": np.full((c, 3), 0.5) if acc is None else acc}
    dt = from_dict({"posterior": {"x": x}})
    dt["stage_stats"] = dict_to_dataset(stages, sample_dims=["chain", "stage"])
    dt.attrs.update({"population": 1, "sampler": "fake"})
    if log_z is not None:
        dt.attrs.update({"log_z_per_population": np.asarray(log_z), "log_z_se_per_population": np.asarray(log_z_se)})
    return dt


def test_population_rhat_ignores_particle_order_and_catches_a_shift():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, 1000))
    assert population_rhat(x) == pytest.approx(population_rhat(np.sort(x, axis=1)))
    assert population_check(_pop_tree(x)) == []
    shifted = x.copy()
    shifted[2] += 0.6  # one population 0.6 posterior sd off
    assert any("disagree on means" in f for f in population_check(_pop_tree(shifted)))


def test_population_check_is_quiet_on_healthy_populations_and_flags_a_wrong_spread():
    # healthy populations never fire across seeds; one population with twice the spread does
    rng = np.random.default_rng(1)
    false_alarms = sum(bool(population_check(_pop_tree(rng.normal(size=(4, 2000))))) for _ in range(20))
    assert false_alarms == 0
    wide = rng.normal(size=(4, 4000))
    wide[0] *= 2.0
    assert any("spreads" in f for f in population_check(_pop_tree(wide)))


def test_population_check_flags_log_z_ess_and_acceptance():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(4, 500))
    ok = _pop_tree(x, log_z=[1.0, 1.01, 0.99, 1.0], log_z_se=[0.02] * 4)
    assert population_check(ok) == []
    bad_z = _pop_tree(x, log_z=[1.0, 1.3, 0.99, 1.0], log_z_se=[0.02] * 4)
    assert any("log Z" in f for f in population_check(bad_z))
    ess = np.full((4, 3), 500.0)
    ess[1, -1] = 2.0
    assert any("final ESS" in f for f in population_check(_pop_tree(x, ess=ess)))
    acc = np.full((4, 3), 0.5)
    acc[3, 1] = 0.0
    assert any("accepted under" in f for f in population_check(_pop_tree(x, acc=acc)))


def test_report_does_not_compute_chain_diagnostics_over_particles():
    from samplax.diagnostics.report import run_table

    rng = np.random.default_rng(3)
    dt = _pop_tree(np.sort(rng.normal(size=(4, 300)), axis=1))  # sorted particles: a chain R-hat would be nonsense
    row = run_table({"p": dt}).loc["p"]
    assert np.isnan(float(row["max_r_hat"])) and np.isnan(float(row["min_ess_bulk"]))


def test_energy_error_check_of_unadjusted_microcanonical_runs():
    # Var[energy change] / d at the tuned target passes; 30x the target (a step too large somewhere) is flagged
    from samplax.diagnostics.mixing import _energy_error_findings

    rng = np.random.default_rng(4)
    x = rng.normal(size=(4, 1000, 5))
    target = 5e-4

    def tree(var_per_dim):
        dt = from_dict({"posterior": {"x": x},
                        "sample_stats": {"energy_change": rng.normal(0, np.sqrt(var_per_dim * 5), (4, 1000))}})
        dt.attrs["desired_energy_var"] = target
        return dt

    assert _energy_error_findings(tree(target)) == []
    assert _energy_error_findings(tree(3 * target)) == []
    found = _energy_error_findings(tree(30 * target))
    assert len(found) == 1 and "desired_energy_var" in found[0]
