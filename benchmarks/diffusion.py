"""Diffusion samplers from exact Gaussian-mixture scores: W2 to the truth against NFE, and convergence orders.

    python benchmarks/diffusion.py [--quick]

Target: p_{t_min} of a 2D two-component Gaussian mixture under the VP process (exact scores). For every
integrator (Euler–Maruyama reverse SDE, predictor–corrector, PF-ODE with diffrax Heun, DEIS orders 0-3,
adaptive SDE) the table gives NFE per sample, exact W2 of the pooled draws to fresh exact draws, and the
noise floor (W2 between two exact samples of the same size). "order (W2)" is the fitted log-log slope of
the excess sqrt(W2^2 - floor^2) on the points whose W2 is above 1.5x the floor (n/a when fewer than two);
for the deterministic solvers "order (path)" is the slope, in the step count (DEIS's RK4 start-up adds a
constant NFE), of the RMS error of the same prior draws (every run uses one seed) against a tight diffrax
Tsit5 solve (rtol = atol = 1e-10), free of sampling noise. By the synchronous coupling (same prior draw)
the path RMS error bounds W2(solver's output law, exact flow's output law), so its slope is the PF-ODE /
DEIS W2 convergence rate (W2 to exact draws at n points cannot resolve errors below its noise floor).
Then DEIS at 10 NFE against Euler–Maruyama at 1,000 NFE. If benchmarks/diffusion_learned.py exists
(learned samplers), its main(quick) runs after.
"""

from __future__ import annotations

import argparse
import importlib.util
import pathlib
import sys
import time

import jax
import numpy as np

jax.config.update("jax_enable_x64", True)

import samplax  # noqa: E402
from samplax.diagnostics.wasserstein import distance, noise_floor  # noqa: E402
from samplax.diffusion import ScoreModel  # noqa: E402

# (a mixture of narrow, far-apart modes was tried: its W2 noise floor, set by mode-weight noise, was 3x larger)
MODEL = ScoreModel.gaussian_mixture([0.3, 0.7], [[-2.0, 0.0], [1.5, 1.0]], [0.3, 0.5])


def ladders(quick: bool):
    if quick:
        return {
            "reverse_sde": [("reverse_sde", dict(num_steps=k)) for k in (10, 30, 100)],
            "pc": [("pc", dict(num_steps=k)) for k in (10, 50)],
            "pf_ode (heun)": [("pf_ode", dict(num_steps=k, log_prob=False)) for k in (5, 15, 50)],
            **{f"deis order {r}": [("deis", dict(num_steps=k, order=r)) for k in (10, 20)] for r in range(4)},
            "adaptive_sde": [("adaptive_sde", dict(tol=t)) for t in (0.1, 0.02)],
        }
    return {
        "reverse_sde": [("reverse_sde", dict(num_steps=k)) for k in (10, 20, 50, 100, 200, 500, 1000)],
        "pc": [("pc", dict(num_steps=k)) for k in (5, 10, 25, 50, 100, 250)],
        "pf_ode (heun)": [("pf_ode", dict(num_steps=k, log_prob=False)) for k in (3, 5, 10, 25, 50, 100)],
        **{f"deis order {r}": [("deis", dict(num_steps=k, order=r)) for k in (5, 7, 10, 14, 20, 40)]
           for r in range(4)},
        "adaptive_sde": [("adaptive_sde", dict(tol=t)) for t in (0.2, 0.1, 0.05, 0.02, 0.01, 0.005)],
    }


def _draws(dt):
    return np.asarray(dt["posterior"]["x"]).reshape(-1, 2)


def _slope(x, y):
    return float(np.polyfit(np.log(x), np.log(y), 1)[0]) if len(x) >= 2 else float("nan")


