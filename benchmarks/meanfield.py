"""Mean-field underdamped Langevin on the Gaussian case: error of the stationary variance against step size and N.

V(x) = a|x|^2/2, W(z) = b|z|^2/2, temperature sigma2: the mean-field law is N(0, sigma2/(a+b)) per coordinate.
The N-particle system splits into a mean mode (stiffness a) and N-1 spread modes (stiffness a+b), so
  * step size: the spread about the particle mean, E[emp. var] / (1 - 1/N), is the chain's stationary variance of a
    stiffness-(a+b) mode: OBABO gives sigma2 / (k (1 - h^2 k / 4)) (error O(h^2)), BAOAB sigma2 / k (no error);
  * particles: one particle's variance is v(a)/N + v(a+b)(1 - 1/N): bias (v(a) - v(a+b))/N, exactly O(1/N).
Measured errors (+- MCSE from arviz-stats over the per-step trace) are printed next to these exact values, with the
log-log slope fitted over the rows whose error is > 3 MCSE.

Integrators (`--rates`, runs by default): OBABO, BAOAB and the randomized midpoint method (Shen & Lee 2019, the time
half of Fu & Wilson's space-time scheme), error against step size:
  * exact, Gaussian: the stationary variance of a stiffness-k mode of each chain (closed forms; randomized midpoint
    from the alpha-averaged second-moment recursion, samplax.meanfield.rm_mode_variance), slope fitted over h;
  * measured, Gaussian: the step-size table below includes the randomized midpoint chain, against its exact value;
  * measured, non-Gaussian: W = None, V(x) = e^x - x, whose law (log of an Exp(1)) has variance pi^2/6, so BAOAB's
    Gaussian exactness does not hide its error; slope over the rows whose error is > 3 MCSE (the randomized midpoint
    chain diverges here at h = 0.8: e^x is stiff for x > 0);
  * space: the spread variance with random batches of B (interaction_batch) against the exact interaction.

    .venv/bin/python benchmarks/meanfield.py --quick     # about 50 s on 2 busy cores, cold compile cache
    .venv/bin/python benchmarks/meanfield.py
    .venv/bin/python benchmarks/meanfield.py --network   # plus a mean-field two-layer network (pairwise W), descriptive
    .venv/bin/python benchmarks/meanfield.py --rates-only [--quick]   # only the integrator tables
"""

from __future__ import annotations

import argparse
import time

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from arviz_stats import mcse  # noqa: E402

from samplax.meanfield import gaussian_meanfield_variance, gaussian_particle_variance, sample_meanfield  # noqa: E402

INTEGRATORS = ("obabo", "baoab", "randomized_midpoint")

A, B, S2, GAMMA = 0.5, 1.5, 1.0, 1.0


def _run(n, h, steps, pops, integrator, seed, dim):
    return sample_meanfield(lambda x: A * jnp.sum(x**2) / 2, lambda z: B * jnp.sum(z**2) / 2, dim, num_particles=n,
                            step_size=h, friction=GAMMA, sigma2=S2, num_steps=steps, num_populations=pops, seed=seed,
                            integrator=integrator)


def _mean_se(y):
    return float(y.mean()), float(mcse(y, method="mean", chain_axis=0, draw_axis=1))


def _slope(xs, errs, ses):
    keep = [(x, e) for x, e, s in zip(xs, errs, ses, strict=True) if abs(e) > 3 * s and e > 0]
    if len(keep) < 2:
        return float("nan")
    x, e = np.array(keep).T
    return float(np.polyfit(np.log(x), np.log(e), 1)[0])


