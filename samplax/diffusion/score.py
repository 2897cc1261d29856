"""Score models: a forward process plus s(x, t) = grad log p_t(x); exact for Gaussian mixtures."""

from __future__ import annotations

import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import logsumexp

from samplax import checks
from samplax.diffusion.process import Process, get as get_process

Array = jax.Array


@dataclasses.dataclass(frozen=True, eq=False)
class ScoreModel:
    """`score(x, t)` for one point x of shape (dim,) and scalar t, under the forward `process`.

    Optional exact pieces: `log_prob(x, t)` (normalised log p_t), `sample(key, n)` (exact draws of
    p_{t_min}, the distribution the reverse samplers target). Exact pieces let tests and reports
    measure the error of a sampler; a learned score has neither.
    """

    score: Callable[[Array, Array], Array]
    process: Process
    dim: int
    log_prob: Callable[[Array, Array], Array] | None = None
    sample: Callable[[Array, int], Array] | None = None
    name: str = "score_model"
    info: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        if not callable(self.score):
            raise TypeError(f"score must be callable (x, t) -> array of shape ({self.dim},)")
        if not isinstance(self.dim, (int, np.integer)) or isinstance(self.dim, bool) or self.dim < 1:
            raise ValueError(f"dim must be an integer >= 1, got {self.dim!r}")
        out = jax.eval_shape(self.score, jax.ShapeDtypeStruct((self.dim,), jnp.result_type(float)),
                             jax.ShapeDtypeStruct((), jnp.result_type(float)))
        if out.shape != (self.dim,):
            raise ValueError(f"score(x, t) must return shape ({self.dim},) for x of shape ({self.dim},), got {out.shape}")

    @classmethod
    def from_function(cls, score, dim: int, process="vp", name: str = "score_model") -> "ScoreModel":
        # checked before int(): int(2.7) = 2 and int(True) = 1 would run a different model than the one given
        dim = checks.integer("dim", dim, 1)
        return cls(score=score, process=get_process(process), dim=dim, name=name)

    @classmethod
    def gaussian_mixture(cls, weights, means, covs, process="vp", name: str = "gaussian_mixture") -> "ScoreModel":
        """Exact scores of a Gaussian mixture: p_t = sum_k w_k N(alpha m_k, alpha^2 C_k + sigma^2 I)."""
        w, m, c = _check_mixture(weights, means, covs)
        proc = get_process(process)
        k, d = m.shape

        def log_prob(x, t):
            a, s = proc.alpha(t), proc.sigma(t)
            cov = a ** 2 * c + s ** 2 * jnp.eye(d)
            comps = jax.vmap(lambda mu, cv: jax.scipy.stats.multivariate_normal.logpdf(x, a * mu, cv))(m, cov)
            return logsumexp(comps + jnp.log(w))

        def score(x, t):
            return jax.grad(log_prob)(x, t)

        def sample(key, n):
            a, s = proc.alpha(proc.t_min), proc.sigma(proc.t_min)
            return mixture_sample(key, n, w, a * m, a ** 2 * c + s ** 2 * jnp.eye(d))

        return cls(score=score, process=proc, dim=int(d), log_prob=log_prob, sample=sample, name=name,
                   info={"weights": w, "means": m, "covs": c})

    def at(self, t) -> Callable[[Array], Array]:
        """x -> score(x, t)."""
        return lambda x: self.score(x, t)

    def as_target(self):
        """The Target the reverse samplers aim at: p at t_min, with its exact log-density and sampler when known."""
        from samplax.target import Target

        if self.log_prob is None:
            return _score_only_target(self)
        t0 = np.asarray(self.process.t_min, float)  # numpy, not jnp: as_target() runs inside traced samplers,
        # where a jnp constant would be a tracer the eager reference fit (tempering, reference_fit) cannot read
        fn = lambda x: self.log_prob(x, t0)  # noqa: E731
        truth = {"log_z": 0.0}
        if self.sample is not None:
            truth["sample"] = self.sample
        return Target.from_logdensity(fn, self.dim, name=self.name, **truth)