def main(quick: bool = False):
    t_start = time.perf_counter()
    n_chains, n_part = 2, (500 if quick else 1000)
    n = n_chains * n_part
    target = MODEL.as_target()
    floor = noise_floor(target, n, method="exact", reps=5, seed=1)
    ref_exact = np.asarray(target.sample(jax.random.PRNGKey(99), n))
    seed = 3  # one seed for every run: the same prior draws, so deterministic solvers are compared path by path
    ref_path = _draws(samplax.sample(MODEL, "pf_ode", num_particles=n_part, num_chains=n_chains, seed=seed,
                                     progress=False, solver="tsit5", rtol=1e-10, atol=1e-10, log_prob=False,
                                     max_steps=100_000))
    print(f"2D Gaussian mixture (VP process), {n} draws per run; exact-W2 noise floor {floor.mean:.4f} "
          f"+- {floor.std:.4f}\n")
    print(f"{'sampler':<16}{'setting':<16}{'NFE/sample':>11}{'W2':>9}{'W2/floor':>10}{'path err':>11}")
    orders = {}
    for label, runs in ladders(quick).items():
        nfe, w2, path, steps = [], [], [], []
        for name, kw in runs:
            steps.append(kw.get("num_steps", np.nan))
            dt = samplax.sample(MODEL, name, num_particles=n_part, num_chains=n_chains, seed=seed, progress=False,
                                **kw)
            nfe.append(dt.attrs["n_grad_sampling"] / n)
            w2.append(float(distance(_draws(dt), ref_exact, "exact")))
            err = float("nan")
            if name in ("deis", "pf_ode"):
                err = float(np.sqrt(np.mean((_draws(dt) - ref_path) ** 2)))
            path.append(err)
            setting = ", ".join(f"{k}={v}" for k, v in kw.items() if k not in ("log_prob", "order"))
            print(f"{label:<16}{setting:<16}{nfe[-1]:>11.1f}{w2[-1]:>9.4f}{w2[-1] / floor.mean:>10.2f}{err:>11.2e}")
        nfe, w2, path, steps = map(np.asarray, (nfe, w2, path, steps))
        above = w2 > 1.5 * floor.mean
        excess = np.sqrt(np.maximum(w2 ** 2 - floor.mean ** 2, 1e-300))
        orders[label] = (-_slope(nfe[above], excess[above]) if above.sum() >= 2 else float("nan"),
                         -_slope(steps, path) if np.all(np.isfinite(path)) else float("nan"))
    print(f"\n{'sampler':<16}{'order (W2)':>12}{'order (path)':>14}   (expected: EM weak 1, Heun 2, DEIS r: r+1)")
    for label, (ow, op) in orders.items():
        print(f"{label:<16}{ow:>12.2f}{op:>14.2f}")

    print("\nDEIS at 10 NFE vs Euler-Maruyama at 1,000 NFE")
    for name, kw in (("deis", dict(num_steps=10, order=2, startup="lower_order")), ("deis", dict(num_steps=10, order=3,
                     startup="lower_order")), ("reverse_sde", dict(num_steps=1000))):
        dt = samplax.sample(MODEL, name, num_particles=n_part, num_chains=n_chains, seed=50, progress=False, **kw)
        w = float(distance(_draws(dt), ref_exact, "exact"))
        print(f"  {name:<12}{str(kw):<55} NFE/sample {dt.attrs['n_grad_sampling'] / n:>7.0f}  W2 {w:.4f} "
              f"({w / floor.mean:.2f} x floor)")
    print(f"\ntotal {time.perf_counter() - t_start:.0f} s")

    learned = pathlib.Path(__file__).with_name("diffusion_learned.py")
    if learned.exists():
        spec = importlib.util.spec_from_file_location("diffusion_learned", learned)
        mod = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = mod  # its dataclasses resolve their (string) annotations through sys.modules
        spec.loader.exec_module(mod)
        print("\n=== learned diffusion samplers (benchmarks/diffusion_learned.py) ===")
        # --quick as that script runs it alone: its targets in two processes (diffusion_learned's docstring)
        mod.main(quick, jobs=2, argv=["--quick"]) if quick else mod.main(quick)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small ladders (< 3 min on 2 cores)")
    main(parser.parse_args().quick)
