"""Mean-field underdamped Langevin: N interacting particles for F(mu) = int V + 1/2 iint W(x - y) + sigma2 Ent(mu).

The N-particle system (Fu & Wilson 2023, arXiv 2312.16360, their Eq. for the N-particle underdamped Langevin dynamics)
    dX_i = P_i dt,
    dP_i = -gamma P_i dt - (grad V(X_i) + (1/N) sum_j grad W(X_i - X_j)) dt + sqrt(2 gamma sigma2) dB_i,
is kinetic Langevin on H_N(x) = sum_i V(x_i) + 1/(2N) sum_{i,j} W(x_i - x_j) at temperature sigma2 (W even), so its
stationary law is exp(-(H_N(x) + |p|^2/2) / sigma2); as N grows one particle's law tends to the minimiser of F,
mu* ∝ exp(-(V + W * mu*) / sigma2). Time stepping here is the OBABO or BAOAB splitting (second order), not the
paper's randomised-midpoint space-time scheme. The interaction is computed exactly, O(N^2 d) per step with vmap.
"""

from __future__ import annotations

import time
import warnings
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

INTEGRATORS = ("obabo", "baoab")


class MeanFieldState(NamedTuple):
    position: jax.Array  # (N, d)
    momentum: jax.Array  # (N, d)
    force: jax.Array  # (N, d): -(grad V + grad W * mu_N) at position


def _pair(W: Callable, pairwise: bool) -> Callable:
    """W as a function of two points: W(x, y) as given (pairwise=True, symmetric), else W(x - y)."""
    return W if pairwise else (lambda x, y: W(x - y))


def _force_fn(V: Callable, W: Callable, pairwise: bool = False):
    # for symmetric W, (1/N) sum_j d/dx W(x_i, x_j) is d/dx_i of 1/(2N) sum_{j,k} W(x_j, x_k)
    gV, gW = jax.grad(V), jax.grad(_pair(W, pairwise))

    def force(x):
        pair = jax.vmap(lambda xi: jax.vmap(lambda xj: gW(xi, xj))(x).mean(0))(x)  # (N, d), O(N^2 d)
        return -(jax.vmap(gV)(x) + pair)

    return force


def _energy_fn(V: Callable, W: Callable, pairwise: bool = False):
    W2 = _pair(W, pairwise)

    def energy(x):
        """int V dmu_N + 1/2 iint W dmu_N dmu_N at the empirical measure (the free energy without its entropy)."""
        pair = jax.vmap(lambda xi: jax.vmap(lambda xj: W2(xi, xj))(x))(x)
        return jax.vmap(V)(x).mean() + 0.5 * pair.mean()

    return energy


def meanfield_step(V: Callable, W: Callable, *, step_size, friction, sigma2, integrator: str = "obabo",
                   pairwise: bool = False):
    """One OBABO / BAOAB step of the N-particle system: `step(key, state) -> state` (pure, jittable)."""
    if integrator not in INTEGRATORS:
        raise ValueError(f"integrator must be one of {INTEGRATORS}, got {integrator!r}")
    force = _force_fn(V, W, pairwise)
    h, g, s2 = step_size, friction, sigma2

    def O(key, p, t):  # exact OU flow of the momentum over time t, stationary N(0, sigma2)
        c = jnp.exp(-g * t)
        return c * p + jnp.sqrt(s2 * (1 - c**2)) * jax.random.normal(key, p.shape, p.dtype)

    def step(key, state: MeanFieldState) -> MeanFieldState:
        x, p, f = state
        k1, k2 = jax.random.split(key)
        if integrator == "obabo":
            p = O(k1, p, h / 2)
            p = p + h / 2 * f
            x = x + h * p
            f = force(x)
            p = p + h / 2 * f
            p = O(k2, p, h / 2)
        else:
            p = p + h / 2 * f
            x = x + h / 2 * p
            p = O(k1, p, h)
            x = x + h / 2 * p
            f = force(x)
            p = p + h / 2 * f
        return MeanFieldState(x, p, f)

    return step, force


def run_population(V, W, key, init_position, *, step_size, friction, sigma2, num_steps, integrator="obabo",
                   pairwise=False):
    """Run one population for num_steps; returns the final state and per-step traces (jit- and vmap-able)."""
    step, force = meanfield_step(V, W, step_size=step_size, friction=friction, sigma2=sigma2, integrator=integrator,
                                 pairwise=pairwise)
    energy = _energy_fn(V, W, pairwise)
    k0, krun = jax.random.split(key)
    x0 = jnp.asarray(init_position)
    p0 = jnp.sqrt(sigma2) * jax.random.normal(k0, x0.shape, x0.dtype)
    state = MeanFieldState(x0, p0, force(x0))

    def body(s, k):
        s = step(k, s)
        x, p = s.position, s.momentum
        trace = {
            "energy": energy(x),  # int V dmu_N + 1/2 iint W dmu_N^2
            "kinetic_energy": 0.5 * jnp.mean(jnp.sum(p**2, -1)),
            "mean": jnp.mean(x, 0),  # (d,)
            "empirical_variance": jnp.var(x, 0),  # (d,) about the particle mean, divisor N
        }
        return s, trace

    return jax.lax.scan(body, state, jax.random.split(krun, num_steps))


