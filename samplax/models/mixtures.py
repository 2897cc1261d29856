"""Gaussian-mixture score models and their compositions (products, annealed, geometric, tilted), with exact truth.

All truth is for the densities at the process's t_min, the distribution reverse samplers target:
a `ScoreModel.gaussian_mixture(w, m, C)` is there the mixture sum_k w_k N(a m_k, a^2 C_k + s^2 I),
a = alpha(t_min), s = sigma(t_min).
  product p1 p2    closed form: N(x; a, A) N(x; b, B) = N(a; b, A + B) N(x; c, (A^-1 + B^-1)^-1), so a
                   product of mixtures is a mixture with weights w_j v_k N(a_j; b_k, A_j + B_k) / Z and
                   Z = int p1 p2 = sum_jk w_j v_k N(a_j; b_k, A_j + B_k); exact sampler.
  p^beta, p1^g p2^(1-g), p exp(lam r)
                   log Z, mean and cov by quadrature on a 1-2D grid; exact rejection samplers where an
                   envelope is known (p^beta <= M^(beta-1) p with M = sum_k w_k max N_k >= sup p for
                   beta >= 1; p1^g p2^(1-g) <= g p1 + (1-g) p2 for g in [0, 1], weighted AM-GM), else
                   inverse-CDF sampling on the grid (piecewise-constant density; recorded in info["sampler"]).
The Targets' log-densities are the unnormalised compositions (so `log_z` is the quantity Feynman-Kac
correctors and SMC estimate).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import logsumexp

from samplax.models import register

GRID_POINTS = {1: 20001, 2: 601}
GRID_HALF_WIDTH = 10.0  # component standard deviations either side of every component mean
EDGE_MASS = 1e-9  # mass allowed in the grid's outer rows before the box is declared too small


# ------------------------------------------------------------------------------ mixtures at t_min
def tmin_params(model):
    """(weights, means, covs) of an exact Gaussian-mixture ScoreModel's density at t_min, as numpy arrays."""
    info = getattr(model, "info", {})
    if not {"weights", "means", "covs"} <= set(info):
        raise ValueError(f"model {getattr(model, 'name', model)!r} is not an exact Gaussian mixture "
                         "(build it with ScoreModel.gaussian_mixture)")
    p = model.process
    t = jnp.asarray(p.t_min, float)
    a, s = float(p.alpha(t)), float(p.sigma(t))
    w, m, c = (np.asarray(info[k], float) for k in ("weights", "means", "covs"))
    d = m.shape[1]
    return w, a * m, a ** 2 * c + s ** 2 * np.eye(d)


def mixture_logpdf(x, w, m, c):
    """log sum_k w_k N(x; m_k, C_k) for one x (d,)."""
    comps = jax.vmap(lambda mu, cv: jax.scipy.stats.multivariate_normal.logpdf(x, mu, cv))(jnp.asarray(m), jnp.asarray(c))
    return logsumexp(comps + jnp.log(jnp.asarray(w)))


def _gauss_logpdf_np(x, mean, cov):
    d = len(mean)
    diff = x - mean
    sol = np.linalg.solve(cov, diff)
    _, logdet = np.linalg.slogdet(cov)
    return -0.5 * (diff @ sol + logdet + d * math.log(2 * math.pi))


def product_params(w1, m1, c1, w2, m2, c2):
    """Mixture (weights, means, covs) proportional to p1 p2, and log Z = log int p1 p2 (closed form)."""
    logw, means, covs = [], [], []
    for j in range(len(w1)):
        for k in range(len(w2)):
            a, b = np.linalg.inv(c1[j]), np.linalg.inv(c2[k])
            cov = np.linalg.inv(a + b)
            logw.append(math.log(w1[j]) + math.log(w2[k]) + _gauss_logpdf_np(m1[j], m2[k], c1[j] + c2[k]))
            means.append(cov @ (a @ m1[j] + b @ m2[k]))
            covs.append(0.5 * (cov + cov.T))
    logw = np.asarray(logw)
    log_z = float(np.logaddexp.reduce(logw))
    return np.exp(logw - log_z), np.asarray(means), np.asarray(covs), log_z


def mixture_moments(w, m, c):
    mean = w @ m
    dev = m - mean
    cov = np.einsum("k,kij->ij", w, c) + np.einsum("k,ki,kj->ij", w, dev, dev)
    return mean, cov


def _sampler(w, m, c):
    from samplax.diffusion.score import mixture_sample

    wj, mj, cj = jnp.asarray(w), jnp.asarray(m), jnp.asarray(c)
    return lambda key, n: mixture_sample(key, n, wj, mj, cj)


def product_target(model1, model2, name: str = "product"):
    """Exact Target for p1 p2 at t_min: unnormalised log p1 + log p2, log Z = log int p1 p2, mean, cov, sampler."""
    from samplax.target import Target

    p1, p2 = tmin_params(model1), tmin_params(model2)
    w, m, c, log_z = product_params(*p1, *p2)
    mean, cov = mixture_moments(w, m, c)
    a1, a2 = [tuple(jnp.asarray(v) for v in p) for p in (p1, p2)]

    def logdensity(x):
        return mixture_logpdf(x, *a1) + mixture_logpdf(x, *a2)

    return Target.from_logdensity(logdensity, m.shape[1], name=name, log_z=log_z, mean=mean, cov=cov,
                                  sample=_sampler(w, m, c),
                                  info={"sampler": "exact", "weights": w, "means": m, "covs": c})


