"""Streaming draws to a zarr store: `sample(..., out="run.zarr")` equals the in-memory run, options, failures,
and bounded host memory."""

import gc
import tracemalloc

import numpy as np
import pytest

import samplax
from samplax import streaming
from samplax.run import sample

# 2 chains x 60 draws in chunks of 25: three appends (25, 25, 10), so the draw offsets are exercised
RUN = dict(num_chains=2, num_warmup=50, num_samples=60, seed=3, progress=False, chunk_size=25)
TIMINGS = {"created_at", "compile_time", "warmup_time", "sampling_time", "out"}


@pytest.fixture(scope="module")
def eight():
    target = samplax.models.get("eight_schools_noncentered")
    return target, sample(target, "nuts", keep_warmup=True, **RUN)


@pytest.fixture(scope="module")
def fused():
    """The in-memory run of RUN's settings: `eight`'s keep_warmup=True runs the warmup as a program of its own,
    which may round differently from the fused warmup + sampling program the runs below use (README
    "Reproducibility"); with the seam U-turn checks it does, by 1e-14 on eight schools, and by 1e-5 when XLA
    compiles without optimisation (JAX_DISABLE_MOST_OPTIMIZATIONS=1), as chaotic trajectories amplify it."""
    target = samplax.models.get("eight_schools_noncentered")
    return target, sample(target, "nuts", **RUN)


def assert_same_tree(a, b):
    assert sorted(a.children) == sorted(b.children)
    for g in a.children:
        da, db = a[g].to_dataset(), b[g].to_dataset()
        assert set(da.variables) == set(db.variables), g
        for v in da.variables:
            assert da[v].dims == db[v].dims and da[v].dtype == db[v].dtype, (g, v)
            np.testing.assert_array_equal(da[v].values, db[v].values, err_msg=f"{g}/{v}")
        assert {k: v for k, v in da.attrs.items() if k not in TIMINGS} == \
            {k: v for k, v in db.attrs.items() if k not in TIMINGS}, g
    assert {k: v for k, v in a.attrs.items() if k not in TIMINGS} == \
        {k: v for k, v in b.attrs.items() if k not in TIMINGS}


def test_streamed_run_equals_in_memory_run(eight, tmp_path):
    target, mem = eight
    out = tmp_path / "run.zarr"
    dt = sample(target, "nuts", keep_warmup=True, out=out, **RUN)
    assert dt.attrs["out"] == str(out) and "out" not in mem.attrs
    assert not dt["posterior"]["mu"].variable._in_memory  # opened lazily from the store
    assert {"posterior", "sample_stats", "log_likelihood", "observed_data", "warmup_posterior"} <= set(dt.children)
    assert dt["posterior"].sizes["draw"] == 60 and dt["posterior"]["draw"].values.tolist() == list(range(60))
    assert_same_tree(mem, dt)
    assert_same_tree(mem, samplax.load(out))
    assert [p.name for p in tmp_path.iterdir()] == ["run.zarr"]  # no temporary store left


def test_keep_writes_only_those_variables(fused, tmp_path):
    target, mem = fused
    dt = sample(target, "nuts", out=tmp_path / "run.zarr", keep=["mu", "tau"], **RUN)
    assert sorted(dt["posterior"].data_vars) == ["mu", "tau"]
    np.testing.assert_array_equal(dt["posterior"]["tau"].values, mem["posterior"]["tau"].values)
    assert set(dt["sample_stats"].data_vars) == set(mem["sample_stats"].data_vars)
    np.testing.assert_array_equal(dt["sample_stats"]["lp"].values, mem["sample_stats"]["lp"].values)
    with pytest.raises(ValueError, match=r"keep: \['sigma'\] are not variables"):
        sample(target, "nuts", out=tmp_path / "other.zarr", keep=["mu", "sigma"], **RUN)


