"""Population samplers "fkc" (Feynman-Kac correctors) and "fkc_naive" (the same SDE, unweighted baseline).

Both simulate the reverse SDE of a composed target q_t (`samplax.fkc`) with the corrected drift
grad log q_t by Euler-Maruyama over the process's uniform time grid from t_max to t_min, starting
from the composed prior N(0, sigma(t_max)^2 / B). "fkc" carries the Feynman-Kac log-weights of
`samplax.fkc.weights` (trapezoid rule per step), resamples when the ESS falls below
`ess_threshold * N` and once more at the end so the particles are equally weighted; its log Z is
log Z_{t_max} + the running SMC estimate. "fkc_naive" ignores the weights (no resampling, ESS = N) and
estimates no log Z (NaN; `estimates_log_z` False): it exists to show what the correction buys.

log Z error: each population reports its own variance of log Z, stage_stats["log_z_var_increment"] at the steps that
end a resampling epoch (the epoch's particles start equally weighted and are families by their parent at its
resampling: `particles.state.increment_variance`, as NETS for schemes other than multinomial), and
`samplax.particles.results` pools it into log_z_se. Product of two 1-d Gaussians, 100 particles, 100 steps, 4
populations, 30 seeds: z against the exact log Z of sd 0.82 (the populations' spread alone: 1.9-2.0).

SDEs (`sde=`): "target" is the paper's target-score SDE (noise g, weights from scores only);
"matched" (default) keeps the same corrected drift with noise variance (2 - 1/B) g^2 and adds the
divergence term of eq. (6) in `samplax.fkc.weights` - its weights nearly vanish at high noise, which
cut the log Z sd on a product of 2D mixtures from ~0.1 to ~0.006 at 4000 particles (measured).

Counts (int64, `particles.base.count_dtype`): `n_grad` is score-model evaluations (NFE) and Jacobian-vector products
of the scores, one unit each: per input model, particle and time point (the t_max point included) 1 score
evaluation, + d JVPs for the divergence of sde="matched". Reward evaluations of a tilt (value, gradient,
Laplacian at each point) are counted separately in the stage stat `n_reward`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from samplax import checks
from samplax.fkc.compose import as_composition
from samplax.fkc.weights import composed_grad, log_weight_rate, matched_correction, prior_log_z, prior_std
from samplax.particles import base
from samplax.particles.resampling import check_threshold, resample, scheme
from samplax.particles.state import ParticleState, ess, increment_variance, init as init_state, reweight

INITS = ("prior", "exact")
SDES = ("target", "matched")


def _reward_terms(comp):
    """x (N, d), t -> (r, grad r, lap r) per particle, or None without a reward."""
    if comp.reward is None:
        return None
    vg = jax.value_and_grad(comp.reward)

    def one(x):
        r, gr = vg(x)
        lap = jnp.trace(jax.hessian(comp.reward)(x))
        return r, gr, lap

    return jax.vmap(one)


def _run_factory(num_steps: int, ess_threshold: float, resampling: str, init: str, correct: bool, sde: str):
    def run(model, key, num_particles, progress):
        comp = as_composition(model)
        proc, dim, n = comp.process, comp.dim, num_particles
        betas = jnp.asarray(comp.exponents, float)
        big_b = comp.total_exponent
        n_models = len(comp.models)
        ts = proc.time_grid(num_steps)
        scorers = [jax.vmap(m.score, (0, None)) for m in comp.models]
        reward_at = _reward_terms(comp)
        matched = sde == "matched"
        if matched and big_b < 0.5:
            raise ValueError(f"sde='matched' needs total exponent B >= 1/2 (noise variance (2 - 1/B) g^2), "
                             f"got B = {big_b} for {comp!r}; use sde='target'")
        noise_scale = 2.0 - 1.0 / big_b if matched else 1.0
        eye = jnp.eye(dim)

        def score_and_div(m):
            """x (N, d), t -> (score (N, d), its divergence (N,)): one score evaluation and d JVPs per particle."""
            def one(xi, t):
                s, jvp = jax.linearize(lambda y: m.score(y, t), xi)
                return s, jnp.trace(jax.vmap(jvp)(eye.astype(xi.dtype)))

            return jax.vmap(one, (0, None))

        with_div = [score_and_div(m) for m in comp.models]

        def evaluate(x, t):
            """Expert scores (N, m, d), grad Phi (N, d) and the weight rate G (N,) at time t."""
            if matched:
                pairs = [f(x, t) for f in with_div]
                sc, divs = jnp.stack([p[0] for p in pairs], axis=1), [p[1] for p in pairs]
            else:
                sc = jnp.stack([s(x, t) for s in scorers], axis=1)
            if reward_at is None:
                gphi = jax.vmap(lambda s: composed_grad(s, betas))(sc)
                rate = jax.vmap(lambda xi, s: log_weight_rate(proc, t, xi, s, betas))(x, sc)
                lap_phi = 0.0
            else:
                b, db = comp.reward_schedule(t)
                r, gr, lap = reward_at(x)
                gphi = jax.vmap(lambda s, g: composed_grad(s, betas, b, g))(sc, gr)
                rate = jax.vmap(lambda xi, s, ri, gi, li: log_weight_rate(proc, t, xi, s, betas, (b, db, ri, gi, li)))(
                    x, sc, r, gr, lap)
                lap_phi = b * lap
            if matched:
                lap_phi = lap_phi + sum(be * dv for be, dv in zip(comp.exponents, divs))
                rate = rate + matched_correction(proc, t, gphi, lap_phi, big_b)
            return gphi, rate

        k_init, k_run = jax.random.split(key)
        t_max = ts[0]
        std0 = prior_std(proc, big_b)
        x = std0 * jax.random.normal(k_init, (n, dim))
        state = init_state(x)
        if correct and init == "exact":
            log_pi0 = -0.5 * jnp.sum((x / std0) ** 2, -1) - dim * (jnp.log(std0) + 0.5 * jnp.log(2 * jnp.pi))
            lw0 = jax.vmap(lambda xi: comp.log_q(xi, t_max))(x) - log_pi0
            state = reweight(state, lw0)
        else:
            state = state._replace(log_z=jnp.asarray(prior_log_z(proc, dim, big_b), x.dtype))
        gphi, rate = evaluate(x, t_max)
        per_point = n * n_models * (1 + dim if matched else 1)  # jacfwd divergence: dim JVPs
        # the first stage also holds the t_max evaluations; int64 counts (int32 without x64: refused if a stage's
        # count does not fit, and the host re-sums the stages in int64, base.total_n_grad)
        base.stage_counts([2 * per_point, 2 * n], "fkc counts")  # checked statically (stage 0: two time points)
        cdt = base.count_dtype()

        def step(carry, k):
            state, gphi, rate, anc = carry
            t, t1 = ts[k], ts[k + 1]
            h = t - t1
            kz, kr = jax.random.split(jax.random.fold_in(k_run, k))
            x = state.particles
            # Euler-Maruyama on the reverse SDE dX = (f x - g^2 grad Phi) dt + g dW-bar, dt = -h
            x1 = x - proc.reverse_drift(x, t, gphi) * h + jnp.sqrt(noise_scale * proc.g2(t) * h) * jax.random.normal(kz, x.shape)
            gphi1, rate1 = evaluate(x1, t1)
            if correct:
                inc = 0.5 * (rate + rate1) * h
                before = state.log_z
                state = reweight(ParticleState(x1, state.log_weights, state.log_z), inc)
                lz_inc = state.log_z - before
                e = ess(state.log_weights)
                do = (k == num_steps - 1) | (e < ess_threshold * n)
                # the log Z variance of the epoch that ends here: its particles start equally weighted (the initial
                # weights of init="exact" belong to the first) and are families by their parent at the epoch's
                # resampling; the epochs' sum is the population's variance (as NETS for schemes other than
                # multinomial). Without it log_z_se came from 4 populations' spread alone: z of sd 1.9-2.0
                var_epoch = jnp.where(do, increment_variance(jnp.zeros_like(state.log_weights), state.log_weights,
                                                             anc), 0.0)

                def yes(args):
                    s, gp, rt, _ = args
                    new, idx = resample(kr, s, resampling)
                    return new, gp[idx], rt[idx], idx

                state, gphi1, rate1, anc = jax.lax.cond(do, yes, lambda a: a, (state, gphi1, rate1, anc))
            else:
                state = ParticleState(x1, state.log_weights, state.log_z)
                lz_inc, e, do = jnp.zeros(()), jnp.asarray(float(n)), jnp.array(False)
            progress.update(k, t1, e)
            stats = {"time": t1, "ess": e, "log_z_increment": lz_inc, "resampled": do,
                     "n_grad": jnp.asarray(per_point, cdt)}
            if correct:
                stats["log_z_var_increment"] = var_epoch
            if reward_at is not None:
                stats["n_reward"] = jnp.asarray(n, cdt)
            return (state, gphi1, rate1, anc), stats

        (state, _, _, _), stats = jax.lax.scan(step, (state, gphi, rate, jnp.arange(n, dtype=jnp.int32)),
                                               jnp.arange(num_steps))
        # the t_max evaluations belong to the first stage
        stats["n_grad"] = stats["n_grad"].at[0].add(per_point)
        if "n_reward" in stats:
            stats["n_reward"] = stats["n_reward"].at[0].add(n)
        log_z = state.log_z if correct else jnp.full((), jnp.nan, state.log_z.dtype)  # unweighted: no estimate
        return base.Population(state.particles, log_z, stats, jnp.sum(stats["n_grad"]))  # int32: may wrap (see above)

    return run


def _check(num_steps, ess_threshold, resampling, init, sde="target"):
    if not checks.member(sde, SDES):
        raise ValueError(f"sde must be one of {SDES} (see samplax.fkc.weights, eq. 6), got {sde!r}")
    num_steps = checks.integer("num_steps", num_steps, 1)  # Euler-Maruyama steps t_max -> t_min; a numpy int too
    scheme(resampling)
    if not checks.member(init, INITS):
        raise ValueError(f"init must be one of {INITS} ('prior': inputs assumed at N(0, sigma^2) at t_max; "
                         f"'exact': initial weights from the models' log_prob), got {init!r}")
    return num_steps, check_threshold(ess_threshold)


@base.register("fkc")
def fkc(num_steps: int = 500, ess_threshold: float = 0.5, resampling: str = "systematic", init: str = "prior",
        sde: str = "matched"):
    """Feynman-Kac correctors: weighted reverse SDE of a `samplax.fkc` composition, ESS-triggered resampling."""
    num_steps, thr = _check(num_steps, ess_threshold, resampling, init, sde)
    settings = {"num_steps": num_steps, "ess_threshold": thr, "resampling": resampling, "init": init, "sde": sde}
    return base.PopulationSampler("fkc", _run_factory(num_steps, thr, resampling, init, True, sde), settings, "time")


@base.register("fkc_naive")
def fkc_naive(num_steps: int = 500):
    """The unweighted baseline: the same corrected-drift SDE (sum of scores, beta-scaled score), no weights."""
    num_steps, _ = _check(num_steps, 0.0, "systematic", "prior")
    return base.PopulationSampler("fkc_naive", _run_factory(num_steps, 0.0, "systematic", "prior", False, "target"),
                                  {"num_steps": num_steps}, "time", estimates_log_z=False)
