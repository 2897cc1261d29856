"""NETS (non-equilibrium transport sampler): exact and Jarzynski weights, PINN / action-matching training, log Z and
moments against exact answers within their Monte Carlo error, the closed-form optimal drift of a Gaussian, counts."""

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import samplax
from samplax.diffusion.learned.nets import (NetsSampler, action_loss, load_nets, pinn_loss, rollout, train_nets)

jax.config.update("jax_enable_x64", True)

# a 2-d two-component mixture with unequal weights (asymmetric, to catch sign errors) and log Z = 0.7
W = np.array([0.3, 0.7])
MU = np.array([[-2.0, 0.0], [2.0, 1.0]])
S = 0.7
LOG_Z = 0.7
MEAN = W @ MU
VAR = S**2 + W @ (MU - MEAN) ** 2  # per coordinate


def mixture():
    m, lw = jnp.asarray(MU), jnp.log(jnp.asarray(W))

    def lp(x):
        return jax.scipy.special.logsumexp(-0.5 * jnp.sum((x - m) ** 2, -1) / S**2 + lw) \
            - jnp.log(2 * jnp.pi * S**2) + LOG_Z

    return samplax.Target.from_logdensity(lp, 2, name="mix2")


# an isotropic Gaussian N(M, SG^2 I) (log Z = LZ_G): the geometric path from N(0, SIGMA^2 I) stays Gaussian
M = np.array([1.5, -1.0])
SG, SIGMA, LZ_G = 0.5, 1.5, -0.4


def gaussian():
    return samplax.Target.from_logdensity(
        lambda x: -0.5 * jnp.sum((x - M) ** 2) / SG**2 - 2 * jnp.log(SG) - jnp.log(2 * jnp.pi) + LZ_G, 2,
        name="gauss2")


class OptimalDrift(eqx.Module):
    """b*(x, t) = mu'(t) + (s'(t) / s(t)) (x - mu(t)): the affine flow of the Gaussians rho_t on the geometric path.

    rho_t ∝ N(0, SIGMA^2)^(1-t) N(M, SG^2)^t has precision l(t) = (1-t)/SIGMA^2 + t/SG^2 and mean mu(t) =
    t M / (SG^2 l(t)); the affine map pushing rho_0 along this family solves the continuity equation.
    """

    def __call__(self, x, t):
        l = (1 - t) / SIGMA**2 + t / SG**2
        dl = 1 / SG**2 - 1 / SIGMA**2
        mu = t * M / (SG**2 * l)
        dmu = M / (SG**2 * l**2 * SIGMA**2)
        return dmu + (-0.5 * dl / l) * (x - mu)


RUN = dict(num_particles=2000, num_chains=8, seed=3, progress=False)


def _log_z_ok(dt, truth, k=4.0):
    return abs(dt.attrs["log_z"] - truth) < k * dt.attrs["log_z_se"]


def _pooled_ess(dt):
    return float(dt.stage_stats["ess"].values[:, -1].sum())


def _moments_ok(dt, mean, var, k=4.5):
    """Mean and variance of every coordinate within k MCSE (MCSE from the importance ESS the particles carry)."""
    x = dt.posterior["x"].values.reshape(-1, 2)
    n = _pooled_ess(dt)
    m = x.mean(0)
    v = x.var(0)
    se_m = np.sqrt(v / n)
    se_v = np.sqrt(((x - m) ** 2).var(0) / n)
    return bool(np.all(np.abs(m - mean) < k * se_m) and np.all(np.abs(v - var) < k * se_v))


@pytest.fixture(scope="module")
def target():
    return mixture()


@pytest.fixture(scope="module")
def untrained(target):
    return train_nets(target, num_steps=32, num_iterations=0, sigma=2.5, seed=0, progress=False)


@pytest.fixture(scope="module")
def pinn(target):
    return train_nets(target, num_steps=32, num_iterations=150, batch_size=128, learning_rate=3e-3, sigma=2.5,
                      width=32, seed=0, progress=False)


@pytest.fixture(scope="module")
def runs(target, untrained, pinn):
    return {"untrained": samplax.sample(target, untrained, **RUN), "pinn": samplax.sample(target, pinn, **RUN)}


def test_untrained_is_annealed_importance_sampling_and_unbiased(untrained, runs):
    # b = 0: the exact discrete-time weights are those of AIS with unadjusted Langevin moves, unbiased for Z
    dt = runs["untrained"]
    assert _log_z_ok(dt, LOG_Z), (dt.attrs["log_z"] - LOG_Z, dt.attrs["log_z_se"])
    # power: the same gate refuses a log Z 5 SE away (3 SE gate, so an error inside +-2 SE cannot pass both)
    assert _log_z_ok(dt, LOG_Z, 3.0) and not _log_z_ok(dt, LOG_Z + 5 * dt.attrs["log_z_se"], 3.0)
    assert not _log_z_ok(dt, LOG_Z - 5 * dt.attrs["log_z_se"], 3.0)
    assert untrained.n_grad_train == 0
    assert int(dt.attrs["n_grad_sampling"]) == 8 * 2000 * 32  # K evaluations per path (x_1..x_K)


