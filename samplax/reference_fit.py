"""Gaussian references for tempering: an automatic one from a widened Laplace fit, and a coverage check.

Tempering (SMC) moves particles from a reference to the posterior. When the model has no proper prior to
start from (an improper prior, a plain log-density) the reference is a Gaussian in the unconstrained space,
and it must cover the posterior: where the reference has no mass the particles never go, and the run is
biased with no other sign (a 2-d banana from N(0, I): log Z 24 SE off, sd 2x too small).

- `laplace(target)`: the mode of `target.logdensity` by scipy's L-BFGS-B with JAX gradients from
  `NUM_STARTS` starts (`target.init`), then the inverse negative Hessian there (eigenvalues floored when it
  is not positive definite). Distinct modes found by different starts are merged by moment matching the
  mixture of their Laplace Gaussians (weights exp(logdensity) sqrt(det cov)). Runs eagerly on concrete
  numbers; cached per Target object (weakly) and settings, so repeated or vmapped runs do not refit.
- `auto_reference(target)`: that Gaussian, refined by up to `REFINE_ROUNDS` importance-sampling rounds (the
  weighted mean, and the weighted covariance where it is wider than the Laplace one: curved, skewed or
  heavier-tailed posteriors; each round draws from the previous round's widened Gaussian), with its covariance
  multiplied by `INFLATE` (sds x 2): tails beyond the fit's are covered, at the cost of a few more stages.
  (blackjax's Pathfinder was tried as the fit and was worse on every test target: earn_height's sds came out
  0.02 for a 2e4-wide intercept, Pareto k 0.77-1.65 vs the Laplace fit's -0.5-0.37 on earn_height and banana.)
- `tally()`: the target evaluations these fits and probes really make, counted as they happen (a cached fit
  counts nothing when it is reused), so a run can report the evaluations it made outside its traced part.
- `coverage_findings(...)`: does a reference cover the posterior? Two cheap probes, each finding a string:
  the Laplace fit (posterior sd along a coordinate or direction more than `NARROW` x the reference's, or the
  mode more than `OFFSET` reference sds from its mean) and importance sampling from `PROBE_DRAWS` reference
  draws (Pareto k of the weights posterior / reference above `KHAT` together with an importance-weighted sd
  above the reference's, or an ESS below 1%).
"""

from __future__ import annotations

import contextlib
import dataclasses
import weakref
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

NUM_STARTS = 4
INFLATE = 4.0          # covariance factor of the automatic reference (sd x 2)
PROBE_DRAWS = 512      # reference draws for the importance-sampling probe
NARROW = 1.5           # a posterior sd this many times the reference's is "not covered"
OFFSET = 3.0           # a mode this many reference sds from the reference mean is "not covered"
KHAT = 0.7             # Pareto k above which importance weights have too heavy a tail
MAX_ITER = 2000
REFINE_ROUNDS = 4      # importance-sampling refinements of the automatic reference (stops when it settles)
NEWTON_MAX_DIM = 500   # Newton polish of the mode (dense Hessians) up to this dimension
IMPROPER_SD = 1e3     # a Laplace sd above this x (1 + |mode|) in a coordinate suggests an improper posterior
FLAT_SD = 10.0         # sd (x the widest curved direction, at least 1) of a direction with no curvature


@dataclasses.dataclass
class Cost:
    """Target evaluations made outside a sampler's traced run: `n_grad` value-and-gradient evaluations of the
    log-density, `n_logdensity` values without a gradient (the log-density, or the log-likelihood of a prior /
    likelihood split), `n_hessian` dense Hessians (each about `dim` gradients). One gradient per optimiser
    start is counted for `target.init`; the retries it makes where a start's log-density is not finite are not
    seen."""

    n_grad: int = 0
    n_logdensity: int = 0
    n_hessian: int = 0

    def attrs(self, prefix: str = "n_setup_") -> dict[str, int]:
        return {f"{prefix}grad": self.n_grad, f"{prefix}logdensity": self.n_logdensity,
                f"{prefix}hessian": self.n_hessian}


