"""Hitting-time estimator vs exact 1D oracles (Langevin MFPT integral, telegraph formula), Kaplan-Meier checks."""

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from samplax.diagnostics.hitting import (HittingResult, ball, first_hit_times, halfspace, hit_times_from_draws,
                                         sampler_grads, sublevel_set, summarize)
from samplax.diagnostics.hitting_theory import (kramers_time, mfpt_langevin, telegraph_mean_hitting_time,
                                                travel_time)


class Pos(NamedTuple):
    position: jnp.ndarray


class Tele(NamedTuple):
    position: jnp.ndarray
    direction: jnp.ndarray


def double_well(a=1.0, omega=2.0):
    return lambda x: omega**2 * (x**2 - a**2) ** 2 / (8 * a**2)


# ------------------------------------------------------------------------------------------- oracles


def test_mfpt_integral_free_diffusion_closed_form():
    # U = 0, reflecting at 0: E[tau] = (b^2 - x0^2) / (2T)
    got = mfpt_langevin(lambda x: 0.0 * x, 0.3, 1.0, 0.7, left=0.0)
    assert got == pytest.approx((1.0 - 0.09) / 1.4, rel=1e-10)


def test_mfpt_integral_stable_for_tall_barriers():
    U = double_well()
    coarse, fine = mfpt_langevin(U, -1.0, 1.0, 0.01, num=4001), mfpt_langevin(U, -1.0, 1.0, 0.01, num=40001)
    assert np.isfinite(fine) and fine > 1e20
    assert coarse == pytest.approx(fine, rel=1e-6)


def test_kramers_ratio_tends_to_one():
    U = double_well()
    ratios = [mfpt_langevin(U, -1.0, 1.0, T) / kramers_time(U, -1.0, 0.0, T) for T in (0.1, 0.03, 0.01, 0.003)]
    err = np.abs(np.array(ratios) - 1)
    print("exact / Kramers at T = 0.1, 0.03, 0.01, 0.003:", np.round(ratios, 5))
    assert np.all(np.diff(err) < 0), ratios
    # the first correction is O(T): err / T stays bounded
    assert err[-1] < 0.005 and err[-1] / 0.003 < 1.5 * err[-2] / 0.01


def test_travel_time_with_vanishing_speed():
    v = lambda x: np.sqrt(np.clip(1 - x**2, 0, None))
    assert travel_time(v, -1.0, 0.5) == pytest.approx(np.arcsin(0.5) + np.pi / 2, rel=1e-9)


def test_telegraph_formula_limits():
    v = lambda x: np.ones_like(x)
    # no flips: ballistic B - s0 towards b, B + s0 via the wall
    assert telegraph_mean_hitting_time(v, 0.0, 0.5, 2.0, direction=1, wall=0.0) == pytest.approx(1.5)
    assert telegraph_mean_hitting_time(v, 0.0, 0.5, 2.0, direction=-1, wall=0.0) == pytest.approx(2.5)
    # mirrored geometry gives the same number
    assert (telegraph_mean_hitting_time(v, 1.3, -0.5, -2.0, wall=0.0)
            == pytest.approx(telegraph_mean_hitting_time(v, 1.3, 0.5, 2.0, wall=0.0)))
    with pytest.raises(ValueError, match="wall"):
        telegraph_mean_hitting_time(v, 1.0, 0.5, 2.0, wall=1.0)


# ------------------------------------------------------------------------------------ simulations


