"""Fixed-grid reverse-time integrators from a score: Euler–Maruyama and predictor–corrector.

Each integrator moves a batch x (N, d) from t_max down to t_min along a descending grid `ts`
(num_steps + 1 times) and returns (x, per-step stats). Score evaluations per step are fixed
(1 for Euler–Maruyama, 1 + num_corrector_steps for predictor–corrector), so NFE = N x that x num_steps.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from samplax import checks

GRIDS = ("uniform", "quadratic")


def time_grid(process, num_steps: int, kind: str = "uniform") -> np.ndarray:
    """num_steps + 1 descending times from t_max to t_min (float64 numpy, computed once per grid).

    uniform: equal steps in t (Song et al. 2021); quadratic: equal steps in sqrt(t) (DEIS's "quad"
    grid for VP, Zhang & Chen 2022), denser near t_min where the score changes fastest.
    """
    if not checks.member(kind, GRIDS):
        raise ValueError(f"grid must be one of {GRIDS}, got {kind!r}")
    t0, t1 = float(process.t_min), float(process.t_max)
    u = np.linspace(0.0, 1.0, num_steps + 1)
    if kind == "uniform":
        ts = t0 + (t1 - t0) * u
    else:
        ts = (np.sqrt(t0) + (np.sqrt(t1) - np.sqrt(t0)) * u) ** 2
    ts[0], ts[-1] = t0, t1
    return ts[::-1].copy()


def batched_score(model):
    """score over a batch (N, d) at one scalar time."""
    return jax.vmap(model.score, in_axes=(0, None))


def em_step(process, score_fn, x, t, t_next, z):
    """One Euler–Maruyama step of the reverse SDE from t to t_next < t with standard normal z (N, d)."""
    h = t - t_next
    drift = process.reverse_drift(x, t, score_fn(x, t))
    return x - h * drift + jnp.sqrt(process.g2(t) * h) * z


def reverse_sde(model, key, x, ts, progress=None):
    """Euler–Maruyama on dX = [f X - g^2 s] dt + g dW-bar from ts[0] = t_max down to ts[-1] = t_min."""
    proc, score = model.process, batched_score(model)
    ts = jnp.asarray(ts, x.dtype)

    def step(x, i):
        t, t_next = ts[i], ts[i + 1]
        x = em_step(proc, score, x, t, t_next, jax.random.normal(jax.random.fold_in(key, i), x.shape, x.dtype))
        if progress is not None:
            progress.update(i, t_next, x.shape[0])
        return x, None

    x, _ = jax.lax.scan(step, x, jnp.arange(ts.shape[0] - 1))
    return x


def langevin_correct(score_fn, key, x, t, a, snr, num_steps):
    """Song et al. 2021 Alg. 2 corrector: x += eps s + sqrt(2 eps) z, eps = 2 a (snr |z| / |s|)^2.

    a is 1 for VE and the one-step alpha ratio alpha(t)^2 / alpha(t_next)^2 (DDPM's 1 - beta_i) for VP.
    |z| and |s| are averaged over the particles, as in the reference code: per-particle norms give a
    huge step to a particle whose score is near zero (a mode) in low dimension.
    """
    def body(j, x):
        z = jax.random.normal(jax.random.fold_in(key, j), x.shape, x.dtype)
        g = score_fn(x, t)
        gn = jnp.mean(jnp.linalg.norm(g, axis=-1))
        zn = jnp.mean(jnp.linalg.norm(z, axis=-1))
        eps = 2.0 * a * (snr * zn / gn) ** 2
        return x + eps * g + jnp.sqrt(2.0 * eps) * z

    return jax.lax.fori_loop(0, num_steps, body, x)


def predictor_corrector(model, key, x, ts, num_corrector_steps: int, snr: float, progress=None):
    """At each grid time: num_corrector_steps Langevin corrections at t, then one Euler–Maruyama step to t_next.

    The order (corrector, then predictor) is that of Song et al.'s reference sampler.
    """
    proc, score = model.process, batched_score(model)
    ts = jnp.asarray(ts, x.dtype)

    def step(x, i):
        t, t_next = ts[i], ts[i + 1]
        kc, kp = jax.random.split(jax.random.fold_in(key, i))
        a = jnp.exp(2.0 * (proc.log_alpha(t) - proc.log_alpha(t_next)))
        x = langevin_correct(score, kc, x, t, a, snr, num_corrector_steps)
        x = em_step(proc, score, x, t, t_next, jax.random.normal(kp, x.shape, x.dtype))
        if progress is not None:
            progress.update(i, t_next, x.shape[0])
        return x, None

    x, _ = jax.lax.scan(step, x, jnp.arange(ts.shape[0] - 1))
    return x
