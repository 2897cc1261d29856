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
# # Escaping a double well: stochastic ECD vs Langevin
#
# Energy Conserving Descent (ECD; De Luca & Silverstein 2022, ECDSep: De Luca, Gatti & Silverstein 2023) runs
# Hamiltonian dynamics $H = \eta\log(F-F_0) + \log(s+|p|^2)$ at fixed energy; stochastic ECD (Sun, Wang, Hayden &
# Blanchet 2026) randomises the direction of $p$ at fixed $|p|$ (in 1D: velocity flips at rate $\lambda$).
# The claim checked here: on a double well with barrier $\beta$, the mean time to reach the other minimum grows
# like $e^{\beta/T}$ for Langevin dynamics but not for sECD.
#
# Matching rule (details in `benchmarks/ecd_escape.py`): Langevin at temperature $T$; sECD with
# $\eta = 2V_0/T$ (same curvature of the law at the minima), energy giving the thermal speed $\sqrt T$ at the
# minimum, flip rate $\lambda=\gamma/2$ (same velocity decorrelation as underdamped Langevin with friction $\gamma$),
# and the same step $h$ for all (one gradient per step).

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
from samplax.models import wells  # noqa: E402
from samplax.samplers import ecd  # noqa: E402

QUICK = os.environ.get("SAMPLAX_QUICK") == "1"
sys.path.insert(0, str(pathlib.Path(samplax.__file__).resolve().parents[1] / "benchmarks"))
import ecd_escape as bench  # noqa: E402

# %% [markdown]
# ## The landscape, the sECD speed law and the two stationary laws
# In 1D sECD is a telegraph process: speed $v(\theta)$ fixed by energy conservation, direction flips at rate
# $\lambda$; its time-averaged law is $\propto 1/v(\theta)$. Langevin's law is $e^{-V/T}$.

# %%
beta = 3.0
land = wells.double_well(beta, V0=bench.V0, omega=bench.OMEGA)
a = land.info["a"]
V = bench._V(land)
E = bench.secd_energy()
v = ecd.secd_speed_1d(V, E, eta=bench.ETA, s=bench.S)
th = np.linspace(-1.9 * a, 1.9 * a, 2001)
speed = np.asarray(v(th))
inside = speed > 0
gibbs = np.exp(-V(th) / bench.T)
gibbs /= np.trapezoid(gibbs, th)
secd_law = np.where(inside, 1 / np.where(inside, speed, 1), 0.0)
secd_law /= np.trapezoid(secd_law, th)

fig, ax = plt.subplots(1, 2, figsize=(10, 3.5))
ax[0].plot(th, V(th), label="V(theta)")
ax[0].plot(th, speed, label="sECD speed |dtheta/dt|")
ax[0].axhline(np.sqrt(bench.T), color="gray", ls=":", label="thermal speed sqrt(T)")
ax[0].legend(fontsize=8)
ax[0].set_xlabel("theta")
ax[1].plot(th, gibbs, label="Langevin exp(-V/T)")
ax[1].plot(th, secd_law, label="sECD  ∝ 1/v")
ax[1].set_yscale("log")
ax[1].set_ylim(1e-5, 2)
ax[1].legend(fontsize=8)
ax[1].set_xlabel("theta")
plt.tight_layout()
plt.show()

# %% [markdown]
# The sECD law puts more mass on the barrier than Gibbs (polynomial, not exponential, decay): its mean
# hitting time is the telegraph formula $B + \lambda(B^2 - s_0^2)$ with $B=\int d\theta/v$, which grows only
# with the travel time, while the Langevin mean first-passage time carries $\int e^{V/T}$ across the barrier.
#
# ## Hitting times against barrier height

