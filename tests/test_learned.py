"""Learned diffusion samplers (PIS, DDS) and the Schrödinger–Föllmer sampler: modes, log Z, weights, save/load, resume."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import samplax
from samplax.diffusion.learned import TrainedSampler, load_trained, train
from samplax.diffusion.learned.sampler import new_control

MEANS = np.array([[-4.0, -4.0], [4.0, -4.0], [-4.0, 4.0], [4.0, 4.0]])  # 8 sd apart: well separated
WEIGHTS = np.array([0.1, 0.2, 0.3, 0.4])
LOG_Z = 1.0  # the log-density is offset so log Z = 1 (an unnormalised target)


def mixture():
    m, lw = jnp.asarray(MEANS), jnp.log(jnp.asarray(WEIGHTS))

    def lp(x):
        return jax.scipy.special.logsumexp(-0.5 * jnp.sum((x - m) ** 2, -1) + lw) - jnp.log(2 * jnp.pi) + LOG_Z

    def sample(key, n):
        kc, kx = jax.random.split(key)
        return m[jax.random.choice(kc, 4, (n,), p=jnp.asarray(WEIGHTS))] + jax.random.normal(kx, (n, 2))

    return samplax.Target.from_logdensity(lp, 2, name="mixture4", log_z=LOG_Z, sample=sample)


CI = dict(num_steps=16, num_iterations=200, batch_size=64, learning_rate=5e-3, sigma=4.0, width=32, seed=0)


RUN = dict(num_particles=1000, num_chains=4, seed=1)


@pytest.fixture(scope="module")
def target():
    return mixture()


@pytest.fixture(scope="module")
def pis_kl(target):
    return train(target, "pis", "kl", **CI)


def _check_modes_and_log_z(target, trained):
    """Every mode holds its weight (within 5 binomial se at the importance ESS) and |log Z error| < 0.1."""
    dt = samplax.sample(target, trained, **RUN)
    x = dt.posterior["x"].values.reshape(-1, 2)
    nearest = np.argmin(((x[:, None, :] - MEANS) ** 2).sum(-1), axis=1)
    frac = np.bincount(nearest, minlength=4) / len(x)
    ess = float(dt.stage_stats["ess"].values[:, -1].sum())  # resampled particles carry at most this information
    se = np.sqrt(WEIGHTS * (1 - WEIGHTS) / ess)
    err = dt.attrs["log_z"] - LOG_Z
    assert np.all(frac > 0.05), f"a mode is missed: fractions {frac}"
    assert np.all(np.abs(frac - WEIGHTS) < 5 * se + 0.01), f"mode fractions {frac} vs {WEIGHTS} (se {se})"
    assert abs(err) < 0.1, f"log Z error {err}"
    assert abs(err) < 5 * dt.attrs["log_z_se"] + 0.02, f"log Z error {err} vs se {dt.attrs['log_z_se']}"
    return dt, frac, err


@pytest.fixture(scope="module")
def pis_kl_run(target, pis_kl):
    return _check_modes_and_log_z(target, pis_kl)[0]


def test_pis_kl_finds_every_mode_and_log_z(target, pis_kl, pis_kl_run):
    # measured (seed 0, CI settings): log Z error -0.035 (se 0.016), mode fractions 0.106 0.201 0.297 0.384,
    # importance ESS about 430 of 1000 per population
    dt = pis_kl_run
    assert pis_kl.history[-20:].mean() < pis_kl.history[:20].mean()  # training lowered the loss
    assert int(dt.attrs["n_grad_sampling"]) == 4 * 1000 * 16
    # the final log pi~(x_K) of every path: a log-density evaluation without a gradient, at the last stage (uncounted
    # before)
    np.testing.assert_array_equal(dt["stage_stats"]["n_logdensity"].values.sum(axis=1), [1000] * 4)
    assert (dt["stage_stats"]["n_logdensity"].values[:, :-1] == 0).all()
    # training: K gradients per path plus the KL loss's one at x_K; no Hessian-vector products (score detached)
    assert pis_kl.config["n_grad_train"] == CI["num_iterations"] * CI["batch_size"] * (CI["num_steps"] + 1)
    assert pis_kl.config["n_hvp_train"] == 0
    # the existing diagnostics read the DataTree unchanged
    assert "r_hat" in samplax.diagnostics.summary(dt).columns
    w2 = samplax.diagnostics.wasserstein(dt, target)
    assert np.isfinite(float(w2.pooled))


def test_pis_log_variance_finds_every_mode_and_log_z(target):
    # measured (seed 0, CI settings): log Z error -0.034 (se 0.009), mode fractions 0.098 0.198 0.299 0.395,
    # importance ESS about 475 of 1000 per population
    trained = train(target, "pis", "log_variance", **CI)
    _check_modes_and_log_z(target, trained)
    assert trained.config["n_grad_train"] == CI["num_iterations"] * CI["batch_size"] * CI["num_steps"]


@pytest.mark.slow
@pytest.mark.parametrize("loss", ["kl", "log_variance"])
def test_dds_finds_every_mode_and_log_z(target, loss):
    # measured (seed 0, CI settings): KL log Z error -0.047, log-variance -0.052; ESS 160-360 of 1000
    _check_modes_and_log_z(target, train(target, "dds", loss, **CI))


def _small_config(kind, **settings):
    """A small 2-d PIS / DDS control's config (cosine grid, 8 steps unless `settings` say otherwise)."""
    return {"kind": kind, "loss": "kl", "dim": 2, "num_steps": 8, "sigma": 1.5, "beta_min": 0.1, "beta_max": 10.0,
            "width": 8, "depth": 1, "num_freqs": 2, "clip": 100.0, "dtype": "float64", "schedule": "cosine",
            **settings}