def step_size_table(hs, n, time_units, pops, seed, dim):
    v_mf = gaussian_meanfield_variance(A, B, S2)
    print(f"\n### Step size (N={n}, d={dim}, {pops} populations, {time_units} time units each, gamma={GAMMA})")
    print("spread variance E[emp var]/(1-1/N) minus sigma2/(a+b); exact = the chain's own stationary value\n")
    print("| integrator | h | measured error | MCSE | exact error | seconds |")
    print("|---|---|---|---|---|---|")
    slopes, exact_slope = {}, float("nan")
    for integ in INTEGRATORS:
        errs, ses, exacts = [], [], []
        for h in hs:
            steps = int(round(time_units / h))
            t0 = time.perf_counter()
            dt = _run(n, h, steps, pops, integ, seed, dim)
            sec = time.perf_counter() - t0
            burn = steps // 10
            y = np.asarray(dt["trace"]["empirical_variance"])[:, burn:].mean(-1) / (1 - 1 / n)
            est, se = _mean_se(y)
            exact = gaussian_particle_variance(A + B, 0.0, S2, 1, h, integ, friction=GAMMA) - v_mf
            errs.append(est - v_mf)
            ses.append(se)
            exacts.append(exact)
            print(f"| {integ} | {h:g} | {est - v_mf:+.5f} | {se:.5f} | {exact:+.5f} | {sec:.1f} |")
        slopes[integ] = _slope(hs, errs, ses)
        if integ == "obabo":
            exact_slope = float(np.polyfit(np.log(hs), np.log(exacts), 1)[0])
        if integ == "randomized_midpoint":
            rm_slope = float(np.polyfit(np.log(hs), np.log(exacts), 1)[0])
    print(f"\nobserved slope of log error vs log h: OBABO {slopes['obabo']:.2f} (exact chain over these h: "
          f"{exact_slope:.2f}; O(h^2) as h -> 0); randomized midpoint {slopes['randomized_midpoint']:.2f} (exact: "
          f"{rm_slope:.2f}, O(h^3)); "
          f"BAOAB {slopes['baoab']:.2f} (exact: no error in the position variance for a quadratic potential, so "
          "no slope expected: nan = no row with error above 3 MCSE)")
    return slopes


