"""Mean-field underdamped Langevin: N interacting particles for F(mu) = int V + 1/2 iint W(x - y) + sigma2 Ent(mu).

The N-particle system (Fu & Wilson 2023, arXiv 2312.16360, their Eq. for the N-particle underdamped Langevin dynamics)
    dX_i = P_i dt,
    dP_i = -gamma P_i dt - (grad V(X_i) + (1/N) sum_j grad W(X_i - X_j)) dt + sqrt(2 gamma sigma2) dB_i,
is kinetic Langevin on H_N(x) = sum_i V(x_i) + 1/(2N) sum_{i,j} W(x_i - x_j) at temperature sigma2 (W even), so its
stationary law is exp(-(H_N(x) + |p|^2/2) / sigma2); as N grows one particle's law tends to the minimiser of F,
mu* ∝ exp(-(V + W * mu*) / sigma2).

Time stepping: the OBABO or BAOAB splitting (one force evaluation per step), or "randomized_midpoint", the
randomized midpoint method for underdamped Langevin (Shen & Lee, NeurIPS 2019) that Fu & Wilson apply to the particle
system (two force evaluations per step; see `_rm_noise_cov`). Space: the interaction is exact, O(N^2 d) per force
evaluation, or, with `interaction_batch=B`, the random batch method (Jin, Li & Liu, J. Comput. Phys. 400 (2020)): at
each force evaluation the particles are split at random into N/B groups of B and each feels only its own group,
(N-1)/N * 1/(B-1) sum over its B-1 group mates, an unbiased estimate of the exact (1/N) sum_j at O(N B d) cost.
(Only the abstract of Fu & Wilson was readable to us; the random batches are our reading of "spacetime".)
"""

from __future__ import annotations

import time
import warnings
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from samplax import checks

INTEGRATORS = ("obabo", "baoab", "randomized_midpoint")


class MeanFieldState(NamedTuple):
    position: jax.Array  # (N, d)
    momentum: jax.Array  # (N, d)
    force: jax.Array  # (N, d): -(grad V + grad W * mu_N) at position
    potential: jax.Array  # (N,): V at position (from the same evaluation as the force's gradient of V)


def _pair(W: Callable, pairwise: bool) -> Callable:
    """W as a function of two points: W(x, y) as given (pairwise=True, symmetric), else W(x - y)."""
    return W if pairwise else (lambda x, y: W(x - y))