def test_langevin_hitting_matches_exact_mfpt():
    """Euler-Maruyama dX = -U' dt + sqrt(2T) dW, double well a=1, omega=2, T=0.5, from -1 to +1.

    Exact MFPT 7.139.  Discrete monitoring misses crossings between steps, which acts like moving the
    target out by 0.5826 sqrt(2 T h) (Broadie, Glasserman & Kou 1997); at h = 1e-3 the oracle at the shifted
    target is 0.8% larger, so the bias sits well inside 5%; 4000 runs give a 1.4% standard error.
    """
    U, T, h = double_well(), 0.5, 1e-3
    exact = mfpt_langevin(U, -1.0, 1.0, T)
    grad = jax.grad(lambda x: jnp.sum(U(x)))

    def step(key, s):
        x = s.position
        return Pos(x - h * grad(x) + jnp.sqrt(2 * T * h) * jax.random.normal(key, x.shape)), None

    res = first_hit_times(step, Pos(-jnp.ones((4000, 1))), halfspace(0, 1.0), int(40 * exact / h),
                          jax.random.key(0), dt=h, chunk=4000)
    s = summarize(res, "time", confidence=0.999)
    assert s.mean_kind == "mean" and s.fraction_hit == 1.0
    print(f"estimate {s.mean:.4f} +- {s.mean_se:.4f} (se), exact {exact:.4f}, ratio {s.mean / exact:.4f}")
    assert s.mean_ci[0] < exact < s.mean_ci[1], (s.mean, s.mean_se, exact)
    assert abs(s.mean / exact - 1) < 0.05


def test_telegraph_small_dt_matches_exact_formula():
    """Speed 1 + sin(2 theta)/2, flip rate 0.5, wall at -0.5, from 0 to 1.5, 50/50 initial direction.

    Midpoint steps of dt = 2e-3 with flips at step ends: the flip delay of ~dt/2 and the overshoot at b
    bias the mean by O(dt) ~ 0.2%, far below the 1.5% standard error of 4000 runs.
    """
    v = lambda x: 1 + 0.5 * jnp.sin(2 * x)
    rate, wall, b, dt, n = 0.5, -0.5, 1.5, 2e-3, 4000
    exact = telegraph_mean_hitting_time(v, rate, 0.0, b, wall=wall)

    def step(key, s):
        x, d = s.position, s.direction
        x = x + d * v(x + d * v(x) * dt / 2) * dt
        below = x < wall
        x, d = jnp.where(below, 2 * wall - x, x), jnp.where(below[0], 1.0, d)
        flip = jax.random.uniform(key) < -jnp.expm1(-rate * dt)
        return Tele(x, jnp.where(flip, -d, d)), None

    d0 = jnp.where(jnp.arange(n) % 2 == 0, 1.0, -1.0)
    res = first_hit_times(step, Tele(jnp.zeros((n, 1)), d0), halfspace(0, b), int(30 * exact / dt),
                          jax.random.key(1), dt=dt, chunk=2000)
    s = summarize(res, "time", confidence=0.999)
    assert s.mean_kind == "mean"
    print(f"estimate {s.mean:.4f} +- {s.mean_se:.4f} (se), exact {exact:.4f}, ratio {s.mean / exact:.4f}")
    assert s.mean_ci[0] < exact < s.mean_ci[1], (s.mean, s.mean_se, exact)
    assert abs(s.mean / exact - 1) < 0.05


def _telegraph_exact_sim(key, rate, s0, B, directions):
    """Event-driven telegraph process in travel-time coordinates: unit speed, Exp(rate) flips, wall at 0."""

    def one(key, direction):
        def cond(c):
            return ~c[3]

        def body(c):
            s, d, t, _, k = c
            k, sub = jax.random.split(k)
            e = jax.random.exponential(sub) / rate
            # moving towards b: arrive at B, or flip at s + e
            up_hit = (d > 0) & (s + e >= B)
            # moving towards the wall: bounce at 0 if e > s, then maybe arrive at B
            bounce = (d < 0) & (e > s)
            down_hit = bounce & (e - s >= B)
            t_new = jnp.where(up_hit, t + B - s, jnp.where(down_hit, t + s + B, t + e))
            s_new = jnp.where(d > 0, s + e, jnp.where(bounce, e - s, s - e))
            d_new = jnp.where(bounce, -1.0, -d)
            return s_new, d_new, t_new, up_hit | down_hit, k

        return jax.lax.while_loop(cond, body, (s0, direction, 0.0, False, key))[2]

    return jax.vmap(one)(jax.random.split(key, len(directions)), directions)


