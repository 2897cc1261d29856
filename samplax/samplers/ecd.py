"""Stochastic Energy Conserving Descent (sECD): ECDSep dynamics plus energy-preserving direction noise.

Dynamics.  ECDSep (De Luca, Gatti, Silverstein 2023, arXiv 2306.00352) is Hamiltonian flow for
    H(q, p) = w(q) + log(s + |p|^2),   w(q) = eta * log(F(q) - F0),   F0 < min F,
so  dq/dt = 2 p / (s + |p|^2)  and  dp/dt = -grad w = -eta grad F / (F - F0).  H = E is conserved, so
|p|^2 = exp(E - w(q)) - s: for s > 0 the motion stays in {F <= F0 + (e^E / s)^(1/eta)} and turns where
p = 0.  The speed is |dq/dt| = 2 |p| / (s + |p|^2) (`secd_speed_1d`).  Averaged over time on the energy
shell (microcanonical measure) the position law is
    rho(q) ∝ |p|^(d-2) (s + |p|^2)   ->   (F - F0)^(-eta d / 2)  at s = 0, independently of E.
Stochastic ECD (Sun, Wang, Hayden, Blanchet 2026, arXiv 2604.13022) randomises the direction of p at
fixed |p|, which leaves H and that law unchanged and makes the dynamics ergodic.  Here the direction
u = p/|p| is rotated each step by the angle arccos(exp(-2 lam dt)) towards a uniformly random tangent
direction, so E[u(t) . u(0)] = exp(-2 lam t) for every step size dt (the angle ~ sqrt(4 lam dt), the
discretised Brownian motion on the sphere; an angle that does not shrink like sqrt(dt) is a different
process, see tests).  In 1D the same rule is a sign flip with probability (1 - exp(-2 lam dt)) / 2: exactly
the telegraph process with flips at Poisson rate lam, observed on the step grid.

Physical clock (`ecd_init` / `ecd_step`, for a loss F: escape experiments, the optimiser): kick-drift-kick
(Stoermer-Verlet, 2nd order, one gradient per step; the drift is exact since |p| is constant during it);
with `project=True` |p| is rescaled back onto the energy shell afterwards (ECDSep's `consEn`), and
`energy_change` reports the error before that.

Sampler `secd` for p(x) ∝ exp(-U(x)), d >= 2.  At s = 0 the speed 2 e^((w - E)/2) grows without bound
with w, so a fixed physical step overshoots in the tails (we saw runaway excursions on a Gumbel target).
Re-timing by arc length (dtau = |dq/dt| dt) gives the unit-speed isokinetic flow
    dq/dtau = u,   du/dtau = -(I - u u^T) grad w / 2,
whose arc-length average is (F - F0)^(-eta (d-1)/2).  Choosing
    F - F0 = exp(2 U / (eta (d - 1))),   i.e. w = 2 U / (d - 1),
makes that average exactly the target (eta and F0 drop out), and the flow is du/dtau = (I - u u^T)
grad log p / (d - 1): the microcanonical (isokinetic) dynamics of MCLMC (Robnik et al. 2023), i.e. MCLMC is
ECDSep at s = 0 in the microcanonical limit with the log kinetic term ((d-1)/2 H = U + ((d-1)/2) log|p|^2,
the ESH Hamiltonian of Ver Steeg & Galstyan 2021 with d - 1 in place of d).  So `secd` uses blackjax's isokinetic
integrators and MCLMC's warmup (`mclmc.fisher_tuner`: step size from the energy-error variance per dimension,
`desired_energy_var`; low-rank Fisher preconditioner; L from the autocorrelation) and differs from `mclmc` only by
its noise: exact-angle rotations at rate lam = 1/(2L) per unit arc length, split in two half steps.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from blackjax.mcmc import integrators

from samplax import checks
from samplax.samplers.base import Algorithm, Sampler, register
from samplax.samplers.mclmc import Microcanonical, kernel_metric, metric_rank, microcanonical_tuner

Array = jax.Array


class ECDState(NamedTuple):
    position: Array
    momentum: Array  # canonical p in the preconditioned coordinates y = x / sigma
    potential: Array  # w(q) = eta log(F(q) - F0)
    potential_grad: Array  # grad_x w
    energy: Array  # conserved E = w + log(s + |p|^2)


class ECDInfo(NamedTuple):
    energy_change: Array  # H after the step minus E, before projecting back onto the shell
    speed: Array  # |dq/dt| in the preconditioned coordinates
    nonans: Array


# --------------------------------------------------------------------------------------- noise
def noise_cosine(lam, dt):
    """Per-step E[u' . u]: exp(-2 lam dt), so direction correlations decay as exp(-2 lam t) at any dt."""
    return jnp.exp(-2.0 * lam * dt)


def rotate_direction(key: Array, p: Array, cosine) -> Array:
    """Turn p by arccos(cosine) towards a uniform random tangent direction (1D: flip w.p. (1-cosine)/2), |p| kept."""
    norm = jnp.sqrt(jnp.sum(p * p))
    if p.shape[-1] == 1:
        flip = jax.random.uniform(key) < 0.5 * (1.0 - cosine)
        return jnp.where(flip, -p, p)
    u = p / jnp.where(norm > 0, norm, 1.0)
    z = jax.random.normal(key, p.shape, p.dtype)
    t = z - jnp.dot(z, u) * u
    t = t / jnp.sqrt(jnp.sum(t * t))
    sine = jnp.sqrt(jnp.clip(1.0 - cosine**2, 0.0, 1.0))
    return norm * (cosine * u + sine * t)


# ------------------------------------------------------------------------------------- dynamics
def speed_from_energy(energy, potential, s):
    """|dq/dt| = 2|p|/(s+|p|^2) on the shell |p|^2 = exp(E - w) - s; 0 beyond the turning points."""
    a = jnp.exp(energy - potential)
    return 2.0 * jnp.sqrt(jnp.clip(a - s, 0.0, None)) / a


def _check_speed(speed, s):
    """ECDSep's speed 2|p|/(s + |p|^2) is at most 1/sqrt(s) (at |p|^2 = s; unbounded at s = 0) and 0 only at rest:
    refuse a concrete `speed` outside (0, 1/sqrt(s)] (it was silently clipped: a start at rest, an infinite energy,
    or |speed|). Traced values are not checked."""
    if isinstance(speed, jax.core.Tracer) or isinstance(s, jax.core.Tracer):
        return
    v, s = np.asarray(speed, dtype=float), float(np.asarray(s, dtype=float))
    bound = np.inf if s <= 0 else 1.0 / np.sqrt(s)
    # the bound itself is reachable; 1e-12 absorbs rounding of a speed computed as 1/sqrt(s)
    if not (np.all(np.isfinite(v)) and np.all(v > 0) and np.all(v <= bound * (1 + 1e-12))):
        limit = "a positive finite number" if bound == np.inf else f"in (0, 1/sqrt(s)] = (0, {bound:.6g}] for s={s:g}"
        raise ValueError(f"speed must be {limit}: ECDSep's speed 2|p|/(s + |p|^2) is at most 1/sqrt(s) and 0 only at "
                         f"rest, got speed={speed!r}; pass a speed in that range, or energy=... directly")


def energy_for_speed(potential, speed, s=0.0):
    """E such that the speed at potential w equals `speed` (the faster-momentum branch, |p|^2 >= s); `speed` must be
    in (0, 1/sqrt(s)] (ValueError otherwise)."""
    _check_speed(speed, s)
    speed = jnp.asarray(speed, float)
    disc = 1.0 - speed**2 * s
    a = 2.0 * (1.0 + jnp.sqrt(jnp.clip(disc, 0.0, None))) / speed**2
    return potential + jnp.log(a)


def ecd_init(position: Array, w_and_grad: Callable, key: Array, *, energy=None, speed=1.0,
             s=0.0) -> ECDState:
    """Random direction; energy `energy`, or the one giving `speed` at the start (`speed` in (0, 1/sqrt(s)]: ECDSep's
    largest speed; ValueError otherwise)."""
    w, g = w_and_grad(position)
    e = energy_for_speed(w, speed, s) if energy is None else jnp.asarray(energy, float)
    p2 = jnp.clip(jnp.exp(e - w) - s, 0.0, None)
    z = jax.random.normal(key, jnp.shape(position))
    u = z / jnp.sqrt(jnp.sum(z * z))
    return ECDState(position, jnp.sqrt(p2) * u, w, g, e)


def velocity(p: Array, s) -> Array:
    """dq/dt = 2 p / (s + |p|^2): ECDSep's drift, shared by the physical-clock step and the ECD optimiser."""
    return 2.0 * p / (s + jnp.sum(p * p))


def project_to_shell(p: Array, energy, potential, s) -> Array:
    """Rescale p onto the energy shell |p|^2 = exp(E - w) - s (ECDSep's `consEn`); unchanged where it is empty."""
    p2 = jnp.sum(p * p)
    target = jnp.exp(energy - potential) - s
    ok = (target > 0) & (p2 > 0)
    return p * jnp.where(ok, jnp.sqrt(jnp.where(ok, target / jnp.where(p2 > 0, p2, 1.0), 1.0)), 1.0)


def ecd_step(key: Array, state: ECDState, w_and_grad: Callable, *, step_size, lam, s=0.0, sigma=1.0,
             project: bool = True, noise_fn: Callable = noise_cosine) -> tuple[ECDState, ECDInfo]:
    """One kick-drift-kick step of ECDSep followed by the energy-preserving direction noise."""
    dt = step_size
    p = state.momentum - 0.5 * dt * sigma * state.potential_grad
    x = state.position + dt * sigma * velocity(p, s)
    w, g = w_and_grad(x)
    p = p - 0.5 * dt * sigma * g
    energy_change = w + jnp.log(s + jnp.sum(p * p)) - state.energy
    if project:
        p = project_to_shell(p, state.energy, w, s)
    p2 = jnp.sum(p * p)
    p = rotate_direction(key, p, noise_fn(lam, dt))
    nonans = jnp.isfinite(w) & jnp.all(jnp.isfinite(x)) & jnp.all(jnp.isfinite(p))
    speed = 2.0 * jnp.sqrt(p2) / (s + p2)
    return ECDState(x, p, w, g, state.energy), ECDInfo(energy_change, speed, nonans)


def loss_potential(F: Callable, eta: float, F0: float) -> Callable:
    """w = eta log(F - F0) and its gradient; NaN where F <= F0 (F0 must lie below the loss)."""

    def w(x):
        return eta * jnp.log(F(x) - F0)

    return jax.value_and_grad(w)


def secd_speed_1d(V: Callable, energy: float, *, eta: float = 1.0, F0: float = 0.0, s: float = 0.0) -> Callable:
    """theta -> |dtheta/dt| of 1D ECDSep on loss V at conserved energy E (0 beyond the turning points).

    |dtheta/dt| = 2 sqrt(A - s) / A with A = exp(E) (V - F0)^(-eta); at s = 0 this is 2 e^(-E/2) (V - F0)^(eta/2).
    """

    def v(theta):
        w = eta * jnp.log(V(theta) - F0)
        return speed_from_energy(energy, w, s)

    return v


# -------------------------------------------------------------------------------------- sampler
class SECDInfo(NamedTuple):
    logdensity: Array
    kinetic_change: Array
    energy_change: Array
    nonans: Array


INTEGRATORS = {"leapfrog": (integrators.isokinetic_velocity_verlet, 1),
               "mclachlan": (integrators.isokinetic_mclachlan, 2)}


def build_kernel(integrator: str = "mclachlan", noise_fn: Callable = noise_cosine):
    """sECD at s = 0 in arc-length time, blackjax kernel signature (for blackjax's MCLMC tuner too).

    The state is blackjax's `IntegratorState` with `momentum` the unit direction u; the direction noise
    (rate lam = 1/(2L) per unit arc length) is split in two half-step rotations around the flow.
    """
    if not checks.member(integrator, INTEGRATORS):
        raise ValueError(f"integrator must be one of {sorted(INTEGRATORS)}, got {integrator!r}")
    make = INTEGRATORS[integrator][0]

    def kernel(rng_key, state, logdensity_fn, inverse_mass_matrix, L, step_size):
        k1, k2, k3 = jax.random.split(rng_key, 3)
        lam = 0.5 / L
        half = noise_fn(lam, 0.5 * step_size)
        start = state._replace(momentum=rotate_direction(k1, state.momentum, half))
        new, kinetic_change = make(logdensity_fn, inverse_mass_matrix)(start, step_size)
        new = new._replace(momentum=rotate_direction(k2, new.momentum, half))
        energy_change = kinetic_change - new.logdensity + state.logdensity
        nonans = (jnp.all(jnp.isfinite(new.position)) & jnp.all(jnp.isfinite(new.momentum))
                  & jnp.isfinite(new.logdensity) & jnp.isfinite(energy_change))
        # a non-finite step is undone with a fresh direction (the step size tuner then shrinks the step)
        fresh = state._replace(momentum=_unit(jax.random.normal(k3, state.position.shape)))
        new = jax.tree.map(lambda a, b: jnp.where(nonans, a, b), new, fresh)
        zero = jnp.zeros_like(energy_change)
        info = SECDInfo(new.logdensity, jnp.where(nonans, kinetic_change, zero),
                        jnp.where(nonans, energy_change, zero), nonans)
        return new, info

    return kernel


def _unit(z):
    return z / jnp.sqrt(jnp.sum(z * z))


def secd_init(position, logdensity_fn, key):
    if jnp.shape(position)[-1] < 2:
        raise ValueError("secd needs dim >= 2 (its arc-length form has force grad U/(d-1)); in 1D use "
                         "samplax.samplers.ecd.ecd_step, the physical-clock telegraph dynamics")
    lp, g = jax.value_and_grad(logdensity_fn)(position)
    return integrators.IntegratorState(position, _unit(jax.random.normal(key, jnp.shape(position))), lp, g)


@register("secd")
def secd(*, integrator: str = "mclachlan", desired_energy_var: float = 5e-4, diagonal_preconditioning: bool = True,
         metric: str = "fisher_low_rank", step_size: float | None = None, L: float | None = None,
         inverse_mass_matrix=None, adapt=None) -> Sampler:
    """Stochastic ECD sampler: ECDSep at s = 0 with F - F0 = exp(2U/(eta(d-1))), arc-length clock, rotation noise.

    Tuned like `mclmc` (the same warmup on this kernel: low-rank Fisher preconditioner by default, `metric`;
    energy-error step size; L from the autocorrelation), only the params not given (or named in `adapt`).
    """
    checks.positive("desired_energy_var", desired_energy_var)
    kernel = build_kernel(integrator)
    grads = INTEGRATORS[integrator][1]
    mc = Microcanonical("secd", L=L, step_size=step_size, inverse_mass_matrix=inverse_mass_matrix,
                        diagonal_preconditioning=diagonal_preconditioning, adapt=adapt, rank=metric_rank(metric))

    def build(target, params):
        def step(key, state):
            return kernel(key, state, target.logdensity, kernel_metric(params), params["L"],
                          params["step_size"])

        return Algorithm(lambda x, key: secd_init(x, target.logdensity, key), step)

    def stats(state, info, params):
        # a non-finite step is undone (see build_kernel): `nonfinite` counts those
        return {"lp": state.logdensity, "energy_change": info.energy_change, "diverging": ~info.nonans,
                "nonfinite": ~info.nonans, "n_grad": jnp.asarray(grads), "step_size": params["step_size"],
                "L": params["L"]}

    tune, L_scales = microcanonical_tuner(metric, kernel, desired_energy_var)
    return Sampler(
        name="secd", build=build, stats=stats, default_params=mc.default_params, adapted=mc.adapted,
        warmup=mc.warmup(secd_init, tune, grads, L_scales),
        settings={"integrator": integrator, "desired_energy_var": desired_energy_var,
                  "diagonal_preconditioning": diagonal_preconditioning, "step_size": step_size, "L": L,
                  "metric": metric},
    )
