"""A real posterior where tempered SMC's log Z is wrong by ~3 nats: the run must say so.

blr (y ~ N(X beta, sigma), beta ~ N(0, 10^2) in 5-d, sigma ~ HalfNormal(10), N = 100) has an exact evidence: given
sigma, y ~ N(0, sigma^2 I + 100 X X'), so log Z is a 1-d integral over sigma (quadrature here, checked against
importance sampling from a widened Laplace fit). The default SMC (waste-free, MALA, dense mass) gives -198.0 with a
within-run SE of 0.07 and its four populations agree: before `diagnostics.evidence_check` the trust check passed.
Now the run compares its log Z with importance sampling from a Gaussian fitted to its particles and warns.
More sweeps per stage help only partly (max_mcmc_steps 400: -1.8 off), target_ess=0.9 gives -0.8 off,
kernel="hmc" -0.25 off, reference="auto" is exact (benchmarks/README, "SMC log Z standard error against exact
evidence").
"""

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
    """The quadrature against importance sampling (100k draws) from samplax's Laplace fit of the blr target, widened
    1.5x in variance."""
    from samplax.diagnostics.evidence_check import gaussian_importance_log_z
    from samplax.reference_fit import Gaussian, cholesky, laplace

    exact = blr_log_z()
    assert abs(exact - blr_log_z(5001)) < 1e-6
    fit = laplace(samplax.models.get("blr"))
    est, se, k = gaussian_importance_log_z(samplax.models.get("blr").logdensity,
                                           Gaussian(fit.mode, cholesky(1.5 * fit.cov)), num_draws=100_000)
    assert k < 0.5
    assert abs(est - exact) < 4 * se + 1e-3, f"IS {est} (se {se}) vs quadrature {exact}"
    assert abs(est - (exact - 0.05)) > 4 * se, f"IS se {se} cannot tell a 0.05 error"


def _run(**kw):
    import warnings

    t = samplax.models.get("blr")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dt = samplax.sample(t, "smc", num_particles=2000, num_chains=4, seed=0, progress=False, **kw)
    return dt, any("trust check" in str(w.message) for w in caught)


def test_default_smc_log_z_on_blr_is_right_or_loud():
    """Today it is loud, not right: the finding names the independent estimate, which is within its SE of exact."""
    dt, warned = _run()
    est, se, exact = float(dt.attrs["log_z"]), float(dt.attrs["log_z_se"]), blr_log_z()
    assert 0 < se < 0.5
    right = abs(est - exact) < 4 * se + 0.05
    assert right or warned, f"log Z {est} (se {se}) vs exact {exact}, and no warning"
    if not right:
        assert "independent importance-sampling estimate" in dt.attrs["trust_findings"]
    lz_is, se_is = float(dt.attrs["log_z_is"]), float(dt.attrs["log_z_is_se"])
    assert abs(lz_is - exact) < 4 * se_is + 1e-3, f"IS check {lz_is} (se {se_is}) vs exact {exact}"


def test_no_finding_when_smc_is_right():
    """Tempering from reference='auto' gets blr's log Z right: the check agrees and adds no finding."""
    dt, _ = _run(reference="auto")
    assert abs(float(dt.attrs["log_z"]) - blr_log_z()) < 4 * float(dt.attrs["log_z_se"]) + 0.05
    assert "independent importance-sampling" not in str(dt.attrs.get("trust_findings", ""))
    assert float(dt.attrs["log_z_is_khat"]) <= 0.5


def test_importance_log_z_exact_and_the_check_has_power():
    """importance_log_z on a correlated 3-d Gaussian with log Z = 2 (exact, within 4 SE; a 0.05 error is
    detectable); log_z_check flags a log Z 0.5 off, passes the right one, and says nothing when its own weights are
    heavy-tailed (Pareto k above KHAT_MAX)."""
    import jax.numpy as jnp

    from samplax.diagnostics.evidence_check import KHAT_MAX, importance_log_z, log_z_check

    cov = np.array([[1.0, 0.8, 0.0], [0.8, 2.0, 0.3], [0.0, 0.3, 0.5]])
    prec, logdet = np.linalg.inv(cov), np.linalg.slogdet(cov)[1]

    def lp(x):
        return 2.0 - 0.5 * x @ jnp.asarray(prec) @ x - 0.5 * logdet - 1.5 * np.log(2 * np.pi)

    x = np.random.default_rng(1).multivariate_normal(np.zeros(3), cov, size=4000)
    lz, se, k = importance_log_z(lp, x)
    assert k <= KHAT_MAX and abs(lz - 2.0) < 4 * se and abs(lz - 2.05) > 4 * se

    # particles 3x too narrow for a standard normal target: the fitted proposal misses its tails, its weights are
    # heavy-tailed (large Pareto k) and the check judges nothing, even against a wrong log Z
    t = samplax.Target.from_logdensity(lambda x: -0.5 * jnp.sum(x**2), 2)
    y = np.random.default_rng(2).normal(size=(4000, 2)) / 3.0
    attrs, found = log_z_check(t, y[None], log_z=-5.0, log_z_se=0.01)
    assert attrs["log_z_is_khat"] > KHAT_MAX and found == []
    # well-fitted particles and a log Z 0.5 off: the finding names both estimates
    y = np.random.default_rng(3).normal(size=(4000, 2))
    attrs, found = log_z_check(t, y[None], log_z=np.log(2 * np.pi) - 0.5, log_z_se=0.01)
    assert attrs["log_z_is_khat"] <= KHAT_MAX and len(found) == 1 and "importance-sampling estimate" in found[0]
    attrs, found = log_z_check(t, y[None], log_z=np.log(2 * np.pi), log_z_se=0.01)
    assert found == []
