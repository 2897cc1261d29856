"""Foundation samplers (NUTS, HMC, MALA, MCLMC, MAMS) against exact ground truth, gated on MCSE."""

import numpy as np
import pytest

import samplax
from moments import K, assert_moments, mcse_mean
from samplax.diagnostics.mixing import ebfmi

# (sampler, settings, draws, relative variance bias the sampler is allowed by construction)
SAMPLERS = [
    ("nuts", {}, 1000, 0.0),
    ("nuts", {"dense_mass": True}, 1000, 0.0),
    ("hmc", {"num_integration_steps": 20}, 1000, 0.0),
    ("mala", {"mass_matrix": "diagonal"}, 4000, 0.0),
    # unadjusted: blackjax tunes the energy error to ~5e-4 per dim, a bias of order 1% in variances
    ("mclmc", {}, 4000, 0.02),
    ("mams", {}, 2000, 0.0),
]
IDS = [f"{n}{'-' + '-'.join(map(str, s.values())) if s else ''}" for n, s, _, _ in SAMPLERS]


@pytest.fixture(scope="module")
def ill_conditioned():
    return samplax.models.get("ill_conditioned_gaussian", dim=6, condition_number=100.0)


@pytest.fixture(scope="module")
def gumbel():
    return samplax.models.get("gumbel", dim=3)


@pytest.mark.parametrize("name, settings, n, bias", SAMPLERS, ids=IDS)
def test_ill_conditioned_gaussian(ill_conditioned, name, settings, n, bias):
    t = ill_conditioned
    dt = samplax.sample(t, name, num_chains=4, num_warmup=1000, num_samples=n // 4, seed=1, progress=False,
                        **settings)
    x = np.asarray(dt.posterior["x"])
    assert_moments(x, np.asarray(t.mean), np.diag(np.asarray(t.cov)), var_rel_bias=bias)
    assert samplax.diagnostics.divergences(dt).sum() == 0


@pytest.mark.parametrize("name, settings, n, bias", SAMPLERS, ids=IDS)
def test_asymmetric_gumbel(gumbel, name, settings, n, bias):
    t = gumbel
    dt = samplax.sample(t, name, num_chains=4, num_warmup=1000, num_samples=n // 4, seed=2, progress=False,
                        **settings)
    x = np.asarray(dt.posterior["x"])
    assert_moments(x, np.asarray(t.mean), np.diag(np.asarray(t.cov)), var_rel_bias=bias)


def test_nuts_reports_tree_depth_energy_and_healthy_ebfmi(ill_conditioned):
    dt = samplax.sample(ill_conditioned, "nuts", num_chains=4, num_warmup=1000, num_samples=250, seed=1,
                        progress=False)
    depth = np.asarray(dt.sample_stats.tree_depth)
    n_grad = np.asarray(dt.sample_stats.n_grad)
    # a multinomial NUTS tree of depth j holds at most 2^j - 1 new leapfrog steps
    assert np.all(n_grad <= 2 ** depth) and np.all(depth >= 1)
    e = ebfmi(dt)
    assert np.all(e > 0.3), e
    assert samplax.diagnostics.check(dt) == []


def test_eight_schools_noncentered_matches_posteriordb_reference():
    t = samplax.models.get("eight_schools_noncentered")
    dt = samplax.sample(t, "nuts", num_chains=4, num_warmup=500, num_samples=500, seed=0, progress=False)
    ref = t.reference_draws
    for name in ("mu", "tau", "theta"):
        draws = np.asarray(dt.posterior[name])
        draws = draws.reshape(draws.shape[:2] + (-1,))
        r = np.asarray(ref[name]).reshape(len(ref[name]), -1)
        se_ref = r.std(axis=0) / np.sqrt(len(r))  # posteriordb reference draws are thinned to near independence
        err = np.abs(draws.mean(axis=(0, 1)) - r.mean(axis=0))
        assert np.all(err < K * np.sqrt(mcse_mean(draws) ** 2 + se_ref**2)), (name, err)
        sd_ratio = draws.std(axis=(0, 1)) / r.std(axis=0)
        assert np.all(np.abs(sd_ratio - 1) < 0.15), (name, sd_ratio)
