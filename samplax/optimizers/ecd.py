"""ECD optimiser: ECDSep (De Luca, Gatti, Silverstein 2023, arXiv 2306.00352) with energy-preserving noise, as optax.

The loss F is a potential w = eta log(F - F0) for the Hamiltonian H = w + log(s + |p|^2) (see
`samplax.samplers.ecd`, whose `project_to_shell` and `velocity` it uses).  Each update is symplectic Euler as in the authors' reference code: p is first
rescaled back onto the energy shell |p|^2 = e^E / (F - F0)^eta - s (energy conservation; with s > 0 this
confines the run to {F <= F0 + (e^E/s)^(1/eta)}, the "bounces" off its walls), then kicked by
-lr eta grad F / (F - F0), and the parameters move by lr 2 p / (s + |p|^2).  Finally the direction of p is
rotated at fixed |p| by arccos(exp(-2 lam lr)) (stochastic ECD; the same rule as the sampler), which keeps
the energy and makes the motion chaotic.  The initial energy is E = w(x0) + log(s + delta_energy), with p
along -grad F, so delta_energy is the kinetic budget above the starting loss.
"""

from __future__ import annotations

import math
import warnings
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.flatten_util import ravel_pytree

from samplax import checks
from samplax.samplers.ecd import noise_cosine, project_to_shell, rotate_direction, velocity


class ECDOptState(NamedTuple):
    momentum: optax.Params
    energy: jax.Array
    count: jax.Array
    key: jax.Array


def ecd(learning_rate: float, *, eta: float = 1.0, F0: float = 0.0, s: float = 1.0, delta_energy: float = 1.0,
        lam: float = 1.0, key: jax.Array | int = 0) -> optax.GradientTransformationExtraArgs:
    """ECDSep with bounces and direction noise; call `update(grads, state, params, value=loss)`.

    F0 must lie below every loss value met (below the minimum); eta > 0 concentrates the time-averaged
    law (F - F0)^(-eta d / 2) near low loss; lam is the direction-noise rate per unit of time lr * steps.
    """
    for name, v in (("learning_rate", learning_rate), ("eta", eta)):
        if not isinstance(v, jax.core.Tracer):
            checks.positive(name, v)
    for name, v in (("F0", F0), ("s", s), ("delta_energy", delta_energy), ("lam", lam)):
        if not isinstance(v, jax.core.Tracer):  # NaN / inf ran and returned x0 (every loss after it NaN)
            checks.finite(name, v)
    if s < 0 or delta_energy < 0 or lam < 0:
        raise ValueError(f"s, delta_energy and lam must be >= 0, got s={s}, delta_energy={delta_energy}, lam={lam}")
    if s == 0 and delta_energy == 0:
        raise ValueError("s = 0 needs delta_energy > 0 (the energy shell |p|^2 = e^E V^-eta is then empty)")
    key = jax.random.PRNGKey(key) if isinstance(key, int) else key

    def init(params):
        dtype = ravel_pytree(params)[0].dtype  # the energy in the params' width (float32 x0 under x64 too)
        return ECDOptState(jax.tree.map(jnp.zeros_like, params), jnp.asarray(jnp.nan, dtype), jnp.asarray(0),
                           jnp.asarray(key))

    def update(grads, state, params=None, *, value=None, **extra):
        del params, extra
        if value is None:
            raise ValueError("ECD needs the loss: call update(grads, state, params, value=loss)")
        g, unravel = ravel_pytree(grads)
        p, _ = ravel_pytree(state.momentum)
        V = jnp.asarray(value) - F0
        w = eta * jnp.log(V)
        first = state.count == 0
        gnorm = jnp.sqrt(jnp.sum(g * g))
        k_dir = jax.random.fold_in(state.key, 2**30)  # the step's stream below is unchanged
        # the first kick: down the gradient, or in a random direction at a stationary point (a start at a local
        # minimum or saddle: -g / |g| was 0 there, the kinetic budget delta_energy was lost and x never moved)
        rand = jax.random.normal(k_dir, g.shape, g.dtype)
        direction = jnp.where(gnorm > 0, -g / jnp.where(gnorm > 0, gnorm, 1.0),
                              rand / jnp.sqrt(jnp.sum(rand * rand)))
        p = jnp.where(first, direction * jnp.sqrt(delta_energy), p)
        energy = jnp.where(first, w + jnp.log(s + delta_energy), state.energy)
        p = project_to_shell(p, energy, w, s)
        p = p - learning_rate * eta * g / V  # kick by -grad w, w = eta log(F - F0)
        step = learning_rate * velocity(p, s)
        key, sub = jax.random.split(state.key)
        p = rotate_direction(sub, p, noise_cosine(lam, learning_rate))
        return unravel(step), ECDOptState(unravel(p), energy, state.count + 1, key)

    return optax.GradientTransformationExtraArgs(init, update)