_TALLIES: list[Cost] = []


def count(n_grad: int = 0, n_logdensity: int = 0, n_hessian: int = 0) -> None:
    """Record evaluations in every open `tally()`."""
    for c in _TALLIES:
        c.n_grad += int(n_grad)
        c.n_logdensity += int(n_logdensity)
        c.n_hessian += int(n_hessian)


@contextlib.contextmanager
def tally():
    """`with tally() as cost:` counts the evaluations the fits and probes here make inside the block."""
    cost = Cost()
    _TALLIES.append(cost)
    try:
        yield cost
    finally:
        _TALLIES.remove(cost)


class Gaussian(NamedTuple):
    """N(mean, chol chol^T) on the unconstrained flat vector (numpy arrays)."""

    mean: np.ndarray
    chol: np.ndarray

    @property
    def cov(self) -> np.ndarray:
        return self.chol @ self.chol.T

    @property
    def sd(self) -> np.ndarray:
        return np.sqrt(np.sum(self.chol ** 2, axis=1))


def gaussian_functions(g: Gaussian, dtype=None):
    """(log_prob(x), sample(key, n)) of a Gaussian, as JAX functions of the flat vector."""
    dtype = dtype or jnp.result_type(float)
    mean, chol = jnp.asarray(g.mean, dtype), jnp.asarray(g.chol, dtype)
    dim = mean.shape[0]
    diagonal = bool(np.all(g.chol == np.diag(np.diag(g.chol))))
    sd = jnp.diagonal(chol)
    const = -0.5 * dim * np.log(2 * np.pi) - float(np.sum(np.log(np.diag(g.chol))))

    def log_prob(x):
        d = x - mean
        z = d / sd if diagonal else jax.scipy.linalg.solve_triangular(chol, d, lower=True)
        return const - 0.5 * jnp.sum(z ** 2)

    def sample(key, n):
        z = jax.random.normal(key, (n, dim), dtype=mean.dtype)
        return mean + (z * sd if diagonal else z @ chol.T)

    return log_prob, sample


@dataclasses.dataclass(frozen=True)
class Laplace:
    """Laplace fit of a target: `mode`, `cov` (regularised; a moment-matched mixture when several modes
    were found), the log-density at the mode, `n_modes` merged, notes on what was regularised."""

    mode: np.ndarray
    cov: np.ndarray
    logdensity: float
    n_modes: int
    notes: tuple[str, ...]
    flat: int = 0   # directions at the best mode where the log-density has no negative curvature


_LAPLACE: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def names(target) -> list[str]:
    """Names of the unconstrained coordinates: the target's flat names when they match, else x[i]."""
    n = list(target.names)
    return n if len(n) == target.dim else [f"x[{i}]" for i in range(target.dim)]


def laplace(target, num_starts: int = NUM_STARTS, seed: int = 0) -> Laplace:
    """Laplace fit of `target` (module docstring), cached per Target object and settings."""
    key = (int(num_starts), int(seed), jax.config.jax_enable_x64)
    return _cached(_LAPLACE, target, key, lambda: _laplace(target, num_starts, seed))


def _cached(table, target, key, build):
    """table[target][key], built once, eagerly (callers may be inside a trace; the fit needs concrete numbers)."""
    per_target = table.setdefault(target, {})
    if key not in per_target:
        with jax.ensure_compile_time_eval():
            per_target[key] = build()
    return per_target[key]


