"""Gibbsian polar slice sampling: exact moments of an ill-conditioned Gaussian and a heavy-tailed Student-t, a
posteriordb port against its reference draws, and the contract (no gradients; log-density evaluations counted).

Every statistical check is |estimate - truth| < K MCSE (arviz-stats), refused below MIN_ESS effective draws, and
each test shows power: the same statistic rejects a variance 10% off (and, for the t, a Gaussian tail)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats as sps

import samplax
from moments import K, MIN_ESS, ess_bulk, mcse_mean
from samplax import Target, models
from samplax.diagnostics.mixing import entry_label, summary

VAR_OFF = 1.1  # the wrong variance the pooled check must reject, both ways


def _sample(target, *, num_warmup, num_samples, seed=0, **kw):
    return samplax.sample(target, "gpss", num_chains=4, num_warmup=num_warmup, num_samples=num_samples, seed=seed,
                          progress=False, **kw)


def _within(draws, truth, what):
    """Per column of draws (chain, draw, k): bulk ESS >= MIN_ESS and |mean - truth| < K MCSE."""
    draws = np.asarray(draws, float)
    ess = ess_bulk(draws)
    assert np.all(ess >= MIN_ESS), f"{what}: bulk ESS {np.round(np.min(ess))} < {MIN_ESS}: too few draws to judge"
    mean, se = draws.mean(axis=(0, 1)), mcse_mean(draws)
    z = (mean - np.asarray(truth, float)) / se
    assert np.all(np.abs(z) < K), f"{what}: |z| = {np.round(np.abs(z), 2)} (estimate {mean}, truth {truth})"
    return mean, se


def _rejects(mean, se, wrong, what):
    z = (mean - np.asarray(wrong, float)) / se
    assert np.all(np.abs(z) >= K), f"{what}: no power: the check also accepts {wrong} (|z| = {np.abs(z)})"


def _pooled_variance_check(x, mu, var, what, power=True):
    """S(draw) = mean_i (x_i - mu_i)^2 / var_i has mean 1 exactly; the same check must reject var x/÷ 1.1."""
    s = np.mean((x - mu) ** 2 / var, axis=-1, keepdims=True)
    mean, se = _within(s, [1.0], f"{what}: pooled standardised variance")
    for f in (VAR_OFF, 1 / VAR_OFF) if power else ():  # S computed with var * f would have mean 1 / f
        _rejects(mean, se, [f], f"{what}: variance x {f:.3f}")


def test_gaussian_50d_condition_100():
    # off-centre on purpose: GPSS's polar coordinates are centred where warmup puts them, so this also checks the
    # centre and scale estimates (a centre 0.3 sd off per coordinate costs ~10x in ESS)
    d = 50
    sd = np.logspace(0.0, 1.0, d)  # variances 1 ... 100: condition number 100
    mu = np.linspace(-3.0, 3.0, d)
    t = Target.from_logdensity(lambda x: -0.5 * jnp.sum(((x - mu) / sd) ** 2), d)
    dt = _sample(t, num_warmup=3000, num_samples=2000)
    x = np.asarray(dt.posterior["x"])
    _within(x, mu, "50-d Gaussian means")
    _within((x - mu) ** 2, sd**2, "50-d Gaussian variances")
    _pooled_variance_check(x, mu, sd**2, "50-d Gaussian")
    _rejects(*_within(np.mean((x - mu) / sd, axis=-1, keepdims=True), [0.0], "pooled mean"), [0.1],
             "means shifted by 0.1 sd")
    assert int(dt.attrs["trusted"]) == 1, dt.attrs.get("trust_findings")
    assert dt.attrs["n_grad_sampling"] == 0 and dt.attrs["n_grad_warmup"] == 0
    n = np.asarray(dt.sample_stats["n_logp"])
    # direction: >= 1 proposal; radius: >= 1 stepping-out test up and >= 1 proposal
    assert n.dtype.kind == "i" and n.min() >= 3
    np.testing.assert_array_equal(n, np.asarray(dt.sample_stats["n_direction"] + dt.sample_stats["n_radius"]))


def test_student_t_10d_five_dof_quantiles_and_tails():
    d, nu = 10, 5.0
    t = Target.from_logdensity(lambda x: -0.5 * (nu + d) * jnp.log1p(jnp.sum(x**2) / nu), d)
    dt = _sample(t, num_warmup=1000, num_samples=4000)
    x = np.asarray(dt.posterior["x"])
    _within(x, np.zeros(d), "t_5 means")
    # marginals are t_5: variance nu / (nu - 2). x^2 has kurtosis ~ 25 here and the coordinates share one radial
    # scale, so this moment check cannot see a 10% error at this length; the quantile statistic below can
    _pooled_variance_check(x, 0.0, nu / (nu - 2), "t_5", power=False)
    from arviz_stats import ess as az_ess, mcse as az_mcse

    for p in (0.05, 0.25, 0.75, 0.95):
        est = np.quantile(x.reshape(-1, d), p, axis=0)
        ess = np.asarray(az_ess(x, method="quantile", prob=p, chain_axis=0, draw_axis=1))
        se = np.asarray(az_mcse(x, method="quantile", prob=p, chain_axis=0, draw_axis=1))
        assert np.all(ess >= MIN_ESS), (p, ess)
        z = (est - sps.t.ppf(p, nu)) / se
        assert np.all(np.abs(z) < K), (p, est, sps.t.ppf(p, nu), z)
    # power at the variance: the fraction of coordinates inside the t_5 quartiles is 1/2 exactly; a spread whose
    # variance is 10% off (either way) moves it, and the same check must say so
    q75 = sps.t.ppf(0.75, nu)
    inner = np.mean(np.abs(x) < q75, axis=-1, keepdims=True)
    mean, se = _within(inner, [0.5], "t_5 fraction inside the quartiles")
    for f in (VAR_OFF, 1 / VAR_OFF):
        _rejects(mean, se, [2 * sps.t.cdf(q75 / np.sqrt(f), nu) - 1], f"t_5 with variance x {f:.3f}")
    # heavy tails: the fraction of coordinates beyond the t_5 0.995 quantile is 1% exactly; a Gaussian of the same
    # variance puts about half as much there, and the same check must say so
    q = sps.t.ppf(0.995, nu)
    tail = np.mean(np.abs(x) > q, axis=-1, keepdims=True)
    mean, se = _within(tail, [0.01], "t_5 two-sided tail beyond the 0.995 quantile")
    _rejects(mean, se, [2 * sps.norm.sf(q / np.sqrt(nu / (nu - 2)))], "Gaussian tail of the same variance")


def test_posteriordb_eight_schools_noncentered_matches_reference():
    """Per site: mean and sd within 5 combined MCSEs of posteriordb's reference draws, each site ESS >= 400."""
    from arviz_stats import mcse as az_mcse

    t = models.get("eight_schools_noncentered")
    dt = _sample(t, num_warmup=2000, num_samples=3000, seed=1)
    s = summary(dt)
    for site, ref in t.reference_draws.items():
        post = np.asarray(dt.posterior[site]).reshape(-1, *t.var_shapes[site])
        for idx in np.ndindex(*t.var_shapes[site]):
            label = entry_label(dt.posterior[site], idx)
            r, ours, row = ref[(slice(None), *idx)], post[(slice(None), *idx)], s.loc[label]
            assert row["ess_bulk"] >= MIN_ESS and row["ess_tail"] >= 100, (label, "too few effective draws", row)
            ref_se = lambda m: float(az_mcse(np.asarray(r, float)[None, :, None], method=m,  # noqa: E731
                                             chain_axis=0, draw_axis=1)[0])
            se = np.hypot(row["mcse_mean"], ref_se("mean"))
            assert abs(ours.mean() - r.mean()) < K * se, (label, ours.mean(), r.mean(), se)
            se_sd = np.hypot(row["mcse_sd"], ref_se("sd"))
            assert abs(row["sd"] - r.std(ddof=1)) < K * se_sd, (label, row["sd"], r.std(ddof=1), se_sd)
    assert int(dt.attrs["trusted"]) == 1, dt.attrs.get("trust_findings")


