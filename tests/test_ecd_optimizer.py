"""ECD optimiser: escapes a local well where gradient descent cannot; energy bounds; optax contract."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from samplax.models import wells
from samplax.optimizers import ecd, minimize

LAND = wells.tilted_double_well(3.0, 0.3)
F0 = LAND.global_minimum_value - 1.0
# "reached the global minimum" = the loss fell below the local minimum's value by half the gap
LEVEL = 0.5 * (LAND.global_minimum_value + LAND.minimum_values.max())
STEPS, RUNS = 2000, 100


def _starts(key):
    """Starts spread inside the local well (within 0.3 of its minimum)."""
    return jnp.asarray(LAND.local_minimum) + jax.random.uniform(key, (RUNS, 1), minval=-0.3, maxval=0.3)


def test_ecd_reaches_global_minimum_where_gd_never_does():
    starts = _starts(jax.random.PRNGKey(0))
    keys = jax.random.split(jax.random.PRNGKey(1), RUNS)
    run = jax.jit(jax.vmap(lambda x0, k: minimize(LAND.loss, x0, steps=STEPS, key=k, learning_rate=0.05, F0=F0,
                                                  eta=1.0, s=1.0, delta_energy=1.0, lam=0.1)))
    res = run(starts, keys)
    frac = float(np.mean(np.asarray(res.best_loss) < LEVEL))
    assert frac >= 0.9, f"ECD reached the global minimum in only {frac:.0%} of runs"
    assert np.all(np.asarray(res.n_grad) == STEPS)  # one gradient per step; the final loss has none

    sgd = optax.sgd(0.05)
    grad = jax.grad(LAND.loss)

    def gd(x0):
        def body(carry, _):
            x, st, best = carry
            upd, st = sgd.update(grad(x), st)
            x = optax.apply_updates(x, upd)
            return (x, st, jnp.minimum(best, LAND.loss(x))), None

        (_, _, best), _ = jax.lax.scan(body, (x0, sgd.init(x0), LAND.loss(x0)), None, length=STEPS)
        return best

    gd_best = np.asarray(jax.jit(jax.vmap(gd))(starts))
    assert np.all(gd_best > LEVEL), "gradient descent left the local well: the test budget is not discriminating"


def test_energy_ceiling_bounds_the_loss():
    # with s > 0 the run stays in {F <= F0 + (F(x0) - F0) (1 + delta_energy / s)^(1/eta)} (up to O(lr) steps)
    x0 = jnp.asarray(LAND.local_minimum) + 0.1
    eta, s, de = 2.0, 1.0, 0.5
    res = minimize(LAND.loss, x0, steps=3000, key=jax.random.PRNGKey(2), learning_rate=0.02, F0=F0, eta=eta, s=s,
                   delta_energy=de, lam=0.5)
    ceiling = F0 + (float(LAND.loss(x0)) - F0) * (1 + de / s) ** (1 / eta)
    losses = np.asarray(res.losses)
    assert losses.max() <= ceiling + 1e-2
    assert losses.max() > ceiling - 0.2  # it does reach the walls (bounces), not just sit still


def test_optax_contract_and_errors():
    opt = ecd(0.1, F0=-1.0)
    params = {"w": jnp.ones(2), "b": jnp.zeros(())}
    loss = lambda p: jnp.sum(p["w"] ** 2) + p["b"] ** 2  # noqa: E731
    state = opt.init(params)
    with pytest.raises(ValueError, match="value"):
        opt.update(jax.grad(loss)(params), state, params)
    upd, state = jax.jit(lambda g, st, p, v: opt.update(g, st, p, value=v))(jax.grad(loss)(params), state, params,
                                                                              loss(params))
    assert jax.tree.structure(upd) == jax.tree.structure(params)
    with pytest.raises(ValueError, match="F0"):
        minimize(loss, params, steps=10, F0=5.0)
    with pytest.raises(ValueError, match="learning_rate"):
        ecd(0.0)
    with pytest.raises(ValueError, match="steps"):
        minimize(loss, params, steps=0)


def test_update_is_the_ecdsep_step_computed_by_hand():
    # two updates at lam = 0 (no rotation), recomputed here from the ECDSep formulas in numpy:
    # project p onto |p|^2 = e^E (F - F0)^-eta - s, kick p -= lr eta grad F / (F - F0), move lr 2 p / (s + |p|^2)
    lr, eta, F0, s, de = 0.1, 1.5, -0.5, 0.7, 0.8
    F = lambda x: jnp.sum(x**2) + 0.3 * x[0]  # noqa: E731
    opt = ecd(lr, eta=eta, F0=F0, s=s, delta_energy=de, lam=0.0)
    x = jnp.array([0.4, -1.1, 0.25])
    state = opt.init(x)
    xs = [np.asarray(x)]
    for _ in range(2):
        upd, state = opt.update(jax.grad(F)(x), state, x, value=F(x))
        x = optax.apply_updates(x, upd)
        xs.append(np.asarray(x))

    def f(x):
        return float(np.sum(x**2) + 0.3 * x[0])

    def g(x):
        return 2 * x + np.array([0.3, 0.0, 0.0])

    x0 = xs[0]
    E = eta * np.log(f(x0) - F0) + np.log(s + de)
    p = -g(x0) / np.linalg.norm(g(x0)) * np.sqrt(de)  # first step: along -grad F with |p|^2 = delta_energy
    x = x0
    for k in range(2):
        V = f(x) - F0
        p = p * np.sqrt((np.exp(E) * V**-eta - s) / np.sum(p**2))
        p = p - lr * eta * g(x) / V
        x = x + lr * 2 * p / (s + np.sum(p**2))
        np.testing.assert_allclose(xs[k + 1], x, rtol=1e-12, atol=1e-14)
    assert float(state.energy) == pytest.approx(E, rel=1e-14)


def test_minimize_counts_the_gradients_it_evaluates():
    calls = []

    @jax.custom_jvp
    def loss(x):
        return jnp.sum((x - 1.0) ** 2) + 1.0

    @loss.defjvp
    def loss_jvp(primals, tangents):
        (x,), (dx,) = primals, tangents
        jax.debug.callback(lambda: calls.append(1))
        return jax.jvp(lambda y: jnp.sum((y - 1.0) ** 2) + 1.0, (x,), (dx,))

    res = minimize(loss, jnp.zeros(2), steps=30, learning_rate=0.05, F0=0.0)
    jax.block_until_ready(res.best_loss)
    assert res.n_grad == len(calls) == 30


def test_a_loss_below_F0_is_said_not_run_through():
    """F0 must lie below the loss: a loss of minimum -10 with the default F0 = 0 ran into NaN dynamics and returned a
    wrong best point without a word."""
    import warnings

    from samplax.optimizers import minimize

    with pytest.warns(RuntimeWarning, match=r"the loss was not above F0=0"):
        minimize(lambda x: jnp.sum(x ** 2) - 10.0, jnp.array([5.0, 5.0]), steps=3000)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the same loss with F0 below its minimum: no warning
        r = minimize(lambda x: jnp.sum(x ** 2) - 10.0, jnp.array([5.0, 5.0]), steps=3000, F0=-11.0)
    assert -10.0 <= float(r.best_loss) < 40.0 - 10.0  # finite, at or above the minimum, below the start


def test_a_start_at_a_stationary_point_moves():
    """-g/|g| is 0 where the gradient is 0: the first kick lost its energy and x never left the origin (a saddle
    here, loss 2; the minima at (+-1, +-1))."""
    from samplax.optimizers import minimize

    r = minimize(lambda x: jnp.sum((x ** 2 - 1.0) ** 2), jnp.zeros(2), steps=3000, lam=0.1)
    assert float(jnp.max(jnp.abs(r.trajectory))) > 0.5 and float(r.best_loss) < 1e-3


def test_optimisers_take_a_float32_start_and_typed_keys():
    import jax

    from samplax.optimizers import minimize
    from samplax.optimizers.annealing import minimize as anneal

    f = lambda x: jnp.sum((x - 1.0) ** 2)  # noqa: E731
    r = minimize(f, jnp.zeros(2, jnp.float32), steps=200)  # the state's energy was float64 under x64
    assert r.best_x.dtype == jnp.float32
    a = anneal(f, jnp.zeros(2), steps=200, key=jax.random.key(1))  # a typed key was reshaped into a raw one
    assert float(a.best_loss) < float(f(jnp.zeros(2)))
    with pytest.raises(ValueError, match="x0 must hold floating-point values"):
        minimize(f, jnp.zeros(2, jnp.int32), steps=10)