def _laplace(target, num_starts, seed) -> Laplace:
    from scipy.optimize import minimize

    dtype = jnp.result_type(float)
    dim = target.dim
    neg_vg = jax.jit(jax.value_and_grad(lambda x: -target.logdensity(x)))
    hess = jax.jit(jax.hessian(lambda x: -target.logdensity(x)))
    keys = jax.vmap(lambda i: jax.random.fold_in(jax.random.PRNGKey(seed), i))(jnp.arange(num_starts))
    starts = np.asarray(jax.jit(jax.vmap(target.init))(keys), float)
    count(n_grad=num_starts)  # target.init checks each start's value and gradient (its retries are not seen)
    starts = [s for s in starts if np.all(np.isfinite(s))]
    if not starts:
        raise ValueError(f"reference='auto' for target {target.name!r}: target.init found no start with a finite "
                         "log-density and gradient; pass reference=(mean, scale)")

    def fg(x):
        count(n_grad=1)
        v, g = neg_vg(jnp.asarray(x, dtype))
        v, g = float(v), np.asarray(g, float)
        if not (np.isfinite(v) and np.all(np.isfinite(g))):
            return 1e100, np.zeros_like(g)  # outside the support: the line search backs off
        return v, g

    def hess_np(x):
        count(n_hessian=1)
        return np.asarray(hess(jnp.asarray(x, dtype)), float)

    found = []
    for x0 in starts:
        # up to NEWTON_MAX_DIM, L-BFGS only gets close and Newton steps finish (fast on badly scaled posteriors)
        iters = MAX_ITER // 10 if dim <= NEWTON_MAX_DIM else MAX_ITER
        res = minimize(fg, x0, jac=True, method="L-BFGS-B", options={"maxiter": iters, "maxfun": 2 * iters})
        x = np.asarray(res.x, float)
        if dim <= NEWTON_MAX_DIM:
            x = _newton(fg, hess_np, x)
        f = fg(x)[0]
        if np.isfinite(f) and f < 1e99:
            found.append((f, x))
    if not found:
        raise ValueError(f"reference='auto' for target {target.name!r}: the optimiser found no point with a finite "
                         "log-density; pass reference=(mean, scale)")
    found.sort(key=lambda t: t[0])
    best_f = found[0][0]
    if best_f < -1e8 or np.max(np.abs(found[0][1])) > 1e10:
        raise ValueError(f"reference='auto' for target {target.name!r}: the log-density seems unbounded above "
                         f"(reached {-best_f:.3g} at |x| = {np.max(np.abs(found[0][1])):.3g}); the posterior may be "
                         "improper. Give the model proper priors, or pass reference=(mean, scale)")

    notes: list[str] = []
    modes = []  # (logdensity, mode, cov, log sqrt det cov)
    flat = 0
    for f, x in found:
        cov, note, n_flat = _inverse_hessian(hess_np(x))
        if any(_same_mode(x, m[1], m[2]) and _same_mode(m[1], x, cov) for m in modes):
            continue
        if not modes:
            flat = n_flat
        if note:
            notes.append(f"at the mode {_fmt(x)}: {note}")
        modes.append((-f, x, cov, 0.5 * np.linalg.slogdet(cov)[1]))
    logw = np.array([m[0] + m[3] for m in modes])
    # a covariance singular to precision (a funnel's neck) has no Laplace volume (log det -inf): such a mode gets
    # weight 0 beside modes that have one; when no mode has one, the modes are weighted by their log-density
    if not np.any(np.isfinite(logw)):
        notes.append("the Laplace covariance is singular to precision at every mode (log det not finite); the modes "
                     "are weighted by their log-density alone")
        logw = np.array([m[0] for m in modes])
    logw = np.where(np.isfinite(logw), logw, -np.inf)
    w = np.exp(logw - logw.max())
    keep = w > 1e-3 * w.sum()
    modes = [m for m, k in zip(modes, keep) if k]
    w = w[keep] / w[keep].sum()
    mean = sum(wi * m[1] for wi, m in zip(w, modes))
    cov = sum(wi * (m[2] + np.outer(m[1] - mean, m[1] - mean)) for wi, m in zip(w, modes))
    cov = 0.5 * (cov + cov.T)
    if len(modes) > 1:
        notes.append(f"{len(modes)} distinct modes found from {len(starts)} starts; the reference moment-matches "
                     "their Laplace mixture")
    return Laplace(mode=np.asarray(mean), cov=np.asarray(cov), logdensity=float(-best_f), n_modes=len(modes),
                   notes=tuple(notes), flat=flat)