@pytest.mark.parametrize("direction", [1, -1, None])
def test_telegraph_exact_simulation_with_vanishing_speed(direction):
    """Speed sqrt(1 - theta^2) (vanishes at the wall -1), rate 0.5, from 0 to 0.9; exact event simulation."""
    v = lambda x: np.sqrt(np.clip(1 - x**2, 0, None))
    rate, n = 0.5, 20000
    exact = telegraph_mean_hitting_time(v, rate, 0.0, 0.9, direction=direction)
    s0, B = np.pi / 2, np.arcsin(0.9) + np.pi / 2
    key = jax.random.key(2)
    if direction is None:
        dirs = jnp.where(jax.random.bernoulli(jax.random.fold_in(key, 1), 0.5, (n,)), 1.0, -1.0)
    else:
        dirs = jnp.full(n, float(direction))
    t = np.asarray(_telegraph_exact_sim(key, rate, s0, B, dirs))
    se = t.std(ddof=1) / np.sqrt(n)
    print(f"estimate {t.mean():.4f} +- {se:.4f} (se), exact {exact:.4f}, ratio {t.mean() / exact:.4f}")
    assert abs(t.mean() - exact) < 5 * se, (t.mean(), se, exact)
    assert abs(t.mean() / exact - 1) < 0.05


# ------------------------------------------------------------------------------------- Kaplan-Meier


def _exp_result(key, n, mean, budget):
    t = np.asarray(jax.random.exponential(key, (n,))) * mean
    return HittingResult(times=np.minimum(t, budget), hit=t <= budget, grads=2 * np.minimum(t, budget),
                         budget=budget, dt=1.0)


@pytest.mark.parametrize("seed", [0, 1])
def test_km_uncensored_exponential(seed):
    mu, n = 2.0, 4000
    s = summarize(_exp_result(jax.random.key(seed), n, mu, 1e9))
    assert s.mean_kind == "mean" and s.fraction_hit == 1.0
    assert abs(s.mean - mu) < 5 * s.mean_se
    wide = summarize(_exp_result(jax.random.key(seed), n, mu, 1e9), confidence=0.999)
    assert wide.median_ci[0] < mu * np.log(2) < wide.median_ci[1]
    assert wide.median_ci[1] - wide.median_ci[0] < 0.2 * mu  # Greenwood: ~6.6 sd of 1.4 mu / sqrt(n)
    g = summarize(_exp_result(jax.random.key(seed), n, mu, 1e9), "grads")
    assert g.mean == pytest.approx(2 * s.mean)


@pytest.mark.parametrize("seed", [0, 1])
def test_km_censored_exponential_restricted_mean(seed):
    mu, c, n = 2.0, 3.0, 4000
    s = summarize(_exp_result(jax.random.key(seed), n, mu, c))
    assert s.mean_kind == "restricted_mean" and "lower bound" in s.describe()
    rmst = mu * (1 - np.exp(-c / mu))
    assert abs(s.mean - rmst) < 5 * s.mean_se
    assert abs(s.fraction_hit - (1 - np.exp(-c / mu))) < 5 * np.sqrt(0.2 / n)
    # the KM band covers the true survival at a few interior times
    for t in (0.5, 1.5, 2.5):
        i = np.searchsorted(s.km_times, t, side="right") - 1
        assert s.km_low[i] < np.exp(-t / mu) < s.km_high[i]


