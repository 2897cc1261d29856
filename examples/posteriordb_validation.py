# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Validating samplers against posteriordb
#
# posteriordb (BSD-3) publishes posteriors with reference draws from long Stan runs. samplax ships
# eleven of them ported to numpyro, with their data and reference draws (see
# `samplax/models/data/ATTRIBUTION.md`). A port and a sampler are validated together: every
# reference mean and sd must be recovered within a few combined Monte Carlo standard errors (the
# run's, from arviz-stats, and the reference's), and the sliced Wasserstein distance to the
# reference draws must sit near its noise floor.

# %%
import os

import jax
import numpy as np

import samplax
from samplax.diagnostics.reference import reference_z
from samplax.models.posteriordb import PORTS

jax.config.update("jax_enable_x64", True)
QUICK = os.environ.get("SAMPLAX_QUICK") == "1"
N = 400 if QUICK else 1000
print("ports:", ", ".join(sorted(PORTS)), "and eight_schools_noncentered")

# %% [markdown]
# ## One posterior: the latent Gaussian-process Poisson regression
# `gp_pois_regr` samples `rho`, `alpha` and the non-centred `f_tilde`; `f = L f_tilde` is a
# deterministic site, kept in the posterior, and it is what the reference draws cover.
# Its curvature varies about 2.5x across the posterior, so no fixed mass matrix fits everywhere: at the
# default target_accept=0.8 NUTS diverges in 1-3% of transitions and its trust check says to raise
# target_accept. We do that here, as the warning advises.

# %%
target = samplax.models.get("gp_pois_regr")
dt = samplax.sample(target, "nuts", num_chains=4, num_warmup=N, num_samples=N, seed=0, progress=False,
                    target_accept=0.95)
print("trusted:", bool(dt.attrs["trusted"]), "| divergences:", int(dt["sample_stats"]["diverging"].sum()))
z = reference_z(dt, target.reference_draws)
print(z.round(3).to_string())
assert np.all(np.abs(z["z_mean"]) < 5) and np.all(np.abs(z["z_sd"]) < 5)
assert np.all(z["ess_bulk"] >= 100)

# %% [markdown]
# ## Wasserstein distance to the reference draws, against its noise floor
# The floor is the distance between two independent sets of reference draws of the same sizes:
# a run is as good as the reference can tell when its distance sits near the floor.

# %%
w = samplax.diagnostics.wasserstein(dt, target, method="sliced_qmc", per_chain=False)
print(w)
ratio = float(w.pooled) / w.floor.mean
print(f"W2 / floor = {ratio:.2f}")
assert ratio < 2.0

# %% [markdown]
# ## Several ports, NUTS vs MCLMC
# `benchmarks/validate.py` runs all eleven ports with NUTS, MCLMC and MAMS; here a quick pair.

# %%
rows = {}
for name in ("kidscore_momiq", "eight_schools_noncentered"):
    t = samplax.models.get(name)
    for sampler in ("nuts", "mclmc"):
        run = samplax.sample(t, sampler, num_chains=4, num_warmup=N, num_samples=N, seed=1, progress=False)
        zz = reference_z(run, t.reference_draws)
        rows[(name, sampler)] = (float(np.abs(zz["z_mean"]).max()), float(np.abs(zz["z_sd"]).max()))
        print(f"{name:26s} {sampler:6s} max|z| mean {rows[(name, sampler)][0]:.2f}  sd {rows[(name, sampler)][1]:.2f}")
# NUTS must pass everywhere; MCLMC's tuning is what this validation is for: on the badly scaled kidiq
# regression (mom_iq ~ 100) its short-warmup tuning leaves chains far apart (|z| ~ 40 at 400 warmup steps,
# still sd x 1.8 at 2000), which the table shows rather than hides
assert all(zm < 5 and zs < 6 for (name, sampler), (zm, zs) in rows.items() if sampler == "nuts")
for (name, sampler), (zm, zs) in rows.items():
    if max(zm, zs) >= 5:
        print(f"FLAGGED: {sampler} on {name} does not reproduce the reference (max |z| {max(zm, zs):.1f})")
