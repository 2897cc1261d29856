"""Benchmark targets of the diffusion-sampler literature (GMM40, funnel, ManyWell) with exact log Z.

- "gmm40": 2D mixture of 40 equally weighted unit-variance Gaussians, means uniform in [-40, 40]^2 (the GMM of
  Midgley et al. 2023 (FAB) used by the DDS / log-variance papers). Their means come from torch's RNG with seed 0,
  which is not available here: ours are numpy `default_rng(seed)` draws, the same construction, not the same numbers.
  Normalised: log_z = 0; exact sampler, mean, cov; `info["means"]` for mode coverage.
  `rng="jax"` reproduces Beyond-ELBOs' GMM40 (Blessing et al. 2024, targets/gmm40.py), the one of their 50-d
  benchmark: means jax.random.uniform(PRNGKey(seed), (40, d), float32, -1, 1) * 40, drawn with the threefry
  counter layout jax used then (jax_threefry_partitionable=False, the default before jax 0.5).
- "student_t_mixture": Beyond-ELBOs' mixture of Student-t's (targets/student_t_mixture.py): 10 equally weighted
  products of independent Student-t(df=2, loc, scale=1) coordinates, locs jax.random.uniform(PRNGKey(0), (10, d),
  float32, -10, 10) (the same threefry layout); normalised, log_z = 0; exact sampler and mean (df = 2: the
  variance is infinite, so `cov` is None); `info["locs"]` and `mode_index` for mode coverage.
- "many_well": ManyWell (Midgley et al. 2023), d = 32: 16 independent copies of the 2D double well
  log p~(x1, x2) = -x1^4 + 6 x1^2 + x1 / 2 - x2^2 / 2. log Z = 16 log(Z_1 sqrt(2 pi)) = 164.69568 (Z_1 by 1D
  quadrature; tests check it independently); exact sampler (inverse CDF of x1 on a fine grid, x2 Gaussian).
- Neal's funnel (d = 10) is samplax.models.get("funnel", dim=10); the double well of the sECD experiment is
  samplax.models.get("double_well", barrier=...) (samplax.models.wells). `benchmark_targets()` collects all four.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import logsumexp
from scipy.integrate import simpson

from samplax import checks
from samplax.models import register
from samplax.target import Target

MANY_WELL_LOG_Z = 164.69568  # the literature's value (FAB / DDS); recomputed by quadrature in `many_well`


RNGS = ("numpy", "jax")


def _jax_uniform(seed: int, shape, low: float, high: float) -> np.ndarray:
    """jax.random.uniform(PRNGKey(seed), shape, float32, low, high) as jax < 0.5 drew it (the reference codes' era)."""
    with jax.threefry_partitionable(False):
        u = jax.random.uniform(jax.random.PRNGKey(seed), shape, jnp.float32, low, high)
    return np.asarray(u, dtype=np.float64)


def gmm_means(num_modes: int = 40, loc_scale: float = 40.0, seed: int = 0, dim: int = 2, rng: str = "numpy") -> np.ndarray:
    if rng == "jax":  # Beyond-ELBOs: uniform(-1, 1) * loc_scaling, in float32
        return np.asarray(np.float32(loc_scale) * _jax_uniform(seed, (num_modes, dim), -1.0, 1.0).astype(np.float32),
                          dtype=np.float64)
    return np.random.default_rng(seed).uniform(-loc_scale, loc_scale, size=(num_modes, dim))


def mode_index(x, means, log_scale_terms=None):
    """Index of the component with the highest log-density at each x (n, d): the nearest mean for equal isotropic
    components (GMM40), the argmax over `log_scale_terms(x)` (n, K) when given."""
    x = np.asarray(x, dtype=np.float64)
    if log_scale_terms is not None:
        return np.argmax(np.asarray(log_scale_terms(x)), axis=1)
    d2 = (x**2).sum(1)[:, None] - 2 * x @ means.T + (means**2).sum(1)[None]
    return np.argmin(d2, axis=1)


def entropic_mode_coverage(idx, num_modes: int) -> float:
    """Beyond-ELBOs' EMC: entropy of the fractions of samples per mode (argmax component), divided by log(num_modes):
    1 when every mode holds the same share, 0 when all samples are in one mode."""
    counts = np.bincount(np.asarray(idx), minlength=num_modes)
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum() / np.log(num_modes))