def test_km_restricted_mean_standard_error_is_calibrated():
    mu, c, n, reps = 2.0, 3.0, 200, 300
    keys = jax.random.split(jax.random.key(3), reps)
    sums = [summarize(_exp_result(k, n, mu, c)) for k in keys]
    means, ses = np.array([x.mean for x in sums]), np.array([x.mean_se for x in sums])
    # sd of the estimates vs the average standard error: ratio within 20% (its own sd is ~4%)
    assert abs(means.std(ddof=1) / ses.mean() - 1) < 0.2


# ------------------------------------------------------------------------------------ bookkeeping


def _rw_step(key, s):
    return Pos(s.position + 0.3 * jax.random.normal(key, s.position.shape)), None


def test_first_hit_bookkeeping_matches_stored_draws():
    n, steps, key = 64, 300, jax.random.key(4)
    init = Pos(jnp.zeros((n, 2)))
    target = ball(jnp.array([1.5, 0.0]), 0.5)
    res = first_hit_times(_rw_step, init, target, steps, key, grads_per_step=3, chunk=37)
    again = first_hit_times(_rw_step, init, target, steps, key, grads_per_step=3, chunk=300)
    np.testing.assert_array_equal(res.times, again.times)

    # the same trajectories, stored: run r uses fold_in(key, r), step t uses fold_in(that, t)
    def traj(r):
        k = jax.random.fold_in(key, r)

        def body(s, t):
            s, _ = _rw_step(jax.random.fold_in(k, t), s)
            return s, s.position

        return jax.lax.scan(body, Pos(jnp.zeros(2)), jnp.arange(steps))[1]

    draws = jax.vmap(traj)(jnp.arange(n))
    stored = hit_times_from_draws(draws, target)
    np.testing.assert_array_equal(stored.times, res.times)
    np.testing.assert_array_equal(stored.hit, res.hit)
    assert 0 < res.hit.mean() < 1 and np.all(res.times[~res.hit] == steps)
    np.testing.assert_array_equal(res.grads, 3 * res.times)


def test_start_inside_set_and_datatree_input():
    res = first_hit_times(_rw_step, Pos(jnp.zeros((3, 1))), sublevel_set(lambda x: jnp.sum(x**2), 1.0), 10,
                          jax.random.key(0))
    np.testing.assert_array_equal(res.times, 0)

    from arviz_base import from_dict

    x = np.array([[[-1.0], [-0.5], [0.5], [2.0]], [[-1.0], [-2.0], [-3.0], [-4.0]]])
    n_grad = np.array([[2, 2, 5, 5], [1, 1, 1, 1]])
    dt = from_dict({"posterior": {"x": x}, "sample_stats": {"n_grad": n_grad}})
    dt.attrs["thinning"] = 2
    res = hit_times_from_draws(dt, halfspace(0, 0.0, "above"))
    np.testing.assert_array_equal(res.hit, [True, False])
    np.testing.assert_array_equal(res.times, [6, 8])
    np.testing.assert_array_equal(res.grads, [9, 4])
    no_count = hit_times_from_draws(x, halfspace(0, 0.0, "above"))  # a bare array carries no gradient count
    with pytest.raises(ValueError, match="no gradient count"):
        no_count.in_units("grads")


