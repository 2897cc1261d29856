"""Exact and asymptotic mean hitting times in 1D: overdamped Langevin, Kramers, telegraph (sECD-like) process.

These are oracles for `samplax.diagnostics.hitting`: numbers a simulation must reproduce.
Potentials and speeds are plain callables evaluated on float64 numpy grids (jax.numpy functions work too).
"""

from __future__ import annotations

import warnings
from typing import Callable

import jax
import numpy as np
from scipy.integrate import cumulative_simpson, quad, simpson

from samplax import checks


def _eval(f: Callable, x: np.ndarray) -> np.ndarray:
    with jax.enable_x64(True):
        return np.asarray(f(x), dtype=float)


def _left_cutoff(U: Callable, x0: float, b: float, T: float, depth: float) -> float:
    """A point left of x0 beyond which e^{-U/T} is negligible (U - min U > depth * T)."""
    lo, hi = min(x0, b), max(x0, b)
    width = max(hi - lo, 1.0)
    for _ in range(60):
        left = lo - width
        grid = np.linspace(left, hi, 4001)
        u = _eval(U, grid)
        if u[0] - u.min() > depth * T and np.all(np.isfinite(u)):
            return left
        width *= 2
    raise ValueError("U does not grow to the left of x0: pass a finite reflecting boundary `left=`")


def log_mfpt_langevin(U: Callable, x0: float, b: float, T: float, *, left: float | None = None,
                      num: int = 20001, depth: float = 60.0) -> float:
    """log of the exact mean first-passage time x0 -> b of dX = -U'(X) dt + sqrt(2T) dW.

    Reflecting at `left` (None: -infinity), absorbing at b > x0:
        E[tau] = (1/T) int_{x0}^{b} e^{U(y)/T} int_{left}^{y} e^{-U(z)/T} dz dy
    (Gardiner, Handbook of Stochastic Methods, ch. 5, one-variable mean first-passage time).  Both integrals are composite Simpson on
    `num` nodes per piece, each exponent shifted by its maximum so nothing overflows.
    """
    T = checks.positive("T", T)
    x0, b = checks.finite("x0", x0), checks.finite("b", b)
    if not b > x0:
        raise ValueError(f"need b > x0 (absorbing point right of the start), got x0={x0}, b={b}; "
                         "for b < x0 pass U reflected, lambda x: U(-x), with -x0, -b")
    if left is None:
        left = _left_cutoff(U, x0, b, T, depth)
    elif not left <= x0:
        raise ValueError(f"left must be <= x0, got left={left}, x0={x0}")
    if num < 101:
        raise ValueError(f"num must be >= 101, got {num}")
    # x0 is a node, so the outer integral starts exactly there
    pre = np.linspace(left, x0, num) if x0 > left else np.array([x0])
    grid = np.concatenate([pre[:-1], np.linspace(x0, b, num)])
    u = _eval(U, grid) / T
    shift_in = -u.min()
    inner = cumulative_simpson(np.exp(-u - shift_in), x=grid, initial=0.0)  # times e^{shift_in}
    k0 = len(pre) - 1
    with np.errstate(divide="ignore"):
        log_f = u[k0:] + np.log(inner[k0:])
    m = np.max(log_f[np.isfinite(log_f)])
    outer = simpson(np.exp(log_f - m), x=grid[k0:])
    return float(m + np.log(outer) + shift_in - np.log(T))


def mfpt_langevin(U: Callable, x0: float, b: float, T: float, **kw) -> float:
    """Exact mean first-passage time of overdamped Langevin (see `log_mfpt_langevin`)."""
    return float(np.exp(log_mfpt_langevin(U, x0, b, T, **kw)))


def kramers_time(U: Callable, x_min: float, x_saddle: float, T: float) -> float:
    """Kramers/Eyring asymptotic mean time to cross the barrier, as T -> 0, for dX = -U' dt + sqrt(2T) dW.

        2 pi / sqrt(U''(x_min) |U''(x_saddle)|) * exp((U(x_saddle) - U(x_min)) / T)
    (Kramers 1940; Hanggi, Talkner & Borkovec, Rev. Mod. Phys. 62, 251 (1990), overdamped, friction 1).
    This is the time to reach a point well past the saddle; to the saddle itself it is half of it.
    """
    T = checks.positive("T", T)
    c_min, c_sad = _second_derivative(U, x_min), _second_derivative(U, x_saddle)
    dU = float(_eval(U, np.array([x_saddle]))[0] - _eval(U, np.array([x_min]))[0])
    if not c_min > 0 or not c_sad < 0:
        raise ValueError(f"need U''(x_min) > 0 and U''(x_saddle) < 0, got {c_min}, {c_sad}")
    return float(2 * np.pi / np.sqrt(c_min * -c_sad) * np.exp(dU / T))


