"""blackjax's iterative multinomial NUTS with Stan's additional U-turn checks across every merge of two subtrees.

blackjax 1.7 (and numpyro, whose iterative scheme it ports) checks the U-turn criterion only between the two ends
of each subtree and of the whole trajectory. When a trajectory's period is close to a power of two steps, both
ends of a doubled trajectory sit at nearly the same phase of the orbit, no check fires and the tree doubles to
`max_num_doublings`: on a 10-d standard normal with the exact metric, step 0.869 (an orbit of 6.99 leapfrog steps)
costs 63.7 gradients a draw (max 1023) against 5.0 at step 0.860 (benchmarks/README.md, "NUTS resonance"). A
well-adapted metric makes every direction resonate at once, so the low-rank metric, which whitens near-Gaussian
posteriors almost exactly, met it on the non-centred funnel: one chain in four spent 10x the gradients (50,012
vs ~5,000), 0.66x nutpie's ESS per gradient over 5 seeds.

Stan (since 2.23, Betancourt's "additional U-turn checks") and nuts-rs, nutpie's sampler, also check every merge
of a left subtree L and a right subtree R across its seam: the span L plus the first state of R, and the last
state of L plus R. Both checks are symmetric under reversing the trajectory, so the kernel stays reversible; they
only stop some trajectories earlier. Here:

- inside a subtree (the iterative build, `robust_uturn`): each even leaf's checkpoint also keeps the momentum of
  the leaf before it, so that when a subtree [a, n] of >= 4 states closes at leaf n with halves [a, m-1] and
  [m, n], the spans [a, m] and [m-1, n] are checked from the checkpoints alone (momentum sums are differences of
  the running sum, as in numpyro's scheme);
- at the top level (`expansion`, blackjax's `dynamic_multiplicative_expansion` plus the two seam checks).

Everything else (the integrator, the progressive multinomial sampling, the proposal, the divergence threshold,
`NUTSInfo`) is blackjax's own code, with one guard: an energy of -inf (kinetic energy overflowing to -inf, or a
log-density of +inf) counts as a divergence, as blackjax already counts a NaN one.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from blackjax.base import SamplingAlgorithm, build_sampling_algorithm
from blackjax.mcmc import hmc, integrators, metrics, proposal, trajectory
from blackjax.mcmc.nuts import NUTSInfo
from jax.flatten_util import ravel_pytree


class RobustUTurnState(NamedTuple):
    """numpyro's checkpoints (momentum and running momentum sum at each subtree's first leaf) plus the momentum of
    the leaf before each checkpoint and of the previous leaf."""

    momentum: jax.Array  # (max_num_doublings, d)
    momentum_sum: jax.Array  # (max_num_doublings, d)
    momentum_before: jax.Array  # (max_num_doublings, d): the leaf before each checkpoint's leaf
    previous: jax.Array  # (d,): the last leaf's momentum
    idx_min: jax.Array
    idx_max: jax.Array


def _checkpoint_indices(n):
    """numpyro's `_leaf_idx_to_ckpt_idxs`: the checkpoints of the subtrees that leaf n closes."""
    idx_max = jnp.bitwise_count(n >> 1).astype(jnp.int32)
    num_subtrees = jnp.bitwise_count((~n & (n + 1)) - 1).astype(jnp.int32)
    return idx_max - num_subtrees + 1, idx_max


