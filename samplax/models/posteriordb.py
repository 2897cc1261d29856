"""posteriordb posteriors ported to numpyro, each carrying the posteriordb reference draws as ground truth.

Data and reference draws: stan-dev/posteriordb commit 28f8d3d, BSD-3-Clause (see data/ATTRIBUTION.md).
Stan's unstated priors are flat; they are written as `ImproperUniform` on the parameter's support and
Stan's `~` statements on transformed supports (ordered, positive_ordered) as `factor`s, so the
unnormalised posterior density is Stan's.
"""

from __future__ import annotations

import json
import pathlib
import re

import numpy as np

from samplax.models import register
from samplax.target import Target

DATA_DIR = pathlib.Path(__file__).parent / "data"
# registered name -> posteriordb posterior name
PORTS = {
    "hmm_example": "hmm_example-hmm_example",
    "low_dim_gauss_mix": "low_dim_gauss_mix-low_dim_gauss_mix",
    "kidscore_momiq": "kidiq-kidscore_momiq",
    "kidscore_interaction": "kidiq-kidscore_interaction",
    "earn_height": "earnings-earn_height",
    "logmesquite": "mesquite-logmesquite",
    "arma11": "arma-arma11",
    "blr": "sblrc-blr",
    "diamonds": "diamonds-diamonds",
    "gp_pois_regr": "gp_pois_regr-gp_pois_regr",
}


def load_data(data_name: str) -> dict:
    """The posteriordb data dict stored as `data/<data_name>.json`."""
    path = DATA_DIR / f"{data_name}.json"
    if not path.exists():
        raise ValueError(f"no posteriordb data {data_name!r} in {DATA_DIR}")
    return json.loads(path.read_text())


def load_reference(posterior: str) -> dict[str, np.ndarray]:
    """Reference draws as {site: array(n_draws, *shape)}, Stan's 1-based `theta[1]` becoming site `theta` index 0."""
    path = DATA_DIR / f"{posterior}.npz"
    if not path.exists():
        raise ValueError(f"no posteriordb reference draws {posterior!r} in {DATA_DIR}")
    with np.load(path) as z:
        draws = np.asarray(z["draws"], dtype=np.float64)
        names = [str(n) for n in z["names"]]
    flat = draws.reshape(-1, draws.shape[-1])
    columns: dict[str, list[tuple[tuple[int, ...], int]]] = {}
    for col, stan_name in enumerate(names):
        m = re.fullmatch(r"([A-Za-z_][A-Za-z0-9_]*)(?:\[([0-9, ]+)\])?", stan_name)
        if m is None:
            raise ValueError(f"cannot parse Stan parameter name {stan_name!r} in {path.name}")
        idx = tuple(int(i) - 1 for i in m.group(2).split(",")) if m.group(2) else ()
        columns.setdefault(m.group(1), []).append((idx, col))
    out = {}
    for site, cols in columns.items():
        if cols[0][0] == ():
            out[site] = flat[:, cols[0][1]].copy()
            continue
        shape = tuple(max(i[d] for i, _ in cols) + 1 for d in range(len(cols[0][0])))
        arr = np.full((flat.shape[0], *shape), np.nan)
        for idx, col in cols:
            arr[(slice(None), *idx)] = flat[:, col]
        out[site] = arr
    return out


def _target(model, name: str, *args, **kwargs) -> Target:
    t = Target.from_numpyro(model, *args, name=name, **kwargs)
    return t.replace(reference_draws=load_reference(PORTS[name]), info={**t.info, "posteriordb": PORTS[name]})


