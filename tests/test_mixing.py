"""Mixing diagnostics on inputs with known answers: iid draws, AR(1) with known ESS, E-BFMI, checks."""

import warnings

import numpy as np
import pytest
from arviz_base import from_dict

from samplax.diagnostics import check, divergences, ebfmi, summary
from samplax.diagnostics.report import report, run_table


def ar1(rng, rho, chains, draws, dim=1):
    """Stationary AR(1) with unit marginal variance."""
    x = np.empty((chains, draws, dim))
    x[:, 0] = rng.standard_normal((chains, dim))
    eps = rng.standard_normal((chains, draws, dim)) * np.sqrt(1 - rho**2)
    for t in range(1, draws):
        x[:, t] = rho * x[:, t - 1] + eps[:, t]
    return x


def test_iid_draws_have_rhat_one_and_full_ess():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 1000, 5))
    s = summary(x)
    assert np.all(np.abs(s["r_hat"] - 1) < 0.01)
    # ESS of iid draws is the number of draws, up to its own sampling noise (~ a few %)
    assert np.all(np.abs(s["ess_bulk"] / 4000 - 1) < 0.15)
    assert check(x) == []


@pytest.mark.parametrize("rho", [0.5, 0.9])
def test_ar1_ess_matches_closed_form(rho):
    """ESS of an AR(1) mean is N (1 - rho) / (1 + rho)."""
    rng = np.random.default_rng(1)
    x = ar1(rng, rho, 4, 5000, dim=4)
    s = summary(x)
    exact = 4 * 5000 * (1 - rho) / (1 + rho)
    ratio = s["ess_bulk"].to_numpy() / exact
    assert np.all(np.abs(ratio - 1) < 0.2), ratio
    # mcse of the mean is sd / sqrt(ESS)
    np.testing.assert_allclose(s["mcse_mean"], 1 / np.sqrt(exact), rtol=0.2)


def test_disagreeing_chains_raise_rhat_and_are_flagged():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((4, 500, 2))
    x[0] += 3.0  # one chain stuck elsewhere
    s = summary(x)
    assert np.all(s["r_hat"] > 1.1)
    warns = check(x)
    assert any("R-hat" in w for w in warns)


def test_low_ess_is_flagged():
    rng = np.random.default_rng(3)
    x = ar1(rng, 0.99, 4, 500)
    assert any("bulk ESS < 100 per chain" in w for w in check(x))


def _with_stats(energy=None, diverging=None):
    rng = np.random.default_rng(4)
    post = {"x": rng.standard_normal((4, 1000))}
    stats = {}
    if energy is not None:
        stats["energy"] = energy
    if diverging is not None:
        stats["diverging"] = diverging
    return from_dict({"posterior": post, "sample_stats": stats} if stats else {"posterior": post})


def test_ebfmi_known_values():
    rng = np.random.default_rng(5)
    # iid energies: E[(E_t - E_{t-1})^2] / Var(E) = 2
    iid = rng.standard_normal((4, 20000))
    np.testing.assert_allclose(ebfmi(_with_stats(energy=iid)), 2.0, rtol=0.05)
    # AR(1) energies: 2 (1 - rho)
    slow = ar1(rng, 0.95, 4, 20000)[..., 0]
    e = ebfmi(_with_stats(energy=slow))
    np.testing.assert_allclose(e, 2 * (1 - 0.95), rtol=0.15)
    assert any("E-BFMI" in w for w in check(_with_stats(energy=slow)))
    assert np.all(np.isnan(ebfmi(_with_stats())))