def _random_control(config, scale):
    """A control for `config` whose parameters are all scale * N(0, 1): far from the reference (u = 0)."""
    c = new_control(config, jax.random.PRNGKey(3))
    leaves, tree = jax.tree.flatten(eqx.filter(c, eqx.is_inexact_array))
    keys = jax.random.split(jax.random.PRNGKey(4), len(leaves))
    return eqx.combine(jax.tree.unflatten(tree, [scale * jax.random.normal(k, v.shape) for k, v in zip(keys, leaves)]),
                       c)


@pytest.mark.parametrize("kind,schedule,embedding", [("pis", "linear", "fourier"), ("dds", "linear", "fourier"),
                                                     ("dds", "cosine", "fourier"), ("dds", "cosine", "pis")])
def test_weights_are_exact_for_any_control(kind, schedule, embedding):
    """log w is an exact discrete-time importance weight: an untrained, random control still gives unbiased Z."""
    m, s = np.array([1.0, -0.5]), np.array([0.7, 1.3])
    t = samplax.Target.from_logdensity(lambda x: -0.5 * jnp.sum(((x - m) / s) ** 2), 2,
                                       log_z=float(np.log(s).sum() + np.log(2 * np.pi)))
    cfg = _small_config(kind, num_steps=4, schedule=schedule, time_embedding=embedding)
    c = _random_control(cfg, 0.1)
    dt = samplax.sample(t, TrainedSampler(c, cfg, np.zeros(0)), num_particles=1000, num_chains=16, seed=0)
    err, se = dt.attrs["log_z"] - t.log_z, dt.attrs["log_z_se"]
    assert se < 0.05, f"no power: log Z se {se}"
    assert abs(err) < 5 * se, f"{kind}: log Z error {err} vs se {se}"


def test_sfs_log_z_on_gaussian_with_exact_z():
    m, s = jnp.array([1.0, -2.0]), jnp.array([0.5, 2.0])
    t = samplax.Target.from_logdensity(lambda x: -0.5 * jnp.sum(((x - m) / s) ** 2), 2,
                                       log_z=float(np.log(np.asarray(s)).sum() + np.log(2 * np.pi)))
    dt = samplax.sample(t, "sfs", num_particles=200, num_chains=32, num_steps=20, num_mc=16, seed=3)
    err, se = dt.attrs["log_z"] - t.log_z, dt.attrs["log_z_se"]
    # measured: error 0.001, se 0.018 (64 populations); importance ESS ~75 of 200
    assert se < 0.05, f"no power: log Z se {se}"
    assert abs(err) < 5 * se, f"SFS log Z error {err} vs se {se}"
    from samplax.diffusion.sfs import CURV_ITERS, CURV_POINTS

    assert int(dt.attrs["n_grad_sampling"]) == 32 * 200 * 20 * 16 + CURV_POINTS * CURV_ITERS  # the check runs once
    assert int(dt["stage_stats"]["n_logdensity"].sum()) == 32 * 200  # log pi~(x_K) per particle
    assert dt.stage_stats["time"].values[0, -1] == pytest.approx(1.0)