def robust_uturn(is_turning: Callable):
    """(new_state, update, is_iterative_turning) as blackjax's `iterative_uturn_numpyro`, with the seam checks."""

    stacked_turning = jax.vmap(is_turning)

    def new_state(chain_state, max_num_doublings) -> RobustUTurnState:
        d = ravel_pytree(chain_state.position)[0].shape[0]
        z = jnp.zeros((max_num_doublings, d))
        zero = jnp.zeros((), jnp.int32)
        return RobustUTurnState(z, z, z, jnp.zeros((d,)), zero, zero)

    def update(ckpts: RobustUTurnState, momentum_sum, momentum, step) -> RobustUTurnState:
        idx_min, idx_max = _checkpoint_indices(step)
        r, r_sum = ravel_pytree(momentum)[0], ravel_pytree(momentum_sum)[0]
        even = step % 2 == 0
        put = lambda a, v: jnp.where(even, a.at[idx_max].set(v), a)  # noqa: E731
        return RobustUTurnState(put(ckpts.momentum, r), put(ckpts.momentum_sum, r_sum),
                                put(ckpts.momentum_before, ckpts.previous), r, idx_min, idx_max)

    def is_iterative_turning(ckpts: RobustUTurnState, momentum_sum, momentum):
        r, r_sum = ravel_pytree(momentum)[0], ravel_pytree(momentum_sum)[0]
        r_ck, s_ck, before = ckpts.momentum, ckpts.momentum_sum, ckpts.momentum_before

        def body(state):
            i, _ = state
            # a subtree of >= 4 leaves (i < idx_max) has halves [a, m-1], [m, n]; checkpoint i + 1 is leaf m
            j = jnp.minimum(i + 1, r_ck.shape[0] - 1)
            # rows: the subtree [a, n] from checkpoint i to this leaf (numpyro's one check), its seam spans [a, m]
            # and [m-1, n]; one batched check, so the metric's code appears once in the program
            t = stacked_turning(jnp.stack([r_ck[i], r_ck[i], before[j]]), jnp.stack([r, r_ck[j], r]),
                                jnp.stack([r_sum - s_ck[i] + r_ck[i], s_ck[j] - s_ck[i] + r_ck[i],
                                           r_sum - s_ck[j] + r_ck[j] + before[j]]))
            return i - 1, t[0] | ((i < ckpts.idx_max) & (t[1] | t[2]))

        _, turning = jax.lax.while_loop(lambda s: (s[0] >= ckpts.idx_min) & ~s[1], body,
                                        (ckpts.idx_max, jnp.zeros((), bool)))
        return turning

    return new_state, update, is_iterative_turning


def expansion(trajectory_integrator: Callable, uturn_check_fn: Callable, max_num_expansions: int = 10):
    """blackjax's `dynamic_multiplicative_expansion` (rate 2) with the two seam checks at every doubling."""
    proposal_sampler = trajectory.progressive_biased_sampling

    def expand(rng_key, initial_expansion_state, initial_energy, step_size):
        def keep_expanding(loop_state):
            state, (is_diverging, is_turning) = loop_state
            return (state.step < max_num_expansions) & ~is_diverging & ~is_turning

        def expand_once(loop_state):
            state, _ = loop_state
            step, prop, traj, termination_state = state
            subkey = jax.random.fold_in(rng_key, step)
            direction_key, trajectory_key, proposal_key = jax.random.split(subkey, 3)
            direction = jnp.where(jax.random.bernoulli(direction_key), 1, -1)
            start = jax.lax.cond(direction > 0, lambda: traj.rightmost_state, lambda: traj.leftmost_state)
            new_prop, new_traj, termination_state, is_diverging, is_turning_subtree = trajectory_integrator(
                trajectory_key, start, direction, termination_state, 2**step, step_size, initial_energy)

            def keep_proposal(inputs):
                _, p, q = inputs
                return proposal.Proposal(p.state, p.energy, p.weight, jnp.logaddexp(p.sum_log_p_accept,
                                                                                    q.sum_log_p_accept))

            updated = jax.lax.cond(is_diverging | is_turning_subtree, keep_proposal,
                                   lambda x: proposal_sampler(*x), operand=(proposal_key, prop, new_prop))
            left, right = trajectory.reorder_trajectories(direction, traj, new_traj)
            merged = trajectory.merge_trajectories(left, right)
            p_ll, p_lr = left.leftmost_state.momentum, left.rightmost_state.momentum
            p_rl, p_rr = right.leftmost_state.momentum, right.rightmost_state.momentum
            add = lambda a, b: jax.tree.map(jnp.add, a, b)  # noqa: E731
            stack = lambda *trees: jax.tree.map(lambda *a: jnp.stack(a), *trees)  # noqa: E731
            # the whole trajectory, left + right's first state, left's last state + right: one batched check
            is_turning = jnp.any(jax.vmap(uturn_check_fn)(
                stack(p_ll, p_ll, p_lr), stack(p_rr, p_rl, p_rr),
                stack(merged.momentum_sum, add(left.momentum_sum, p_rl), add(p_lr, right.momentum_sum))))
            new_state = trajectory.DynamicExpansionState(step + 1, updated, merged, termination_state)
            return new_state, (is_diverging, is_turning_subtree | is_turning)

        false = jnp.zeros((), bool)
        return jax.lax.while_loop(keep_expanding, expand_once, (initial_expansion_state, (false, false)))

    return expand


