"""Noise floor of a Wasserstein estimate: the same distance between independent exact samples.

Plug-in estimates are biased upwards by sampling noise, so an error is read against the distance two
exact samples of the same sizes show. Exact samples come from `target.sample` or, for posteriordb-style
targets, disjoint subsets of a finite pool of `target.reference_draws`; `split_sizes` decides how many
run and reference draws a comparison can use so that its floor has the same sizes.
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import Callable

import jax
import numpy as np

from samplax import checks
from samplax.diagnostics.wasserstein_estimators import METHODS, distance, gaussian_fit_w2

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


# ------------------------------------------------------------------------------- noise floor
@dataclasses.dataclass(frozen=True)
class NoiseFloor:
    """The distance between independent exact samples of sizes (n, m), over `reps` repetitions.

    n, m: the points the estimator really used (smaller than requested when it subsamples, e.g.
    exact W2 above EXACT_MAX_POINTS); n_requested, m_requested: what the caller asked for.
    """

    mean: float
    std: float
    values: np.ndarray
    n: int
    m: int
    method: str
    n_requested: int = 0
    m_requested: int = 0


def pool_size(target) -> int | None:
    """How many exact draws a Target can give: None for `target.sample` (any number), else the reference pool."""
    if getattr(target, "sample", None) is not None or getattr(target, "reference_draws", None) is None:
        return None
    return int(len(next(iter(target.reference_draws.values()))))


def split_sizes(n_run: int, pool: int | None, n_ref: int | None = None) -> tuple[int, int]:
    """(run draws, reference draws) to compare so that the noise floor at the same sizes fits the pool.

    The floor needs two disjoint exact sets of sizes (n, m), so n + m <= pool: with a finite pool of
    reference draws, m = min(n_run, pool // 2) and the run is thinned to n = min(n_run, pool - m).
    An explicit n_ref is kept as given (noise_floor raises if the pool is too small for it).
    """
    if n_ref is not None or pool is None:
        return int(n_run), int(n_run if n_ref is None else n_ref)
    if pool < 4:
        raise ValueError(f"a noise floor needs two disjoint sets of >= 2 reference draws, the pool has {pool}")
    m = min(int(n_run), pool // 2)
    return min(int(n_run), pool - m), m


def thin(X: np.ndarray, n: int) -> np.ndarray:
    """n rows of X evenly spaced over its length (all rows when n >= len(X)): keeps every chain's share."""
    if n >= len(X):
        return X
    return X[np.round(np.linspace(0, len(X) - 1, n)).astype(int)]


def _check_method(method, d):
    if not checks.member(method, METHODS):
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
    n_req, m_req = int(n), int(m)
    draw = _reference_sampler(target_or_sampler_fn)
    values = []
    if method == "gaussian_fit":
        mean = getattr(target_or_sampler_fn, "mean", None) if mean is None else mean
        cov = getattr(target_or_sampler_fn, "cov", None) if cov is None else cov
        if mean is None or cov is None:
            raise ValueError("noise_floor(method='gaussian_fit') needs the target mean and cov (mean=..., cov=...)")
        for r in range(reps):
            values.append(gaussian_fit_w2(draw(seed + r, n), mean, cov))
        m_req = 0
    else:
        for r in range(reps):
            both = draw(seed + r, n + m)
            method = auto_method(n, both.shape[1]) if method == "auto" else method
            _check_method(method, both.shape[1])
            with warnings.catch_warnings():  # one warning about subsampling is enough
                if r > 0:
                    warnings.simplefilter("ignore", RuntimeWarning)
                values.append(distance(both[:n], both[n:], method, **kw))
    used_n, used_m = values[0].n, values[0].m  # every repetition uses the same sizes
    values = np.asarray(values, dtype=float)
    return NoiseFloor(float(values.mean()), float(values.std(ddof=1)), values, int(used_n), int(used_m), method,
                      n_req, m_req)


# ------------------------------------------------------------------------------- against a Target
def auto_method(n: int, d: int) -> str:
    """1d in one dimension; exact W2 up to 2000 points (exact plus its floor stays ~seconds); else sliced QMC."""
    if d == 1:
        return "1d"
    return "exact" if n <= 2000 else "sliced_qmc"