def _score_only_target(model: ScoreModel):
    """Names the particles of a score-only model; its log-density is unknown (NaN), its sampler if given."""
    from samplax.target import Target

    dim = model.dim
    return Target(logdensity=lambda x: jnp.full((), jnp.nan), dim=dim, init=lambda key: jnp.zeros(dim),
                  constrain=lambda x: {"x": x}, var_shapes={"x": (dim,)}, name=model.name,
                  sample=model.sample)


def _check_mixture(weights, means, covs):
    w = jnp.asarray(weights, float)
    m = jnp.asarray(means, float)
    c = jnp.asarray(covs, float)
    if m.ndim != 2:
        raise ValueError(f"means must have shape (K, d), got {m.shape}")
    k, d = m.shape
    if w.shape != (k,):
        raise ValueError(f"weights must have shape ({k},) to match means {m.shape}, got {w.shape}")
    wn, mn, cn = np.asarray(w), np.asarray(m), np.asarray(c)
    if not np.all(np.isfinite(wn)) or np.any(wn <= 0):
        raise ValueError(f"weights must be positive finite numbers (they are normalised to sum to 1), got "
                         f"{wn.tolist()}")
    if not np.all(np.isfinite(mn)):
        bad = sorted({int(i) for i in np.argwhere(~np.isfinite(mn))[:, 0]})
        raise ValueError(f"means must be finite; component(s) {bad[:5]} have NaN/inf entries")
    if not np.all(np.isfinite(cn)):
        raise ValueError(f"covs must be finite; {int(np.sum(~np.isfinite(cn)))} of {cn.size} entries are NaN/inf")
    if c.ndim == 1 and c.shape == (k,):  # isotropic variance per component
        if np.any(cn < 0):
            raise ValueError(f"covs given as one variance per component must be >= 0; component(s) "
                             f"{np.flatnonzero(cn < 0)[:5].tolist()} have {cn[cn < 0][:5].tolist()}")
        c = c[:, None, None] * jnp.eye(d)
    elif c.shape == (d, d):
        c = jnp.broadcast_to(c, (k, d, d))
    if c.shape != (k, d, d):
        raise ValueError(f"covs must have shape ({k}, {d}, {d}), ({d}, {d}) or ({k},), got {c.shape}")
    _check_covs(np.asarray(c), cn.shape == (d, d) and k == d)
    return w / w.sum(), m, c


def _check_covs(c, shared: bool):
    """Each (d, d) covariance symmetric and positive semi-definite (a zero variance is a point mass at t = 0, still a
    Gaussian of covariance sigma(t)^2 I > 0 at every t of the process), else a ValueError naming the component."""
    hint = (" (a (d, d) array with K = d components is read as one covariance shared by every component; give shape "
            "(K, d, d) for one covariance per component)" if shared else "")
    scale = max(float(np.max(np.abs(c))), 1e-300)
    for i, ci in enumerate(c):
        asym = float(np.max(np.abs(ci - ci.T)))
        if asym > 1e-8 * scale:
            raise ValueError(f"covs must be symmetric; component {i} has max |C - C^T| = {asym:.3g}{hint}")
        low = float(np.linalg.eigvalsh(ci)[0])
        if low < -1e-10 * scale:
            raise ValueError(f"covs must be positive semi-definite; component {i} has smallest eigenvalue {low:.3g}"
                             f"{hint}")


def mixture_sample(key, n, weights, means, covs):
    """n exact draws of sum_k w_k N(m_k, C_k)."""
    kc, kz = jax.random.split(key)
    comp = jax.random.categorical(kc, jnp.log(weights), shape=(n,))
    chol = jnp.linalg.cholesky(covs)
    z = jax.random.normal(kz, (n, means.shape[1]))
    return means[comp] + jnp.einsum("nij,nj->ni", chol[comp], z)