def _second_derivative(U: Callable, x: float) -> float:
    """U''(x) by autodiff when U is jax-traceable, else a central difference (error O(h^2) ~ 1e-8)."""
    try:
        with jax.enable_x64(True):
            return float(jax.grad(jax.grad(lambda y: U(y)))(float(x)))
    except (TypeError, jax.errors.JAXTypeError, jax.errors.TracerArrayConversionError):
        h = 1e-4 * (1 + abs(x))
        u = _eval(U, np.array([x - h, x, x + h]))
        return float((u[0] - 2 * u[1] + u[2]) / h**2)


def _wall(v: Callable, x0: float, step: float) -> float:
    """Nearest point from x0 in direction sign(step) where the speed stops being positive and finite."""
    ok = lambda x: bool(np.isfinite(_eval(v, np.array([x]))[0]) and _eval(v, np.array([x]))[0] > 0)
    if not ok(x0):
        raise ValueError(f"speed must be positive at the start x0={x0}")
    inner, outer = x0, x0 + step
    for _ in range(60):
        if not ok(outer):
            break
        inner, outer, step = outer, outer + step, 2 * step
    else:
        raise ValueError("speed never vanishes behind the start: pass a reflecting wall `wall=` (a point, or "
                         "+-inf when the travel time to infinity is finite and the process returns from there)")
    for _ in range(200):  # bisection on the predicate; brentq needs a sign change, v may be NaN outside
        mid = 0.5 * (inner + outer)
        inner, outer = (mid, outer) if ok(mid) else (inner, mid)
        if abs(outer - inner) < 1e-14 * max(1.0, abs(inner)):
            break
    return inner


class _NotPositive(Exception):
    def __init__(self, x: float):
        self.x = x


def travel_time(v: Callable, a: float, b: float) -> float:
    """tau = int_a^b dtheta / v(theta) by adaptive quadrature (integrable 1/sqrt zeros of v at ends are fine).

    An isolated zero of v inside (a, b) that a quadrature node lands on splits the integral there (quad never
    evaluates an end). Where v is not positive on a stretch (an ECD energy ceiling below a barrier) or the integral
    diverges (v vanishing like |theta - c|), the far end is not reached in finite time: +inf, with one warning
    naming why. A ZeroDivisionError used to come out of the quadrature instead, and a divergent integral gave a
    finite number.
    """
    reasons: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        val = _travel(v, a, b, 0, reasons)
    if not np.isfinite(val):
        warnings.warn(f"travel_time from {a:g} to {b:g} is infinite: {reasons[0]}", RuntimeWarning, stacklevel=2)
    else:
        for w in caught:  # quad's other warnings, as it gave them
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return val


def _travel(v: Callable, a: float, b: float, depth: int, reasons: list) -> float:
    def f(x):
        val = float(_eval(v, np.array([x]))[0])
        if not (val > 0 and np.isfinite(val)):
            raise _NotPositive(x)
        return 1.0 / val

    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            val, _ = quad(f, a, b, limit=400, epsabs=0.0, epsrel=1e-11)
    except _NotPositive as stop:
        if depth < 2 and a < stop.x < b:  # maybe an isolated zero: integrate up to it from both sides
            return _travel(v, a, stop.x, depth + 1, reasons) + _travel(v, stop.x, b, depth + 1, reasons)
        reasons.append(f"the speed is not positive at {stop.x:.6g}, a stretch that cannot be crossed")
        return float("inf")
    for w in caught:
        if "divergent" in str(w.message):
            reasons.append(f"int dtheta / v diverges on [{a:g}, {b:g}] (scipy: {str(w.message).strip()[:80]})")
            return float("inf")
    if caught and np.isfinite(a) and np.isfinite(b):  # quad struggled: a zero of v it did not call divergent?
        why = _divergent_zero(v, a, b)
        if why is not None:
            reasons.append(why)
            return float("inf")
    for w in caught:
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return float(val)


ZERO_GRID = 4001  # points on [a, b] where _divergent_zero looks for the speed's near-zeros
ZERO_CANDIDATES = 5  # the lowest local minima of v on that grid it examines


