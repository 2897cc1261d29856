"""samplax tempered SMC vs blackjax's adaptive_tempered_smc (plain) and its best configuration.

samplax "default": `samplax.sample(target, "smc")` with its defaults (waste-free, MALA moves, P = 10); the
other samplax rows use HMC like blackjax. blackjax "plain": adaptive_tempered_smc, HMC moves with a fixed step
0.1 and identity mass matrix (the documented usage). blackjax "best": adaptive persistent sampling + inner-kernel tuning (diagonal inverse
mass matrix from the particles' variance each stage, step 0.5 d^-1/4 in those units). All runs use the
same prior/likelihood split (samplax.tempering); the HMC runs use the same trajectory length L and steps per
stage K, target ESS 0.5 (persistent: 1.0 of N over the persistent ensemble), systematic resampling.
Every HMC move costs 1 (init at the new temperature) + K·L gradients per particle and stage in both
libraries.

Reported per target and config, over R independent repeats: stages, gradients per repeat, log Z mean and sd,
sd rescaled to the budget, blackjax plain's gradients at N particles (sd · sqrt(grads / budget): the log Z
variance of a fixed-schedule SMC falls as 1/N; with `--equal-budget` the N of each config is instead set
from a pilot run so its gradients match the budget), error to the exact log Z when known, pooled W2 to the reference /
exact draws (sliced W2 for eight schools' 10 dims; 1024 draws spread over all repeats for every config), wall time (compile excluded).

    .venv/bin/python benchmarks/smc_blackjax.py [--quick] [--equal-budget] [--targets eight_schools,bimodal_mixture]
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

jax.config.update("jax_enable_x64", True)

import blackjax  # noqa: E402
from blackjax.smc import resampling  # noqa: E402

import samplax  # noqa: E402
from samplax.tempering import tempering_parts  # noqa: E402

L, K = 5, 5
HMC = dict(kernel="hmc", num_integration_steps=L, num_mcmc_steps=K)
REFERENCE = {"bimodal_mixture": (0.0, 4.0)}


def timed(fn, *args):
    exe = jax.jit(fn).lower(*args).compile()
    t0 = time.perf_counter()
    out = jax.block_until_ready(exe(*args))
    return out, time.perf_counter() - t0


def run_samplax(target, n, reps, seed, **settings):
    """samplax's smc with its own defaults plus `settings` (the HMC rows pass L, K like blackjax's)."""
    dt = samplax.sample(target, "smc", num_particles=n, num_chains=reps, seed=seed, progress=False,
                        reference=REFERENCE.get(target.name), **settings)
    ss = dt["stage_stats"]
    x = _flat_draws(dt, target)
    return dict(log_z=np.asarray(dt.attrs["log_z_per_population"]), grads=dt.attrs["n_grad_sampling"] / reps,
                stages=float(ss["active"].values.sum(1).mean()), time=dt.attrs["sampling_time"], draws=x)


def _flat_draws(dt, target):
    """(repeat, particle, n_names) constrained draws in target.names order, what W2 compares."""
    post = dt["posterior"]
    C, N = post.sizes["chain"], post.sizes["draw"]
    cols = [post[v].values.reshape(C, N, -1) for v in target.var_shapes]
    return np.concatenate(cols, axis=-1)


def run_blackjax(target, n, reps, seed, best: bool, max_stages=200):
    lp, ll, sp = tempering_parts(target, REFERENCE.get(target.name))
    d = target.dim
    if best:
        params = {"step_size": jnp.array([0.5 / d ** 0.25]), "inverse_mass_matrix": jnp.ones((1, d)),
                  "num_integration_steps": jnp.array([L])}

        def update(key, state, info):
            var = jnp.var(state.particles, axis=0)
            return {"step_size": jnp.array([0.5 / d ** 0.25]), "inverse_mass_matrix": var[None],
                    "num_integration_steps": jnp.array([L])}

        alg = blackjax.inner_kernel_tuning(
            smc_algorithm=blackjax.adaptive_persistent_sampling_smc, logprior_fn=lp, loglikelihood_fn=ll,
            mcmc_step_fn=blackjax.hmc.build_kernel(), mcmc_init_fn=blackjax.hmc.init,
            resampling_fn=resampling.systematic, mcmc_parameter_update_fn=update, initial_parameter_value=params,
            num_mcmc_steps=K, max_iterations=max_stages, target_ess=1.0)

        def beta(s):
            return s.sampler_state.tempering_param

        def iteration(s):
            return s.sampler_state.iteration

        def log_z(s, acc):
            return s.sampler_state.log_Z
    else:
        params = {"step_size": jnp.array([0.1]), "inverse_mass_matrix": jnp.ones((1, d)),
                  "num_integration_steps": jnp.array([L])}
        alg = blackjax.adaptive_tempered_smc(lp, ll, blackjax.hmc.build_kernel(), blackjax.hmc.init, params,
                                             resampling.systematic, 0.5, num_mcmc_steps=K)

        def beta(s):
            return s.tempering_param

        def log_z(s, acc):
            return acc

    def one(key):
        k0, key = jax.random.split(key)
        state = alg.init(sp(k0, n))

        def cond(c):
            return (beta(c[1]) < 1.0) & (c[3] < max_stages)

        def body(c):
            key, s, acc, i = c
            key, k = jax.random.split(key)
            s, info = alg.step(k, s)
            inc = info.log_likelihood_increment if not best else 0.0
            return key, s, acc + inc, i + 1

        _, s, acc, i = jax.lax.while_loop(cond, body, (key, state, jnp.zeros(()), jnp.array(0)))
        x = s.sampler_state.particles if best else s.particles
        return x, log_z(s, acc), i, beta(s)

    keys = jax.vmap(lambda c: jax.random.fold_in(jax.random.PRNGKey(seed + 7), c))(jnp.arange(reps))
    (x, lz, stages, b), secs = timed(jax.vmap(one), keys)
    if np.any(np.asarray(b) < 1.0):
        print(f"  warning: blackjax {'best' if best else 'plain'} did not reach temperature 1 in {max_stages} stages")
    flat = np.asarray(jax.vmap(jax.vmap(target.constrain_flat))(x))
    stages = np.asarray(stages, float)
    return dict(log_z=np.asarray(lz), grads=float(stages.mean()) * n * (1 + K * L), stages=float(stages.mean()),
                time=secs, draws=flat)


def w2(draws, target):
    from samplax.diagnostics import wasserstein

    method = "sliced" if len(target.names) > 3 else "auto"
    # 1024 draws for every config, spread over all repeats and over each population (waste-free: many chains);
    # a bimodal target's W2 is dominated by the mode weights, which vary by population
    idx = np.linspace(0, draws.shape[1] - 1, 1024 // draws.shape[0]).astype(int)
    return float(wasserstein(draws[:, idx], target, method=method, per_chain=False, reps=2).pooled)


def bench(name, n, reps, equal_budget):
    target = samplax.models.get(name)
    configs = {
        "samplax default": lambda m: run_samplax(target, m, reps, 0),  # waste-free, MALA, P = 10
        "samplax hmc wf": lambda m: run_samplax(target, m, reps, 0, **HMC),  # the default before MALA
        "samplax standard": lambda m: run_samplax(target, m, reps, 0, waste_free=False, **HMC),
        "samplax persistent": lambda m: run_samplax(target, m, reps, 0, persistent=True, target_ess=1.0, **HMC),
        "blackjax plain": lambda m: run_blackjax(target, m, reps, 0, best=False),
        "blackjax best": lambda m: run_blackjax(target, m, reps, 0, best=True),
    }
    rows = {}
    # the budget: blackjax plain's gradients at N = n (the costliest config per particle, so no config is sized
    # below N = n / 2 or so and none hits a floor)
    anchor = "blackjax plain"
    anchor_run = {**configs[anchor](n), "n": n}
    base = anchor_run["grads"]
    for label, fn in configs.items():
        m = n
        if equal_budget and label != anchor:
            pilot = fn(max(n // 4, 32))
            m = max(32, int(round(base / (pilot["grads"] / max(n // 4, 32)))))
        r = anchor_run if label == anchor else {**fn(m), "n": m}
        r["w2"] = w2(r["draws"], target)
        rows[label] = r
    print(f"\n{name} (d={target.dim}, {reps} repeats, exact log Z {target.log_z})")
    print(f"{'config':20s} {'N':>6s} {'stages':>7s} {'grads/rep':>10s} {'log Z':>9s} {'sd':>7s} {'sd@budget':>9s} "
          f"{'|err|':>7s} {'W2':>7s} {'sec':>6s}")
    for label, r in rows.items():
        sd = np.std(r["log_z"], ddof=1)
        sdb = sd * np.sqrt(r["grads"] / base)
        err = abs(np.log(np.mean(np.exp(r["log_z"] - r["log_z"].max()))) + r["log_z"].max() - target.log_z) \
            if target.log_z is not None else float("nan")
        print(f"{label:20s} {r['n']:6d} {r['stages']:7.1f} {r['grads']:10.3g} {np.mean(r['log_z']):9.3f} {sd:7.3f} "
              f"{sdb:9.3f} {err:7.3f} {r['w2']:7.3f} {r['time']:6.2f}")
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="N=256, 8 repeats (< 3 min on 2 cores)")
    ap.add_argument("--equal-budget", action="store_true", help="pilot runs set each config's N to equal gradients")
    ap.add_argument("--targets", default="eight_schools,bimodal_mixture")
    args = ap.parse_args()
    n, reps = (256, 8) if args.quick else (512, 64)
    for name in args.targets.split(","):
        bench(name, n, reps, args.equal_budget)


if __name__ == "__main__":
    main()