# %%
betas = [1.0, 2.0, 3.0] if QUICK else [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
runs = 48 if QUICK else 200
rows = bench.run(betas, runs, seed=0, max_time=5.0e3 if QUICK else 4.0e4, verbose=False)
# quantum columns: quantised GD (p^2/2 + V) and qECD (the ECDSep Hamiltonian), hbar = 2T/omega
rows += bench.run_quantum(betas, t_max=2.0e4 if QUICK else 2.0e6, verbose=False)
fit = bench.fits(rows)
print(bench.table(rows, fit))

# %%
fig, ax = plt.subplots(figsize=(6, 4))
bench.draw_escape(ax, rows)
ax.legend(fontsize=7)
plt.show()

# %% [markdown]
# Read the fitted rates: Langevin's exponential rate is close to $1/T$ (Kramers), sECD's is far smaller and its
# exact curve is better described by a small power of $\beta$.  The sECD advantage rests on its energy ceiling
# $V_c=(e^E/s)^{1/\eta}$ lying above the barrier: ECD needs $F_0$ and the energy set so that it does.
#
# **Quantum columns** (a classical grid simulation of the Schrödinger equation, `samplax.experiments.quantum`).  qGD is
# $H=p^2/2+V$, qECD is $H=\eta\log V+\log(s+p^2)$ with sECD's $\eta, s$ (separable, so no ordering choice);
# $\hbar = 2T/\omega$ makes the ground state of the harmonic approximation at a minimum as wide as the Gibbs law
# there.  Each starts in the ground state of the left well (Dirichlet wall at $\theta=0$); "prop" is the first
# time $P(\theta>0)$ exceeds $1/2$, and "pi/2dE" is $\pi\hbar/(2\Delta E)$ from the two lowest levels
# ($P(\text{right})=\sin^2(\Delta E\,t/2\hbar)$ for a start state in the pair), shown only where the pair is
# validated as a symmetric/antisymmetric doublet localised on the two wells.  The time $t$ is the Hamiltonian
# clock of the classical flows (Newton for qGD, ECDSep for qECD), but the event differs from the classical one
# and $\hbar$ is a convention: the qGD tunnelling exponent is $\approx 16\beta/(3\hbar\omega)$ (WKB), so its
# exponential rate scales as $1/\hbar$.  qECD's kinetic term $\log(s+p^2)$ caps the decay under the barrier
# at $\sqrt{s}/\hbar$ per unit length, so its transfer time grows slowly with $\beta$, like sECD's.

# %% [markdown]
# ## The sECD paper's asymptotic formulas against the exact oracles
# Sun, Wang, Hayden & Blanchet (2026) give, as quoted in issue 20 (their Eqs. 6-7), the escape times
# $\sqrt{s}/(a\omega^3)\,e^{\omega^2a^2/s}$ for SGD (learning rate $s$) and $e^{a^2\omega/h}/(a\omega^{3/2}\sqrt h)$
# for sECD.  The $\sqrt s/a$ prefactor is that of a *cusp* barrier: on $U=\omega^2(|x|-a)^2/2$ at $T=s/2$ the exact
# mean first-passage time (`hitting_theory.mfpt_langevin`) over the SGD formula tends to $\sqrt\pi$ (to the top)
# and $2\sqrt\pi$ (to the other minimum), the gap shrinking like $1/(2\cdot\text{exponent})$.  The sECD formula
# is the SGD one with $\omega\to\sqrt\omega$, $s\to h$, divided by $h$ (an identity), so it has the same limit on a
# well of curvature $\omega$.  samplax's sECD (a telegraph process, exact oracle `telegraph_mean_hitting_time`) has
# no such fixed exponential rate: its time grows slowly under the energy ceiling and is infinite past it.
# Tables: `benchmarks/ecd_asymptotics.py`.

# %%
import ecd_asymptotics as asym  # noqa: E402  (benchmarks/ is on sys.path, see the first cell)

exps = [2, 4, 8, 16, 32] if QUICK else [2, 4, 8, 16, 32, 64, 128]
sgd, ecd_rows = asym.sgd_rows(exps), asym.ecd_rows(exps)
tele, cfg = asym.telegraph_rows([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 7.5, 7.8])
fig, ax = plt.subplots(1, 2, figsize=(10, 3.8))
ax[0].plot(exps, [r["ratio_top"] for r in sgd], "o-", label="SGD: exact MFPT to top / formula")
ax[0].plot(exps, [r["ratio_min"] for r in sgd], "s-", label="SGD: exact MFPT to +a / formula")
ax[0].plot(exps, [r["ratio"] for r in ecd_rows], "^--", label="sECD formula: cusp reading / formula (= the +a curve)")
for c, lab in ((np.sqrt(np.pi), "sqrt(pi)"), (2 * np.sqrt(np.pi), "2 sqrt(pi)")):
    ax[0].axhline(c, color="gray", ls=":")
    ax[0].text(exps[-1], c, lab, va="bottom", ha="right", fontsize=8)
ax[0].set_xscale("log")
ax[0].set_xticks(exps, [str(e) for e in exps])
ax[0].minorticks_off()
ax[0].set_xlabel("exponent (barrier / T)")
ax[0].set_ylabel("ratio")
ax[0].legend(fontsize=7)
b = np.array([r["beta"] for r in tele])
ax[1].semilogy(b, [r["telegraph"] for r in tele], "o-", label="samplax sECD (exact telegraph)")
ax[1].semilogy(b, [r["langevin"] for r in tele], "s-", label=f"overdamped Langevin, T={cfg['T']} (exact MFPT)")
ax[1].axvline(cfg["ceiling"] - bench.V0, color="gray", ls=":", label="energy ceiling")
ax[1].set_xlabel("barrier")
ax[1].set_ylabel("mean hitting time")
ax[1].legend(fontsize=7)
plt.tight_layout()
plt.show()

# %% [markdown]
# ## The same dynamics as a sampler and as an optimiser
# `secd` samples any target (arc-length clock, blackjax MCLMC-style tuning); the ECD optimiser escapes the
# local minimum of a tilted double well.

# %%
target = samplax.models.get("double_well_nd", dim=3, barrier=1.0)
# under SAMPLAX_QUICK the (compile-heavy) warmup is skipped with hand-set step size and L
tuning = {"num_warmup": 0, "step_size": 0.5, "L": 2.0} if QUICK else {"num_warmup": 2000}
dt = samplax.sample(target, "secd", num_chains=2, num_samples=1000 if QUICK else 5000, seed=0, progress=False,
                    **tuning)
x = np.asarray(dt["posterior"]["x"]).reshape(-1, 3)
print("sample mean", x.mean(0).round(3), "exact", np.asarray(target.mean).round(3))
print("sample var ", x.var(0).round(3), "exact", np.diag(np.asarray(target.cov)).round(3))
# the exact answers, within 5 Monte Carlo standard errors (arviz-stats, per chain structure kept)
from arviz_stats import mcse  # noqa: E402

chains, mean, var = np.asarray(dt["posterior"]["x"]), np.asarray(target.mean), np.diag(np.asarray(target.cov))
sq = (chains - mean) ** 2
assert np.all(np.abs(chains.mean((0, 1)) - mean) < 5 * mcse(chains, method="mean", chain_axis=0, draw_axis=1))
assert np.all(np.abs(sq.mean((0, 1)) - var) < 5 * mcse(sq, method="mean", chain_axis=0, draw_axis=1))

# %%
from samplax.optimizers import minimize  # noqa: E402

tilted = wells.tilted_double_well(3.0, 0.3)
res = minimize(tilted.loss, jnp.asarray(tilted.local_minimum) + 0.05, steps=2000, key=jax.random.PRNGKey(0),
               learning_rate=0.05, F0=tilted.global_minimum_value - 1.0, eta=1.0, s=1.0, delta_energy=1.0, lam=0.1)
print("start in the local minimum at", tilted.local_minimum, "; best point found", np.asarray(res.best_x),
      "loss", float(res.best_loss), "(global minimum", tilted.global_minimum, tilted.global_minimum_value, ")")