class _CountingLogp:
    """A log-density whose every evaluation bumps a host counter (once per chain under vmap)."""

    def __init__(self, logdensity):
        self.n = 0

        def f(x):
            jax.debug.callback(self._bump, x)
            return logdensity(x)

        self.fn = f

    def _bump(self, x):
        self.n += 1


@pytest.mark.filterwarnings("ignore:.*trust check:RuntimeWarning")  # 5-40 draws: too few to trust, on purpose
def test_evaluations_reported_are_those_made_and_no_gradients():
    c = _CountingLogp(lambda x: -0.5 * jnp.sum(x**2) - 0.1 * jnp.sum(x**4))
    t = Target.from_logdensity(c.fn, 3)
    counts, reported = [], []
    for n in (5, 40):
        c.n = 0
        dt = samplax.sample(t, "gpss", w=1.0, center=0.0, scale=1.0, num_chains=2,
                            num_warmup=0, num_samples=n, seed=0, progress=False)
        counts.append(c.n)
        reported.append(int(np.sum(dt.sample_stats["n_logp"])))
        assert dt.attrs["n_grad_sampling"] == 0
        np.testing.assert_array_equal(np.asarray(dt.sample_stats["w"]), 1.0)  # given: used as given
    # the run's set-up (initial point, kernel init) costs the same for both lengths; the steps cost what they say
    assert counts[1] - counts[0] == reported[1] - reported[0] > 0, (counts, reported)