def _divergent_zero(v: Callable, a: float, b: float) -> str | None:
    """Why int_a^b dtheta / v diverges, or None: a zero c of v on [a, b] near which v ~ |theta - c|^p with p >= 1 on
    a side inside [a, b] (1 / v is then not integrable there). quad only calls some of these "probably divergent":
    v = |theta - 0.123| on [-1, 1] gave 48.8 with a subdivision-limit warning, where the exact value is infinite.
    The exponent is the log-slope of v between distances 1e-4 and 1e-7 (of the interval's length) from c, located
    to rounding by golden-section search from the grid's lowest local minima; p >= 0.9 counts (p = 1/2, the
    integrable square-root zero of an ECD turning point, does not)."""
    x = np.linspace(a, b, ZERO_GRID)
    f = _eval(v, x)
    f = np.where(np.isfinite(f), f, np.inf)
    top = float(np.max(f[np.isfinite(f)])) if np.isfinite(f).any() else 1.0
    lo = np.r_[True, f[1:] <= f[:-1]] & np.r_[f[:-1] <= f[1:], True]  # grid local minima (the ends too)
    length = b - a
    for i in np.flatnonzero(lo)[np.argsort(f[lo])][:ZERO_CANDIDATES]:
        c = _golden_min(v, x[max(i - 1, 0)], x[min(i + 1, x.size - 1)])
        if not float(_eval(v, np.array([c]))[0]) <= 1e-12 * top:  # not a zero: 1 / v is bounded near it
            continue
        for side in (1.0, -1.0):
            d = np.array([1e-4, 1e-7]) * length
            if not a <= c + side * d[0] <= b:
                continue
            vd = _eval(v, c + side * d)
            if np.all(vd > 0) and np.all(np.isfinite(vd)):
                p = float(np.log(vd[0] / vd[1]) / np.log(d[0] / d[1]))
                if p >= 0.9:
                    return (f"int dtheta / v diverges: v vanishes near {c:.6g} like |theta - c|^{p:.2f} (an exponent "
                            f">= 1 is not integrable)")
    return None


def _golden_min(v: Callable, lo: float, hi: float, iters: int = 200) -> float:
    """The minimiser of v on [lo, hi] by golden-section search to rounding (scipy's bounded Brent stops at a
    relative 1e-8 in x, too coarse to tell a zero of v from a small minimum)."""
    g = (np.sqrt(5.0) - 1.0) / 2.0
    val = lambda t: float(_eval(v, np.array([t]))[0])  # noqa: E731
    c, d = hi - g * (hi - lo), lo + g * (hi - lo)
    fc, fd = val(c), val(d)
    for _ in range(iters):
        if not hi - lo > 4 * np.finfo(float).eps * max(1.0, abs(lo), abs(hi)):
            break
        if fc <= fd:
            hi, d, fd = d, c, fc
            c = hi - g * (hi - lo)
            fc = val(c)
        else:
            lo, c, fc = c, d, fd
            d = lo + g * (hi - lo)
            fd = val(d)
    ends = [(val(lo), lo), (fc, c), (fd, d), (val(hi), hi)]
    return float(min(ends)[1])


def telegraph_mean_hitting_time(v: Callable, rate: float, x0: float, b: float, *, direction: int | None = None,
                                wall: float | None = None) -> float:
    """Exact mean time for a 1D telegraph process with speed v(theta) and flip rate `rate` to reach b.

    The process moves at velocity +-v(theta) and reverses direction at the events of a Poisson process of
    rate lambda; it reflects at `wall` (None: where v first vanishes behind x0, as at an ECD turning point;
    +-inf is allowed when int dtheta / v converges there, i.e. the process reaches infinity in finite time
    and is taken to come back) and is absorbed at b.  direction: +1 / -1 = initially moving towards / away from b; None = 50/50.

    Derivation (ours; the telegraph equations are those of Goldstein 1951, Q. J. Mech. Appl. Math. 4, 129,
    and Kac 1974, Rocky Mountain J. Math. 4, 497).  Take b > x0 (otherwise mirror theta -> -theta) and the
    travel-time coordinate s(theta) = int_wall^theta dtheta'/v(theta'), so the wall is s = 0, the target
    s = B = s(b), the start s0 = s(x0).  In s the speed is 1 and the flip rate is still lambda, since the
    clock is unchanged.  Let m+(s), m-(s) be the mean times to absorption starting at s moving towards /
    away from b.  The backward Kolmogorov equations (generator d/ds on m+, -d/ds on m-, plus switching) are
        m+'(s) + lambda (m-(s) - m+(s)) = -1,      -m-'(s) + lambda (m+(s) - m-(s)) = -1,
    with m+(B) = 0 (absorbed on arrival) and m-(0) = m+(0) (reflection turns - into + instantly).
    Adding them gives (m+ - m-)' = -2, so m+ - m- = -2s by the wall condition; then m+' = -1 - 2 lambda s and
        m+(s) = (B - s) + lambda (B^2 - s^2),     m-(s) = (B + s) + lambda (B^2 - s^2),
    and the 50/50 mixture is B + lambda (B^2 - s^2).  Check: lambda = 0 gives the ballistic B - s and B + s.
    """
    if rate < 0:
        raise ValueError(f"rate must be >= 0, got {rate}")
    if direction not in (None, 1, -1):
        raise ValueError(f"direction must be +1, -1 or None (50/50), got {direction}")
    if b == x0:
        return 0.0
    sgn = 1.0 if b > x0 else -1.0
    if wall is None:
        wall = _wall(v, x0, -sgn * max(abs(b - x0), 1e-3) / 8)
    elif (wall - x0) * sgn > 0:
        raise ValueError(f"wall must be behind the start (on the side away from b), got wall={wall}, x0={x0}")
    s0 = abs(travel_time(v, min(wall, x0), max(wall, x0)))
    if not np.isfinite(s0):  # the formula needs the reflection to happen in finite time
        raise ValueError(f"the travel time from x0={x0} back to the wall {wall} is infinite, so the process never "
                         "reflects there and this formula does not apply; give a wall that is reached in finite "
                         "time (a finite point, or +-inf only where int dtheta / v converges)")
    B = s0 + abs(travel_time(v, min(x0, b), max(x0, b)))
    if not np.isfinite(B):
        return float("inf")  # b cannot be reached (travel_time warned where)
    common = rate * (B**2 - s0**2)
    if direction == 1:
        return float(B - s0 + common)
    if direction == -1:
        return float(B + s0 + common)
    return float(B + common)