def _newton(fg, hess, x, iters: int = 100):
    """Polish a mode with damped Newton steps (eigenvalues of the Hessian taken in absolute value, floored):
    L-BFGS stops early on badly scaled posteriors (a regression intercept of -6e4 beside log sigma ~ 10)."""
    f, g = fg(x)
    for _ in range(iters):
        h = hess(x)
        if not np.all(np.isfinite(h)):
            break
        lam, vec = np.linalg.eigh(0.5 * (h + h.T))
        top = float(np.max(np.abs(lam)))
        if not top > 0:
            break
        step = -vec @ ((vec.T @ g) / np.maximum(np.abs(lam), 1e-12 * top))
        decrement = float(-g @ step)
        if not decrement > 1e-12 * (1 + abs(f)):
            break
        t = 1.0
        while t > 1e-8:
            fn, gn = fg(x + t * step)
            if fn <= f - 1e-4 * t * decrement:
                break
            t /= 2
        else:
            break
        x, f, g = x + t * step, fn, gn
    return x


def cholesky(cov: np.ndarray) -> np.ndarray:
    """Lower Cholesky factor of a covariance that should be positive definite; when rounding makes it not
    (a Laplace covariance with a condition number near 1e16), its eigenvalues are floored at 1e-12 x the largest."""
    cov = 0.5 * (cov + cov.T)
    try:
        return np.linalg.cholesky(cov)
    except np.linalg.LinAlgError:
        lam, vec = np.linalg.eigh(cov)
        top = float(np.max(np.abs(lam))) if np.all(np.isfinite(lam)) else 0.0
        if not top > 0:
            raise ValueError("reference covariance is zero or not finite") from None
        fixed = (vec * np.maximum(lam, 1e-12 * top)) @ vec.T
        fixed = 0.5 * (fixed + fixed.T) + 1e-14 * top * np.eye(cov.shape[0])
        return np.linalg.cholesky(fixed)


def _same_mode(x, y, cov_y) -> bool:
    d = np.linalg.solve(cholesky(cov_y), x - y)
    return float(d @ d) < 0.25


def _inverse_hessian(h: np.ndarray):
    """Covariance from the negative Hessian `h` of the log-density, decomposed after Jacobi scaling (unit
    diagonal: a regression intercept's precision can be 1e-12 x log sigma's); eigenvalues that are not clearly
    positive (or a non-positive diagonal) get the variance of a wide flat direction. Returns (cov, note or '')."""
    h = 0.5 * (h + h.T)
    dim = h.shape[0]
    if not np.all(np.isfinite(h)):
        return np.eye(dim) * FLAT_SD ** 2, "the Hessian is not finite; the reference is N(mode, 10^2 I)", dim
    diag = np.diag(h)
    curved = diag > 0
    d = np.where(curved, np.sqrt(np.where(curved, diag, 1.0)), 1.0)
    hs = h / np.outer(d, d)
    hs[~curved, :] = 0.0
    hs[:, ~curved] = 0.0
    lam, vec = np.linalg.eigh(hs)
    good = lam > 1e-10 * max(float(np.max(np.abs(lam))), 1.0)
    # in scaled units; back in the original ones: cov = D^-1 (V diag(1/lam) V^T) D^-1
    note = ""
    if not np.all(good):
        cov_good = (vec[:, good] / lam[good]) @ vec[:, good].T / np.outer(d, d)
        widest = float(np.sqrt(np.max(np.diag(cov_good)))) if np.any(good) else 1.0
        flat_var = (FLAT_SD * max(widest, 1.0)) ** 2
        # a flat direction gets variance flat_var in the original units along its (unscaled) direction
        flat = vec[:, ~good] / d[:, None]
        flat /= np.linalg.norm(flat, axis=0)
        note = (f"the Hessian is not negative definite in {int(np.sum(~good))} direction(s); they get sd "
                f"{np.sqrt(flat_var):.3g}")
        return cov_good + flat_var * flat @ flat.T, note, int(np.sum(~good))
    return (vec / lam) @ vec.T / np.outer(d, d), note, 0


