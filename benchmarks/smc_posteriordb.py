"""smc (4 populations, seed 0) on one posteriordb port vs its reference draws: worst |z| of means and sds
(samplax.diagnostics.reference.reference_z: error / combined MCSE), sd ratio range, log Z with its SE, stages,
sweeps per stage, warnings raised.

    .venv/bin/python benchmarks/smc_posteriordb.py MODEL [N=2000] ['{"reference": "auto"}']
"""
import json, sys, time, warnings
import jax
jax.config.update("jax_enable_x64", True)
import numpy as np
import samplax
from samplax.diagnostics.reference import reference_z

name = sys.argv[1]
n = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
settings = json.loads(sys.argv[3]) if len(sys.argv) > 3 else {}
t = samplax.models.get(name)
t0 = time.time()
with warnings.catch_warnings(record=True) as w:
    warnings.simplefilter("always")
    dt = samplax.sample(t, "smc", num_particles=n, num_chains=4, seed=0, progress=False, **settings)
wall = time.time() - t0
z = reference_z(dt, t.reference_draws)
ss = dt["stage_stats"]; a = ss["active"].values
ratio = (z["sd"] / z["ref_sd"]).astype(float)
msgs = [str(x.message).split("\n")[0][:150] for x in w if issubclass(x.category, RuntimeWarning)]
print(f"{name:26} N={n} {settings} max|z_mean| {np.abs(z['z_mean']).max():5.2f} max|z_sd| {np.abs(z['z_sd']).max():5.2f} "
      f"sd ratio {ratio.min():.3f}-{ratio.max():.3f} logZ {dt.attrs['log_z']:.3f} se {dt.attrs['log_z_se']:.3f} "
      f"(between {dt.attrs['log_z_se_between']:.3f}) stages {a.sum(1).mean():.1f} sweeps/stage {ss['n_steps'].values[a].mean():.1f} "
      f"max {ss['n_steps'].values[a].max()} grads {dt.attrs['n_grad_sampling']/4:.3g} nonfinite {int(ss['n_nonfinite'].values.sum())} "
      f"wall {wall:.0f}s warnings {len(msgs)}", flush=True)
for m in msgs:
    print("   warn:", m)
worst = z.assign(a=np.abs(z["z_mean"].astype(float))).sort_values("a").tail(3)
print(worst[["mean", "ref_mean", "z_mean", "sd", "ref_sd", "z_sd"]].to_string())
