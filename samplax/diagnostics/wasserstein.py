"""Wasserstein error of a run (DataTree or (chain, draw, dim) array) against a Target's ground truth.

`wasserstein` (pooled and per chain, with noise floors at the sizes used), `wasserstein_curve` (error vs
draws and gradients) and `second_moment_bias_curve` (b2). The estimators live in wasserstein_estimators.py,
the floors in noise_floor.py; their names are re-exported here.
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np

from samplax.diagnostics.noise_floor import (  # noqa: F401  (re-exported)
    NoiseFloor,
    _check_method,
    _flat_dict,
    _reference_sampler,
    auto_method,
    noise_floor,
    pool_size,
    split_sizes,
    thin,
)
from samplax.diagnostics.wasserstein_estimators import (  # noqa: F401  (re-exported)
    DIRECTIONS,
    EXACT_MAX_POINTS,
    METHODS,
    SINKHORN_MAX_POINTS,
    Distance,
    distance,
    exact_wasserstein,
    gaussian_fit_w2,
    gaussian_w2,
    sinkhorn_w2,
    sliced_w2,
    sphere_directions,
    w2_1d,
)


def draws_array(data, target) -> np.ndarray:
    """(chain, draw, dim) array of a DataTree's posterior flattened in `target.names` order, or a checked array."""
    d = len(target.names)
    if hasattr(data, "children") or hasattr(data, "groups"):
        if "posterior" not in data.children:
            raise ValueError("the DataTree has no 'posterior' group; pass samplax.sample(...) output")
        post = data["posterior"]
        parts = []
        for name, shape in target.var_shapes.items():
            if name not in post.data_vars:
                raise ValueError(f"posterior has no variable {name!r} of target {target.name!r} "
                                 f"(has {sorted(post.data_vars)})")
            da = post[name]
            da = da.transpose("chain", "draw", *[x for x in da.dims if x not in ("chain", "draw")])
            arr = np.asarray(da.values, dtype=np.float64)
            parts.append(arr.reshape(arr.shape[0], arr.shape[1], int(np.prod(shape, dtype=int))))
        arr = np.concatenate(parts, axis=2)
    else:
        arr = np.asarray(data, dtype=np.float64)
        if arr.ndim != 3:
            raise ValueError(f"draws must have shape (chain, draw, dim), got {arr.shape}; "
                             "for a single chain use draws[None]")
    if arr.shape[2] != d:
        raise ValueError(f"draws have dimension {arr.shape[2]} but target {target.name!r} has {d} "
                         f"flat variables {target.names[:5]}{'...' if d > 5 else ''}")
    return arr


def _n_grad(data, shape) -> np.ndarray | None:
    """Cumulative gradient evaluations per chain after each draw, (chain, draw), from sample_stats.n_grad."""
    if not (hasattr(data, "children") and "sample_stats" in data.children
            and "n_grad" in data["sample_stats"].data_vars):
        return None
    g = data["sample_stats"]["n_grad"].transpose("chain", "draw")
    g = np.asarray(g.values, dtype=np.float64)
    if g.shape != shape:
        raise ValueError(f"sample_stats.n_grad has shape {g.shape}, posterior has (chain, draw) = {shape}")
    return np.cumsum(g, axis=1)


@dataclasses.dataclass(frozen=True)
class WassersteinResult:
    """Pooled and per-chain distance to the target, with the noise floors at the same sizes.

    The floors are for iid draws; correlated draws carry about the noise of ESS iid draws, so a
    well-mixing chain can sit above `floor` and still below `noise_floor(target, ess, m=n)`.
    """

    method: str
    pooled: Distance
    floor: NoiseFloor | None
    per_chain: np.ndarray | None
    floor_per_chain: NoiseFloor | None
    num_chains: int
    num_draws: int

    def __str__(self) -> str:
        s = f"{self.method}: pooled {float(self.pooled):.4g}"
        if self.floor is not None:
            s += (f" (noise floor {self.floor.mean:.4g} +- {self.floor.std:.3g} at n={self.floor.n}, "
                  f"m={self.floor.m})")
        if self.pooled.n < self.num_chains * self.num_draws:
            s += f"; {self.pooled.n} of {self.num_chains * self.num_draws} draws used (reference pool)"
        if self.per_chain is not None:
            s += f"; per chain {np.array2string(self.per_chain, precision=3)}"
        if self.floor_per_chain is not None:
            s += f" (floor {self.floor_per_chain.mean:.4g} +- {self.floor_per_chain.std:.3g})"
        return s


