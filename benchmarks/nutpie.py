"""samplax `nuts` (its default metric, "low_rank"; `samplax_diag`: Stan's windows) against nutpie (PyMC models,
Rust NUTS, `adaptation="low_rank"`), side by side.

Needs the benchmark extra: `pip install -e '.[bench]'` (pymc, nutpie). The same models are written here in PyMC and
taken from samplax's ports (posteriordb's Stan models) for samplax:

  eight_schools     eight schools non-centred (posteriordb reference draws)
  diamonds          brms regression, 26 correlated parameters (posteriordb)
  gp_pois_regr      latent GP with Poisson counts (posteriordb)
  kidscore_momiq    regression, flat coefficients, half-Cauchy scale (posteriordb)
  gauss100          N(m, S) in 100 dims, condition number 100, dense correlation (rotated); exact moments
  funnel            Neal's funnel, non-centred (v ~ N(0, 3), z ~ N(0, I_9)); exact moments

Each (sampler, model) runs in fresh Python processes, 4 chains x (1000 warmup + 1000 draws), float64:
"cold" on empty compilation caches (samplax: XDG_CACHE_HOME; nutpie: PYTENSOR_FLAGS compiledir and
NUMBA_CACHE_DIR, all in a new temporary directory), then "disk", a second process on those caches. Reported:
ESS per 1k sampling gradients (min bulk ESS over every coordinate of the reference's variables / leapfrog steps
after warmup), end-to-end ESS/s (min ESS / the process's wall time from its first line: imports, model build,
compile, warmup, sampling), and the worst |mean - reference mean| / reference sd over those coordinates.

    .venv/bin/python benchmarks/nutpie.py            # all six models (~30 min on 2 cores)
    .venv/bin/python benchmarks/nutpie.py --quick    # eight_schools and diamonds
    .venv/bin/python benchmarks/nutpie.py --models gauss100,funnel --samplers samplax
    .venv/bin/python benchmarks/nutpie.py --models funnel --seeds 1,2,3,4,5   # ESS / 1k grad over seeds

With `--seeds`, each (sampler, model) runs once per seed (one cache, so every process after the first loads its
programs from disk) and the table gives ESS per 1k gradients per seed, their mean with its standard error, and
the ratio of means to nutpie with a delta-method standard error: one seed's min ESS is a noisy number (on
gp_pois_regr one seed gave 1.12x, another 0.76x).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

# this file is named nutpie.py: its folder must not shadow the nutpie package
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]

MODELS = ["eight_schools", "diamonds", "gp_pois_regr", "kidscore_momiq", "gauss100", "funnel"]
QUICK = ["eight_schools", "diamonds"]
SAMPLERS = ["samplax", "samplax_diag", "nutpie"]  # samplax: `nuts` with its default metric ("low_rank")
# samplax variants: `nuts` settings (samplax_low_rank names the default explicitly, as in older tables)
VARIANTS = {"samplax": {}, "samplax_no_jitter": {"step_jitter": 0.0}, "samplax_low_rank": {"metric": "low_rank"}, "samplax_diag": {"metric": "diag"}}
SAMPLAX_PORT = {"eight_schools": "eight_schools_noncentered", "diamonds": "diamonds", "gp_pois_regr": "gp_pois_regr",
                "kidscore_momiq": "kidscore_momiq"}


# ------------------------------------------------------------------------------------------------- in the worker
def _gauss100():
    import samplax

    t = samplax.models.get("gaussian", dim=100, condition_number=100.0, rotate=True, seed=0)
    return t


def _funnel_logdensity(x):
    import jax.numpy as jnp

    return -0.5 * (x[0] / 3.0) ** 2 - 0.5 * jnp.sum(x[1:] ** 2)


def reference(model):
    """{name: (mean, sd)} flat arrays: posteriordb's reference draws, or exact moments."""
    import numpy as np

    if model in SAMPLAX_PORT:
        import samplax

        ref = samplax.models.get(SAMPLAX_PORT[model]).reference_draws
        out = {}
        for k, v in ref.items():
            v = np.asarray(v, float).reshape(len(v), -1)
            out[k] = (v.mean(0), v.std(0))
        return out
    if model == "gauss100":
        t = _gauss100()
        return {"x": (np.asarray(t.mean), np.sqrt(np.diag(np.asarray(t.cov))))}
    return {"x": (np.zeros(10), np.concatenate([[3.0], np.ones(9)]))}


