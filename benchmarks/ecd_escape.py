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

Quantum columns (classical grid simulation, samplax.experiments.quantum; same wells, same beta):
- qGD, "quantised gradient descent": H = p^2/2 + V (mass 1);
- qECD: the ECDSep Hamiltonian H = eta log(V - F0) + log(s + p^2) with sECD's eta, s, F0 = 0
  (`ecdsep_terms`).  It is separable (a function of theta plus a function of p), so every operator
  ordering gives the same operator: no ordering choice enters.
- hbar = HBAR = 2 T / omega (mass 1): the quantised harmonic approximation at a minimum then has ground-state
  position variance hbar / (2 omega) = T / omega^2, the Gibbs variance there (both start equally spread in
  the well).  The tunnelling exponent scales as 1/hbar (WKB for qGD: log dE ~ -16 beta / (3 hbar omega)), so
  the qGD growth rate is set by this convention, not by the physics alone (`--hbar` changes it).
- Start state: the ground state of H restricted to theta < 0 (Dirichlet wall at the barrier top; computed by
  `eigenstates(mask=...)`), i.e. the ground state localised in the starting well, not a Gaussian.
- (a) "prop": propagated transfer time, the first t at which P(theta > 0) exceeds 1/2 (split operator,
  step QDT; censored at the budget `--t-quantum`, shown as >t).  (b) "pi hbar/2dE" from the two lowest levels
  E0 < E1: for a start state (psi0 -+ psi1)/sqrt2, P(right, t) = sin^2(dE t / (2 hbar)), which first reaches
  1/2 at t = pi hbar / (2 dE) (full transfer at pi hbar / dE).  It is shown only where
  `samplax.experiments.quantum.tunnelling_pair` validates the pair (psi0, psi1 each half in each well, psi1 changes sign
  between the wells, psi0 -+ psi1 localised to 1 - 0.05, a doublet E1 - E0 < E2 - E1, and the start state
  >= 95% in the pair); otherwise "(value)--" and the propagated time is the quantum time.
