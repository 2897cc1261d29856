"""Wasserstein estimators: samplax wrappers vs POT's own calls, timed side by side in one run.

    .venv/bin/python benchmarks/wasserstein_speed.py            # n = 1e3, 1e4, 1e5; d = 2, 10, 50
    SAMPLAX_QUICK=1 .venv/bin/python benchmarks/wasserstein_speed.py   # n = 1e3 only

X ~ N(0, I), Y ~ N(0.1, I) in float64; Sinkhorn stops at marginal error 1e-3 in both libraries.
Times are the best of up to 3 calls after one warm-up call (jit compilation excluded).
ratio = POT time / samplax time (> 1: samplax faster).
Skipped, and why:
  exact     n >= 1e4: the dense n x n cost matrix (0.8 GB at 1e4, 80 GB at 1e5) and ~n^3 network simplex;
            samplax subsamples to EXACT_MAX_POINTS=5000 there (with a warning) instead.
  sinkhorn  n >= 1e4: n^2 work per iteration for three problems (~100x the 1e3 time, minutes on 2 cores);
            POT's dense version also needs three n x n matrices.
POT's `empirical_sinkhorn_divergence` subtracts linear transport costs, not entropic ones, so its
value differs from the debiased divergence (Feydy et al. 2019) that ott-jax and samplax compute.
"""

import os
import time

import jax

jax.config.update("jax_enable_x64", True)

import numpy as np  # noqa: E402
import ot  # noqa: E402

from samplax.diagnostics.wasserstein import (  # noqa: E402
    exact_wasserstein,
    gaussian_fit_w2,
    sinkhorn_w2,
    sliced_w2,
    sphere_directions,
    w2_1d,
)

QUICK = os.environ.get("SAMPLAX_QUICK") == "1"
NS = [1_000] if QUICK else [1_000, 10_000, 100_000]
DS = [2, 10, 50]
N_PROJ = 128


def best_time(fn, max_reps=3):
    fn()  # warm-up: compilation, caches
    times, value = [], None
    for _ in range(max_reps):
        t0 = time.perf_counter()
        value = fn()
        times.append(time.perf_counter() - t0)
        if sum(times) > 5.0:
            break
    return min(times), float(value)


def rows_for(n, d, rng):
    X = rng.standard_normal((n, d))
    Y = 0.1 + rng.standard_normal((n, d))
    out = []
    if n <= 1_000:
        M = lambda: ot.dist(X, Y)  # noqa: E731
        out.append(("exact W2", best_time(lambda: exact_wasserstein(X, Y)),
                    best_time(lambda: np.sqrt(ot.emd2([], [], M(), numItermax=10**9)))))
        eps = 0.01 * float(np.sum(np.var(X, 0)) + np.sum(np.var(Y, 0)))
        out.append(("sinkhorn (ott) vs POT", best_time(lambda: sinkhorn_w2(X, Y), 1),
                    best_time(lambda: np.sqrt(max(ot.bregman.empirical_sinkhorn_divergence(
                        X, Y, eps, numIterMax=5000, stopThr=1e-3), 0.0)), 1)))
    theta = sphere_directions(d, N_PROJ, "sobol", seed=0)
    pot_sliced = best_time(lambda: ot.sliced_wasserstein_distance(X, Y, projections=theta))
    out.append((f"sliced {N_PROJ} sobol, numpy", best_time(lambda: sliced_w2(X, Y, projections=theta,
                                                                               backend="numpy")), pot_sliced))
    out.append((f"sliced {N_PROJ} sobol, jax jit", best_time(lambda: sliced_w2(X, Y, projections=theta,
                                                                                 backend="jax")), pot_sliced))
    mean, cov = np.zeros(d), np.eye(d)
    out.append(("gaussian fit W2", best_time(lambda: gaussian_fit_w2(X, mean, cov)),
                best_time(lambda: ot.gaussian.bures_wasserstein_distance(X.mean(0), mean,
                                                                         np.cov(X, rowvar=False), cov))))
    if d == DS[0]:
        out.append(("1D W2 (coordinate 0)", best_time(lambda: w2_1d(X[:, 0], Y[:, 0])),
                    best_time(lambda: np.sqrt(ot.wasserstein_1d(X[:, 0], Y[:, 0], p=2)))))
    return out


def main():
    print(f"# CPU cores: {os.cpu_count()}, load average {os.getloadavg()[0]:.1f}; jax {jax.__version__}, "
          f"POT {ot.__version__}; float64")
    print(f"{'estimator':<28}{'n':>8}{'d':>4}{'samplax s':>11}{'POT s':>10}{'ratio':>8}"
          f"{'samplax value':>15}{'POT value':>12}")
    rng = np.random.default_rng(0)
    big = None
    for n in NS:
        for d in DS:
            for name, (t_us, v_us), (t_pot, v_pot) in rows_for(n, d, rng):
                print(f"{name:<28}{n:>8}{d:>4}{t_us:>11.4f}{t_pot:>10.4f}{t_pot / t_us:>8.2f}"
                      f"{v_us:>15.6g}{v_pot:>12.6g}", flush=True)
                if name.startswith("sliced") and "numpy" in name and n == 100_000 and d == 50:
                    big = t_us
    print("skipped: exact and sinkhorn for n >= 1e4 (n^2 memory, n^3 / n^2-per-iteration time; see docstring)")
    if big is not None:
        print(f"sliced W2, n = 1e5, d = 50, {N_PROJ} Sobol directions (auto backend = numpy on CPU): {big:.3f} s")


if __name__ == "__main__":
    main()