def pymc_model(model):
    import numpy as np
    import pymc as pm
    import pytensor.tensor as pt

    from samplax.models.posteriordb import load_data

    with pm.Model() as m:
        if model == "eight_schools":
            d = load_data("eight_schools")
            y, sigma = np.asarray(d["y"], float), np.asarray(d["sigma"], float)
            mu = pm.Normal("mu", 0.0, 5.0)
            tau = pm.HalfCauchy("tau", 5.0)
            theta_tilde = pm.Normal("theta_tilde", 0.0, 1.0, shape=len(y))
            theta = pm.Deterministic("theta", mu + tau * theta_tilde)
            pm.Normal("y", theta, sigma, observed=y)
        elif model == "diamonds":
            d = load_data("diamonds")
            X = np.asarray(d["X"], float)
            means_X = X[:, 1:].mean(axis=0)
            Xc = X[:, 1:] - means_X
            b = pm.Normal("b", 0.0, 1.0, shape=Xc.shape[1])
            intercept = pm.StudentT("Intercept", nu=3.0, mu=8.0, sigma=10.0)
            sigma = pm.HalfStudentT("sigma", nu=3.0, sigma=10.0)
            pm.Deterministic("b_Intercept", intercept - pt.dot(means_X, b))
            pm.Normal("Y", intercept + pt.dot(Xc, b), sigma, observed=np.asarray(d["Y"], float))
        elif model == "gp_pois_regr":
            d = load_data("gp_pois_regr")
            x, k = np.asarray(d["x"], float), np.asarray(d["k"])
            n = len(x)
            rho = pm.Gamma("rho", alpha=25.0, beta=4.0)
            alpha = pm.HalfNormal("alpha", 2.0)
            f_tilde = pm.Normal("f_tilde", 0.0, 1.0, shape=n)
            cov = alpha**2 * pt.exp(-0.5 * (x[:, None] - x[None, :]) ** 2 / rho**2) + 1e-10 * np.eye(n)
            f = pm.Deterministic("f", pt.dot(pt.linalg.cholesky(cov), f_tilde))
            pm.Poisson("k", pt.exp(f), observed=k)
        elif model == "kidscore_momiq":
            d = load_data("kidiq")
            X = np.stack([np.ones(len(d["mom_iq"])), np.asarray(d["mom_iq"], float)], axis=1)
            beta = pm.Flat("beta", shape=2)
            sigma = pm.HalfCauchy("sigma", 2.5)
            pm.Normal("y", pt.dot(X, beta), sigma, observed=np.asarray(d["kid_score"], float))
        elif model == "gauss100":
            t = _gauss100()
            chol = np.linalg.cholesky(np.asarray(t.cov))
            pm.MvNormal("x", mu=np.asarray(t.mean), chol=chol)
        elif model == "funnel":
            v = pm.Normal("v", 0.0, 3.0)
            z = pm.Normal("z", 0.0, 1.0, shape=9)
            pm.Deterministic("x", pt.concatenate([v[None], z]))
        else:
            raise ValueError(model)
    return m


def samplax_target(model):
    import samplax
    from samplax import Target

    if model in SAMPLAX_PORT:
        return samplax.models.get(SAMPLAX_PORT[model])
    if model == "gauss100":
        return _gauss100()
    return Target.from_logdensity(_funnel_logdensity, 10, name="funnel_noncentred")


