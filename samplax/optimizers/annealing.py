"""Simulated annealing: Metropolis moves on exp(-F/T_k) with a cooling schedule T_k from a small registry.

Kirkpatrick, Gelatt & Vecchi (1983). A step proposes x' = x + step_size * N(0, I) and accepts with probability
min(1, exp(-(F(x') - F(x)) / T_k)); it costs one loss evaluation and no gradient. The best point seen is kept.

Schedules (`SCHEDULES`, each `Schedule(init, update)` over a small state holding the temperature `T`):
- "logarithmic": T_k = T0 log 2 / log(k + 2) (Geman & Geman 1984's c / log(k) form, shifted so T_0 = T0);
  slow enough for convergence in probability when T0 exceeds the deepest barrier, hence slow in practice;
- "geometric": T_k = T0 alpha^k (Kirkpatrick et al. 1983);
- "adaptive": T_{k+1} = T_k exp(-lam T_k / sigma_k), sigma_k the standard deviation of the loss at the current
  temperature (Huang, Romeo & Sangiovanni-Vincentelli 1986), estimated by an exponentially weighted variance of
  the loss after each step (weight `rho`; no cooling in the first 1/rho steps); it cools fast where the loss hardly
  varies at T and slowly where it varies a lot. Applied after every step, so lam is a per-step rate (Huang et al.
  update once per Markov chain at fixed T; their lam is therefore not ours).
Shape: `minimize(loss, x0, steps=..., key=..., schedule=..., **kw)` returns the same `MinimizeResult` fields as
`samplax.optimizers.minimize` (ECD), with `n_grad = 0` and `n_loss` / `temperatures` / `accept_rate` besides.
"""

from __future__ import annotations

import math
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from samplax import checks


class Schedule(NamedTuple):
    init: Callable  # (T0) -> state (a dict with "T" and "k")
    update: Callable  # (state, loss at the current point) -> state


def logarithmic(T0: float) -> Schedule:
    def init(t0):
        return {"T": jnp.asarray(t0, float), "k": jnp.asarray(0), "T0": jnp.asarray(t0, float)}

    def update(st, f):
        k = st["k"] + 1
        return {**st, "k": k, "T": st["T0"] * jnp.log(2.0) / jnp.log(k + 2.0)}

    return Schedule(init, update)


def geometric(T0: float, alpha: float = 0.995) -> Schedule:
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")

    def init(t0):
        return {"T": jnp.asarray(t0, float), "k": jnp.asarray(0)}

    def update(st, f):
        return {**st, "k": st["k"] + 1, "T": st["T"] * alpha}

    return Schedule(init, update)


def adaptive(T0: float, lam: float = 0.002, rho: float = 0.05) -> Schedule:
    if not lam > 0 or not 0 < rho <= 1:
        raise ValueError(f"adaptive schedule needs lam > 0 and 0 < rho <= 1, got lam={lam}, rho={rho}")
    settle = int(round(1 / rho))  # no cooling before the moving averages span about one window

    def init(t0):
        return {"T": jnp.asarray(t0, float), "k": jnp.asarray(0), "mean": jnp.asarray(0.0), "var": jnp.asarray(0.0)}

    def update(st, f):
        # exponentially weighted mean and variance (West 1979's stable recursion, no E[F^2] - E[F]^2 cancellation)
        first = st["k"] == 0
        diff = f - st["mean"]
        mean = jnp.where(first, f, st["mean"] + rho * diff)
        var = jnp.where(first, 0.0, (1 - rho) * (st["var"] + rho * diff * diff))
        sigma = jnp.sqrt(var)
        cool = (st["k"] + 1 >= settle) & (sigma > 0)  # sigma = 0: a loss flat at this T says nothing; keep T
        T = jnp.where(cool, st["T"] * jnp.exp(-lam * st["T"] / jnp.where(sigma > 0, sigma, 1.0)), st["T"])
        return {**st, "k": st["k"] + 1, "mean": mean, "var": var, "T": T}

    return Schedule(init, update)


SCHEDULES: dict[str, Callable[..., Schedule]] = {"logarithmic": logarithmic, "geometric": geometric,
                                                 "adaptive": adaptive}


def make_schedule(name: str, T0: float, **kw) -> Schedule:
    if not checks.member(name, SCHEDULES):
        raise ValueError(f"unknown schedule {name!r}; choose from {sorted(SCHEDULES)}")
    if not isinstance(T0, jax.core.Tracer):
        T0 = checks.positive("T0", T0)
    return SCHEDULES[name](T0, **kw)