def test_save_load_gives_identical_samples(target, pis_kl, pis_kl_run, tmp_path):
    path = pis_kl.save(tmp_path / "pis.eqx")
    back = load_trained(path)
    assert back.config == pis_kl.config
    np.testing.assert_array_equal(back.history, pis_kl.history)
    a = pis_kl_run
    b = samplax.sample(target, back, **RUN)
    np.testing.assert_array_equal(a.posterior["x"].values, b.posterior["x"].values)
    assert a.attrs["log_z"] == b.attrs["log_z"]


def test_pis_time_embedding_starts_at_the_reference_and_round_trips(target, tmp_path):
    """The DDS code's network (PIS-Grad time code, learnable phase): u = 0 before training, and a saved model loads
    with that network (its config names it), giving the same control."""
    small = dict(num_steps=4, batch_size=8, sigma=4.0, width=8, depth=1, seed=2)
    fresh = new_control({"dim": 2, "width": 8, "depth": 1, "num_freqs": 2, "clip": 100.0, "dtype": "float64",
                         "time_embedding": "pis"}, jax.random.PRNGKey(0))
    x, g = jnp.array([0.3, -1.2]), jnp.array([2.0, 0.5])
    np.testing.assert_array_equal(fresh(x, 0.4, g), 0.0)
    trained = train(target, "dds", num_iterations=3, time_embedding="pis", **small)
    assert trained.config["time_embedding"] == "pis" and trained.control.state_time is not None
    assert np.any(trained.control.state_time.phase != 0)  # the phase is learned
    back = load_trained(trained.save(tmp_path / "dds_pis.eqx"))
    np.testing.assert_array_equal(back.control(x, 0.4, g), trained.control(x, 0.4, g))
    with pytest.raises(ValueError, match="time_embedding"):
        train(target, "dds", num_iterations=1, time_embedding="sinusoid", **small)


def test_checkpoint_resume_equals_uninterrupted(target, tmp_path):
    small = dict(num_steps=4, batch_size=8, sigma=4.0, width=8, depth=1, num_freqs=2, seed=5)
    full = train(target, "dds", "log_variance", num_iterations=6, **small)
    ck = tmp_path / "train.ckpt"
    train(target, "dds", "log_variance", num_iterations=3, checkpoint=ck, checkpoint_every=3, **small)
    resumed = train(target, "dds", "log_variance", num_iterations=6, resume=ck, **small)
    np.testing.assert_array_equal(resumed.history, full.history)
    for x, y in zip(jax.tree.leaves(eqx.filter(full.control, eqx.is_array)),
                    jax.tree.leaves(eqx.filter(resumed.control, eqx.is_array))):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    with pytest.raises(ValueError, match=r"different settings \['batch_size'\]"):
        train(target, "dds", "log_variance", num_iterations=6, resume=ck, **{**small, "batch_size": 16})
    # a cosine learning rate depends on the run's length: resuming into a longer run is refused by name
    ck2 = tmp_path / "cos.ckpt"
    train(target, "dds", "kl", num_iterations=3, checkpoint=ck2, checkpoint_every=3, lr_schedule="cosine",
          schedule="cosine", **small)
    with pytest.raises(ValueError, match=r"different settings \['num_iterations'\]"):
        train(target, "dds", "kl", num_iterations=6, resume=ck2, lr_schedule="cosine", schedule="cosine", **small)


def test_resume_refuses_another_target_of_the_same_name_and_dim(target, tmp_path):
    # the same name "mixture4" and dim 2 but another log-density: the checkpoint's target fingerprint (the one
    # chain-run checkpoints use, samplax.checkpoint.target_fingerprint) differs, so resuming must be refused
    small = dict(num_steps=2, batch_size=4, sigma=4.0, width=4, depth=1, num_freqs=1, seed=5)
    ck = tmp_path / "train.ckpt"
    train(target, "pis", "log_variance", num_iterations=1, checkpoint=ck, checkpoint_every=1, **small)
    other = samplax.Target.from_logdensity(lambda x: -0.5 * jnp.sum(x**2), 2, name="mixture4")
    with pytest.raises(ValueError, match="logdensity"):
        train(other, "pis", "log_variance", num_iterations=2, resume=ck, **small)
    again = train(mixture(), "pis", "log_variance", num_iterations=2, resume=ck, **small)  # same content: resumes
    assert len(again.history) == 2