def _proposal(integrator, kinetic_energy, uturn_check_fn, max_num_expansions, divergence_threshold):
    """blackjax's `iterative_nuts_proposal` with `robust_uturn` and `expansion`."""
    new_termination_state, update_termination_state, is_criterion_met = robust_uturn(uturn_check_fn)
    integrate = trajectory.dynamic_progressive_integration(integrator, kinetic_energy, update_termination_state,
                                                          is_criterion_met, divergence_threshold)
    expand = expansion(integrate, uturn_check_fn, max_num_expansions)

    def propose(rng_key, initial_state: integrators.IntegratorState, step_size):
        energy0 = -initial_state.logdensity + kinetic_energy(initial_state.momentum)
        state0 = trajectory.DynamicExpansionState(
            0, proposal.Proposal(initial_state, energy0, 0.0, -np.inf),
            trajectory.Trajectory(initial_state, initial_state, initial_state.momentum, 0),
            new_termination_state(initial_state, max_num_expansions))
        (num_doublings, sampled, traj, _), (is_diverging, is_turning) = expand(rng_key, state0, energy0, step_size)
        acceptance_rate = jnp.exp(sampled.sum_log_p_accept) / traj.num_states
        info = NUTSInfo(initial_state.momentum, is_diverging, is_turning, sampled.energy, traj.leftmost_state,
                        traj.rightmost_state, num_doublings, traj.num_states, acceptance_rate)
        return sampled.state, info

    return propose


def _no_minus_infinity(kinetic_energy):
    """A kinetic energy of -inf (overflow in a metric's arithmetic) as +inf. blackjax turns only a NaN energy into
    a divergence: an energy of -inf makes H0 - H = +inf, a transition accepted with probability one that is not
    divergent, wherever the overflow happened."""

    def f(momentum, position=None):
        k = kinetic_energy(momentum) if position is None else kinetic_energy(momentum, position)
        return jnp.where(k == -jnp.inf, jnp.inf, k)

    return f


def _no_plus_infinity(logdensity_fn):
    """A log-density of +inf (a model's singularity) as NaN inside trajectories, for the same reason: blackjax
    counts it as a divergence, and samplax's stats report it as a non-finite one (`diverging_nonfinite`)."""

    def f(x):
        v = logdensity_fn(x)
        return jnp.where(v == jnp.inf, jnp.nan, v)

    return f


def build_kernel(integrator: Callable = integrators.velocity_verlet, divergence_threshold: float = 1000):
    """blackjax's NUTS `build_kernel` (same signature of the kernel) with the seam checks."""

    def kernel(rng_key, state: hmc.HMCState, logdensity_fn, step_size, inverse_mass_matrix,
               max_num_doublings: int = 10):
        metric = metrics.default_metric(inverse_mass_matrix)
        kinetic_energy = _no_minus_infinity(metric.kinetic_energy)
        propose = _proposal(integrator(_no_plus_infinity(logdensity_fn), kinetic_energy), kinetic_energy,
                            metric.check_turning, max_num_doublings, divergence_threshold)
        key_momentum, key_integrator = jax.random.split(rng_key, 2)
        position, logdensity, logdensity_grad = state
        momentum = metric.sample_momentum(key_momentum, position)
        new, info = propose(key_integrator, integrators.IntegratorState(position, momentum, logdensity,
                                                                         logdensity_grad), step_size)
        return hmc.HMCState(new.position, new.logdensity, new.logdensity_grad), info

    return kernel


def nuts(logdensity_fn: Callable, step_size, inverse_mass_matrix, *, max_num_doublings: int = 10,
         divergence_threshold: float = 1000) -> SamplingAlgorithm:
    """`blackjax.nuts` with the seam checks (module docstring)."""
    return build_sampling_algorithm(build_kernel(integrators.velocity_verlet, divergence_threshold), hmc.init,
                                    logdensity_fn, kernel_args=(step_size, metrics.default_metric(inverse_mass_matrix),
                                                                max_num_doublings))
