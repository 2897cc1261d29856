"""samplax overhead, measured side by side in one run.

1. samplax `sample()` vs a raw blackjax `lax.scan` loop running the same NUTS kernel, chains and
   step count (no warmup in either, same step size and mass matrix): ratio of wall times,
   compile excluded in both (each is run once to compile, then timed).
2. samplax NUTS vs numpyro `MCMC(NUTS)` on eight schools (non-centred), 4 vectorised chains,
   1000 warmup + 1000 draws each: min bulk ESS per second of wall time (second run, so both
   reuse their compiled code).
3. Every registered chain sampler: samplax's sampling loop (`attrs["sampling_time"]`, vectorised chains, no
   warmup, the same fixed params) vs a raw `lax.scan` over that sampler's own kernel step
   (`Sampler.build(target, params).step`, vmapped, positions and stats kept): the run machinery's overhead.

Usage: python benchmarks/overhead.py [--quick] [--repeats N]
"""

from __future__ import annotations

import argparse
import functools
import time

import jax
import jax.numpy as jnp
import numpy as np

jax.config.update("jax_enable_x64", True)

import samplax  # noqa: E402
from samplax.samplers.nuts_kernel import nuts as robust_nuts  # noqa: E402


def _best(fn, repeats):
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def loop_overhead(num_chains, num_samples, repeats):
    """Raw loops close over the kernel parameters (XLA may fold them) or take them as per-chain arrays."""
    target = samplax.models.get("ill_conditioned_gaussian", dim=20, condition_number=100.0)
    step_size, imm = 0.1, jnp.ones(target.dim)
    positions = jax.vmap(target.init)(jax.random.split(jax.random.PRNGKey(1), num_chains))
    kw = dict(num_chains=num_chains, num_warmup=0, num_samples=num_samples, progress=False, seed=0,
              step_size=step_size, inverse_mass_matrix=imm, init_positions=positions)
    ss, imms = jnp.full(num_chains, step_size), jnp.tile(imm, (num_chains, 1))

    def make_raw(params_as_arrays):
        def kernel(s, m):
            # samplax's NUTS kernel (blackjax's with Stan's seam U-turn checks, samplers/nuts_kernel.py): the same
            # kernel `sample()` runs, so only the loop around it differs
            return robust_nuts(target.logdensity, s, m) if params_as_arrays else \
                robust_nuts(target.logdensity, step_size, imm)

        @jax.jit
        def raw(positions, key, ss, imms):
            states = jax.vmap(lambda p, s, m: kernel(s, m).init(p))(positions, ss, imms)
            chain_keys = jax.vmap(lambda c: jax.random.fold_in(key, c))(jnp.arange(num_chains))

            def body(states, t):
                keys = jax.vmap(lambda k: jax.random.fold_in(k, t))(chain_keys)
                states, info = jax.vmap(lambda k, st, s, m: kernel(s, m).step(k, st))(keys, states, ss, imms)
                return states, (states.position, states.logdensity, info.acceptance_rate, info.is_divergent,
                                info.energy, info.num_integration_steps)

            return jax.lax.scan(body, states, jnp.arange(num_samples))[1]

        return raw

    key = jax.random.PRNGKey(0)
    times = {}
    for label, flag in (("raw (params folded in)", False), ("raw (params as arrays)", True)):
        raw = make_raw(flag)
        jax.block_until_ready(raw(positions, key, ss, imms))
        times[label] = _best(lambda: jax.block_until_ready(raw(positions, key, ss, imms)), repeats)
    for method in ("vectorized", "mapped"):  # vectorized is the raw loop's layout; mapped is the CPU default
        kwm = {**kw, "chain_method": method}
        samplax.sample(target, "nuts", **kwm)  # compile
        dts = []
        times[f"samplax sample() end to end ({method})"] = _best(
            lambda: dts.append(samplax.sample(target, "nuts", **kwm)), repeats)
        times[f"samplax sampling loop ({method})"] = min(float(dt.attrs["sampling_time"]) for dt in dts)
    return times


def ess_per_second(num_warmup, num_samples, repeats):
    import numpyro
    from numpyro.infer import MCMC, NUTS

    from samplax.models.eight_schools import _data, eight_schools_noncentered_model

    J, sigma, y = _data()
    target = samplax.models.get("eight_schools_noncentered")
    kw = dict(num_chains=4, num_warmup=num_warmup, num_samples=num_samples, progress=False)

    def run_samplax(seed):
        dt = samplax.sample(target, "nuts", seed=seed, **kw)
        return dt, float(samplax.diagnostics.summary(dt, var_names=["mu", "tau", "theta_tilde"])["ess_bulk"].min())

    def numpyro_runner(chain_method):
        # J is static (plate size); the data are jitted model arguments, so reruns reuse the compiled code
        mcmc = MCMC(NUTS(functools.partial(eight_schools_noncentered_model, J)), num_warmup=num_warmup,
                    num_samples=num_samples, num_chains=4, chain_method=chain_method, progress_bar=False,
                    jit_model_args=True)

        def run(seed):
            mcmc.run(jax.random.PRNGKey(seed), sigma, y=y)
            s = mcmc.get_samples(group_by_chain=True)
            import arviz_base

            dt = arviz_base.from_dict({"posterior": {k: np.asarray(s[k]) for k in ("mu", "tau", "theta_tilde")}})
            return dt, float(samplax.diagnostics.summary(dt)["ess_bulk"].min())

        return run

    numpyro.set_host_device_count(1)
    out = {}
    for name, fn in (("samplax", run_samplax), ("numpyro", numpyro_runner("vectorized")),
                     ("numpyro sequential", numpyro_runner("sequential"))):
        fn(100)  # compile / warm caches
        rates, ess_list, times = [], [], []
        for r in range(repeats):
            t0 = time.perf_counter()
            _, ess = fn(r)
            dt = time.perf_counter() - t0
            rates.append(ess / dt)
            ess_list.append(ess)
            times.append(dt)
        out[name] = (np.median(rates), np.median(ess_list), np.median(times))
    return out


