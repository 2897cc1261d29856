"""Controlled SMC (CMCD, SCLD): exact weights for any control, log Z and moments after brief training, counts.

Every statistical check is gated on the Monte Carlo error of independent populations (log Z: the SE of the pooled
estimate from their spread; moments: the spread of the population means / variances) and comes with a power check:
the same gate rejects a wrong answer (log Z off by a fixed 0.15 nats, a variance 10% off).
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import samplax
from samplax.diffusion.learned.cmcd import (ControlledSampler, load_controlled, train_controlled, untrained)

# an asymmetric 2-d mixture (unequal weights and per-axis scales) with log Z = 1 and exact moments
W = np.array([0.3, 0.7])
M = np.array([[-1.5, 0.5], [1.5, -0.5]])
S = np.array([[0.6, 0.8], [0.9, 0.5]])
LOG_Z = 1.0
MEAN = W @ M
VAR = W @ (S**2 + M**2) - MEAN**2
Z_GATE = 4.0  # |estimate - truth| < 4 SE


def mixture():
    m, s, lw = jnp.asarray(M), jnp.asarray(S), jnp.log(jnp.asarray(W))

    def lp(x):
        comp = jnp.sum(-0.5 * ((x - m) / s) ** 2 - jnp.log(s), -1) - jnp.log(2 * jnp.pi)
        return jax.scipy.special.logsumexp(comp + lw) + LOG_Z

    return samplax.Target.from_logdensity(lp, 2, name="mixture2", log_z=LOG_Z)


@pytest.fixture(scope="module")
def target():
    return mixture()


SMALL = dict(num_steps=8, sigma=2.0, sigma_max=1.5, width=16, depth=2, num_freqs=4, seed=0)
TRAIN = dict(num_iterations=120, batch_size=64, learning_rate=3e-3, **SMALL)
RUN = dict(num_particles=1000, num_chains=24, seed=1, progress=False)


def _agrees(est, se, truth):
    return abs(est - truth) < Z_GATE * se


def _check_log_z(dt, what):
    est, se = dt.attrs["log_z"], dt.attrs["log_z_se"]
    assert 0 < se < 0.03, f"{what}: no power, log Z se {se}"
    assert _agrees(est, se, LOG_Z), f"{what}: log Z {est} vs {LOG_Z} (se {se})"
    assert not _agrees(est, se, LOG_Z + 0.15), f"{what}: cannot tell log Z from log Z + 0.15 (se {se})"


def _check_moments(dt, what, mean=MEAN, var=VAR):
    """Population means and variances (one estimate per independent population) against the exact moments."""
    x = dt.posterior["x"].values  # (C, N, 2)
    C = x.shape[0]
    means, variances = x.mean(axis=1), x.var(axis=1, ddof=1)
    for name, est, truth in (("mean", means, mean), ("variance", variances, var)):
        m, se = est.mean(axis=0), est.std(axis=0, ddof=1) / np.sqrt(C)
        assert np.all(np.abs(m - truth) < Z_GATE * se), f"{what}: {name} {m} vs {truth} (mcse {se})"
        if name == "variance":  # power: a 10%-off variance is rejected by the same gate
            assert np.all(np.abs(m - 1.1 * truth) >= Z_GATE * se), f"{what}: variance gate too loose (mcse {se})"


def _random_model(sampler: ControlledSampler, key) -> ControlledSampler:
    """Perturb every learned array: the control's weights (sd 0.1) and the annealing, diffusion and reference
    parameters (sd 0.03 raw, i.e. 0.3 in beta logits, 30% in the diffusion and reference scale, 0.3 in its mean)."""
    model = sampler.model
    leaves, tree = jax.tree.flatten(eqx.filter(model.control, eqx.is_inexact_array))
    keys = jax.random.split(key, len(leaves) + 4)
    noisy = jax.tree.unflatten(tree, [v + 0.1 * jax.random.normal(k, v.shape, v.dtype) for k, v in zip(keys, leaves)])
    model = eqx.tree_at(lambda m: m.control, model, eqx.combine(noisy, model.control))
    raw = (model.beta_raw, model.log_diffusion_raw, model.prior_mean_raw, model.prior_log_std_raw)
    raw = tuple(v + 0.03 * jax.random.normal(k, v.shape, v.dtype) for v, k in zip(raw, keys[-4:]))
    model = eqx.tree_at(lambda m: (m.beta_raw, m.log_diffusion_raw, m.prior_mean_raw, m.prior_log_std_raw), model, raw)
    return ControlledSampler(model, {**sampler.config, "learn_prior": True}, sampler.history)


@pytest.mark.parametrize("kind,control", [("cmcd", "zero"), pytest.param("cmcd", "random", marks=pytest.mark.slow),
                                          pytest.param("scld", "random", marks=pytest.mark.slow)])
def test_weights_are_exact_for_any_control(target, kind, control):
    """u = 0 (CMCD: AIS with ULA kernels; SCLD: SMC with ULA proposals + MALA) and a random u, beta schedule,
    diffusion and reference: the discrete-time weights stay exact, so log Z is unbiased and the draws are right."""
    sampler = untrained(target, kind, **SMALL)
    if control == "random":
        sampler = _random_model(sampler, jax.random.PRNGKey(7))
        assert float(jnp.abs(sampler.model.control(jnp.ones(2), 0.5, jnp.ones(2))).max()) > 0.01
    dt = samplax.sample(target, sampler, **RUN)
    _check_log_z(dt, f"{kind}/{control}")
    _check_moments(dt, f"{kind}/{control}")
    K, S = SMALL["num_steps"], (1 if kind == "cmcd" else 4)
    moves = 0 if kind == "cmcd" else 1
    assert int(dt.attrs["n_grad_sampling"]) == RUN["num_chains"] * RUN["num_particles"] * (K + 1 + (S - 1) * moves)


@pytest.fixture(scope="module", params=[pytest.param(("cmcd", "log_variance"), id="cmcd-log_variance"),
                                        pytest.param(("scld", "log_variance"), id="scld-log_variance"),
                                        pytest.param(("cmcd", "kl"), id="cmcd-kl", marks=pytest.mark.slow)])
def trained(request, target):
    kind, loss = request.param
    return train_controlled(target, kind, loss, progress=False, **TRAIN)


def test_training_lowers_the_loss_and_stays_exact(target, trained):
    h = trained.history
    assert np.all(np.isfinite(h)) and h.size == TRAIN["num_iterations"]
    assert h[-20:].mean() < h[:20].mean(), f"loss did not decrease: {h[:20].mean()} -> {h[-20:].mean()}"
    dt = samplax.sample(target, trained, **RUN)
    what = f"{trained.kind}[{trained.config['loss']}]"
    _check_log_z(dt, what)
    _check_moments(dt, what)
    c = trained.config
    per_path = c["num_steps"] + 1 + (c["num_subtrajectories"] - 1) * c["mcmc_steps"]
    assert c["n_grad_train"] == TRAIN["num_iterations"] * TRAIN["batch_size"] * per_path
    assert c["n_hvp_train"] == (c["n_grad_train"] if c["loss"] == "kl" else 0)
    assert int(dt.attrs["n_grad_sampling"]) == RUN["num_chains"] * RUN["num_particles"] * per_path


def test_save_load_round_trip(target, tmp_path):
    tr = _random_model(untrained(target, "scld", **SMALL), jax.random.PRNGKey(1))
    back = load_controlled(tr.save(tmp_path / "scld.eqx"))
    assert back.config == tr.config
    np.testing.assert_array_equal(back.history, tr.history)
    for a, b in zip(jax.tree.leaves(eqx.filter(tr.model, eqx.is_array)),
                    jax.tree.leaves(eqx.filter(back.model, eqx.is_array))):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_bad_input(target):
    with pytest.raises(ValueError, match="kind must be one of"):
        train_controlled(target, "dds")
    with pytest.raises(ValueError, match="loss must be one of"):
        train_controlled(target, "cmcd", "trajectory_balance")
    with pytest.raises(ValueError, match="must be a multiple of num_subtrajectories"):
        train_controlled(target, "scld", num_steps=10, num_subtrajectories=4)
    with pytest.raises(ValueError, match="use kind='scld'"):
        train_controlled(target, "cmcd", num_subtrajectories=2)
    with pytest.raises(ValueError, match="ess_threshold"):
        train_controlled(target, "scld", ess_threshold=2.0)
    other = samplax.Target.from_logdensity(lambda x: -0.5 * jnp.sum(x**2), 3)
    with pytest.raises(ValueError, match="trained for dim 2, the target has dim 3"):
        samplax.sample(other, untrained(target, "cmcd", **SMALL), num_particles=10, num_chains=1, progress=False)
    with pytest.raises(FloatingPointError, match="loss is nan"):
        nan_target = samplax.Target.from_logdensity(lambda x: jnp.nan * jnp.sum(x), 2)
        train_controlled(nan_target, "cmcd", num_iterations=2, num_steps=2, batch_size=4, width=4, depth=1,
                         num_freqs=1, progress=False)


def test_sampling_boundaries_apart_from_training(target):
    """SCLD sampled with other boundaries and moves than it was trained with (as the SCLD code's
    n_sub_traj_inference; benchmarks/diffusion_learned.py trains with 16 and samples with K): resampling after every
    step with 3 MALA moves at each inner boundary keeps log Z unbiased and the moments right, for a random control;
    the gradient count follows the sampling settings, not the training ones."""
    sampler = _random_model(untrained(target, "scld", **SMALL), jax.random.PRNGKey(3))
    K = SMALL["num_steps"]
    ps = sampler.as_population_sampler(num_subtrajectories=K, mcmc_steps=3)
    assert ps.settings["num_subtrajectories"] == K and ps.settings["mcmc_steps"] == 3
    dt = samplax.sample(target, ps, **RUN)
    _check_log_z(dt, "scld sampled at S=K, 3 moves")
    _check_moments(dt, "scld sampled at S=K, 3 moves")
    assert int(dt.attrs["n_grad_sampling"]) == RUN["num_chains"] * RUN["num_particles"] * (K + 1 + (K - 1) * 3)
    assert dt.stage_stats["ess"].shape[-1] == K  # one stage per sub-trajectory


@pytest.mark.parametrize("spread", [1.0, 5.0], ids=["hmc", "hmc-spread5"])
def test_hmc_moves_keep_log_z_and_moments(target, spread):
    """SCLD's HMC boundary moves (mcmc_kernel="hmc", 3 leapfrog steps, the step jittered in [0.5, 1.5] x h or
    log-uniform in [h / 5, 5 h]) leave every annealed density invariant: log Z unbiased and moments right for a
    random control, within the Monte Carlo error of 24 populations; L gradients per move are counted."""
    sampler = _random_model(untrained(target, "scld", **SMALL), jax.random.PRNGKey(5))
    K, m, L = SMALL["num_steps"], 2, 3
    ps = sampler.as_population_sampler(num_subtrajectories=K, mcmc_steps=m, mcmc_kernel="hmc", mcmc_leapfrog=L,
                                       mcmc_step_spread=spread)
    assert ps.settings["mcmc_kernel"] == "hmc" and ps.settings["mcmc_step_spread"] == spread
    assert ps.settings["grads_per_particle"] == K + 1 + (K - 1) * m * L
    dt = samplax.sample(target, ps, **RUN)
    what = f"scld sampled with HMC (L={L}, spread {spread})"
    _check_log_z(dt, what)
    _check_moments(dt, what)
    acc = dt.stage_stats["acceptance_rate"].values[:, :-1]
    assert 0.3 < np.nanmean(acc) < 0.95, f"{what}: acceptance {np.nanmean(acc)}"
    assert int(dt.attrs["n_grad_sampling"]) == RUN["num_chains"] * RUN["num_particles"] * (K + 1 + (K - 1) * m * L)
    with pytest.raises(ValueError, match="applies to mcmc_kernel='hmc' only"):
        sampler.as_population_sampler(mcmc_kernel="mala", mcmc_step_spread=2.0)
    with pytest.raises(ValueError, match="mcmc_step_spread must be finite and >= 1"):
        sampler.as_population_sampler(mcmc_kernel="hmc", mcmc_step_spread=float("inf"))
    with pytest.raises(ValueError, match="mcmc_kernel must be one of"):
        sampler.as_population_sampler(mcmc_kernel="nuts")


def test_autostep_moves_keep_log_z_and_moments_and_count(target):
    """SCLD sampled with AutoStep boundary moves (mcmc_kernel="autostep", L = 3: HMC whose step is doubled or halved
    per state) keeps log Z unbiased and the moments right for a random control; the run's gradient count is the
    moves' own (at least 3 L per move, varying) plus the path's, and training refuses the kernel."""
    from samplax.diffusion.learned.cmcd import make_config

    sampler = _random_model(untrained(target, "scld", **SMALL), jax.random.PRNGKey(6))
    K, m, L = SMALL["num_steps"], 2, 3
    ps = sampler.as_population_sampler(num_subtrajectories=K, mcmc_steps=m, mcmc_kernel="autostep", mcmc_leapfrog=L)
    assert ps.settings["mcmc_kernel"] == "autostep" and ps.settings["grads_per_particle"] is None
    dt = samplax.sample(target, ps, **RUN)
    _check_log_z(dt, "scld sampled with autostep")
    _check_moments(dt, "scld sampled with autostep")
    n = RUN["num_chains"] * RUN["num_particles"]
    moves = dt.stage_stats["n_grad"].values[:, :-1].sum() - n * K  # minus the path's gradients (and x_0's)
    per_move = (moves - n * (K - 1)) / (n * (K - 1) * m)  # minus the re-evaluation after each boundary's moves
    assert 3 * L <= per_move < 10 * L, per_move
    assert int(dt.attrs["n_grad_sampling"]) == int(dt.stage_stats["n_grad"].values.sum())
    with pytest.raises(ValueError, match="for sampling only"):
        make_config(target, "scld", mcmc_kernel="autostep")


def test_waste_free_moves_keep_log_z_and_moments_and_count(target):
    """SCLD sampled with waste-free boundary moves (waste_free=P: ceil(N / P) resampled ancestors, each a chain of P
    HMC states, the first N kept and equally weighted) keeps log Z unbiased and the moments right for a random
    control within the error of 24 populations; the gradients counted are the path's plus ceil(N / P) (P - 1) L per
    inner boundary, exactly."""
    sampler = _random_model(untrained(target, "scld", **SMALL), jax.random.PRNGKey(7))
    K, P, L, S = SMALL["num_steps"], 4, 3, SMALL["num_steps"]
    ps = sampler.as_population_sampler(num_subtrajectories=S, waste_free=P, mcmc_kernel="hmc", mcmc_leapfrog=L,
                                       mcmc_step_spread=3.0)
    assert ps.settings["waste_free"] == P and ps.settings["grads_per_particle"] is None
    assert ps.settings["mcmc_steps"] == 0, "the training's boundary moves are not run, so not recorded"
    dt = samplax.sample(target, ps, **RUN)
    _check_log_z(dt, "scld sampled waste-free")
    _check_moments(dt, "scld sampled waste-free")
    n, chains = RUN["num_particles"], -(-RUN["num_particles"] // P)
    per_population = n * (K + 1) + (S - 1) * chains * (P - 1) * L
    assert int(dt.attrs["n_grad_sampling"]) == RUN["num_chains"] * per_population
    assert np.all(dt.stage_stats["resampled"].values[:, :-1]), "waste-free resamples at every inner boundary"
    for bad, match in [(dict(waste_free=1), "waste_free must be an integer >= 2"),
                       (dict(waste_free=P, mcmc_steps=2), "replaces mcmc_steps"),
                       (dict(waste_free=P, mcmc_kernel="autostep"), "autostep' is not supported"),
                       (dict(waste_free=P, num_subtrajectories=1), "num_subtrajectories must be >= 2")]:
        with pytest.raises(ValueError, match=match):
            sampler.as_population_sampler(**bad)


@pytest.mark.parametrize("init", ["cubic", "two_ended"])
def test_beta_init(target, init):
    """beta_init="cubic" starts the annealing at (k / K)^3 (dense near the reference, as tempered SMC's schedule in
    benchmarks/diffusion_learned.py), "two_ended" at samplax.particles.temperatures.two_ended(K) (dense at both
    ends), and both keep the weights exact; training moves the schedule from there."""
    from samplax.diffusion.learned.cmcd import betas
    from samplax.particles import temperatures

    K = SMALL["num_steps"]
    sampler = untrained(target, "scld", beta_init=init, **SMALL)
    b = np.asarray(betas(sampler.model, sampler.config))
    want = np.linspace(0.0, 1.0, K + 1) ** 3 if init == "cubic" else temperatures.two_ended(K)
    np.testing.assert_allclose(b, want, atol=1e-12)
    if init == "two_ended":
        h = K // 2
        np.testing.assert_allclose(b[h:-1], 1 - 0.5 * np.geomspace(1.0, 2e-3, K - h + 1)[:-1], atol=1e-12)
        tail = untrained(target, "scld", beta_init=init, beta_tail=1e-5, **SMALL)
        last = 0.5 * (2e-5) ** ((K - h - 1) / (K - h))  # the geometric tail heads for 1e-5 at beta_K, set to 1
        np.testing.assert_allclose(1 - np.asarray(betas(tail.model, tail.config))[-2], last, rtol=1e-4)
        with pytest.raises(ValueError, match="beta_tail applies to beta_init='two_ended' only"):
            untrained(target, "scld", beta_init="cubic", beta_tail=1e-5, **SMALL)
        with pytest.raises(ValueError, match="beta_tail .* must be in"):
            untrained(target, "scld", beta_init=init, beta_tail=0.7, **SMALL)
    linear = untrained(target, "scld", **SMALL)
    lin = np.asarray(betas(linear.model, linear.config))
    np.testing.assert_allclose(lin, np.linspace(0.0, 1.0, K + 1), atol=1e-12)  # the default stays linear
    dt = samplax.sample(target, sampler, **RUN)
    _check_log_z(dt, f"scld, {init} beta")
    _check_moments(dt, f"scld, {init} beta")
    tr = train_controlled(target, "scld", "log_variance", progress=False, beta_init=init,
                          **{**TRAIN, "num_iterations": 20})
    assert tr.config["beta_init"] == init
    moved = np.asarray(betas(tr.model, tr.config))
    assert np.all(np.diff(moved) > 0) and not np.allclose(moved, b, atol=1e-4), "learn_betas left beta unchanged"
    with pytest.raises(ValueError, match="beta_init must be one of"):
        untrained(target, "scld", beta_init="cosine", **SMALL)
    with pytest.raises(ValueError, match="two_ended' needs num_steps >= 2"):
        untrained(target, "cmcd", beta_init="two_ended", **{**SMALL, "num_steps": 1})
