"""A locally adaptive step size for HMC moves: AutoStep (GIST), with the gradients each move really makes.

Why: on funnel-shaped targets one step size cannot fit the neck and the mouth. A step tuned to the bulk is
rejected in the neck, so tempered SMC's particles lag behind the tempered targets there, and log Z comes out
low with populations that agree (posteriordb's blr, whose tempered targets are funnels in (log sigma, beta) at
temperatures 0.03-0.1: default SMC -3.0 nats, HMC moves -0.2; Funnel-10d: P(v < -3) 0.05 against 0.159;
benchmarks/README.md, "AutoStep moves").

The move (Liu, Surjanovic, Biron-Lattes, Bouchard-Cote & Campbell 2024, "AutoStep: locally adaptive involutive
MCMC", arXiv 2410.18929, Algorithm 2, the symmetric selector; as a GIST instance: Bou-Rabee, Carpenter &
Marsden 2024, arXiv 2404.15253): draw a momentum p ~ N(0, I) and thresholds (a, b) uniform on {0 < a < b < 1};
pick j by doubling / halving the base step h from 2^0 until the L-step leapfrog's log acceptance ratio ell
leaves the band: expand while |ell| < |log b| (report the last good j), shrink while |ell| > |log a|; propose
the L-step leapfrog end at h 2^j with the momentum flipped; re-run the selection there with the same (a, b)
and accept with probability min(1, exp(-dH)) only when it picks the same j (otherwise, or when either search
ran past max_search doublings, reject). The selection is a deterministic function of (x, p, a, b) and the
proposal map an involution given j, so the move keeps the target invariant for any h.

This is blackjax's `blackjax.mcmc.composed.step_size` kernel (formerly `blackjax.mcmc.gist_step_size`) rebuilt
from its public pieces (integrators, trajectory, metrics, safe_energy_diff) so that each move reports the
gradients it made: every trial trajectory of both searches plus the proposal, L gradients each. blackjax's kernel
does not report the searches' cost. tests/test_autostep.py checks that this kernel and blackjax's give the same
draws from the same key, and that the counts are exact.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from blackjax.mcmc import hmc, integrators, metrics, trajectory
from blackjax.mcmc.integrators import IntegratorState
from blackjax.mcmc.proposal import safe_energy_diff

MAX_SEARCH = 10  # doublings / halvings per search (blackjax's default); past it the move is rejected
BASE_STEP_GAIN = 0.5  # after each sweep the base step moves by 2^(BASE_STEP_GAIN x the mean chosen j)

init = hmc.init


class AutoStepInfo(NamedTuple):
    acceptance_rate: jax.Array  # the acceptance probability used (0 when the reversibility check fails)
    is_accepted: jax.Array
    step_index: jax.Array  # j: the step used was h 2^j
    reversible: jax.Array  # the search at the proposal picked the same j, and neither search was exhausted
    n_grad: jax.Array  # gradient evaluations of this move: L x (forward trials + proposal + reverse trials)


def log_step_change(info: AutoStepInfo):
    """The change of the log base step after a sweep (info batched over particles): the base step follows the steps
    the moves chose, not an acceptance rate (the move shrinks a step that is too large by itself; steered towards an
    acceptance rate, SMC's base step ran away to 580 on blr). Used by SMC's and SCLD's moves."""
    j = info.step_index.astype(info.acceptance_rate.dtype)
    return BASE_STEP_GAIN * jnp.mean(j * jnp.log(2.0))


def _selector(build, L: int, max_search: int):
    """mu(state, h, a, b) -> (j, exhausted, trials): blackjax's symmetric selector, also counting its trials."""

    def mu(state: IntegratorState, kinetic, h, a, b):
        e0 = -state.logdensity + kinetic(state.momentum)

        def ell(j):
            end = hmc.flip_momentum(build(state, h * 2.0 ** j.astype(jnp.float32), L))
            return safe_energy_diff(e0, -end.logdensity + kinetic(end.momentum))

        la, lb = jnp.abs(jnp.log(a)), jnp.abs(jnp.log(b))

        def cond(c):
            _, n, done, _ = c
            return jnp.logical_not(done) & (n < max_search + 1)

        def body(c):
            j, n, _, v = c
            deciding = n == 0
            trial = jnp.where(deciding, j, j + v)
            e = jnp.abs(ell(trial))
            v_new = jnp.where(deciding, jnp.where(e < lb, 1, jnp.where(e > la, -1, 0)).astype(jnp.int32), v)
            stop = ((v_new == 1) & (e >= lb)) | ((v_new == -1) & (e <= la))
            return trial, n + 1, jnp.where(deciding, v_new == 0, stop), v_new

        zero = jnp.asarray(0, jnp.int32)
        j, n, done, v = jax.lax.while_loop(cond, body, (zero, zero, jnp.asarray(False), zero))
        exhausted = jnp.logical_not(done) & (v != 0)
        return jnp.where(done & (v == 1), j - 1, j), exhausted, n

    return mu


def build_kernel(num_integration_steps: int = 5, max_search: int = MAX_SEARCH):
    """`step(key, state, logdensity, step_size, inverse_mass_matrix=None) -> (HMCState, AutoStepInfo)`; the
    inverse mass defaults to the identity (samplax moves whitened coordinates)."""
    L = int(num_integration_steps)
    if L < 1:
        raise ValueError(f"num_integration_steps must be >= 1 for the AutoStep kernel, got {num_integration_steps}")
    max_search = int(max_search)
    if max_search < 1:
        raise ValueError(f"max_search must be >= 1, got {max_search}")

    def step(key, state, logdensity, step_size, inverse_mass_matrix=None):
        position = state.position
        metric = metrics.default_metric(jnp.ones_like(position) if inverse_mass_matrix is None
                                        else inverse_mass_matrix)
        k_mom, k_tune, k_acc = jax.random.split(key, 3)
        momentum = metric.sample_momentum(k_mom, position)
        start = IntegratorState(position, momentum, state.logdensity, state.logdensity_grad)
        build = trajectory.static_integration(integrators.velocity_verlet(logdensity, metric.kinetic_energy))
        mu = _selector(build, L, max_search)
        u = jax.random.uniform(k_tune, (2,))
        a, b = jnp.minimum(u[0], u[1]), jnp.maximum(u[0], u[1])
        j, exh_fwd, n_fwd = mu(start, metric.kinetic_energy, step_size, a, b)
        proposal = hmc.flip_momentum(build(start, step_size * 2.0 ** j.astype(jnp.float32), L))
        j_rev, exh_rev, n_rev = mu(proposal, metric.kinetic_energy, step_size, a, b)
        reversible = (j_rev == j) & jnp.logical_not(exh_fwd | exh_rev)
        e0 = -state.logdensity + metric.kinetic_energy(momentum)
        e1 = -proposal.logdensity + metric.kinetic_energy(proposal.momentum)
        log_accept = jnp.where(reversible, safe_energy_diff(e0, e1), -jnp.inf)
        p_accept = jnp.exp(jnp.minimum(log_accept, 0.0))
        accept = jax.random.uniform(k_acc) < p_accept
        new = jax.lax.cond(accept, lambda: hmc.HMCState(proposal.position, proposal.logdensity,
                                                        proposal.logdensity_grad), lambda: state)
        return new, AutoStepInfo(p_accept, accept, j, reversible, L * (n_fwd + 1 + n_rev))

    return step
