"""Tempered SMC's whitened moves must not bias log Z: exact evidence of a 50-d Gaussian within its Monte Carlo error.

The moves run in coordinates whitened by the reweighted particle cloud (smc_kernels). When that whitening was
estimated from the very particles it then moved, the move was not invariant for the tempered target given the
whitening: the noisy dense covariance is small exactly where the cloud happens to be narrow, the whitened target
is wide there, and a few fixed sweeps leave those directions narrow while they refresh the wide ones. The cloud
contracted stage after stage (variance 0.90 of the exact one), every increment came out too large, and log Z was
too *high*, which an unbiased estimate of Z cannot be: with a fixed schedule of 40 temperatures and 5 sweeps per
stage, +3.3 (se 0.24, 8 of 8 populations above the truth) for HMC with the default dense mass; with 2 sweeps
+15.5 (the +13 .. +18 reported in benchmarks/README). The whitening is now cross-fitted (each half of the
lineages is moved in coordinates estimated from the other half), and the same runs give -0.05 (se 0.09).

Each check: mean log Z over C independent populations within GATE standard errors (their spread / sqrt(C)) of the
exact value, and the same check must reject a log Z shifted by the bias found (power).
"""


import numpy as np
import pytest

import samplax
from tests.moments import assert_log_z_unbiased

C = 6
GATE = 4.0
BIAS = 3.3  # log Z bias of dense-mass HMC at these settings before the fix (8 populations, se 0.24)
STAGES = 40


@pytest.fixture(scope="module")
def gaussian50():
    return samplax.models.get("gaussian", dim=50)


@pytest.mark.parametrize("kernel, mass", [("hmc", "dense"), ("hmc", "diag"), ("mala", "dense")])
def test_log_z_exact_on_a_50d_gaussian(gaussian50, kernel, mass):
    t = gaussian50
    schedule = (np.linspace(0.0, 1.0, STAGES + 1) ** 3).tolist()
    dt = samplax.sample(t, "smc", num_particles=1000, num_chains=C, seed=0, progress=False, kernel=kernel, mass=mass,
                        schedule=schedule, waste_free=False, num_mcmc_steps=5, adapt_steps=False,
                        reference=(0.0, 15.0))
    what = f"{kernel}/{mass}"
    # power: the same gate rejects the biased answer the dense-mass moves gave before the fix
    assert_log_z_unbiased(dt, t.log_z, BIAS, GATE, what)
    var = dt["posterior"]["x"].values.var(axis=1).mean()  # exact: 1 in every coordinate; was 0.90 with the bias
    assert abs(var - 1.0) < 0.03, f"{what}: particle variance {var:.3f}, exact 1"


def test_log_z_exact_waste_free_fixed_spacing_dense_hmc(gaussian50):
    """Waste-free with fixed spacing (adapt_steps=False: one sweep between kept states) is cross-fitted too: moved in
    the whole cloud's dense whitening (the adaptive default's choice) its log Z came out +6.7 (se 1.1, 8
    populations) at these settings, P = 5; cross-fitted -0.30 (se 0.43)."""
    t = gaussian50
    schedule = (np.linspace(0.0, 1.0, STAGES + 1) ** 3).tolist()
    dt = samplax.sample(t, "smc", num_particles=1000, num_chains=C, seed=0, progress=False, kernel="hmc", mass="dense",
                        schedule=schedule, waste_free=True, num_mcmc_steps=5, adapt_steps=False,
                        reference=(0.0, 15.0))
    assert_log_z_unbiased(dt, t.log_z, 6.7, GATE, "waste-free hmc/dense, fixed spacing")
