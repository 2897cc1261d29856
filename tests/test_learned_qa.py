"""Learned samplers (PIS / CMCD / SCLD / NETS): log Z's standard error from each population's own variance, targets
of bounded support (log-density -inf outside), and the refusals of settings that used to be ignored or misread
(QA fuzzer findings, 2026-12)."""

import os
import tempfile
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import samplax
from samplax.diffusion.learned import load_controlled, load_trained, resume as ckpt, train
from samplax.diffusion.learned.cmcd import untrained
from samplax.diffusion.learned.nets import load_nets
from samplax.particles.results import pooled_log_z, pooled_log_z_se_within

MU, S, C = jnp.array([1.0, -0.5]), jnp.array([0.5, 2.0]), 3.7  # a 2-d Gaussian scaled by e^C: log Z = C


def _gauss(x):
    return -0.5 * jnp.sum(((x - MU) / S) ** 2) - jnp.sum(jnp.log(S)) - jnp.log(2 * jnp.pi) + C


GAUSS = samplax.Target.from_logdensity(_gauss, 2, name="gauss2_scaled")
SMALL = dict(num_steps=8, width=4, depth=1, num_freqs=1, sigma=3.0)


def _sampler(kind):
    """Untrained samplers (u = 0 / b = 0): their weights are exact for any control, and cheap; and SFS (no training),
    whose path weights are exact for its Monte Carlo drift."""
    if kind == "sfs":
        return "sfs"
    if kind == "pis":
        return train(GAUSS, "pis", num_iterations=1, batch_size=2, learning_rate=1e-12, progress=False, **SMALL)
    if kind.startswith("nets"):
        return train(GAUSS, "nets", num_iterations=0, **SMALL)
    if kind == "scld_resampling":
        return untrained(GAUSS, "scld", **SMALL, num_subtrajectories=8)
    return untrained(GAUSS, kind, **SMALL, **({"num_subtrajectories": 4} if kind == "scld" else {}))


# NETS resampling at 7 of its 8 steps (the default multinomial scheme: Lee & Whiteley's variance estimate); SCLD
# resampling at most of its 8 boundaries without moves, multinomially (Lee & Whiteley's estimate too)
SETTINGS = {"nets_resampling": {"resample_threshold": 0.99}, "sfs": {"num_steps": 20, "num_mc": 16},
            "scld_resampling": {"ess_threshold": 0.99, "mcmc_steps": 0, "resampling": "multinomial"}}


