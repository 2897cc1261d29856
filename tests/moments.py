"""Shared statistical assertions: moments against exact truth, gated on Monte Carlo standard errors.

Every check (1) refuses to judge a run with too few effective draws (bulk ESS >= MIN_ESS for each checked
quantity, squared deviations included), and (2) shows its power: the same check against a deliberately
wrong answer (mean +- SHIFT sd, variance x / VAR_FACTOR) must fail, whichever way the run's own error
points. A run too short to tell a 10% error from the truth makes the helper fail with "no power".
"""

import numpy as np

from samplax.diagnostics import summary

K = 5.0  # tolerance in Monte Carlo standard errors
MIN_ESS = 400  # bulk ESS below which an MCSE is not trusted (Vehtari et al. 2021, rank-normalised R-hat)
SHIFT = 0.1  # a wrong mean: truth +- SHIFT x sd must be rejected
VAR_FACTOR = 1.1  # a wrong variance: truth x / VAR_FACTOR must be rejected


def mcse_mean(draws) -> np.ndarray:
    """MCSE of the mean of each coordinate of draws (chain, draw, dim), from arviz-stats."""
    from arviz_stats import mcse

    return np.asarray(mcse(np.asarray(draws), method="mean", chain_axis=0, draw_axis=1))


def ess_bulk(draws) -> np.ndarray:
    """Bulk ESS of each coordinate of draws (chain, draw, dim), from arviz-stats."""
    from arviz_stats import ess

    return np.asarray(ess(np.asarray(draws), method="bulk", chain_axis=0, draw_axis=1))


def _require_ess(ess, min_ess, what, quantity):
    ess = np.atleast_1d(ess)
    assert np.all(ess >= min_ess), (f"{what}: bulk ESS of {quantity} {np.round(ess, 1)} < {min_ess}: too few effective "
                                    "draws for a trustworthy MCSE; run longer (more draws or chains)")


def _require_power(estimate, wrong_answers, tol, what, quantity):
    """The check |estimate - answer| < tol must reject every deliberately wrong answer."""
    for label, wrong in wrong_answers:
        accepted = np.abs(estimate - wrong) < tol
        assert not np.any(accepted), (
            f"{what}: the test has no power: the {quantity} check also accepts the wrong answer {label} "
            f"{np.asarray(wrong)[accepted]} (estimate {np.asarray(estimate)[accepted]}, tolerance "
            f"{np.asarray(tol)[accepted]}); run longer so a 10% error is detected")


def assert_mean_within_mcse(draws, truth, what, k=K, min_ess=MIN_ESS, shift=SHIFT):
    """|mean - truth| < k MCSE per column of draws (chain, draw, dim); MCSE and ESS from arviz-stats.

    Refuses columns with bulk ESS < min_ess, and requires power: truth +- shift x sd (sd of the column's
    draws) must fail the same check.
    """
    table = summary(np.asarray(draws), kind="all")
    mean, mcse = table["mean"].to_numpy(), table["mcse_mean"].to_numpy()
    sd, ess = table["sd"].to_numpy(), table["ess_bulk"].to_numpy()
    _require_ess(ess, min_ess, what, "the checked quantity")
    truth = np.broadcast_to(np.asarray(truth, float), mean.shape)
    err = np.abs(mean - truth)
    assert np.all(err < k * mcse), f"{what}: mean {mean} vs truth {truth}, |err|/mcse = {err / mcse}"
    _require_power(mean, [(f"truth + {shift} sd", truth + shift * sd), (f"truth - {shift} sd", truth - shift * sd)],
                   k * mcse, what, "mean")
    return mean, mcse


def assert_moments(draws, mean, var, k=K, var_rel_bias=0.0, what="draws", min_ess=MIN_ESS, shift=SHIFT,
                   var_factor=VAR_FACTOR):
    """Means within k MCSE; central second moments within k MCSE plus a stated relative bias allowance.

    Refuses coordinates whose draws or squared deviations have bulk ESS < min_ess, and requires power:
    mean +- shift x sqrt(var) and var x / var_factor must fail the same checks (a var_rel_bias of 10% or
    more therefore fails: such a test cannot see a 10% variance error).
    """
    draws = np.asarray(draws)
    mean, var = np.asarray(mean, float), np.asarray(var, float)
    sq = (draws - mean) ** 2
    _require_ess(ess_bulk(draws), min_ess, what, "the draws")
    _require_ess(ess_bulk(sq), min_ess, what, "the squared deviations (variance check)")
    est = draws.mean(axis=(0, 1))
    err = np.abs(est - mean)
    se = mcse_mean(draws)
    assert np.all(err < k * se), f"{what}: mean error {err} vs {k} x mcse {se}"
    sd = np.sqrt(var)
    _require_power(est, [(f"mean + {shift} sd", mean + shift * sd), (f"mean - {shift} sd", mean - shift * sd)],
                   k * se, what, "mean")
    est2 = sq.mean(axis=(0, 1))
    err2 = np.abs(est2 - var)
    se2 = mcse_mean(sq)
    tol2 = k * se2 + var_rel_bias * var
    assert np.all(err2 < tol2), f"{what}: variance error {err2} vs {k} x mcse {se2} + {var_rel_bias} x var"
    # the allowance scales with the answer being checked, as it would for a truly different variance
    for label, wrong in ((f"var x {var_factor}", var * var_factor), (f"var / {var_factor}", var / var_factor)):
        _require_power(est2, [(label, wrong)], k * se2 + var_rel_bias * wrong, what, "variance")


def assert_log_z_unbiased(dt, exact, bias, gate, what="log Z"):
    """The mean of the populations' log Z (dt.attrs["log_z_per_population"], all finite) within `gate` standard
    errors (their spread / sqrt(count)) of the exact value, and power: the same gate rejects `exact + bias`, the
    biased answer the test guards against. Returns the errors (estimate - exact) per population."""
    lz = np.asarray(dt.attrs["log_z_per_population"], dtype=float)
    assert np.all(np.isfinite(lz)), lz
    err = lz - exact
    se = lz.std(ddof=1) / np.sqrt(lz.size)
    msg = f"{what}: log Z errors {np.round(err, 3)}, mean {err.mean():.3f}, se {se:.3f}"
    assert abs(err.mean()) < gate * se, msg
    assert abs(err.mean() - bias) >= gate * se, f"{msg}: too noisy to reject a bias of {bias}"
    return err
