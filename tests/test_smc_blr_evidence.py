"""A known failure, tracked: tempered SMC's log Z on posteriordb's blr is wrong by ~3 nats and the run does not say so.

blr (y ~ N(X beta, sigma), beta ~ N(0, 10^2) in 5-d, sigma ~ HalfNormal(10), N = 100) has an exact evidence: given
sigma, y ~ N(0, sigma^2 I + 100 X X'), so log Z is a 1-d integral over sigma (quadrature here, checked against
importance sampling from a widened Laplace fit, -194.9673 with 800k draws). The default SMC (waste-free, MALA, dense
mass) gives -198.0 with a within-run SE of 0.07, its four populations agree, and its trust check passes: a silent
wrong answer. More sweeps per stage help only partly (max_mcmc_steps 400: -1.8 off), target_ess=0.9 gives -0.8 off,
kernel="hmc" -0.25 off (benchmarks/README, "SMC log Z standard error against exact evidence"). The xfail is strict:
when SMC is right here, or says it is not, this test passes and the marker must go.
"""

import jax
import numpy as np
import pytest
from scipy import stats
from scipy.special import logsumexp

import samplax
from samplax.models.posteriordb import load_data


def blr_log_z(n_grid: int = 20001) -> float:
    d = load_data("sblrc")
    X, y = np.asarray(d["X"], float), np.asarray(d["y"], float)
    n, k = X.shape
    xtx, xty, yty, tau2 = X.T @ X, X.T @ y, y @ y, 100.0

    def log_lik(s):  # log N(y; 0, s^2 I + tau2 X X') by the matrix determinant lemma and Woodbury
        s2 = s * s
        _, logdet = np.linalg.slogdet(np.eye(k) + tau2 / s2 * xtx)
        quad = (yty - xty @ np.linalg.solve(s2 / tau2 * np.eye(k) + xtx, xty)) / s2
        return -0.5 * (n * np.log(2 * np.pi) + n * np.log(s2) + logdet + quad)

    coarse = np.geomspace(1e-3, 50.0, 2000)
    peak = coarse[np.argmax([log_lik(s) for s in coarse])]
    g = np.linspace(0.3 * peak, 3.0 * peak, n_grid)  # the integrand is < e^-60 of its peak outside
    vals = np.array([log_lik(s) for s in g]) + stats.halfnorm(scale=10.0).logpdf(g)
    return float(logsumexp(vals) + np.log(g[1] - g[0]))


def test_blr_exact_log_z_two_routes():
    """The quadrature against importance sampling from a widened Laplace fit of samplax's blr target."""
    exact = blr_log_z()
    assert abs(exact - blr_log_z(5001)) < 1e-6
    t = samplax.models.get("blr")
    from scipy import optimize

    f, g, h = jax.jit(t.logdensity), jax.jit(jax.grad(t.logdensity)), jax.jit(jax.hessian(t.logdensity))
    r = optimize.minimize(lambda x: -float(f(x)), np.zeros(t.dim), jac=lambda x: -np.asarray(g(x)), method="BFGS",
                          options=dict(gtol=1e-10, maxiter=10000))
    L = np.linalg.cholesky(np.linalg.inv(-np.asarray(h(r.x))) * 1.5)
    z = np.random.default_rng(0).standard_normal((100_000, t.dim))
    lq = -0.5 * np.sum(z**2, 1) - np.sum(np.log(np.diag(L))) - 0.5 * t.dim * np.log(2 * np.pi)
    lw = np.asarray(jax.vmap(f)(r.x + z @ L.T)) - lq
    w = np.exp(lw - lw.max())
    est, se = logsumexp(lw) - np.log(lw.size), np.sqrt(np.var(w) / lw.size) / np.mean(w)
    assert abs(est - exact) < 4 * se + 1e-3, f"IS {est} (se {se}) vs quadrature {exact}"
    assert abs(est - (exact - 0.05)) > 4 * se, f"IS se {se} cannot tell a 0.05 error"


@pytest.mark.xfail(strict=True, reason="default SMC's log Z on blr is ~3 nats low and the run does not warn "
                                       "(a known failure, module docstring)")
def test_default_smc_log_z_on_blr_is_right_or_loud():
    import warnings

    t = samplax.models.get("blr")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dt = samplax.sample(t, "smc", num_particles=2000, num_chains=4, seed=0, progress=False)
    warned = any("trust check" in str(w.message) for w in caught)
    est, se = float(dt.attrs["log_z"]), float(dt.attrs["log_z_se"])
    assert 0 < se < 0.5
    right = abs(est - blr_log_z()) < 4 * se + 0.05
    assert right or warned, f"log Z {est} (se {se}) vs exact {blr_log_z()}, and no warning"
