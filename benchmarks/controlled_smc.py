"""CMCD and SCLD (samplax.diffusion.learned.cmcd) on Funnel-10d and ManyWell-32d: log Z error, time, gradients.

    .venv/bin/python benchmarks/controlled_smc.py --target funnel --kind cmcd --iters 1000
    .venv/bin/python benchmarks/controlled_smc.py --target many_well --kind scld --iters 500 --subtraj 4
    ... --subtraj 16 --sample-subtraj 64 --sample-mcmc 4   # SCLD sampled at other settings than trained
    ... --sample-kernel hmc --sample-leapfrog 8 --sample-spread 5   # ... with HMC moves (L gradients per move)

Prints one row per run: log Z-hat - log Z as mean +- sd over independent populations (each of --particles
particles), the pooled estimate's error and SE, the final ESS, training seconds and target gradient evaluations
(training, sampling). Settings default to the reference codes' (Beyond ELBOs / SCLD configs: reference N(0, 1),
K = 128, log-variance loss, Adam 1e-3 with gradient clipping); budget flags shrink them.

Measured 2026-12-05 on the shared 2 cores (load 7-8), `--steps 64 --batch 128 --iters 600 --particles 2000
--populations 8` (log Z-hat - log Z, mean +- sd over the 8 populations; times include compilation):

    Funnel-10d   cmcd  -0.717 +- 0.196  ESS/N 0.09  train 102 s  n_grad train 4.99M  sample 1.04M
    Funnel-10d   scld  -0.627 +- 0.196  ESS/N 0.84  train 127 s  n_grad train 5.22M  sample 1.09M   (S=4, 1 MALA)
    Funnel-10d   scld  -0.635 +- 0.128  ESS/N 0.80  train 118 s  (--learn-prior)
    Funnel-10d   scld  diverges (loss 7.6e5 -> 2.9e7) with --sigma 3: particles reach the neck, Euler steps unstable
    ManyWell-32d cmcd  -4.248 +- 0.800  ESS/N 0.001 train  94 s  n_grad train 4.99M  sample 1.04M   (sigma_max 2)
    ManyWell-32d scld  -0.359 +- 0.581  ESS/N 0.18  train 130 s  n_grad train 5.22M  sample 1.09M   (S=4, 1 MALA)
    ManyWell-32d scld  -0.196 +- 0.959  ESS/N 0.25  train 269 s  n_grad train 12.3M  sample 1.28M   (S=16, --iters 1200)

KL loss (--loss kl; its backward pass adds one Hessian-vector product per gradient):
    Funnel-10d   cmcd  -0.428 +- 0.153  ESS/N 0.07  train  81 s   (ELBO fell: loss -7.69 -> -7.06)
    Funnel-10d   scld  -0.612 +- 0.285  ESS/N 0.03  train 125 s   (loss -8.82 -> -8.71)
    ManyWell-32d scld  -1.050 +- 1.518  ESS/N 0.02  train 143 s   (loss flat at -155)
    Funnel-10d   cmcd  -0.448 +- 0.137  ESS/N 0.07  train  87 s   (--no-learn-diffusion; loss -7.69 -> -3.67)
The KL rows' training did not lower their loss at this budget although log Z-hat improved over the untrained
sampler. Cause (found later, fixed in cmcd._segment): the control's score input was detached as in the reference
codes, so the reparametrised gradient missed d u / d x through the score; exact at u = 0, 5x the true gradient after
150 iterations on Funnel-10d (K = 32), where the loss fell to -8.8 and climbed back to -6.2. Now it falls to -8.96
and stays (tests/test_cmcd_kl.py); the KL rows above are from before the fix. After it (2026-12-05, load ~7):
    Funnel-10d   cmcd  -0.616 +- 0.130  ESS/N 0.09  train  47 s   (loss -7.69 -> -9.10; --loss kl)
    Funnel-10d   cmcd  -0.664 +- 0.191  ESS/N 0.10  train  39 s   (loss -7.66 -> -9.02; --kl-gradient log_derivative)
The ELBO now rises by 1.4 nats, but log Z-hat is not better than before (-0.43 +- 0.15): the reverse KL is
mode-seeking, and the funnel's missed mass (its neck) is what log Z-hat lacks.
Untrained (u = 0, uniform beta; CMCD = AIS with ULA kernels), sampling only:
    Funnel-10d   cmcd -0.818 +- 0.156, scld -0.721 +- 0.152;  ManyWell-32d cmcd -3.456 +- 2.241, scld -1.671 +- 1.444

HMC moves at SCLD's sampling boundaries (2026-12-05, load ~4; `--steps 64 --subtraj 16 --mcmc 1 --iters 221
--sigma-max 1 --sample-kernel hmc --sample-spread 5 --populations 8`, the harness's SCLD training):
    Funnel-10d   scld  -0.276 +- 0.084  --sample-subtraj 32 --sample-mcmc 2 --sample-leapfrog 6   437 grads/particle
    Funnel-10d   scld  -0.152 +- 0.064  --sample-subtraj 64 --sample-mcmc 4 --sample-leapfrog 8  2081 grads/particle
    Funnel-10d   scld  -0.118 +- 0.034  --sample-subtraj 64 --sample-mcmc 8 --sample-leapfrog 8  4097 grads/particle
(MALA at S = 64, 4 moves, 317 grads/particle: -0.416; see benchmarks/README.md, learned samplers.)

Tempered SMC at about the same budget (8 x 2000 particles, 39 temperatures (k/S)^3 from N(0, 1), 2 HMC moves of 5
leapfrog steps per stage, as benchmarks/diffusion_learned.py runs it; 6.86M gradients) is still better on both:
Funnel-10d -0.424 +- 0.084 (32 s), ManyWell-32d -0.186 +- 0.351 (25 s).
For comparison (issue 21, the same Funnel-10d at 128 steps): samplax DDS -0.557 +- 0.131, PIS -0.407 +- 0.087,
tempered SMC -0.334 +- 0.093. Both are far from the reference codes' 40,000 (CMCD) / 8,000 (SCLD) iterations of
batch 2,000 (~10^10 gradients); the bias is missed mass (funnel neck and mouth, ManyWell's 2^16 wells), which the
log-variance loss on the sampler's own paths cannot see.
"""