def flat_regression_truth(X, y) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Exact posterior mean and cov of y ~ N(X beta, sigma) under flat priors on beta and on sigma > 0.

    Integrating beta out leaves p(sigma^2 | y) = InvGamma((n - k - 1)/2, RSS/2); given sigma,
    beta ~ N(beta_ols, sigma^2 (X'X)^-1), so E beta = beta_ols, Cov beta = E[sigma^2] (X'X)^-1, and
    beta, sigma are uncorrelated (the conditional mean of beta does not depend on sigma).
    Returns {"beta": (mean, cov), "sigma": (mean, var)}.
    """
    from scipy.special import gammaln

    X, y = np.asarray(X, dtype=np.float64), np.asarray(y, dtype=np.float64)
    n, k = X.shape
    beta_ols, *_ = np.linalg.lstsq(X, y, rcond=None)
    rss = float(np.sum((y - X @ beta_ols) ** 2))
    alpha, b = (n - k - 1) / 2, rss / 2
    e_sigma2 = b / (alpha - 1)
    e_sigma = np.sqrt(b) * np.exp(gammaln(alpha - 0.5) - gammaln(alpha))
    return {"beta": (beta_ols, e_sigma2 * np.linalg.inv(X.T @ X)), "sigma": (e_sigma, e_sigma2 - e_sigma**2)}


def _with_flat_regression_truth(t: Target, X, y) -> Target:
    truth = flat_regression_truth(X, y)
    if list(t.var_shapes) != ["beta", "sigma"]:
        raise RuntimeError(f"flat-regression truth expects sites [beta, sigma], got {list(t.var_shapes)}")
    (mb, cb), (ms, vs) = truth["beta"], truth["sigma"]
    k = mb.size
    cov = np.zeros((k + 1, k + 1))
    cov[:k, :k], cov[k, k] = cb, vs
    return t.replace(mean=np.append(mb, ms), cov=cov)


def _flat(shape=()):
    import numpyro.distributions as dist
    from numpyro.distributions import constraints

    return dist.ImproperUniform(constraints.real, (), shape)


def _flat_positive():
    import numpyro.distributions as dist
    from numpyro.distributions import constraints

    return dist.ImproperUniform(constraints.positive, (), ())


# ---------------------------------------------------------------- simplex + positive_ordered
def hmm_example_model(y, K=2):
    """Two-state HMM, unit-variance Gaussian emissions, forward algorithm; simplex rows, positive_ordered means."""
    import jax
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist
    from numpyro.distributions import constraints

    if K != 2:
        raise ValueError(f"hmm_example is written for K=2 states (as posteriordb's Stan model), got K={K}")
    theta1 = numpyro.sample("theta1", dist.Dirichlet(jnp.ones(K)))  # Stan: simplex, implicit uniform prior
    theta2 = numpyro.sample("theta2", dist.Dirichlet(jnp.ones(K)))
    mu = numpyro.sample("mu", dist.ImproperUniform(constraints.positive_ordered_vector, (), (K,)))
    numpyro.factor("mu_prior", dist.Normal(3.0, 1.0).log_prob(mu[0]) + dist.Normal(10.0, 1.0).log_prob(mu[1]))
    log_trans = jnp.log(jnp.stack([theta1, theta2]))  # [from j, to k]
    emit = dist.Normal(mu, 1.0).log_prob(jnp.asarray(y)[:, None])  # (N, K)

    def step(gamma, e):
        return jax.nn.logsumexp(gamma[:, None] + log_trans, axis=0) + e, None

    gamma, _ = jax.lax.scan(step, emit[0], emit[1:])
    numpyro.factor("forward", jax.nn.logsumexp(gamma))


@register("hmm_example", "posteriordb hmm_example: 2-state HMM, simplex + positive_ordered; reference draws")
def hmm_example() -> Target:
    """posteriordb hmm_example (simplex transition rows, positive_ordered means); truth: reference draws."""
    d = load_data("hmm_example")
    return _target(hmm_example_model, "hmm_example", np.asarray(d["y"], dtype=float), K=int(d["K"]))


# ---------------------------------------------------------------- ordered + unit interval
def low_dim_gauss_mix_model(y):
    """Two-component normal mixture with ordered means, positive scales and a Beta(5, 5) weight."""
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist
    from numpyro.distributions import constraints

    mu = numpyro.sample("mu", dist.ImproperUniform(constraints.ordered_vector, (), (2,)))
    numpyro.factor("mu_prior", dist.Normal(0.0, 2.0).log_prob(mu).sum())
    sigma = numpyro.sample("sigma", dist.HalfNormal(2.0).expand([2]).to_event(1))
    theta = numpyro.sample("theta", dist.Beta(5.0, 5.0))
    mix = dist.MixtureSameFamily(dist.Categorical(probs=jnp.stack([theta, 1 - theta])), dist.Normal(mu, sigma))
    with numpyro.plate("N", len(y)):
        numpyro.sample("y", mix, obs=y)


@register("low_dim_gauss_mix", "posteriordb low_dim_gauss_mix: ordered means, N=1000; reference draws")
def low_dim_gauss_mix() -> Target:
    """posteriordb low_dim_gauss_mix (ordered mu, positive sigma, theta in (0,1)); truth: reference draws."""
    d = load_data("low_dim_gauss_mix")
    return _target(low_dim_gauss_mix_model, "low_dim_gauss_mix", np.asarray(d["y"], dtype=float))


# ---------------------------------------------------------------- regressions
def linear_regression_model(X, y, beta_prior=None, sigma_prior=None):
    """y ~ N(X beta, sigma); flat priors (Stan's default) unless given."""
    import numpyro
    import numpyro.distributions as dist

    beta = numpyro.sample("beta", beta_prior if beta_prior is not None else _flat((X.shape[1],)))
    sigma = numpyro.sample("sigma", sigma_prior if sigma_prior is not None else _flat_positive())
    with numpyro.plate("N", X.shape[0]):
        numpyro.sample("y", dist.Normal(X @ beta, sigma), obs=y)


def _design(*columns):
    return np.stack([np.ones(len(columns[0]))] + [np.asarray(c, dtype=float) for c in columns], axis=1)


@register("kidscore_momiq", "posteriordb kidiq-kidscore_momiq regression (ARM book); reference draws")
def kidscore_momiq() -> Target:
    """kid_score ~ N(b1 + b2 mom_iq, sigma), sigma ~ HalfCauchy(2.5); truth: reference draws."""
    import numpyro.distributions as dist

    d = load_data("kidiq")
    X = _design(d["mom_iq"])
    return _target(linear_regression_model, "kidscore_momiq", X, np.asarray(d["kid_score"], dtype=float),
                   sigma_prior=dist.HalfCauchy(2.5))


@register("kidscore_interaction", "posteriordb kidiq-kidscore_interaction regression; reference draws")
def kidscore_interaction() -> Target:
    """kid_score ~ N(b1 + b2 hs + b3 iq + b4 hs*iq, sigma), sigma ~ HalfCauchy(2.5); truth: reference draws."""
    import numpyro.distributions as dist

    d = load_data("kidiq")
    hs, iq = np.asarray(d["mom_hs"], dtype=float), np.asarray(d["mom_iq"], dtype=float)
    X = _design(hs, iq, hs * iq)
    return _target(linear_regression_model, "kidscore_interaction", X, np.asarray(d["kid_score"], dtype=float),
                   sigma_prior=dist.HalfCauchy(2.5))


@register("earn_height", "posteriordb earnings-earn_height regression (flat priors, badly scaled); reference draws")
def earn_height() -> Target:
    """earn ~ N(b1 + b2 height, sigma), flat priors; truth: exact mean/cov (flat_regression_truth) and reference draws."""
    d = load_data("earnings")
    X, y = _design(d["height"]), np.asarray(d["earn"], dtype=float)
    return _with_flat_regression_truth(_target(linear_regression_model, "earn_height", X, y), X, y)


@register("logmesquite", "posteriordb mesquite-logmesquite log-log regression, 7 coefficients; reference draws")
def logmesquite() -> Target:
    """log weight ~ N(linear in log sizes and group, sigma), flat priors; truth: exact mean/cov and reference draws."""
    d = load_data("mesquite")
    logs = [np.log(np.asarray(d[k], dtype=float))
            for k in ("diam1", "diam2", "canopy_height", "total_height", "density")]
    X, y = _design(*logs, d["group"]), np.log(np.asarray(d["weight"], dtype=float))
    return _with_flat_regression_truth(_target(linear_regression_model, "logmesquite", X, y), X, y)


@register("blr", "posteriordb sblrc-blr Bayesian linear regression, 5 coefficients; reference draws")
def blr() -> Target:
    """y ~ N(X beta, sigma), beta ~ N(0, 10), sigma ~ HalfNormal(10); truth: reference draws."""
    import numpyro.distributions as dist

    d = load_data("sblrc")
    X = np.asarray(d["X"], dtype=float)
    return _target(linear_regression_model, "blr", X, np.asarray(d["y"], dtype=float),
                   beta_prior=dist.Normal(0.0, 10.0).expand([X.shape[1]]).to_event(1),
                   sigma_prior=dist.HalfNormal(10.0))


# ---------------------------------------------------------------- time series
def arma11_model(y):
    """ARMA(1, 1) with err[0] = 0, as posteriordb's arma11."""
    import jax
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist

    y = jnp.asarray(y)
    mu = numpyro.sample("mu", dist.Normal(0.0, 10.0))
    phi = numpyro.sample("phi", dist.Normal(0.0, 2.0))
    theta = numpyro.sample("theta", dist.Normal(0.0, 2.0))
    sigma = numpyro.sample("sigma", dist.HalfCauchy(2.5))
    err1 = y[0] - (mu + phi * mu)

    def step(err_prev, t_vals):
        y_prev, y_t = t_vals
        err = y_t - (mu + phi * y_prev + theta * err_prev)
        return err, err

    _, errs = jax.lax.scan(step, err1, (y[:-1], y[1:]))
    err = jnp.concatenate([err1[None], errs])
    numpyro.factor("err", dist.Normal(0.0, sigma).log_prob(err).sum())


@register("arma11", "posteriordb arma-arma11 ARMA(1,1) time series, T=200; reference draws")
def arma11() -> Target:
    """ARMA(1,1) on posteriordb's arma data; truth: reference draws."""
    # Inits in (-2, 2) can land with |phi|, |theta| > 1, where the recursion's errors explode and NUTS
    # chains stall at step size ~0 (seen with 2 of 4 chains); (-0.5, 0.5) starts in the stationary region.
    return _target(arma11_model, "arma11", np.asarray(load_data("arma")["y"], dtype=float), init_radius=0.5)


# ---------------------------------------------------------------- brms regression, 26 parameters, correlated
def diamonds_model(Y, Xc, means_X):
    """brms Gaussian regression on centred predictors (posteriordb diamonds): b ~ N(0, 1), Intercept ~
    Student-t(3, 8, 10), sigma ~ half-Student-t(3, 0, 10); `b_Intercept` as Stan's generated quantity."""
    import numpyro
    import numpyro.distributions as dist

    k = Xc.shape[1]
    b = numpyro.sample("b", dist.Normal(0.0, 1.0).expand([k]).to_event(1))
    intercept = numpyro.sample("Intercept", dist.StudentT(3.0, 8.0, 10.0))
    # Stan subtracts student_t_lccdf(0 | 3, 0, 10), a constant: the half-t's normaliser
    sigma = numpyro.sample("sigma", dist.FoldedDistribution(dist.StudentT(3.0, 0.0, 10.0)))
    numpyro.deterministic("b_Intercept", intercept - means_X @ b)
    with numpyro.plate("N", Xc.shape[0]):
        numpyro.sample("Y", dist.Normal(intercept + Xc @ b, sigma), obs=Y)


@register("diamonds", "posteriordb diamonds-diamonds brms regression, N=5000, 26 correlated parameters; reference draws")
def diamonds() -> Target:
    """posteriordb diamonds (hard for NUTS: long trees); truth: reference draws."""
    d = load_data("diamonds")
    X = np.asarray(d["X"], dtype=float)
    if int(d["prior_only"]):
        raise ValueError("diamonds data has prior_only=1; the port samples the posterior")
    means_X = X[:, 1:].mean(axis=0)
    Xc = X[:, 1:] - means_X
    t = _target(diamonds_model, "diamonds", np.asarray(d["Y"], dtype=float), Xc, means_X)
    ref = dict(t.reference_draws)
    # posteriordb's draws omit the generated quantity; it is the same deterministic function of them
    ref["b_Intercept"] = ref["Intercept"] - ref["b"] @ means_X
    return t.replace(reference_draws=ref)


# ---------------------------------------------------------------- Gaussian process, Poisson counts
def gp_pois_regr_model(x, k):
    """Latent GP (squared-exponential kernel, non-centred f = L f_tilde) with Poisson-log counts."""
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist

    x = jnp.asarray(x)
    n = x.shape[0]
    rho = numpyro.sample("rho", dist.Gamma(25.0, 4.0))  # Stan gamma(shape, rate)
    alpha = numpyro.sample("alpha", dist.HalfNormal(2.0))  # Stan: real<lower=0> alpha ~ normal(0, 2)
    f_tilde = numpyro.sample("f_tilde", dist.Normal(0.0, 1.0).expand([n]).to_event(1))
    cov = alpha ** 2 * jnp.exp(-0.5 * (x[:, None] - x[None, :]) ** 2 / rho ** 2) + 1e-10 * jnp.eye(n)
    f = numpyro.deterministic("f", jnp.linalg.cholesky(cov) @ f_tilde)
    with numpyro.plate("N", n):
        numpyro.sample("k", dist.Poisson(jnp.exp(f)), obs=jnp.asarray(k))


@register("gp_pois_regr", "posteriordb gp_pois_regr: latent GP with Poisson counts, N=11; reference draws")
def gp_pois_regr() -> Target:
    """posteriordb gp_pois_regr (reference draws of rho, alpha, f; f_tilde derived from them)."""
    d = load_data("gp_pois_regr")
    x = np.asarray(d["x"], dtype=float)
    t = _target(gp_pois_regr_model, "gp_pois_regr", x, np.asarray(d["k"]))
    ref = dict(t.reference_draws)
    # the reference covers f = L f_tilde (Stan's transformed parameter); f_tilde = L^-1 f at each draw
    sq = (x[:, None] - x[None, :]) ** 2
    cov = ref["alpha"][:, None, None] ** 2 * np.exp(-0.5 * sq / ref["rho"][:, None, None] ** 2) + 1e-10 * np.eye(x.size)
    ref["f_tilde"] = np.linalg.solve(np.linalg.cholesky(cov), ref["f"][..., None])[..., 0]
    return t.replace(reference_draws=ref)
