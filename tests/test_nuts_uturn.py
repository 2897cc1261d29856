"""NUTS with Stan's seam U-turn checks (samplax/samplers/nuts_kernel.py): no resonant doublings, same target."""

import blackjax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import samplax
from samplax.samplers.nuts_kernel import nuts as robust_nuts
from tests.moments import assert_moments

jax.config.update("jax_enable_x64", True)


def _run(make, logdensity, step_size, imm, x0, num_draws, seed, num_chains=1):
    alg = make(logdensity, step_size, imm)

    def chain(key):
        keys = jax.random.split(key, num_draws)

        def body(state, k):
            state, info = alg.step(k, state)
            return state, (state.position, info.num_integration_steps)

        return jax.lax.scan(body, alg.init(x0), keys)[1]

    return jax.jit(jax.vmap(chain))(jax.random.split(jax.random.key(seed), num_chains))


def test_a_resonant_step_no_longer_doubles_to_the_cap():
    # 10-d standard normal, exact metric, step 0.869: the leapfrog orbit has a period of 6.99 steps, so the two ends
    # of every 8-state trajectory sit at the same phase and blackjax's end-to-end checks never fire
    logp = lambda x: -0.5 * jnp.sum(x**2)  # noqa: E731
    x0 = jnp.full(10, 0.3)
    _, n_blackjax = _run(blackjax.nuts, logp, 0.869, jnp.ones(10), x0, 1000, 0)
    _, n_robust = _run(robust_nuts, logp, 0.869, jnp.ones(10), x0, 1000, 0)
    _, n_near = _run(robust_nuts, logp, 0.86, jnp.ones(10), x0, 1000, 0)  # a step just off the resonance
    assert float(jnp.mean(n_blackjax)) > 4 * float(jnp.mean(n_near))  # the pathology this kernel removes
    assert int(jnp.max(n_blackjax)) >= 255
    assert float(jnp.mean(n_robust)) <= 1.2 * float(jnp.mean(n_near))
    assert int(jnp.max(n_robust)) <= 15


def test_identical_to_blackjax_where_no_seam_check_fires():
    # off the resonance the extra checks never stop a trajectory earlier: the same keys give the same draws
    logp = lambda x: -0.5 * jnp.sum(x**2)  # noqa: E731
    x0 = jnp.full(10, 0.3)
    xa, na = _run(blackjax.nuts, logp, 0.5, jnp.ones(10), x0, 300, 1)
    xb, nb = _run(robust_nuts, logp, 0.5, jnp.ones(10), x0, 300, 1)
    np.testing.assert_array_equal(np.asarray(na), np.asarray(nb))
    np.testing.assert_allclose(np.asarray(xa), np.asarray(xb), rtol=0, atol=1e-12)


@pytest.mark.parametrize("step_size", [0.869, 0.3])
def test_stationary_on_an_anisotropic_non_gaussian_target(step_size):
    # scales 0.5..2.5 under a unit metric (orbits of different periods: long, uneven trees, where a wrong seam check
    # would bias the draws) and one standard logistic coordinate; exact means 0, variances scale^2 and pi^2 / 3
    scales = jnp.array([0.5, 1.0, 1.5, 2.5])

    def logp(x):
        g = -0.5 * jnp.sum((x[:4] / scales) ** 2)
        return g - x[4] - 2.0 * jnp.logaddexp(0.0, -x[4])

    x, _ = _run(robust_nuts, logp, step_size, jnp.ones(5), jnp.zeros(5), 8000, 2, num_chains=8)
    var = np.concatenate([np.asarray(scales) ** 2, [np.pi**2 / 3]])
    assert_moments(np.asarray(x), np.zeros(5), var, what=f"robust NUTS, step {step_size}")


def test_default_nuts_on_the_noncentred_funnel_spends_no_resonant_gradients():
    # the case that found it: nuts' low-rank warmup whitens this 10-d Gaussian exactly, dual averaging lands near
    # step 0.87, and before the seam checks one chain of four (seed 4) took ~10x the gradients of the others
    def logp(x):
        return -0.5 * (x[0] / 3.0) ** 2 - 0.5 * jnp.sum(x[1:] ** 2)

    target = samplax.Target.from_logdensity(logp, 10, name="funnel_noncentred_test")
    dt = samplax.sample(target, "nuts", num_chains=4, num_warmup=1000, num_samples=1000, seed=4, progress=False)
    per_chain = np.asarray(dt.sample_stats["n_grad"]).sum(axis=1)
    assert per_chain.max() < 2.0 * np.median(per_chain), per_chain
    assert int(np.asarray(dt.sample_stats["tree_depth"]).max()) <= 4


def test_step_jitter_is_nutpies_default_and_a_given_step_is_used_as_given():
    assert samplax.samplers.get("nuts").settings["step_jitter"] == 0.1
    assert samplax.samplers.get("nuts", step_size=0.3).settings["step_jitter"] == 0.0
    assert samplax.samplers.get("nuts", step_size=0.3, step_jitter=0.2).settings["step_jitter"] == 0.2
    with pytest.raises(ValueError, match="step_jitter"):
        samplax.samplers.get("nuts", step_jitter=1.5)