# ------------------------------------------------------------------------- sECD-paper asymptotics (issue 20 part 5)
# Sun, Wang, Hayden & Blanchet 2026, arXiv 2604.13022, Eqs. 6-7 as quoted in samplax issue 20 (read from the abstract
# page; the equations themselves could not be read here): mean escape times on a double well of half-width a and
# frequency omega, SGD with learning rate s and sECD with parameter h.
def sgd_escape_quoted(a: float, omega: float, s: float) -> float:
    """sqrt(s) / (a omega^3) * exp(omega^2 a^2 / s), the quoted SGD escape time (no constant factor)."""
    return float(np.sqrt(s) / (a * omega**3) * np.exp(omega**2 * a**2 / s))


def ecd_escape_quoted(a: float, omega: float, h: float) -> float:
    """exp(a^2 omega / h) / (a omega^{3/2} sqrt(h)), the quoted sECD escape time (no constant factor).

    Identity: ecd_escape_quoted(a, omega, h) = sgd_escape_quoted(a, sqrt(omega), h) / h, i.e. the SGD law on a well
    of curvature omega instead of omega^2, at s = h, on a clock slower by 1/h."""
    return float(np.exp(a**2 * omega / h) / (a * omega**1.5 * np.sqrt(h)))


def cusp_double_well(a: float, k: float) -> Callable:
    """U(x) = k (|x| - a)^2 / 2: minima at +-a of curvature k, a cusp barrier k a^2 / 2 at 0 (slope k a on each side).

    The piecewise-quadratic well whose overdamped escape time has the sqrt(T) / a prefactor of the quoted formulas;
    a smooth (quartic) barrier gives Kramers' T-independent prefactor instead (`kramers_time`)."""
    return lambda x: 0.5 * k * (np.abs(x) - a) ** 2


def cusp_mfpt_asymptotic(a: float, k: float, T: float, to: str = "minimum") -> float:
    """Leading-order mean first-passage time of dX = -U'(X) dt + sqrt(2T) dW on `cusp_double_well(a, k)` from -a.

    Laplace on `log_mfpt_langevin`'s double integral (ours): near the cusp e^{U(y)/T} ~ e^{k a^2/(2T)} e^{-k a |y|/T},
    so each side of the cusp gives T/(k a) e^{k a^2/(2T)} to the outer integral, while the inner one is the left
    well's mass sqrt(2 pi T / k); hence
        E[tau -> 0]  ~ sqrt(2 pi T) / (k^{3/2} a) * exp(k a^2 / (2T)),     E[tau -> +a] ~ twice that,
    with relative corrections O(T / (k a^2)).  to: "saddle" (the cusp, x = 0) or "minimum" (x = +a)."""
    if to not in ("saddle", "minimum"):
        raise ValueError(f"to must be 'saddle' or 'minimum', got {to!r}")
    a, k, T = checks.positive("a", a), checks.positive("k", k), checks.positive("T", T)
    lead = np.sqrt(2 * np.pi * T) / (k**1.5 * a) * np.exp(k * a**2 / (2 * T))
    return float(lead * (2.0 if to == "minimum" else 1.0))