def test_ebfmi_is_betancourts_ratio_on_short_chains():
    """E-BFMI = sum of squared energy changes / sum of squared deviations (Betancourt 2016), as arviz-stats has it;
    it used to divide by the ddof-0 variance, N / (N - 1) too large (11 % at N = 10)."""
    from arviz_stats import bfmi

    rng = np.random.default_rng(7)
    energy = rng.standard_normal((2, 10)).cumsum(axis=1)
    exact = (np.diff(energy, axis=1) ** 2).sum(axis=1) / ((energy - energy.mean(axis=1, keepdims=True)) ** 2).sum(1)
    ours = ebfmi(_with_stats(energy=energy))
    np.testing.assert_allclose(ours, exact, rtol=1e-12)
    np.testing.assert_allclose(ours, np.asarray(bfmi(energy)).ravel(), rtol=1e-12)
    assert not np.allclose(exact * 10 / 9, exact, rtol=0.05)  # the old value would fail the first check


@pytest.mark.parametrize("fill", ["one +inf", "half -inf"])
def test_nonfinite_draws_are_reported_even_where_rhat_stays_finite(fill):
    """R-hat and ESS rank the draws, so +inf draws of one sign (a deterministic site that overflows) leave them
    finite: the run was judged trusted with an infinite mean. The draws themselves are checked now."""
    from samplax.diagnostics.report import verdict

    rng = np.random.default_rng(5)
    y = rng.standard_normal((4, 1000))
    if fill == "one +inf":
        y[1, 500] = np.inf
    else:
        y[:, ::2] = -np.inf
    dt = from_dict({"posterior": {"y": y, "z": rng.standard_normal((4, 1000))}})
    assert np.isfinite(summary(dt).loc["y", "r_hat"])  # what the old check keyed on
    found = [f for f in check(dt) if "NaN/inf" in f]
    k = int(np.isinf(y).sum())
    assert len(found) == 1 and f"{k} value(s) in 1 variable(s) (e.g. {k} of the 4000 values of y, the first in y)" in found[0], check(dt)
    assert verdict(dt)[0] is False
    y[np.isinf(y)] = 0.0
    assert check(from_dict({"posterior": {"y": y}})) == []


def test_divergences_counted_and_reported():
    div = np.zeros((4, 1000), bool)
    div[2, [5, 9]] = True
    dt = _with_stats(diverging=div)
    np.testing.assert_array_equal(divergences(dt), [0, 0, 2, 0])
    assert any("2 divergent" in w for w in check(dt))
    np.testing.assert_array_equal(divergences(_with_stats()), [0, 0, 0, 0])


def test_bad_draws_shape():
    with pytest.raises(ValueError, match="chain, draw"):
        summary(np.zeros(10))


def test_report_lays_out_runs_side_by_side():
    rng = np.random.default_rng(6)
    a = from_dict({"posterior": {"x": rng.standard_normal((2, 300))}, "sample_stats": {"n_grad": np.ones((2, 300))}})
    b = from_dict({"posterior": {"x": ar1(rng, 0.9, 2, 300)[..., 0]}, "sample_stats": {"n_grad": 3 * np.ones((2, 300))}})
    a.attrs.update(sampler="a", n_grad_sampling=600)
    b.attrs.update(sampler="b", n_grad_sampling=1800)
    table = run_table({"a": a, "b": b})
    assert table.loc["a", "ess_per_1k_grad"] > 3 * table.loc["b", "ess_per_1k_grad"]
    text = report({"a": a, "b": b})
    assert "== runs ==" in text and "== warnings ==" in text and "b:" in text


