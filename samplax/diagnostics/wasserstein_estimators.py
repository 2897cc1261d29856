"""Wasserstein estimators between point sets X (n, d) and Y (m, d), each returning a `Distance`
(a float that also records the method and the points really used):
  exact_wasserstein  network simplex (POT `ot.emd2`), W1 or W2; subsamples above EXACT_MAX_POINTS
  sinkhorn_w2        sqrt of the debiased Sinkhorn divergence (ott-jax), for larger sets
  sliced_w2          sliced W2 with random or quasi-Monte Carlo (Sobol/Halton) directions, jitted
  w2_1d              exact W2 in 1D from quantile functions (unequal sizes handled)
  gaussian_fit_w2    closed-form W2 between the Gaussian fit of X and a Gaussian target
`distance(X, Y, method)` picks one by name. Floors: noise_floor.py; runs and Targets: wasserstein.py.
"""

from __future__ import annotations

import functools
import os
import warnings
from concurrent.futures import ThreadPoolExecutor

import jax
import jax.numpy as jnp
import numpy as np
import scipy.linalg

from samplax import checks

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
    max_points = checks.integer("max_points", max_points, 1)
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
    if not checks.is_real(epsilon) or not (epsilon > 0 and np.isfinite(epsilon)):
        raise ValueError(f"epsilon must be > 0 (a fraction of the spread tr Cov X + tr Cov Y), got {epsilon!r}")
    checks.positive("threshold", threshold)
    checks.integer("max_iterations", max_iterations, 1)
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

    if not checks.member(kind, DIRECTIONS):
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


def _check_covariance(name, c):
    """A covariance must be finite, symmetric and positive semi-definite (sqrtm of anything else is not a W2)."""
    if not np.all(np.isfinite(c)):
        raise ValueError(f"{name} must be finite, got {c.tolist()}")
    scale = max(float(np.max(np.abs(c))), 1e-300)
    if not np.allclose(c, c.T, rtol=0.0, atol=1e-10 * scale):
        raise ValueError(f"{name} must be symmetric; max |C - C^T| = {np.max(np.abs(c - c.T)):.3g}")
    low = float(np.min(np.linalg.eigvalsh(c)))
    if low < -1e-10 * scale:
        raise ValueError(f"{name} must be positive semi-definite; its smallest eigenvalue is {low:.3g}")


def gaussian_w2(mean1, cov1, mean2, cov2) -> float:
    """Closed-form W2 between N(mean1, cov1) and N(mean2, cov2) (the Bures metric on covariances)."""
    m1, m2 = np.atleast_1d(np.asarray(mean1, float)), np.atleast_1d(np.asarray(mean2, float))
    c1, c2 = np.atleast_2d(np.asarray(cov1, float)), np.atleast_2d(np.asarray(cov2, float))
    if c1.shape != c2.shape or m1.shape != m2.shape or c1.shape != (m1.size, m1.size):
        raise ValueError(f"gaussian_w2: shapes disagree: means {m1.shape}, {m2.shape}; covs {c1.shape}, {c2.shape}")
    for name, m in (("mean1", m1), ("mean2", m2)):
        if not np.all(np.isfinite(m)):
            raise ValueError(f"gaussian_w2: {name} must be finite, got {m}")
    for name, c in (("cov1", c1), ("cov2", c2)):
        _check_covariance(name, c)
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
    _check_covariance("cov", np.atleast_2d(np.asarray(cov, float)))
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


