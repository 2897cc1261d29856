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
    """earn ~ N(b1 + b2 height, sigma), flat priors; truth: reference draws."""
    d = load_data("earnings")
    return _target(linear_regression_model, "earn_height", _design(d["height"]), np.asarray(d["earn"], dtype=float))


@register("logmesquite", "posteriordb mesquite-logmesquite log-log regression, 7 coefficients; reference draws")
def logmesquite() -> Target:
    """log weight ~ N(linear in log sizes and group, sigma), flat priors; truth: reference draws."""
    d = load_data("mesquite")
    logs = [np.log(np.asarray(d[k], dtype=float))
            for k in ("diam1", "diam2", "canopy_height", "total_height", "density")]
    X = _design(*logs, d["group"])
    return _target(linear_regression_model, "logmesquite", X, np.log(np.asarray(d["weight"], dtype=float)))


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
    return _target(arma11_model, "arma11", np.asarray(load_data("arma")["y"], dtype=float))