def test_resampling_keeps_log_z_unbiased(target, untrained):
    # ESS-triggered resampling of the running weights: SMC with the NETS moves, log Z from the epochs' increments
    dt = samplax.sample(target, untrained, resample_threshold=0.5, **RUN)
    assert dt.stage_stats["resampled"].values.any()
    assert _log_z_ok(dt, LOG_Z), (dt.attrs["log_z"] - LOG_Z, dt.attrs["log_z_se"])
    assert _moments_ok(dt, MEAN, VAR)


def test_pinn_training_raises_ess_keeps_log_z_and_moments(target, pinn, runs):
    dt0, dt = runs["untrained"], runs["pinn"]
    h = pinn.history
    assert h["loss"][-20:].mean() < 0.5 * h["loss"][:20].mean()
    # measured (seed 0): pooled final ESS ratio about 1.4 (exact weights; their floor is the Euler-Maruyama
    # mismatch of forward and backward kernels, see the Gaussian test), 2040 -> about 4700 with Jarzynski weights
    assert _pooled_ess(dt) > 1.25 * _pooled_ess(dt0), (_pooled_ess(dt), _pooled_ess(dt0))
    assert _log_z_ok(dt, LOG_Z), (dt.attrs["log_z"] - LOG_Z, dt.attrs["log_z_se"])
    assert _moments_ok(dt, MEAN, VAR)
    dt_j = samplax.sample(target, pinn, weights="jarzynski", **RUN)
    assert _pooled_ess(dt_j) > 1.5 * _pooled_ess(dt0), (_pooled_ess(dt_j), _pooled_ess(dt0))
    # power: a variance 10% off, or a mean shifted by 0.1 sd, is refused
    assert not _moments_ok(dt, MEAN, 1.1 * VAR)
    assert not _moments_ok(dt, MEAN, VAR / 1.1)
    assert not _moments_ok(dt, MEAN + 0.1 * np.sqrt(VAR), VAR)
    # training counts: K + 1 evaluations per path per iteration (x_1..x_K and log pi~(x_0) for the PINN residual)
    assert pinn.n_grad_train == 150 * 128 * 33
    # the existing diagnostics read the DataTree
    assert "r_hat" in samplax.diagnostics.summary(dt).columns


def test_optimal_drift_of_a_gaussian_zeroes_the_pinn_residual_and_the_weight_variance():
    g = gaussian()
    base = train_nets(g, num_steps=64, num_iterations=0, sigma=SIGMA, seed=0, progress=False)
    opt = dataclasses.replace(base, model=OptimalDrift())
    # the PINN residual of b* is constant in x at every t (its per-time variance is 0); that of b = 0 is not
    key = jax.random.PRNGKey(0)
    out = rollout(base.model, g.logdensity, key, 256, 2, num_steps=64, sigma=SIGMA, epsilon=1.0, weights="exact",
                  keep=True)
    batch = {k: out[k] for k in ("xs", "lps", "gps", "ts")}
    batch["tw"] = jnp.full((64,), 1.0 / 64)
    for div in ("exact", "hutchinson"):
        l_opt, aux = pinn_loss(OptimalDrift(), batch, key, sigma=SIGMA, divergence_kind=div)
        l_zero, _ = pinn_loss(base.model, batch, key, sigma=SIGMA, divergence_kind=div)
        assert float(l_opt) < 1e-18 and float(l_zero) > 1.0, (div, l_opt, l_zero)
        # with b* exact, the profiled free energy integrates to log Z (right-point sum here: O(h) off)
        assert abs(float(aux["log_z_pinn"]) - LZ_G) < 0.2
    # Jarzynski weights of b*: nearly constant (only the Euler-Maruyama error), log Z close to exact
    dt = samplax.sample(g, opt, num_particles=500, num_chains=4, seed=0, progress=False, weights="jarzynski")
    assert float(dt.stage_stats["ess"].values[:, -1].min()) > 0.99 * 500
    assert abs(dt.attrs["log_z"] - LZ_G) < 0.02, dt.attrs["log_z"] - LZ_G
    assert int(dt.attrs["n_grad_sampling"]) == 4 * 500 * 65  # x_0..x_K
    # exact weights of b*: unbiased and far better than b = 0 (measured ESS / N 0.75 vs 0.17 at K = 64; the rest is
    # the discretisation mismatch of the forward and backward Euler kernels, 0.44 / 0.75 / 0.90 at K = 32 / 64 / 128)
    dt_opt = samplax.sample(g, opt, num_particles=500, num_chains=8, seed=0, progress=False)
    dt_zero = samplax.sample(g, base, num_particles=500, num_chains=8, seed=0, progress=False)
    assert _log_z_ok(dt_opt, LZ_G) and _log_z_ok(dt_zero, LZ_G)
    assert _pooled_ess(dt_opt) > 0.5 * 8 * 500 > 0.3 * 8 * 500 > _pooled_ess(dt_zero)