@pytest.mark.filterwarnings("ignore:.*trust check:RuntimeWarning")
def test_running_count_covers_thinned_away_steps():
    t = Target.from_logdensity(lambda x: -0.5 * jnp.sum(x**2), 3)
    kw = dict(w=1.0, center=0.0, scale=1.0, num_chains=2, num_warmup=0, seed=0, progress=False)
    every = samplax.sample(t, "gpss", num_samples=30, **kw)
    thinned = samplax.sample(t, "gpss", num_samples=10, thinning=3, **kw)
    per_step = np.asarray(every.sample_stats["n_logp"])
    np.testing.assert_array_equal(np.asarray(thinned.posterior["x"]), np.asarray(every.posterior["x"])[:, 2::3])
    total = np.asarray(thinned.sample_stats["n_logp_total"])
    np.testing.assert_array_equal(total, 1 + np.cumsum(per_step, axis=1)[:, 2::3])  # + init's evaluation


def test_settings_adapt_and_errors():
    get = samplax.samplers.get
    assert get("gpss").adapted == ("w", "center", "scale")
    assert get("gpss", w=2.0).adapted == ("center", "scale")
    assert get("gpss", w=2.0, center=0.0, scale=1.0).warmup is None
    with pytest.raises(ValueError, match="w must be > 0"):
        get("gpss", w=0.0)
    with pytest.raises(ValueError, match="pass w"):
        get("gpss", adapt=False)
    t = Target.from_logdensity(lambda x: -0.5 * jnp.sum(x**2), 1)
    with pytest.raises(ValueError, match="dimension >= 2"):
        get("gpss", w=1.0).initial_params(t)


@pytest.mark.filterwarnings("ignore:.*trust check:RuntimeWarning")
def test_chain_started_at_the_centre_moves():
    t = Target.from_logdensity(lambda x: -0.5 * jnp.sum(x**2), 4)
    dt = samplax.sample(t, "gpss", w=2.0, center=0.0, scale=1.0, num_chains=2, num_warmup=0, num_samples=50,
                        init_positions=np.zeros((2, 4)), seed=0, progress=False)
    x = np.asarray(dt.posterior["x"])
    assert np.all(np.isfinite(x)) and np.all(np.std(x, axis=1) > 0.1)
