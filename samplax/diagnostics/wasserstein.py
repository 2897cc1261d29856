"""Wasserstein error of draws against ground truth (POT / ott-jax for the transport problems).

Estimators between point sets X (n, d) and Y (m, d), all returning a `Distance` (a float that
also records the method and the points used):
  exact_wasserstein  network simplex (POT `ot.emd2`), W1 or W2; subsamples above EXACT_MAX_POINTS
  sinkhorn_w2        sqrt of the debiased Sinkhorn divergence (ott-jax), for larger sets
  sliced_w2          sliced W2 with random or quasi-Monte Carlo (Sobol/Halton) directions, jitted
  w2_1d              exact W2 in 1D from quantile functions (unequal sizes handled)
  gaussian_fit_w2    closed-form W2 between the Gaussian fit of X and a Gaussian target
Plug-in estimates are biased upwards by sampling noise; `noise_floor` measures that noise
(the same distance between two independent exact samples) so an error can be read against it.
`wasserstein` / `wasserstein_curve` / `second_moment_bias_curve` apply this to a run and a Target.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
import scipy.linalg

# Network simplex needs the n x m cost matrix (200 MB at 5000 x 5000 in float64) and roughly
# cubic time (~10 s at 5000 points on one core); above this the points are subsampled, with a warning.
EXACT_MAX_POINTS = 5000
# Sinkhorn costs n*m per iteration for three problems (~seconds at 1e3 points on 2 CPU cores, so
# minutes at 1e4); above this it subsamples, with a warning.
SINKHORN_MAX_POINTS = 10000
METHODS = ("exact", "exact_w1", "sinkhorn", "sliced", "sliced_qmc", "1d", "gaussian_fit")
DIRECTIONS = ("random", "sobol", "halton")


class Distance(float):
    """A float that remembers how it was computed: `method`, points used `n`, `m`, `subsampled`, `info`."""

    def __new__(cls, value=0.0, method: str = "", n: int = 0, m: int = 0, subsampled: bool = False,
                info: dict | None = None):
        obj = super().__new__(cls, value)
        obj.method, obj.n, obj.m, obj.subsampled, obj.info = method, int(n), int(m), bool(subsampled), info or {}
        return obj

    def __repr__(self) -> str:
        sub = ", subsampled=True" if self.subsampled else ""
        return f"Distance({float(self):.6g}, method={self.method!r}, n={self.n}, m={self.m}{sub})"


# ------------------------------------------------------------------------------- input checks
def _points(x, name: str, min_points: int = 2) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2:
        raise ValueError(f"{name} must be an array of points of shape (n, d), got shape {x.shape}")
    if x.shape[0] < min_points:
        raise ValueError(f"{name} needs at least {min_points} points, got {x.shape[0]}")
    bad = ~np.all(np.isfinite(x), axis=1)
    if bad.any():
        raise ValueError(f"{name} has {int(bad.sum())} rows with NaN/inf (first at row {int(np.argmax(bad))}); "
                         "drop them or fix the sampler before measuring a distance")
    return x


def _pair(X, Y) -> tuple[np.ndarray, np.ndarray]:
    X, Y = _points(X, "X"), _points(Y, "Y")
    if X.shape[1] != Y.shape[1]:
        raise ValueError(f"X and Y must have the same dimension, got X {X.shape} and Y {Y.shape}")
    return X, Y


def _subsample(X, Y, max_points: int, seed: int, who: str):
    n, m = len(X), len(Y)
    if max(n, m) <= max_points:
        return X, Y, False
    rng = np.random.default_rng(seed)
    if n > max_points:
        X = X[rng.choice(n, max_points, replace=False)]
    if m > max_points:
        Y = Y[rng.choice(m, max_points, replace=False)]
    warnings.warn(
        f"{who}: {n} x {m} points exceed max_points={max_points}; using random subsets of {len(X)} x {len(Y)} "
        "points (the result has subsampled=True and the noise of the smaller sample). "
        "Use method='sliced_qmc' to use all points, or raise max_points if you have the time and memory.",
        RuntimeWarning, stacklevel=3,
    )
    return X, Y, True


# ------------------------------------------------------------------------------- estimators
def exact_wasserstein(X, Y, p: int = 2, *, max_points: int = EXACT_MAX_POINTS, subsample_seed: int = 0) -> Distance:
    """Exact W_p (p = 1 or 2) between the empirical measures of X and Y (POT network simplex, uniform weights)."""
    import ot

    if p not in (1, 2):
        raise ValueError(f"p must be 1 or 2, got {p!r}")
    X, Y = _pair(X, Y)
    n0, m0 = len(X), len(Y)
    X, Y, sub = _subsample(X, Y, max_points, subsample_seed, "exact_wasserstein")
    M = ot.dist(X, Y, metric="sqeuclidean" if p == 2 else "euclidean")
    a, b = np.full(len(X), 1.0 / len(X)), np.full(len(Y), 1.0 / len(Y))
    cost, log = ot.emd2(a, b, M, numItermax=10**9, log=True)
    if log.get("warning"):
        raise RuntimeError(f"exact_wasserstein: network simplex did not finish: {log['warning']}")
    return Distance(max(float(cost), 0.0) ** (1.0 / p), f"exact_w{p}", len(X), len(Y), sub,
                    {"n_given": n0, "m_given": m0})


@functools.partial(jax.jit, static_argnames=("max_iterations",))
def _sinkhorn_divergence(X, Y, epsilon, threshold, max_iterations):
    from ott.geometry import pointcloud
    from ott.tools.sinkhorn_divergence import sinkhorn_divergence

    div, out = sinkhorn_divergence(
        pointcloud.PointCloud, X, Y, epsilon=epsilon,
        solve_kwargs={"threshold": threshold, "max_iterations": max_iterations},
    )
    return div, jnp.stack([jnp.asarray(c) for c in out.converged])


def sinkhorn_w2(X, Y, *, epsilon: float = 0.01, threshold: float = 1e-3, max_iterations: int = 5000,
                max_points: int = SINKHORN_MAX_POINTS, subsample_seed: int = 0) -> Distance:
    """sqrt of the debiased Sinkhorn divergence S_eps(X, Y) with squared-Euclidean cost (ott-jax).

    ott-jax rather than POT: it computes the debiased divergence of Feydy et al. 2019 from entropic
    costs, OT_eps(X,Y) - (OT_eps(X,X) + OT_eps(Y,Y)) / 2 (log-domain, symmetric updates for the self
    terms, jittable, online cost matrices via ott's batch_size on accelerators); POT's
    `empirical_sinkhorn_divergence` subtracts linear transport costs <P, C> instead, a different quantity.
    On CPU both take seconds at 1e3 points (benchmarks/wasserstein_speed.py): exact is as fast there.
    epsilon: regularisation relative to the spread of the points: eps = epsilon * (tr Cov X + tr Cov Y),
      the mean squared distance between two points of the same set (so it does not change when Y is
      shifted). S_eps -> W2^2 as eps -> 0 (bias O(eps^2), Chizat et al. 2020); 0.01 was within ~3% of
      the exact W2^2 on Gaussians in d = 2..10 (tests/test_wasserstein.py); smaller eps needs more iterations.
    """
    X, Y = _pair(X, Y)
    if not epsilon > 0:
        raise ValueError(f"epsilon must be > 0 (a fraction of the spread tr Cov X + tr Cov Y), got {epsilon!r}")
    X, Y, sub = _subsample(X, Y, max_points, subsample_seed, "sinkhorn_w2")
    spread = float(np.sum(np.var(X, axis=0)) + np.sum(np.var(Y, axis=0)))
    if spread <= 0:
        raise ValueError("sinkhorn_w2: both point sets are single repeated points; use exact_wasserstein")
    eps = epsilon * spread
    div, conv = _sinkhorn_divergence(jnp.asarray(X), jnp.asarray(Y), eps, float(threshold), int(max_iterations))
    if not bool(np.all(np.asarray(conv))):
        warnings.warn(f"sinkhorn_w2: Sinkhorn did not converge in {max_iterations} iterations "
                      f"(epsilon={epsilon}); raise max_iterations or epsilon", RuntimeWarning, stacklevel=2)
    return Distance(float(np.sqrt(max(float(div), 0.0))), "sinkhorn", len(X), len(Y), sub,
                    {"epsilon": eps, "divergence": float(div)})


def sphere_directions(d: int, n: int, kind: str = "sobol", seed: int = 0) -> np.ndarray:
    """n unit vectors in R^d, shape (d, n) as POT's projections: normalised Gaussian quantiles of random/QMC points."""
    import scipy.stats

    if kind not in DIRECTIONS:
        raise ValueError(f"directions must be one of {DIRECTIONS}, got {kind!r}")
    if not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n_projections must be an integer >= 1, got {n!r}")
    if kind == "random":
        z = np.random.default_rng(seed).standard_normal((n, d))
    else:
        if kind == "sobol":
            if n & (n - 1):
                raise ValueError(f"Sobol directions need n_projections a power of 2 (balance), got {n}; "
                                 "use e.g. 128, 256, or directions='halton'")
            u = scipy.stats.qmc.Sobol(d, scramble=True, seed=seed).random(n)
        else:
            u = scipy.stats.qmc.Halton(d, scramble=True, seed=seed).random(n)
        z = scipy.stats.norm.ppf(np.clip(u, 1e-12, 1 - 1e-12))  # the Gaussian is rotation invariant
    z = z / np.linalg.norm(z, axis=1, keepdims=True)
    return z.T


def _quantile_pairs(n: int, m: int):
    """Index pairs and weights matching quantile functions of uniform n- and m-point measures.

    Breakpoints k/n and j/m are compared as integers k*m, j*n, so the coupling is exact.
    """
    t = np.union1d(np.arange(1, n + 1) * m, np.arange(1, m + 1) * n)
    iu = -(-t // m) - 1
    iv = -(-t // n) - 1
    w = np.diff(np.concatenate([[0], t])) / (n * m)
    return iu, iv, w


@jax.jit
def _sliced_costs_jax(X, Y, theta, iu, iv, w):
    xs = jnp.sort(theta.T @ X.T, axis=-1)  # (n_proj, n): contiguous sorts
    ys = jnp.sort(theta.T @ Y.T, axis=-1)
    return jnp.sum(w * (xs[:, iu] - ys[:, iv]) ** 2, axis=-1)


def _sliced_costs_numpy(X, Y, theta, iu, iv, w):
    equal = len(X) == len(Y)

    def part(t):
        xs, ys = np.sort(t.T @ X.T, axis=1), np.sort(t.T @ Y.T, axis=1)
        return np.mean((xs - ys) ** 2, axis=1) if equal else np.sum(w * (xs[:, iu] - ys[:, iv]) ** 2, axis=1)

    # chunks of <= ~32 MB per projected set; np.sort releases the GIL, so threads use every core
    threads = os.cpu_count() or 1
    k = -(-theta.shape[1] * max(len(X), len(Y)) // 2**22)
    k = min(theta.shape[1], -(-max(k, threads) // threads) * threads)
    chunks = np.array_split(theta, k, axis=1)
    with ThreadPoolExecutor(min(k, threads)) as ex:
        return np.concatenate(list(ex.map(part, chunks)))


def sliced_w2(X, Y, *, n_projections: int = 128, directions: str = "sobol", direction_seed: int = 0,
              projections=None, backend: str = "auto") -> Distance:
    """Sliced W2: sqrt of the mean over directions of the exact 1D W2^2 of the projections (POT's definition).

    directions: "sobol" (scrambled Sobol, default: lower error over directions than random),
      "halton", or "random" (uniform on the sphere, as POT). projections: a (d, n_proj) array overrides.
    backend: "jax" (jitted) or "numpy"; "auto" takes numpy on CPU, where XLA's sort was ~10x slower
      than numpy's (benchmarks/wasserstein_speed.py), and jax on accelerators.
    """
    X, Y = _pair(X, Y)
    if projections is None:
        theta = sphere_directions(X.shape[1], n_projections, directions, direction_seed)
    else:
        theta = np.asarray(projections, dtype=np.float64)
        if theta.ndim != 2 or theta.shape[0] != X.shape[1]:
            raise ValueError(f"projections must have shape (d={X.shape[1]}, n_projections), got {theta.shape}")
    if backend == "auto":
        backend = "numpy" if jax.default_backend() == "cpu" else "jax"
    iu, iv, w = _quantile_pairs(len(X), len(Y))
    if backend == "jax":
        costs = np.asarray(_sliced_costs_jax(jnp.asarray(X), jnp.asarray(Y), jnp.asarray(theta), iu, iv,
                                             jnp.asarray(w)))
    elif backend == "numpy":
        costs = _sliced_costs_numpy(X, Y, theta, iu, iv, w)
    else:
        raise ValueError(f"backend must be 'auto', 'jax' or 'numpy', got {backend!r}")
    value = float(np.sqrt(max(float(np.mean(costs)), 0.0)))
    method = "sliced_qmc" if projections is None and directions != "random" else "sliced"
    return Distance(value, method, len(X), len(Y), False,
                    {"n_projections": theta.shape[1], "directions": directions, "backend": backend})


def w2_1d(x, y) -> Distance:
    """Exact W2 between two 1D samples via their quantile functions (any sizes)."""
    x, y = _points(x, "x"), _points(y, "y")
    if x.shape[1] != 1 or y.shape[1] != 1:
        raise ValueError(f"w2_1d needs 1D samples (n,) or (n, 1), got {x.shape} and {y.shape}; "
                         "use sliced_w2 or exact_wasserstein in several dimensions")
    xs, ys = np.sort(x[:, 0]), np.sort(y[:, 0])
    iu, iv, w = _quantile_pairs(len(xs), len(ys))
    return Distance(float(np.sqrt(np.sum(w * (xs[iu] - ys[iv]) ** 2))), "1d", len(xs), len(ys))


def gaussian_w2(mean1, cov1, mean2, cov2) -> float:
    """Closed-form W2 between N(mean1, cov1) and N(mean2, cov2) (the Bures metric on covariances)."""
    m1, m2 = np.atleast_1d(np.asarray(mean1, float)), np.atleast_1d(np.asarray(mean2, float))
    c1, c2 = np.atleast_2d(np.asarray(cov1, float)), np.atleast_2d(np.asarray(cov2, float))
    if c1.shape != c2.shape or m1.shape != m2.shape or c1.shape != (m1.size, m1.size):
        raise ValueError(f"gaussian_w2: shapes disagree: means {m1.shape}, {m2.shape}; covs {c1.shape}, {c2.shape}")
    r1 = scipy.linalg.sqrtm(c1)
    cross = scipy.linalg.sqrtm(r1 @ c2 @ r1)
    bures2 = np.trace(c1) + np.trace(c2) - 2.0 * np.real(np.trace(cross))
    return float(np.sqrt(max(np.sum((m1 - m2) ** 2) + bures2, 0.0)))


def gaussian_fit_w2(X, mean, cov) -> Distance:
    """W2 between N(sample mean, sample cov) of X and the Gaussian N(mean, cov)."""
    X = _points(X, "X")
    mean = np.atleast_1d(np.asarray(mean, float))
    if mean.shape != (X.shape[1],):
        raise ValueError(f"mean must have shape ({X.shape[1]},) to match X {X.shape}, got {mean.shape}")
    value = gaussian_w2(X.mean(0), np.atleast_2d(np.cov(X, rowvar=False)), mean, cov)
    return Distance(value, "gaussian_fit", len(X), 0)


def distance(X, Y, method: str = "exact", **kw) -> Distance:
    """Two-sample distance by method name: exact, exact_w1, sinkhorn, sliced, sliced_qmc, 1d."""
    if method == "exact":
        return exact_wasserstein(X, Y, 2, **kw)
    if method == "exact_w1":
        return exact_wasserstein(X, Y, 1, **kw)
    if method == "sinkhorn":
        return sinkhorn_w2(X, Y, **kw)
    if method == "sliced":
        return sliced_w2(X, Y, directions="random", **kw)
    if method == "sliced_qmc":
        return sliced_w2(X, Y, **{"directions": "sobol", **kw})
    if method == "1d":
        return w2_1d(X, Y)
    if method == "gaussian_fit":
        raise ValueError("method='gaussian_fit' compares draws with a Gaussian (mean, cov), not with points; "
                         "use gaussian_fit_w2(X, mean, cov) or wasserstein(draws, target, method='gaussian_fit')")
    raise ValueError(f"method must be one of {METHODS}, got {method!r}")


# ------------------------------------------------------------------------------- ground truth
def _reference_sampler(source) -> Callable[[int, int], np.ndarray]:
    """`draw(seed, k) -> (k, d)` exact draws from a Target's ground truth or a `fn(key, k)` sampler."""
    from samplax.target import Target

    if isinstance(source, Target):
        if source.sample is not None:
            fn = source.sample
        elif source.reference_draws is not None:
            pool = _flat_dict(source.reference_draws, source, "target.reference_draws")

            def draw_ref(seed, k):
                if k > len(pool):
                    raise ValueError(f"target {source.name!r} has {len(pool)} reference draws but {k} are needed "
                                     "(independent sets for the distance and its noise floor); use fewer draws")
                return pool[np.random.default_rng(seed).choice(len(pool), k, replace=False)]

            return draw_ref
        else:
            raise ValueError(f"target {source.name!r} has no ground truth to compare with (target.sample and "
                             "target.reference_draws are None); give it sample=... or reference draws, or use "
                             "method='gaussian_fit' when target.mean and target.cov are known")
    elif callable(source):
        fn = source
    else:
        raise TypeError(f"expected a samplax.Target or a sampler fn(key, n) -> (n, d), got {type(source).__name__}")

    def draw(seed, k):
        out = np.asarray(fn(jax.random.PRNGKey(seed), int(k)), dtype=np.float64)
        return out[:, None] if out.ndim == 1 else out

    return draw


def _flat_dict(values: dict, target, what: str) -> np.ndarray:
    parts = []
    for name, shape in target.var_shapes.items():
        if name not in values:
            raise ValueError(f"{what} has no variable {name!r} of target {target.name!r} (has {sorted(values)})")
        arr = np.asarray(values[name], dtype=np.float64)
        parts.append(arr.reshape(arr.shape[0], int(np.prod(shape, dtype=int))))
    return np.concatenate(parts, axis=1)


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


# ------------------------------------------------------------------------------- noise floor
@dataclasses.dataclass(frozen=True)
class NoiseFloor:
    """The distance between independent exact samples of sizes (n, m), over `reps` repetitions."""

    mean: float
    std: float
    values: np.ndarray
    n: int
    m: int
    method: str


def _check_method(method, d):
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS} or 'auto', got {method!r}")
    if method == "1d" and d != 1:
        raise ValueError(f"method='1d' needs one-dimensional draws, got dim={d}; use 'sliced_qmc' or 'exact'")


def noise_floor(target_or_sampler_fn, n: int, *, method: str = "sliced_qmc", reps: int = 5, m: int | None = None,
                seed: int = 0, mean=None, cov=None, **kw) -> NoiseFloor:
    """Distance between two independent exact samples of sizes n and m (default n), repeated `reps` times.

    A sampler whose distance to the truth is within this floor is indistinguishable from exact
    sampling at this n (for iid draws; correlated MCMC draws carry more noise than iid ones).
    For method='gaussian_fit' the floor is gaussian_fit_w2 of one exact sample of size n against
    (mean, cov), taken from the Target unless given.
    """
    if not isinstance(n, (int, np.integer)) or n < 2:
        raise ValueError(f"n must be an integer >= 2 (points per sample), got {n!r}")
    if not isinstance(reps, (int, np.integer)) or reps < 2:
        raise ValueError(f"reps must be an integer >= 2 (a spread needs two repetitions), got {reps!r}")
    m = n if m is None else int(m)
    draw = _reference_sampler(target_or_sampler_fn)
    values = []
    if method == "gaussian_fit":
        mean = getattr(target_or_sampler_fn, "mean", None) if mean is None else mean
        cov = getattr(target_or_sampler_fn, "cov", None) if cov is None else cov
        if mean is None or cov is None:
            raise ValueError("noise_floor(method='gaussian_fit') needs the target mean and cov (mean=..., cov=...)")
        for r in range(reps):
            values.append(float(gaussian_fit_w2(draw(seed + r, n), mean, cov)))
        m = 0
    else:
        for r in range(reps):
            both = draw(seed + r, n + m)
            method = auto_method(n, both.shape[1]) if method == "auto" else method
            _check_method(method, both.shape[1])
            with warnings.catch_warnings():  # one warning about subsampling is enough
                if r > 0:
                    warnings.simplefilter("ignore", RuntimeWarning)
                values.append(float(distance(both[:n], both[n:], method, **kw)))
    values = np.asarray(values)
    return NoiseFloor(float(values.mean()), float(values.std(ddof=1)), values, int(n), int(m), method)


# ------------------------------------------------------------------------------- against a Target
def auto_method(n: int, d: int) -> str:
    """1d in one dimension; exact W2 up to 2000 points (exact plus its floor stays ~seconds); else sliced QMC."""
    if d == 1:
        return "1d"
    return "exact" if n <= 2000 else "sliced_qmc"


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
            s += f" (noise floor {self.floor.mean:.4g} +- {self.floor.std:.3g} at n={self.floor.n})"
        if self.per_chain is not None:
            s += f"; per chain {np.array2string(self.per_chain, precision=3)}"
        if self.floor_per_chain is not None:
            s += f" (floor {self.floor_per_chain.mean:.4g} +- {self.floor_per_chain.std:.3g})"
        return s


def _against_truth(X, target, method, seed, n_ref, kw):
    if method == "gaussian_fit":
        if target.mean is None or target.cov is None:
            raise ValueError(f"method='gaussian_fit' needs target.mean and target.cov; "
                             f"target {target.name!r} lacks them")
        return gaussian_fit_w2(X, target.mean, target.cov)
    m = len(X) if n_ref is None else int(n_ref)
    return distance(X, _reference_sampler(target)(seed, m), method, **kw)


def _floor(target, n, method, reps, seed, n_ref, kw):
    if method == "gaussian_fit" and target.sample is None and target.reference_draws is None:
        warnings.warn(f"target {target.name!r} has no sampler: no noise floor for method='gaussian_fit'",
                      RuntimeWarning, stacklevel=3)
        return None
    return noise_floor(target, n, method=method, reps=reps, m=n_ref, seed=seed, **kw)


def wasserstein(data, target, method: str = "auto", *, per_chain: bool = True, reps: int = 5, seed: int = 0,
                n_ref: int | None = None, **kw) -> WassersteinResult:
    """Distance between draws (DataTree or (chain, draw, dim) array) and the target's exact draws.

    The draws (pooled over chains, and each chain alone) are compared with fresh exact draws of the
    same size (or `n_ref`), and the noise floor at those sizes is reported next to them.
    method: "auto" (see `auto_method`), or one of METHODS; extra keywords go to the estimator.
    """
    draws = draws_array(data, target)
    C, T, d = draws.shape
    if T < 2:
        raise ValueError(f"need at least 2 draws per chain, got {T}")
    method = auto_method(C * T, d) if method == "auto" else method
    _check_method(method, d)
    pooled = _against_truth(draws.reshape(C * T, d), target, method, seed + 10_000, n_ref, kw)
    floor = _floor(target, C * T, method, reps, seed + 20_000, n_ref, kw)
    chains = floor_c = None
    if per_chain and C > 1:
        chains = np.array([float(_against_truth(draws[c], target, method, seed + 30_000 + c, n_ref, kw))
                           for c in range(C)])
        floor_c = _floor(target, T, method, reps, seed + 40_000, n_ref, kw)
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
    floor_mean, floor_std (noise floor at the same pooled size C*k), and the method used.
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
        X = draws[:, :k].reshape(C * k, d)
        value.append(float(_against_truth(X, target, method, seed + 10_000 + i, None, kw)))
        fl = _floor(target, C * int(k), method, reps, seed + 20_000 + 100 * i, None, kw)
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
        try:
            ref = _reference_sampler(target)(seed, n_ref)
        except ValueError as err:
            raise ValueError(f"second-moment bias needs Var[x^2] of the target: {err}") from err
        var2 = np.var(ref**2, axis=0, ddof=1)
        if ex2 is None:
            ex2 = np.mean(ref**2, axis=0)
    return ex2, var2


def second_moment_bias(draws2d, ex2, var2) -> tuple[float, float]:
    """(b2_avg, b2_max) of one set of draws (n, d) given E[x^2] and Var[x^2]."""
    b = (np.mean(np.asarray(draws2d) ** 2, axis=0) - ex2) ** 2 / var2
    return float(b.mean()), float(b.max())


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
