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
# # samplax quickstart: define a model, sample it with several samplers, read the report
#
# samplax takes a numpyro model (or any log-density), runs one or several samplers on it and
# returns ArviZ `DataTree`s plus a diagnostics report: mixing (R-hat, ESS, MCSE, E-BFMI,
# divergences), cost (gradient evaluations) and, when the truth is known, Wasserstein error.

# %%
import os

import jax
import numpy as np
import numpyro
import numpyro.distributions as dist

import samplax
from samplax.diagnostics.report import report

jax.config.update("jax_enable_x64", True)  # moment checks to many digits need float64
QUICK = os.environ.get("SAMPLAX_QUICK") == "1"
N = 200 if QUICK else 1000

# %% [markdown]
# ## 1. A numpyro model
# Eight schools, non-centred. `Target.from_numpyro` builds the unconstrained flat log-density
# (Jacobians of numpyro's transforms included) and knows how to map draws back to named,
# constrained values.

# %%
y = np.array([28.0, 8.0, -3.0, 7.0, -1.0, 1.0, 18.0, 12.0])
sigma = np.array([15.0, 10.0, 16.0, 11.0, 9.0, 11.0, 10.0, 18.0])


def eight_schools(J, sigma, y=None):
    mu = numpyro.sample("mu", dist.Normal(0, 5))
    tau = numpyro.sample("tau", dist.HalfCauchy(5))
    with numpyro.plate("J", J):
        theta_tilde = numpyro.sample("theta_tilde", dist.Normal(0, 1))
        numpyro.deterministic("theta", mu + tau * theta_tilde)
        numpyro.sample("obs", dist.Normal(mu + tau * theta_tilde, sigma), obs=y)


target = samplax.Target.from_numpyro(eight_schools, 8, sigma, y=y)
print(target.dim, target.names[:4])

# %% [markdown]
# ## 2. Sample with NUTS and MCLMC, compare

# %%
runs = {
    name: samplax.sample(target, name, num_chains=4, num_warmup=N, num_samples=N, seed=0, progress=False)
    for name in ("nuts", "mclmc")
}
print(report(runs))

# %% [markdown]
# Each result is an ArviZ DataTree: `posterior` holds constrained named draws with dims
# `(chain, draw, ...)`, `sample_stats` the sampler's statistics (`lp`, `acceptance_rate`,
# `diverging`, `energy`, `n_grad`, `step_size`, `tree_depth` ...).

# %%
dt = runs["nuts"]
print(dt.posterior["theta"].dims, list(dt.sample_stats.data_vars))
print(samplax.diagnostics.summary(dt, var_names=["mu", "tau"]))

# %% [markdown]
# ## 3. A plain log-density with known truth: the error is measured, not guessed
# An ill-conditioned Gaussian from the model library carries its exact mean, covariance and an
# exact sampler, so the report adds the Wasserstein-2 distance to the truth next to the noise
# floor (the same distance between two exact samples of the same size).

# %%
gauss = samplax.models.get("ill_conditioned_gaussian", dim=5, condition_number=100.0)
g_runs = {name: samplax.sample(gauss, name, num_chains=4, num_warmup=N, num_samples=N, seed=1, progress=False)
          for name in ("nuts", "mala")}
print(report(g_runs, gauss))

# %% [markdown]
# ## 4. Your own log-density

# %%
banana = samplax.Target.from_logdensity(
    lambda x: -0.5 * (x[0] ** 2 / 4 + (x[1] - 0.5 * x[0] ** 2) ** 2), dim=2, name="my_banana")
dt = samplax.sample(banana, "nuts", num_chains=4, num_warmup=N, num_samples=N, seed=2, progress=False)
print(samplax.diagnostics.check(dt) or "no warnings")
print(float(dt.posterior["x"].sel(x_dim_0=1).mean()), "(exact: 0.5 * E[x0^2] = 2.0)")
x1 = samplax.diagnostics.summary(dt).loc["x[1]"]
assert abs(x1["mean"] - 2.0) < 5 * x1["mcse_mean"], x1  # the exact answer, within 5 Monte Carlo standard errors