def _against_truth(X, target, method, seed, m, kw):
    if method == "gaussian_fit":
        if target.mean is None or target.cov is None:
            raise ValueError(f"method='gaussian_fit' needs target.mean and target.cov; "
                             f"target {target.name!r} lacks them")
        return gaussian_fit_w2(X, target.mean, target.cov)
    return distance(X, _reference_sampler(target)(seed, m), method, **kw)


def _floor(target, n, method, reps, seed, m, kw):
    if method == "gaussian_fit" and target.sample is None and target.reference_draws is None:
        warnings.warn(f"target {target.name!r} has no sampler: no noise floor for method='gaussian_fit'",
                      RuntimeWarning, stacklevel=4)
        return None
    return noise_floor(target, n, method=method, reps=reps, m=None if method == "gaussian_fit" else m,
                       seed=seed, **kw)


def _compare(X, target, method, reps, seed, n_ref, kw, with_floor=True):
    """Distance of run draws X to exact draws and its noise floor, at sizes the reference pool allows.

    With a finite pool of reference draws (posteriordb) the run is thinned evenly and compared with
    m reference draws such that the floor's two disjoint sets of sizes (n, m) fit the pool
    (`split_sizes`); the Distance and the NoiseFloor record the sizes really used.
    """
    pool = pool_size(target)
    if method == "gaussian_fit":  # compares with (mean, cov); the floor draws n exact points
        n, m = (len(X), 0) if pool is None else (min(len(X), pool), 0)
    else:
        n, m = split_sizes(len(X), pool, n_ref)
    d = _against_truth(thin(X, n), target, method, seed, m, kw)
    d.info["run_draws_given"] = len(X)
    return d, (_floor(target, n, method, reps, seed + 10_000, m, kw) if with_floor else None)


def wasserstein(data, target, method: str = "auto", *, per_chain: bool = True, reps: int = 5, seed: int = 0,
                n_ref: int | None = None, **kw) -> WassersteinResult:
    """Distance between draws (DataTree or (chain, draw, dim) array) and the target's exact draws.

    The draws (pooled over chains, and each chain alone) are compared with exact draws of the same
    size (or `n_ref`), and the noise floor at those sizes is reported next to them. When the truth is
    a finite pool of reference draws too small for 2x the run, the run is thinned to fit (see
    `_compare`); `pooled.n`, `pooled.m` and `floor.n`, `floor.m` say what was used.
    method: "auto" (see `auto_method`), or one of METHODS; extra keywords go to the estimator.
    """
    draws = draws_array(data, target)
    C, T, d = draws.shape
    if T < 2:
        raise ValueError(f"need at least 2 draws per chain, got {T}")
    method = auto_method(C * T, d) if method == "auto" else method
    _check_method(method, d)
    pooled, floor = _compare(draws.reshape(C * T, d), target, method, reps, seed + 10_000, n_ref, kw)
    chains = floor_c = None
    if per_chain and C > 1:
        # every chain has the same size: one floor serves them all
        res = [_compare(draws[c], target, method, reps, seed + 30_000 + 100 * c, n_ref, kw, with_floor=c == 0)
               for c in range(C)]
        chains, floor_c = np.array([float(r[0]) for r in res]), res[0][1]
    return WassersteinResult(method, pooled, floor, chains, floor_c, C, T)


def _checkpoints(T: int, num_points: int, min_draws: int) -> np.ndarray:
    if T < min_draws:
        raise ValueError(f"a curve needs at least min_draws={min_draws} draws per chain, got {T}")
    return np.unique(np.round(np.geomspace(min_draws, T, num_points)).astype(int))