# ------------------------------------------------------------------ the shared moment helpers (tests/moments.py)
def test_moment_helpers_refuse_short_runs_and_require_power():
    from moments import assert_mean_within_mcse, assert_moments

    rng = np.random.default_rng(7)
    mean, var = np.array([1.0, -2.0]), np.array([0.5, 4.0])
    long = mean + np.sqrt(var) * rng.standard_normal((4, 5_000, 2))  # ESS 20000: resolves a 10% error
    assert_moments(long, mean, var, what="iid")
    assert_mean_within_mcse(long, mean, "iid")
    with pytest.raises(AssertionError, match="variance error"):
        assert_moments(long, mean, 1.1 * var, what="iid vs a 10% wrong variance")
    with pytest.raises(AssertionError, match="mean error"):
        assert_moments(long, mean + 0.1 * np.sqrt(var), var, what="iid vs a wrong mean")
    # ESS ~1000: trustworthy MCSEs, but a 10% variance error would pass unseen -> the test has no power
    mid = long[:, :250]
    with pytest.raises(AssertionError, match="no power"):
        assert_moments(mid, mean, var, what="iid, short")
    with pytest.raises(AssertionError, match="no power"):
        assert_mean_within_mcse(mid, mean, "iid, short")
    # a variance allowance of 10% cannot see a 10% error either
    with pytest.raises(AssertionError, match="no power"):
        assert_moments(long, mean, var, var_rel_bias=0.1, what="iid, loose")
    # too few effective draws: refuse to judge at all (AR(1), rho = 0.99: ESS ~ 4 x 2000 / 199 ~ 40)
    slow = mean + np.sqrt(var) * ar1(rng, 0.99, 4, 2000, 2)
    with pytest.raises(AssertionError, match="too few effective draws"):
        assert_moments(slow, mean, var, what="sticky chain")
    with pytest.raises(AssertionError, match="too few effective draws"):
        assert_mean_within_mcse(slow, mean, "sticky chain")


def test_constant_entries_are_named_not_warned_about():
    import warnings

    from samplax.diagnostics import check

    x = np.random.default_rng(0).normal(size=(4, 300, 3))
    x[..., 0] = 1.0  # e.g. the first row of an LKJ Cholesky factor
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # arviz's 0/0 R-hat warning must not reach the user
        out = check(x)
    assert len(out) == 1 and "1 constant entry (x[0])" in out[0]


@pytest.mark.parametrize("value", [1.0, 0.3])
def test_a_fixed_entry_is_constant_whatever_its_value(value):
    # 0.3 in every draw has an sd of ~1e-16 from rounding its mean: it was judged (NaN R-hat: "too few draws")
    x = np.random.default_rng(1).normal(size=(4, 500, 2))
    x[..., 1] = value
    out = check(x)
    assert len(out) == 1 and "1 constant entry (x[1])" in out[0], out
    table = run_table({"r": from_dict({"posterior": {"x": x}})})
    live = summary(x[..., :1])  # the ESS is the live entry's, not a fixed entry's
    assert table.loc["r", "min_ess_bulk"] == pytest.approx(float(live["ess_bulk"].iloc[0]))


def test_a_chain_that_never_moved_is_a_finding():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(4, 200, 2))
    assert not [f for f in check(x) if "never moved" in f]  # the same check passes chains that move
    x[2] = x[2, 0]  # one chain stuck at its start
    assert [f for f in check(x) if "never moved" in f and "[2]" in f]
    x[:] = x[2, 0]  # every chain stuck at the same start: R-hat and ESS alone saw only constant entries
    out = check(x)
    assert any("never moved" in f and "[0, 1, 2, 3]" in f for f in out), out
    assert any("nothing was sampled" in f for f in out), out
    assert not all(f.startswith("note:") for f in out)
    table = run_table({"r": from_dict({"posterior": {"x": x}})})
    assert np.isnan(table.loc["r", "min_ess_bulk"]) and np.isnan(table.loc["r", "max_r_hat"])


def test_a_stuck_sampler_run_is_not_trusted():
    import samplax

    t = samplax.models.get("gaussian", dim=2)
    with pytest.warns(RuntimeWarning, match="trust check"):
        dt = samplax.sample(t, "mala", num_chains=4, num_warmup=0, num_samples=100, seed=0, progress=False,
                            step_size=50.0, adapt=False, init_positions=np.tile([0.5, -0.25], (4, 1)))
    assert dt.attrs["trusted"] == 0 and "never moved" in dt.attrs["trust_findings"]


