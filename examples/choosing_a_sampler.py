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
# # Choosing a sampler: `compare` under one budget, then read the report
#
# Samplers differ in what one gradient evaluation buys. `samplax.compare` runs several of them on
# one target with the same seed, the same chains and the same budget of gradient evaluations
# (warmup included), and ranks them: by Wasserstein-2 distance to the truth when the truth is known,
# else by effective draws per 1000 gradients. `samplax.report` then writes one offline HTML page.

# %%
import os
import pathlib

import jax
import numpy as np

import samplax

jax.config.update("jax_enable_x64", True)
QUICK = os.environ.get("SAMPLAX_QUICK") == "1"
BUDGET = 30_000 if QUICK else 400_000
SAMPLERS = ["nuts", "mala"] if QUICK else ["nuts", "mclmc", "mala"]

# %% [markdown]
# ## 1. A target whose truth is known: an ill-conditioned Gaussian
# Its exact mean, covariance and sampler let the comparison measure the error, not only the mixing.

# %%
target = samplax.models.get("ill_conditioned_gaussian")
result = samplax.compare(target, SAMPLERS, budget=BUDGET, num_chains=4, seed=0, pilot_samples=50)
print(result)

# %% [markdown]
# Every run was sized from its pilot to spend the budget; a sampler whose cost per draw changes after the
# pilot (NUTS' trees grow or shrink as warmup adapts) can miss it by tens of percent, so the table says what
# each run really used:

# %%
for name, row in result.table.iterrows():
    print(f"{name:6s} gradients used {int(row['gradients']):>8d} of {BUDGET}  ({row['num_samples']} draws per chain)")
    assert abs(row["gradients"] - BUDGET) < 0.35 * BUDGET
assert list(result.table["rank"]) == list(range(1, len(SAMPLERS) + 1))
assert result.table["w2"].is_monotonic_increasing  # ranked by W2 to the truth, best first

# %% [markdown]
# ## 2. The report
# One self-contained HTML file: runs and timings (compile / warmup / sampling), the summary table
# with problem cells flagged and advice, W2 and second-moment bias against gradient evaluations,
# trace / rank / energy / divergence / autocorrelation plots.

# %%
out = pathlib.Path("choosing_a_sampler_report.html")
samplax.report(result.runs, target, out)
text = out.read_text()
print(f"wrote {out} ({len(text) // 1024} KiB), panels that failed: {samplax.report.last_errors}")
assert samplax.report.last_errors == [] and ">Against the truth</h2>" in text

# %% [markdown]
# ## 3. A model without exact truth: eight schools
# Then the ranking is by ESS per 1000 gradients; divergences and R-hat are in the table too.
# (Skipped in the test suite's quick run, which only checks that the notebook executes.)

# %%
if not QUICK:
    es = samplax.models.get("eight_schools")
    blind = es.replace(reference_draws=None)  # rank on mixing alone here
    r2 = samplax.compare(blind, "nuts,mclmc", budget=BUDGET // 2, num_chains=4, seed=1)
    print(r2)
    assert r2.table["ess_per_1k_grad"].is_monotonic_decreasing
    assert np.all(r2.table["max_r_hat"] < 1.05)
