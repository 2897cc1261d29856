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
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from blackjax.smc.solver import dichotomy
from jax.scipy.special import logsumexp

from samplax.particles.resampling import scheme
from samplax.particles.state import ess
from samplax.samplers.smc import STATS, STEP_GAIN, cloud_scale, finish
from samplax.samplers.smc_kernels import run_chains


def run_persistent(parts, dim, key, n, progress, st, mk, acc_target, temps):
    log_prior, log_lik, sample_prior = parts
    S = st["max_stages"]
    K = st["num_mcmc_steps"]
    resample_fn = scheme(st["resampling"])
    schedule = None if temps is None else jnp.asarray(temps)
    target_ess = st["target_ess"]

    k0, key = jax.random.split(key)
    x0 = sample_prior(k0, n)
    dtype = x0.dtype
    X = jnp.zeros((S + 1, n, dim), dtype).at[0].set(x0)
    LL = jnp.zeros((S + 1, n), dtype).at[0].set(jnp.nan_to_num(jax.vmap(log_lik)(x0)))
    # D[r, i] = log sum_{s < t} L^{b_s} / Z_s at particle (r, i): -inf until stage r's own contributions
    D = jnp.full((S + 1, n), -jnp.inf, dtype)
    betas = jnp.zeros((S + 1,), dtype)
    logZ = jnp.zeros((S + 1,), dtype)
    stats = {k: jnp.zeros((S,), jnp.bool_ if k in ("resampled", "active") else
                          (jnp.int64 if jax.config.jax_enable_x64 else jnp.int32) if k.startswith("n_") else dtype)
             for k in STATS}
    stats["n_logdensity"] = stats["n_logdensity"].at[0].set(n)
    log_step0 = jnp.log(jnp.asarray(mk.initial_step_size(dim) if st["step_size"] is None else st["step_size"], dtype))
    rows = jnp.arange(S + 1)

    def cond(c):
        return (c[4][c[7]] < 1.0) & (c[7] < S)

    def body(c):
        key, X, LL, D, betas, logZ, log_step, t, stats = c
        t1 = t + 1  # the stage being built; rows 0..t are stored
        key, k_res, k_move = jax.random.split(key, 3)
        D = jnp.logaddexp(D, betas[t] * LL - logZ[t])  # add stage t's target to every particle's mixture
        valid = (rows <= t)[:, None]

        def log_w(beta):
            return jnp.where(valid, beta * LL - (D - jnp.log(t1)), -jnp.inf)

        if schedule is None:
            def f(delta):
                return jnp.log(ess(log_w(betas[t] + delta).ravel())) - jnp.log(target_ess * n)

            delta = jnp.nan_to_num(dichotomy(f, 0.0, 1.0 - betas[t], eps=1e-6))
            beta = betas[t] + jnp.clip(delta, 0.0, 1.0 - betas[t])
            beta = jnp.where(1.0 - beta < 1e-10, 1.0, beta)
        else:
            beta = schedule[t1]
        lw = log_w(beta).ravel()
        lz = logsumexp(lw) - jnp.log(t1 * n)
        ess_now = ess(lw)
        flat = X.reshape(-1, dim)
        centre, sd = cloud_scale(flat, lw, st["adapt_mass"])
        idx = resample_fn(k_res, jax.nn.softmax(lw), n)

        def logdens(z):
            return log_prior(z) + beta * log_lik(z)

        step_size = jnp.exp(log_step)
        moved, acc, log_step = run_chains(mk, k_move, flat[idx], logdens, centre, sd, log_step, K, False,
                                          acc_target, STEP_GAIN)
        ll_new = jnp.nan_to_num(jax.vmap(log_lik)(moved))
        # the new row's mixture over the earlier stages s < t1 (its own stage's term is added next stage)
        d_new = logsumexp(jnp.where(rows[:, None] <= t, betas[:, None] * ll_new[None] - logZ[:, None], -jnp.inf), axis=0)
        X, LL, D = X.at[t1].set(moved), LL.at[t1].set(ll_new), D.at[t1].set(d_new)
        betas, logZ = betas.at[t1].set(beta), logZ.at[t1].set(lz)
        progress.update(t, beta, ess_now)
        row = dict(temperature=beta, ess=ess_now, log_z_increment=lz - logZ[t], acceptance_rate=acc, resampled=True,
                   n_grad=n * (mk.grads_init + K * mk.grads_step),
                   n_logdensity=stats["n_logdensity"][t] + n * (mk.logd_init + K * mk.logd_step) + n,
                   step_size=step_size, active=True)
        stats = {k: v.at[t].set(jnp.asarray(row[k]).astype(v.dtype)) for k, v in stats.items()}
        return key, X, LL, D, betas, logZ, log_step, t1, stats

    carry = (key, X, LL, D, betas, logZ, log_step0, jnp.array(0), stats)
    key, X, LL, D, betas, logZ, _, t, stats = jax.lax.while_loop(cond, body, carry)
    return finish(X[t], logZ[t], betas[t], stats, S)