def test_runs_that_are_not_samplax_have_unknown_gradient_counts():
    from arviz_base import from_dict

    from samplax.diagnostics import ess_per_gradient
    from samplax.diagnostics.mixing import gradient_count
    from samplax.diagnostics.report import run_table

    dt = from_dict({"posterior": {"x": np.random.default_rng(1).normal(size=(2, 100))}})
    assert np.isnan(gradient_count(dt))
    assert np.isnan(ess_per_gradient(dt)["x"])
    row = run_table({"foreign": dt}).loc["foreign"]
    assert row["gradients"] == "unknown" and np.isnan(row["ess_per_1k_grad"])


def test_report_module_is_an_attribute_and_seconds_include_compile():
    import samplax

    assert callable(samplax.diagnostics.report.report)
    g = samplax.models.get("gaussian", dim=2)
    dt = samplax.sample(g, "mala", num_chains=2, num_warmup=50, num_samples=50, progress=False)
    row = samplax.diagnostics.report.run_table({"m": dt}).loc["m"]
    total = dt.attrs["compile_time"] + dt.attrs["warmup_time"] + dt.attrs["sampling_time"]
    assert row["seconds"] == pytest.approx(total) and row["compile_s"] == pytest.approx(dt.attrs["compile_time"])


def test_run_table_and_compare_do_not_judge_around_nan_draws():
    """One NaN draw in x[0]: the run's min ESS / max R-hat were taken over the other entries (pandas skips NaN), so
    the table, compare's row and its rank read as for the clean run; now they are NaN and the ranking says why."""
    import samplax
    from samplax.compare import _row
    from samplax.diagnostics.report import ranking_lines, run_table

    g = samplax.models.get("gaussian", dim=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a short run is not trusted, which is not the point here
        dt = samplax.sample(g, "mala", num_chains=2, num_warmup=100, num_samples=200, seed=0, progress=False)
    bad = dt.copy(deep=True)
    bad["posterior"]["x"].values[1, 100, 0] = np.nan
    clean, nan = run_table({"c": dt}).loc["c"], run_table({"n": bad}).loc["n"]
    assert np.isfinite(float(clean["min_ess_bulk"])) and np.isfinite(float(clean["max_r_hat"]))
    for col in ("min_ess_bulk", "min_ess_tail", "ess_per_1k_grad", "max_r_hat"):
        assert np.isnan(float(nan[col])), col
    row = _row(bad, None, None, {})
    assert np.isnan(row["min_ess_bulk"]) and np.isnan(row["ess_per_1k_grad"]) and np.isnan(row["max_r_hat"])
    assert np.isfinite(_row(dt, None, None, {})["ess_per_1k_grad"])
    assert "n: not ranked (ESS unknown: NaN/inf draws in x)" in "\n".join(ranking_lines({"c": dt, "n": bad}))


def test_a_nan_rhat_gets_its_real_reason():
    """R-hat is NaN for three reasons, each named as itself (before: every NaN R-hat was blamed on NaN/inf draws,
    including a one-chain run of finite draws)."""
    rng = np.random.default_rng(0)
    one_chain = check(rng.normal(size=(1, 500, 2)))
    assert any("not defined with 1 chain" in f for f in one_chain), one_chain
    assert not any("NaN/inf" in f for f in one_chain), one_chain
    draws = rng.normal(size=(4, 500, 2))
    draws[1, 7, 0] = np.nan
    with_nan = check(draws)
    assert any("NaN/inf values" in f and "the first in x[0]" in f for f in with_nan), with_nan
    assert not any("chain (e.g." in f for f in with_nan), with_nan


def test_thresholds_reach_population_runs_or_are_refused():
    """check(dt, rhat_max=...) on a population run used to drop the threshold silently (the population check ran at
    its own default); now it is passed on, and the chain-only floors are refused there."""
    import samplax
    from samplax.diagnostics import population

    dt = samplax.sample(samplax.models.get("gaussian", dim=2), "smc", num_particles=100, num_chains=4,
                        progress=False)
    for r in (1.0, 1.5):
        assert check(dt, rhat_max=r) == population.check(dt, rhat_max=r)
    assert check(dt) == population.check(dt)
    with pytest.raises(ValueError, match="ess_per_chain_min judge chains"):
        check(dt, ess_per_chain_min=50)