def _force_fn(V: Callable, W: Callable | None, pairwise: bool = False, batch: int | None = None):
    """force(key, x) -> (-(grad V + grad W * mu_N), V) at every particle; W None: no interaction.

    batch=B: random batch method (module docstring); the self term d/dx W(x, y)|_{y=x} (zero for an even convolution
    W, not in general for a pairwise one) is kept exactly, the N-1 others are estimated from the B-1 group mates."""
    vgV = jax.vmap(jax.value_and_grad(V))

    def confinement(x):
        v, g = vgV(x)
        return -g, v

    if W is None:
        return lambda key, x: confinement(x)
    gW = jax.grad(_pair(W, pairwise))

    def exact(key, x):
        # for symmetric W, (1/N) sum_j d/dx W(x_i, x_j) is d/dx_i of 1/(2N) sum_{j,k} W(x_j, x_k)
        pair = jax.vmap(lambda xi: jax.vmap(lambda xj: gW(xi, xj))(x).mean(0))(x)  # (N, d), O(N^2 d)
        f, v = confinement(x)
        return f - pair, v

    if batch is None:
        return exact

    def batched(key, x):
        n, d = x.shape
        perm = jax.random.permutation(key, n)
        groups = x[perm].reshape(n // batch, batch, d)

        def within(g):  # (B, d): sum over the group of grad W(x_i, x_j), j != i, and the self term apart
            full = jax.vmap(lambda xi: jax.vmap(lambda xj: gW(xi, xj))(g))(g)  # (B, B, d)
            self_term = jnp.einsum("iid->id", full)
            return full.sum(1) - self_term, self_term

        others, self_term = jax.vmap(within)(groups)
        others, self_term = others.reshape(n, d), self_term.reshape(n, d)
        pair = (self_term + (n - 1) / (batch - 1) * others) / n
        pair = jnp.zeros_like(x).at[perm].set(pair)
        f, v = confinement(x)
        return f - pair, v

    return batched


def _energy_fn(W: Callable | None, pairwise: bool = False):
    """energy(x, v): int V dmu_N + 1/2 iint W dmu_N dmu_N at the empirical measure (the free energy without its
    entropy), from the V values v the force evaluation already computed (no further evaluation of V)."""
    if W is None:
        return lambda x, v: v.mean()
    W2 = _pair(W, pairwise)

    def energy(x, v):
        pair = jax.vmap(lambda xi: jax.vmap(lambda xj: W2(xi, xj))(x))(x)
        return v.mean() + 0.5 * pair.mean()

    return energy


# Gauss-Legendre nodes for the noise covariances of the randomized midpoint step: their integrands are smooth
# exponentials on each piece, so 12 nodes are exact to rounding for friction * step_size up to ~5
_GL_X, _GL_W = np.polynomial.legendre.leggauss(12)


def _rm_noise_cov(alpha, h, gamma, sigma2):
    """Covariance (3, 3) per coordinate of the Brownian integrals of one randomized midpoint step.

    Exact solution over [0, t] with the force F frozen along the path (Shen & Lee 2019, their ULD step):
        x(t) = x0 + phi(t) p0 + int_0^t phi(t - s) F ds + c int_0^t phi(t - s) dB_s,
        p(t) = e^{-gamma t} p0 + int_0^t e^{-gamma (t - s)} F ds + c int_0^t e^{-gamma (t - s)} dB_s,
    phi(u) = (1 - e^{-gamma u}) / gamma, c = sqrt(2 gamma sigma2).
    The step draws (W1, W2, W3) = c int (phi(alpha h - s) 1{s < alpha h}, phi(h - s), e^{-gamma (h - s)}) dB_s, one
    Brownian path: the position noise at the midpoint and the position and momentum noises at the end."""
    tau = alpha * h
    phi = lambda u: -jnp.expm1(-gamma * u) / gamma  # noqa: E731

    def piece(lo, hi, with_mid):
        s = lo + (hi - lo) * (_GL_X + 1) / 2
        w = (hi - lo) / 2 * _GL_W
        g = jnp.stack([phi(tau - s) * with_mid, phi(h - s), jnp.exp(-gamma * (h - s))])  # (3, nodes)
        return (g * w) @ g.T

    return 2 * gamma * sigma2 * (piece(0.0, tau, 1.0) + piece(tau, h, 0.0))


def _sqrt_psd(c):
    """Lower-triangular L with L L^T = c for the 3x3 covariance of (W1, W2, W3), factored in the order W3, W2, W1
    (elementwise, so it vectorises over particles): W3 and W2 given W3 are never degenerate for h > 0, and the
    last pivot, W1 given both, which vanishes at alpha = 0 and alpha = 1, is clamped at 0 instead of going NaN."""
    c33, c23, c13, c22, c12, c11 = c[2, 2], c[1, 2], c[0, 2], c[1, 1], c[0, 1], c[0, 0]
    a = jnp.sqrt(c33)  # W3 = a z3
    b2 = c23 / a  # W2 = b2 z3 + b_ z2
    b_ = jnp.sqrt(jnp.maximum(c22 - b2**2, 0.0))
    d3 = c13 / a  # W1 = d3 z3 + d2 z2 + d1 z1
    d2 = jnp.where(b_ > 0, (c12 - d3 * b2) / jnp.where(b_ > 0, b_, 1.0), 0.0)
    d1 = jnp.sqrt(jnp.maximum(c11 - d3**2 - d2**2, 0.0))
    z = jnp.zeros_like(a)
    # rows: W1, W2, W3; columns: z1, z2, z3
    return jnp.array([[d1, d2, d3], [z, b_, b2], [z, z, a]])


def meanfield_step(V: Callable, W: Callable | None, *, step_size, friction, sigma2, integrator: str = "obabo",
                   pairwise: bool = False, interaction_batch: int | None = None):
    """One step of the N-particle system: `step(key, state) -> state` (pure, jittable), and `force(key, x)`.

    obabo / baoab: one force evaluation per step. randomized_midpoint: two (at a uniform random time alpha h
    inside the step and at the end); alpha is drawn per particle when W is None, else shared by all particles so
    the interaction is evaluated at one time (the particles' laws are the same either way, but with a shared alpha
    particles are dependent through it: average over steps, not only over particles)."""
    if not checks.member(integrator, INTEGRATORS):
        raise ValueError(f"integrator must be one of {INTEGRATORS}, got {integrator!r}")
    force = _force_fn(V, W, pairwise, interaction_batch)
    h, g, s2 = step_size, friction, sigma2

    def O(key, p, t):  # exact OU flow of the momentum over time t, stationary N(0, sigma2)
        c = jnp.exp(-g * t)
        return c * p + jnp.sqrt(s2 * (1 - c**2)) * jax.random.normal(key, p.shape, p.dtype)

    def step(key, state: MeanFieldState) -> MeanFieldState:
        x, p, f, v = state
        k1, k2, kf1, kf2 = jax.random.split(key, 4)
        if integrator == "obabo":
            p = O(k1, p, h / 2)
            p = p + h / 2 * f
            x = x + h * p
            f, v = force(kf1, x)
            p = p + h / 2 * f
            p = O(k2, p, h / 2)
        elif integrator == "baoab":
            p = p + h / 2 * f
            x = x + h / 2 * p
            p = O(k1, p, h)
            x = x + h / 2 * p
            f, v = force(kf1, x)
            p = p + h / 2 * f
        else:
            # one midpoint time per particle for independent particles (each its own Shen-Lee chain); with an
            # interaction one for all, so the interaction is evaluated at positions of one time
            alpha = jax.random.uniform(k1, (x.shape[0] if W is None else 1,), x.dtype)
            L = jax.vmap(lambda al: _sqrt_psd(_rm_noise_cov(al, h, g, s2)))(alpha)  # (N or 1, 3, 3)
            L = jnp.broadcast_to(L, (x.shape[0], 3, 3))
            tau = (alpha * h)[:, None]
            phi = lambda u: -jnp.expm1(-g * u) / g  # noqa: E731
            z = jax.random.normal(k2, (3,) + x.shape, x.dtype)
            w1, w2, w3 = jnp.einsum("nij,jnd->ind", L, z)  # per coordinate, independent across coordinates
            x_mid = x + phi(tau) * p + (tau - phi(tau)) / g * f + w1  # int_0^tau phi(tau - s) ds = (tau - phi(tau))/g
            f_mid, _ = force(kf1, x_mid)
            x_new = x + phi(h) * p + h * phi(h - tau) * f_mid + w2
            p = jnp.exp(-g * h) * p + h * jnp.exp(-g * (h - tau)) * f_mid + w3
            x = x_new
            f, v = force(kf2, x)
        return MeanFieldState(x, p, f, v)

    return step, force


def evaluations_per_step(integrator: str) -> int:
    """Force evaluations (gradients of V, and interaction sums) per step; the initial force is one more."""
    return 2 if integrator == "randomized_midpoint" else 1


def run_population(V, W, key, init_position, *, step_size, friction, sigma2, num_steps, integrator="obabo",
                   pairwise=False, interaction_batch=None):
    """Run one population for num_steps; returns the final state and per-step traces (jit- and vmap-able)."""
    step, force = meanfield_step(V, W, step_size=step_size, friction=friction, sigma2=sigma2, integrator=integrator,
                                 pairwise=pairwise, interaction_batch=interaction_batch)
    energy = _energy_fn(W, pairwise)
    k0, krun = jax.random.split(key)
    x0 = jnp.asarray(init_position)
    p0 = jnp.sqrt(sigma2) * jax.random.normal(k0, x0.shape, x0.dtype)
    state = MeanFieldState(x0, p0, *force(jax.random.fold_in(k0, 1), x0))

    def body(s, k):
        s = step(k, s)
        x, p = s.position, s.momentum
        trace = {
            "energy": energy(x, s.potential),  # int V dmu_N + 1/2 iint W dmu_N^2
            "kinetic_energy": 0.5 * jnp.mean(jnp.sum(p**2, -1)),
            "mean": jnp.mean(x, 0),  # (d,)
            "empirical_variance": jnp.var(x, 0),  # (d,) about the particle mean, divisor N
        }
        return s, trace

    return jax.lax.scan(body, state, jax.random.split(krun, num_steps))


def pair_gradients(n: int, batch: int | None, interacting: bool = True) -> int:
    """Gradients of W per force evaluation: N^2 pairs exactly (the self pair included), N B with random batches."""
    if not interacting:
        return 0
    return n * (n if batch is None else batch)


def check_settings(V, W, dim, *, integrator, pairwise, interaction_batch, num_particles, v_name="V"):
    """Errors that name the argument: integrator, shapes of V and W, interaction_batch."""
    if not checks.member(integrator, INTEGRATORS):
        raise ValueError(f"integrator must be one of {INTEGRATORS}, got {integrator!r}")
    if W is not None and not callable(W):
        raise ValueError(f"W must be a callable W(z) of z = x - y (or W(x, y) with pairwise=True), or None for no "
                         f"interaction, got {type(W).__name__}")
    if interaction_batch is not None:
        b = interaction_batch
        if isinstance(b, bool) or not isinstance(b, (int, np.integer)) or b < 2 or num_particles % b:
            raise ValueError(f"interaction_batch must be an integer >= 2 that divides num_particles = {num_particles} "
                             f"(or None for the exact interaction), got {b!r}")
        if W is None:
            raise ValueError("interaction_batch is given but W is None: there is no interaction to batch")
    pt = jax.ShapeDtypeStruct((int(dim),), jnp.result_type(float))
    fns = [(v_name, V, (pt,))] + ([("W", W, (pt, pt) if pairwise else (pt,))] if W is not None else [])
    for name, fn, args in fns:
        shape = jax.eval_shape(fn, *args).shape
        if shape != ():
            raise ValueError(f"{name} must map a point of R^{dim} (shape ({dim},)) to a scalar, got shape {shape}")


_PROGRAMS: dict = {}
MAX_PROGRAMS = 32


def function_digest(fn, *avals):
    """A content key of a traced function (jaxpr text, constants by hash, opaque parameters by equality); raises
    compile_cache.Uncacheable when it cannot be traced or keyed."""
    import hashlib

    from samplax.compile_cache import Uncacheable, _jaxpr_digest

    if fn is None:
        return None
    try:
        h, objects = hashlib.sha256(), []
        _jaxpr_digest(h, objects, fn, *avals)
        key = (h.hexdigest(), tuple(objects))
        hash(key)
        return key
    except Exception as err:  # noqa: BLE001 - anything untraceable or unhashable is not cached
        raise Uncacheable(str(err)) from err


def compiled_program(fn, args, name, V, W, dim, settings):
    """`fn` compiled for `args`, reused across calls with the same V, W (by the content of their traced programs),
    settings and argument shapes; (executable, seconds spent compiling)."""
    from samplax.compile_cache import Uncacheable, compiled, content_key

    pt = jax.ShapeDtypeStruct((int(dim),), jnp.result_type(float))
    try:
        w_args = (pt, pt) if settings.get("pairwise") else (pt,)
        key = (name, function_digest(V, pt), None if W is None else function_digest(W, *w_args),
               content_key(settings), jnp.result_type(float).str)
    except Uncacheable:
        return compiled({}, name, fn, args)
    slot = _PROGRAMS.setdefault(key, {})
    while len(_PROGRAMS) > MAX_PROGRAMS:
        _PROGRAMS.pop(next(iter(_PROGRAMS)))
    return compiled(slot, name, fn, args)


def sample_meanfield(V: Callable, W: Callable, dim: int, *, num_particles: int = 256, step_size: float = 0.1,
                     friction: float = 1.0, sigma2: float = 1.0, num_steps: int = 1000, num_populations: int = 1,
                     seed: int = 0, integrator: str = "obabo", init_scale: float = 1.0, init_position=None,
                     pairwise: bool = False, interaction_batch: int | None = None):
    """N-particle underdamped Langevin for the free energy with confinement V and interaction W (both R^d -> R).

    pairwise=True: W is a symmetric function of two points, W(x, y), for energies 1/2 iint W(x, y) dmu dmu that are
      not of convolution type (e.g. a mean-field two-layer network's squared loss: W(x, y) = E_z[h_z(x) h_z(y)]).
    W=None: no interaction (independent particles). integrator: "obabo", "baoab" or "randomized_midpoint".
    interaction_batch=B: random batch interaction (module docstring); B must divide num_particles, B >= 2.
    The compiled program is cached on the content of V, W (their traced programs) and the settings, so calling
    again with the same problem (another seed, a new lambda of the same function) does not compile again.

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
    check_settings(V, W, dim, integrator=integrator, pairwise=pairwise, interaction_batch=interaction_batch,
                   num_particles=num_particles)
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

    settings = dict(step_size=float(step_size), friction=float(friction), sigma2=float(sigma2),
                    num_steps=int(num_steps), integrator=integrator, pairwise=bool(pairwise),
                    interaction_batch=None if interaction_batch is None else int(interaction_batch))

    def one(key, x):
        return run_population(V, W, key, x, **settings)

    t0 = time.perf_counter()
    exe, compile_s = compiled_program(jax.vmap(one), (keys, x0), "sample_meanfield", V, W, dim, settings)
    final, trace = exe(keys, x0)
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
        "wall_time": wall, "compile_time": compile_s,
        "interaction_batch": -1 if interaction_batch is None else int(interaction_batch),
        # gradients of V, and of W (pairs), all populations: the initial force + evaluations_per_step per step
        "n_grad_sampling": int(num_populations * (evaluations_per_step(integrator) * num_steps + 1) * num_particles),
        "n_grad_interaction": int(num_populations * (evaluations_per_step(integrator) * num_steps + 1)
                                  * pair_gradients(num_particles, interaction_batch, W is not None)),
    })
    return dt


# ---------------------------------------------------------------------- exact answers for the Gaussian case
def gaussian_meanfield_variance(a: float, b: float, sigma2: float) -> float:
    """Variance per coordinate of mu* for V = a|x|^2/2, W = b|z|^2/2: grad(W * mu)(x) = b(x - m), m = 0."""
    return sigma2 / (a + b)


def gaussian_particle_variance(a: float, b: float, sigma2: float, num_particles: int, step_size: float = 0.0,
                               integrator: str = "obabo", friction: float = 1.0) -> float:
    """Exact stationary variance of one particle's coordinate for the N-particle chain (step_size=0: the SDE).

    H_N = (a+b)/2 sum|x_i|^2 - b/(2N) |sum x_i|^2: the mean mode has stiffness a, the N-1 others a+b. For a
    harmonic mode of stiffness k, OBABO keeps exp(-(p^2/2 + k(1 - h^2 k/4) x^2/2)/sigma2) (the shadow energy of
    the BAB leapfrog map, which the exact O steps preserve); BAOAB's position marginal is exact, sigma2/k
    (Leimkuhler & Matthews 2013); the randomized midpoint chain's is `rm_mode_variance` (depends on friction).
    """
    n, h = num_particles, step_size

    def v(k):
        if h == 0:
            return sigma2 / k
        if integrator == "obabo":
            if h**2 * k >= 4:
                return float("inf")
            return sigma2 / (k * (1 - h**2 * k / 4))
        if integrator == "randomized_midpoint":
            return rm_mode_variance(k, sigma2, h, friction)
        return sigma2 / k

    return v(a) / n + v(a + b) * (1 - 1 / n)


def rm_mode_variance(k: float, sigma2: float, h: float, friction: float, nodes: int = 64) -> float:
    """Stationary position variance of the randomized midpoint chain on one harmonic mode of stiffness k.

    Given the midpoint fraction alpha, the step is linear, z' = M(alpha) z + G(alpha) (W1, W2, W3) with z = (x, p)
    and F = -k x (see `meanfield_step`); alpha ~ U(0, 1) afresh each step, so the stationary covariance solves
    S = E[M S M^T] + E[G C G^T] (C = `_rm_noise_cov`), a 4x4 linear system; E over alpha by Gauss-Legendre (the
    integrands are smooth in alpha). Inf when the chain is unstable (spectral radius of E[M (x) M] >= 1)."""
    g = friction
    phi = lambda u: -np.expm1(-g * u) / g  # noqa: E731
    xs, ws = np.polynomial.legendre.leggauss(nodes)
    EMM, EQ = np.zeros((4, 4)), np.zeros((2, 2))
    for x_, w_ in zip((xs + 1) / 2, ws / 2, strict=True):
        tau = x_ * h
        mid = np.array([1 - k * (tau - phi(tau)) / g, phi(tau)])  # x_mid = mid . (x0, p0) + W1
        cx, cp = -k * h * phi(h - tau), -k * h * np.exp(-g * (h - tau))
        M = np.array([[1.0, phi(h)], [0.0, np.exp(-g * h)]]) + np.outer([cx, cp], mid)
        G = np.array([[cx, 1.0, 0.0], [cp, 0.0, 1.0]])
        C = np.asarray(_rm_noise_cov(jnp.asarray(x_), h, g, sigma2), dtype=float)
        EMM += w_ * np.kron(M, M)
        EQ += w_ * G @ C @ G.T
    if np.max(np.abs(np.linalg.eigvals(EMM))) >= 1:
        return float("inf")
    S = np.linalg.solve(np.eye(4) - EMM, EQ.reshape(-1)).reshape(2, 2)
    return float(S[0, 0])
