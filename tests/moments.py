"""Shared statistical assertions: moments against exact truth, gated on Monte Carlo standard errors."""

import numpy as np

from samplax.diagnostics import summary

K = 5.0  # tolerance in Monte Carlo standard errors


def mcse_mean(draws) -> np.ndarray:
    """MCSE of the mean of each coordinate of draws (chain, draw, dim), from arviz-stats."""
    from arviz_stats import mcse

    return np.asarray(mcse(np.asarray(draws), method="mean", chain_axis=0, draw_axis=1))


def assert_mean_within_mcse(draws, truth, what, k=K, min_ess=100):
    """|mean - truth| < k MCSE per column of draws (chain, draw, dim); MCSE and ESS from arviz-stats."""
    table = summary(np.asarray(draws), kind="all")
    mean, mcse, ess = table["mean"].to_numpy(), table["mcse_mean"].to_numpy(), table["ess_bulk"].to_numpy()
    assert np.all(ess > min_ess), f"{what}: ESS too small for a trustworthy MCSE: {ess}"
    err = np.abs(mean - np.asarray(truth))
    assert np.all(err < k * mcse), f"{what}: mean {mean} vs truth {truth}, |err|/mcse = {err / mcse}"
    return mean, mcse


def assert_moments(draws, mean, var, k=K, var_rel_bias=0.0, what="draws"):
    """Means within k MCSE; central second moments within k MCSE plus a stated relative bias allowance."""
    draws = np.asarray(draws)
    err = np.abs(draws.mean(axis=(0, 1)) - mean)
    se = mcse_mean(draws)
    assert np.all(err < k * se), f"{what}: mean error {err} vs {k} x mcse {se}"
    sq = (draws - mean) ** 2
    err2 = np.abs(sq.mean(axis=(0, 1)) - var)
    se2 = mcse_mean(sq)
    assert np.all(err2 < k * se2 + var_rel_bias * var), f"{what}: variance error {err2} vs {k} x mcse {se2}"