def worker(sampler, model, seed):
    t_start = time.perf_counter()
    import numpy as np
    from arviz_stats import ess

    draws = {}
    if sampler.startswith("samplax"):
        import jax

        jax.config.update("jax_enable_x64", True)
        import samplax

        target = samplax_target(model)
        settings = VARIANTS[sampler]
        dt = samplax.sample(target, "nuts", num_chains=4, num_warmup=1000, num_samples=1000, seed=seed,
                            progress=False, **settings)
        n_grad, n_grad_warmup = float(dt.attrs["n_grad_sampling"]), float(dt.attrs["n_grad_warmup"])
        post = dt.posterior
        extra = {"metric": samplax.samplers.get("nuts", **settings).settings.get("metric"),
                 "divergences": int(np.asarray(dt.sample_stats["diverging"]).sum())}
    else:
        import nutpie

        compiled = nutpie.compile_pymc_model(pymc_model(model))
        res = nutpie.sample(compiled, draws=1000, tune=1000, chains=4, seed=seed, progress_bar=False,
                            adaptation="low_rank")
        post = res.posterior
        n_grad = float(np.asarray(res.sample_stats["n_steps"]).sum())
        n_grad_warmup = (float(np.asarray(res.warmup_sample_stats["n_steps"]).sum())
                         if "warmup_sample_stats" in res.children else float("nan"))
        extra = {"divergences": int(np.asarray(res.sample_stats["diverging"]).sum())}
    ref = reference(model)
    wall = time.perf_counter() - t_start
    min_ess, worst = np.inf, 0.0
    for name, (m, sd) in ref.items():
        a = np.asarray(post[name], float)
        a = a.reshape(a.shape[0], a.shape[1], -1)
        draws[name] = a
        min_ess = min(min_ess, float(np.min(ess(a, method="bulk", chain_axis=0, draw_axis=1))))
        worst = max(worst, float(np.max(np.abs(a.mean(axis=(0, 1)) - m) / sd)))
    print("RESULT " + json.dumps({"sampler": sampler, "model": model, "wall": wall, "min_ess": min_ess,
                                  "n_grad": n_grad, "n_grad_warmup": n_grad_warmup, "worst_mean_err_sd": worst,
                                  **extra}), flush=True)


# ------------------------------------------------------------------------------------------------- the driver
def run_one(sampler, model, cache, seed):
    env = dict(os.environ, XDG_CACHE_HOME=os.path.join(cache, "xdg"), NUMBA_CACHE_DIR=os.path.join(cache, "numba"),
               PYTENSOR_FLAGS=f"compiledir={os.path.join(cache, 'pytensor')}")
    out = subprocess.run([sys.executable, __file__, "--worker", sampler, model, str(seed)], env=env,
                         capture_output=True, text=True)
    for line in out.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise RuntimeError(f"{sampler} on {model} failed:\n{out.stderr[-3000:]}")