def wasserstein_curve(data, target, method: str = "auto", *, num_points: int = 8, min_draws: int = 10,
                      reps: int = 3, seed: int = 0, include_warmup: bool = False, **kw) -> dict[str, np.ndarray]:
    """Pooled distance to the target after the first k draws of every chain, at log-spaced k.

    Returns arrays: draws (k), n_grad (cumulative gradient evaluations per chain at k, averaged
    over chains; NaN without sample_stats.n_grad; warmup's share added if include_warmup), value,
    floor_mean, floor_std (noise floor at the sizes compared: C*k, or fewer with a small reference pool;
    see `wasserstein`), and the method used.
    """
    draws = draws_array(data, target)
    C, T, d = draws.shape
    method = auto_method(C * T, d) if method == "auto" else method
    _check_method(method, d)
    ks = _checkpoints(T, num_points, min_draws)
    grads = _n_grad(data, (C, T))
    n_grad = np.full(len(ks), np.nan) if grads is None else grads[:, ks - 1].mean(axis=0)
    if include_warmup and grads is not None:
        n_grad = n_grad + float(data.attrs.get("n_grad_warmup", 0)) / C
    value, fm, fs = [], [], []
    for i, k in enumerate(ks):
        dist, fl = _compare(draws[:, :k].reshape(C * k, d), target, method, reps, seed + 10_000 + 100 * i, None, kw)
        value.append(float(dist))
        fm.append(np.nan if fl is None else fl.mean)
        fs.append(np.nan if fl is None else fl.std)
    return {"draws": ks, "n_grad": n_grad, "value": np.array(value), "floor_mean": np.array(fm),
            "floor_std": np.array(fs), "method": method}


# ------------------------------------------------------------------------------- second-moment bias
def _second_moment_truth(target, assume_gaussian: bool, n_ref: int, seed: int):
    """E[x_i^2] and Var[x_i^2] on the flat constrained names: exact where the target allows, else from exact draws."""
    ex2 = var2 = None
    if target.mean is not None and target.cov is not None:
        mu = np.asarray(target.mean, float)
        s2 = np.diag(np.asarray(target.cov, float))
        ex2 = mu**2 + s2
        if assume_gaussian:
            var2 = 2 * s2**2 + 4 * mu**2 * s2  # Var[x^2] for x ~ N(mu, s2)
    elif assume_gaussian:
        raise ValueError(f"assume_gaussian=True needs target.mean and target.cov; target {target.name!r} lacks them")
    if var2 is None:
        pool = pool_size(target)  # a finite reference pool: use all of it rather than ask for more
        try:
            ref = _reference_sampler(target)(seed, n_ref if pool is None else min(n_ref, pool))
        except ValueError as err:
            raise ValueError(f"second-moment bias needs Var[x^2] of the target: {err}") from err
        var2 = np.var(ref**2, axis=0, ddof=1)
        if ex2 is None:
            ex2 = np.mean(ref**2, axis=0)
    return ex2, var2


def second_moment_bias_curve(data, target, *, assume_gaussian: bool = False, n_ref: int = 100_000,
                             seed: int = 0, include_warmup: bool = False) -> dict[str, np.ndarray]:
    """Squared bias of second moments after each draw, against gradient evaluations.

    b2_avg(n) = mean_i (E_n[x_i^2] - E[x_i^2])^2 / Var[x_i^2] and b2_max (max over i), with E_n the
    average over the first n draws of all chains (per chain in b2_avg_per_chain / b2_max_per_chain).
    For iid draws E[b2_avg] = 1/n_eff, so b2 = 0.01 is ~100 effective draws.
    E[x^2] is exact from target.mean/cov when known; Var[x^2] is exact only with assume_gaussian=True,
    else estimated from `n_ref` exact draws.
    """
    # b2 as in Robnik et al. 2023, Microcanonical HMC (arXiv:2212.08549) and MAMS (arXiv:2503.01707).
    draws = draws_array(data, target)
    C, T, d = draws.shape
    ex2, var2 = _second_moment_truth(target, assume_gaussian, n_ref, seed)
    if np.any(var2 <= 0):
        raise ValueError(f"Var[x^2] is zero for {np.asarray(target.names)[var2 <= 0].tolist()}; b2 undefined")
    k = np.arange(1, T + 1)
    run2 = np.cumsum(draws**2, axis=1) / k[None, :, None]  # (chain, draw, dim)
    per = (run2 - ex2) ** 2 / var2
    pooled = (run2.mean(axis=0) - ex2) ** 2 / var2
    grads = _n_grad(data, (C, T))
    n_grad = np.full(T, np.nan) if grads is None else grads.mean(axis=0)
    if include_warmup and grads is not None:
        n_grad = n_grad + float(data.attrs.get("n_grad_warmup", 0)) / C
    return {"draws": k, "n_grad": n_grad, "b2_avg": pooled.mean(-1), "b2_max": pooled.max(-1),
            "b2_avg_per_chain": per.mean(-1), "b2_max_per_chain": per.max(-1)}
