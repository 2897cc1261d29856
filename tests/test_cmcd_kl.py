"""CMCD with the KL loss: its gradient estimators are unbiased, and training lowers the loss and keeps it down.

The bug this guards against: the control u(x, t, grad log pi~(x)) got its score input detached (as the reference
codes do), so with reparametrised paths the gradient missed d u / d x through the score; harmless at u = 0, it grew
with training until CMCD-KL's loss climbed back (Funnel-10d, K = 32: -8.8 after 100 iterations, -6.2 after 200).
The two estimators now implemented (reparametrised through everything; log-derivative on detached paths) are
independent routes to the same gradient, so they must agree within Monte Carlo error at a control that uses its
score input, and the old (detached-score) gradient must be told apart from them by the same gate.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

import samplax
from samplax.diffusion.learned.cmcd import loss_fn, make_config, new_model, train_controlled

GATE = 4.0  # |difference| < 4 SE


def funnel(d=3):
    """Neal's funnel: v ~ N(0, 1.5^2), x_i | v ~ N(0, e^v), log Z = 0 (strong, position-dependent curvature)."""
    def lp(z):
        v, x = z[0], z[1:]
        return (-0.5 * v**2 / 1.5**2 - 0.5 * jnp.log(2 * jnp.pi * 1.5**2)
                + jnp.sum(-0.5 * x**2 * jnp.exp(-v) - 0.5 * v - 0.5 * jnp.log(2 * jnp.pi)))

    return samplax.Target.from_logdensity(lp, d, name="funnel3", log_z=0.0)


class DetachedScore(eqx.Module):
    """The old control: u(x, t, stop_gradient(score))."""

    inner: eqx.Module

    def __call__(self, x, t, score):
        return self.inner(x, t, jax.lax.stop_gradient(score))


@pytest.fixture(scope="module")
def target():
    return funnel()


def _gradients(model, config, target, keys):
    @jax.jit
    def grad(key):
        g = eqx.filter_grad(lambda m: loss_fn(m, config, target.logdensity, key, config["batch_size"])[0])(model)
        return ravel_pytree(eqx.filter(g, eqx.is_inexact_array))[0]

    return np.stack([np.asarray(grad(k)) for k in keys])


SETTINGS = dict(num_steps=8, batch_size=64, sigma=1.5, sigma_max=1.0, width=16, depth=1, num_freqs=2, learn_prior=True)


@pytest.fixture(scope="module")
def trained(target):
    """A control after brief KL training: it uses its score input."""
    return train_controlled(target, "cmcd", "kl", num_iterations=40, learning_rate=3e-3, lr_schedule="constant",
                            progress=False, **SETTINGS)


def test_reparametrised_kl_gradient_is_the_exact_derivative(target, trained):
    # with the keys fixed the batch loss is a smooth function of the parameters, so its reparametrised gradient must
    # equal the central finite difference along any direction (float64: agreement to ~1e-7 relative); the old
    # gradient, with u's score input detached, misses d u / d x through the score and must not
    config = {**trained.config, "kl_gradient": "reparam"}
    model = trained.model
    params, static = eqx.partition(model, eqx.is_inexact_array)
    flat, unravel = ravel_pytree(params)
    old = eqx.tree_at(lambda m: m.control, model, DetachedScore(model.control))
    key = jax.random.PRNGKey(7)
    loss = jax.jit(lambda f: loss_fn(eqx.combine(unravel(f), static), config, target.logdensity, key,
                                     config["batch_size"])[0])
    g_new, g_old = _gradients(model, config, target, [key])[0], _gradients(old, config, target, [key])[0]
    for seed in range(3):
        v = np.array(jax.random.normal(jax.random.PRNGKey(seed), flat.shape))
        v = v / np.linalg.norm(v)
        eps = 1e-5
        fd = float(loss(flat + eps * v) - loss(flat - eps * v)) / (2 * eps)
        scale = np.linalg.norm(g_new)
        assert abs(g_new @ v - fd) < 1e-6 * scale, (g_new @ v, fd)
        assert abs(g_old @ v - fd) > 1e-3 * scale, (g_old @ v, fd)  # power: the detached-score gradient is off


def test_log_derivative_kl_gradient_agrees_with_the_reparametrised_one(target, trained):
    # two independent routes to the same gradient, compared within Monte Carlo error along the gradient's direction
    # (paired: the same keys draw the same paths); the mean must be resolved to 25% so a 2x error would show
    rep = {**trained.config, "kl_gradient": "reparam"}
    ld = {**trained.config, "kl_gradient": "log_derivative"}
    v = _gradients(trained.model, rep, target, [jax.random.PRNGKey(1000 + i) for i in range(8)]).mean(0)
    v = v / np.linalg.norm(v)
    keys = [jax.random.PRNGKey(i) for i in range(64)]
    p_rep = _gradients(trained.model, rep, target, keys) @ v
    p_ld = _gradients(trained.model, ld, target, keys) @ v
    d = p_ld - p_rep
    se = d.std(ddof=1) / np.sqrt(len(d))
    assert abs(d.mean()) < GATE * se, (p_ld.mean(), p_rep.mean(), se)
    assert se < 0.25 * abs(p_rep.mean()), (p_rep.mean(), se)


def test_cmcd_kl_training_lowers_the_loss_and_keeps_it_down(target):
    s = train_controlled(target, "cmcd", "kl", num_steps=16, batch_size=64, num_iterations=200, sigma=1.5,
                         sigma_max=1.0, width=16, depth=2, num_freqs=4, learning_rate=3e-3, progress=False)
    w = s.history.reshape(10, 20)  # loss = -mean log w per iteration; -log Z = 0 is its floor
    h, se = w.mean(1), w.std(1, ddof=1) / np.sqrt(20)
    assert h[0] - h[-1] > GATE * np.hypot(se[0], se[-1]), f"loss did not fall: windows {np.round(h, 3)}"
    best = np.argmin(h)
    assert h[-1] - h[best] < GATE * np.hypot(se[best], se[-1]), f"loss rose again: windows {np.round(h, 3)}"
    assert h[-1] > -GATE * se[-1]  # -E[log w] >= -log Z = 0


def test_kl_gradient_is_checked_by_name(target):
    with pytest.raises(ValueError, match="kl_gradient must be one of"):
        make_config(target, "cmcd", "kl", kl_gradient="exact")
    with pytest.raises(ValueError, match="kl_gradient='log_derivative' is implemented for kind='cmcd' only"):
        make_config(target, "scld", "kl", kl_gradient="log_derivative")
    with pytest.raises(ValueError, match="applies to loss='kl' only"):
        make_config(target, "cmcd", "log_variance", kl_gradient="reparam")