from __future__ import annotations

import argparse
import time

import jax
import numpy as np

jax.config.update("jax_enable_x64", True)

import samplax  # noqa: E402
from samplax.diffusion.learned.cmcd import train_controlled  # noqa: E402

# reference codes' per-target settings (max_diffusion there is 2x our sigma_max: their cosine schedule halves it)
TARGETS = {
    "funnel": dict(make=lambda: samplax.models.get("funnel", dim=10), sigma=1.0, sigma_max=0.5),
    # SCLD's ManyWell config (max_diffusion 10 -> sigma_max 5) gives NaN weights at K = 64 (unstable Euler steps in
    # the quartic wells); 1 and 3 trained worse than 2 in 30-iteration pilots
    "many_well": dict(make=lambda: samplax.models.get("many_well"), sigma=1.0, sigma_max=2.0),
}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--target", choices=sorted(TARGETS), default="funnel")
    p.add_argument("--kind", choices=["cmcd", "scld"], default="cmcd")
    p.add_argument("--loss", choices=["log_variance", "kl"], default="log_variance")
    p.add_argument("--steps", type=int, default=128)
    p.add_argument("--subtraj", type=int, default=None)
    p.add_argument("--mcmc", type=int, default=None)
    p.add_argument("--sample-subtraj", type=int, default=None,
                   help="SCLD's sub-trajectories at sampling (default: the training ones; must divide --steps)")
    p.add_argument("--sample-mcmc", type=int, default=None, help="moves (MALA or HMC, --sample-kernel) per inner boundary at sampling")
    p.add_argument("--sample-kernel", choices=["mala", "hmc"], default=None,
                   help="SCLD's boundary moves at sampling (default: the training ones, MALA)")
    p.add_argument("--sample-leapfrog", type=int, default=None, help="leapfrog steps per HMC move at sampling")
    p.add_argument("--sample-spread", type=float, default=None,
                   help="HMC step spread R at sampling: steps log-uniform in [h / R, h R]")
    p.add_argument("--iters", type=int, default=1000)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--sigma-max", type=float, default=None)
    p.add_argument("--sigma", type=float, default=None, help="reference scale (default: the reference codes')")
    p.add_argument("--width", type=int, default=64)
    p.add_argument("--particles", type=int, default=2000)
    p.add_argument("--populations", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-learn-diffusion", action="store_true")
    p.add_argument("--learn-prior", action="store_true", help="learn the reference's mean and scale (SCLD's default)")
    p.add_argument("--beta-init", choices=["linear", "cubic"], default="linear",
                   help="the annealing schedule training starts from: k / K or (k / K)^3")
    p.add_argument("--kl-gradient", choices=["reparam", "log_derivative"], default=None,
                   help="the KL loss's gradient estimator (default reparam; log_derivative: CMCD only)")
    a = p.parse_args(argv)
    spec = TARGETS[a.target]
    target = spec["make"]()
    t0 = time.perf_counter()
    tr = train_controlled(target, a.kind, a.loss, num_steps=a.steps, num_subtrajectories=a.subtraj,
                          mcmc_steps=a.mcmc, num_iterations=a.iters, batch_size=a.batch, learning_rate=a.lr,
                          sigma=a.sigma or spec["sigma"], sigma_max=a.sigma_max or spec["sigma_max"], width=a.width,
                          seed=a.seed, learn_diffusion=not a.no_learn_diffusion, learn_prior=a.learn_prior,
                          beta_init=a.beta_init, progress=False,
                          **({} if a.kl_gradient is None else {"kl_gradient": a.kl_gradient}))
    train_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    sampler = tr.as_population_sampler(num_subtrajectories=a.sample_subtraj, mcmc_steps=a.sample_mcmc,
                                       mcmc_kernel=a.sample_kernel, mcmc_leapfrog=a.sample_leapfrog,
                                       mcmc_step_spread=a.sample_spread)
    dt = samplax.sample(target, sampler, num_particles=a.particles, num_chains=a.populations, seed=a.seed + 1,
                        progress=False)
    sample_s = time.perf_counter() - t1
    err = np.asarray(dt.attrs["log_z_per_population"], float) - target.log_z
    ess = dt.stage_stats["ess"].values[:, -1] / a.particles
    c = tr.config
    h = tr.history
    tag = a.loss if c.get("kl_gradient") is None else f"{a.loss}, {c['kl_gradient']}"
    print(f"{a.target} {a.kind}[{tag}] K={c['num_steps']} S={c['num_subtrajectories']} m={c['mcmc_steps']} "
          f"iters={a.iters} batch={a.batch} sigma={c['sigma']} sigma_max={c['sigma_max']} "
          f"sampled S={sampler.settings['num_subtrajectories']} m={sampler.settings['mcmc_steps']} "
          f"{sampler.settings['mcmc_kernel']}(L={sampler.settings['mcmc_leapfrog']}, "
          f"spread={sampler.settings['mcmc_step_spread']}) "
          f"grads/particle {sampler.settings['grads_per_particle']} "
          f"learn_prior={c['learn_prior']}: log Z err {err.mean():+.3f} +- {err.std(ddof=1):.3f} (sd over "
          f"{a.populations} populations of {a.particles}); pooled {dt.attrs['log_z'] - target.log_z:+.3f} "
          f"(se {dt.attrs['log_z_se']:.3f}); final ESS/N {ess.mean():.3f}; loss {h[:20].mean():.3g} -> "
          f"{h[-20:].mean():.3g}; train {train_s:.0f} s, n_grad train {c['n_grad_train']:,} "
          f"(+{c['n_hvp_train']:,} HVP); sample {sample_s:.0f} s, n_grad sample {int(dt.attrs['n_grad_sampling']):,}; "
          f"trusted {dt.attrs.get('trusted')}", flush=True)


if __name__ == "__main__":
    main()