def over_seeds(models, samplers, seeds):
    """ESS per 1k sampling gradients for each seed, mean +- se, and the ratio of means to nutpie."""
    import numpy as np

    t0 = time.time()
    per = {}
    for model in models:
        for sampler in samplers:
            with tempfile.TemporaryDirectory() as cache:
                for seed in seeds:
                    r = run_one(sampler, model, cache, seed)
                    per.setdefault((model, sampler), []).append(r)
                    print(f"  {model:15s} {sampler:8s} seed {seed}: {1000 * r['min_ess'] / r['n_grad']:7.1f} ESS/1k grad"
                          f"  minESS {r['min_ess']:7.0f} div {r.get('divergences', -1)} err "
                          f"{r['worst_mean_err_sd']:.3f} sd  [{time.time() - t0:.0f}s]", flush=True)
    print()
    print(f"seeds {seeds}; ESS / 1k grad per seed, mean +- se; ratio of means to nutpie +- se (delta method)")
    print("| model | sampler | ESS / 1k grad per seed | mean +- se | ratio | divergences per seed |")
    print("|---|---|---|---|---|---|")
    for model in models:
        vals = {s: np.array([1000 * r["min_ess"] / r["n_grad"] for r in per[model, s]]) for s in samplers}
        base = vals.get("nutpie")
        for sampler in samplers:
            v = vals[sampler]
            m, se = v.mean(), v.std(ddof=1) / np.sqrt(len(v)) if len(v) > 1 else float("nan")
            ratio = ""
            if base is not None:
                bm = base.mean()
                bse = base.std(ddof=1) / np.sqrt(len(base)) if len(base) > 1 else float("nan")
                q = m / bm
                ratio = f"{q:.2f}x +- {q * np.sqrt((se / m) ** 2 + (bse / bm) ** 2):.2f}"
            divs = ", ".join(str(r.get("divergences", "?")) for r in per[model, sampler])
            print(f"| {model} | {sampler} | {', '.join(f'{x:.0f}' for x in v)} | {m:.0f} +- {se:.0f} | {ratio} | {divs} |")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--worker", nargs=3, metavar=("SAMPLER", "MODEL", "SEED"))
    p.add_argument("--quick", action="store_true")
    p.add_argument("--models", default=None)
    p.add_argument("--samplers", default=",".join(SAMPLERS))
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--seeds", default=None, help="comma-separated seeds: ESS per 1k gradients over seeds")
    a = p.parse_args()
    if a.worker:
        return worker(a.worker[0], a.worker[1], int(a.worker[2]))
    models = a.models.split(",") if a.models else (QUICK if a.quick else MODELS)
    samplers = a.samplers.split(",")
    if a.seeds:
        return over_seeds(models, samplers, [int(s) for s in a.seeds.split(",")])
    rows = {}
    t0 = time.time()
    for model in models:
        for sampler in samplers:
            with tempfile.TemporaryDirectory() as cache:
                cold = run_one(sampler, model, cache, a.seed)
                disk = run_one(sampler, model, cache, a.seed)
            rows[model, sampler] = (cold, disk)
            print(f"  {model:15s} {sampler:8s} cold {cold['wall']:6.1f}s disk {disk['wall']:6.1f}s "
                  f"minESS {disk['min_ess']:7.0f} grads {disk['n_grad']:9.0f} err {disk['worst_mean_err_sd']:.3f} sd"
                  f"  [{time.time() - t0:.0f}s]", flush=True)
    print()
    print("| model | sampler | ESS / 1k grad | ratio | ESS/s cold | ratio | ESS/s disk | ratio | worst mean err (sd) |"
          " min ESS | sampling grads | warmup grads |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for model in models:
        base = rows.get((model, "nutpie"))
        for sampler in samplers:
            cold, disk = rows[model, sampler]
            per_grad = 1000 * disk["min_ess"] / disk["n_grad"]
            cold_s, disk_s = cold["min_ess"] / cold["wall"], disk["min_ess"] / disk["wall"]
            if base:
                b_grad = 1000 * base[1]["min_ess"] / base[1]["n_grad"]
                b_cold, b_disk = base[0]["min_ess"] / base[0]["wall"], base[1]["min_ess"] / base[1]["wall"]
                r = [f"{per_grad / b_grad:.2f}x", f"{cold_s / b_cold:.2f}x", f"{disk_s / b_disk:.2f}x"]
            else:
                r = ["", "", ""]
            print(f"| {model} | {sampler} | {per_grad:.0f} | {r[0]} | {cold_s:.0f} | {r[1]} | {disk_s:.0f} | {r[2]} | "
                  f"{max(cold['worst_mean_err_sd'], disk['worst_mean_err_sd']):.3f} | {disk['min_ess']:.0f} | "
                  f"{disk['n_grad']:.0f} | {disk['n_grad_warmup']:.0f} |")


if __name__ == "__main__":
    main()
