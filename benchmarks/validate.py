"""The validation matrix: every adaptive sampler on every posteriordb port, each cell recovered, warned or WRONG.

A cell is
  recovered  every mean and sd within 5 combined MCSE (run and reference) of posteriordb's reference draws and
             the pooled sliced W2 within the bound tests/test_posteriordb.py uses
             (max(1.5 x floor mean, floor mean + 4 floor sd) at the run's effective size, the smaller of bulk
             and tail ESS);
  warned     the run itself raised the trust warning at the end of sample() (whether or not it was right);
  WRONG      neither: a wrong answer given silently. The goal is no WRONG cell.
  error      the run raised (the message is printed).
A run that raised the warning and is also within the bounds is shown as "warned (ok)".

Population samplers (smc) have no chain MCSE: the SE of a mean is the larger of the spread of the population means
over sqrt(populations) and sd / sqrt(particles); their effective size for the W2 bound is sd^2 / SE^2.

    .venv/bin/python benchmarks/validate.py                  # the full matrix (8 samplers x 12 posteriors)
    .venv/bin/python benchmarks/validate.py --quick          # 4 x (300 + 300), a few ports
    .venv/bin/python benchmarks/validate.py --samplers nuts,smc --posteriors blr,diamonds --seed 1
    .venv/bin/python benchmarks/validate.py --samplers pis,dds,cmcd,scld,nets   # the learned samplers (trained)
    .venv/bin/python benchmarks/validate.py --samplers pis_stl,dds_stl          # PIS / DDS with train(stl=True)
"""

from __future__ import annotations

import argparse
import time
import warnings

import jax
import numpy as np

jax.config.update("jax_enable_x64", True)

import samplax  # noqa: E402
from samplax.diagnostics import summary, wasserstein  # noqa: E402
from samplax.diagnostics.mixing import gradient_count  # noqa: E402
from samplax.diagnostics.population import is_population  # noqa: E402
from samplax.diagnostics.reference import population_reference_z, reference_z  # noqa: E402
from samplax.diagnostics.wasserstein import noise_floor  # noqa: E402
from samplax.models.posteriordb import PORTS  # noqa: E402

ALL = sorted(PORTS) + ["eight_schools_noncentered", "eight_schools_centered"]
QUICK = ["eight_schools_noncentered", "gp_pois_regr", "kidscore_momiq", "logmesquite"]
SAMPLERS = {  # name -> (sampler, settings): each with its adaptive default
    "nuts": ("nuts", {}), "hmc": ("hmc", {}), "mclmc": ("mclmc", {}), "mams": ("mams", {}), "mala": ("mala", {}),
    "underdamped_adj": ("underdamped", {"adjusted": True}), "secd": ("secd", {}), "smc": ("smc", {}),
}
# learned samplers (issue 21): trained per posterior in the coordinates of the automatic reference (reference="auto":
# from the origin most ports fail at the first iteration or end with degenerate weights), K = 32 steps, 150
# iterations x batch 128, then LEARNED_POPULATIONS populations x --particles; only when named
# (--samplers pis,dds,cmcd,scld,nets). 16 populations, not 4: a population's mean has no MCSE, its SE comes from the
# spread of the population means, and with 4 (3 degrees of freedom) that spread is often 2x too small (dds on eight
# schools (nc), seed 0: tau's SE 0.042 from 4 populations, 0.084 from 16 of the same model; max |z| 5.6 -> 3.1)
# name -> (kind, loss, options); pis_stl / dds_stl: the same with the sticking-the-landing KL gradient (stl=True)
LEARNED = {"pis": ("pis", "kl", dict(lr_schedule="cosine", grad_clip_value=1.0)),
           "dds": ("dds", "kl", dict(lr_schedule="cosine", grad_clip_value=1.0, schedule="cosine")),
           "cmcd": ("cmcd", "log_variance", {}), "scld": ("scld", "log_variance", {}), "nets": ("nets", "pinn", {})}
LEARNED.update({f"{k}_stl": (k, "kl", dict(LEARNED[k][2], stl=True)) for k in ("pis", "dds")})
LEARNED_TRAIN = dict(num_steps=32, num_iterations=150, batch_size=128)
LEARNED_POPULATIONS = 16
Z_MAX = 5.0