def test_a_population_run_has_no_hitting_time():
    """SMC's particles are exchangeable: read along the particle index, the same population shuffled three ways
    'hit' at mean 62 / 65 / 110 and compare reported a hit fraction of 1 for it. Refused, and left out (NaN) by
    compare and the report's hitting panel."""
    from arviz_base import from_dict

    from samplax.compare import _row
    from samplax.reporting.panels import Context, hitting_panel

    rng = np.random.default_rng(0)  # 2 populations x 64 particles, marked as a population run as samplax marks them
    dt = from_dict({"posterior": {"x": rng.normal(size=(2, 64))}, "sample_stats": {"n_grad": np.ones((2, 64))}})
    dt.attrs["population"] = 1
    above = halfspace(0, 1.0, "above")
    with pytest.raises(ValueError, match="population run .* has no hitting time"):
        hit_times_from_draws(dt, above)
    assert np.isnan(_row(dt, None, above, {})["hit_fraction"])
    section = hitting_panel({"smc": dt}, Context(hitting_set=above))
    assert "smc: no hitting time" in section.body


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="max_steps"):
        first_hit_times(_rw_step, Pos(jnp.zeros((3, 1))), halfspace(0, 1.0), 0, jax.random.key(0))
    with pytest.raises(ValueError, match="in_set must return one boolean"):
        first_hit_times(_rw_step, Pos(jnp.zeros((3, 2))), lambda x: x > 1.0, 5, jax.random.key(0))
    with pytest.raises(ValueError, match="side"):
        halfspace(0, 1.0, "left")
    with pytest.raises(ValueError, match="not both"):
        first_hit_times(_rw_step, Pos(jnp.zeros((3, 1))), halfspace(0, 1.0), 5, jax.random.key(0),
                        n_grad=lambda s, i: 1, grads_per_step=1)
    with pytest.raises(ValueError, match="unit"):
        summarize(_exp_result(jax.random.key(0), 10, 1.0, 5.0), unit="seconds")


def test_registered_sampler_step_plugs_in_mala_vs_exact_mfpt():
    """samplax's MALA (blackjax: x + h grad log p + sqrt(2h) xi) on p ~ exp(-U/T) is Langevin in time t = s/T
    of dX = -U' ds + sqrt(2T) dW, so its mean hitting time is T * MFPT(U, T).  With h = 5e-4 (an s-step of
    1e-3) the Metropolis step almost never rejects and the monitoring bias is ~0.8% as in the Langevin
    test; 1000 runs (se ~3%) keep this plug-in check cheap, the 5% accuracy check is the Langevin test's."""
    from samplax import Target, samplers

    U, T, h, n = double_well(), 0.5, 5e-4, 1000
    exact = T * mfpt_langevin(U, -1.0, 1.0, T)
    target = Target.from_logdensity(lambda x: -jnp.sum(U(x)) / T, 1)
    alg = samplers.get("mala").build(target, {"step_size": jnp.asarray(h)})
    init = jax.vmap(lambda x: alg.init(x, jax.random.key(0)))(-jnp.ones((n, 1)))
    res = first_hit_times(alg.step, init, halfspace(0, 1.0), int(40 * exact / h), jax.random.key(5), dt=h,
                          chunk=4000, n_grad=sampler_grads(samplers.get("mala"), {"step_size": jnp.asarray(h)}))
    s = summarize(res, "time", confidence=0.999)
    assert s.mean_kind == "mean"
    print(f"estimate {s.mean:.4f} +- {s.mean_se:.4f} (se), exact {exact:.4f}, ratio {s.mean / exact:.4f}")
    assert s.mean_ci[0] < exact < s.mean_ci[1], (s.mean, s.mean_se, exact)
    assert abs(s.mean / exact - 1) < 0.12
    np.testing.assert_array_equal(res.grads, res.times)


