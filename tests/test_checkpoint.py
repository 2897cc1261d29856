"""Checkpoints: refused for another target or other settings (naming the field), and for directory paths."""

import jax.numpy as jnp
import numpy as np
import pytest

import samplax

KW = dict(num_chains=2, num_warmup=0, num_samples=6, seed=5, progress=False, step_size=0.4)


def _gauss(dim=2, scale=1.0, traced=None):
    def logdensity(x):
        if traced is not None:
            traced.append(1)  # runs whenever the log-density is traced, i.e. before any sampling
        return -0.5 * jnp.sum((x / scale) ** 2)

    return samplax.Target.from_logdensity(logdensity, dim, name="g")


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    path = tmp_path_factory.mktemp("ck") / "run.ckpt"
    t = _gauss()
    samplax.sample(t, "mala", checkpoint=path, checkpoint_every=3, **KW)
    return t, path


@pytest.mark.parametrize("change, field", [
    (dict(target=_gauss(scale=2.0)), "logdensity"),  # same name and dim, other density
    (dict(target=_gauss(dim=3)), "dim"),
    (dict(num_warmup=5), "num_warmup"),
    (dict(step_size=0.5), "settings.step_size"),
    (dict(num_chains=4), "num_chains"),
    (dict(thinning=2), "thinning"),
    (dict(keep_warmup=True), "keep_warmup"),
    (dict(init_positions=np.ones(2)), "init_positions"),
])
def test_resume_refuses_another_target_or_settings(saved, change, field):
    t, path = saved
    kw = {**KW, "num_samples": 9, **change}
    target = kw.pop("target", t)
    with pytest.raises(ValueError, match=rf"resume: .* was made with {field}="):
        samplax.sample(target, "mala", resume=path, **kw)


def test_a_users_pair_resumes_only_as_the_same_program(tmp_path):
    """A user's (init, step) pair has no settings: the checkpoint compares its traced program. The same pair
    rebuilt resumes to the uninterrupted run's draws; one built with another step size is refused (it used to
    resume silently, its draws not those of the run it claimed to continue)."""
    import blackjax

    t = _gauss()

    def pair(step_size):
        alg = blackjax.mala(t.logdensity, step_size)
        return alg.init, alg.step

    path = tmp_path / "pair.ckpt"
    kw = {**KW, "num_samples": 12}
    kw.pop("step_size")
    whole = samplax.sample(t, pair(0.3), **kw)
    samplax.sample(t, pair(0.3), checkpoint=path, **{**kw, "num_samples": 6})
    resumed = samplax.sample(t, pair(0.3), resume=path, **kw)
    np.testing.assert_array_equal(np.asarray(resumed.posterior["x"]), np.asarray(whole.posterior["x"]))
    with pytest.raises(ValueError, match="was made with program="):
        samplax.sample(t, pair(2.0), resume=path, **kw)


def test_a_setting_that_cannot_be_compared_refuses_resume(tmp_path):
    from samplax.checkpoint import NOT_COMPARABLE, refuse_mismatch

    same = {"settings.fn": f"<function f> {NOT_COMPARABLE}"}
    with pytest.raises(ValueError, match="cannot be compared by content"):
        refuse_mismatch(tmp_path / "x.ckpt", same, dict(same))


def test_warmup_reverts_survive_keep_warmup_and_resume(tmp_path):
    """Burn-in steps MCLMC reverted at a NaN/inf log-density: counted with keep_warmup and after a resume too (the
    count and its trust note were lost in both)."""
    t = samplax.Target.from_logdensity(lambda x: jnp.where(x[0] < 1.0, -0.5 * jnp.sum(x ** 2), -jnp.inf), 2,
                                       name="wall")
    kw = dict(num_chains=2, num_warmup=40, num_samples=30, seed=1, progress=False, L=1.0, step_size=0.6,
              adapt=False)
    plain = samplax.sample(t, "mclmc", **kw)
    n = plain.attrs.get("n_reverted_warmup", 0)
    assert n > 0  # the wall is met, so the check can fail
    kept = samplax.sample(t, "mclmc", keep_warmup=True, **kw)
    assert kept.attrs["n_reverted_warmup"] == n == int(np.asarray(kept.warmup_sample_stats["nonfinite"]).sum())
    path = tmp_path / "wall.ckpt"
    samplax.sample(t, "mclmc", checkpoint=path, **{**kw, "num_samples": 10})
    resumed = samplax.sample(t, "mclmc", resume=path, **kw)
    assert resumed.attrs["n_reverted_warmup"] == n
    assert "warmup step(s)" in resumed.attrs["trust_findings"]


def test_a_numpy_scalar_setting_resumes_a_run_given_the_python_number(saved):
    t, path = saved  # made with step_size=0.4; np.float64(0.4) was refused as another setting (by its repr)
    dt = samplax.sample(t, "mala", resume=path, **{**KW, "num_samples": 9, "step_size": np.float64(0.4)})
    assert dt.posterior.sizes["draw"] == 9 and dt.attrs["resumed_from_draw"] == 6


def test_large_array_settings_are_compared_by_content(tmp_path):
    """Two inverse mass matrices whose reprs coincide (numpy elides > 1000 entries) are different settings."""
    from samplax.checkpoint import run_fingerprint

    a = np.ones(1001)
    b = a.copy()
    b[500] = 2.0
    fp = [run_fingerprint("mala", {}, {"inverse_mass_matrix": m}, seed=0, num_chains=1, thinning=1, num_warmup=0,
                          keep_warmup=False, init_positions=None) for m in (a, b)]
    assert fp[0]["settings.inverse_mass_matrix"] != fp[1]["settings.inverse_mass_matrix"]


def test_checkpoint_path_that_is_a_directory_fails_before_sampling(tmp_path):
    traced = []
    t = _gauss(traced=traced)
    traced.clear()
    for arg in ("checkpoint", "resume"):
        with pytest.raises(ValueError, match=rf"{arg}: .* is a directory"):
            samplax.sample(t, "mala", **{arg: tmp_path}, **KW)
    assert traced == []
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ValueError, match="is a file"):
        samplax.sample(t, "mala", checkpoint=blocker / "run.ckpt", **KW)
    assert traced == []


def test_truncated_corrupt_foreign_and_other_version_checkpoints_are_refused_by_name(tmp_path):
    import samplax
    from samplax import checkpoint as ckpt_mod

    g = samplax.models.get("gaussian", dim=2)
    kw = dict(num_chains=1, num_warmup=10, num_samples=20, progress=False, seed=0)
    path = tmp_path / "run.ckpt"
    samplax.sample(g, "mala", checkpoint=path, checkpoint_every=10, **kw)
    raw = path.read_bytes()
    cases = {
        "truncated": (raw[:-50], "is truncated"),
        "corrupt": (raw[:-10] + bytes(10), "checksum mismatch"),
        "foreign": (b"\x80\x04 not ours", "is not a samplax checkpoint"),
        "header": (ckpt_mod.MAGIC + b"{not json\n" + b"x", "corrupt header"),
        "other version": (raw.replace(b'"samplax": "', b'"samplax": "0.0.0-', 1), "was written by samplax 0.0.0-"),
    }
    for label, (content, message) in cases.items():
        bad = tmp_path / f"{label.replace(' ', '_')}.ckpt"
        bad.write_bytes(content)
        with pytest.raises(ValueError, match=message) as info:
            samplax.sample(g, "mala", resume=bad, **kw)
        assert bad.name in str(info.value), label