@register("gmm40", "2D mixture of 40 unit-variance Gaussians, means uniform in [-40, 40]^2 (fixed seed); log_z = 0, exact sampler")
def gmm40(num_modes: int = 40, loc_scale: float = 40.0, scale: float = 1.0, seed: int = 0, dim: int = 2,
          rng: str = "numpy") -> Target:
    """The GMM40 benchmark (normalised: log_z = 0); other num_modes / loc_scale / scale give its relatives.

    rng: "numpy" (default_rng(seed) means, the 2-d benchmark samplax has always used) or "jax" (Beyond-ELBOs' means).
    """
    if not checks.member(rng, RNGS):
        raise ValueError(f"rng must be one of {RNGS}, got {rng!r}")
    checks.integer("num_modes", num_modes, 1)
    checks.integer("dim", dim, 1)
    checks.integer("seed", seed, 0)
    if not (loc_scale > 0 and scale > 0):
        raise ValueError(f"loc_scale and scale must be positive, got {loc_scale!r}, {scale!r}")
    means = gmm_means(num_modes, loc_scale, seed, dim, rng)
    m = jnp.asarray(means)
    log_w = -np.log(num_modes)

    def logdensity(x):
        comps = -0.5 * jnp.sum((x - m) ** 2, axis=-1) / scale**2 - dim * jnp.log(scale) - 0.5 * dim * jnp.log(2 * jnp.pi)
        return logsumexp(comps) + log_w

    def sample(key, n):
        kc, kx = jax.random.split(key)
        idx = jax.random.randint(kc, (n,), 0, num_modes)
        return m[idx] + scale * jax.random.normal(kx, (n, dim))

    mean = means.mean(0)
    cov = scale**2 * np.eye(dim) + (means - mean).T @ (means - mean) / num_modes
    return Target.from_logdensity(logdensity, dim, name=f"gmm{num_modes}", mean=jnp.asarray(mean),
                                  cov=jnp.asarray(cov), sample=sample, log_z=0.0,
                                  info={"means": means, "scale": scale, "num_modes": num_modes,
                                        "mode_index": lambda x: mode_index(x, means)})


@register("student_t_mixture", "Beyond-ELBOs' mixture of 10 Student-t(df=2) products, locs uniform in [-10, 10]^d (d=50 default); log_z = 0, exact sampler")
def student_t_mixture(dim: int = 50, num_components: int = 10, df: float = 2.0, loc_range: float = 10.0,
                      seed: int = 0) -> Target:
    """Equally weighted mixture of products of independent Student-t(df, loc_k, 1) coordinates (normalised)."""
    checks.integer("dim", dim, 1)
    checks.integer("num_components", num_components, 1)
    checks.integer("seed", seed, 0)
    if not (df > 0 and loc_range > 0):
        raise ValueError(f"df and loc_range must be positive, got {df!r}, {loc_range!r}")
    locs = _jax_uniform(seed, (num_components, dim), -loc_range, loc_range)
    L = jnp.asarray(locs)
    from jax.scipy.special import gammaln

    c = gammaln((df + 1) / 2) - gammaln(df / 2) - 0.5 * jnp.log(df * jnp.pi)  # Student-t log normaliser

    def component_log_probs(x):  # (..., d) -> (..., K)
        z = x[..., None, :] - L
        return jnp.sum(c - 0.5 * (df + 1) * jnp.log1p(z**2 / df), axis=-1)

    def logdensity(x):
        return logsumexp(component_log_probs(x)) - jnp.log(num_components)

    def sample(key, n):
        kc, kx = jax.random.split(key)
        idx = jax.random.randint(kc, (n,), 0, num_components)
        return L[idx] + jax.random.t(kx, df, (n, dim))

    mean = locs.mean(0) if df > 1 else None
    lp_batch = jax.jit(jax.vmap(component_log_probs))
    return Target.from_logdensity(logdensity, dim, name=f"student_t_mixture_{dim}d",
                                  mean=None if mean is None else jnp.asarray(mean), cov=None, sample=sample, log_z=0.0,
                                  info={"locs": locs, "df": df, "num_modes": num_components,
                                        "mode_index": lambda x: mode_index(x, locs, lp_batch)})


