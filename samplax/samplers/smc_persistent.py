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
smc_kernels.move (adaptive sweeps, at least num_mcmc_steps) in cross-fitted whitened coordinates, as in standard
and waste-free SMC: every stored particle carries a lineage label 0 / 1 inherited from the particle it was
resampled from, and a particle of label k is moved in coordinates estimated from the weighted stored particles
of label 1 - k (smc_kernels.cross_whitening). Whitened by all stored particles, the noisy dense covariance moved
the particles it was estimated from and log Z came out too high: 50-d Gaussian, 40 fixed temperatures, 5 HMC
sweeps, reference N(0, 15^2): +3.20 (se 0.24) before, +0.05 (se 0.13) cross-fitted (tests/test_smc_persistent.py);
with the defaults (reference N(0, 3^2), N = 500) the between-population z-scores had mean +4.1 over 10 x 4
populations before, -0.15 over 100 x 4 after, at 121k gradients per population instead of 79k (the half-cloud
whitening is noisier: 20.7 sweeps per stage instead of 13.2).

log Z variance (`log_z_variance`, the Strategy's log_z_var, computed once from the final state): a delta method
over every stored particle. log Z_t = log sum_x w_t(x) - log(t N) depends on the particles of rows < t directly
and on the earlier log Z_s through the mixture; d log Z_t / d log Z_s = C[t, s] = sum_x W_t(x) r_s(x), with W_t
the normalised weights and r_s(x) = (L^{b_s} / Z_s) / sum_{s'<t} L^{b_s'} / Z_s' the share of stage s in the
mixture at x (sum_s C[t, s] = 1). The total sensitivities g_s = d log Z_T / d log Z_s follow backwards
(g_T = 1, g_s = sum_{t>s} g_t C[t, s]), and a stored particle's influence is phi(x) = sum_{t > row(x)} g_t
(W_t(x) - mean of W_t over its row) (each row is N draws from its own stage, a stratum, hence the row centring).
var log Z_T = sum over families of (sum of phi in the family)^2, taken as the larger of two groupings: each
particle alone (x N / (N - 1)), and the particles sharing a row-0 ancestor ("Eve", Lee & Whiteley 2018), which
counts the correlation between relatives but degenerates when the lineages coalesce into a few Eves.
Calibration (benchmarks/smc_logz_calibration.py, 100 repeats x 4 populations x N = 500): z = (log Z - exact) / SE
has sd 1.04 / 1.01 and mean 0.03 / -0.15 on conjugate_regression / the 50-d Gaussian (the spread of the 4
populations alone: sd 1.34 / 3.17).
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
from samplax.samplers.smc_kernels import cross_whitening, move

FAMILIES = "max"  # how log_z_variance groups stored particles: "singleton", "parent", "eve" or "max" (module doc)


class PersistentBuffers(NamedTuple):
    """Rows 0..t of every array hold the stages built so far (max_stages + 1 rows).

    X (S+1, N, d) particles; LL (S+1, N) their log-likelihoods (non-finite -> -inf); D (S+1, N) the running
    log-denominator log sum_{s<t} L^{b_s} / Z_s (-inf until a row's first contribution); betas, log_zs (S+1,);
    group (S+1, N) the lineage label 0 / 1 of the cross-fitted whitening (inherited from the resampled parent);
    parent (S+1, N) the flat index (row * N + column) of the stored particle each was resampled from (-1 in row
    0); eve (S+1, N) the column of its row-0 ancestor."""

    X: jax.Array
    LL: jax.Array
    D: jax.Array
    betas: jax.Array
    log_zs: jax.Array
    group: jax.Array
    parent: jax.Array
    eve: jax.Array


def _term(b: PersistentBuffers, s):
    """log L^{b_s} / Z_s at every stored particle ((S+1, N); -inf likelihoods: -inf, or 0 at b_s = 0)."""
    return jnp.where(b.LL == -jnp.inf, jnp.where(b.betas[s] > 0, -jnp.inf, 0.0), b.betas[s] * b.LL) - b.log_zs[s]


def log_z_variance(b: PersistentBuffers, T, families: str = FAMILIES):
    """Delta-method variance of log Z_T from the stored stages (module docstring)."""
    S1, n = b.LL.shape
    rows = jnp.arange(S1)
    dtype = b.LL.dtype

    def weights(t, D):  # normalised w_t over the rows < t
        lw = jnp.where(b.LL == -jnp.inf, -jnp.inf, b.betas[t] * b.LL) - D
        lw = jnp.where((rows < t)[:, None] & (D > -jnp.inf), lw, -jnp.inf)
        lse = logsumexp(lw)
        return jnp.where(lw > -jnp.inf, jnp.exp(lw - lse), 0.0)

    D0 = jnp.full((S1, n), -jnp.inf, dtype)

    def pass1(t, carry):  # C[t, s] = d log Z_t / d log Z_s = sum_x W_t(x) resp_s(x)
        D, C = carry
        D = jnp.logaddexp(D, _term(b, t - 1))
        W = weights(t, D)

        def inner(s, row):
            r = jnp.sum(jnp.where(W > 0, W * jnp.exp(_term(b, s) - D), 0.0))
            return row.at[s].set(r)

        row = jax.lax.fori_loop(1, t, inner, jnp.zeros((S1,), dtype))
        return D, C.at[t].set(row)

    _, C = jax.lax.fori_loop(1, T + 1, pass1, (D0, jnp.zeros((S1, S1), dtype)))

    def back(i, g):  # g_s = sum_{t > s} g_t C[t, s], from s = T - 1 down to 1
        s = T - i
        return g.at[s].set(jnp.sum(g * C[:, s]))

    g = jax.lax.fori_loop(1, T, back, jnp.zeros((S1,), dtype).at[T].set(1.0))

    def pass2(t, carry):  # influence of every stored particle: sum_t g_t (W_t(x) - its row's mean)
        D, phi = carry
        D = jnp.logaddexp(D, _term(b, t - 1))
        W = weights(t, D)
        dev = jnp.where((rows < t)[:, None], W - jnp.mean(W, axis=1, keepdims=True), 0.0)
        return D, phi + g[t] * dev

    _, phi = jax.lax.fori_loop(1, T + 1, pass2, (D0, jnp.zeros((S1, n), dtype)))
    if families == "max":
        return jnp.maximum(_grouped(phi, b, "singleton"), _grouped(phi, b, "eve"))
    return _grouped(phi, b, families)


def _grouped(phi, b: PersistentBuffers, families: str):
    """sum over families of (sum of the influences in the family)^2."""
    S1, n = phi.shape
    rows = jnp.arange(S1)
    if families == "singleton":
        return jnp.sum(phi ** 2) * n / (n - 1)
    if families == "parent":
        lab = jnp.where(rows[:, None] == 0, S1 * n + jnp.arange(n)[None, :], b.parent)
        return jnp.sum(jax.ops.segment_sum(phi.ravel(), lab.ravel(), num_segments=S1 * n + n) ** 2)
    if families == "eve":
        return jnp.sum(jax.ops.segment_sum(phi.ravel(), b.eve.ravel(), num_segments=n) ** 2)
    raise ValueError(f"families must be 'singleton', 'parent', 'eve' or 'max', got {families!r}")


def persistent_strategy(parts, dim, n, st, mk, acc_target, temps, families: str = FAMILIES) -> Strategy:
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
        col = jnp.arange(n, dtype=jnp.int32)
        buf = PersistentBuffers(jnp.zeros((S + 1, n, dim), dtype).at[0].set(x0),
                                jnp.zeros((S + 1, n), dtype).at[0].set(state.log_lik),
                                jnp.full((S + 1, n), -jnp.inf, dtype), jnp.zeros((S + 1,), dtype),
                                jnp.zeros((S + 1,), dtype), jnp.zeros((S + 1, n), jnp.int32).at[0].set(col % 2),
                                jnp.full((S + 1, n), -1, jnp.int32), jnp.zeros((S + 1, n), jnp.int32).at[0].set(col))
        return state._replace(buffers=buf), n_logd, bad

    def step(key, state: SMCState):
        k_res, k_move = jax.random.split(key)
        b = state.buffers
        t = state.stage
        t1 = t + 1  # the stage being built; rows 0..t are stored
        # add stage t's target to every particle's mixture (-inf likelihoods stay -inf: beta 0 gives 0 there)
        D = jnp.logaddexp(b.D, _term(b, t))
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
        # cross-fitted whitening (smc_kernels.cross_whitening): a resampled particle inherits its parent's lineage
        # label and is moved in coordinates estimated from the stored particles of the other label
        group = b.group.ravel()
        white = cross_whitening(flat, lw, group, st["mass"])
        idx = resample_fn(k_res, jax.nn.softmax(lw), n)
        g_new = group[idx]
        moved, mi = move(mk, k_move, flat[idx], tempered(log_prior, log_lik, beta), white, state.log_step, ms,
                         group=g_new)
        share = jnp.mean(g_new.astype(moved.dtype))  # relabel when one half holds under a quarter of the new row
        g_new = jnp.where((share < 0.25) | (share > 0.75), jnp.arange(n) % 2, g_new).astype(jnp.int32)
        ll_new, bad = lik(moved)
        # the new row's mixture over the earlier stages s < t1 (its own stage's term is added next stage)
        terms = jnp.where(ll_new[None] == -jnp.inf, -jnp.inf, b.betas[:, None] * ll_new[None]) - b.log_zs[:, None]
        d_new = logsumexp(jnp.where(rows[:, None] <= t, terms, -jnp.inf), axis=0)
        buf = PersistentBuffers(b.X.at[t1].set(moved), b.LL.at[t1].set(ll_new), D.at[t1].set(d_new),
                                b.betas.at[t1].set(beta), b.log_zs.at[t1].set(lz), b.group.at[t1].set(g_new),
                                b.parent.at[t1].set(idx.astype(jnp.int32)),
                                b.eve.at[t1].set(b.eve.ravel()[idx]))
        sweeps = mi.n_steps
        info = StageInfo(
            temperature=beta, ess=ess_now, log_z_increment=lz - b.log_zs[t],
            log_z_var_increment=jnp.zeros((), lz.dtype),  # the whole variance is set at the end (log_z_var)
            acceptance_rate=mi.acceptance_rate, resampled=True, n_grad=n * mk.grads_init + mi.n_grad,
            n_logdensity=n * (mk.logd_init + sweeps * mk.logd_step) + n, n_nonfinite=bad,
            step_size=jnp.exp(state.log_step), n_steps=sweeps, rho=mi.rho, correlation=mi.correlation,
            active=jnp.array(True))
        new = SMCState(moved, jnp.zeros((n,), moved.dtype), lz, ll_new, beta, mi.log_step, idx.astype(state.ancestors.dtype),
                       idx.astype(state.parents.dtype), t, buf)
        return new, info

    def log_z_var(state):
        return log_z_variance(state.buffers, state.stage, families)

    return Strategy("persistent", init, step, st["resampling"], log_z_var)
