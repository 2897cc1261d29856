"""The Schrödinger–Föllmer sampler (Huang et al. 2021, arXiv 2106.10880): `samplax.sample(target, "sfs", ...)`.

dX = b(X, t) dt + dW on [0, 1] from X_0 = 0, with f = pi~ / N(0, I) and (their eq. for the Föllmer drift)
b(x, t) = E[grad f(x + sqrt(1-t) Z)] / E[f(x + sqrt(1-t) Z)],  Z ~ N(0, I);
with `sigma` != 1 the reference is sigma W (f = pi~ / N(0, sigma^2 I), b = sigma^2 grad_x log E[f(x + sigma sqrt(1-t) Z)],
dX = b dt + sigma dW): the same construction for targets far wider than N(0, I).

X_1 ~ pi exactly in continuous time. The drift is estimated per step and particle from `num_mc` Gaussian draws,
written with grad f = f grad log f as a self-normalised average  b^ = sum_j softmax_j(log f(y_j)) grad log f(y_j)
(stable for peaked f); Euler–Maruyama with K = num_steps equal steps.

log Z: the estimated drift makes b^ biased for b and the Euler chain biased for pi, so neither the endpoint law nor
E[f] are used. Instead each path carries the exact discrete-time importance weight of PIS with sigma = 1
(`samplax.diffusion.learned.paths`): log w = log pi~(x_K) - log N(x_K; 0, sigma^2 I) + sum_k [-u_k . r_k + h sigma^2 |u_k|^2 / 2],
u_k = b^_k / sigma^2, r_k = x_{k+1} - x_k.
Conditional on the Monte Carlo draws used for b^ (auxiliary variables independent of the path noise), each
Euler step is a Gaussian proposal kernel, so E[w] = Z exactly: Z^ = mean_i w_i is unbiased for Z (log Z^ is biased
low by Jensen, by about Var(w)/(2 N Z^2)). The alternative unbiased estimate E[f(Z)] = Z at t = 0 is plain
importance sampling from N(0, I), useless for peaked targets. Particles are resampled by these weights at the end.
n_grad = num_particles * num_steps * num_mc gradient evaluations (+ one log-density evaluation per particle at x_K,
stage_stats["n_logdensity"] at the last step)
+ the stability check's Hessian-vector products (CURV_POINTS * CURV_ITERS, counted once per `sample()` call, in the
first step of population 0: the check runs once, however many populations).

Stability (checked before each run, `check_stability=True`): the Monte Carlo drift is sigma^2 times a score of pi~ at
nearby points, so one Euler step of variance s^2 = sigma^2 / K is stable only when s^2 lambda < 2, lambda the
curvature |eigenvalue of Hessian log pi~| (1 / squared mode width). lambda is estimated as the median, over
CURV_POINTS draws (fixed key) of the reference N(0, sigma^2 I), of the largest |eigenvalue| found by CURV_ITERS power iterations
on Hessian-vector products; sigma^2 lambda / K > 2 is refused with the smallest stable num_steps. Inside that range
SFS can still fail: the log-weight variance grows like sigma^2 int E|b^ - b|^2 dt / 2 with the drift estimate's
error, which num_mc draws cannot tame on widely separated modes (GMM40 at sigma = 25, 2-d, measured: log Z error
-200 at num_mc = 32 and -1500 at num_mc = 8 for any K from 50 to 600); `sample()` then warns of degenerate weights.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import logsumexp

from samplax import checks
from samplax.particles import base
from samplax.particles.resampling import resample, scheme
from samplax.particles.state import ParticleState, ess



CURV_POINTS, CURV_ITERS = 32, 8


def curvature(logdensity, key, dim: int, sigma: float, dtype):
    """Median over CURV_POINTS draws of N(0, sigma^2 I) of the largest |eigenvalue| of the Hessian of logdensity
    (power iteration on Hessian-vector products, CURV_ITERS each)."""
    kx, kv = jax.random.split(key)
    x = sigma * jax.random.normal(kx, (CURV_POINTS, dim), dtype)
    v = jax.random.normal(kv, (CURV_POINTS, dim), dtype)
    hvp = jax.vmap(lambda x, v: jax.jvp(jax.grad(logdensity), (x,), (v,))[1])

    def body(v, _):
        hv = hvp(x, v)
        lam = jnp.linalg.norm(hv, axis=-1) / jnp.linalg.norm(v, axis=-1)
        return hv / jnp.maximum(jnp.linalg.norm(hv, axis=-1, keepdims=True), 1e-300), lam

    _, lams = jax.lax.scan(body, v / jnp.linalg.norm(v, axis=-1, keepdims=True), None, length=CURV_ITERS)
    return jnp.median(jnp.where(jnp.isfinite(lams[-1]), lams[-1], jnp.inf))


def check_step(target, key, num_steps: int, sigma: float):
    """Refuse an unstable Euler step (sigma^2 / K times the target's curvature > 2), naming the stable range."""
    # jitted: called eagerly inside the traced sampler (see tempering._check_split)
    lam = float(jax.jit(lambda k: curvature(target.logdensity, k, target.dim, sigma, jnp.result_type(float)))(key))
    ratio = sigma**2 * lam / num_steps
    if not ratio <= 2.0:
        need = int(np.ceil(sigma**2 * lam / 2.0)) if np.isfinite(lam) else None
        raise ValueError(
            f"sfs: the Euler step is unstable: step variance sigma^2 / num_steps = {sigma**2 / num_steps:.4g} times "
            f"the target's curvature {lam:.4g} (1 / squared mode width, median over draws of N(0, sigma^2)) is "
            f"{ratio:.3g} > 2. Stable range: num_steps >= {need} at sigma = {sigma:g}, or sigma <= "
            f"{np.sqrt(2.0 * num_steps / lam):.4g} at num_steps = {num_steps} (sigma must still cover the target); "
            "check_stability=False runs it anyway")
    return lam


def _count_once(count: int, key):
    """`count` for the first population that runs this traced program and 0 for the others, as a traced count: the
    stability check ran once per trace (once per `sample()` call, however many populations), so its Hessian-vector
    products are counted once, in population 0 (before: in every population, C times the work done). A host callback
    on the population's key: vmapped, it runs per population, in order."""
    from jax.experimental import io_callback

    left = [int(count)]

    def take(_key_data):
        v, left[0] = left[0], 0
        return np.asarray(v, np.dtype(base.count_dtype()))

    return io_callback(take, jax.ShapeDtypeStruct((), base.count_dtype()), jax.random.key_data(key), ordered=False)


def follmer_drift(logdensity, x, t, key, num_mc: int, sigma: float = 1.0):
    """Monte Carlo estimate of b(x, t) / sigma^2 for one x of shape (d,) from num_mc draws of N(0, I)."""
    z = jax.random.normal(key, (num_mc, x.shape[0]), x.dtype)
    y = x + sigma * jnp.sqrt(1.0 - t) * z
    lp, g = jax.vmap(jax.value_and_grad(logdensity))(y)
    log_f = lp + 0.5 * jnp.sum(y**2, axis=-1) / sigma**2  # log pi~ - log N(0, sigma^2) up to a constant
    w = jax.nn.softmax(log_f)
    return jnp.sum(w[:, None] * (g + y / sigma**2), axis=0)


def run_sfs(target, key, num_particles: int, num_steps: int, num_mc: int, resampling: str, progress=None,
            sigma: float = 1.0, check_stability: bool = True):
    """One population of the Schrödinger–Föllmer sampler; returns a base.Population."""
    d, n, K = target.dim, num_particles, num_steps
    h = 1.0 / K
    k_path, k_res = jax.random.split(key)
    extra = 0
    if check_stability:
        with jax.ensure_compile_time_eval():  # run() is traced once for all populations; the check runs once,
            check_step(target, jax.random.PRNGKey(0), K, sigma)  # eagerly, with a fixed key (one verdict for all)
        extra = _count_once(CURV_POINTS * CURV_ITERS, key)
    drift = jax.vmap(lambda x, t, k: follmer_drift(target.logdensity, x, t, k, num_mc, sigma), in_axes=(0, None, 0))
    x0 = jnp.zeros((n, d), jnp.result_type(float))

    def body(carry, k):
        x, lw = carry
        t = k * h
        kk = jax.random.fold_in(k_path, k)
        k_mc, k_xi = jax.random.split(kk)
        u = drift(x, t, jax.random.split(k_mc, n))  # b / sigma^2
        s2 = h * sigma**2
        r = s2 * u + jnp.sqrt(s2) * jax.random.normal(k_xi, x.shape, x.dtype)
        lw = lw + jnp.sum(-u * r + 0.5 * s2 * u**2, axis=-1)
        e = ess(lw)
        if progress is not None:
            progress.update(k, t + h, e)
        return (x + r, lw), e

    (x, lw), ess_path = jax.lax.scan(body, (x0, jnp.zeros((n,), x0.dtype)), jnp.arange(K))
    log_w = (lw + jax.vmap(target.logdensity)(x) + 0.5 * jnp.sum(x**2, -1) / sigma**2 + d * jnp.log(sigma)
             + 0.5 * d * jnp.log(2 * jnp.pi))
    log_z = logsumexp(log_w) - jnp.log(n)
    state, _ = resample(k_res, ParticleState(x, log_w, log_z), resampling)
    stats = {"time": jnp.asarray((np.arange(K) + 1) * h), "ess": ess_path.at[-1].set(ess(log_w)),
             "n_grad": base.stage_counts(np.full(K, n * num_mc)).at[0].add(extra),
             **base.final_weight_stats(log_w, K)}
    return base.Population(state.particles, log_z, stats, jnp.sum(stats["n_grad"]))  # host re-sums in int64


@base.register("sfs")
def sfs(num_steps: int = 100, num_mc: int = 64, sigma: float = 1.0, resampling: str = "systematic",
        check_stability: bool = True) -> base.PopulationSampler:
    """Schrödinger–Föllmer sampler. num_steps: Euler steps on [0, 1]; num_mc: Gaussian draws per drift estimate;
    sigma: scale of the reference Brownian motion (its law at t = 1 is N(0, sigma^2 I)); choose it to cover the target.
    check_stability: refuse (ValueError naming the stable num_steps) when sigma^2 / num_steps times the target's
    curvature exceeds 2, where the Euler step diverges (see the module docstring).

    stage_stats per step: time (step end), ess (of the path weights accumulated so far; the last row is the ESS of
    the final importance weights), n_grad.
    """
    checks.integer("num_steps", num_steps, 1)
    checks.integer("num_mc", num_mc, 1)
    scheme(resampling)  # validates the name
    if isinstance(sigma, bool) or not isinstance(sigma, (int, float, np.integer, np.floating)) or not sigma > 0 \
            or not np.isfinite(sigma):
        raise ValueError(f"sigma must be a positive finite number, got {sigma!r}")
    sigma = float(sigma)
    if not isinstance(check_stability, bool):
        raise ValueError(f"check_stability must be True or False, got {check_stability!r}")

    def run(model, key, num_particles, progress):
        from samplax.particles.run import as_target

        return run_sfs(as_target(model), key, num_particles, num_steps, num_mc, resampling, progress, sigma,
                       check_stability)

    return base.PopulationSampler("sfs", run, {"num_steps": num_steps, "num_mc": num_mc, "sigma": sigma,
                                               "resampling": resampling, "check_stability": check_stability},
                                  "time")
