"""Learned diffusion samplers on the standard benchmark set, every method at an equal budget of target evaluations.

    .venv/bin/python benchmarks/diffusion_learned.py             # full settings (sized to <= 1 hour on 2 cores)
    .venv/bin/python benchmarks/diffusion_learned.py --medium    # ~1/4 of the full budget
    .venv/bin/python benchmarks/diffusion_learned.py --quick     # small settings (< 3 min on 2 cores when idle,
                                                                 # compilation cache cold; see "--quick" below)
    ... --targets funnel many_well --methods dds smc                # a subset
    ... --targets funnel --methods scld_long smc_wf --scale 16 --seeds 0 1 2 3
                                    # 16x the budget (training iterations x 16), four seeds and their summary
    ... --targets funnel --methods dds_ref --scale 27.5 --steps 128   # K = 128 steps (default 64 at full settings)
    ... --checkpoint-dir ckpt/   # PIS / DDS training resumable: run the same command again after a kill
    ... --jobs 2                 # targets in 2 processes (the default at --quick only: timings then share the cores)

Targets (Blessing et al. 2024, "Beyond ELBOs", arXiv 2406.07423, the set CMCD / SCLD / NETS report on), with the
reference scale sigma of their configs (configs/target/*.yaml: DDS `initial_scale`, PIS `max_diffusion` / 4):
Funnel-10d (sigma 1), GMM40 in 50-d (Beyond-ELBOs' means, `gmm40(dim=50, rng="jax")`; sigma 40), the Student-t
mixture in 50-d (`student_t_mixture`; sigma 15) and ManyWell-32d (log Z = 164.69568; sigma 1).

Metrics, as the reference code's eval (algorithms/common/eval_methods/stochastic_oc_methods.py) computes them, per
independent population of N particles, then mean ± sd over populations:
- log Z error: log Ẑ - log Z with log Ẑ = logsumexp(log w) - log N (their `ln_z`; their tables give |Δ|).
- ESS / N: importance ESS of the final weights, (sum w)^2 / (N sum w^2) (their `compute_reverse_ess`); for SMC the
  last stage's ESS / N.
- EMC (mixtures only): entropy of the samples' mode fractions (argmax component) / log(#modes) (their `entropy`).
- Sinkhorn: to 2,000 exact draws. Theirs is ott's debiased Sinkhorn divergence at absolute epsilon 1e-3 on the
  raw (unweighted) model samples; ours is samplax's `sinkhorn_w2` (sqrt of the debiased divergence at epsilon 0.01
  relative to the spread: an absolute 1e-3 needs far more Sinkhorn iterations than 2 cores allow at 50-d scales)
  on the resampled particles, so the numbers are not comparable to theirs, only between our rows.

Budget: every method gets the same number B of target gradient evaluations per target, training included
(n_grad, the unit of samplax's population counts; the one log-density evaluation per path at its end is not
counted). Learned samplers: iterations x batch x K training + populations x N x K sampling; SMC and SFS, which do
not train, spend all of B on sampling (per population B / populations). Wall times are on the shared 2 cores and
include compilation.

Adding a method (CMCD, SCLD, NETS, ...): write `fit(target, spec, s, seed) -> Fitted` and add one `METHODS` entry.
`Fitted` holds any object with `.as_population_sampler()` (a `TrainedSampler`, or a wrapper around a registered
sampler), the number of gradient evaluations its training used (`n_grad_train`) and the sample() settings; `fit`
receives the per-method budget `s["budget"]` (gradients for training + sampling) and must stay within it.

Published values: Funnel-10d from the DDS authors' code (Vargas et al. 2023; 30 training seeds) at the row's number
of steps (64 at the full settings: their T = 3.2; `PUBLISHED`). The Beyond-ELBOs and SCLD tables could not be
retrieved here (no network; the stored copies of arXiv 2406.07423 and 2412.07081 hold only their openings, and the
SCLD code, github.com/anonymous3141/SCLD, has configs but no result files; its ManyWell config is the 5-d MW554, not
this 32-d ManyWell), so those columns are empty: fill them from the papers' tables when at hand. The SCLD code
itself, run here on the funnel at the 16x budget, is in benchmarks/README ("SCLD against its authors' code").

Tempered SMC has three rows: `smc` (10 MALA moves per temperature, diagonal mass, temperatures (k / S)^3),
`smc_tail` (2 HMC moves x 5 leapfrog steps on the two-ended schedule `two_ended`: (k / h)^3 / 2 up to 1/2, then
1 - beta geometric towards 1e-3; on the funnel it fills the wide end that (k / S)^3's last jump leaves empty) and
`smc_wf` (waste-free, P = 10, HMC of 12 leapfrog steps with the step spread log-uniformly over a factor 5 either
way, the same schedule: long trajectories for the funnel's mouth, small steps for its neck).

SCLD (`scld`) follows the SCLD code's split of training and sampling settings (`n_sub_traj_inference`): trained
with 16 sub-trajectories and sampled with K (resampling possible after every step, as its Funnel / Student-t
configs) and 4 MALA moves at each inner boundary, the budget split so that sampling takes at most half; `scld4` is
the earlier setting (4 sub-trajectories, 1 move, at training and sampling). `scld_hmc`: the same training,
sampled at 32 boundaries with 2 HMC moves of 6 leapfrog steps each (step spread 5, `cmcd.py`'s
mcmc_step_spread), the same budget rule. CMCD and SCLD start their learned annealing at (k / K)^3
(`beta_init="cubic"`, the SMC row's schedule; `scld_linear`: SCLD from the linear one).

`--quick` is a smoke test of the harness: each method the issue names once (`QUICK_METHODS`; the variant rows
smc_tail, smc_wf and scld_hmc with --methods) on every target, at 18,240 gradients per method (1/390 of the full
budget). Compilation is most of its time: two big programs per learned method and target (training step, sampling
run), compiled anew for each target's dimension. So it compiles at XLA's lowest optimisation level
(`jax_disable_most_optimizations`; on the funnel 141 s -> 80 s cold, 35 s -> 45 s warm, the rows the same to the
printed digits) and runs the targets in two processes (`--jobs 2`), so its wall-time columns are contended ones:
166 s cold, 69 s warm on 2 cores (benchmarks/README). `--medium` and the full settings compile at the default level
and run one target after another unless `--jobs` says otherwise.

PIS / DDS train with the reverse-KL loss at learning rate 1e-3 decayed to 0 (cosine). `pis_stl` / `dds_stl` add the
sticking-the-landing gradient (`stl=True`, the DDS code's `detach_stl_drift`); `pis_ref` / `dds_ref` also take the
DDS code's funnel learning rate 5e-3 and hold it (its notebook decays it x 0.95 every 50 iterations): the rows for
the published comparison at the published training length (`--scale 27.5`: 11,000 iterations, the DDS funnel
notebook's).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import pathlib
import re
import time
import warnings
from typing import Any, Callable

import jax

jax.config.update("jax_enable_x64", True)

import numpy as np  # noqa: E402

import samplax  # noqa: E402
from samplax.diagnostics.wasserstein_estimators import sinkhorn_w2  # noqa: E402
from samplax.diffusion.learned import train  # noqa: E402
from samplax.diffusion.sfs import check_step  # noqa: E402
from samplax.models.diffusion_benchmarks import entropic_mode_coverage  # noqa: E402
from samplax.particles import temperatures  # noqa: E402
from samplax.particles.run import final_ess  # noqa: E402

# Funnel-10d, DDS authors' code (Vargas et al. 2023, dds_data/results: mean ± sd of log Ẑ - log Z over 30 training
# seeds, 2,000 particles each), by method family and number of steps (their T = 3.2 / 6.4 at dt 0.05: 64 / 128
# steps); a row gets the value of its family (the method name's prefix) at its K. Their PIS / DDS are tuned per step
# count (opt_hyperparams.py: sigma, OU rate); their funnel notebook trains 11,000 iterations x 300 paths at learning
# rate 5e-3 decayed x 0.95 every 50 iterations.
PUBLISHED = {("funnel", "dds", 64): "-0.206 ± 0.059", ("funnel", "pis", 64): "-0.290 ± 0.099",
             ("funnel", "smc", 64): "-0.209 ± 0.091", ("funnel", "dds", 128): "-0.176 ± 0.097",
             ("funnel", "pis", 128): "-0.268 ± 0.072", ("funnel", "smc", 128): "-0.198 ± 0.072"}


# ------------------------------------------------------------------------------------------------ targets
@dataclasses.dataclass(frozen=True)
class Spec:
    name: str
    make: Callable[[], Any]
    sigma: float  # reference scale (Beyond-ELBOs configs)


TARGETS = {
    "funnel": Spec("Funnel-10d", lambda: samplax.models.get("funnel", dim=10), 1.0),
    "gmm40_50d": Spec("GMM40-50d", lambda: samplax.models.get("gmm40", dim=50, rng="jax"), 40.0),
    "student_t_50d": Spec("Student-t mixture-50d", lambda: samplax.models.get("student_t_mixture", dim=50), 15.0),
    "many_well": Spec("ManyWell-32d", lambda: samplax.models.get("many_well", dim=32), 1.0),
    "gmm40_2d": Spec("GMM40-2d", lambda: samplax.models.get("gmm40"), 25.0),  # not in the standard set
}
STANDARD = ("funnel", "many_well", "student_t_50d", "gmm40_50d")


def _settings(mode: str, scale: float = 1.0, steps: int | None = None) -> dict:
    """K steps, training iterations x batch, N particles per population, populations, and the per-method budget.
    `scale` multiplies the training iterations, and with them the budget every method gets (SMC spends its share on
    more temperatures; SCLD's sampling moves and everyone's training grow with it). `steps` replaces the mode's K
    (the budget grows with it; the published column follows the row's K)."""
    if not (scale > 0 and math.isfinite(scale)):
        raise ValueError(f"scale must be a positive finite number, got {scale}")
    if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int) or steps < 2):
        raise ValueError(f"steps must be an integer >= 2, got {steps!r}")
    if mode == "quick":
        s = dict(K=16, iters=20, batch=32, N=250, pops=2)
    elif mode == "medium":
        s = dict(K=32, iters=300, batch=128, N=1000, pops=4)
    else:
        s = dict(K=64, iters=400, batch=256, N=2000, pops=4)
    if steps is not None:
        s["K"] = steps
    s["iters"] = max(1, int(round(s["iters"] * scale)))
    s["budget"] = s["iters"] * s["batch"] * s["K"] + s["pops"] * s["N"] * s["K"]
    s["mode"], s["scale"] = mode, scale
    return s


