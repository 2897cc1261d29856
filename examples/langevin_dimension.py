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
# # How many gradients does Langevin need as the dimension grows?
#
# The unadjusted Langevin algorithm (ULA) $x' = x + h\nabla\log\pi(x) + \sqrt{2h}\,\xi$ is biased: its stationary
# law $\pi_h$ is not $\pi$. To get within $\varepsilon$ of $\pi$ in $W_2$ the step must shrink with $d$. Li, Zha
# & Tao ("Sqrt(d) dimension dependence of Langevin Monte Carlo", ICLR 2022) show that from a warm start the number
# of steps grows like $\sqrt d/\varepsilon$: slope $1/2$ in $\log(\text{steps})$ vs $\log d$.
#
# We measure that slope without sampling noise, next to MALA (no bias) and underdamped Langevin (OBABO).
# Everything is in `benchmarks/langevin_dimension.py`; its docstring says how each $W_2$ is computed.

# %%
import os
import pathlib
import sys

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

jax.config.update("jax_enable_x64", True)

import samplax  # noqa: E402

QUICK = os.environ.get("SAMPLAX_QUICK") == "1"
sys.path.insert(0, str(pathlib.Path(samplax.__file__).resolve().parents[1] / "benchmarks"))
import langevin_dimension as bench  # noqa: E402

print(f"eps = {bench.EPS}, warm start at W2 = {bench.W0} (target shifted along coordinate 0)")

# %% [markdown]
# ## ULA on a Gaussian: the law of the iterates in closed form
# For $\pi = N(0, \mathrm{diag}(s))$ ULA is linear, $x' = (1 - h/s)x + \sqrt{2h}\,\xi$, so each coordinate's
# mean shrinks by $(1-h/s)$ per step and its variance tends to $s/(1 - h/(2s))$. The curve $W_2(k)$ first falls
# (the shift is forgotten) and then flattens at the stationary bias, which grows like $\sqrt d\, h$.

# %%
ks = np.arange(0, 400)
fig, ax = plt.subplots(figsize=(6, 3.5))
for d in (10, 100, 1000):
    kinds = bench.kinds("isotropic", d)
    for h, style in ((0.02, "-"), (0.005, "--")):
        ax.plot(ks, bench.ula_gaussian_w2(kinds, h, ks), style, label=f"d={d}, h={h}")
ax.axhline(bench.EPS, color="k", lw=0.8)
ax.set(yscale="log", xlabel="ULA step k", ylabel="exact $W_2$(law of $x_k$, $\\pi$)", title="isotropic Gaussian")
ax.legend(fontsize=7, ncol=2)
plt.show()

# %% [markdown]
# ## Step size per dimension, then steps to $W_2 \le \varepsilon$
# Per $d$ we take the largest $h$ whose stationary bias is at most $\varepsilon/2$ and count steps until
# $W_2 \le \varepsilon$. For the non-Gaussian product target ($V(x) = x^2/2 + \mathrm{softplus}(2x)$ per
# coordinate) ULA's law stays a product of 1D laws, propagated exactly on a grid; $W_2^2$ of two product laws is
# exactly the sum of the 1D $W_2^2$. MALA is sampled with many chains, and its $W_2$ is a lower bound from pooled
# first and second moments (see the benchmark docstring).

# %%
dims = [2, 10, 50] if QUICK else [2, 5, 10, 20, 50, 100, 200, 500, 1000]
if QUICK:
    bench.N_CHAINS = 300
# quick (CI) settings: MALA only on the isotropic target, few chains
mala_targets = ("isotropic",) if QUICK else ("isotropic", "ill_conditioned", "product")
rows = bench.run(QUICK, with_mala=True, dims=dims, mala_targets=mala_targets)
slopes = bench.slopes(rows)
for (target, name), s in slopes.items():
    print(f"{target:16s} {name:18s} slope {s:5.2f}")

# %%
fig, axes = plt.subplots(1, 3, figsize=(11, 3.5), sharey=True)
for ax, target in zip(axes, ("isotropic", "ill_conditioned", "product")):
    for name, marker in (("ula", "o"), ("underdamped_obabo", "s"), ("mala", "^")):
        pts = [(d, k) for t, n, d, h, k in rows if t == target and n == name]
        if pts:
            d_, k_ = np.array(pts).T
            ax.loglog(d_, k_, marker + "-", label=f"{name} (slope {slopes[(target, name)]:.2f})")
    d_ = np.array(dims, float)
    ax.loglog(d_, 10 * np.sqrt(d_ / d_[0]), "k:", label="$\\propto\\sqrt{d}$")
    ax.set(title=target, xlabel="d")
    ax.legend(fontsize=7)
axes[0].set_ylabel(f"gradients to $W_2 \\leq {bench.EPS}$")
plt.show()

# %% [markdown]
# ## The same sampler through `samplax.sample`
# The registered `ula` sampler with its default rule (step where MALA would accept 90% of proposals, found in
# warmup) on the product target: per-coordinate 1D $W_2$ of the draws against the exact marginal, and the exact
# stationary bias of ULA at the step that warmup chose.

# %%
d = 20
target = samplax.Target.from_logdensity(lambda x: -jnp.sum(bench.product_V(x)), d, name="product")
res = samplax.sample(target, "ula", num_chains=4, num_warmup=300 if QUICK else 1000,
                     num_samples=500 if QUICK else 4000, seed=0, progress=False)
x = np.asarray(res["posterior"]["x"]).reshape(-1, d)
h = float(np.median(np.asarray(res["sample_stats"]["step_size"])))
pi = bench.product_pi()
import ot  # noqa: E402

w1d = [np.sqrt(ot.wasserstein_1d(x[:, i], bench.GRID, None, pi, p=2)) for i in range(d)]
bias_1d = np.sqrt(bench.grid_w2sq(bench.stationary_grid(bench.ula_grid_kernel(h)), pi)[0])
iid = bench.inverse_cdf(np.random.default_rng(0).uniform(size=x.shape[0]))
floor = np.sqrt(ot.wasserstein_1d(iid, bench.GRID, None, pi, p=2))
print(f"warmup step h = {h:.3f}; exact stationary ULA bias at that h: {bias_1d:.3f} per coordinate, "
      f"{np.sqrt(d) * bias_1d:.3f} in R^{d}")
print(f"sampled per-coordinate W2 of the draws: median {np.median(w1d):.3f}; the same estimate for "
      f"{x.shape[0]} iid exact draws (noise floor, lower than for correlated draws): {floor:.3f}")
# The draws come from ULA's stationary law at h, which sits bias_1d from pi per coordinate, so (triangle
# inequality) their W2 to pi is bias_1d up to their own sampling noise: the iid floor inflated by sqrt(n / ESS)
# for correlated draws.  Under SAMPLAX_QUICK the noise dominates; full runs resolve the bias.
from arviz_stats import ess  # noqa: E402

n_eff = float(np.min(ess(np.asarray(res["posterior"]["x"]), method="bulk", chain_axis=0, draw_axis=1)))
noise = floor * np.sqrt(x.shape[0] / n_eff)
print(f"|median W2 - exact bias| = {abs(np.median(w1d) - bias_1d):.3f} vs noise of {n_eff:.0f} effective draws {noise:.3f}")
assert abs(np.median(w1d) - bias_1d) < 3 * noise