def test_bad_input(target, pis_kl, tmp_path):
    with pytest.raises(ValueError, match="kind must be one of"):
        train(target, "dis")
    with pytest.raises(ValueError, match="loss must be one of"):
        train(target, "pis", loss="trajectory_balance")
    with pytest.raises(ValueError, match="num_iterations must be an integer >= 1"):
        train(target, "pis", num_iterations=0)
    with pytest.raises(ValueError, match="sigma must be a positive"):
        train(target, "pis", sigma=-1.0)
    with pytest.raises(FileNotFoundError, match="resume="):
        train(target, "pis", resume=tmp_path / "missing.ckpt")
    with pytest.raises(ValueError, match="schedule must be one of"):
        train(target, "dds", schedule="quadratic")
    with pytest.raises(ValueError, match="lr_schedule must be one of"):
        train(target, "dds", lr_schedule="step")
    with pytest.raises(ValueError, match="grad_clip_value must be a positive"):
        train(target, "dds", grad_clip_value=0.0)
    with pytest.raises(TypeError, match="check_stability"):
        samplax.sample(target, "sfs", num_particles=10, num_chains=1, check_stability="yes")
    bad = tmp_path / "bad.eqx"
    bad.write_bytes(b"\x00\x01 not a header\n")
    with pytest.raises(ValueError, match="not a samplax learned-diffusion file"):
        load_trained(bad)
    other = samplax.Target.from_logdensity(lambda x: -0.5 * jnp.sum(x**2), 3)
    with pytest.raises(ValueError, match="trained for dim 2, the target has dim 3"):
        samplax.sample(other, pis_kl, num_particles=10, num_chains=1)
    with pytest.raises(ValueError, match="resampling must be one of"):
        samplax.sample(target, pis_kl, num_particles=10, num_chains=1, resampling="best")
    with pytest.raises(TypeError, match="bad settings for sampler 'sfs'"):
        samplax.sample(target, "sfs", num_particles=10, num_chains=1, num_mcmc=3)
    with pytest.raises(ValueError, match="num_mc must be an integer >= 1"):
        samplax.sample(target, "sfs", num_particles=10, num_chains=1, num_mc=0)
    with pytest.raises(FloatingPointError, match="loss is nan"):
        nan_target = samplax.Target.from_logdensity(lambda x: jnp.nan * jnp.sum(x), 2)
        train(nan_target, "pis", num_iterations=2, num_steps=2, batch_size=4, width=4, depth=1, num_freqs=1)


def test_degenerate_weights_are_loud():
    """SFS with 4 Euler steps at sigma = 25 on GMM40 (unit-width modes) is unstable (sigma^2 / K >> 2): it is refused
    with the stable range (K >= 625 / 2); forced through, particles fly off and one carries all the weight, and the run
    says so instead of returning a silent log Z."""
    t = samplax.models.get("gmm40")
    with pytest.raises(ValueError, match=r"Euler step is unstable.*num_steps >= 313 at sigma = 25"):
        samplax.sample(t, "sfs", num_steps=4, num_mc=8, sigma=25.0, num_particles=20, num_chains=1, progress=False)
    with pytest.warns(RuntimeWarning, match="weights are degenerate"):
        dt = samplax.sample(t, "sfs", num_steps=4, num_mc=8, sigma=25.0, num_particles=200, num_chains=2, seed=0,
                            progress=False, check_stability=False)
    assert float(dt.stage_stats["ess"].values[:, -1].max()) < 2.0


def test_sfs_stability_check_estimates_the_curvature():
    """The curvature the check uses is the Hessian's largest |eigenvalue|: 1 / s_min^2 on a Gaussian with sds s."""
    from samplax.diffusion.sfs import curvature

    s = jnp.array([0.25, 1.0, 3.0])
    lam = float(curvature(lambda x: -0.5 * jnp.sum((x / s) ** 2), jax.random.PRNGKey(0), 3, 2.0, jnp.float64))
    assert lam == pytest.approx(16.0, rel=1e-3)


def test_dds_kl_trains_stably_on_gmm40():
    """DDS with the reverse-KL loss on GMM40 (sigma = 25): the loss falls. Before the network's score input was
    detached (both reference codes stop its gradient) the same runs' loss rose: detach_score=False reproduces that,
    so the check has power. Four seeds, judged by their median: whether one given run blows up is chaotic (seed 0
    without the detach rose 29 -> 195 under jax 0.12.0 and fell 29 -> 24 under 0.12.1; seeds 1-3 rose 2.5x to
    9,000x under either). Stable here means no run's loss grows more than 1.5x in 150 iterations: whether a run's
    loss has fallen by then also depends on the installed libraries (seeds 0-3: 0.52-0.77 with one set of jax /
    equinox / optax builds, 1.14 / 1.06 / 0.59 / 0.50 with a later one), while the undetached runs diverge under
    both."""
    t = samplax.models.get("gmm40")
    kw = dict(num_steps=32, num_iterations=150, batch_size=64, learning_rate=3e-4, sigma=25.0, beta_min=1e-3,
              progress=False)

    def ratios(**extra):
        hs = [train(t, "dds", "kl", seed=seed, **kw, **extra).history for seed in range(4)]
        return np.array([h[-20:].mean() / h[:20].mean() for h in hs])

    ok = ratios()  # measured 0.52-0.77, and 0.50-1.14 with later library builds
    assert np.all(ok < 1.5) and np.median(ok) < 1.0, ok
    bad = ratios(detach_score=False)
    assert np.median(bad) > 10, bad