# ------------------------------------------------------------------------------------------------ methods
@dataclasses.dataclass
class Fitted:
    sampler: Any  # has .as_population_sampler() or is a registered sampler's name
    n_grad_train: int
    sample_kwargs: dict
    label: str
    train_s: float = 0.0

    def as_population_sampler(self):
        if hasattr(self.sampler, "as_population_sampler"):  # trained: sample_kwargs override its sampling settings
            return self.sampler.as_population_sampler(**self.sample_kwargs)
        from samplax.particles import base

        return base.get(self.sampler, **self.sample_kwargs)


CHECKPOINT_DIR: pathlib.Path | None = None  # --checkpoint-dir: PIS / DDS training resumable across processes


def _resume_point(path) -> int:
    """The iteration a training checkpoint holds (0 when there is none): its JSON header line's `iteration`."""
    if path is None or not path.exists():
        return 0
    with open(path, "rb") as f:
        return int(json.loads(f.readline())["iteration"])


def _fit_learned(kind, **extra):
    def fit(target, spec, s, seed):
        t0 = time.perf_counter()
        # the KL loss differentiates log pi~(x_K) once per path: K + 1 gradients (config["n_grad_train"]), so the
        # iterations are cut by K / (K + 1) to stay within the budget's iters x batch x K
        iters = max(1, s["iters"] * s["K"] // (s["K"] + 1))
        opts = dict(learning_rate=1e-3, lr_schedule="cosine", grad_clip_value=1.0,
                    schedule="cosine" if kind == "dds" else "linear") | extra
        label = f"{kind}[kl" + "".join(f", {k}={v}" for k, v in extra.items()) + "]"
        ckpt, start = None, 0
        if CHECKPOINT_DIR is not None:  # one file per target, method, seed and settings; the trainer refuses a
            # checkpoint of other settings or another target, so a stale file is named, never silently reused
            tag = re.sub(r"[^A-Za-z0-9.=-]+", "_", f"{spec.name}_{label}_K{s['K']}_it{iters}_b{s['batch']}_s{seed}")
            ckpt = CHECKPOINT_DIR / f"{tag}.eqx"
            start = _resume_point(ckpt)
            opts |= dict(checkpoint=ckpt, checkpoint_every=25, resume=ckpt if start else None)
            if start:
                print(f"  {spec.name} {label}: resuming training at iteration {start:,} of {iters:,} from {ckpt}",
                      flush=True)
        tr = train(target, kind, "kl", num_steps=s["K"], num_iterations=iters, batch_size=s["batch"],
                   sigma=spec.sigma, seed=seed, progress=False, **opts)
        train_s = time.perf_counter() - t0
        if start:  # this process ran iterations start..iters: scale its time (compilation included) to all of them
            train_s = train_s * iters / (iters - start) if start < iters else float("nan")
            label += f" (resumed at {start:,}; train s estimated)"
        return Fitted(tr, int(tr.config["n_grad_train"]), {}, label, train_s)

    return fit


def _stages(s, per_stage: int) -> int:
    """Temperatures that spend the whole budget on sampling at `per_stage` gradients per particle and stage."""
    return max(2, s["budget"] // (s["pops"] * s["N"] * per_stage))


def _fit_smc(target, spec, s, seed):
    # the whole budget as sampling: 10 MALA moves with a diagonal mass at each of S temperatures, S from the budget;
    # temperatures (k / S)^3: dense near the reference, where the log-density ratio changes fastest.
    # MALA with a diagonal mass: HMC with the dense mass gave log Z errors of +13 to +18 on a 50-d Gaussian with
    # reference N(0, 15^2) (the whitening was estimated from the particles it moved; fixed in smc_kernels by
    # cross-whitening, tests/test_smc_metric.py); the full table's SMC rows were measured with this kernel.
    per_stage = 1 + 10  # samplax's SMC counts the kernel's init at each new temperature + one gradient per MALA move
    stages = _stages(s, per_stage)
    schedule = temperatures.cubic(stages).tolist()
    kw = dict(schedule=schedule, kernel="mala", mass="diag", waste_free=False, num_mcmc_steps=10,
              adapt_steps=False, reference=(0.0, spec.sigma))
    return Fitted("smc", 0, kw, f"smc(S={stages})")


def two_ended(stages: int, tail: float = 1e-3) -> list:
    """samplax.particles.temperatures.two_ended as a list (the smc_tail row's schedule)."""
    return temperatures.two_ended(stages, tail).tolist()


def _fit_smc_tail(target, spec, s, seed):
    # HMC (2 moves x 5 leapfrog steps, diagonal mass, samplax's jittered step) on the two-ended schedule
    per_stage = 1 + 2 * 5
    stages = _stages(s, per_stage)
    kw = dict(schedule=two_ended(stages), kernel="hmc", num_integration_steps=5, mass="diag", waste_free=False,
              num_mcmc_steps=2, adapt_steps=False, reference=(0.0, spec.sigma))
    return Fitted("smc", 0, kw, f"smc_tail(S={stages}, hmc 2 x 5)")


def _fit_smc_wf(target, spec, s, seed):
    # waste-free SMC (P = 10 states per chain, N / P chains resampled per stage) with HMC of 12 leapfrog steps whose
    # step is log-uniform in [h / 5, 5 h] per particle and sweep (step_spread=5), on the two-ended schedule: long
    # trajectories reach the funnel's mouth, the spread its neck (benchmarks/README, "Where the funnel's log Z is
    # lost"). Per stage and particle (1 + (P - 1) L) / P gradients: the kernel's init at the P-th of the states,
    # P - 1 moves of L.
    P, L = 10, 12
    per_stage = (1 + (P - 1) * L) / P
    stages = max(2, int(s["budget"] / (s["pops"] * s["N"] * per_stage)))
    kw = dict(schedule=two_ended(stages), kernel="hmc", num_integration_steps=L, step_spread=5.0, mass="diag",
              waste_free=True, num_mcmc_steps=P, adapt_steps=False, reference=(0.0, spec.sigma))
    return Fitted("smc", 0, kw, f"smc_wf(S={stages}, waste-free P={P}, hmc L={L}, spread 5)")


def _fit_sfs(target, spec, s, seed):
    # per particle: K Euler steps x M drift draws (M up to 16, K >= 8 and >= the smallest stable K of sfs.check_step)
    per_particle = s["budget"] // (s["pops"] * s["N"])
    try:
        check_step(target, jax.random.PRNGKey(0), 1, spec.sigma)
        k_min = 1
    except ValueError as err:
        k_min = int(str(err).split("num_steps >= ")[1].split(" ")[0])
    M = max(1, min(16, per_particle // max(k_min, 8)))
    K = max(k_min, per_particle // M)
    M = per_particle // K
    if M < 1:
        return Fitted(None, 0, {}, f"sfs: refused, a stable step needs K >= {k_min} > budget {per_particle} per particle")
    return Fitted("sfs", 0, dict(num_steps=int(K), num_mc=int(M), sigma=spec.sigma), f"sfs(K={K},M={M})")


def _fit_trained(kind, loss, per_path, **options):
    """CMCD / SCLD / NETS via `train(target, kind)`: their iterations cut so that training's gradients (`per_path(K)`
    per path, as each counts them in config["n_grad_train"]) stay within PIS / DDS's iters x batch x K."""
    def fit(target, spec, s, seed):
        t0 = time.perf_counter()
        iters = max(1, s["iters"] * s["K"] // per_path(s["K"]))
        tr = train(target, kind, loss, num_steps=s["K"], num_iterations=iters, batch_size=s["batch"],
                   sigma=spec.sigma, seed=seed, progress=False, **options)
        label = f"{kind}[{loss}" + "".join(f", {k}={v}" for k, v in options.items()) + "]"
        return Fitted(tr, int(tr.config["n_grad_train"]), {}, label, time.perf_counter() - t0)

    return fit


_SCLD_TRAINED: dict = {}  # SCLD trainings of this process, by their full arguments (see _fit_scld)


def _fit_scld(train_S=16, train_moves=1, sample_S=64, sample_moves=4, sample_kernel="mala", leapfrog=1,
              spread=1.0, beta_init="cubic", beta_tail=None, waste_free=None):
    """SCLD trained with train_S sub-trajectories (train_moves MALA moves at each inner boundary) and sampled with
    sample_S (resampling possible after every step when sample_S = K, as the SCLD code's Funnel / Student-t configs,
    n_sub_traj 128 = num_steps) and sample_moves moves: the reference code also sets the sampling boundaries apart
    from the training ones (`n_sub_traj_inference`). The budget is split exactly: sampling's
    pops x N x (K + 1 + (sample_S - 1) moves) gradients first (moves = sample_moves, lowered until sampling takes at
    most half the budget: 4 at the full settings, 0 at --quick), training's iterations from the rest.
    sample_kernel="hmc": the sampling moves are HMC with `leapfrog` steps (L gradients per move) and the step
    spread `spread` (cmcd.py's mcmc_step_spread); the same budget rule, moves counted as L gradients each.
    waste_free=P: the sampling moves are waste-free chains instead (ceil(N / P) ancestors x (P - 1) HMC moves of
    `leapfrog` steps per inner boundary, (P - 1) / P L gradients per particle), sample_moves unused."""
    def fit(target, spec, s, seed):
        t0 = time.perf_counter()
        K = s["K"]
        S_tr, S_sa = min(train_S, K), min(sample_S, K)
        half = s["budget"] // (2 * s["pops"] * s["N"])  # gradients per sampled particle in half the budget
        L = leapfrog if sample_kernel == "hmc" else 1
        moves = max(0, min(sample_moves, (half - K - 1) // (max(S_sa - 1, 1) * L)))
        per_train = K + 1 + (S_tr - 1) * train_moves
        per_sample = K + 1 + (S_sa - 1) * moves * L
        if waste_free:
            chains = -(-s["N"] // waste_free)
            per_sample = K + 1 + -(-(S_sa - 1) * chains * (waste_free - 1) * L // s["N"])
            if per_sample > half:
                return Fitted(None, 0, {}, f"scld waste-free: refused, sampling needs {per_sample} gradients per "
                                           f"particle > half the budget ({half})")
        iters = max(1, (s["budget"] - s["pops"] * s["N"] * per_sample) // (s["batch"] * per_train))
        extra = {} if beta_tail is None else {"beta_tail": beta_tail}
        args = dict(num_steps=K, num_subtrajectories=S_tr, mcmc_steps=train_moves, num_iterations=iters,
                    batch_size=s["batch"], sigma=spec.sigma, seed=seed, beta_init=beta_init, **extra)
        # two rows with the same training (scld and scld_hmc at --quick, where no HMC move fits the budget) train once:
        # the key is every argument of this deterministic call and the target's name and dimension
        key = (spec.name, target.dim, tuple(sorted(args.items())))
        tr = _SCLD_TRAINED.get(key)
        # a shared training's train s is the lookup's, and the label says so
        shared = "" if tr is None else " (trained once, for an earlier row with these settings)"
        if tr is None:
            tr = _SCLD_TRAINED[key] = train(target, "scld", "log_variance", progress=False, **args)
        start = f"beta_init={beta_init}" + ("" if beta_tail is None else f"({beta_tail:g})")
        if waste_free:
            label = (f"scld[log_variance, S={S_tr}/{S_sa}, m={train_moves}, {start}, sampled waste-free "
                     f"P={waste_free}, hmc(L={L}, spread={spread:g})]{shared}")
            opts = dict(num_subtrajectories=S_sa, waste_free=waste_free, mcmc_kernel="hmc", mcmc_leapfrog=L,
                        mcmc_step_spread=spread)
            return Fitted(tr, int(tr.config["n_grad_train"]), opts, label, time.perf_counter() - t0)
        label = f"scld[log_variance, S={S_tr}/{S_sa}, m={train_moves}/{moves}, {start}]"
        opts = dict(num_subtrajectories=S_sa, mcmc_steps=moves)
        if sample_kernel == "hmc" and moves:
            label = label[:-1] + f", sampled with hmc(L={L}, spread={spread:g})]"
            opts.update(mcmc_kernel="hmc", mcmc_leapfrog=L, mcmc_step_spread=spread)
        return Fitted(tr, int(tr.config["n_grad_train"]), opts, label + shared, time.perf_counter() - t0)

    return fit


METHODS: dict[str, Callable] = {"pis": _fit_learned("pis"), "dds": _fit_learned("dds"),
                                # the DDS code's network: PIS-Grad's learnable-phase time code (issue 21)
                                "pis_pisnet": _fit_learned("pis", time_embedding="pis"),
                                "dds_pisnet": _fit_learned("dds", time_embedding="pis"), "sfs": _fit_sfs,
                                # sticking the landing (the DDS code's detach_stl_drift, on in its base config)
                                "pis_stl": _fit_learned("pis", stl=True), "dds_stl": _fit_learned("dds", stl=True),
                                # the DDS code's funnel rate 5e-3, held constant (its notebook decays it), and STL
                                "pis_ref": _fit_learned("pis", stl=True, learning_rate=5e-3, lr_schedule="constant"),
                                "dds_ref": _fit_learned("dds", stl=True, learning_rate=5e-3, lr_schedule="constant"),
                                "smc": _fit_smc, "smc_tail": _fit_smc_tail, "smc_wf": _fit_smc_wf,
                                # K + 1 gradients per path; NETS with the PINN loss K + 1 (SCLD: see _fit_scld)
                                "cmcd": _fit_trained("cmcd", "log_variance", lambda K: K + 1, beta_init="cubic"),
                                "scld": _fit_scld(),
                                # SCLD sampled with HMC moves (6 leapfrog steps, step spread 5) at 32 boundaries: the
                                # same budget rule, 2 moves x 6 = 12 gradients per inner boundary at the full
                                # settings (437 per sampled particle; MALA's scld: 4 x 1 at 64 boundaries, 317)
                                "scld_hmc": _fit_scld(sample_S=32, sample_moves=2, sample_kernel="hmc", leapfrog=6,
                                                      spread=5.0),
                                # the settings of the rows before 2026-12-05 (4 sub-trajectories, 1 MALA move at
                                # each of the 3 inner boundaries, the same at sampling): K + 4 per path
                                "scld4": _fit_trained("scld", "log_variance", lambda K: K + 4),
                                "scld_linear": _fit_scld(beta_init="linear"),
                                # scld_hmc from the two-ended schedule (smc_tail's) instead of the cubic one
                                "scld_hmc_two_ended": _fit_scld(sample_S=32, sample_moves=2, sample_kernel="hmc",
                                                                leapfrog=6, spread=5.0, beta_init="two_ended"),
                                # SCLD sampled with smc_wf's moves: waste-free chains (P = 10) of HMC with 12
                                # leapfrog steps and step spread 5 at 32 boundaries, annealing from the two-ended
                                # start with its tail at 1e-5 (the funnel's mouth opens after beta = 0.997)
                                "scld_wf": _fit_scld(sample_S=32, sample_kernel="hmc", leapfrog=12, spread=5.0,
                                                     beta_init="two_ended", beta_tail=1e-5, waste_free=10),
                                # the frontier row (--scale): from the two-ended start with its tail at 1e-5,
                                # sampled at 32 boundaries with as many HMC moves (L = 6, spread 5) as half the
                                # budget allows: 2 at the full settings, 8 at --scale 4, 35 at --scale 16
                                "scld_long": _fit_scld(sample_S=32, sample_moves=10 ** 6, sample_kernel="hmc",
                                                       leapfrog=6, spread=5.0, beta_init="two_ended", beta_tail=1e-5),
                                "nets": _fit_trained("nets", "pinn", lambda K: K + 1),
                                # NETS with a two-probe Hutchinson divergence in the PINN loss (2 JVPs per point
                                # instead of d): the exact one took 1,130 s to train on the 10-d funnel, d x more
                                # network passes than this in 32-50 d; sampling uses the exact weights either way
                                "nets_h": _fit_trained("nets", "pinn", lambda K: K + 1, divergence="hutchinson")}


# ------------------------------------------------------------------------------------------------ evaluation
def _evaluate(target, exact, fitted, s, seed):
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # degenerate weights show in the ESS column
        dt = samplax.sample(target, fitted.as_population_sampler(), num_particles=s["N"], num_chains=s["pops"],
                            seed=seed + 1, progress=False)
    sample_s = time.perf_counter() - t0
    x = dt.posterior["x"].values  # (pops, N, d)
    err = np.asarray(dt.attrs["log_z_per_population"], dtype=float).ravel() - target.log_z
    n = min(s["N"], 2000)

    def sinkhorn(p):
        xp = x[p, :n][np.all(np.isfinite(x[p, :n]), axis=1)]  # diverged particles are not measured
        return float(sinkhorn_w2(xp, exact[p * n:(p + 1) * n])) if len(xp) > 1 else np.nan

    row = {"log Z err": f"{err.mean():+.4g} ± {err.std(ddof=1):.3g}" if np.all(np.isfinite(err)) else "diverged",
           "_err": err,  # per population, for the summary over seeds (not printed)
           "ESS/N": float(np.mean(final_ess(dt.stage_stats)) / s["N"]),
           "sinkhorn": float(np.mean([sinkhorn(p) for p in range(len(x))]))}
    idx_fn = target.info.get("mode_index") if target.info else None
    if idx_fn is not None:
        k = target.info["num_modes"]
        row["EMC"] = float(np.mean([entropic_mode_coverage(idx_fn(x[p]), k) for p in range(len(x))]))
    n_sample = int(dt.attrs["n_grad_sampling"])
    row.update({"n_grad": fitted.n_grad_train + n_sample, "train s": round(fitted.train_s, 1),
                "sample s": round(sample_s, 1)})
    return row


def run_target(key, s, methods, seed=0):
    spec = TARGETS[key]
    target = spec.make()
    exact = np.asarray(target.sample(jax.random.PRNGKey(123), s["pops"] * min(s["N"], 2000)))
    rows = []
    for m in methods:
        fitted = METHODS[m](target, spec, s, seed)
        row = {"method": fitted.label}
        if fitted.sampler is None:
            rows.append(row)
            continue
        row.update(_evaluate(target, exact, fitted, s, seed))
        pub = PUBLISHED.get((key, m.split("_")[0], s["K"]))
        row["published"] = pub or ""
        rows.append(row)
        print(f"  {spec.name}: { {k: v for k, v in row.items() if not k.startswith('_')} }", flush=True)
    _print(rows, f"{spec.name} (log Z = {target.log_z:.5f}), seed {seed}: budget {s['budget']:,} gradients per "
                 f"method ({s['scale']:g}x the {s['mode']} settings); "
                 f"{s['pops']} populations x N = {s['N']}; learned: K = {s['K']}, batch {s['batch']}, PIS / DDS "
                 f"{max(1, s['iters'] * s['K'] // (s['K'] + 1))} it (K + 1 gradients per path)")
    return rows


def _print(rows, title):
    print(f"\n{title}")
    keys = []
    for r in rows:
        keys += [k for k in r if k not in keys and not k.startswith("_")]
    print("| " + " | ".join(keys) + " |")
    print("|" + "---|" * len(keys))
    for r in rows:
        cells = [(f"{r[k]:.3g}" if isinstance(r.get(k), float) else (f"{r[k]:,}" if isinstance(r.get(k), int)
                  else str(r.get(k, "")))) for k in keys]
        print("| " + " | ".join(cells) + " |")


# run only when named in --methods: the earlier SCLD settings, SCLD from a linear or two-ended schedule, `scld_long`
# (the frontier row for --scale), SCLD sampled with waste-free moves (heavy-tailed on the funnel: one seed's
# populations +1.0 +- 1.3), NETS with the exact divergence in its PINN loss (1,130 s of training on the 10-d funnel
# alone, d x the network passes of nets_h)
ABLATIONS = ("pis_pisnet", "dds_pisnet", "pis_stl", "dds_stl", "pis_ref", "dds_ref", "scld4", "scld_linear",
             "scld_hmc_two_ended", "scld_wf", "scld_long", "nets")


def summarise(runs: list, title: str, tol: float = 0.1) -> list:
    """One row per method over several seeds' `run_target` rows: the log Z error's mean over all populations with
    its standard error (sd / sqrt(populations)), the per-population sd, each seed's mean, and the share of
    populations within `tol` of the truth."""
    out = []
    for label in dict.fromkeys(r["method"] for rows in runs for r in rows):
        errs = [r["_err"] for rows in runs for r in rows if r["method"] == label and "_err" in r]
        if not errs:
            continue
        e = np.concatenate(errs)
        row = {"method": label, "seeds": len(errs), "populations": e.size}
        if not np.all(np.isfinite(e)):
            row["log Z err (all)"] = "diverged"
        else:
            seed_means = [float(np.mean(x)) for x in errs]
            row["log Z err (all)"] = f"{e.mean():+.3f} ± {e.std(ddof=1) / np.sqrt(e.size):.3f}"
            row["sd"] = f"{e.std(ddof=1):.3f}"
            row["seed means"] = " / ".join(f"{m:+.3f}" for m in seed_means)
            row[f"|err| < {tol:g}"] = f"{np.mean(np.abs(e) < tol):.2f}"
        out.append(row)
    _print(out, title)
    return out


def _in_processes(targets, jobs: int, argv: list) -> None:
    """Run `targets` in `jobs` processes of this script (round-robin), each with `argv` (the other options) and
    --jobs 1; each process's output is printed whole when it ends, in the order the processes were started."""
    import subprocess
    import sys
    import tempfile

    groups = [list(targets[i::jobs]) for i in range(jobs) if targets[i::jobs]]
    procs = []
    for g in groups:
        out = tempfile.TemporaryFile(mode="w+")
        cmd = [sys.executable, str(pathlib.Path(__file__).resolve()), *argv, "--jobs", "1", "--targets", *g]
        procs.append((g, out, subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)))
    failed = []
    for g, out, p in procs:
        rc = p.wait()
        out.seek(0)
        print(f"\n=== targets {', '.join(g)} (one process) ===\n" + out.read(), flush=True)
        if rc:
            failed.append((g, rc))
    if failed:
        raise SystemExit(f"diffusion_learned: the process of targets {failed[0][0]} exited with {failed[0][1]}")


# --quick's rows: each method the issue names once (PIS, DDS, SFS, tempered SMC, CMCD, SCLD, NETS); the variants of
# the full table (smc_tail, smc_wf, scld_hmc) on request (--methods), as they add a third of the run's compilation
QUICK_METHODS = ("pis", "dds", "sfs", "smc", "cmcd", "scld", "nets_h")


def default_methods(mode: str) -> tuple:
    return QUICK_METHODS if mode == "quick" else tuple(m for m in METHODS if m not in ABLATIONS)


def main(mode: str = "full", targets=STANDARD, methods=None, scale: float = 1.0, seeds=(0,), steps: int | None = None,
         jobs: int = 1, argv: list | None = None) -> None:
    """`methods` None: `default_methods(mode)`. `jobs` > 1 runs the targets in that many processes of this script,
    given `argv` (the command line's options other than --targets / --jobs); the default 1 runs them here, one after
    another."""
    if isinstance(mode, bool):  # benchmarks/diffusion.py calls main(quick)
        mode = "quick" if mode else "full"
    methods = default_methods(mode) if methods is None else tuple(methods)
    s = _settings(mode, scale, steps)
    t0 = time.perf_counter()
    if jobs > 1 and len(targets) > 1:
        if argv is None:
            raise ValueError("jobs > 1 needs argv, the options each process of this script is started with")
        _in_processes(list(targets), jobs, argv)
    else:
        if mode == "quick":  # compilation is most of a quick run: XLA's lowest optimisation level (module docstring)
            jax.config.update("jax_disable_most_optimizations", True)
        for key in targets:
            t1 = time.perf_counter()
            runs = [run_target(key, s, methods, seed=seed) for seed in seeds]
            if len(seeds) > 1:
                summarise(runs, f"{TARGETS[key].name}: seeds {', '.join(map(str, seeds))} together "
                                f"({s['pops']} populations each; ± is the standard error of the mean)")
            print(f"({TARGETS[key].name}: {time.perf_counter() - t1:.0f} s)")
    print(f"\ndiffusion_learned ({mode} settings, K = {s['K']}, budget x {scale:g}"
          f"{', XLA at its lowest optimisation level' if mode == 'quick' else ''}"
          f"{f', {jobs} processes' if jobs > 1 and len(targets) > 1 else ''}) took {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--quick", action="store_true")
    g.add_argument("--medium", action="store_true")
    ap.add_argument("--targets", nargs="+", default=list(STANDARD), choices=list(TARGETS))
    ap.add_argument("--methods", nargs="+", default=None, choices=list(METHODS),
                    help="default: all but the ablations; with --quick, each method once (QUICK_METHODS)")
    ap.add_argument("--scale", type=float, default=1.0,
                    help="multiply the training iterations, and so every method's budget, by this factor")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0],
                    help="training and sampling seeds; with several, a summary over all their populations")
    ap.add_argument("--steps", type=int, default=None,
                    help="number of steps K (default: 16 / 32 / 64 for --quick / --medium / full)")
    ap.add_argument("--checkpoint-dir", type=pathlib.Path, default=None,
                    help="write PIS / DDS training checkpoints here (every 25 iterations) and resume from them: a "
                         "killed run started again with the same arguments continues where it stopped")
    ap.add_argument("--jobs", type=int, default=None,
                    help="run the targets in this many processes (default: 2 with --quick, else 1); the wall times "
                         "of processes sharing the cores are contended ones")
    a = ap.parse_args()
    jobs = a.jobs if a.jobs is not None else (2 if a.quick else 1)
    if jobs < 1:
        ap.error(f"--jobs must be at least 1, got {jobs}")
    if a.checkpoint_dir is not None:
        a.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        CHECKPOINT_DIR = a.checkpoint_dir
    mode = "quick" if a.quick else "medium" if a.medium else "full"
    argv = (["--quick"] if a.quick else ["--medium"] if a.medium else []) + [
        "--scale", repr(a.scale), "--seeds", *map(str, a.seeds)]
    argv += ([] if a.methods is None else ["--methods", *a.methods])
    argv += ([] if a.steps is None else ["--steps", str(a.steps)])
    argv += ([] if a.checkpoint_dir is None else ["--checkpoint-dir", str(a.checkpoint_dir)])
    main(mode, a.targets, a.methods, a.scale, a.seeds, a.steps, jobs, argv)
