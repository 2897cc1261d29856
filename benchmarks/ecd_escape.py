"""Escape from a double well: mean hitting time vs barrier height for sECD, overdamped and underdamped Langevin.

Landscape: V(theta) = omega^2 (theta^2 - a^2)^2 / (8 a^2) + V0, barrier beta = a^2 omega^2 / 8 (samplax.models.wells).
Each run starts at the left minimum -a and stops when it first reaches the other minimum (theta >= +a).

Noise levels and the matching rule (all fixed, independent of beta):
- Langevin (overdamped `ula`, underdamped `underdamped` with friction gamma): temperature T, target exp(-V/T);
  the classical fixed-noise Kramers setting.
- sECD (1D physical-clock ECDSep, samplax.samplers.ecd.ecd_step on F = V, F0 = 0):
  * eta = 2 V0 / T, so its law (V - F0)^(-eta/2) (s -> 0) has the curvature of exp(-V/T) at the minima:
    both methods concentrate equally in the wells;
  * energy E chosen so the speed at the minimum equals the thermal speed sqrt(T) of underdamped Langevin
    (same kinetic budget at the start); s = 0.05 puts the energy ceiling at V_c = (e^E / s)^(1/eta)
    (= 8.9 here), above every barrier tested (beta <= 6): ECD's F0 / energy choice must put it there;
  * direction flips at rate lam = gamma / 2, so velocity correlations decay as exp(-gamma t) for both.
All methods use the same step h (one gradient per step), so hitting times in time units and in gradient
evaluations are proportional.  Oracles: exact overdamped MFPT integral, exact telegraph mean hitting time
(samplax.diagnostics.hitting_theory).  Runs that never hit within the budget are censored (Kaplan-Meier).

    .venv/bin/python benchmarks/ecd_escape.py [--quick] [--runs N] [--plot PATH]
"""

from __future__ import annotations

import argparse
import os
import pathlib
import time

import jax
import jax.numpy as jnp
import numpy as np

jax.config.update("jax_enable_x64", True)

import samplax  # noqa: E402
from samplax.diagnostics.hitting import first_hit_times, halfspace, summarize  # noqa: E402
from samplax.diagnostics.hitting_theory import mfpt_langevin, telegraph_mean_hitting_time  # noqa: E402
from samplax.models import wells  # noqa: E402
from samplax.samplers import ecd  # noqa: E402

T, V0, OMEGA, GAMMA, H = 1.0, 1.0, 1.0, 1.0, 0.02
ETA, S, LAM = 2.0 * V0 / T, 0.05, GAMMA / 2.0
METHODS = ("secd", "overdamped", "underdamped")


def _V(land):
    a, om, v0 = land.info["a"], land.info["omega"], land.info["V0"]
    return lambda th: om**2 * (th**2 - a**2) ** 2 / (8 * a**2) + v0


def secd_energy():
    """E with speed sqrt(T) at the minimum (V = V0)."""
    return float(ecd.energy_for_speed(ETA * np.log(V0), np.sqrt(T), S))


def setup(method: str, beta: float, num_runs: int, key):
    """(step_fn, init_states, oracle mean time or nan) for one method and barrier."""
    land = wells.double_well(beta, omega=OMEGA, V0=V0)
    a = land.info["a"]
    x0 = jnp.array([-a])
    keys = jax.random.split(key, num_runs)
    if method == "secd":
        E = secd_energy()
        wg = ecd.loss_potential(land.loss, ETA, 0.0)
        st = ecd.ecd_init(x0, wg, key, energy=E, s=S)
        signs = jnp.where(jax.random.bernoulli(key, 0.5, (num_runs,)), 1.0, -1.0)
        init = jax.vmap(lambda sg: st._replace(momentum=sg * jnp.abs(st.momentum)))(signs)
        step = lambda k, s: ecd.ecd_step(k, s, wg, step_size=H, lam=LAM, s=S)  # noqa: E731
        oracle = telegraph_mean_hitting_time(ecd.secd_speed_1d(_V(land), E, eta=ETA, s=S), LAM, -a, a)
        return step, init, oracle
    target = land.target(T)
    if method == "overdamped":
        sampler = samplax.samplers.get("ula", step_size=H)
        oracle = mfpt_langevin(_V(land), -a, a, T)
    elif method == "underdamped":
        sampler = samplax.samplers.get("underdamped", gamma=GAMMA, step_size=H)
        oracle = float("nan")  # no closed form; Kramers-Haenggi only asymptotically
    else:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    alg = sampler.build(target, sampler.initial_params(target))
    init = jax.vmap(lambda k: alg.init(x0, k))(keys)  # underdamped: momentum ~ N(0, T) (thermal start)
    return alg.step, init, oracle


