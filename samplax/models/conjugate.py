"""Conjugate models with closed-form evidence (log Z), for SMC and other normaliser estimators.

`log_z` is the log of the integral of exp(logdensity) over the Target's unconstrained space; for numpyro
models that is the evidence p(y) (the unconstraining Jacobian is part of logdensity).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import logsumexp
from jax.scipy.stats import norm

from samplax.models import register
from samplax.target import Target


def _regression_data(n, p, sigma, tau, seed):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, p))
    beta = tau * rng.standard_normal(p)
    y = X @ beta + sigma * rng.standard_normal(n)
    return X, y


def linear_regression_model(X, sigma, tau, y=None):
    import numpyro
    import numpyro.distributions as dist

    beta = numpyro.sample("beta", dist.Normal(0.0, tau).expand([X.shape[1]]).to_event(1))
    numpyro.sample("y", dist.Normal(X @ beta, sigma).to_event(1), obs=y)


@register("conjugate_regression", "Bayesian linear regression, N(0, tau^2) prior, known noise (numpyro); exact "
                                  "posterior and evidence")
def conjugate_regression(n: int = 20, p: int = 3, sigma: float = 0.5, tau: float = 2.0, seed: int = 0) -> Target:
    """y ~ N(X beta, sigma^2 I), beta ~ N(0, tau^2 I): evidence y ~ N(0, tau^2 X X' + sigma^2 I)."""
    X, y = _regression_data(n, p, sigma, tau, seed)
    marg = tau ** 2 * X @ X.T + sigma ** 2 * np.eye(n)
    _, logdet = np.linalg.slogdet(marg)
    log_z = -0.5 * (n * math.log(2 * math.pi) + logdet + y @ np.linalg.solve(marg, y))
    cov = np.linalg.inv(X.T @ X / sigma ** 2 + np.eye(p) / tau ** 2)
    mean = cov @ X.T @ y / sigma ** 2
    chol = np.linalg.cholesky(cov)

    def sample(key, m):
        return jnp.asarray(mean) + jax.random.normal(key, (m, p)) @ jnp.asarray(chol).T

    t = Target.from_numpyro(linear_regression_model, jnp.asarray(X), sigma, tau, y=jnp.asarray(y),
                            name="conjugate_regression")
    return t.replace(mean=jnp.asarray(mean), cov=jnp.asarray(cov), sample=sample, log_z=float(log_z))


def normal_precision_model(n, a, b, y=None):
    import numpyro
    import numpyro.distributions as dist

    lam = numpyro.sample("lam", dist.Gamma(a, b))
    with numpyro.plate("n", n):
        numpyro.sample("y", dist.Normal(0.0, 1.0 / jnp.sqrt(lam)), obs=y)


@register("conjugate_precision", "normal with unknown precision, Gamma prior (numpyro, positive latent: tests the "
                                 "Jacobian); exact posterior and evidence")
def conjugate_precision(n: int = 10, a: float = 2.0, b: float = 1.0, seed: int = 0) -> Target:
    """y_i ~ N(0, 1/lam), lam ~ Gamma(a, b): posterior Gamma(a + n/2, b + sum y^2 / 2), closed-form evidence."""
    y = np.random.default_rng(seed).normal(0.0, 0.7, n)
    a_post, b_post = a + n / 2, b + 0.5 * float(y @ y)
    log_z = (a * math.log(b) - math.lgamma(a) - 0.5 * n * math.log(2 * math.pi) + math.lgamma(a_post)
             - a_post * math.log(b_post))

    def sample(key, m):
        return (jax.random.gamma(key, a_post, (m,)) / b_post)[:, None]

    t = Target.from_numpyro(normal_precision_model, n, a, b, y=jnp.asarray(y), name="conjugate_precision")
    return t.replace(mean=jnp.array([a_post / b_post]), cov=jnp.array([[a_post / b_post ** 2]]), sample=sample,
                     log_z=float(log_z))


@register("normal_normal", "plain log-density: Gaussian likelihood x N(0, prior_scale^2) prior, exact log Z; sample "
                           "with SMC by passing reference=(mean, scale)")
def normal_normal(dim: int = 5, noise: float = 0.5, prior_scale: float = 1.0, seed: int = 0) -> Target:
    """exp(logdensity) = N(x; 0, s0^2 I) N(y; x, s^2 I): log Z = sum log N(y; 0, s0^2 + s^2)."""
    y = np.random.default_rng(seed).normal(0.0, math.sqrt(prior_scale ** 2 + noise ** 2), dim)
    yj = jnp.asarray(y)

    def logdensity(x):
        return jnp.sum(norm.logpdf(x, 0.0, prior_scale)) + jnp.sum(norm.logpdf(yj, x, noise))

    log_z = float(np.sum(norm.logpdf(y, 0.0, math.sqrt(prior_scale ** 2 + noise ** 2))))
    var = 1.0 / (1.0 / prior_scale ** 2 + 1.0 / noise ** 2)
    mean = var * y / noise ** 2

    def sample(key, m):
        return jnp.asarray(mean) + math.sqrt(var) * jax.random.normal(key, (m, dim))

    return Target.from_logdensity(logdensity, dim, name="normal_normal", mean=jnp.asarray(mean),
                                  cov=var * jnp.eye(dim), sample=sample, log_z=log_z)


@register("bimodal_mixture", "two well-separated Gaussian modes (weights w, 1-w) at +-separation/2 on the diagonal, "
                             "unnormalised with exact log Z")
def bimodal_mixture(dim: int = 2, separation: float = 6.0, scale: float = 0.5, weight: float = 0.3,
                    log_z: float = 1.5) -> Target:
    """exp(log_z) * (w N(m1, scale^2 I) + (1-w) N(m2, scale^2 I)), m1 = -m2 = (separation / 2 / sqrt(dim)) 1."""
    if not 0.0 < weight < 1.0:
        raise ValueError(f"weight must be in (0, 1), got {weight!r}")
    m = np.full(dim, separation / 2 / math.sqrt(dim))
    means = jnp.asarray(np.stack([-m, m]))
    logw = jnp.log(jnp.array([weight, 1.0 - weight]))

    def logdensity(x):
        comp = jnp.sum(norm.logpdf(x[None, :], means, scale), axis=-1)
        return log_z + logsumexp(logw + comp)

    w = np.array([weight, 1.0 - weight])
    mean = w @ np.asarray(means)
    cov = scale ** 2 * np.eye(dim) + sum(w[k] * np.outer(np.asarray(means)[k] - mean, np.asarray(means)[k] - mean)
                                         for k in range(2))

    def sample(key, n):
        k1, k2 = jax.random.split(key)
        c = jax.random.bernoulli(k1, 1.0 - weight, (n,)).astype(int)
        return means[c] + scale * jax.random.normal(k2, (n, dim))

    return Target.from_logdensity(logdensity, dim, name="bimodal_mixture", mean=jnp.asarray(mean),
                                  cov=jnp.asarray(cov), sample=sample, log_z=float(log_z),
                                  info={"weights": w, "means": np.asarray(means), "scale": scale})
