"""Stochastic ECD against exact answers: target moments, the closed-form ECDSep law, noise scaling, order."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.optimize import brentq

import samplax
from moments import assert_mean_within_mcse, assert_moments
from samplax import Target
from samplax.diagnostics.hitting import first_hit_times, halfspace
from samplax.diagnostics.hitting_theory import telegraph_mean_hitting_time
from samplax.models import wells
from samplax.samplers import ecd
from test_samplers_hmc import energy_error_bias_bound  # the law measured for mclmc and secd alike

EULER_GAMMA = 0.5772156649015329


def _ill_conditioned(dim=6, kappa=100.0, seed=0):
    """Rotated Gaussian, eigenvalues log-spaced over a factor kappa, nonzero mean."""
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(dim, dim)))
    cov = q @ np.diag(np.geomspace(1.0 / np.sqrt(kappa), np.sqrt(kappa), dim)) @ q.T
    prec, mean = jnp.asarray(np.linalg.inv(cov)), jnp.arange(dim) * 0.5
    return Target.from_logdensity(lambda x: -0.5 * (x - mean) @ prec @ (x - mean), dim, mean=mean,
                                  cov=jnp.asarray(cov), name="ill_gaussian")


def _gumbel(loc, scale):
    loc, scale = jnp.asarray(loc, float), jnp.asarray(scale, float)

    def logdensity(x):
        z = (x - loc) / scale
        return -jnp.sum(z + jnp.exp(-z))

    return Target.from_logdensity(logdensity, scale.size, mean=loc + EULER_GAMMA * scale,
                                  cov=jnp.diag(np.pi**2 / 6 * scale**2), name="gumbel")


TARGETS = {
    "gaussian": lambda: Target.from_logdensity(lambda x: -0.5 * jnp.sum((x - 1.0) ** 2), 4,
                                               mean=jnp.ones(4), cov=jnp.eye(4)),
    "ill_conditioned": _ill_conditioned,
    "gumbel": lambda: _gumbel([1.0, -2.0, 0.0], [0.5, 1.0, 2.0]),
}


# sized like mclmc's runs in test_samplers_hmc (bulk ESS per draw ~0.4 on Gaussians, ~0.16 on the Gumbel) so that
# moments.py's power checks on squared deviations hold
DRAWS = {"gaussian": 60000, "ill_conditioned": 40000, "gumbel": 150000}


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_secd_samples_target_means(name):
    target = TARGETS[name]()
    dt = samplax.sample(target, "secd", num_chains=4, num_warmup=1000, num_samples=DRAWS[name] // 4, seed=2,
                        progress=False)
    x = np.asarray(dt["posterior"]["x"])
    assert_mean_within_mcse(x, target.mean, f"secd on {name}")
    if name == "gaussian":
        # unadjusted: at the tuned energy error (5e-4 per dim) variances carry the bias of that target; with that
        # allowance a variance check that can see a 10% error is affordable on the isotropic Gaussian only
        assert_moments(x, np.asarray(target.mean), np.diag(np.asarray(target.cov)),
                       var_rel_bias=energy_error_bias_bound(5e-4), what=f"secd on {name}")
    assert int(np.asarray(dt["sample_stats"]["diverging"]).sum()) == 0


def test_secd_rejects_bad_settings():
    with pytest.raises(ValueError, match="step_size"):
        samplax.samplers.get("secd", step_size=-1.0)
    with pytest.raises(ValueError, match="integrator"):
        ecd.build_kernel("rk4")
    with pytest.raises(ValueError, match="dim >= 2"):
        ecd.secd_init(jnp.zeros(1), lambda x: -jnp.sum(x**2), jax.random.PRNGKey(0))


# ------------------------------------------------------------- ECDSep's closed-form law at s = 0, d = 3
def test_ecdsep_law_is_closed_form_at_s0():
    # F = 4 + sum cos(q_i) on the 3-torus (periodic, so speeds stay bounded), F0 = 0, eta = 2:
    # the time average of the physical-clock dynamics must be (F - F0)^(-eta d / 2) = F^-3.
    eta, d = 2.0, 3
    F = lambda q: 4.0 + jnp.sum(jnp.cos(q))  # noqa: E731
    wg = ecd.loss_potential(F, eta, 0.0)
    g = np.linspace(0, 2 * np.pi, 64, endpoint=False)
    Q = np.stack(np.meshgrid(g, g, g, indexing="ij"))
    Fg = 4.0 + np.cos(Q).sum(0)
    rho = Fg ** (-eta * d / 2)
    exact_logF = float((np.log(Fg) * rho).sum() / rho.sum())
    uniform_logF = float(np.log(Fg).mean())  # what a wrong (e.g. uniform) law would give

    n_runs, n_steps, burn = 128, 32000, 1000
    keys = jax.random.split(jax.random.PRNGKey(4), n_runs)

    def run(key):
        k0, k1 = jax.random.split(key)
        x0 = jax.random.uniform(k0, (d,), maxval=2 * np.pi)
        st = ecd.ecd_init(x0, wg, k0, speed=1.0)

        def body(st, k):
            st, info = ecd.ecd_step(k, st, wg, step_size=0.05, lam=0.5)
            return st, st.potential / eta

        _, logF = jax.lax.scan(body, st, jax.random.split(k1, n_steps))
        return logF[burn:]

    logF = np.asarray(jax.jit(jax.vmap(run))(keys))
    assert_mean_within_mcse(logF[:, :, None], [exact_logF], "E[log F] under ECDSep, s=0")
    assert abs(uniform_logF - exact_logF) > 0.05  # the check can tell the law apart from a wrong one


# ------------------------------------------------------------------ noise scaling: the 1D telegraph law
def _telegraph_setup():
    land = wells.double_well(1.0)
    a, eta, s = land.info["a"], 2.0, 0.05
    V = lambda th: land.info["omega"] ** 2 * (th**2 - a**2) ** 2 / (8 * a**2) + land.info["V0"]  # noqa: E731
    E = float(ecd.energy_for_speed(eta * np.log(V(-a)), 1.0, s))
    return land, a, eta, s, E, V


def _mean_hit(noise_fn, dt, lam, n_runs=1500, seed=0):
    land, a, eta, s, E, V = _telegraph_setup()
    wg = ecd.loss_potential(land.loss, eta, 0.0)
    st0 = ecd.ecd_init(jnp.array([-a]), wg, jax.random.PRNGKey(0), energy=E, s=s)
    signs = jnp.where(jnp.arange(n_runs) % 2 == 0, 1.0, -1.0)  # half start towards the target: the 50/50 oracle
    init = jax.vmap(lambda sg: st0._replace(momentum=sg * jnp.abs(st0.momentum)))(signs)
    step = lambda k, st: ecd.ecd_step(k, st, wg, step_size=dt, lam=lam, s=s, noise_fn=noise_fn)  # noqa: E731
    res = first_hit_times(step, init, halfspace(0, a), max_steps=int(600 / dt), key=jax.random.PRNGKey(seed))
    assert res.hit.all()
    t = res.times * dt
    return t.mean(), t.std() / np.sqrt(n_runs)


def test_noise_scaling_gives_the_telegraph_hitting_time():
    land, a, eta, s, E, V = _telegraph_setup()
    lam = 0.25
    v = ecd.secd_speed_1d(V, E, eta=eta, s=s)
    exact = telegraph_mean_hitting_time(v, lam, -a, a)
    for dt in (0.04, 0.01):
        mean, se = _mean_hit(ecd.noise_cosine, dt, lam)
        assert abs(mean - exact) < 5 * se, f"dt={dt}: simulated {mean:.3f} +- {se:.3f}, exact {exact:.3f}"
    # a per-step rotation that does not shrink like sqrt(dt) (here: the dt=0.04 angle reused at dt=0.01)
    # is a 4x faster flip rate: a measurably different process
    wrong = lambda lam_, dt_: ecd.noise_cosine(lam_, 0.04)  # noqa: E731
    mean, se = _mean_hit(wrong, 0.01, lam)
    assert abs(mean - exact) > 5 * se, f"wrongly scaled noise not detected: {mean:.3f} +- {se:.3f} vs {exact:.3f}"


def test_speed_law_matches_the_dynamics():
    land, a, eta, s, E, V = _telegraph_setup()
    wg = ecd.loss_potential(land.loss, eta, 0.0)
    st = ecd.ecd_init(jnp.array([-a]), wg, jax.random.PRNGKey(1), energy=E, s=s)

    def body(st, k):
        st, info = ecd.ecd_step(k, st, wg, step_size=0.002, lam=0.5, s=s)
        return st, (st.position[0], info.speed)

    _, (th, sp) = jax.lax.scan(body, st, jax.random.split(jax.random.PRNGKey(2), 5000))
    v = ecd.secd_speed_1d(V, E, eta=eta, s=s)
    th = np.asarray(th)
    np.testing.assert_allclose(np.asarray(sp), v(th), rtol=1e-6, atol=1e-9)
    # the measured displacement per step, away from flips and turning points, moves at that speed
    mid, moved = 0.5 * (th[1:] + th[:-1]), np.abs(np.diff(th)) / 0.002
    keep = v(mid) > 0.2
    ratio = moved[keep] / v(mid[keep])
    assert np.median(np.abs(ratio - 1)) < 1e-3, np.quantile(ratio, [0.05, 0.5, 0.95])
    # turning point where (F - F0)^eta = e^E / s: the speed vanishes there and the run stays inside
    wall = brentq(lambda t: eta * np.log(float(land.loss(jnp.array([t])))) - (E - np.log(s)), -10 * a, -a)
    assert abs(float(v(wall))) < 1e-4 and float(np.min(th)) > wall - 1e-3


# ------------------------------------------------------------------------- energy error order
def _slope(eps, err):
    return np.polyfit(np.log(eps), np.log(err), 1)[0]


@pytest.mark.parametrize("integrator", ["leapfrog", "mclachlan"])
def test_secd_energy_error_is_second_order(integrator):
    target = _ill_conditioned(dim=4, kappa=10.0)
    kernel = ecd.build_kernel(integrator)
    st0 = ecd.secd_init(target.mean + 0.7, target.logdensity, jax.random.PRNGKey(0))
    eps = np.array([0.08, 0.04, 0.02, 0.01])
    errs = []
    for e in eps:
        def body(st, k, e=e):
            st, info = kernel(k, st, target.logdensity, jnp.ones(4), jnp.inf, e)
            return st, info.energy_change

        _, dE = jax.lax.scan(body, st0, jax.random.split(jax.random.PRNGKey(1), int(round(2.0 / e))))
        errs.append(np.max(np.abs(np.cumsum(np.asarray(dE)))))
    slope = _slope(eps, errs)
    assert 1.8 < slope < 2.3, f"{integrator}: energy error slope {slope:.2f}, errors {errs}"


def test_physical_clock_energy_error_is_second_order():
    F = lambda q: 1.0 + 0.5 * jnp.sum(jnp.array([1.0, 3.0, 0.5]) * q**2)  # noqa: E731
    wg = ecd.loss_potential(F, 2.0, 0.0)
    st0 = ecd.ecd_init(jnp.array([0.8, -0.3, 0.5]), wg, jax.random.PRNGKey(0), speed=1.0, s=1.0)
    eps = np.array([0.04, 0.02, 0.01, 0.005])
    errs = []
    for e in eps:
        def body(st, k, e=e):
            st, info = ecd.ecd_step(k, st, wg, step_size=e, lam=0.0, s=1.0, project=False)
            return st, info.energy_change

        _, dE = jax.lax.scan(body, st0, jax.random.split(jax.random.PRNGKey(1), int(round(2.0 / e))))
        errs.append(np.max(np.abs(np.asarray(dE))))  # unprojected: dE is H(t) - E directly
    slope = _slope(eps, errs)
    assert 1.8 < slope < 2.3, f"physical clock: energy error slope {slope:.2f}, errors {errs}"


@pytest.mark.parametrize("speed,s", [(2.0, 1.0), (10.0, 1.0), (0.0, 1.0), (-1.0, 1.0), (5.0, 0.05), (0.0, 0.0),
                                     (-1.0, 0.0), (float("nan"), 0.0), (float("inf"), 0.0)])
def test_an_impossible_start_speed_is_refused(speed, s):
    """ECDSep's speed 2|p|/(s + |p|^2) is at most 1/sqrt(s): a faster speed started at rest, speed 0 gave an infinite
    energy and a negative speed was taken as its absolute value, all silently."""
    wg = ecd.loss_potential(lambda x: jnp.sum((x**2 - 1) ** 2) + 0.1, 1.0, 0.0)
    with pytest.raises(ValueError, match=r"speed must be .*got speed="):
        ecd.ecd_init(jnp.array([-1.0]), wg, jax.random.PRNGKey(0), speed=speed, s=s)
    with pytest.raises(ValueError, match=r"speed must be"):
        ecd.energy_for_speed(0.0, speed, s)


@pytest.mark.parametrize("speed,s", [(0.5, 1.0), (1.0, 1.0), (1 / np.sqrt(0.05), 0.05), (7.0, 0.0)])
def test_a_possible_start_speed_is_the_start_speed(speed, s):
    wg = ecd.loss_potential(lambda x: jnp.sum((x**2 - 1) ** 2) + 0.1, 1.0, 0.0)
    st = ecd.ecd_init(jnp.array([-1.0, 0.5]), wg, jax.random.PRNGKey(0), speed=speed, s=s)
    v = np.linalg.norm(np.asarray(ecd.velocity(st.momentum, s)))
    np.testing.assert_allclose(v, speed, rtol=1e-5)
