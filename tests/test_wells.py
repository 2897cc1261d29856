"""Well landscapes: minima, barriers and exact truth against closed forms and iid draws."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import samplax.models as models
from samplax.models import wells


def test_double_well_closed_form():
    land = wells.double_well(2.5, omega=1.3, V0=0.7)
    a = np.sqrt(8 * 2.5) / 1.3
    np.testing.assert_allclose(np.sort(land.minima[:, 0]), [-a, a], rtol=1e-8)
    np.testing.assert_allclose(land.barriers, [2.5, 2.5], rtol=1e-8)  # beta = a^2 omega^2 / 8
    np.testing.assert_allclose(land.minimum_values, [0.7, 0.7], atol=1e-12)
    curvature = jax.hessian(land.loss)(jnp.array([a]))[0, 0]
    np.testing.assert_allclose(curvature, 1.3**2, rtol=1e-8)


@pytest.mark.parametrize("land", [wells.tilted_double_well(3.0, 0.3), wells.double_well(2.0, dim=3, tilt=0.1),
                                  wells.multi_well(1.5, tilt=0.05), wells.rastrigin(3)],
                         ids=["tilted", "nd", "multi", "rastrigin"])
def test_minima_are_stationary_and_barriers_positive(land):
    grad = jax.vmap(jax.grad(land.loss))(jnp.asarray(land.minima))
    assert np.max(np.abs(grad)) < 1e-6
    assert np.all(land.barriers > 0)
    assert land.loss(jnp.asarray(land.global_minimum)) == pytest.approx(land.global_minimum_value)
    assert land.global_minimum_value <= np.min(land.minimum_values)


def test_tilted_well_has_one_global_minimum():
    land = wells.tilted_double_well(3.0, 0.3)
    assert land.minima.shape[0] == 2
    assert land.global_minimum[0] < 0 < land.local_minimum[0]
    # escaping the local (higher) well is easier than the untilted barrier, the global one harder
    assert land.barrier < 3.0 < land.barriers[np.argmin(land.minimum_values)]


def test_multi_well_has_three_wells_with_the_given_barrier():
    land = wells.multi_well(1.5)
    np.testing.assert_allclose(np.sort(land.minima[:, 0]), [-1, 0, 1], atol=1e-7)
    np.testing.assert_allclose(land.barriers, [1.5, 1.5, 1.5], rtol=1e-7)


@pytest.mark.parametrize("name,kw", [("double_well", {"barrier": 2.0}), ("tilted_double_well", {}),
                                      ("double_well_nd", {"dim": 3}), ("multi_well", {"temperature": 0.5}),
                                      ("rastrigin", {"dim": 2})])
def test_target_truth_matches_iid_draws(name, kw):
    target = models.get(name, **kw)
    x = np.asarray(target.sample(jax.random.PRNGKey(3), 100_000))
    se = x.std(0) / np.sqrt(x.shape[0])
    assert np.all(np.abs(x.mean(0) - np.asarray(target.mean)) < 5 * se)
    var_se = np.sqrt(np.var((x - x.mean(0)) ** 2, axis=0) / x.shape[0])
    assert np.all(np.abs(x.var(0) - np.diag(np.asarray(target.cov))) < 5 * var_se)
    # log_z: exp(logdensity) integrates to exp(log_z) (checked in 1D by the trapezoid rule)
    if target.dim == 1:
        g = np.linspace(-15, 15, 200001)
        lp = np.asarray(jax.vmap(target.logdensity)(jnp.asarray(g)[:, None]))
        np.testing.assert_allclose(np.log(np.trapezoid(np.exp(lp), g)), target.log_z, rtol=1e-6)
        # the stated mean and variance by the same quadrature, independent of the iid sampler
        p = np.exp(lp - target.log_z)
        mean = np.trapezoid(g * p, g)
        np.testing.assert_allclose(mean, np.asarray(target.mean)[0], atol=1e-6 * np.sqrt(target.cov[0, 0]))
        np.testing.assert_allclose(np.trapezoid((g - mean) ** 2 * p, g), target.cov[0, 0], rtol=1e-6)


def test_nd_well_quadratic_directions_are_gaussian():
    target = wells.double_well(2.0, dim=3, curvature=4.0).target(0.5)
    np.testing.assert_allclose(np.diag(np.asarray(target.cov))[1:], 0.5 / 4.0, rtol=1e-6)
    x = jnp.array([0.3, -0.2, 0.1])
    assert float(target.logdensity(x)) == pytest.approx(-float(wells.double_well(2.0, dim=3, curvature=4.0).loss(x)) / 0.5)


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="barrier"):
        wells.double_well(-1.0)
    with pytest.raises(ValueError, match="temperature"):
        wells.double_well(1.0).target(0.0)
    with pytest.raises(ValueError, match="dim"):
        wells.rastrigin(0)