def test_a_jittered_step_leaves_the_target_invariant():
    # a wide jitter (+-40%) on a fixed step and unit metric: the draws keep the exact moments (the jitter is drawn
    # independently of the state), and the trajectories really vary (more distinct lengths than without it)
    scales = jnp.array([0.5, 1.0, 1.5, 2.5])

    def logp(x):
        return -0.5 * jnp.sum((x[:4] / scales) ** 2) - x[4] - 2.0 * jnp.logaddexp(0.0, -x[4])

    target = samplax.Target.from_logdensity(logp, 5, name="aniso_logistic_test")
    kw = dict(num_chains=8, num_warmup=0, num_samples=8000, seed=3, progress=False, step_size=0.6,
              inverse_mass_matrix=np.ones(5))
    dt = samplax.sample(target, "nuts", step_jitter=0.4, **kw)
    x = np.asarray(dt.posterior["x"])
    assert_moments(x, np.zeros(5), np.concatenate([np.asarray(scales) ** 2, [np.pi**2 / 3]]),
                   what="nuts, step jitter 0.4")
    fixed = samplax.sample(target, "nuts", num_chains=1, num_warmup=0, num_samples=2000, seed=3, progress=False,
                           step_size=0.6, inverse_mass_matrix=np.ones(5))
    n_jit, n_fixed = (np.asarray(d.sample_stats["n_grad"]) for d in (dt, fixed))
    assert len(np.unique(n_jit)) > len(np.unique(n_fixed))


def test_low_rank_kinetic_energy_never_overflows_to_minus_infinity():
    # blackjax's form q . (q + U ((lam - 1) U^T q)) sums products of either sign, so a momentum near 1e154 can give
    # -inf (or NaN) where the energy is +inf; samplax's |q - U c|^2 + sum(lam c^2) only sums non-negative terms
    from blackjax.mcmc.metrics import LowRankInverseMassMatrix

    from samplax.samplers.adapt_low_rank import _matvec, low_rank_metric

    rng = np.random.default_rng(0)
    old_bad = 0
    for _ in range(300):
        U = np.linalg.qr(rng.normal(size=(4, 4)))[0][:, :2]
        lam = np.exp(rng.uniform(-2.5, 2.5, size=2))
        sigma = np.exp(rng.uniform(-1, 1, size=4))
        p = rng.normal(size=4) * 10.0 ** rng.uniform(150, 160)
        k = float(low_rank_metric(LowRankInverseMassMatrix(jnp.asarray(sigma), jnp.asarray(U),
                                                           jnp.asarray(lam))).kinetic_energy(jnp.asarray(p)))
        assert k > 0 and not np.isnan(k), k
        q = jnp.asarray(sigma * p)
        old = float(0.5 * jnp.dot(q, _matvec(q, jnp.asarray(U), jnp.asarray(lam))))
        old_bad += (old == -np.inf) | np.isnan(old)
    assert old_bad > 0  # the old form did fail on such momenta: this test can tell the two apart


def test_an_energy_of_minus_infinity_is_a_divergence_not_an_acceptance():
    # a metric whose kinetic energy overflows to -inf past |p| > 50: before the guard, H0 - H = +inf accepted the
    # overflowing state with probability one and called the transition healthy
    from blackjax.mcmc import metrics

    base = metrics.default_metric(jnp.ones(2))

    def kinetic_energy(momentum, position=None):
        k = base.kinetic_energy(momentum)
        return jnp.where(jnp.max(jnp.abs(momentum)) > 50.0, -jnp.inf, k)

    metric = metrics.Metric(base.sample_momentum, kinetic_energy, base.check_turning, base.scale)
    logp = lambda x: -0.5 * jnp.sum((x / jnp.array([1.0, 0.01])) ** 2)  # noqa: E731  (stiff: big steps blow up)
    alg = robust_nuts(logp, 0.5, metric)
    state = alg.init(jnp.array([0.5, 0.01]))
    new, info = jax.jit(alg.step)(jax.random.key(0), state)
    assert bool(info.is_divergent)
    assert float(new.logdensity) > -1e3  # the chain did not jump to the overflowing state


def test_arma11_warmup_keeps_every_chain_moving():
    # the run that found the overflow: 4 chains x (500 + 200), seed 1; one chain's step size collapsed to 1e-66
    # at lp = -3e201 (R-hat 1.53) before the low-rank kinetic energy was written as a sum of squares
    dt = samplax.sample(samplax.models.get("arma11"), "nuts", num_chains=4, num_warmup=500, num_samples=200,
                        seed=1, progress=False)
    step = np.asarray(dt.sample_stats["step_size"])[:, 0]
    assert np.all(step > 0.1), step
    assert np.all(np.isfinite(np.asarray(dt.sample_stats["lp"]))) and np.min(np.asarray(dt.sample_stats["lp"])) > -1e3