def _fmt(x, n=4) -> str:
    x = np.asarray(x, float)
    body = ", ".join(f"{v:.3g}" for v in x[:n])
    return f"[{body}{', ...' if x.size > n else ''}]"


_AUTO: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def auto_reference(target, inflate: float | None = None, refine: bool = True) -> tuple[Gaussian, tuple[str, ...]]:
    """The automatic reference and notes on how it was built (cached per Target object and settings).

    The Laplace fit, then (refine=True) one importance-sampling round from the widened Laplace Gaussian:
    when its weights are usable (Pareto k < KHAT, ESS >= 5% of PROBE_DRAWS), the mean moves to the weighted
    mean and every direction in which the weighted covariance exceeds the Laplace covariance takes the larger
    variance (a banana's curved arm, skewed or heavier-tailed posteriors; never narrower than the Laplace fit);
    the result's covariance x `inflate`.
    """
    inflate = INFLATE if inflate is None else inflate
    key = (float(inflate), bool(refine), jax.config.jax_enable_x64)
    return _cached(_AUTO, target, key, lambda: _auto_reference(target, inflate, refine))


def _auto_reference(target, inflate, refine):
    fit = laplace(target)
    notes = tuple(fit.notes)
    chol = cholesky(fit.cov)
    logdensity = jax.jit(jax.vmap(target.logdensity))
    mean, cov = fit.mode, fit.cov
    done = []
    for r in range(REFINE_ROUNDS if refine else 0):
        g = Gaussian(mean, cholesky(inflate * cov))
        log_q, sample_q = gaussian_functions(g)
        x = sample_q(jax.random.PRNGKey(104729 + r), PROBE_DRAWS)
        count(n_logdensity=PROBE_DRAWS)
        lp = np.asarray(logdensity(x), float)
        lq = np.asarray(jax.jit(jax.vmap(log_q))(x), float)
        x = np.asarray(x, float)
        lw = np.where(np.isfinite(lp) & np.isfinite(lq), lp - lq, -np.inf)
        if not np.any(np.isfinite(lw)):
            break
        w = np.exp(lw - np.max(lw))
        w /= w.sum()
        ess, k = 1.0 / np.sum(w ** 2), pareto_khat(lw)
        if not (np.isfinite(k) and k < KHAT and ess >= 0.05 * PROBE_DRAWS):
            if not done:
                notes += (f"importance weights from the widened Laplace Gaussian are unusable for refining it "
                          f"(Pareto k = {k:.2f}, ESS {ess:.1f} of {PROBE_DRAWS}); kept as fitted",)
            break
        mu = w @ x
        c = (x - mu).T @ ((x - mu) * w[:, None])
        a = np.linalg.solve(chol, np.linalg.solve(chol, c).T)  # L^-1 C L^-T: the weighted cov in Laplace units
        lam, vec = np.linalg.eigh(0.5 * (a + a.T))
        new_cov = chol @ ((vec * np.maximum(lam, 1.0)) @ vec.T) @ chol.T
        new_cov = 0.5 * (new_cov + new_cov.T)
        # how much this round changed the reference: largest sd ratio either way, and the mean shift
        lc = cholesky(cov)
        rel = np.linalg.eigvalsh(np.linalg.solve(lc, np.linalg.solve(lc, new_cov).T))
        step = np.linalg.solve(lc, mu - mean)
        mean, cov = mu, new_cov
        done.append((k, ess, float(np.sqrt(np.max(lam)))))
        if np.all(np.abs(np.sqrt(rel) - 1) < 0.05) and np.sqrt(step @ step) < 0.1:
            break
    if done:
        shift = np.linalg.solve(chol, mean - fit.mode)
        k, ess, widest = done[-1]
        notes += (f"refined by {len(done)} round(s) of importance sampling from the widened Gaussian (last: Pareto "
                  f"k = {k:.2f}, ESS {ess:.0f} of {PROBE_DRAWS}): mean moved by {np.sqrt(shift @ shift):.2f} Laplace "
                  f"sds, widest direction x {widest:.2f} the Laplace sd",)
    return Gaussian(mean, cholesky(inflate * cov)), notes


