"""Loss landscapes with known minima and barriers (double wells, multi-well, Rastrigin) for escape experiments.

Each constructor returns a `Landscape`: the loss F (a JAX function of a flat vector), its `minima`,
`global_minimum`, escape `barriers` (per minimum: the lowest saddle height above it, along axis 0) and
`.target(temperature)`, the Target for p ∝ exp(-F/T) with exact mean / cov / log_z / sampler computed by
1D quadrature (all landscapes here are separable: a 1D landscape along axis 0 times 1D factors).
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from scipy.integrate import simpson
from scipy.optimize import minimize_scalar

from samplax.models import register
from samplax.target import Target


@dataclasses.dataclass(frozen=True, eq=False)
class Landscape:
    """A loss F on R^dim with its local minima (rows), global minimum and escape barriers."""

    name: str
    dim: int
    loss: Callable[[jax.Array], jax.Array]
    minima: np.ndarray
    minimum_values: np.ndarray
    barriers: np.ndarray  # barrier out of each minimum's basin along axis 0 (inf if it has no saddle)
    axis_losses: tuple  # numpy 1D losses per axis, summing (with const) to F; used for exact truth
    constant: float = 0.0
    info: dict = dataclasses.field(default_factory=dict)

    @property
    def global_minimum(self) -> np.ndarray:
        return self.minima[int(np.argmin(self.minimum_values))]

    @property
    def global_minimum_value(self) -> float:
        return float(np.min(self.minimum_values))

    @property
    def barrier(self) -> float:
        """Barrier out of the highest local minimum (for a symmetric double well: beta = a^2 omega^2 / 8)."""
        return float(self.barriers[int(np.argmax(self.minimum_values))])

    @property
    def local_minimum(self) -> np.ndarray:
        """The highest local minimum (the start of an escape run)."""
        return self.minima[int(np.argmax(self.minimum_values))]

    def target(self, temperature: float = 1.0) -> Target:
        """Target for p(x) ∝ exp(-F(x)/T), with exact moments, log_z and sampler from 1D quadrature."""
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        T = float(temperature)
        grids, cdfs, means, variances, log_z = [], [], [], [], -self.constant / T
        for f in self.axis_losses:
            g, dens, lz = _axis_density(f, T)
            cdf = np.concatenate([[0.0], np.cumsum(0.5 * (dens[1:] + dens[:-1]) * np.diff(g))])
            cdf /= cdf[-1]
            m = simpson(g * dens, x=g)
            grids.append(g), cdfs.append(cdf), means.append(m)
            variances.append(simpson((g - m) ** 2 * dens, x=g))
            log_z += lz
        G, C = jnp.asarray(np.stack(grids)), jnp.asarray(np.stack(cdfs))

        def sample(key, n):
            u = jax.random.uniform(key, (n, self.dim))
            return jax.vmap(lambda uu: jax.vmap(jnp.interp)(uu, C, G))(u)

        loss = self.loss
        return Target.from_logdensity(
            lambda x: -loss(x) / T, self.dim, name=f"{self.name}(T={T:g})", mean=jnp.asarray(means),
            cov=jnp.diag(jnp.asarray(variances)), log_z=float(log_z), sample=sample,
            info={"temperature": T, "landscape": self, **self.info},
        )


# ------------------------------------------------------------------------------------- 1D analysis
def _axis_density(f, T, n=40001):
    """Grid covering all of exp(-f/T) above exp(-60) relative to its peak, density normalised, log Z."""
    lo, hi = -1.0, 1.0
    for _ in range(60):
        g = np.linspace(lo, hi, 4001)
        u = f(g) / T
        if u[0] - u.min() > 60 and u[-1] - u.min() > 60:
            break
        lo, hi = lo * 1.5, hi * 1.5
    else:
        raise ValueError("loss does not grow along an axis: exp(-F/T) is not normalisable")
    g = np.linspace(lo, hi, n)
    u = -f(g) / T
    shift = u.max()
    z = simpson(np.exp(u - shift), x=g)
    return g, np.exp(u - shift) / z, float(np.log(z) + shift)


def _critical_points(f, lo, hi, n=20001):
    """Local minima and maxima of a 1D function on [lo, hi] (grid scan, then bounded refinement)."""
    g = np.linspace(lo, hi, n)
    y = f(g)
    mins, maxs = [], []
    for i in range(1, n - 1):
        if y[i] < y[i - 1] and y[i] <= y[i + 1]:
            r = minimize_scalar(f, bounds=(g[i - 1], g[i + 1]), method="bounded", options={"xatol": 1e-12})
            mins.append(float(r.x))
        elif y[i] > y[i - 1] and y[i] >= y[i + 1]:
            r = minimize_scalar(lambda t: -f(t), bounds=(g[i - 1], g[i + 1]), method="bounded",
                                options={"xatol": 1e-12})
            maxs.append(float(r.x))
    return np.array(mins), np.array(maxs)


def _barriers(f, mins, maxs):
    out = []
    for m in mins:
        left = maxs[maxs < m]
        right = maxs[maxs > m]
        cands = ([f(left.max())] if left.size else []) + ([f(right.min())] if right.size else [])
        out.append(min(cands) - f(m) if cands else np.inf)
    return np.array(out, float)


def _landscape_1d_axis0(name, dim, f_np, loss, lo, hi, quad=(), constant=0.0, info=None):
    mins, maxs = _critical_points(f_np, lo, hi)
    if mins.size == 0:
        raise ValueError(f"{name}: no local minimum found in [{lo}, {hi}]")
    minima = np.zeros((mins.size, dim))
    minima[:, 0] = mins
    values = np.array([f_np(m) for m in mins]) + constant
    return Landscape(name=name, dim=dim, loss=loss, minima=minima, minimum_values=values,
                     barriers=_barriers(f_np, mins, maxs), axis_losses=(f_np, *quad), constant=constant,
                     info=info or {})


def _check(name, value, low=0.0, strict=True):
    ok = value > low if strict else value >= low
    if not (np.isfinite(value) and ok):
        raise ValueError(f"{name} must be {'>' if strict else '>='} {low}, got {value}")


# ------------------------------------------------------------------------------------ constructors
def double_well(barrier: float | None = None, *, a: float = 1.0, omega: float = 1.0, V0: float = 1.0,
                tilt: float = 0.0, dim: int = 1, curvature: float = 1.0) -> Landscape:
    """V(theta) = omega^2 (theta^2 - a^2)^2 / (8 a^2) + V0 + tilt * theta along axis 0, + curvature/2 |x_rest|^2.

    barrier: if given, sets a = sqrt(8 barrier) / omega so the untilted barrier is beta = a^2 omega^2 / 8.
    The minima of the untilted well are +-a with curvature omega^2; V0 > 0 keeps V positive (ECD needs F > F0).
    """
    if barrier is not None:
        _check("barrier", barrier)
        a = float(np.sqrt(8.0 * barrier) / omega)
    _check("a", a)
    _check("omega", omega)
    _check("curvature", curvature)
    if not isinstance(dim, (int, np.integer)) or dim < 1:
        raise ValueError(f"dim must be an integer >= 1, got {dim!r}")

    def f(t, xp=np):
        return omega**2 * (t**2 - a**2) ** 2 / (8 * a**2) + V0 + tilt * t

    def loss(x):
        x = jnp.reshape(x, (dim,))
        return f(x[0], jnp) + 0.5 * curvature * jnp.sum(x[1:] ** 2)

    quad = tuple((lambda t: 0.5 * curvature * t**2) for _ in range(dim - 1))
    kind = "tilted_double_well" if tilt else "double_well"
    name = kind if dim == 1 else f"{kind}_{dim}d"
    info = {"a": a, "omega": omega, "V0": V0, "tilt": tilt, "beta": a**2 * omega**2 / 8}
    return _landscape_1d_axis0(name, dim, f, loss, -3 * a - 3, 3 * a + 3, quad, info=info)


def tilted_double_well(barrier: float = 2.0, tilt: float = 0.2, **kw) -> Landscape:
    """Double well plus tilt * theta: the minimum near -a is global (for tilt > 0), the one near +a local."""
    _check("tilt", abs(tilt))
    return double_well(barrier, tilt=tilt, **kw)


def multi_well(barrier: float = 2.0, *, width: float = 1.0, tilt: float = 0.0, V0: float = 1.0) -> Landscape:
    """1D triple well V0 + (27/4) h u^2 (u^2 - 1)^2 + tilt * theta, u = theta/width: minima 0, +-width, barriers h."""
    _check("barrier", barrier)
    _check("width", width)
    h = float(barrier)

    def f(t, xp=np):
        u = t / width
        return V0 + 6.75 * h * u**2 * (u**2 - 1) ** 2 + tilt * t

    return _landscape_1d_axis0("multi_well", 1, f, lambda x: f(jnp.reshape(x, (1,))[0], jnp),
                               -2 * width - 1, 2 * width + 1, info={"h": h, "width": width, "tilt": tilt, "V0": V0})


def rastrigin(dim: int = 2, *, A: float = 2.0, V0: float = 1.0) -> Landscape:
    """V0 + sum_i [x_i^2 + A (1 - cos 2 pi x_i)]: global minimum 0, local minima near the integer lattice.

    `minima` lists the global minimum and the nearest local minima along axis 0 (the full lattice is
    exponential in dim); barriers are along axis 0.
    """
    if not isinstance(dim, (int, np.integer)) or dim < 1:
        raise ValueError(f"dim must be an integer >= 1, got {dim!r}")
    _check("A", A)

    def g(t, xp=np):
        return t**2 + A * (1 - xp.cos(2 * np.pi * t))

    def loss(x):
        return V0 + jnp.sum(g(jnp.reshape(x, (dim,)), jnp))

    lim = np.sqrt(4 * A) + 1.5  # beyond this x^2 dominates 2A: no more minima
    land = _landscape_1d_axis0("rastrigin", dim, g, loss, -lim, lim, tuple(g for _ in range(dim - 1)),
                               constant=V0, info={"A": A, "V0": V0})
    keep = np.abs(land.minima[:, 0]) < 1.5
    return dataclasses.replace(land, minima=land.minima[keep], minimum_values=land.minimum_values[keep],
                               barriers=land.barriers[keep])


# --------------------------------------------------------------------------------------- registry
@register("double_well", "1D double well V = w^2 (t^2-a^2)^2/(8a^2) + V0 at temperature T; exact truth by quadrature")
def _double_well_target(barrier: float = 2.0, temperature: float = 1.0, **kw) -> Target:
    return double_well(barrier, **kw).target(temperature)


@register("tilted_double_well", "double well + tilt * theta (one global minimum) at temperature T; exact truth")
def _tilted_target(barrier: float = 2.0, tilt: float = 0.2, temperature: float = 1.0, **kw) -> Target:
    return tilted_double_well(barrier, tilt, **kw).target(temperature)


@register("double_well_nd", "double well along axis 0, quadratic in the other dims, at temperature T; exact truth")
def _double_well_nd_target(dim: int = 5, barrier: float = 2.0, temperature: float = 1.0, **kw) -> Target:
    return double_well(barrier, dim=dim, **kw).target(temperature)


@register("multi_well", "1D triple well with barriers h at temperature T; exact truth by quadrature")
def _multi_well_target(barrier: float = 2.0, temperature: float = 1.0, **kw) -> Target:
    return multi_well(barrier, **kw).target(temperature)


@register("rastrigin", "Rastrigin landscape V0 + sum x^2 + A(1 - cos 2 pi x) at temperature T; exact truth")
def _rastrigin_target(dim: int = 2, temperature: float = 1.0, **kw) -> Target:
    return rastrigin(dim, **kw).target(temperature)


__all__ = ["Landscape", "double_well", "tilted_double_well", "multi_well", "rastrigin"]