def run(betas, num_runs: int, seed: int = 0, max_time: float = 2.0e4, verbose: bool = True):
    """Rows of dicts: method, beta, mean (time units), se, kind, fraction hit, median, oracle, seconds."""
    rows = []
    for method in METHODS:
        for i, beta in enumerate(betas):
            key = jax.random.fold_in(jax.random.PRNGKey(seed), 1000 * METHODS.index(method) + i)
            step, init, oracle = setup(method, beta, num_runs, key)
            guess = oracle if np.isfinite(oracle) else mfpt_langevin(_V(wells.double_well(beta, omega=OMEGA, V0=V0)),
                                                                     -np.sqrt(8 * beta) / OMEGA,
                                                                     np.sqrt(8 * beta) / OMEGA, T)
            budget = int(min(max_time, 15 * guess) / H)
            t0 = time.perf_counter()
            res = first_hit_times(step, init, halfspace(0, float(np.sqrt(8 * beta) / OMEGA)), budget,
                                  jax.random.fold_in(key, 7), dt=H, chunk=2000)
            sm = summarize(res, "time")
            row = {"method": method, "beta": beta, "mean": sm.mean, "se": sm.mean_se, "kind": sm.mean_kind,
                   "hit": sm.fraction_hit, "median": sm.median, "oracle": oracle,
                   "grads": float(np.mean(res.grads)), "seconds": time.perf_counter() - t0}
            rows.append(row)
            if verbose:
                print(f"  {method:11s} beta={beta:4.1f}: mean {sm.mean:9.2f} +- {sm.mean_se:7.2f} "
                      f"(oracle {oracle:9.2f}), {sm.fraction_hit:.0%} hit, {row['seconds']:.1f}s", flush=True)
    return rows


def fits(rows):
    """Per method: exponential (log m = c + r beta) and polynomial (log m = c + k log beta) fits with R^2."""
    out = {}
    series = []
    for method in METHODS:
        r = [x for x in rows if x["method"] == method]
        series.append((method, r, "mean"))
        if all(np.isfinite(x["oracle"]) for x in r):
            series.append((f"{method} (exact)", r, "oracle"))  # noise-free check of the same fit
    for method, r, field in series:
        b = np.array([x["beta"] for x in r])
        y = np.log(np.array([x[field] for x in r]))
        res = {}
        for kind, xs in (("exp", b), ("poly", np.log(b))):
            coef = np.polyfit(xs, y, 1)
            ss = np.sum((y - np.polyval(coef, xs)) ** 2)
            r2 = 1 - ss / max(np.sum((y - y.mean()) ** 2), 1e-300)
            res[kind] = (float(coef[0]), float(r2), float(ss))
        res["better"] = "exponential" if res["exp"][2] < res["poly"][2] else "polynomial"
        out[method] = res
    return out


def table(rows, fit):
    lines = [f"{'method':11s} {'beta':>5s} {'mean time':>11s} {'+-se':>8s} {'oracle':>10s} {'hit':>5s} "
             f"{'median':>9s} {'grads':>10s}"]
    for x in rows:
        star = "*" if x["kind"] != "mean" else " "
        lines.append(f"{x['method']:11s} {x['beta']:5.1f} {x['mean']:10.2f}{star} {x['se']:8.2f} "
                     f"{x['oracle']:10.2f} {x['hit']:5.0%} {x['median']:9.2f} {x['grads']:10.0f}")
    lines.append("(* = restricted mean: some runs censored at the budget, a lower bound)")
    lines.append("")
    lines.append(f"{'method':19s} {'exp rate r':>11s} {'R2':>7s} {'poly exp k':>11s} {'R2':>7s}  better fit")
    for m, f in fit.items():
        lines.append(f"{m:19s} {f['exp'][0]:11.3f} {f['exp'][1]:7.3f} {f['poly'][0]:11.3f} {f['poly'][1]:7.3f}  "
                     f"{f['better']}")
    lines.append("exp: log(mean time) = c + r beta;  poly: log(mean time) = c + k log(beta)")
    return "\n".join(lines)


def plot(rows, path):
    import matplotlib

    matplotlib.use(os.environ.get("MPLBACKEND", "Agg"))
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for method, c in zip(METHODS, ("C0", "C1", "C2")):
        r = [x for x in rows if x["method"] == method]
        b = np.array([x["beta"] for x in r])
        ax.errorbar(b, [x["mean"] for x in r], yerr=[2 * x["se"] for x in r], fmt="o-", color=c, label=method)
        orc = np.array([x["oracle"] for x in r])
        if np.all(np.isfinite(orc)):
            ax.plot(b, orc, "--", color=c, alpha=0.6, label=f"{method} exact")
    ax.set_yscale("log")
    ax.set_xlabel("barrier height beta")
    ax.set_ylabel("mean hitting time (time units)")
    ax.set_title(f"double-well escape, T={T:g}, h={H:g}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small settings (under 2 minutes)")
    p.add_argument("--runs", type=int, default=None, help="independent runs per (method, beta)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--plot", default="runs/ecd_escape.png")
    args = p.parse_args()
    betas = [1.0, 2.0, 3.0, 4.0] if args.quick else [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    runs = args.runs or (100 if args.quick else 200)
    if runs < 2:
        raise SystemExit(f"--runs must be >= 2, got {runs}")
    print(f"T={T}, V0={V0}, omega={OMEGA}, h={H}; Langevin gamma={GAMMA}; sECD eta={ETA}, s={S}, lam={LAM}, "
          f"E={secd_energy():.4f} (ceiling V_c={(np.exp(secd_energy()) / S) ** (1 / ETA):.2f}); {runs} runs each")
    t0 = time.perf_counter()
    rows = run(betas, runs, args.seed, max_time=2.0e4 if args.quick else 4.0e4)
    fit = fits(rows)
    print()
    print(table(rows, fit))
    print(f"\nplot: {plot(rows, args.plot)}   total {time.perf_counter() - t0:.0f}s")


if __name__ == "__main__":
    main()