def _calibration_z(kind, settings, R=200, c=4, n=150, seed=11):
    """z-scores (pooled log Z - truth) / pooled log_z_se of R runs of c populations, regrouped from one sample() call
    with the library's own pooling (what sample() does with num_chains=c)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dt = samplax.sample(GAUSS, _sampler(kind), num_particles=n, num_chains=R * c, seed=seed, progress=False,
                            **settings)
    lz = np.asarray(dt.attrs["log_z_per_population"])
    var = np.asarray(dt.attrs["log_z_var_per_population"])  # each population's own variance of log Z
    assert np.all(np.isfinite(var)) and np.all(var > 0)
    assert dt.attrs["log_z_se"] == pytest.approx(pooled_log_z_se_within(lz, var))
    return np.array([(pooled_log_z(g)[0] - C) / pooled_log_z_se_within(g, v)
                     for g, v in zip(lz.reshape(R, c), var.reshape(R, c))])


@pytest.mark.parametrize("kind", ["pis", "cmcd", "scld", "nets", "nets_resampling", "scld_resampling", "sfs"])
def test_log_z_se_calibrated_at_four_populations(kind):
    """z = (log Z - truth) / log_z_se over R = 200 runs of the default 4 populations: sd(z) ~ 1 (its Monte Carlo
    error 1 / sqrt(2R) = 0.05; band ~ +-4 of it plus the delta method's own slack). The spread of 4 estimates alone
    (the SE before each population reported its variance) is a t with 3 degrees of freedom, sd ~ 1.6-1.7 (fuzzer:
    1.6); with each population's own variance the fuzzer measured 0.94-1.05. NETS resampling at most steps: 1.03-1.07
    with Lee & Whiteley's estimate (seeds 11, 12), 1.40-1.47 with one term per epoch (next test); SCLD resampling at
    most boundaries without moves: 1.01 with it, 1.68 with one term per epoch (warned). SFS reported no variance of
    its own until 2026-12-07 (the populations' spread alone)."""
    R = 200
    z = _calibration_z(kind, SETTINGS.get(kind, {}), R=R)
    assert 0.8 < z.std() < 1.25, f"sd of z {z.std():.3f}"
    assert abs(z.mean()) < 4 * z.std() / np.sqrt(R), f"mean z {z.mean():.3f}"


def test_one_term_per_epoch_se_fails_the_check_and_warns():
    """The calibration check has power: NETS resampling at most steps with the systematic scheme (the per-epoch
    one-generation sum, what the default used before Lee & Whiteley's estimate) fails it, and the run warns; so does
    SCLD without moves and with its default (systematic) scheme."""
    with pytest.warns(UserWarning, match="log_z_se then sums one term per resampling epoch"):
        _sampler("nets").as_population_sampler(resample_threshold=0.99, resampling="systematic")
    z = _calibration_z("nets", {"resample_threshold": 0.99, "resampling": "systematic"})
    assert z.std() > 1.25, f"sd of z {z.std():.3f}"
    with pytest.warns(UserWarning, match="log_z_se then sums one term per resampling epoch"):
        _sampler("scld_resampling").as_population_sampler(ess_threshold=0.99, mcmc_steps=0)


def test_log_z_se_from_one_population():
    """One population's SE is its own delta-method estimate (the spread of one estimate is unknown: NaN before)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dt = samplax.sample(GAUSS, _sampler("cmcd"), num_particles=200, num_chains=1, progress=False)
    assert np.isfinite(dt.attrs["log_z_se"]) and 0 < dt.attrs["log_z_se"] < 1


# ------------------------------------------------------------------------------------ bounded support
HALF = samplax.Target.from_logdensity(lambda x: jnp.where(x[0] > 0, -0.5 * x[0] ** 2, -jnp.inf), 1, name="half")
HALF_LOG_Z = np.log(np.sqrt(2 * np.pi) / 2)  # N(0, 1)'s unnormalised density on x > 0
HALF_SMALL = dict(num_steps=8, width=4, depth=1, num_freqs=1, sigma=2.0)


@pytest.mark.parametrize("kind", ["cmcd", "scld", "nets"])
def test_bounded_support_log_z_exact(kind):
    """-inf outside the support is a weight of zero, never NaN; paths outside at an intermediate time but inside at
    the end keep their exact weight (the intermediate gammas telescope), so log Z is unbiased: |error| < 4 SE over
    16 populations of 500 (SE ~ 0.016). SCLD without resampling / moves: with them the boundary targets are
    truncated and the backward kernels' mass outside the support is missed (biased low, see cmcd's docstring)."""
    if kind == "nets":
        s = train(HALF, "nets", num_iterations=0, **HALF_SMALL)
    elif kind == "scld":
        s = untrained(HALF, "scld", num_subtrajectories=2, ess_threshold=0.0, mcmc_steps=0, **HALF_SMALL)
    else:
        s = untrained(HALF, "cmcd", **HALF_SMALL)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dt = samplax.sample(HALF, s, num_particles=500, num_chains=16, seed=2, progress=False)
    lz = np.asarray(dt.attrs["log_z_per_population"])
    assert np.all(np.isfinite(lz)), lz
    err, se = dt.attrs["log_z"] - HALF_LOG_Z, dt.attrs["log_z_se"]
    assert abs(err) < 4 * se, (err, se)
    assert np.all(np.asarray(dt.posterior["x"]) > 0)  # resampled particles are in the support
    assert int(dt["stage_stats"]["n_outside_support"].sum()) == 0  # nothing resampled or moved: nothing truncated
    assert not any("outside the target's support" in f for f in samplax.diagnostics.check(dt))


@pytest.mark.parametrize("kind", ["scld", "nets"])
def test_bounded_support_truncated_by_resampling_is_said(kind):
    """With resampling (and SCLD's moves) particles outside the support at a boundary are dropped, the intermediate
    targets truncated, and log Z biased low: the run counts them and its trust check says so (before: silent)."""
    if kind == "nets":
        s, settings = train(HALF, "nets", num_iterations=0, **HALF_SMALL), {"resample_threshold": 0.9}
    else:
        s, settings = untrained(HALF, "scld", num_subtrajectories=2, **HALF_SMALL), {"ess_threshold": 0.99}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dt = samplax.sample(HALF, s, num_particles=500, num_chains=4, seed=2, progress=False, **settings)
    n = int(dt["stage_stats"]["n_outside_support"].sum())
    assert n > 0
    assert f"{n} particle(s) were outside the target's support" in dt.attrs["trust_findings"]
    assert dt.attrs["trusted"] == 0
    assert any("outside the target's support" in str(w.message) for w in caught)  # said at the end of sample()


@pytest.mark.parametrize("kind,extra", [("pis", {}), ("cmcd", {}), ("scld", {"num_subtrajectories": 2}),
                                        ("nets", {})])
def test_bounded_support_training_says_why(kind, extra):
    """A non-finite loss from -inf log-weights names their count and the fix (unconstrained coordinates), not the
    learning rate."""
    with pytest.raises(FloatingPointError, match=r"of the batch's \d+ log-weights are -inf .*unconstrained "
                                                 r"coordinates") as err:
        train(HALF, kind, num_iterations=3, batch_size=32, progress=False, **HALF_SMALL, **extra)
    assert "learning_rate" not in str(err.value)


# ------------------------------------------------------------------------------------ refusals
G1 = samplax.Target.from_logdensity(lambda x: -0.5 * jnp.sum(x**2), 1, name="g1")
TINY = dict(num_steps=4, width=4, depth=1, num_freqs=1)


@pytest.mark.parametrize("option", [{"schedule": "cosine"}, {"beta_min": 5.0}, {"beta_max": 50.0}])
def test_pis_refuses_dds_options(option):
    name = next(iter(option))
    with pytest.raises(ValueError, match=rf"{name}=.*DDS option.*kind='pis'"):
        train(G1, "pis", num_iterations=1, batch_size=4, progress=False, **TINY, **option)


@pytest.mark.parametrize("name", ["learn_betas", "learn_diffusion", "learn_prior"])
@pytest.mark.parametrize("value", ["no", "False", 0, None])
def test_cmcd_flags_take_bools_only(name, value):
    with pytest.raises(ValueError, match=rf"{name} must be True or False"):
        untrained(G1, "cmcd", **TINY, **{name: value})
    s = untrained(G1, "cmcd", **TINY, **{name: np.bool_(False)})  # numpy bools are bools
    assert s.config[name] is False


def test_beta_tail_named():
    with pytest.raises(ValueError, match="beta_tail .*got 'x'"):
        untrained(G1, "cmcd", beta_init="two_ended", beta_tail="x", **TINY)
    s = untrained(G1, "cmcd", beta_init="two_ended", beta_tail=np.float32(0.01), **TINY)
    assert s.config["beta_tail"] == pytest.approx(0.01)


def test_nets_resample_threshold_numpy_scalar():
    nets = train(G1, "nets", num_iterations=0, **TINY)
    assert nets.as_population_sampler(resample_threshold=np.float32(0.5)).settings["resample_threshold"] == 0.5
    assert nets.as_population_sampler(resample_threshold=jnp.asarray(0.25)).settings["resample_threshold"] == 0.25
    with pytest.raises(ValueError, match="resample_threshold must be a number in"):
        nets.as_population_sampler(resample_threshold="0.5")


@pytest.mark.parametrize("kind", ["pis", "cmcd", "nets"])
def test_sample_unknown_option_named(kind):
    if kind == "pis":
        s = train(G1, "pis", num_iterations=1, batch_size=4, progress=False, **TINY)
    elif kind == "nets":
        s = train(G1, "nets", num_iterations=0, **TINY)
    else:
        s = untrained(G1, "cmcd", **TINY)
    bad = "num_stepz" if kind != "cmcd" else "num_steps"
    with pytest.raises(TypeError, match=rf"unknown option '{bad}'.*\(options: .*resampling"):
        samplax.sample(G1, s, num_particles=10, num_chains=1, progress=False, **{bad: 8})


@pytest.mark.parametrize("loss,limit", [("pinn", 5), ("action", 4)])
def test_nets_loss_times_above_grid_refused(loss, limit):
    with pytest.raises(ValueError, match=rf"loss_times=50 .*at most.*loss_times <= {limit}"):
        train(G1, "nets", loss, num_iterations=1, batch_size=8, loss_times=50, progress=False, **TINY)
    s = train(G1, "nets", loss, num_iterations=1, batch_size=8, loss_times=limit, progress=False, **TINY)
    assert s.config["loss_times"] == limit
    s = train(G1, "nets", loss, num_iterations=0, **TINY)  # the default: 16, or all when the grid has fewer
    assert s.config["loss_times"] == limit


@pytest.mark.parametrize("kind,loader", [("pis", load_trained), ("cmcd", load_controlled), ("nets", load_nets)])
def test_checkpoint_is_not_a_sampler(kind, loader, monkeypatch, tmp_path):
    """A checkpoint of an interrupted run (after iteration 3 of 10) must not load as a finished sampler."""
    real = ckpt.save

    def killed(*a, **k):
        real(*a, **k)
        raise KeyboardInterrupt

    monkeypatch.setattr(ckpt, "save", killed)
    path = tmp_path / f"{kind}.ckpt"
    with pytest.raises(KeyboardInterrupt):
        train(G1, kind, num_iterations=10, checkpoint=path, checkpoint_every=3, batch_size=8, progress=False,
              **({"lr_schedule": "constant"} if kind == "cmcd" else {}), **TINY)
    with pytest.raises(ValueError, match=r"training checkpoint at iteration 3 of 10; resume training with resume="):
        loader(path)
