"""Population output as an ArviZ DataTree, and log Z pooled over independent populations."""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def pooled_log_z(log_z_per_population) -> tuple[float, float]:
    """log of the mean of the C unbiased estimates Z_c, and its standard error on the log scale from their spread.

    Mean of unbiased estimates is unbiased for Z; its log has SE ~ sd(Z_c) / (sqrt(C) mean(Z_c))
    (delta method). With one population the SE is unknown: NaN.
    """
    lz = np.asarray(log_z_per_population, dtype=float).ravel()
    c = lz.size
    if not np.all(np.isfinite(lz)):
        return float("nan"), float("nan")
    m = lz.max()
    z = np.exp(lz - m)
    pooled = float(m + math.log(z.mean()))
    if c < 2:
        return pooled, float("nan")
    se = float(z.std(ddof=1) / math.sqrt(c) / z.mean())
    return pooled, se


def pooled_log_z_se_within(log_z_per_population, log_z_var_per_population) -> float:
    """SE of log(mean_c Z_c) from each population's own variance estimate v_c of log Z_c (delta method: the C
    populations are independent with relative variance var Z_c / Z^2 ~ v_c): sqrt(mean_c v_c / C). NaN when
    any v_c or log Z_c is not finite (e.g. persistent sampling, which has no within-population estimator)."""
    lz = np.asarray(log_z_per_population, dtype=float).ravel()
    v = np.asarray(log_z_var_per_population, dtype=float).ravel()
    if lz.size == 0 or v.shape != lz.shape or not (np.all(np.isfinite(lz)) and np.all(np.isfinite(v))):
        return float("nan")
    return float(math.sqrt(np.mean(np.maximum(v, 0.0)) / v.size))


def log_z_var_per_population(stage_stats: dict[str, Any]):
    """Each population's within-population variance of log Z: the sum of stage_stats["log_z_var_increment"]
    over its active stages; None when the sampler reports none."""
    if "log_z_var_increment" not in stage_stats:
        return None
    v = np.asarray(stage_stats["log_z_var_increment"], dtype=float)
    if "active" in stage_stats:
        v = np.where(np.asarray(stage_stats["active"]).astype(bool), v, 0.0)
    return v.reshape(v.shape[0], -1).sum(axis=1)


def to_population_datatree(target, particles, stage_stats: dict[str, Any], log_z, n_grad,
                           attrs: dict[str, Any], particle_stats: dict[str, Any] | None = None):
    """`posterior` (chain, draw) = (population, equally weighted particle); `stage_stats` group (chain, stage);
    `particle_stats` group (chain, draw) when the sampler reports a value per particle."""
    from samplax.results import _attr, _clean_stats, constrain_draws
    from arviz_base import dict_to_dataset, from_dict

    particles = np.asarray(particles)
    log_z = np.asarray(log_z, dtype=float)
    n_grad = np.asarray(n_grad)
    pooled, se_between = pooled_log_z(log_z)
    # log_z_se: from the populations' own variance estimates when the sampler gives them (calibrated with few
    # populations), else from the spread of the populations; both kept
    var_pop = log_z_var_per_population(stage_stats)
    se_within = float("nan") if var_pop is None else pooled_log_z_se_within(log_z, var_pop)
    se = se_within if math.isfinite(se_within) else se_between
    extra = {} if var_pop is None else {"log_z_se_within": se_within, "log_z_var_per_population": var_pop}
    attrs = {
        **attrs,
        "log_z": pooled, "log_z_se": se, "log_z_se_between": se_between, **extra, "log_z_per_population": log_z,
        "num_particles": int(particles.shape[1]), "n_grad_warmup": 0, "n_grad_sampling": int(n_grad.sum()),
        "n_grad_per_population": n_grad.astype(np.int64),
    }
    stages = _clean_stats(stage_stats)
    dt = from_dict({"posterior": constrain_draws(target, particles)})
    # stage stats are (chain, stage, ...): their sample dims are (chain, stage), not (chain, draw)
    dims = {k: [f"{k}_dim_{i}" for i in range(v.ndim - 2)] for k, v in stages.items()}
    dt["stage_stats"] = dict_to_dataset(stages, dims=dims, sample_dims=["chain", "stage"])
    if particle_stats:
        per = {k: np.asarray(v) for k, v in particle_stats.items()}
        pdims = {k: [f"{k}_dim_{i}" for i in range(v.ndim - 2)] for k, v in per.items()}
        dt["particle_stats"] = dict_to_dataset(per, dims=pdims, sample_dims=["chain", "draw"])
    clean = {k: _attr(v) for k, v in attrs.items()}
    dt.attrs.update(clean)
    dt["posterior"].attrs.update(clean)
    return dt