def test_secd_1d_hitting_matches_telegraph_oracle():
    """1D sECD (ECDSep, s = 1, eta = 1) on a double well with V0 = 0.1: speed secd_speed_1d(V, E) vanishes
    at the turning points V = e^E / s = 2 and direction flips come at rate lam, so the mean time from -a
    to +a (50/50 initial direction) is the telegraph oracle.  Flips are exact on the step grid; the
    Stoermer-Verlet error at dt = 2e-3 is O(dt^2), far below the 1.7% standard error of 2000 runs."""
    from samplax.samplers.ecd import ecd_init, ecd_step, loss_potential, secd_speed_1d

    V = lambda x: 4.0 * (x**2 - 1.0) ** 2 / 8 + 0.1
    s, lam, E, n, dt = 1.0, 0.3, float(np.log(2.0)), 2000, 2e-3
    exact = telegraph_mean_hitting_time(secd_speed_1d(V, E, s=s), lam, -1.0, 1.0)
    wg = loss_potential(lambda x: jnp.sum(V(x)), 1.0, 0.0)

    def init_one(d, k):
        st = ecd_init(jnp.array([-1.0]), wg, k, energy=E, s=s)
        return st._replace(momentum=jnp.abs(st.momentum) * d)

    d0 = jnp.where(jnp.arange(n) % 2 == 0, 1.0, -1.0)
    init = jax.vmap(init_one)(d0, jax.random.split(jax.random.key(0), n))
    res = first_hit_times(lambda k, st: ecd_step(k, st, wg, step_size=dt, lam=lam, s=s), init,
                          halfspace(0, 1.0), int(40 * exact / dt), jax.random.key(6), dt=dt)
    s_ = summarize(res, "time", confidence=0.999)
    print(f"estimate {s_.mean:.4f} +- {s_.mean_se:.4f} (se), exact {exact:.4f}, ratio {s_.mean / exact:.4f}")
    assert s_.mean_kind == "mean"
    assert s_.mean_ci[0] < exact < s_.mean_ci[1]
    assert abs(s_.mean / exact - 1) < 0.08


# ------------------------------------------------------------------------ gradients really counted
_CALLS = [0]


def _count():
    _CALLS[0] += 1


@jax.custom_jvp
def _counting_lp(x):
    return -0.5 * jnp.sum(x**2 / jnp.array([1.0, 9.0]))


@_counting_lp.defjvp
def _counting_lp_jvp(primals, tangents):
    (x,), (dx,) = primals, tangents
    jax.debug.callback(_count)  # one host-side tick per gradient the sampler really evaluates
    return _counting_lp(x), jnp.dot(-x / jnp.array([1.0, 9.0]), dx)


def test_nuts_gradients_are_counted_per_step_not_per_constant():
    """NUTS spends a different number of gradients each step; grads must be what the log-density saw.

    One run per call with chunk=1 stops exactly at the hit, so the host counter holds that run's gradients.
    """
    from samplax import Target, samplers

    target = Target.from_logdensity(_counting_lp, 2)
    nuts, params = samplers.get("nuts"), {"step_size": jnp.asarray(0.3), "inverse_mass_matrix": jnp.ones(2)}
    alg = nuts.build(target, params)
    init = jax.vmap(lambda x: alg.init(x, jax.random.key(0)))(jnp.array([[0.0, -6.0]]))
    alone = []
    for seed in range(2):
        _CALLS[0] = 0
        res = first_hit_times(alg.step, init, halfspace(1, 4.0), 300, jax.random.key(seed),
                              n_grad=sampler_grads(nuts, params), chunk=1)
        assert res.hit.all()
        assert res.grads[0] == _CALLS[0] > 0, (res.grads, _CALLS[0])
        alone.append(res)
    per_step = [r.grads[0] / r.times[0] for r in alone]
    assert abs(per_step[0] - per_step[1]) > 0.5, per_step  # the cost per step varies: no constant is right
    # several runs side by side: a run's steps after its hit (while others go on) are not charged to it
    many = jax.tree_util.tree_map(lambda a: jnp.repeat(a, 3, axis=0), init)
    together = first_hit_times(alg.step, many, halfspace(1, 4.0), 300, jax.random.key(0),
                               n_grad=sampler_grads(nuts, params), chunk=50)
    assert together.times[0] == alone[0].times[0] and together.grads[0] == alone[0].grads[0]
    assert not together.hit.all() or np.ptp(together.times) > 0  # the other runs went on past run 0's hit


# ------------------------------------------------------------- constrained values on numpyro targets
def _scale_model():
    import numpyro
    import numpyro.distributions as dist

    numpyro.sample("mu", dist.Normal(0.0, 1.0))
    numpyro.sample("sigma", dist.HalfNormal(2.0))


