"""compare(): every sampler gets the same budget, the table reports what each really used, ranked."""

import numpy as np
import pytest

import samplax
from samplax.compare import compare


@pytest.fixture(scope="module")
def gauss():
    return samplax.models.get("gaussian", dim=3)


@pytest.fixture(scope="module")
def result(gauss):
    return compare(gauss, ["mala", "nuts"], budget=40_000, num_chains=2, num_warmup=200, seed=1)


def test_each_run_spends_the_budget_it_was_given(result):
    for name, row in result.table.iterrows():
        # the measured run uses the budget up to one draw's cost per chain (NUTS trees vary run to run)
        tol = 0.02 if name == "mala" else 0.35
        assert abs(row["gradients"] - 40_000) <= tol * 40_000, (name, row["gradients"])
        dt = result.runs[name]
        assert row["gradients"] == int(dt.attrs["n_grad_warmup"]) + int(dt.attrs["n_grad_sampling"])
        assert row["num_samples"] == dt.posterior.sizes["draw"] == result.plan[name]["num_samples"]
    # mala costs one gradient per step: its planned length is exact
    mala = result.table.loc["mala"]
    assert mala["num_samples"] == (40_000 - result.runs["mala"].attrs["n_grad_warmup"]) // 2


def test_same_seed_and_chains_and_ranked_by_w2_with_truth(result):
    t = result.table
    assert list(t["rank"]) == [1, 2]
    assert t["w2"].is_monotonic_increasing
    assert {"ess_per_1k_grad", "ess_per_s", "max_r_hat", "w2", "w2_floor", "b2_avg", "divergences"} <= set(t)
    seeds = {dt.attrs["seed"] for dt in result.runs.values()}
    chains = {dt.posterior.sizes["chain"] for dt in result.runs.values()}
    assert seeds == {1} and chains == {2}
    assert "mala" in str(result)


def test_without_truth_ranks_by_ess_per_gradient(gauss):
    blind = gauss.replace(mean=None, cov=None, sample=None)
    r = compare(blind, "mala,ula", budget=8_000, num_chains=2, num_warmup=100, pilot_samples=20)
    assert "w2" not in r.table
    assert r.table["ess_per_1k_grad"].is_monotonic_decreasing


def test_seconds_budget():
    g = samplax.models.get("gaussian", dim=200)
    r = compare(g, ["mala"], budget=2.0, budget_kind="seconds", num_chains=2, num_warmup=100, pilot_samples=500)
    secs = r.runs["mala"].attrs["warmup_time"] + r.runs["mala"].attrs["sampling_time"]
    planned = r.plan["mala"]["num_samples"]
    assert planned > 500  # the plan scaled the pilot up to the budget
    assert 0.2 < secs < 20.0  # a shared machine's timing noise: within an order of magnitude of 2 s


@pytest.mark.parametrize("kwargs, message", [
    (dict(samplers=[]), "samplers must name at least one sampler"),
    (dict(samplers=["mala"], budget=0), "budget must be a positive number"),
    (dict(samplers=["mala"], budget_kind="steps"), "budget_kind must be one of"),
    (dict(samplers=["mala"], num_chains=0), "num_chains must be an integer >= 1"),
    (dict(samplers=["mala"], settings={"nuts": {}}), "settings for \\['nuts'\\]"),
    (dict(samplers=["mala"], budget=100, num_warmup=200), "warmup alone costs"),
])
def test_bad_input(gauss, kwargs, message):
    with pytest.raises(ValueError, match=message):
        compare(gauss, **kwargs)