def one(name, label, chains, warmup, draws, particles, seed=0) -> dict:
    sampler, settings = SAMPLERS[label] if label in SAMPLERS else (label, {})
    target = samplax.models.get(name)
    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if label in LEARNED:
            from samplax.diffusion.learned import train

            kind, loss, options = LEARNED[label]
            trained = train(target, kind, loss, reference="auto", seed=seed, progress=False, **LEARNED_TRAIN,
                            **options)
            dt = samplax.sample(target, trained, num_particles=particles, num_chains=max(chains, LEARNED_POPULATIONS),
                                seed=seed + 1, progress=False)
        elif sampler == "smc":
            dt = samplax.sample(target, sampler, num_particles=particles, num_chains=chains, seed=seed,
                                progress=False, **settings)
        else:
            dt = samplax.sample(target, sampler, num_chains=chains, num_warmup=warmup, num_samples=draws, seed=seed,
                                progress=False, **settings)
    wall = time.perf_counter() - t0
    warned = any(issubclass(w.category, RuntimeWarning) and "trust check" in str(w.message) for w in caught)
    if is_population(dt):
        zm, zs, n_eff = population_reference_z(dt, target.reference_draws)
    else:
        z = reference_z(dt, target.reference_draws)
        zm, zs = float(np.abs(z["z_mean"]).max()), float(np.abs(z["z_sd"]).max())
        tab = summary(dt)  # W2 judges the whole distribution: the tails' effective size counts too
        n_eff = int(min(tab["ess_bulk"].min(), tab["ess_tail"].min()))
    w = wasserstein(dt, target, method="sliced_qmc", per_chain=False, reps=5)
    n_eff = max(2, min(n_eff, w.pooled.n))
    floor = noise_floor(target, n_eff, method="sliced_qmc", reps=30, m=w.pooled.m, seed=7)
    bound = max(1.5 * floor.mean, floor.mean + 4 * floor.std)
    ok = bool(np.isfinite(zm) and zm < Z_MAX and zs < Z_MAX and float(w.pooled) <= bound)
    verdict = ("warned (ok)" if ok else "warned") if warned else ("recovered" if ok else "WRONG")
    grads = gradient_count(dt)  # a learned sampler's training gradients count too (config["n_grad_train"])
    if label in LEARNED:
        grads += int(trained.config["n_grad_train"])
    return {"posterior": name, "sampler": label, "verdict": verdict, "max|z| mean": zm, "max|z| sd": zs,
            "W2/bound": float(w.pooled) / bound, "n_eff": n_eff, "gradients": grads, "seconds": wall,
            "findings": " | ".join(f for f in str(dt.attrs.get("trust_findings", "")).split("\n") if f)[:160]}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--samplers", default=",".join(SAMPLERS))
    p.add_argument("--posteriors", default=None, help="comma-separated subset")
    p.add_argument("--warmup", type=int, default=None)
    p.add_argument("--draws", type=int, default=None)
    p.add_argument("--particles", type=int, default=2000)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    names = args.posteriors.split(",") if args.posteriors else (QUICK if args.quick else ALL)
    warmup = args.warmup or (300 if args.quick else 1000)
    draws = args.draws or (300 if args.quick else 1000)
    labels = args.samplers.split(",")
    t_all = time.perf_counter()
    rows = []
    for name in names:
        for label in labels:
            try:
                rows.append(one(name, label, 4, warmup, draws, args.particles, seed=args.seed))
            except Exception as err:  # noqa: BLE001 - a failing cell is a row, not the end of the table
                rows.append({"posterior": name, "sampler": label, "verdict": "error",
                             "findings": f"{type(err).__name__}: {err}"[:160]})
            r = rows[-1]
            print("  ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in r.items()), flush=True)
    import pandas as pd

    df = pd.DataFrame(rows)
    print()
    piv = df.pivot(index="posterior", columns="sampler", values="verdict").reindex(index=names, columns=labels)
    print("| posterior | " + " | ".join(labels) + " |")
    print("|---" * (len(labels) + 1) + "|")
    for name, row in piv.iterrows():
        print(f"| {name} | " + " | ".join(str(v) for v in row) + " |")
    with pd.option_context("display.width", 250, "display.max_colwidth", 60, "display.float_format", "{:.3g}".format):
        print()
        print(df.drop(columns=["findings"]).to_string(index=False))
    wrong = df[df["verdict"] == "WRONG"]
    print(f"\n{len(names)} posteriors x {len(labels)} samplers, 4 chains x ({warmup} + {draws}) or 4 populations "
          f"(learned: {LEARNED_POPULATIONS}) x {args.particles} particles, seed {args.seed}; {len(wrong)} WRONG "
          f"cell(s); total {time.perf_counter() - t_all:.0f} s")


if __name__ == "__main__":
    main()
