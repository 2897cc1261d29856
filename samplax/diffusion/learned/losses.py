"""Training losses on a batch of log importance weights log w = log dP_target/dP_sampler of sampled paths."""

from __future__ import annotations

import jax.numpy as jnp

from samplax import checks
from samplax.diffusion.learned.paths import rollout

LOSSES = ("kl", "log_variance")


def loss_fn(control, path, logdensity, key, batch_size: int, dim: int, loss: str, detach_score: bool = False,
            stl: bool = False):
    """Reverse KL (paths reparametrised, gradient through the SDE): E[-log w] = KL(sampler || target) - log Z.

    Log-variance (Richter & Berner 2023, arXiv 2307.01198): Var over the batch of log w along paths drawn from the
    current sampler and detached, so only u's appearance in log w is differentiated; zero iff u is optimal.
    detach_score: the network's score input carries no gradient (see `paths.rollout`); matters for KL only.
    stl: the KL gradient's sticking-the-landing estimator (see `paths.rollout`); KL only.
    Returns (loss, log_w).
    """
    if not checks.member(loss, LOSSES):
        raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
    _, log_w, _ = rollout(control, path, logdensity, key, batch_size, dim, detach=(loss == "log_variance"),
                          detach_score=detach_score, stl=stl)
    if loss == "kl":
        return -jnp.mean(log_w), log_w
    return jnp.var(log_w), log_w
