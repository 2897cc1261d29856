"""Log-density evaluations per effective draw vs dimension: GPSS against elliptical slice sampling and RWM.

The claim of Schär, Habeck & Rudolf (ICML 2023, arXiv 2302.03945) checked here: Gibbsian polar slice sampling
degrades far more slowly with the dimension than the gradient-free samplers a user would pick instead.

Target: the d-dimensional Student-t with NU = 5 degrees of freedom (identity scale, centred at 0), heavy-tailed
and not Gaussian, so elliptical slice sampling's Gaussian "prior" does not absorb it. Every sampler is handed the
same oracle knowledge (centre 0, marginal variance NU / (NU - 2)) and nothing else:
- gpss (samplax): centre 0 and scale 1 given; its one parameter w (radius search width) adapted in a warmup of
  WARMUP steps (not counted);
- ess (blackjax.elliptical_slice): prior N(0, v I) with v the marginal variance, likelihood p / prior; its count
  is blackjax's `subiter` (one log-likelihood evaluation per ellipse proposal);
- rwm (blackjax.additive_step_random_walk.normal_random_walk): sigma = 2.38 sqrt(v / d), the optimal scaling of
  Roberts, Gelman & Gilks (1997); one evaluation per step.
Effective draws: bulk ESS (arviz-stats, CHAINS chains) of two summaries, the first coordinate x_1 and the log
squared radius log |x|^2 (the slow direction of RWM on heavy tails); evals / ESS is reported for each, and the
table's ratios are against gpss. Chains start at draws from the target (no burn-in bias).

    .venv/bin/python benchmarks/gpss_dimension.py [--quick] [--dims 10 100 ...] [--seed S]
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

jax.config.update("jax_enable_x64", True)

import blackjax  # noqa: E402
from arviz_stats import ess as az_ess  # noqa: E402

from samplax.samplers import gpss as gp  # noqa: E402
from samplax.target import Target  # noqa: E402

NU = 5.0
CHAINS = 4
WARMUP = 500
TARGET_ESS = 400  # steps are chosen (from a pilot guess) to give roughly this many effective draws


def logp_t(d):
    return lambda x: -0.5 * (NU + d) * jnp.log1p(jnp.sum(x**2) / NU)


def draw_t(key, n, d):
    k1, k2 = jax.random.split(key)
    z = jax.random.normal(k1, (n, d))
    g = jax.random.gamma(k2, NU / 2, (n,)) / (NU / 2)
    return z / jnp.sqrt(g)[:, None]


def _summaries(x):
    return jnp.stack([x[0], jnp.log(jnp.sum(x**2))])


def _chains(step, init_state, keys, n):
    """Scan `step` n times per chain (vmapped); keep the two summaries and the evaluations of every step."""

    def one(state, key):
        state, nev = step(key, state)
        return state, (_summaries(state.position), nev)

    def chain(state, key):
        _, (s, nev) = jax.lax.scan(one, state, jax.random.split(key, n))
        return s, nev

    return jax.jit(jax.vmap(chain))(init_state, keys)


def run_gpss(d, key, n):
    lp = logp_t(d)
    t = Target.from_logdensity(lp, d)
    s = gp.gpss(center=0.0, scale=1.0)
    k0, k1, k2 = jax.random.split(key, 3)
    x0 = draw_t(k0, CHAINS, d)
    warm = jax.jit(jax.vmap(lambda k, x: s.warmup(t, k, x, WARMUP)))(jax.random.split(k1, CHAINS), x0)
    w = warm.params["w"]

    def make_step(wi):
        def step(key, state):
            new, info = gp.kernel(key, state, lp, wi, jnp.zeros(d), jnp.ones(d))
            return new, info.n_logp
        return step

    def chain(state, key, wi):
        step = make_step(wi)

        def one(st, k):
            st, nev = step(k, st)
            return st, (_summaries(st.position), nev)

        _, (sm, nev) = jax.lax.scan(one, state, jax.random.split(key, n))
        return sm, nev

    return jax.jit(jax.vmap(chain))(warm.state, jax.random.split(k2, CHAINS), w)


def run_ess(d, key, n):
    lp, v = logp_t(d), NU / (NU - 2)
    loglik = lambda x: lp(x) + 0.5 * jnp.sum(x**2) / v  # noqa: E731  (p / N(0, v I), constants dropped)
    alg = blackjax.elliptical_slice(loglik, mean=jnp.zeros(d), cov=jnp.full(d, v))
    k0, k1 = jax.random.split(key)
    init = jax.vmap(alg.init)(draw_t(k0, CHAINS, d))

    def step(key, state):
        new, info = alg.step(key, state)
        return new, info.subiter

    return _chains(step, init, jax.random.split(k1, CHAINS), n)


def run_rwm(d, key, n):
    lp, v = logp_t(d), NU / (NU - 2)
    alg = blackjax.additive_step_random_walk.normal_random_walk(lp, jnp.full(d, 2.38 * np.sqrt(v / d)))
    k0, k1 = jax.random.split(key)
    init = jax.vmap(alg.init)(draw_t(k0, CHAINS, d))

    def step(key, state):
        new, _ = alg.step(key, state)
        return new, jnp.asarray(1)

    return _chains(step, init, jax.random.split(k1, CHAINS), n)


RUNNERS = {"gpss": run_gpss, "ess": run_ess, "rwm": run_rwm}


def steps_for(name, d, quick):
    """Chain length: enough for ~TARGET_ESS effective draws by a rough pilot guess of ESS per step."""
    per_step = {"gpss": 0.5, "ess": 0.6 / d, "rwm": 1.0 / d**2}[name]  # of log|x|^2, from --quick runs
    n = int(TARGET_ESS / CHAINS / per_step)
    return int(np.clip(n, 1000, 50_000 if quick else 200_000))


def measure(name, d, seed, quick):
    n = steps_for(name, d, quick)
    key = jax.random.fold_in(jax.random.PRNGKey(seed), d * 10 + list(RUNNERS).index(name))
    t0 = time.perf_counter()
    s, nev = RUNNERS[name](d, key, n)
    s, nev = np.asarray(s), np.asarray(nev)
    ess = np.asarray(az_ess(s, method="bulk", chain_axis=0, draw_axis=1))  # (2,)
    evals = float(nev.sum())
    return {"sampler": name, "d": d, "steps": n, "evals_per_step": evals / nev.size, "ess_x1": float(ess[0]),
            "ess_r": float(ess[1]), "per_ess_x1": evals / ess[0], "per_ess_r": evals / ess[1],
            "seconds": time.perf_counter() - t0}


def table(rows):
    dims = sorted({r["d"] for r in rows})
    by = {(r["sampler"], r["d"]): r for r in rows}
    lines = ["log-density evaluations per effective draw (x_1 | log|x|^2), Student-t nu=5; ratio = sampler / gpss",
             f"{'d':>5s} {'gpss':>19s} {'ess':>19s} {'rwm':>19s} {'ess/gpss':>17s} {'rwm/gpss':>17s} "
             f"{'gpss evals/step':>15s}"]
    for d in dims:
        g, e, r = by[("gpss", d)], by[("ess", d)], by[("rwm", d)]
        cell = lambda x: f"{x['per_ess_x1']:8.4g} | {x['per_ess_r']:8.4g}"  # noqa: E731
        ratio = lambda x: f"{x['per_ess_x1'] / g['per_ess_x1']:7.3g} | {x['per_ess_r'] / g['per_ess_r']:7.3g}"  # noqa
        lines.append(f"{d:5d} {cell(g):>19s} {cell(e):>19s} {cell(r):>19s} {ratio(e):>17s} {ratio(r):>17s} "
                     f"{g['evals_per_step']:15.2f}")
    lines.append("")
    lines.append("growth from the smallest to the largest d (evals per ESS of log|x|^2): " + ", ".join(
        f"{s} x{by[(s, dims[-1])]['per_ess_r'] / by[(s, dims[0])]['per_ess_r']:.1f}" for s in RUNNERS))
    lines.append("min ESS in any cell: " + f"{min(min(r['ess_x1'], r['ess_r']) for r in rows):.0f}"
                 " (cells below ~100 effective draws are rough)")
    return "\n".join(lines)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="d = 10, 30, 100 (about a minute)")
    p.add_argument("--dims", type=int, nargs="+", default=None)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    dims = args.dims or ([10, 30, 100] if args.quick else [10, 30, 100, 300, 1000])
    rows = []
    for d in dims:
        for name in RUNNERS:
            r = measure(name, d, args.seed, args.quick)
            rows.append(r)
            print(f"  {name:5s} d={d:5d}: {r['steps']:6d} steps x {CHAINS}, {r['evals_per_step']:6.2f} evals/step, "
                  f"ESS x1 {r['ess_x1']:7.0f}, ESS log r^2 {r['ess_r']:7.0f}, {r['seconds']:.1f}s", flush=True)
    print()
    print(table(rows))


if __name__ == "__main__":
    main()