FIXED = {"mclmc": {"step_size": 0.1, "L": 1.0}, "mams": {"step_size": 0.1, "L": 1.0},
         "secd": {"step_size": 0.1, "L": 1.0}, "sgld": None}  # sgld needs a minibatch data model: left out


def every_sampler_overhead(num_chains, num_samples, repeats):
    from samplax.run import resolve_sampler

    target = samplax.models.get("ill_conditioned_gaussian", dim=20, condition_number=100.0)
    positions = jax.vmap(target.init)(jax.random.split(jax.random.PRNGKey(1), num_chains))
    out = {}
    for name in samplax.samplers.available():
        settings = FIXED.get(name, {"step_size": 0.1})
        if settings is None:
            continue
        s = resolve_sampler(name, dict(settings))
        params = s.initial_params(target)

        @jax.jit
        def raw(positions, key):
            chain_keys = jax.vmap(lambda c: jax.random.fold_in(key, c))(jnp.arange(num_chains))
            states = jax.vmap(lambda p, k: s.build(target, params).init(p, k))(positions, chain_keys)

            def body(states, t):
                keys = jax.vmap(lambda k: jax.random.fold_in(k, t))(chain_keys)

                def one(k, st):
                    new, info = s.build(target, params).step(k, st)
                    return new, (new.position, s.stats(new, info, params))

                return jax.vmap(one)(keys, states)

            return jax.lax.scan(body, states, jnp.arange(num_samples))[1]

        key = jax.random.PRNGKey(0)
        jax.block_until_ready(raw(positions, key))
        t_raw = _best(lambda: jax.block_until_ready(raw(positions, key)), repeats)
        kw = dict(num_chains=num_chains, num_warmup=0, num_samples=num_samples, progress=False, seed=0,
                  init_positions=positions, chain_method="vectorized", **settings)
        samplax.sample(target, name, **kw)  # compile
        t_loop = min(float(samplax.sample(target, name, **kw).attrs["sampling_time"]) for _ in range(repeats))
        out[name] = (t_raw, t_loop)
    return out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--quick", action="store_true")
    p.add_argument("--repeats", type=int, default=None)
    a = p.parse_args()
    repeats = a.repeats or (2 if a.quick else 5)
    n = 300 if a.quick else 1000

    times = loop_overhead(num_chains=4, num_samples=n, repeats=repeats)
    base = times["raw (params folded in)"]
    print(f"== loop overhead: NUTS, 4 chains x {n} draws, ill-conditioned Gaussian d=20 (best of {repeats}) ==")
    for label, t in times.items():
        print(f"{label:30s} {t:8.3f} s   ratio to raw (folded) {t / base:.3f}")
    print("goal: samplax sampling loop (vectorized, the raw loop's layout) / raw <= 1.05; mapped (lax.map, the CPU "
          "default) shows what the CPU default buys over vmap")

    res = ess_per_second(num_warmup=n, num_samples=n, repeats=repeats)
    print(f"\n== eight schools (non-centred), NUTS, 4 chains (samplax: its default layout, lax.map on CPU; numpyro: "
          f"vectorized and sequential), {n} warmup + {n} draws (median of {repeats}) ==")
    for name, (rate, ess, secs) in res.items():
        print(f"{name:18s} min bulk ESS {ess:8.0f}   wall {secs:6.2f} s   ESS/s {rate:9.1f}")
    print(f"ratio samplax / numpyro (vectorized) ESS/s: {res['samplax'][0] / res['numpyro'][0]:.2f}  (goal >= 1.0)")
    print(f"ratio samplax / numpyro (sequential) ESS/s: {res['samplax'][0] / res['numpyro sequential'][0]:.2f}")

    per = every_sampler_overhead(num_chains=4, num_samples=n, repeats=repeats)
    print(f"\n== every chain sampler: samplax sampling loop vs raw lax.scan over its kernel, 4 chains x {n} draws, "
          f"d=20 (best of {repeats}) ==")
    for name, (t_raw, t_loop) in per.items():
        print(f"{name:12s} raw {t_raw:8.4f} s   samplax loop {t_loop:8.4f} s   ratio {t_loop / t_raw:6.3f}")


if __name__ == "__main__":
    main()
