"""`sample()` for population samplers: independent populations, vmapped or one by one, then a DataTree."""

from __future__ import annotations

import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from samplax import checks
from samplax.diagnostics.trust import verify
from samplax.particles import base
from samplax.particles.progress import StageProgress

CHAIN_METHODS = ("vectorized", "sequential")


def is_population(model, sampler) -> bool:
    """Whether `sample(model, sampler)` is a population run (particles) rather than a chain run."""
    if isinstance(sampler, base.PopulationSampler) or base.is_registered(sampler):
        return True
    return hasattr(sampler, "as_population_sampler")


def resolve(sampler, settings: dict) -> base.PopulationSampler:
    if isinstance(sampler, base.PopulationSampler):
        if settings:
            raise TypeError(f"settings {sorted(settings)} given with a built sampler; build it with them instead")
        return sampler
    if hasattr(sampler, "as_population_sampler"):
        return sampler.as_population_sampler(**settings)
    return base.get(sampler, **settings)


def as_target(model):
    """The Target whose `constrain` names the particles (a Target, or a score model's `as_target()`)."""
    from samplax.target import Target

    if isinstance(model, Target):
        return model
    if hasattr(model, "as_target"):
        return model.as_target()
    raise TypeError(f"population samplers take a samplax.Target or a score model, got {type(model).__name__}")


def sample_population(model, sampler, *, num_particles: int = 1000, num_chains: int = 4, seed: int = 0,
                      chain_method: str = "vectorized", progress: bool | None = None, **settings):
    """Run `num_chains` independent populations of `num_particles`; return an ArviZ DataTree.

    `posterior` has dims (chain, draw) = (population, equally weighted particle); the group
    `stage_stats` holds per-stage statistics; `attrs["log_z"]`, `attrs["log_z_se"]` pool the
    populations' estimates (see `samplax.particles.results.pooled_log_z`).
    """
    for name in ("num_samples", "num_warmup", "thinning"):
        if name in settings:
            raise TypeError(f"{name} is a chain-sampler setting; population samplers take num_particles "
                            f"(and num_steps where the sampler has a time grid)")
    num_particles = checks.integer("num_particles", num_particles, 2)  # Python ints from here on
    num_chains = checks.integer("num_chains", num_chains, 1)
    seed = checks.integer("seed", seed, 0)
    if not checks.member(chain_method, CHAIN_METHODS):
        raise ValueError(f"chain_method for population samplers must be one of {CHAIN_METHODS}, got {chain_method!r}")
    s = resolve(sampler, settings)
    target = as_target(model)
    bar = StageProgress.create(progress, total=0, label=s.name, value_name=s.stage_label)

    root = jax.random.PRNGKey(seed)
    keys = jax.vmap(lambda c: jax.random.fold_in(root, c))(jnp.arange(num_chains))

    def one(key):
        return s.run(model, key, num_particles, bar)

    batched = jax.jit(jax.vmap(one))
    cache = _program_cache(s, target, (num_particles, chain_method, bar.enabled))
    from samplax.reference_fit import tally

    # reference fits and checks made while tracing (tempering), outside the traced run's own counts
    with tally() as setup_cost:
        t0 = time.perf_counter()
        if chain_method == "vectorized":
            exe = _compile(cache, batched, keys, bar, s, num_chains, num_particles)
            compile_time = time.perf_counter() - t0
            bar.start()
            t1 = time.perf_counter()
            out = jax.block_until_ready(exe(keys))
            run_time = time.perf_counter() - t1
        else:
            exe = _compile(cache, batched, keys[:1], bar, s, num_chains, num_particles)
            compile_time = time.perf_counter() - t0
            bar.start()
            t1 = time.perf_counter()
            parts = [jax.block_until_ready(exe(keys[c:c + 1])) for c in range(num_chains)]
            out = jax.tree.map(lambda *xs: jnp.concatenate(xs), *parts)
            run_time = time.perf_counter() - t1
        extra = _sampler_findings(s, target)  # cached with the reference fit: normally no evaluations
    bar.close()

    from samplax.particles.results import to_population_datatree
    from samplax.results import versions

    attrs: dict[str, Any] = {
        "sampler": s.name, "settings": repr(s.settings), "seed": seed, "num_chains": num_chains,
        "chain_method": chain_method, "target": getattr(target, "name", "model"), "population": 1,
        "compile_time": compile_time, "warmup_time": 0.0, "sampling_time": run_time, **versions(),
    }
    particles = np.asarray(out.particles)
    attrs["n_nonfinite"] = int((~np.all(np.isfinite(particles), axis=-1)).sum())
    stats = {k: np.asarray(v) for k, v in out.stage_stats.items()}
    if "n_nonfinite" in stats:  # NaN/inf log-likelihood evaluations, given weight zero by the sampler
        attrs["n_nonfinite_loglik"] = int(np.sum(stats["n_nonfinite"]))
    attrs["estimates_log_z"] = int(getattr(s, "estimates_log_z", True))
    per_particle = {k: np.asarray(v) for k, v in out.particle_stats.items()}
    # int64 totals on the host: a float32/int32 run's per-population total may exceed 2**31
    n_grad = base.total_n_grad(out.n_grad, stats)
    attrs.update(setup_cost.attrs())
    dt = to_population_datatree(target, particles, stats, out.log_z, n_grad, attrs, per_particle)
    if attrs["estimates_log_z"]:  # an independent importance-sampling check of log Z (diagnostics.evidence_check)
        from samplax.diagnostics.evidence_check import log_z_check

        with tally() as check_cost:
            is_attrs, found = log_z_check(target, particles, float(dt.attrs["log_z"]), float(dt.attrs["log_z_se"]))
        dt.attrs.update(is_attrs)
        dt.attrs["n_check_logdensity"] = check_cost.n_logdensity
        extra += found
    verify(dt, stacklevel=4, extra=extra)
    return dt