class AnnealState(NamedTuple):
    position: jax.Array  # flat
    loss: jax.Array
    schedule: dict


class AnnealInfo(NamedTuple):
    accepted: jax.Array
    temperature: jax.Array  # the T this step's test used


def init(x_flat, loss_flat, sched: Schedule, T0) -> AnnealState:
    return AnnealState(x_flat, loss_flat(x_flat), sched.init(T0))


def step(key, state: AnnealState, loss_flat, sched: Schedule, step_size) -> tuple[AnnealState, AnnealInfo]:
    """One Metropolis move at the schedule's current T, then the schedule advances (one loss evaluation)."""
    k_prop, k_acc = jax.random.split(key)
    x, f, st = state
    T = st["T"]
    prop = x + step_size * jax.random.normal(k_prop, x.shape, x.dtype)
    fp = loss_flat(prop)
    log_u = jnp.log(jax.random.uniform(k_acc, (), x.dtype))
    accept = jnp.isfinite(fp) & (log_u < -(fp - f) / T)
    x, f = jnp.where(accept, prop, x), jnp.where(accept, fp, f)
    return AnnealState(x, f, sched.update(st, f)), AnnealInfo(accept, T)


class MinimizeResult(NamedTuple):
    trajectory: jax.Array  # positions every `thin` steps
    losses: jax.Array  # loss of the current point after every step
    best_x: jax.Array
    best_loss: jax.Array
    n_grad: int  # 0: annealing never differentiates
    n_loss: int  # loss evaluations: one per step + the start
    temperatures: jax.Array  # T used by each step's test
    accept_rate: jax.Array


def minimize(loss: Callable, x0, *, steps: int, key: jax.Array | int = 0, schedule: str = "geometric",
             T0: float = 1.0, step_size: float = 0.5, thin: int = 1, **schedule_kw) -> MinimizeResult:
    """Simulated annealing for `steps` Metropolis moves; keeps the best point seen. Jittable, vmappable over
    x0 / key. schedule_kw: alpha (geometric), lam and rho (adaptive)."""
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
    if not isinstance(thin, int) or thin < 1 or steps % thin:
        raise ValueError(f"thin must be an integer >= 1 dividing steps={steps}, got {thin!r}")
    if not isinstance(step_size, jax.core.Tracer):
        step_size = checks.positive("step_size", step_size)
    sched = make_schedule(schedule, T0, **schedule_kw)
    key = jax.random.PRNGKey(key) if isinstance(key, int) else key
    flat0, unravel = ravel_pytree(x0)
    if not jnp.issubdtype(flat0.dtype, jnp.floating):
        raise ValueError(f"x0 must hold floating-point values, got dtype {flat0.dtype} (e.g. pass 1.0, not 1)")

    def loss_flat(v):
        return loss(unravel(v))

    state = init(flat0, loss_flat, sched, T0)
    f0 = state.loss  # the run's own first evaluation (counted), checked when it is concrete (not under jit)
    if not isinstance(f0, jax.core.Tracer) and not math.isfinite(float(f0)):  # every move from it would be rejected
        raise ValueError(f"loss(x0) = {float(f0)}: start where the loss is finite")

    def one(carry, k):
        state, bx, bf, n_acc = carry
        state, info = step(k, state, loss_flat, sched, step_size)
        better = state.loss < bf
        bx, bf = jnp.where(better, state.position, bx), jnp.where(better, state.loss, bf)
        return (state, bx, bf, n_acc + info.accepted), (state.loss, info.temperature)

    def block(carry, ks):
        carry, ys = jax.lax.scan(one, carry, ks)
        return carry, (carry[0].position, ys)

    keys = jax.random.split(key, steps)
    keys = keys.reshape(steps // thin, thin, *keys.shape[1:])  # raw (.., 2) uint32 keys and typed keys alike
    carry = (state, state.position, state.loss, jnp.asarray(0))
    (state, bx, bf, n_acc), (traj, (fs, Ts)) = jax.lax.scan(block, carry, keys)
    return MinimizeResult(jax.vmap(unravel)(traj), fs.reshape(-1), unravel(bx), bf, 0, steps + 1, Ts.reshape(-1),
                          n_acc / steps)
