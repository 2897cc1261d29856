"""How far FKC's log Z moves with its time step, against the Monte Carlo SE it reports.

    python benchmarks/fkc_time_step.py [--seeds 10] [--steps 100 200 500 1000]

The README's example: the product p1 p2 of a 2-d Gaussian mixture with itself (`samplax.fkc.product`), whose
log Z at t_min is exact (a sum of Gaussian overlap integrals). For each number of Euler-Maruyama steps, `--seeds`
runs of 4 populations x 500 particles: the mean log Z error, the spread of log Z over seeds, the mean reported SE,
and the mean z = error / reported SE. `log_z_se` is the Monte Carlo error only; the time-discretisation bias is
what the z column shows beyond +-1 / sqrt(seeds).
"""

from __future__ import annotations

import argparse
import time

import jax
import numpy as np

jax.config.update("jax_enable_x64", True)

import samplax  # noqa: E402
from samplax.diffusion import ScoreModel  # noqa: E402


def exact_log_z(model) -> float:
    """log of int p1 p2 at t_min for two Gaussian mixtures: sum_ij w_i w_j N(mu_i; mu_j, C_i + C_j)."""
    from scipy.special import logsumexp
    from scipy.stats import multivariate_normal

    proc = model.process
    a, s = float(proc.alpha(proc.t_min)), float(proc.sigma(proc.t_min))
    w, mu, c = (np.asarray(model.info[k]) for k in ("weights", "means", "covs"))
    mu, c = a * mu, a ** 2 * c + s ** 2 * np.eye(mu.shape[1])
    return float(logsumexp([np.log(w[i] * w[j]) + multivariate_normal.logpdf(mu[i], mu[j], c[i] + c[j])
                            for i in range(len(w)) for j in range(len(w))]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--steps", type=int, nargs="+", default=[100, 200, 500, 1000])
    a = ap.parse_args()
    mix = ScoreModel.gaussian_mixture([0.5, 0.5], [[-2.0, 0.0], [2.0, 0.0]], [0.3, 0.3])
    model, exact = samplax.fkc.product(mix, mix), exact_log_z(mix)
    print(f"fkc on product(mix, mix) (the README's example), exact log Z {exact:.5f}; {a.seeds} seeds x 4 "
          "populations x 500 particles per row\n")
    print("| num_steps | mean log Z - exact | sd over seeds | mean reported SE | mean z | seconds |")
    print("|---|---|---|---|---|---|")
    for k in a.steps:
        t0, lz, se = time.perf_counter(), [], []
        for seed in range(a.seeds):
            dt = samplax.sample(model, "fkc", num_particles=500, num_chains=4, num_steps=k, seed=seed,
                                progress=False)
            lz.append(dt.attrs["log_z"])
            se.append(dt.attrs["log_z_se"])
        lz, se = np.array(lz), np.array(se)
        z = (lz - exact) / se
        print(f"| {k} | {lz.mean() - exact:+.4f} | {lz.std(ddof=1):.4f} | {se.mean():.4f} | {z.mean():+.2f} | "
              f"{time.perf_counter() - t0:.0f} |", flush=True)


if __name__ == "__main__":
    main()