def test_both_hitting_paths_test_the_constrained_values():
    """{sigma > 2} on a numpyro model: first_hit_times(target=...) and hit_times_from_draws(DataTree) agree
    on the same trajectories, and they test sigma, not the unconstrained log sigma the sampler moves."""
    from samplax import Target
    from samplax.results import to_datatree

    target = Target.from_numpyro(_scale_model)
    i = target.names.index("sigma")
    in_set, n, steps, key = halfspace(i, 2.0), 32, 200, jax.random.key(3)
    init = Pos(jnp.zeros((n, 2)))  # log sigma = 0: sigma = 1, outside the set
    res = first_hit_times(_rw_step, init, in_set, steps, key, target=target, grads_per_step=1)
    raw = first_hit_times(_rw_step, init, in_set, steps, key, grads_per_step=1)  # tests log sigma > 2 instead

    def traj(r):
        k = jax.random.fold_in(key, r)

        def body(s, t):
            s, _ = _rw_step(jax.random.fold_in(k, t), s)
            return s, s.position

        return jax.lax.scan(body, Pos(jnp.zeros(2)), jnp.arange(steps))[1]

    dt = to_datatree(target, np.asarray(jax.vmap(traj)(jnp.arange(n))), {"n_grad": np.ones((n, steps))})
    stored = hit_times_from_draws(dt, in_set, target=target)
    assert 0.2 < res.hit.mean() and raw.hit.mean() < res.hit.mean()
    np.testing.assert_array_equal(stored.times, res.times)
    np.testing.assert_array_equal(stored.hit, res.hit)
    np.testing.assert_array_equal(stored.grads, res.grads)
    np.testing.assert_array_equal(hit_times_from_draws(dt, in_set).times, res.times)  # posterior order = names


def test_restricted_mean_runs_to_the_last_observed_time():
    # a hand-built result with a hit (9) after its only censoring (5): the Kaplan-Meier curve is 1, 3/4, 1/2 and 0
    # from 9 on, so its area is 1 + 1.5 + 3 = 5.5 (it was cut at the censoring time 5, 3.5, "up to the budget")
    res = HittingResult(times=np.array([1.0, 3.0, 9.0, 5.0]), hit=np.array([True, True, True, False]),
                        grads=np.full(4, np.nan), budget=10)
    s = summarize(res)
    assert s.horizon == 9.0 and s.mean == pytest.approx(5.5)
    assert "Kaplan-Meier mean" in s.describe() and "budget" not in s.describe()
    # censored at the last time (as samplax's runs, at the budget): a lower bound up to it
    res = HittingResult(times=np.array([1.0, 3.0, 10.0, 10.0]), hit=np.array([True, True, False, False]),
                        grads=np.full(4, np.nan), budget=10)
    s = summarize(res)
    assert s.horizon == 10.0 and s.mean == pytest.approx(1 + 0.75 * 2 + 0.5 * 7)
    assert "a lower bound" in s.describe()


def test_runs_that_blow_up_are_marked_and_named():
    """Runs whose state went NaN came back as hit=False at the budget, indistinguishable from runs that explored
    the whole budget, and the summary said nothing: they are now marked (`nonfinite`), warned about and named in
    the summary, and still count as never hitting (a dead run cannot hit)."""
    from typing import NamedTuple

    class Pos(NamedTuple):
        position: jnp.ndarray

    h = 0.5

    def step(key, s):  # Euler-Maruyama on U = x^4 / 4: stable from -0.5, blows up from -5 within a few steps
        x = s.position
        return Pos(x - h * x**3 + 0.5 * jnp.sqrt(2 * h) * jax.random.normal(key, x.shape)), None

    x0 = jnp.concatenate([jnp.full((20, 1), -0.5), jnp.full((20, 1), -5.0)])
    with pytest.warns(RuntimeWarning, match="20 of 40 runs reached a NaN/inf position before hitting"):
        res = first_hit_times(step, Pos(x0), ball(jnp.array([1.0]), 0.5), 300, jax.random.PRNGKey(0),
                              grads_per_step=1)
    np.testing.assert_array_equal(res.nonfinite, np.arange(40) >= 20)
    assert res.hit[:20].all() and not res.hit[20:].any()
    assert np.all(res.times[20:] == 300) and np.all(res.grads[20:] == 300)  # censored at the budget, as charged
    assert "20 run(s) went non-finite" in summarize(res).describe()
    # stored draws: a run with a NaN draw and no hit is marked the same way
    draws = np.zeros((3, 5, 1))
    draws[0, 2] = 1.0  # hits
    draws[1, 3] = np.nan  # dies
    with pytest.warns(RuntimeWarning, match="1 of 3 runs reached a NaN/inf position"):
        r2 = hit_times_from_draws(draws, ball(jnp.array([1.0]), 0.1))
    np.testing.assert_array_equal(r2.nonfinite, [False, True, False])