- Clocks: t is the time in exp(-i H t / hbar).  Its Heisenberg equations are the classical ones in the same t:
  Newton's theta'' = -V'(theta) for qGD (underdamped Langevin's clock with the friction and noise off), and
  ECDSep's dtheta/dt = 2p/(s + p^2), dp/dt = -eta V'/(V - F0) for qECD (sECD's physical clock).  Beyond that the
  comparison is a convention: the event differs (classical: first reach the other minimum theta >= a;
  quantum: more than half the probability beyond the barrier top), hbar is chosen, and gradient evaluations
  have no quantum counterpart.

Optimiser race (`--optimizers`): evaluations until the loss first falls below the global-minimum level (half-way
between the global minimum and the next-lowest minimum), from the highest local minimum, on three landscapes:
the tilted double well (barrier 3, tilt 0.3), the tilted triple well (`multi_well`, barriers 2, width 2, tilt 0.3)
and 2-d Rastrigin (A = 2, start in the basin of (2, 2)). Methods, one loss or gradient evaluation per step:
simulated annealing (`samplax.optimizers.anneal`, Metropolis, step 1.0, T0 = 2) with each schedule of its
registry (geometric: T_end = 1e-3 T0 at the budget; logarithmic; adaptive: lam = 0.002); the ECD optimiser
(`samplax.optimizers.minimize`, lr 0.05, eta 1, s 1, delta_energy 1, F0 = global minimum - 1, an oracle it needs)
without direction noise ("ecd", lam = 0) and with it ("secd", lam = 0.1); overdamped Langevin at fixed T = 1,
h = 0.05. Settings are fixed across landscapes (none tuned per landscape). Hitting times are Kaplan-Meier
summaries (samplax.diagnostics.hitting); runs that never hit are censored at the budget.

    .venv/bin/python benchmarks/ecd_escape.py [--quick] [--runs N] [--hbar HBAR] [--t-quantum T] [--plot PATH]
    .venv/bin/python benchmarks/ecd_escape.py --optimizers [--quick] [--runs N]
"""

from __future__ import annotations

import argparse
import os
import pathlib
import time
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

jax.config.update("jax_enable_x64", True)

import samplax  # noqa: E402
from samplax.diagnostics.hitting import first_hit_times, halfspace, sampler_grads, sublevel_set, summarize  # noqa: E402,E501
from samplax.diagnostics.hitting_theory import mfpt_langevin, telegraph_mean_hitting_time  # noqa: E402
from samplax.experiments import quantum  # noqa: E402
from samplax.models import wells  # noqa: E402
from samplax.samplers import ecd  # noqa: E402

T, V0, OMEGA, GAMMA, H = 1.0, 1.0, 1.0, 1.0, 0.02
ETA, S, LAM = 2.0 * V0 / T, 0.05, GAMMA / 2.0
METHODS = ("secd", "overdamped", "underdamped")
QUANTUM = ("qGD", "qECD")
# hbar convention (see docstring); split-operator step (transfer times within 2e-3 of dt -> 0 at beta = 4, 5)
HBAR, QDT = 2.0 * T / OMEGA, 0.2


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
        return step, init, oracle, {"grads_per_step": 1}  # kick-drift-kick: one new gradient per step
    target = land.target(T)
    if method == "overdamped":
        sampler = samplax.samplers.get("ula", step_size=H)
        oracle = mfpt_langevin(_V(land), -a, a, T)
    elif method == "underdamped":
        sampler = samplax.samplers.get("underdamped", gamma=GAMMA, step_size=H)
        oracle = float("nan")  # no closed form; Kramers-Haenggi only asymptotically
    else:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    params = sampler.initial_params(target)
    alg = sampler.build(target, params)
    init = jax.vmap(lambda k: alg.init(x0, k))(keys)  # underdamped: momentum ~ N(0, T) (thermal start)
    return alg.step, init, oracle, {"n_grad": sampler_grads(sampler, params)}


def run(betas, num_runs: int, seed: int = 0, max_time: float = 2.0e4, verbose: bool = True):
    """Rows of dicts: method, beta, mean (time units), se, kind, fraction hit, median, oracle, seconds."""
    rows = []
    for method in METHODS:
        for i, beta in enumerate(betas):
            key = jax.random.fold_in(jax.random.PRNGKey(seed), 1000 * METHODS.index(method) + i)
            step, init, oracle, counting = setup(method, beta, num_runs, key)
            guess = oracle if np.isfinite(oracle) else mfpt_langevin(_V(wells.double_well(beta, omega=OMEGA, V0=V0)),
                                                                     -np.sqrt(8 * beta) / OMEGA,
                                                                     np.sqrt(8 * beta) / OMEGA, T)
            budget = int(min(max_time, 15 * guess) / H)
            t0 = time.perf_counter()
            res = first_hit_times(step, init, halfspace(0, float(np.sqrt(8 * beta) / OMEGA)), budget,
                                  jax.random.fold_in(key, 7), dt=H, chunk=2000, **counting)
            sm = summarize(res, "time")
            row = {"method": method, "beta": beta, "mean": sm.mean, "se": sm.mean_se, "kind": sm.mean_kind,
                   "hit": sm.fraction_hit, "median": sm.median, "oracle": oracle,
                   "grads": float(np.mean(res.grads)), "seconds": time.perf_counter() - t0}
            rows.append(row)
            if verbose:
                print(f"  {method:11s} beta={beta:4.1f}: mean {sm.mean:9.2f} +- {sm.mean_se:7.2f} "
                      f"(oracle {oracle:9.2f}), {sm.fraction_hit:.0%} hit, {row['seconds']:.1f}s", flush=True)
    return rows


def quantum_grid(method: str, beta: float):
    """Periodic grid for the quantum runs: nodes at +-dx/2 so that theta > 0 is exactly half of it.

    qECD needs a wider box: its potential eta log V grows only logarithmically and its kinetic term
    log(s + p^2) lets the wavefunction decay only like exp(-sqrt(s) |theta| / hbar) where forbidden.
    (qECD levels agree to 1e-6 between 384 and 1024 nodes; doubling the box moves E0 by ~1e-3.)
    """
    a = float(np.sqrt(8 * beta) / OMEGA)
    half, n = (1.5 * a + 8.0, 512) if method == "qGD" else (3.0 * a + 20.0, 512)
    dx = 2 * half / n
    return quantum.make_grid(-half + dx / 2, half + dx / 2, n)


def quantum_terms(method: str, beta: float, grid):
    """(V, kinetic) on the grid: kinetic None means p^2/2."""
    land = wells.double_well(beta, omega=OMEGA, V0=V0)
    F = _V(land)(grid.points[0])
    if method == "qGD":
        return F, None
    if method == "qECD":
        return quantum.ecdsep_terms(F, eta=ETA, F0=0.0, s=S)
    raise ValueError(f"method must be one of {QUANTUM}, got {method!r}")


def quantum_row(method: str, beta: float, *, hbar: float = HBAR, t_max: float = 2.0e4, dt: float = QDT):
    """One quantum row: propagated transfer time ('mean'), pi hbar / (2 dE) ('oracle', nan unless the pair
    validates) and the pair check."""
    t0 = time.perf_counter()
    g = quantum_grid(method, beta)
    x = g.points[0]
    V, kin = quantum_terms(method, beta, g)
    E, states = quantum.eigenstates(V, g, 3, hbar=hbar, kinetic=kin)
    _, local = quantum.eigenstates(V, g, 1, hbar=hbar, kinetic=kin, mask=x < 0)
    pair = quantum.tunnelling_pair(E, states, g, x < 0, start=local[0])
    two_level = float(np.pi * hbar / (2 * (E[1] - E[0])))
    prop = quantum.transfer_time(local[0], V, g, x > 0, t_max=t_max, dt=dt, hbar=hbar, kinetic=kin)
    return {"method": method, "beta": beta, "mean": prop, "se": 0.0, "kind": "mean" if np.isfinite(prop) else
            "censored", "hit": float(np.isfinite(prop)), "median": float("nan"),
            "oracle": two_level if pair.ok else float("nan"), "two_level": two_level, "pair": pair,
            "t_max": t_max, "hbar": hbar, "grads": float("nan"), "seconds": time.perf_counter() - t0}


def run_quantum(betas, *, hbar: float = HBAR, t_max: float = 2.0e4, verbose: bool = True):
    """Rows for qGD and qECD (same keys as `run`; 'mean' = propagated time, 'oracle' = validated pi hbar/2dE)."""
    if not hbar > 0:
        raise ValueError(f"hbar must be > 0, got {hbar}")
    rows = []
    for method in QUANTUM:
        for beta in betas:
            r = quantum_row(method, beta, hbar=hbar, t_max=t_max)
            rows.append(r)
            if verbose:
                pc = r["pair"]
                print(f"  {method:11s} beta={beta:4.1f}: propagated {r['mean']:10.4g}, pi hbar/2dE "
                      f"{r['two_level']:10.4g}, pair {'ok' if pc.ok else 'NOT a localised pair'} (localised "
                      f"{pc.localised:.4f}, start in pair {pc.start_weight:.4f}, dE/gap {pc.splitting / pc.gap:.3f}), "
                      f"{r['seconds']:.1f}s", flush=True)
    return rows


def fits(rows):
    """Per method: exponential (log m = c + r beta) and polynomial (log m = c + k log beta) fits with R^2."""
    out = {}
    series = []
    for method in dict.fromkeys(x["method"] for x in rows):
        r = [x for x in rows if x["method"] == method]
        quantum_rows = method in QUANTUM
        series.append((f"{method} (propagated)" if quantum_rows else method, r, "mean"))
        if quantum_rows:  # validated pairs only; too few points -> no fit
            series.append((f"{method} (pi hbar/2dE)", r, "oracle"))
        elif all(np.isfinite(x["oracle"]) for x in r):
            series.append((f"{method} (exact)", r, "oracle"))  # noise-free check of the same fit
    for method, r, field in series:
        r = [x for x in r if np.isfinite(x[field])]  # censored quantum runs / unvalidated pairs drop out
        if len(r) < 3:
            continue
        b = np.array([x["beta"] for x in r])
        y = np.log(np.array([x[field] for x in r]))
        res = {"n": len(r)}
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
        if x["method"] in QUANTUM:
            continue
        star = "*" if x["kind"] != "mean" else " "
        lines.append(f"{x['method']:11s} {x['beta']:5.1f} {x['mean']:10.2f}{star} {x['se']:8.2f} "
                     f"{x['oracle']:10.2f} {x['hit']:5.0%} {x['median']:9.2f} {x['grads']:10.0f}")
    lines.append("(* = restricted mean: some runs censored at the budget, a lower bound)")
    if any(x["method"] in QUANTUM for x in rows):
        lines += ["", side_by_side(rows)]
    lines.append("")
    lines.append(f"{'series':25s} {'n':>2s} {'exp rate r':>11s} {'R2':>7s} {'poly exp k':>11s} {'R2':>7s}  better fit")
    for m, f in fit.items():
        lines.append(f"{m:25s} {f['n']:2d} {f['exp'][0]:11.3f} {f['exp'][1]:7.3f} {f['poly'][0]:11.3f} "
                     f"{f['poly'][1]:7.3f}  {f['better']}")
    lines.append("exp: log(time) = c + r beta;  poly: log(time) = c + k log(beta); n = points fitted")
    return "\n".join(lines)


def side_by_side(rows):
    """One line per beta: classical mean hitting times beside the quantum transfer times."""
    by = {(x["method"], x["beta"]): x for x in rows}
    classical = [m for m in METHODS if any(x["method"] == m for x in rows)]
    quantum_m = [m for m in QUANTUM if any(x["method"] == m for x in rows)]
    head = f"{'beta':>5s}" + "".join(f" {m:>11s}" for m in classical)
    for m in quantum_m:
        head += f" {m + ' prop':>11s} {m + ' pi/2dE':>12s}"
    lines = ["escape time vs barrier (time units; classical: mean time to reach theta >= a; quantum: first t with "
             "P(theta > 0) > 1/2)", head]
    for beta in sorted({x["beta"] for x in rows}):
        line = f"{beta:5.1f}"
        for m in classical:
            x = by.get((m, beta))
            line += f" {x['mean']:10.4g}{'*' if x['kind'] != 'mean' else ' '}" if x else f" {'':11s}"
        for m in quantum_m:
            x = by.get((m, beta))
            if x is None:
                line += f" {'':11s} {'':12s}"
                continue
            prop = f"{x['mean']:.4g}" if np.isfinite(x["mean"]) else f">{x['t_max']:.3g}"
            two = f"{x['oracle']:.4g}" if np.isfinite(x["oracle"]) else f"({x['two_level']:.3g})--"
            line += f" {prop:>11s} {two:>12s}"
        lines.append(line)
    lines.append(f"quantum: hbar={quantum_hbar(rows):g}, mass 1; start = ground state of the left well (Dirichlet "
                 "at theta=0); pi/2dE = pi hbar/(2(E1-E0)), shown only for a validated pair ((value)-- = not valid)")
    return "\n".join(lines)


def quantum_hbar(rows):
    return next((x["hbar"] for x in rows if "hbar" in x), HBAR)


def plot_quantum(ax, rows):
    """Quantum transfer times on the same axes: propagated (squares), validated pi hbar/2dE (dotted)."""
    for method, c in zip(QUANTUM, ("C3", "C4")):
        r = [x for x in rows if x["method"] == method]
        if not r:
            continue
        b = np.array([x["beta"] for x in r])
        prop, two = np.array([x["mean"] for x in r]), np.array([x["oracle"] for x in r])
        ok = np.isfinite(prop)
        ax.plot(b[ok], prop[ok], "s-", color=c, label=f"{method} propagated")
        ok = np.isfinite(two)
        ax.plot(b[ok], two[ok], "x:", color=c, ms=8, label=f"{method} pi hbar/2dE")


def draw_escape(ax, rows):
    """Classical means with 2-SE bars and exact curves, quantum columns, on a semi-log axis."""
    for method, c in zip(METHODS, ("C0", "C1", "C2")):
        r = [x for x in rows if x["method"] == method]
        b = np.array([x["beta"] for x in r])
        ax.errorbar(b, [x["mean"] for x in r], yerr=[2 * x["se"] for x in r], fmt="o-", color=c, label=method)
        orc = np.array([x["oracle"] for x in r])
        if np.all(np.isfinite(orc)):
            ax.plot(b, orc, "--", color=c, alpha=0.6, label=f"{method} exact")
    plot_quantum(ax, rows)
    ax.set_yscale("log")
    ax.set_xlabel("barrier height beta")
    ax.set_ylabel("escape time (time units)")


def plot(rows, path):
    import matplotlib

    matplotlib.use(os.environ.get("MPLBACKEND", "Agg"))
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    draw_escape(ax, rows)
    ax.set_title(f"double-well escape, T={T:g}, h={H:g}, hbar={quantum_hbar(rows):g}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


# ------------------------------------------------------------------------------------------ optimiser race
OPTIMIZERS = ("sa_geometric", "sa_logarithmic", "sa_adaptive", "ecd", "secd", "langevin")
SA_T0, SA_STEP, SA_END = 2.0, 1.0, 1e-3  # annealing: start temperature, proposal sd, final T / T0 (geometric)
ECD_LR, LANGEVIN_T, LANGEVIN_H = 0.05, 1.0, 0.05


def race_landscapes():
    """(name, landscape, start) for the optimiser race."""
    return [("tilted double well", wells.tilted_double_well(3.0, 0.3), None),
            ("tilted triple well", wells.multi_well(2.0, width=2.0, tilt=0.3), None),
            ("rastrigin 2-d", wells.rastrigin(2, A=2.0), np.array([1.95, 1.95]))]


def race_level(land):
    v = np.unique(np.round(land.minimum_values, 12))
    return 0.5 * (v[0] + v[1])


class _LangevinState(NamedTuple):
    position: jax.Array


def race_setup(method: str, land, x0, num_runs: int, budget: int, key):
    """(step_fn, init_states, position_fn) for one optimiser; every step costs one loss or gradient evaluation."""
    from samplax.optimizers import annealing
    from samplax.optimizers.ecd import ecd as ecd_optimizer

    x0 = jnp.asarray(x0, float)
    keys = jax.random.split(key, num_runs)
    if method.startswith("sa_"):
        name = method[3:]
        kw = {"geometric": {"alpha": SA_END ** (1.0 / budget)}, "logarithmic": {}, "adaptive": {"lam": 0.002}}[name]
        sched = annealing.make_schedule(name, SA_T0, **kw)
        init = jax.vmap(lambda _: annealing.init(x0, land.loss, sched, SA_T0))(keys)
        return (lambda k, s: annealing.step(k, s, land.loss, sched, SA_STEP)), init, (lambda s: s.position)
    if method in ("ecd", "secd"):
        opt = ecd_optimizer(ECD_LR, eta=1.0, F0=land.global_minimum_value - 1.0, s=1.0, delta_energy=1.0,
                          lam=0.1 if method == "secd" else 0.0)
        vg = jax.value_and_grad(land.loss)
        init = jax.vmap(lambda k: (x0, opt.init(x0)._replace(key=k)))(keys)

        def step(k, s):
            x, st = s
            f, g = vg(x)
            upd, st = opt.update(g, st, x, value=f)
            return (x + upd, st), None

        return step, init, (lambda s: s[0])
    if method == "langevin":
        grad = jax.grad(land.loss)

        def step(k, s):
            x = s.position
            return _LangevinState(x - LANGEVIN_H * grad(x) + jnp.sqrt(2 * LANGEVIN_H * LANGEVIN_T)
                                  * jax.random.normal(k, x.shape)), None

        return step, jax.vmap(lambda _: _LangevinState(x0))(keys), (lambda s: s.position)
    raise ValueError(f"method must be one of {OPTIMIZERS}, got {method!r}")


def race(num_runs: int, budget: int, seed: int = 0, verbose: bool = True):
    """Rows: landscape, method, fraction hit, median and (restricted) mean evaluations to the global level."""
    rows = []
    for li, (lname, land, start) in enumerate(race_landscapes()):
        x0 = land.local_minimum if start is None else start
        level = race_level(land)
        for mi, method in enumerate(OPTIMIZERS):
            key = jax.random.fold_in(jax.random.PRNGKey(seed), 100 * li + mi)
            step, init, pos = race_setup(method, land, x0, num_runs, budget, key)
            t0 = time.perf_counter()
            res = first_hit_times(step, init, sublevel_set(land.loss, level), budget, jax.random.fold_in(key, 1),
                                  position_fn=pos, grads_per_step=1.0, chunk=1000)
            sm = summarize(res, "steps")
            rows.append({"landscape": lname, "method": method, "hit": sm.fraction_hit, "median": sm.median,
                         "mean": sm.mean, "se": sm.mean_se, "kind": sm.mean_kind,
                         "seconds": time.perf_counter() - t0})
            if verbose:
                print(f"  {lname:20s} {method:15s}: {sm.describe()}", flush=True)
    return rows


def race_table(rows, budget):
    lines = [f"evaluations (loss or gradient, one per step) until F < level, budget {budget}; "
             "mean* = restricted mean (some runs censored: a lower bound)",
             f"{'landscape':20s} {'method':15s} {'hit':>5s} {'median':>9s} {'mean':>10s} {'+-se':>8s}"]
    for r in rows:
        star = "*" if r["kind"] != "mean" else " "
        med = f"{r['median']:9.0f}" if np.isfinite(r["median"]) else f"{'>' + str(budget):>9s}"
        lines.append(f"{r['landscape']:20s} {r['method']:15s} {r['hit']:5.0%} {med} {r['mean']:9.0f}{star} "
                     f"{r['se']:8.0f}")
    return "\n".join(lines)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small settings (under 2 minutes)")
    p.add_argument("--runs", type=int, default=None, help="independent runs per (method, beta)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--hbar", type=float, default=HBAR, help="hbar of the quantum runs")
    p.add_argument("--t-quantum", type=float, default=None, help="propagation budget (time units) per quantum run")
    p.add_argument("--plot", default="runs/ecd_escape.png")
    p.add_argument("--optimizers", action="store_true", help="only the optimiser race (annealing vs ECD/sECD)")
    args = p.parse_args()
    if args.optimizers:
        runs, budget = args.runs or (50 if args.quick else 200), 2000 if args.quick else 5000
        print(f"optimiser race: {runs} runs per (landscape, method), budget {budget} evaluations")
        rows = race(runs, budget, args.seed)
        print()
        print(race_table(rows, budget))
        return
    betas = [1.0, 2.0, 3.0, 4.0] if args.quick else [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    runs = args.runs or (100 if args.quick else 200)
    if runs < 2:
        raise SystemExit(f"--runs must be >= 2, got {runs}")
    print(f"T={T}, V0={V0}, omega={OMEGA}, h={H}; Langevin gamma={GAMMA}; sECD eta={ETA}, s={S}, lam={LAM}, "
          f"E={secd_energy():.4f} (ceiling V_c={(np.exp(secd_energy()) / S) ** (1 / ETA):.2f}); {runs} runs each")
    t0 = time.perf_counter()
    rows = run(betas, runs, args.seed, max_time=2.0e4 if args.quick else 4.0e4)
    t_q = args.t_quantum or (2.0e4 if args.quick else 2.0e6)
    print(f"quantum: hbar={args.hbar}, mass 1, split-operator dt={QDT}, budget t={t_q:g}")
    rows += run_quantum(betas, hbar=args.hbar, t_max=t_q)
    fit = fits(rows)
    print()
    print(table(rows, fit))
    print(f"\nplot: {plot(rows, args.plot)}   total {time.perf_counter() - t0:.0f}s")


if __name__ == "__main__":
    main()