def particle_table(ns, h, time_units, total_particles, seed, dim):
    v_lim = gaussian_particle_variance(A, B, S2, 10**12, h)  # N -> infinity of the same chain: isolates the N effect
    coef = gaussian_particle_variance(A, B, S2, 1, h) - gaussian_particle_variance(A + B, 0.0, S2, 1, h)
    steps = int(round(time_units / h))
    print(f"\n### Particle count (OBABO, h={h}, d={dim}, N x populations = {total_particles}, {time_units} time units)")
    print("one particle's variance minus the N -> infinity value of the same chain; exact = (v(a) - v(a+b)) / N\n")
    print("| N | populations | measured bias | MCSE | exact bias | N x measured bias | seconds |")
    print("|---|---|---|---|---|---|---|")
    biases, ses = [], []
    exact_slope = float(np.polyfit(np.log(ns), np.log([coef / n for n in ns]), 1)[0])
    for n in ns:
        pops = max(total_particles // n, 2)
        t0 = time.perf_counter()
        dt = _run(n, h, steps, pops, "obabo", seed, dim)
        sec = time.perf_counter() - t0
        burn = steps // 10
        tr = dt["trace"]
        y = (np.asarray(tr["empirical_variance"]) + np.asarray(tr["mean"]) ** 2)[:, burn:].mean(-1)
        est, se = _mean_se(y)
        biases.append(est - v_lim)
        ses.append(se)
        print(f"| {n} | {pops} | {est - v_lim:+.5f} | {se:.5f} | {coef / n:+.5f} | {n * (est - v_lim):+.3f} | "
              f"{sec:.1f} |")
    slope = _slope(ns, biases, ses)
    print(f"\nobserved slope of log bias vs log N: {slope:.2f} (exact: {exact_slope:.2f}, O(1/N)); "
          f"exact N x bias = {coef:.3f}")
    return slope


def exact_rates_table(hs, k=A + B):
    print(f"\n### Integrators, exact (Gaussian mode of stiffness k = {k}, friction {GAMMA}, sigma2 = {S2})")
    print("stationary position variance of the chain minus sigma2/k (no Monte Carlo)\n")
    print("| h | " + " | ".join(INTEGRATORS) + " |")
    print("|---|" + "---|" * len(INTEGRATORS))
    errs = {i: [] for i in INTEGRATORS}
    for h in hs:
        for i in INTEGRATORS:
            errs[i].append(gaussian_particle_variance(k, 0.0, S2, 1, h, i, friction=GAMMA) - S2 / k)
        print(f"| {h:g} | " + " | ".join(f"{errs[i][-1]:+.3e}" for i in INTEGRATORS) + " |")
    slopes = {}
    for i in INTEGRATORS:
        e = np.abs(errs[i])
        slopes[i] = float(np.polyfit(np.log(hs), np.log(e), 1)[0]) if np.all(e > 1e-14) else float("nan")
    print("\nslope of log |error| vs log h: " + ", ".join(f"{i} {slopes[i]:.2f}" for i in INTEGRATORS)
          + " (nan: no error, BAOAB is exact in the position variance of a quadratic potential)")
    return slopes


def skewed_rates_table(hs, particles, pops, time_units, seed):
    mean_t, var_t = -np.euler_gamma, np.pi**2 / 6
    print(f"\n### Integrators, measured (W = None, V = e^x - x, {pops} x {particles} independent particles, "
          f"{time_units} time units, friction {GAMMA})")
    print("variance of the particles minus pi^2/6 (the law of log E, E ~ Exp(1)); +- MCSE over the per-step trace\n")
    print("| integrator | h | gradients / time unit | error | MCSE | seconds |")
    print("|---|---|---|---|---|---|")
    slopes = {}
    for integ in INTEGRATORS:
        errs, ses = [], []
        for h in hs:
            steps = int(round(time_units / h))
            t0 = time.perf_counter()
            dt = sample_meanfield(lambda x: jnp.sum(jnp.exp(x) - x), None, 1, num_particles=particles, step_size=h,
                                  friction=GAMMA, sigma2=1.0, num_steps=steps, num_populations=pops, seed=seed,
                                  integrator=integ, init_scale=1.0)
            sec = time.perf_counter() - t0
            burn = steps // 10
            tr = dt["trace"]
            y = np.asarray(tr["empirical_variance"])[:, burn:, 0] * particles / (particles - 1)
            est, se = _mean_se(y)
            errs.append(est - var_t)
            ses.append(se)
            per = 2 if integ == "randomized_midpoint" else 1
            print(f"| {integ} | {h:g} | {per / h:.0f} | {est - var_t:+.5f} | {se:.5f} | {sec:.1f} |")
        slopes[integ] = _slope(hs, np.abs(errs), ses)
    print("\nslope of log |error| vs log h over rows > 3 MCSE: " + ", ".join(f"{i} {slopes[i]:.2f}" for i in slopes))
    return slopes


def batch_table(hs, n, batches, pops, time_units, seed, dim=2):
    v_ex = {h: gaussian_particle_variance(A + B, 0.0, S2, 1, h, "randomized_midpoint", friction=GAMMA) for h in hs}
    print(f"\n### Random batches (randomized midpoint, N = {n}, d = {dim}, {pops} populations, "
          f"{time_units} time units)")
    print("spread variance E[emp var]/(1-1/N) minus the exact-interaction chain's value; B = N is the exact "
          "interaction\n")
    print("| B | h | pair gradients / step | error | MCSE | seconds |")
    print("|---|---|---|---|---|---|")
    for b in batches:
        for h in hs:
            steps = int(round(time_units / h))
            t0 = time.perf_counter()
            dt = sample_meanfield(lambda x: A * jnp.sum(x**2) / 2, lambda z: B * jnp.sum(z**2) / 2, dim,
                                  num_particles=n, step_size=h, friction=GAMMA, sigma2=S2, num_steps=steps,
                                  num_populations=pops, seed=seed, integrator="randomized_midpoint",
                                  interaction_batch=None if b == n else b)
            sec = time.perf_counter() - t0
            y = np.asarray(dt["trace"]["empirical_variance"])[:, steps // 10:].mean(-1) / (1 - 1 / n)
            est, se = _mean_se(y)
            print(f"| {b} | {h:g} | {2 * n * b} | {est - v_ex[h]:+.5f} | {se:.5f} | {sec:.1f} |")


def network_table(ns, h, steps, pops, seed, sigma2=1e-3, lam=1e-3):
    """The paper's kind of example: a mean-field two-layer tanh network fitted to a teacher neuron (descriptive only:
    no closed form, so the table shows the regularised risk settling as N grows, not an error against a truth)."""
    rng = np.random.default_rng(0)
    z = jnp.asarray(rng.normal(size=(64, 2)))
    y = jnp.tanh(z @ jnp.array([1.5, -1.0]))

    def h_z(theta):  # neuron theta = (w1, w2, a): a tanh(w . z) at every input
        return theta[2] * jnp.tanh(z @ theta[:2])

    V = lambda th: -jnp.mean(y * h_z(th)) + lam * jnp.sum(th**2) / 2  # noqa: E731
    W = lambda t1, t2: jnp.mean(h_z(t1) * h_z(t2))  # noqa: E731  1/2 iint W = 1/2 mean_z f(z)^2
    const = 0.5 * float(jnp.mean(y**2))  # energy + const = 1/2 mean (y - f)^2 + lam/2 int |theta|^2
    print(f"\n### Mean-field two-layer network (teacher tanh neuron, 64 inputs; OBABO h={h}, {steps} steps, "
          f"sigma2={sigma2}, lambda={lam}, {pops} populations)")
    print("regularised risk 1/2 mean (y - f)^2 + lambda/2 int |theta|^2 over the last half of the run\n")
    print("| N | risk | MCSE | seconds |")
    print("|---|---|---|---|")
    for n in ns:
        t0 = time.perf_counter()
        dt = sample_meanfield(V, W, 3, pairwise=True, num_particles=n, step_size=h, friction=GAMMA, sigma2=sigma2,
                              num_steps=steps, num_populations=pops, seed=seed, init_scale=0.5)
        sec = time.perf_counter() - t0
        r, se = _mean_se(np.asarray(dt["trace"]["energy"])[:, steps // 2:] + const)
        print(f"| {n} | {r:.5f} | {se:.5f} | {sec:.1f} |")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small settings, under a minute")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--network", action="store_true", help="also the mean-field two-layer network table")
    ap.add_argument("--rates-only", action="store_true", help="only the integrator tables")
    args = ap.parse_args()
    t0 = time.perf_counter()
    print(f"V = {A}|x|^2/2, W = {B}|z|^2/2, sigma2 = {S2}: mean-field variance {gaussian_meanfield_variance(A, B, S2)}")
    exact_rates_table([0.8, 0.4, 0.2, 0.1, 0.05])
    if args.quick:
        skewed_rates_table([0.4, 0.2], particles=4096, pops=4, time_units=200, seed=args.seed)
        batch_table([0.4, 0.2], n=32, batches=[32, 4], pops=4, time_units=200, seed=args.seed)
    else:
        skewed_rates_table([0.5, 0.4, 0.28, 0.2], particles=8192, pops=4, time_units=300, seed=args.seed)
        batch_table([0.4, 0.2, 0.1], n=64, batches=[64, 8, 2], pops=4, time_units=500, seed=args.seed)
    if args.rates_only:
        print(f"\ntotal {time.perf_counter() - t0:.0f} s")
        return
    if args.quick:
        step_size_table([0.8, 0.4, 0.2], n=64, time_units=300, pops=4, seed=args.seed, dim=2)
        particle_table([2, 4, 16], h=0.2, time_units=300, total_particles=64, seed=args.seed, dim=1)
    else:
        step_size_table([0.5, 0.35, 0.25, 0.175, 0.125], n=64, time_units=1000, pops=4, seed=args.seed, dim=2)
        particle_table([2, 4, 8, 16, 32, 64], h=0.2, time_units=1000, total_particles=128, seed=args.seed, dim=1)
    if args.network:
        network_table([8, 16, 32, 64], h=0.1, steps=3000, pops=2, seed=args.seed)
    print(f"\ntotal {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
