"""Cold and warm start: samplax `sample()` vs numpyro `MCMC(NUTS)`, side by side in one run.

Each "cold" figure is a fresh Python process doing what a script does: import, build the model,
compile, warm up, sample, and compute min bulk ESS (Target build / numpyro set-up included).
samplax's persistent compilation cache is on by default: "cold" is its first process on an empty cache
directory (a new machine, or a new model), "disk" a second fresh process on that directory (the next run
of the same script). numpyro runs with JAX's persistent cache off, its default.
"Warm" is the same call made a second time in a process (a notebook re-running a cell).
Models: eight schools (non-centred) and two posteriordb ports; NUTS, 4 chains, float64,
1000 warmup + 2000 draws (quick: 500 + 500). Interleaved seeds; the median of `--repeats` runs.

    .venv/bin/python benchmarks/cold_start.py [--quick] [--repeats 3] [--models eight_schools,...]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap

WORKER = textwrap.dedent('''
    import json, sys, time
    t_start = time.perf_counter()
    import jax
    jax.config.update("jax_enable_x64", True)
    import numpy as np
    import samplax
    from arviz_stats import ess
    which, model, warmup, draws, seed = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
    t_import = time.perf_counter() - t_start

    def min_ess(arr):  # (chain, draw, ...) -> min bulk ESS over coordinates
        arr = np.asarray(arr)
        arr = arr.reshape(arr.shape[0], arr.shape[1], -1)
        return float(np.min(ess(arr, method="bulk", chain_axis=0, draw_axis=1)))

    def run_samplax():
        t0 = time.perf_counter()
        target = samplax.models.get(model)
        t_build = time.perf_counter() - t0
        dt = samplax.sample(target, "nuts", num_chains=4, num_warmup=warmup, num_samples=draws, seed=seed,
                            progress=False)
        wall = time.perf_counter() - t0
        e = min(min_ess(dt.posterior[k].values) for k in dt.posterior.data_vars)
        return {"wall": wall, "build": t_build, "compile": float(dt.attrs["compile_time"]),
                "warmup": float(dt.attrs["warmup_time"]), "sampling": float(dt.attrs["sampling_time"]), "ess": e}

    def run_numpyro():
        from numpyro.infer import MCMC, NUTS
        t0 = time.perf_counter()
        target = samplax.models.get(model)  # the same numpyro model and data samplax ports
        fn, args, kw = target.info["model"], target.info["model_args"], target.info["model_kwargs"]
        t_build = time.perf_counter() - t0
        t0 = time.perf_counter()
        mcmc = MCMC(NUTS(fn), num_warmup=warmup, num_samples=draws, num_chains=4, chain_method="vectorized",
                    progress_bar=False)
        mcmc.run(jax.random.PRNGKey(seed), *args, **kw)
        samples = mcmc.get_samples(group_by_chain=True)
        jax.block_until_ready(samples)
        wall = time.perf_counter() - t0
        latent = [k for k in samples if k in target.var_shapes]
        e = min(min_ess(samples[k]) for k in latent)
        return {"wall": wall, "build": t_build, "ess": e}

    fn = run_samplax if which == "samplax" else run_numpyro
    cold = fn()
    warm = fn()
    print(json.dumps({"import": t_import, "cold": cold, "warm": warm}))
''')


def measure(which, model, warmup, draws, seed, cache):
    env = {**os.environ, "SAMPLAX_COMPILATION_CACHE": cache if which == "samplax" else "0"}
    out = subprocess.run([sys.executable, "-c", WORKER, which, model, str(warmup), str(draws), str(seed)],
                         capture_output=True, text=True, env=env)
    if out.returncode != 0:
        raise RuntimeError(f"{which} on {model} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--models", default="eight_schools_noncentered,kidscore_momiq,gp_pois_regr")
    args = p.parse_args(argv)
    warmup, draws = (500, 500) if args.quick else (1000, 2000)
    print(f"NUTS, 4 chains, float64, {warmup} warmup + {draws} draws; median of {args.repeats} fresh processes\n")
    header = (f"{'model':26s} {'phase':5s} {'numpyro s':>10s} {'samplax s':>10s} {'(build/compile/warm/samp)':>28s} "
              f"{'ESS/s np':>9s} {'ESS/s sx':>9s} {'ratio':>6s}")
    print(header)
    for model in args.models.split(","):
        res = {"numpyro": [], "samplax": []}
        for r in range(args.repeats):
            with tempfile.TemporaryDirectory() as cache:  # an empty persistent cache per repeat
                for which in (("numpyro", "samplax") if r % 2 == 0 else ("samplax", "numpyro")):  # interleaved
                    res[which].append(measure(which, model, warmup, draws, r, cache))
                    if which == "samplax":  # the same script again: a fresh process on the filled cache
                        res[which][-1]["disk"] = measure(which, model, warmup, draws, r, cache)["cold"]
        for phase in ("cold", "disk", "warm"):
            np_phase = "cold" if phase == "disk" else phase  # numpyro has no disk cache: its next script is cold

            def med(which, key, ph):
                return statistics.median(x[ph][key] for x in res[which])

            sx_wall, np_wall = med("samplax", "wall", phase), med("numpyro", "wall", np_phase)
            parts = "/".join(f"{med('samplax', k, phase):.1f}" for k in ("build", "compile", "warmup", "sampling"))
            sx_rate = statistics.median(x[phase]["ess"] / x[phase]["wall"] for x in res["samplax"])
            np_rate = statistics.median(x[np_phase]["ess"] / x[np_phase]["wall"] for x in res["numpyro"])
            print(f"{model:26s} {phase:5s} {np_wall:10.2f} {sx_wall:10.2f} {parts:>28s} {np_rate:9.1f} {sx_rate:9.1f} "
                  f"{sx_rate / np_rate:6.2f}")
    print("\nratio = samplax min-ESS/s over numpyro's (>1: samplax faster); wall includes the model build "
          "(numpyro: reading the same port's model and data) and excludes interpreter start and imports;\n"
          "cold = first fresh process (samplax: empty compilation cache), disk = the next fresh process "
          "(samplax: programs loaded from its cache; numpyro: cold again), warm = second call in a process.")


if __name__ == "__main__":
    main()