# ------------------------------------------------------------------------------ quadrature truth
def _grid(params_list, dim: int, widen: float):
    """Cell centres and cell volume of a box covering every component +- GRID_HALF_WIDTH sd (times widen)."""
    if dim not in GRID_POINTS:
        raise ValueError(f"quadrature truth is for 1-2 dimensions, got dim={dim}")
    lo, hi = np.full(dim, np.inf), np.full(dim, -np.inf)
    for w, m, c in params_list:
        sd = np.sqrt(np.einsum("kii->ki", c))
        lo = np.minimum(lo, (m - GRID_HALF_WIDTH * widen * sd).min(0))
        hi = np.maximum(hi, (m + GRID_HALF_WIDTH * widen * sd).max(0))
    n = GRID_POINTS[dim]
    axes = [np.linspace(lo[i], hi[i], n) for i in range(dim)]
    h = np.array([ax[1] - ax[0] for ax in axes])
    pts = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, dim)
    return pts, h, n


def grid_truth(logq, params_list, dim: int, widen: float = 1.0, what: str = "density"):
    """log Z, mean, cov of exp(logq) by quadrature on a grid, and the grid (points, log cell masses, cell size)."""
    pts, h, n = _grid(params_list, dim, widen)
    vals = np.asarray(jax.jit(jax.vmap(logq))(jnp.asarray(pts)), float)
    if not np.all(np.isfinite(vals) | (vals == -np.inf)):
        raise ValueError(f"{what}: log-density is NaN or +inf on the quadrature grid")
    log_cell = vals + float(np.sum(np.log(h)))
    log_z = float(np.logaddexp.reduce(log_cell))
    p = np.exp(log_cell - log_z)
    edge = np.zeros((n,) * dim, bool)
    for i in range(dim):
        sl = [slice(None)] * dim
        sl[i] = [0, -1]
        edge[tuple(sl)] = True
    if p[edge.ravel()].sum() > EDGE_MASS:
        raise ValueError(f"{what}: {p[edge.ravel()].sum():.2g} of the mass sits on the quadrature box's edge; "
                         "the composition reaches beyond the mixtures' components (a strong tilt?) - no truth")
    mean = p @ pts
    dev = pts - mean
    cov = (p[:, None] * dev).T @ dev
    return {"log_z": log_z, "mean": mean, "cov": cov, "points": pts, "log_cell": log_cell - log_z, "h": h}


def _grid_sampler(grid):
    pts, h = jnp.asarray(grid["points"]), jnp.asarray(grid["h"])
    cdf = jnp.asarray(np.cumsum(np.exp(grid["log_cell"])))

    def sample(key, n):
        kc, ku = jax.random.split(key)
        # inverse CDF over the cells (a categorical over ~4e5 cells would build an (n, cells) array)
        idx = jnp.minimum(jnp.searchsorted(cdf, jax.random.uniform(kc, (n,)) * cdf[-1]), len(cdf) - 1)
        return pts[idx] + h * (jax.random.uniform(ku, (n, pts.shape[1])) - 0.5)

    return sample


def _rejection_sampler(propose, log_accept):
    """Exact draws by rejection: propose(key, k) -> (k, d), log_accept(x) <= 0 (checked)."""
    log_accept = jax.jit(jax.vmap(log_accept))

    def sample(key, n):
        out, got, i = [], 0, 0
        while got < n:
            kp, ku = jax.random.split(jax.random.fold_in(key, i))
            x = propose(kp, max(2 * n, 1024))
            la = np.asarray(log_accept(x))
            if np.any(la > 1e-9):
                raise RuntimeError(f"rejection envelope violated (log acceptance {la.max():.3g} > 0)")
            keep = np.log(np.asarray(jax.random.uniform(ku, la.shape))) < la
            out.append(np.asarray(x)[keep])
            got += int(keep.sum())
            i += 1
            if i > 1000:
                raise RuntimeError("rejection sampler accepted too few proposals in 1000 rounds")
        return jnp.asarray(np.concatenate(out)[:n])

    return sample


def _log_sup_bound(w, c):
    """log of sum_k w_k max N_k >= log sup of the mixture density."""
    d = c.shape[1]
    logdet = np.linalg.slogdet(c)[1]
    return float(np.logaddexp.reduce(np.log(w) - 0.5 * logdet - 0.5 * d * math.log(2 * math.pi)))


