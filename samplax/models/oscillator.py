"""An ODE inverse problem: the frequency, damping and amplitude of a damped oscillator from noisy positions.

    y'' + 2 zeta omega y' + omega^2 y = 0,   y(0) = y0, y'(0) = 0,   observed y(t_i) + N(0, 0.1^2), i = 1..20

on [0, 4] (about 1.3 periods), priors omega ~ LogNormal(log 2, 0.2) (written non-centred: omega = 2 exp(0.2 z),
z ~ N(0, 1), so that initial points stay away from the aliased modes at several times the frequency that a wide
prior lets chains start in), zeta ~ Beta(2, 5), y0 ~ Normal(1, 0.5); the data are simulated once (omega = 2,
zeta = 0.15, y0 = 1.2, numpy seed 0). `solver` picks how y(t) is computed, the rest is identical,
so every variant has the same unconstrained parametrisation:

- "fine": diffrax Tsit5 with `steps` constant steps on [0, 4] (default 1000): the expensive model;
- "coarse": diffrax Heun with `steps` steps (default 40): a cheap, biased surrogate for `two_level`;
- "exact": the closed form (zeta < 1): ground truth for tests, equal to "fine" to ~1e-9.
"""

from __future__ import annotations

import numpy as np

from samplax import checks
from samplax.models import register

T_END, NOISE = 4.0, 0.1
TIMES = np.linspace(0.2, T_END, 20)
TRUTH = {"omega": 2.0, "zeta": 0.15, "y0": 1.2}


def closed_form(t, omega, zeta, y0):
    """y(t) for zeta < 1; numpy for numpy / float arguments (the data), jax.numpy otherwise (the log-density)."""
    import jax.numpy as jnp

    xp = np if all(isinstance(a, (np.ndarray, float)) for a in (t, omega, zeta, y0)) else jnp
    wd = omega * xp.sqrt(1 - zeta**2)
    return y0 * xp.exp(-zeta * omega * t) * (xp.cos(wd * t) + zeta * omega / wd * xp.sin(wd * t))


def solve(omega, zeta, y0, *, solver: str, steps: int):
    """y at TIMES by `solver` ("fine": Tsit5, "coarse": Heun, "exact": closed form) with `steps` steps."""
    import jax.numpy as jnp

    if solver == "exact":
        return closed_form(jnp.asarray(TIMES), omega, zeta, y0)
    import diffrax

    term = diffrax.ODETerm(lambda t, s, a: jnp.stack([s[1], -2 * a[1] * a[0] * s[1] - a[0] ** 2 * s[0]]))
    method = diffrax.Tsit5() if solver == "fine" else diffrax.Heun()
    sol = diffrax.diffeqsolve(term, method, t0=0.0, t1=T_END, dt0=T_END / steps, y0=jnp.stack([y0, 0.0 * y0]),
                              args=(omega, zeta), saveat=diffrax.SaveAt(ts=jnp.asarray(TIMES)),
                              stepsize_controller=diffrax.ConstantStepSize(), max_steps=steps + 1)
    return sol.ys[:, 0]


def data() -> np.ndarray:
    rng = np.random.default_rng(0)
    return closed_form(TIMES, **TRUTH) + NOISE * rng.standard_normal(TIMES.size)


def model(y_obs, solver: str = "fine", steps: int = 1000):
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist

    omega = numpyro.deterministic("omega", 2.0 * jnp.exp(0.2 * numpyro.sample("z_omega", dist.Normal(0.0, 1.0))))
    zeta = numpyro.sample("zeta", dist.Beta(2.0, 5.0))
    y0 = numpyro.sample("y0", dist.Normal(1.0, 0.5))
    numpyro.sample("y", dist.Normal(solve(omega, zeta, y0, solver=solver, steps=steps), NOISE), obs=y_obs)


DEFAULT_STEPS = {"fine": 1000, "coarse": 40, "exact": 0}


@register("damped_oscillator", "ODE inverse problem (3 params, diffrax): solver='fine' | 'coarse' | 'exact'")
def damped_oscillator(solver: str = "fine", steps: int | None = None):
    from samplax.target import Target

    if not checks.member(solver, DEFAULT_STEPS):
        raise ValueError(f"damped_oscillator: solver must be one of {sorted(DEFAULT_STEPS)}, got {solver!r}")
    steps = DEFAULT_STEPS[solver] if steps is None else int(steps)
    if solver != "exact" and steps < 1:
        raise ValueError(f"damped_oscillator: steps must be >= 1, got {steps}")
    # initial points within 0.5 of the prior centre (unconstrained): a chain started at the edge of the default
    # radius 2 can wander into the aliased high-frequency modes during warmup and stay there
    return Target.from_numpyro(model, data(), solver=solver, steps=steps, init_radius=0.5,
                               name=f"damped_oscillator_{solver}")
