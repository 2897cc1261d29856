"""The cases of issue 17 on real posteriors: each run is right (within 5 combined MCSE of the reference) or it
warned at the end of sample(). A wrong answer given silently fails these tests."""

import warnings

import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest

import samplax
from samplax.diagnostics.population import is_population
from samplax.diagnostics.reference import population_reference_z, reference_z

Z_MAX = 5.0


def run(target, sampler, **kw):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dt = samplax.sample(target, sampler, progress=False, **kw)
    warned = any(issubclass(w.category, RuntimeWarning) and "trust check" in str(w.message) for w in caught)
    return dt, warned


def max_z(dt, reference_draws) -> float:
    """Worst |z| of means and sds against reference draws; populations use their between-population SE."""
    if not is_population(dt):
        z = reference_z(dt, reference_draws)
        return float(np.nanmax(np.abs(np.r_[z["z_mean"].to_numpy(float), z["z_sd"].to_numpy(float)])))
    zm, zs, _ = population_reference_z(dt, reference_draws)
    return max(zm, zs)


def assert_right_or_warned(dt, warned, reference_draws, what):
    z = max_z(dt, reference_draws)
    assert warned or z < Z_MAX, f"{what}: wrong (max |z| = {z:.1f}) and silent"


def ar5_model(y, p=5):
    alpha = numpyro.sample("alpha", dist.Normal(0.0, 1.0))
    beta = numpyro.sample("beta", dist.Normal(0.0, 0.5).expand([p]).to_event(1))
    sigma = numpyro.sample("sigma", dist.HalfCauchy(1.0))
    lags = jnp.stack([y[p - k - 1:len(y) - k - 1] for k in range(p)], axis=1)
    numpyro.sample("obs", dist.Normal(alpha + lags @ beta, sigma), obs=y[p:])


def ar5_data(n=205, seed=0):
    rng = np.random.default_rng(seed)
    b = np.array([0.5, -0.2, 0.15, 0.05, -0.1])
    y = np.zeros(n)
    for t in range(5, n):
        y[t] = 0.1 + y[t - 5:t][::-1] @ b + 0.15 * rng.normal()
    return jnp.asarray(y)


def test_smc_on_an_ar5_regression_is_right_or_warns():
    # issue 17: 4 populations of 2000 put sigma's mean at 0.22-0.67 against 0.151 and said nothing
    target = samplax.Target.from_numpyro(ar5_model, ar5_data())
    ref = samplax.sample(target, "nuts", num_chains=4, num_warmup=500, num_samples=1250, seed=1, progress=False)
    ref_draws = {k: np.asarray(ref.posterior[k]).reshape(-1, *ref.posterior[k].shape[2:]) for k in ref.posterior}
    dt, warned = run(target, "smc", num_particles=1000, num_chains=4, seed=0)
    assert_right_or_warned(dt, warned, ref_draws, "smc on AR(5)")


@pytest.mark.parametrize("name", ["blr", "kidscore_momiq"])
def test_smc_on_posteriordb_ports_is_right_or_warns(name):
    # blr: worst mean 0.93 sd off, silently; kidscore_momiq: refused (improper prior) before reference="auto"
    target = samplax.models.get(name)
    dt, warned = run(target, "smc", num_particles=1000, num_chains=4, seed=0)
    assert_right_or_warned(dt, warned, target.reference_draws, f"smc on {name}")


def test_mclmc_on_centred_eight_schools_is_right_or_warns():
    # issue 17: P(tau < 0.5) 3.2% against 9.8% in the reference, with only an R-hat note
    target = samplax.models.get("eight_schools_centered")
    dt, warned = run(target, "mclmc", num_chains=4, num_warmup=1000, num_samples=4000, seed=0)
    tau, ref = np.asarray(dt.posterior["tau"]), target.reference_draws["tau"]
    p, p_ref = float((tau < 0.5).mean()), float((ref < 0.5).mean())
    n_eff = float(samplax.diagnostics.summary(dt, var_names=["tau"])["ess_tail"].iloc[0])
    se = np.hypot(np.sqrt(p * (1 - p) / max(n_eff, 1.0)), np.sqrt(p_ref * (1 - p_ref) / ref.size))
    assert warned or abs(p - p_ref) < Z_MAX * se, (p, p_ref, se)


@pytest.mark.parametrize("sampler", ["mclmc", "mams"])
def test_microcanonical_on_a_badly_scaled_regression_is_right_or_warns(sampler):
    # issue 17: means off by up to 3,550 MCSE on earn_height (a flat-prior regression scaled 1e-4..1e4), silently
    target = samplax.models.get("earn_height")
    dt, warned = run(target, sampler, num_chains=4, num_warmup=1000, num_samples=1000, seed=0)
    assert_right_or_warned(dt, warned, target.reference_draws, f"{sampler} on earn_height")


def test_smc_with_a_narrow_reference_on_a_banana_warns_once():
    # issue 17: log Z 2.270 +- 0.011 against 2.531 and x1 sd 1.29 against 3, with only an R-hat note
    target = samplax.models.get("banana", a=2.0, b=0.5, s=1.0)  # exact: x[0] sd 2, x[1] sd 3
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dt = samplax.sample(target, "smc", num_particles=1000, num_chains=4, seed=0, reference=(0.0, 1.0),
                            progress=False)
    runtime = [w for w in caught if issubclass(w.category, RuntimeWarning)]
    assert len(runtime) == 1 and "trust check" in str(runtime[0].message)
    assert "narrower than the posterior" in str(runtime[0].message) and dt.attrs["trusted"] == 0