def annealed_target(model, beta: float, name: str = "annealed"):
    """Target for p^beta at t_min (unnormalised beta log p): quadrature log Z / mean / cov; exact sampler for beta >= 1."""
    from samplax.target import Target

    w, m, c = tmin_params(model)
    a = tuple(jnp.asarray(v) for v in (w, m, c))
    beta = float(beta)

    def logq(x):
        return beta * mixture_logpdf(x, *a)

    truth = grid_truth(logq, [(w, m, c)], m.shape[1], widen=max(1.0, 1.0 / math.sqrt(beta)), what=name)
    if beta >= 1.0:
        log_m = _log_sup_bound(w, c)
        sample = _rejection_sampler(_sampler(w, m, c), lambda x: (beta - 1.0) * (mixture_logpdf(x, *a) - log_m))
        kind = "rejection"
    else:
        sample, kind = _grid_sampler(truth), "grid"
    return Target.from_logdensity(logq, m.shape[1], name=name, log_z=truth["log_z"], mean=truth["mean"],
                                  cov=truth["cov"], sample=sample, info={"sampler": kind, "beta": beta})


def geometric_target(model1, model2, gamma: float, name: str = "geometric"):
    """Target for p1^gamma p2^(1-gamma) at t_min: quadrature truth; exact rejection sampler for gamma in [0, 1]."""
    from samplax.target import Target

    p1, p2 = tmin_params(model1), tmin_params(model2)
    a1, a2 = [tuple(jnp.asarray(v) for v in p) for p in (p1, p2)]
    g = float(gamma)

    def logq(x):
        return g * mixture_logpdf(x, *a1) + (1.0 - g) * mixture_logpdf(x, *a2)

    truth = grid_truth(logq, [p1, p2], p1[1].shape[1], widen=max(1.0, abs(g), abs(1 - g)), what=name)
    if 0.0 <= g <= 1.0:
        w = np.concatenate([g * p1[0], (1 - g) * p2[0]])
        keep = w > 0
        prop = _sampler(w[keep], np.concatenate([p1[1], p2[1]])[keep], np.concatenate([p1[2], p2[2]])[keep])

        def log_accept(x):
            l1, l2 = mixture_logpdf(x, *a1), mixture_logpdf(x, *a2)
            envelope = jnp.logaddexp(jnp.log(g) + l1, jnp.log1p(-g) + l2) if 0 < g < 1 else logq(x)
            return logq(x) - envelope

        sample, kind = _rejection_sampler(prop, log_accept), "rejection"
    else:
        sample, kind = _grid_sampler(truth), "grid"
    return Target.from_logdensity(logq, p1[1].shape[1], name=name, log_z=truth["log_z"], mean=truth["mean"],
                                  cov=truth["cov"], sample=sample, info={"sampler": kind, "gamma": g})


def tilted_target(model, reward, lam: float, name: str = "tilted"):
    """Target for p(x) exp(lam r(x)) at t_min: quadrature truth and grid inverse-CDF sampler."""
    from samplax.target import Target

    w, m, c = tmin_params(model)
    a = tuple(jnp.asarray(v) for v in (w, m, c))
    lam = float(lam)

    def logq(x):
        return mixture_logpdf(x, *a) + lam * reward(x)

    truth = grid_truth(logq, [(w, m, c)], m.shape[1], what=name)
    return Target.from_logdensity(logq, m.shape[1], name=name, log_z=truth["log_z"], mean=truth["mean"],
                                  cov=truth["cov"], sample=_grid_sampler(truth), info={"sampler": "grid", "lam": lam})


def composed_target(comp):
    """The exact Target of a `samplax.fkc.Composition` of exact mixtures (see the module docstring)."""
    if comp.kind == "product":
        return product_target(*comp.models, name=comp.name)
    if comp.kind == "anneal":
        return annealed_target(comp.models[0], comp.exponents[0], name=comp.name)
    if comp.kind == "geometric":
        return geometric_target(*comp.models, comp.exponents[0], name=comp.name)
    if comp.kind == "tilt":
        return tilted_target(comp.models[0], comp.reward, comp.lam, name=comp.name)
    raise ValueError(f"unknown composition kind {comp.kind!r}")


# ------------------------------------------------------------------------------ examples
def example_experts(process="vp"):
    """Two 2D Gaussian-mixture score models whose product, annealing and geometric mixture are non-trivial."""
    from samplax.diffusion import ScoreModel

    m1 = ScoreModel.gaussian_mixture(
        [0.5, 0.3, 0.2], [[-2.0, 0.0], [2.0, 0.0], [0.0, 2.5]], [0.5, 0.3, 0.4], process=process, name="p1")
    m2 = ScoreModel.gaussian_mixture(
        [0.6, 0.4], [[-1.0, 1.0], [1.5, -0.5]], [[[1.5, 0.5], [0.5, 1.0]], [[1.0, -0.3], [-0.3, 0.8]]],
        process=process, name="p2")
    return m1, m2


@register("fkc_product_2d", "product p1 p2 of two 2D Gaussian mixtures at t_min of VP (exact: closed-form log Z)")
def fkc_product_2d():
    from samplax import fkc

    return fkc.product(*example_experts()).as_target()


@register("fkc_anneal_2d", "2D Gaussian mixture annealed to p^2 at t_min of VP (quadrature log Z, exact sampler)")
def fkc_anneal_2d():
    from samplax import fkc

    return fkc.anneal(example_experts()[0], 2.0).as_target()