_PROGRAMS: dict = {}
MAX_PROGRAMS = 32


def _program_cache(s, target, layout) -> dict | None:
    """Compiled programs of samplers that opt in with `cache_key(target)` (samplers.meanfield), keyed on it, the
    target's program digest (compile_cache.program_digest) and the layout; None (compile afresh) otherwise."""
    key_fn = getattr(s, "cache_key", None)
    if key_fn is None:
        return None
    from samplax.compile_cache import program_digest

    key, digest = key_fn(target), program_digest(target)
    if key is None or digest is None:
        return None
    full = (s.name, key, digest, layout)
    if full not in _PROGRAMS and len(_PROGRAMS) >= MAX_PROGRAMS:
        _PROGRAMS.pop(next(iter(_PROGRAMS)))
    return _PROGRAMS.setdefault(full, {})


def _compile(cache, batched, keys, bar, s, num_chains, num_particles):
    shape_key = (jnp.shape(keys), str(jnp.result_type(keys)), str(jnp.result_type(float)))
    if cache is not None and shape_key in cache:
        return cache[shape_key]
    bar.note(f"{s.name}: compiling ({num_chains} population(s) x {num_particles} particles) ...")
    exe = batched.lower(keys).compile()
    if cache is not None:
        cache[shape_key] = exe
    return exe


def _sampler_findings(s, target) -> list[str]:
    """Findings the sampler made outside the traced run: a tempering reference that does not cover the posterior
    (cached with the reference fit, so this refits nothing), and any a built sampler attaches as `findings`."""
    out = list(getattr(s, "findings", None) or [])
    if "reference" in (s.settings or {}):
        from samplax.tempering import reference_report

        out += [r[len("coverage: "):] for r in reference_report(target, s.settings["reference"])
                if r.startswith("coverage:")]
    return out


def final_ess(stage_stats) -> np.ndarray:
    """Each population's last recorded ESS (the last `active` stage when the sampler keeps a stage buffer), from
    a dict of stage arrays or a DataTree's `stage_stats`; shape (populations,)."""
    e = np.asarray(stage_stats["ess"], dtype=float)
    if "active" not in stage_stats:
        return e[:, -1]
    act = np.asarray(stage_stats["active"]).astype(bool)
    return np.array([row[a][-1] if a.any() else np.nan for row, a in zip(e, act)])