def sample_meanfield(V: Callable, W: Callable, dim: int, *, num_particles: int = 256, step_size: float = 0.1,
                     friction: float = 1.0, sigma2: float = 1.0, num_steps: int = 1000, num_populations: int = 1,
                     seed: int = 0, integrator: str = "obabo", init_scale: float = 1.0, init_position=None,
                     pairwise: bool = False):
    """N-particle underdamped Langevin for the free energy with confinement V and interaction W (both R^d -> R).

    pairwise=True: W is a symmetric function of two points, W(x, y), for energies 1/2 iint W(x, y) dmu dmu that are
      not of convolution type (e.g. a mean-field two-layer network's squared loss: W(x, y) = E_z[h_z(x) h_z(y)]).

    Returns an ArviZ DataTree: `posterior` (chain, draw) = (independent population, particle) at the last step,
    variable "x" (dim x_dim_0 = dim); `trace` group (chain, step) with, per step, "energy" (the free energy without
    its entropy term, at the empirical measure), "kinetic_energy" (per particle), "mean" and "empirical_variance"
    (per coordinate; about the particle mean, divisor N). Populations are keyed fold_in(key(seed), c).
    """
    for name, v in (("num_particles", num_particles), ("num_steps", num_steps), ("num_populations", num_populations),
                    ("dim", dim)):
        if int(v) < 1:
            raise ValueError(f"{name} must be >= 1, got {v}")
    for name, v in (("step_size", step_size), ("friction", friction), ("sigma2", sigma2)):
        if not v > 0:
            raise ValueError(f"{name} must be > 0, got {v}")
    if integrator not in INTEGRATORS:
        raise ValueError(f"integrator must be one of {INTEGRATORS}, got {integrator!r}")
    pt = jax.ShapeDtypeStruct((int(dim),), jnp.result_type(float))
    for name, fn, args in (("V", V, (pt,)), ("W", W, (pt, pt) if pairwise else (pt,))):
        shape = jax.eval_shape(fn, *args).shape
        if shape != ():
            raise ValueError(f"{name} must map a point of R^{dim} (shape ({dim},)) to a scalar, got shape {shape}")
    if init_position is not None and jnp.shape(init_position)[-1:] != (int(dim),):
        raise ValueError(f"init_position must end in dim = {dim}, got shape {jnp.shape(init_position)}")
    from arviz_base import dict_to_dataset, from_dict

    root = jax.random.key(seed)
    keys = jax.vmap(lambda c: jax.random.fold_in(root, c))(jnp.arange(num_populations))
    if init_position is None:
        x0 = init_scale * jax.vmap(
            lambda k: jax.random.normal(jax.random.fold_in(k, 1), (num_particles, dim)))(keys)
    else:
        x0 = jnp.broadcast_to(jnp.asarray(init_position, dtype=float), (num_populations, num_particles, dim))

    def one(key, x):
        return run_population(V, W, key, x, step_size=step_size, friction=friction, sigma2=sigma2,
                              num_steps=num_steps, integrator=integrator, pairwise=pairwise)

    t0 = time.perf_counter()
    final, trace = jax.jit(jax.vmap(one))(keys, x0)
    final = jax.block_until_ready(final)
    wall = time.perf_counter() - t0
    with warnings.catch_warnings():  # more populations than particles is a legitimate layout here
        warnings.filterwarnings("ignore", message="Found chain dimension to be longer than draw dimension")
        dt = from_dict({"posterior": {"x": np.asarray(final.position)}})
    tr = {k: np.asarray(v) for k, v in trace.items()}
    dims = {k: [f"{k}_dim_{i}" for i in range(v.ndim - 2)] for k, v in tr.items()}
    dt["trace"] = dict_to_dataset(tr, dims=dims, sample_dims=["chain", "step"])
    dt.attrs.update({
        "sampler": "meanfield_underdamped", "integrator": integrator, "num_particles": int(num_particles),
        "num_populations": int(num_populations), "step_size": float(step_size), "friction": float(friction),
        "sigma2": float(sigma2), "num_steps": int(num_steps), "pairwise": bool(pairwise), "seed": int(seed),
        "wall_time": wall,
        "n_grad_sampling": int(num_populations * (num_steps + 1) * num_particles * (num_particles + 1)),
    })
    return dt


# ---------------------------------------------------------------------- exact answers for the Gaussian case
def gaussian_meanfield_variance(a: float, b: float, sigma2: float) -> float:
    """Variance per coordinate of mu* for V = a|x|^2/2, W = b|z|^2/2: grad(W * mu)(x) = b(x - m), m = 0."""
    return sigma2 / (a + b)


def gaussian_particle_variance(a: float, b: float, sigma2: float, num_particles: int, step_size: float = 0.0,
                               integrator: str = "obabo") -> float:
    """Exact stationary variance of one particle's coordinate for the N-particle chain (step_size=0: the SDE).

    H_N = (a+b)/2 sum|x_i|^2 - b/(2N) |sum x_i|^2: the mean mode has stiffness a, the N-1 others a+b. For a
    harmonic mode of stiffness k, OBABO keeps exp(-(p^2/2 + k(1 - h^2 k/4) x^2/2)/sigma2) (the shadow energy of
    the BAB leapfrog map, which the exact O steps preserve); BAOAB's position marginal is exact, sigma2/k
    (Leimkuhler & Matthews 2013).
    """
    n, h = num_particles, step_size

    def v(k):
        if integrator == "obabo":
            if h**2 * k >= 4:
                return float("inf")
            return sigma2 / (k * (1 - h**2 * k / 4))
        return sigma2 / k

    return v(a) / n + v(a + b) * (1 - 1 / n)