def _double_well_axis(n: int = 200001):
    """Grid, normalised density, CDF, log Z_1, mean and variance of p(x1) ∝ exp(-x1^4 + 6 x1^2 + x1/2)."""
    g = np.linspace(-4.0, 4.0, n)  # exp(-x^4 + 6x^2) at |x| = 4 is e^-160 below the peak (e^9.3): all the mass
    u = -g**4 + 6 * g**2 + 0.5 * g
    shift = u.max()
    dens = np.exp(u - shift)
    z = simpson(dens, x=g)
    dens /= z
    cdf = np.concatenate([[0.0], np.cumsum(0.5 * (dens[1:] + dens[:-1]) * np.diff(g))])
    cdf /= cdf[-1]
    mean = simpson(g * dens, x=g)
    return g, cdf, float(np.log(z) + shift), float(mean), float(simpson((g - mean) ** 2 * dens, x=g))


@register("many_well", "ManyWell: 16 (default) copies of the 2D double well -x1^4+6x1^2+x1/2-x2^2/2, d=32, log_z=164.69568")
def many_well(dim: int = 32) -> Target:
    """ManyWell on R^dim (dim even): dim/2 independent 2D double wells; exact log_z, moments and sampler."""
    checks.integer("dim", dim, 2)
    if dim % 2:
        raise ValueError(f"dim must be even (pairs (x1, x2) of the 2D double well), got {dim}")
    k = dim // 2
    g, cdf, log_z1, m1, v1 = _double_well_axis()
    G, C = jnp.asarray(g), jnp.asarray(cdf)

    def logdensity(x):
        z = jnp.reshape(x, (k, 2))
        x1, x2 = z[:, 0], z[:, 1]
        return jnp.sum(-x1**4 + 6 * x1**2 + 0.5 * x1 - 0.5 * x2**2)

    def sample(key, n):
        k1, k2 = jax.random.split(key)
        x1 = jnp.interp(jax.random.uniform(k1, (n, k)), C, G)
        x2 = jax.random.normal(k2, (n, k))
        return jnp.stack([x1, x2], axis=-1).reshape(n, dim)

    mean = np.tile([m1, 0.0], k)
    var = np.tile([v1, 1.0], k)
    log_z = k * (log_z1 + 0.5 * np.log(2 * np.pi))
    return Target.from_logdensity(logdensity, dim, name=f"many_well_{dim}d", mean=jnp.asarray(mean),
                                  cov=jnp.asarray(np.diag(var)), sample=sample, log_z=float(log_z),
                                  info={"log_z_1d": log_z1, "num_wells": k})


def benchmark_targets(quick: bool = False) -> dict[str, Target]:
    """GMM40, Funnel-10d, ManyWell-32d, the sECD experiment's double well, GMM40-50d and the Student-t mixture (50-d)."""
    from samplax import models

    return {"gmm40": gmm40(), "funnel": models.get("funnel", dim=10), "many_well": many_well(),
            "double_well": models.get("double_well", barrier=2.0), "gmm40_50d": gmm40(dim=50, rng="jax"),
            "student_t_mixture": student_t_mixture()}