class MinimizeResult(NamedTuple):
    trajectory: jax.Array  # positions every `thin` steps, shape (steps // thin, ...) per leaf
    losses: jax.Array  # loss at every step (before the update)
    best_x: optax.Params
    best_loss: jax.Array
    n_grad: int  # gradient evaluations: one per step (the last point's loss is evaluated without its gradient)


def minimize(loss: Callable, x0, *, steps: int, key: jax.Array | int = 0, learning_rate: float = 0.05,
             thin: int = 1, **hyper) -> MinimizeResult:
    """Run the ECD optimiser for `steps` gradient evaluations; keeps the best point seen.

    hyper: eta, F0, s, delta_energy, lam (see `ecd`).  Jittable and vmappable over x0 / key.
    """
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
    if not isinstance(thin, int) or thin < 1 or steps % thin:
        raise ValueError(f"thin must be an integer >= 1 dividing steps={steps}, got {thin!r}")
    F0 = hyper.get("F0", 0.0)
    if not jnp.issubdtype(ravel_pytree(x0)[0].dtype, jnp.floating):
        raise ValueError(f"x0 must hold floating-point values, got dtype {ravel_pytree(x0)[0].dtype} (e.g. pass 1.0, "
                         "not 1)")
    f0 = loss(x0)
    if not isinstance(f0, jax.core.Tracer) and not math.isfinite(float(f0)):
        raise ValueError(f"loss(x0) = {float(f0)}: start where the loss is finite")
    if not isinstance(f0, jax.core.Tracer) and not float(f0) > F0:
        raise ValueError(f"F0={F0} must lie below the loss; loss(x0) = {float(f0)}: lower F0")
    opt = ecd(learning_rate, key=key, **hyper)
    vg = jax.value_and_grad(loss)

    def one(carry, _):
        x, st, bx, bf = carry
        f, g = vg(x)
        better = f < bf
        bx = jax.tree.map(lambda a, b: jnp.where(better, a, b), x, bx)
        bf = jnp.where(better, f, bf)
        upd, st = opt.update(g, st, x, value=f)
        return (optax.apply_updates(x, upd), st, bx, bf), f

    def block(carry, _):
        carry, fs = jax.lax.scan(one, carry, None, length=thin)
        return carry, (carry[0], fs)

    carry = (x0, opt.init(x0), x0, jnp.asarray(jnp.inf))
    (x, _, bx, bf), (traj, fs) = jax.lax.scan(block, carry, None, length=steps // thin)
    f_last = loss(x)
    better = f_last < bf
    bx = jax.tree.map(lambda a, b: jnp.where(better, a, b), x, bx)
    bf = jnp.where(better, f_last, bf)
    fs = jnp.reshape(fs, (-1,))
    if not isinstance(fs, jax.core.Tracer):  # eager: a loss at or below F0 broke the dynamics from there on
        bad = np.flatnonzero(~(np.asarray(fs) > F0))
        if bad.size:
            warnings.warn(f"ECD minimize: the loss was not above F0={F0} at {bad.size} of {steps} steps (first at "
                          f"step {int(bad[0])}: {float(fs[bad[0]]):.4g}); ECD's dynamics take log(loss - F0), so "
                          "the run is wrong from there on (NaN steps, a wrong best point). Set F0 below the "
                          "minimum of the loss", RuntimeWarning, stacklevel=2)
    return MinimizeResult(traj, fs, bx, bf, steps)
