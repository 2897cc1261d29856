"""Persistent sampling (Karamanis et al. 2025; blackjax.smc.persistent_sampling): all stages' particles kept.

At stage t (temperatures b_0 = 0 < ... < b_{t-1} done, normalisers Z_s estimated) every stored particle
x (N per stage, t·N in all) is weighted against the balance-heuristic mixture of the earlier targets:

    w_t(x) = L(x)^{b_t} / ( (1/t) sum_{s<t} L(x)^{b_s} / Z_s ),    Z_t = (1 / (t N)) sum_x w_t(x)

(the prior cancels: the earlier targets are prior·L^{b_s} / Z_s). N particles are resampled from the
t·N by these weights, moved by the MCMC kernel at b_t and stored as stage t. The adaptive b_t is the one
whose persistent ESS (over all t·N particles, so it can exceed N) equals target_ess·N; when that is not
reachable the temperature stays (a stage that only adds particles), as in blackjax's adaptive version.
log Z is consistent (it is a ratio of sums), not unbiased. The running log-denominator of every stored
particle is updated by one term per stage, so a bisection step costs O(t·N), not O(t²·N).

A `Strategy` of smc.run_smc: the stored stages live in `SMCState.buffers` (`PersistentBuffers`); the moves are
smc_kernels.move (adaptive sweeps, at least num_mcmc_steps). No within-population log Z variance estimator:
stage_stats["log_z_var_increment"] is NaN and the pooled SE is the between-population one.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from blackjax.smc.solver import dichotomy
from jax.scipy.special import logsumexp

from samplax.particles.resampling import scheme
from samplax.particles.state import ess
from samplax.samplers.smc import (SMCState, StageInfo, Strategy, initial_state, move_settings, safe_log_lik,
                                  tempered)
from samplax.samplers.smc_kernels import move, whitening


class PersistentBuffers(NamedTuple):
    """Rows 0..t of every array hold the stages built so far (max_stages + 1 rows).

    X (S+1, N, d) particles; LL (S+1, N) their log-likelihoods (non-finite -> -inf); D (S+1, N) the running
    log-denominator log sum_{s<t} L^{b_s} / Z_s (-inf until a row's first contribution); betas, log_zs (S+1,)."""

    X: jax.Array
    LL: jax.Array
    D: jax.Array
    betas: jax.Array
    log_zs: jax.Array


def persistent_strategy(parts, dim, n, st, mk, acc_target, temps) -> Strategy:
    log_prior, log_lik, _ = parts
    lik = safe_log_lik(log_lik)
    S = st["max_stages"]
    resample_fn = scheme(st["resampling"])
    schedule = None if temps is None else jnp.asarray(temps)
    target_ess = st["target_ess"]
    ms = move_settings(st, acc_target, 0)
    rows = jnp.arange(S + 1)

    def init(key):
        state, n_logd, bad = initial_state(parts, dim, key, n, st, mk)
        x0, dtype = state.particles, state.particles.dtype
        buf = PersistentBuffers(jnp.zeros((S + 1, n, dim), dtype).at[0].set(x0),
                                jnp.zeros((S + 1, n), dtype).at[0].set(state.log_lik),
                                jnp.full((S + 1, n), -jnp.inf, dtype), jnp.zeros((S + 1,), dtype),
                                jnp.zeros((S + 1,), dtype))
        return state._replace(buffers=buf), n_logd, bad

    def step(key, state: SMCState):
        k_res, k_move = jax.random.split(key)
        b = state.buffers
        t = state.stage
        t1 = t + 1  # the stage being built; rows 0..t are stored
        # add stage t's target to every particle's mixture (-inf likelihoods stay -inf: beta 0 gives 0 there)
        D = jnp.logaddexp(b.D, jnp.where(b.LL == -jnp.inf, jnp.where(b.betas[t] > 0, -jnp.inf, 0.0),
                                         b.betas[t] * b.LL) - b.log_zs[t])
        valid = (rows <= t)[:, None]

        def log_w(beta):
            lw = jnp.where(b.LL == -jnp.inf, -jnp.inf, beta * b.LL) - (D - jnp.log(t1))
            return jnp.where(valid & (D > -jnp.inf), lw, -jnp.inf)

        if schedule is None:
            def f(delta):
                return jnp.log(ess(log_w(b.betas[t] + delta).ravel())) - jnp.log(target_ess * n)

            delta = jnp.nan_to_num(dichotomy(f, 0.0, 1.0 - b.betas[t], eps=1e-6))
            beta = b.betas[t] + jnp.clip(delta, 0.0, 1.0 - b.betas[t])
            beta = jnp.where(1.0 - beta < 1e-10, 1.0, beta)
        else:
            beta = schedule[t1]
        lw = log_w(beta).ravel()
        lz = logsumexp(lw) - jnp.log(t1 * n)
        ess_now = ess(lw)
        flat = b.X.reshape(-1, dim)
        white = whitening(flat, lw, st["mass"])
        idx = resample_fn(k_res, jax.nn.softmax(lw), n)
        moved, mi = move(mk, k_move, flat[idx], tempered(log_prior, log_lik, beta), white, state.log_step, ms)
        ll_new, bad = lik(moved)
        # the new row's mixture over the earlier stages s < t1 (its own stage's term is added next stage)
        terms = jnp.where(ll_new[None] == -jnp.inf, -jnp.inf, b.betas[:, None] * ll_new[None]) - b.log_zs[:, None]
        d_new = logsumexp(jnp.where(rows[:, None] <= t, terms, -jnp.inf), axis=0)
        buf = PersistentBuffers(b.X.at[t1].set(moved), b.LL.at[t1].set(ll_new), D.at[t1].set(d_new),
                                b.betas.at[t1].set(beta), b.log_zs.at[t1].set(lz))
        sweeps = mi.n_steps
        info = StageInfo(
            temperature=beta, ess=ess_now, log_z_increment=lz - b.log_zs[t], log_z_var_increment=jnp.nan,
            acceptance_rate=mi.acceptance_rate, resampled=True, n_grad=n * (mk.grads_init + sweeps * mk.grads_step),
            n_logdensity=n * (mk.logd_init + sweeps * mk.logd_step) + n, n_nonfinite=bad,
            step_size=jnp.exp(state.log_step), n_steps=sweeps, rho=mi.rho, correlation=mi.correlation,
            active=jnp.array(True))
        new = SMCState(moved, jnp.zeros((n,), moved.dtype), lz, ll_new, beta, mi.log_step, idx.astype(state.ancestors.dtype),
                       idx.astype(state.parents.dtype), t, buf)
        return new, info

    return Strategy("persistent", init, step, st["resampling"])