def _flat_grad(control, path, lp, key, stl):
    from samplax.diffusion.learned.losses import loss_fn

    g = eqx.filter_grad(lambda ctl: loss_fn(ctl, path, lp, key, 32, 2, "kl", True, stl)[0])(control)
    return jnp.concatenate([leaf.ravel() for leaf in jax.tree.leaves(g)])


@pytest.mark.parametrize("kind", ["pis", "dds"])
def test_stl_gradient_is_unbiased_and_sticks_the_landing(kind):
    """stl=True (the noise term's control with its parameters stopped): the same log w, the same expected KL gradient
    (paired over 400 batches: chi-square of the mean differences against their SEs), and exactly zero gradient at the
    optimum, where the full estimator's gradient is pure noise. The same check rejects a gradient 10% too large."""
    from samplax.diffusion.learned.paths import make_path, rollout

    path = make_path(kind, 8, 1.5, schedule="cosine")
    m, s = jnp.array([1.0, -0.5]), jnp.array([0.7, 1.3])
    lp = lambda x: -0.5 * jnp.sum(((x - m) / s) ** 2)  # noqa: E731
    c = _random_control(_small_config(kind), 0.3)
    key = jax.random.PRNGKey(5)
    np.testing.assert_allclose(rollout(c, path, lp, key, 64, 2, stl=True)[1], rollout(c, path, lp, key, 64, 2)[1],
                               rtol=1e-12, atol=1e-12)
    keys = jax.random.split(jax.random.PRNGKey(0), 400)
    g_stl = np.asarray(jax.vmap(lambda k: _flat_grad(c, path, lp, k, True))(keys))
    g_full = np.asarray(jax.vmap(lambda k: _flat_grad(c, path, lp, k, False))(keys))

    def chi2(a):
        d = a - g_full
        mu, se = d.mean(0), d.std(0, ddof=1) / np.sqrt(len(d))
        ok = se > 0
        return float(np.sum((mu[ok] / se[ok]) ** 2)), int(ok.sum())

    stat, p = chi2(g_stl)  # measured: 88 (dds), 137 (pis) of p = 132 components
    assert stat < 2 * p, f"{kind}: STL and full KL gradients differ in the mean: chi2 {stat:.0f} over {p}"
    stat_wrong, _ = chi2(1.1 * g_stl)  # measured: 2.3e4, 6.8e4
    assert stat_wrong > 2 * p, f"{kind}: no power: a 10% larger gradient passes (chi2 {stat_wrong:.0f})"
    assert np.median(g_stl.var(0) / g_full.var(0)) < 1.0  # measured 0.61 (dds), 0.59 (pis)

    # at the optimum: target = the reference r_K and u = 0 (the untrained network): STL's gradient is exactly 0
    ref = lambda x: -0.5 * jnp.sum(x**2) / 1.5**2  # noqa: E731
    c0 = new_control(_small_config(kind), jax.random.PRNGKey(3))
    assert float(jnp.max(jnp.abs(_flat_grad(c0, path, ref, key, True)))) < 1e-12
    assert float(jnp.max(jnp.abs(_flat_grad(c0, path, ref, key, False)))) > 1e-3


def test_stl_option_is_checked_and_recorded(target):
    with pytest.raises(ValueError, match="stl applies to the 'kl' loss only"):
        train(target, "dds", "log_variance", stl=True, num_iterations=1, num_steps=2, batch_size=4)
    with pytest.raises(ValueError, match="stl must be True or False"):
        train(target, "dds", "kl", stl=1, num_iterations=1, num_steps=2, batch_size=4)
    tr = train(target, "pis", "kl", stl=True, num_iterations=2, num_steps=4, batch_size=8, progress=False)
    assert tr.config["stl"] is True and np.all(np.isfinite(tr.history))
    assert "stl" not in train(target, "pis", "kl", num_iterations=1, num_steps=4, batch_size=8, progress=False).config