def test_travel_time_through_zeros_and_unreachable_targets():
    """A quadrature node on an isolated zero of v raised ZeroDivisionError (exact 4); an energy ceiling below the
    barrier (speed 0 there) raised it too where the exact time is infinite; a wall at -inf whose travel time
    diverges gave a finite 3.5."""
    from samplax.samplers.ecd import secd_speed_1d

    assert travel_time(lambda x: np.sqrt(np.abs(x)), -1.0, 1.0) == pytest.approx(4.0, rel=1e-9)
    assert travel_time(lambda x: np.sqrt(np.abs(x)), -1.0, 0.9) == pytest.approx(2 + 2 * np.sqrt(0.9), rel=1e-9)
    v = secd_speed_1d(lambda x: (x**2 - 1.0) ** 2 + 0.1, 0.0, eta=1.0, s=1.0)  # ceiling 1 < barrier 1.1
    with pytest.warns(RuntimeWarning, match="speed is not positive"):
        assert telegraph_mean_hitting_time(v, 0.5, -1.0, 1.0) == np.inf
    # a zero where v ~ |x - c| (1 / v not integrable): infinite. quad calls only some of these divergent; the others
    # gave finite numbers with a subdivision-limit warning (|x - 0.123| on [-1, 1]: 48.8; the telegraph mean 854.5)
    for v, a, b in ((lambda x: np.abs(x), 0.0, 1.0), (lambda x: np.abs(x - 0.123), -1.0, 1.0),
                    (lambda x: (x - 0.3) ** 2, -1.0, 1.0)):
        with pytest.warns(RuntimeWarning, match="diverges"):
            assert travel_time(v, a, b) == np.inf
    with pytest.warns(RuntimeWarning, match="diverges"):
        assert telegraph_mean_hitting_time(lambda x: np.abs(x - 0.123), 0.5, -0.9, 0.9, wall=-1.0) == np.inf
    # an integrable square-root zero, and a small minimum that is not a zero, stay finite and exact
    exact = 2 * np.sqrt(1.123) + 2 * np.sqrt(0.877)
    assert travel_time(lambda x: np.sqrt(np.abs(x - 0.123)), -1.0, 1.0) == pytest.approx(exact, rel=1e-8)
    eps = 1e-8  # int_-1^1 dx / (|x| + eps) = 2 log(1 + 1 / eps)
    assert travel_time(lambda x: np.abs(x) + eps, -1.0, 1.0) == pytest.approx(2 * np.log1p(1 / eps), rel=1e-6)
    with pytest.warns(RuntimeWarning, match="diverges"):  # quad's "probably divergent": infinite
        assert travel_time(lambda x: np.ones_like(x), -np.inf, 0.0) == np.inf
    with pytest.raises(ValueError, match="never reflects there"), pytest.warns(RuntimeWarning):
        telegraph_mean_hitting_time(lambda x: np.ones_like(x), 0.5, 0.0, 1.0, wall=-np.inf)
