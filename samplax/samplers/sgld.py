"""Stochastic-gradient Langevin (blackjax) on a data model built by `minibatch_target`."""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import blackjax
import jax
import jax.numpy as jnp
from blackjax.sgmcmc import gradients

from samplax import checks
from samplax.samplers import langevin_base as lb
from samplax.samplers.base import Algorithm, Sampler, Warmup, adapted_names, register, resolve_target_accept
from samplax.samplers.overdamped import mala_build
from samplax.target import Target


class Minibatch(NamedTuple):
    log_prior: Callable
    log_lik_one: Callable  # (x, one datum) -> log-likelihood of that datum
    data: Any  # pytree, leading axis = data points
    batch_size: int
    data_size: int


def minibatch_target(log_prior: Callable, log_lik_one: Callable, data, batch_size: int, dim: int,
                     *, name: str = "minibatch", **truth) -> Target:
    """A data model's Target whose `info["minibatch"]` lets `sgld` use gradients over random data subsets.

    `logdensity` is the full-data log posterior log_prior(x) + sum_i log_lik_one(x, data_i).
    """
    data = jax.tree.map(jnp.asarray, data)
    sizes = {leaf.shape[0] if leaf.ndim else None for leaf in jax.tree.leaves(data)}
    if len(sizes) != 1 or None in sizes:
        raise ValueError(f"data leaves must share a leading (data point) axis, got leading sizes {sizes}")
    n = sizes.pop()
    if not isinstance(batch_size, int) or not 1 <= batch_size <= n:
        raise ValueError(f"batch_size must be an integer in [1, {n}] (the number of data points), got {batch_size!r}")

    def logdensity(x):
        return log_prior(x) + jnp.sum(jax.vmap(log_lik_one, (None, 0))(x, data))

    info = {**truth.pop("info", {}), "minibatch": Minibatch(log_prior, log_lik_one, data, batch_size, n)}
    return Target.from_logdensity(logdensity, dim, name=name, info=info, **truth)


class SGLDState(NamedTuple):
    position: jax.Array


class SGLDInfo(NamedTuple):
    is_divergent: jax.Array


def _minibatch(target: Target) -> Minibatch:
    mb = target.info.get("minibatch")
    if not isinstance(mb, Minibatch):
        raise ValueError(f"sgld needs a data model: target {target.name!r} has no info['minibatch']; build it with "
                         "samplax.samplers.sgld.minibatch_target(log_prior, log_lik_one, data, batch_size, dim)")
    return mb


def _fraction(target):
    mb = _minibatch(target)
    return jnp.asarray(mb.batch_size / mb.data_size)


@register("sgld")
def sgld(*, step_size: float | None = None, target_accept: float = lb.UNADJUSTED_TARGET_ACCEPT,
         adapt=None) -> Sampler:
    """Stochastic-gradient Langevin (blackjax) on batches drawn without replacement, constant step.

    step_size given (and not in `adapt`): warmup is plain SGLD burn-in at it. Adapted: warmup tunes h like `ula`
    (MALA at `target_accept`), which costs `num_warmup` full-data gradients. `n_grad` counts minibatch gradients
    (one per step); `data_fraction` = batch_size / data_size converts them to full-data gradient equivalents.
    """
    checks.given_scale("step_size", step_size)
    adapted = adapted_names(adapt, ("step_size",), {"step_size": step_size})
    if not adapted and step_size is None:
        raise ValueError(f"sgld: adapt={adapt!r} leaves step_size neither given nor adapted: pass step_size=...")
    target_accept = resolve_target_accept("sgld", target_accept, lb.UNADJUSTED_TARGET_ACCEPT, bool(adapted))

    def build(target, params):
        mb = _minibatch(target)
        alg = blackjax.sgld(gradients.grad_estimator(mb.log_prior, mb.log_lik_one, mb.data_size))

        def step(key, state):
            k_batch, k_move = jax.random.split(key)
            idx = jax.random.choice(k_batch, mb.data_size, (mb.batch_size,), replace=False)
            batch = jax.tree.map(lambda d: d[idx], mb.data)
            x = alg.step(k_move, state.position, batch, params["step_size"])
            return SGLDState(x), SGLDInfo(~jnp.all(jnp.isfinite(x)))

        return Algorithm(lambda x, key: SGLDState(x), step)

    def stats(state, info, params):
        return {"n_grad": jnp.asarray(1), "data_fraction": params["data_fraction"], "step_size": params["step_size"],
                "diverging": info.is_divergent}

    def default_params(target):
        if step_size is None:
            raise ValueError("num_warmup=0 leaves sgld untuned: pass step_size=..., or use num_warmup > 0")
        return {"step_size": jnp.asarray(step_size, float), "data_fraction": _fraction(target)}

    warmup = None
    if adapted:
        _, tune, _, _ = lb.setup("sgld", mass_matrix="identity", target_accept=target_accept,
                                 default_target_accept=lb.UNADJUSTED_TARGET_ACCEPT, step_size=step_size,
                                 inverse_mass_matrix=None, adapt=True, build=mala_build(),
                                 tune_build=mala_build())

        def warmup(target, key, position, num_steps):
            w = tune(target, key, position, num_steps)
            params = {"step_size": w.params["step_size"], "data_fraction": _fraction(target)}
            return Warmup(SGLDState(w.state.position), params, w.trace)

    return Sampler(name="sgld", build=build, stats=stats, default_params=default_params, warmup=warmup,
                   adapted=adapted, settings={"step_size": step_size, "target_accept": target_accept})