# ---------------------------------------------------------------------------------------- coverage check
def pareto_khat(log_w: np.ndarray) -> float:
    """Pareto k of importance weights (PSIS, Vehtari et al. 2024): GPD fit (Zhang & Stephens, with the weakly
    informative prior at 0.5) to the largest min(n/5, 3 sqrt(n)) weights. NaN when too few are finite."""
    lw = np.asarray(log_w, float)
    lw = np.sort(lw[np.isfinite(lw)])
    n = lw.size
    m = int(min(n / 5, 3 * np.sqrt(n)))
    if m < 5:
        return float("nan")
    w = np.exp(lw - lw[-1])
    x = w[-m:] - w[-m - 1]
    if x[-1] <= 0:
        return float("-inf")  # flat tail: weights bounded
    n_t = x.size
    m_est = 30 + int(n_t ** 0.5)
    xstar = x[int(n_t / 4 + 0.5) - 1]
    if xstar <= x[0]:
        return float("nan")
    b = 1 - np.sqrt(m_est / (np.arange(1, m_est + 1) - 0.5))
    b = b / (3 * xstar) + 1 / x[-1]
    k = np.mean(np.log1p(-b[:, None] * x), axis=1)
    ll = n_t * (np.log(-b / k) - k - 1)
    wt = np.exp(ll - ll.max())
    wt /= wt.sum()
    kappa = float(np.mean(np.log1p(-np.sum(b * wt) * x)))
    return (n_t * kappa + 10 * 0.5) / (n_t + 10)


def coverage_findings(target, log_ref, sample_ref, mean=None, sd=None, chol=None, fit="laplace",
                      what="reference", num_draws: int = PROBE_DRAWS, seed: int = 0) -> list[str]:
    """Whether the reference (`log_ref(x)`, `sample_ref(key, n)`, optional `mean`, marginal `sd` and `chol`;
    estimated from its draws when not given) covers `target`'s posterior; one string per finding, [] if none.

    `fit`: a `Laplace`, "laplace" to fit one (cached), or None to skip the Laplace probe.
    Runs eagerly (call it outside traced code, or inside `jax.ensure_compile_time_eval()`).
    """
    with jax.ensure_compile_time_eval():
        return _coverage(target, log_ref, sample_ref, mean, sd, chol, fit, what, num_draws, seed)