def test_hutchinson_pinn_loss_is_unbiased_for_the_exact_one():
    g = gaussian()
    ns = train_nets(g, num_steps=8, num_iterations=0, sigma=SIGMA, width=16, seed=0, progress=False)
    # a non-linear drift with a non-diagonal Jacobian: randomise every weight
    leaves, tree = jax.tree.flatten(eqx.filter(ns.model, eqx.is_inexact_array))
    keys = jax.random.split(jax.random.PRNGKey(1), len(leaves))
    rnd = jax.tree.unflatten(tree, [0.5 * jax.random.normal(k, l.shape) for k, l in zip(keys, leaves)])
    model = eqx.combine(rnd, ns.model)
    out = rollout(ns.model, g.logdensity, jax.random.PRNGKey(2), 64, 2, num_steps=8, sigma=SIGMA, epsilon=1.0,
                  weights="exact", keep=True)
    batch = {k: out[k] for k in ("xs", "lps", "gps", "ts")}
    batch["tw"] = jnp.full((8,), 1.0 / 8)
    exact = float(pinn_loss(model, batch, None, sigma=SIGMA, divergence_kind="exact")[0])
    est = np.array(jax.vmap(lambda k: pinn_loss(model, batch, k, sigma=SIGMA, divergence_kind="hutchinson")[0])(
        jax.random.split(jax.random.PRNGKey(3), 400)))
    se = est.std(ddof=1) / np.sqrt(est.size)
    assert se > 0 and abs(est.mean() - exact) < 4 * se, (est.mean(), exact, se)
    # power: one probe squared would be biased up by Var(z.Jz); the two-probe product is not
    assert abs(est.mean() - 1.1 * exact) > 4 * se


def test_action_matching_training_keeps_log_z(target):
    ns = train_nets(target, num_steps=32, num_iterations=100, batch_size=128, learning_rate=3e-3, sigma=2.5,
                    width=32, loss="action", seed=0, progress=False)
    assert ns.history["loss"][-20:].mean() < ns.history["loss"][:20].mean()
    dt = samplax.sample(target, ns, **RUN)
    assert _log_z_ok(dt, LOG_Z), (dt.attrs["log_z"] - LOG_Z, dt.attrs["log_z_se"])
    assert ns.n_grad_train == 100 * 128 * 32


def test_save_load_gives_identical_samples(target, pinn, runs, tmp_path):
    path = pinn.save(tmp_path / "nets.eqx")
    back = load_nets(path)
    assert back.config == pinn.config and np.array_equal(back.history["loss"], pinn.history["loss"])
    dt = samplax.sample(target, back, **RUN)
    np.testing.assert_array_equal(dt.posterior["x"].values, runs["pinn"].posterior["x"].values)
    assert dt.attrs["log_z"] == runs["pinn"].attrs["log_z"]


def test_bad_input(target, untrained, tmp_path):
    with pytest.raises(ValueError, match="loss must be one of"):
        train_nets(target, loss="kl", num_iterations=0)
    with pytest.raises(ValueError, match="weights must be one of"):
        untrained.as_population_sampler(weights="hutchinson")
    with pytest.raises(ValueError, match="num_steps"):
        train_nets(target, num_steps=0, num_iterations=0)
    with pytest.raises(ValueError, match="epsilon"):
        train_nets(target, epsilon=-1.0, num_iterations=0)
    with pytest.raises(ValueError, match="hutchinson"):
        train_nets(target, loss="action", divergence="hutchinson", num_iterations=0)
    with pytest.raises(ValueError, match="trained for dim 2"):
        samplax.sample(gaussian3(), untrained, num_particles=10, num_chains=1, progress=False)
    (tmp_path / "junk").write_bytes(b"junk\n")
    with pytest.raises(ValueError, match="not a samplax NETS file"):
        load_nets(tmp_path / "junk")


def gaussian3():
    return samplax.Target.from_logdensity(lambda x: -0.5 * jnp.sum(x**2), 3, name="g3")