def test_moments_only_equal_numpy_on_the_draws(fused, tmp_path):
    target, mem = fused
    dt = sample(target, "nuts", out=tmp_path / "run.zarr", moments_only=True, **RUN)
    assert "posterior" not in dt.children and "sample_stats" not in dt.children
    post = mem["posterior"]
    for k in post.data_vars:
        draws = post[k].values
        np.testing.assert_allclose(dt["posterior_mean"][k].values, draws.mean(axis=1), rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(dt["posterior_variance"][k].values, draws.var(axis=1), rtol=1e-10, atol=1e-10)
        assert dt["posterior_mean"][k].dims == ("chain",) + post[k].dims[2:]
    summary, stats = dt["sample_stats_summary"], mem["sample_stats"]
    np.testing.assert_array_equal(summary["num_draws"].values, [60, 60])
    np.testing.assert_array_equal(summary["diverging_count"].values, stats["diverging"].values.sum(axis=1))
    np.testing.assert_array_equal(summary["n_grad_sum"].values, stats["n_grad"].values.sum(axis=1))
    np.testing.assert_allclose(summary["acceptance_rate_mean"].values, stats["acceptance_rate"].values.mean(axis=1),
                               rtol=1e-12)
    assert dt.attrs["n_grad_sampling"] == mem.attrs["n_grad_sampling"]


def test_chan_update_matches_one_pass():
    x = np.random.default_rng(0).standard_normal((3, 1001, 4)) * 1e3 + 1e6  # large mean: a naive sum-of-squares fails
    state = None
    for lo, hi in ((0, 1), (1, 400), (400, 1001)):
        state = streaming._chan(state, x[:, lo:hi])
    n, mean, m2 = state
    assert n == 1001
    np.testing.assert_allclose(mean, x.mean(axis=1), rtol=1e-14)
    np.testing.assert_allclose(m2 / n, x.var(axis=1), rtol=1e-10)


def test_existing_out_refused_and_overwrite_replaces(eight, tmp_path):
    target, mem = eight
    out = tmp_path / "run.zarr"
    sample(target, "nuts", out=out, keep=["mu"], **RUN)
    with pytest.raises(ValueError, match="out: .*already exists.*overwrite=True"):
        sample(target, "nuts", out=out, **RUN)
    dt = sample(target, "nuts", out=out, overwrite=True, **RUN)
    assert "tau" in dt["posterior"].data_vars
    (tmp_path / "notes.zarr").mkdir()
    with pytest.raises(ValueError, match="not a zarr store"):
        sample(target, "nuts", out=tmp_path / "notes.zarr", overwrite=True, **RUN)
    with pytest.raises(ValueError, match=r"out must end in \.zarr"):
        sample(target, "nuts", out=tmp_path / "run.nc", **RUN)
    with pytest.raises(ValueError, match="out= cannot be combined with checkpoint="):
        sample(target, "nuts", out=tmp_path / "x.zarr", checkpoint=tmp_path / "x.ckpt", **RUN)
    with pytest.raises(ValueError, match="moments_only=True applies to runs streamed"):
        sample(target, "nuts", moments_only=True, **RUN)


def test_failed_run_leaves_no_store(eight, tmp_path, monkeypatch):
    target, _ = eight
    real, calls = streaming.StreamWriter.append, []

    def failing(self, positions, stats):
        calls.append(positions.shape)
        if len(calls) == 2:
            raise RuntimeError("disk full")
        return real(self, positions, stats)

    monkeypatch.setattr(streaming.StreamWriter, "append", failing)
    with pytest.raises(RuntimeError, match="disk full"):
        sample(target, "nuts", out=tmp_path / "run.zarr", **RUN)
    assert len(calls) == 2
    assert list(tmp_path.iterdir()) == []  # neither `out` nor the temporary store


def test_failure_while_finishing_leaves_no_store(eight, tmp_path, monkeypatch):
    target, _ = eight

    def broken(*args, **kwargs):
        raise OSError("cannot consolidate")

    import zarr

    monkeypatch.setattr(zarr, "consolidate_metadata", broken)
    with pytest.raises(OSError, match="cannot consolidate"):
        sample(target, "nuts", out=tmp_path / "run.zarr", **RUN)
    assert list(tmp_path.iterdir()) == []


def _peak_bytes(fn):
    gc.collect()
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_streaming_memory_does_not_grow_with_draws(tmp_path):
    """Host memory (numpy allocations, traced) of a streamed run stays flat when draws grow 10x; the in-memory
    run's grows by about the draws' size, which shows the measurement sees the draws."""
    target = samplax.models.get("gaussian", dim=300)
    run = dict(num_chains=1, num_warmup=0, seed=0, progress=False, chunk_size=500, step_size=0.1)
    draws_bytes = 9_000 * 300 * 8  # the 10x run holds 9,000 more draws than the 1x run: 21.6 MB

    def go(n, **kw):
        return lambda: sample(target, "ula", num_samples=n, **run, **kw)

    for n in (1_000, 10_000):  # compile first, outside the measurement
        sample(target, "ula", num_samples=n, out=tmp_path / f"warm{n}.zarr", **run)
    streamed = [_peak_bytes(go(n, out=tmp_path / f"s{n}.zarr")) for n in (1_000, 10_000)]
    in_memory = [_peak_bytes(go(n)) for n in (1_000, 10_000)]
    # what may grow: the draw index (8 bytes a draw per group), against 2,400 bytes a draw of draws
    assert in_memory[1] - in_memory[0] > 0.9 * draws_bytes, in_memory
    assert streamed[1] - streamed[0] < 0.1 * draws_bytes, streamed
    assert samplax.load(tmp_path / "s10000.zarr", lazy=True)["posterior"].sizes["draw"] == 10_000


def test_nonfinite_draws_reported_as_in_memory(tmp_path):
    """The non-finite report of a streamed run (tallied chunk by chunk) equals the in-memory run's: same counts,
    same chains, same first bad draws (which fall in the 1st, 2nd and 3rd chunks here)."""
    import warnings

    import jax.numpy as jnp

    target = samplax.Target.from_logdensity(lambda x: jnp.where(x[0] > 2.0, jnp.nan, -0.5 * x @ x), 2, name="holey")
    run = dict(num_chains=4, num_warmup=0, num_samples=60, seed=1, progress=False, chunk_size=25, step_size=0.5)
    results = []
    for kw in ({}, {"out": tmp_path / "run.zarr"}):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            dt = sample(target, "ula", **run, **kw)
        results.append((dt.attrs["n_nonfinite"], [str(w.message) for w in caught if "non-finite" in str(w.message)]))
    assert results[0] == results[1]
    assert "first at draws [55, 43, 26, 2]" in results[0][1][0]


def test_trust_check_reads_exactly_every_kth_draw(tmp_path, monkeypatch):
    """The streamed trust check's thinned copy equals the store's every k-th draw, for chunk sizes that are not
    multiples of k (it reads chunk by chunk, so an off-by-one at a chunk edge would shift or drop draws)."""
    import samplax.streaming as streaming

    monkeypatch.setattr(streaming, "TRUST_DRAWS", 100)
    target = samplax.models.get("gaussian", dim=3)
    for n, chunk in [(2345, 170), (999, 100)]:
        out = tmp_path / f"{n}.zarr"
        sample(target, "mala", num_chains=2, num_warmup=50, num_samples=n, seed=0, progress=False,
               chunk_size=chunk, out=out)
        probe, k = streaming._thinned(out)
        full = samplax.load(out)
        assert k == -(-n // 100)
        for group in ("posterior", "sample_stats"):
            for name in full[group].data_vars:
                want = full[group][name].isel(draw=slice(None, None, k)).values
                np.testing.assert_array_equal(probe[group][name].values, want, err_msg=f"{n} {group}/{name}")


def _walled():
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist

    def model():
        x = numpyro.sample("x", dist.Normal(0.0, 1.0))
        numpyro.sample("z", dist.Normal(0.0, 1.0))
        numpyro.factor("wall", jnp.where(jnp.abs(x) < 1.5, 0.0, jnp.nan))  # NaN where |x| > 1.5
        numpyro.deterministic("y", jnp.exp(1000.0 * x))  # +inf wherever x > 0.71

    return samplax.Target.from_numpyro(model)


@pytest.mark.parametrize("thinning", [1, 2])
def test_moments_only_run_judges_its_divergences_and_non_finite_moments(tmp_path, thinning):
    """A moments_only run kept no draws and its trust check read only the counts: a run with NaN divergences and
    a variable whose draws overflow to inf ended trusted. Its divergence counts and running moments are judged now,
    and they say what the in-memory run of the same draws says."""
    import warnings

    from samplax.diagnostics.mixing import divergences, nonfinite_divergences

    t = _walled()
    kw = dict(num_chains=2, num_warmup=100, num_samples=100, seed=0, progress=False, thinning=thinning)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mem = sample(t, "mala", **kw)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dt = sample(t, "mala", out=tmp_path / "m.zarr", moments_only=True, **kw)
    div, nf = int(divergences(mem).sum()), int(nonfinite_divergences(mem).sum())
    assert div >= 3 and nf == div
    findings = dt.attrs["trust_findings"]
    assert dt.attrs["trusted"] == 0
    assert f"{div} divergent transition(s)" in findings and f"{nf} met a NaN/inf" in findings, findings
    assert "NaN/inf values in 1 variable(s) (y)" in findings, findings
    assert sum("trust check" in str(w.message) for w in caught) == 1


def test_thinned_trust_check_counts_non_finite_values_of_every_draw(tmp_path, monkeypatch):
    """A streamed run's trust check reads every k-th draw, so non-finite values between them were missed (or
    undercounted): the writer counts them over every draw it writes, and the finding says that count."""
    import warnings

    monkeypatch.setattr(streaming, "TRUST_DRAWS", 40)
    t = _walled()
    kw = dict(num_chains=2, num_warmup=100, num_samples=400, seed=1, progress=False, chunk_size=70)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mem = sample(t, "mala", **kw)
        dt = sample(t, "mala", out=tmp_path / "s.zarr", **kw)
    n_inf = int(np.isinf(mem.posterior["y"].values).sum())
    every_kth = int(np.isinf(mem.posterior["y"].values[:, ::10]).sum())
    assert n_inf > every_kth > 0
    findings = dt.attrs["trust_findings"]
    assert f"the draws hold NaN/inf values: {n_inf} value(s) in 1 variable(s)" in findings, findings
    assert findings.count("the draws hold NaN/inf values") == 1, findings