def _coverage(target, log_ref, sample_ref, mean, sd, chol, fit, what, num_draws, seed):
    labels = names(target)
    findings = []
    x = sample_ref(jax.random.PRNGKey(seed + 7919), num_draws)
    lq = np.asarray(jax.jit(jax.vmap(log_ref))(x), float)
    count(n_logdensity=num_draws)
    lp = np.asarray(jax.jit(jax.vmap(target.logdensity))(x), float)
    x = np.asarray(x, float)
    if mean is None:
        mean = x.mean(axis=0)
    if sd is None:
        sd = x.std(axis=0)
    mean, sd = np.asarray(mean, float), np.asarray(sd, float)
    advice = ("tempering from it can miss posterior mass with no other sign (log Z biased, draws too narrow); "
              "use reference='auto' (a widened Laplace fit) or widen the reference")

    if isinstance(fit, str):
        try:
            fit = laplace(target)
        except ValueError as err:
            findings.append(f"{what} coverage not checked against a Laplace fit: {err}")
            fit = None
    if fit is not None:
        huge = np.flatnonzero(np.sqrt(np.clip(np.diag(fit.cov), 0, None)) > IMPROPER_SD * (1 + np.abs(fit.mode)))
        if fit.flat or huge.size:
            where = (f"along {', '.join(labels[j] for j in huge[:5])}" if huge.size else
                     f"in {fit.flat} direction(s)")
            findings.append(f"at the best point found ({_fmt(fit.mode)}) the log-density is flat or not concave "
                            f"{where}: the posterior may be improper (an improper prior the data do not pin down), the "
                            "log-density unbounded (a funnel whose scale goes to 0, e.g. a centred hierarchical model) "
                            "or the optimiser stopped early, and a Laplace-based reference is then unreliable; check "
                            "the model's priors, use its proper prior (reference=None) if it has one, or pass "
                            "reference=(mean, scale)")
    if fit is not None:
        post_sd = np.sqrt(np.clip(np.diag(fit.cov), 0, None))
        ratio = post_sd / sd
        off = np.abs(fit.mode - mean) / sd
        bad = np.flatnonzero(ratio > NARROW)
        for j in bad:
            findings.append(f"{what} is narrower than the posterior along {labels[j]}: posterior sd ~ {post_sd[j]:.3g} "
                            f"(Laplace at the mode) vs {what} sd {sd[j]:.3g}; {advice}")
        for j in np.flatnonzero(off > OFFSET):
            findings.append(f"the posterior mode of {labels[j]} ({fit.mode[j]:.3g}) is {off[j]:.1f} {what} sds from "
                            f"the {what} mean {mean[j]:.3g}; {advice}")
        if not bad.size and chol is not None:
            a = np.linalg.solve(chol, np.linalg.solve(chol, fit.cov).T)  # L^-1 cov L^-T
            lam, vec = np.linalg.eigh(0.5 * (a + a.T))
            if lam[-1] > NARROW ** 2:
                u = chol @ vec[:, -1]
                top = [labels[j] for j in np.argsort(-np.abs(u))[:3]]
                findings.append(f"{what} is narrower than the posterior in a direction mixing {', '.join(top)}: "
                                f"posterior sd {np.sqrt(lam[-1]):.2f}x the {what}'s there (Laplace); {advice}")

    ok = np.isfinite(lp) & np.isfinite(lq)
    lw = np.where(ok, lp - lq, -np.inf)
    if not np.any(ok):
        findings.append(f"the target's log-density is not finite at any of {num_draws} {what} draws; {advice}")
        return findings
    w = np.exp(lw - lw.max())
    w /= w.sum()
    ess = 1.0 / np.sum(w ** 2)
    k = pareto_khat(lw)
    mu_w = w @ x
    sd_w = np.sqrt(np.clip(w @ (x - mu_w) ** 2, 0, None))
    ratio_w = sd_w / sd
    wide = [j for j in np.argsort(-ratio_w) if ratio_w[j] > 1.0]
    if np.isfinite(k) and k > KHAT and wide:
        which = ", ".join(f"{labels[j]} ({sd_w[j]:.3g} vs {sd[j]:.3g})" for j in wide[:5])
        findings.append(f"{what} is narrower than the posterior: importance weights posterior/{what} from "
                        f"{num_draws} {what} draws have Pareto k = {k:.2f} (> {KHAT}, ESS {ess:.1f}), and their "
                        f"weighted sd exceeds the {what}'s along {which}{' ...' if len(wide) > 5 else ''}; {advice}")
    elif fit is None and ess < 0.01 * num_draws:
        findings.append(f"importance sampling the posterior from {num_draws} {what} draws has ESS {ess:.1f} (Pareto "
                        f"k = {k:.2f}): the {what} and the posterior barely overlap; {advice}")
    return findings
