"""Gibbsian polar slice sampling (Schär, Habeck & Rudolf, ICML 2023, arXiv 2302.03945): `gpss`, gradient-free.

Polar slice sampling writes p(x) = |z|^(1-d) * rho1(z), rho1(z) = |z|^(d-1) p(x), z = x - c, and draws the level
log t = log rho1(z) - Exp(1). GPSS then updates the polar coordinates of z = r theta one after the other:
- direction: geodesic shrinkage on the great circle through theta and a uniform direction orthogonal to it,
  starting from the whole circle (the authors' `orbit_shrinkage`; tuning-free). At fixed r the level test is
  log p(c + r theta') > log p(x) - Exp(1);
- radius: Neal's (2003) stepping-out with width `w` (clamped at r = 0) then shrinkage towards the current r, on
  (d-1) log r' + log p(c + r' theta') > log t.
`w`, the initial width of the radius search, is the method's one tuning parameter (the authors' code and
SliceSampling.jl call it that; the direction update has none). Any fixed w and c leave p invariant; they set
only the cost. Warmup adapts both: c is the running mean of the warmup draws (the method is built around the
origin of the polar coordinates, so a target far from c costs more), and w is 3 x the running mean radial move
|r' - r| (two uniform points on an interval of length L are L/3 apart on average, so this puts w at the typical
slice width, Neal's advice for stepping-out). Both estimates restart at half of the warmup; the sampling phase
uses their final values.

Costs: `n_grad` is 0; `n_logp` is the number of log-density evaluations the step really made (direction
proposals + stepping-out tests + radius proposals; random, as slice shrinkage loops are). With thinning a kept
draw's stats are those of its last step, so `n_logp_total` (the chain's running count since init, warmup
included) is the count to difference between kept draws. Each loop stops after
`max_proposals` tests; a step that hits the cap keeps the old direction/radius and reports `diverging`.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from samplax.samplers.base import Algorithm, Sampler, Warmup, adapted_names, register

# the radial move is uniform on the slice interval of length L to first order: E|U - U'| = L / 3
W_PER_MEAN_MOVE = 3.0
MIN_WINDOW = 10  # warmup draws a running estimate needs before it replaces the current value


class GPSSState(NamedTuple):
    position: jax.Array
    logdensity: jax.Array
    n_logp_total: jax.Array  # log-density evaluations since `init` (init's own included), warmup included


class GPSSInfo(NamedTuple):
    n_logp: jax.Array  # log-density evaluations this step
    n_direction: jax.Array  # of which direction proposals
    n_radius: jax.Array  # of which stepping-out tests and radius proposals
    is_divergent: jax.Array  # a loop hit max_proposals (the old direction / radius was kept)
    nonfinite: jax.Array  # a log-density evaluation of the step was NaN or +inf (outside every slice, so never kept)


def _bad(lp):
    """NaN or +inf: a value the model should not give (-inf is zero density, which slice sampling handles exactly)."""
    return jnp.isnan(lp) | (lp == jnp.inf)


def init(position, logdensity_fn) -> GPSSState:
    return GPSSState(position, logdensity_fn(position), jnp.asarray(1, jnp.int32))


def _unit_orthogonal(key, theta):
    y = jax.random.normal(key, theta.shape, theta.dtype)
    y = y - jnp.dot(y, theta) * theta
    return y / jnp.maximum(jnp.linalg.norm(y), jnp.finfo(theta.dtype).tiny)


def _direction(key, logdensity_fn, center, r, theta, level_lp, max_proposals):
    """Geodesic shrinkage on the great circle through theta: (theta', log p there, tests made, capped, whether a
    test met a NaN / +inf log-density)."""
    k_y, k_w, key = jax.random.split(key, 3)
    y = _unit_orthogonal(k_y, theta)

    def at(omega):
        th = jnp.cos(omega) * theta + jnp.sin(omega) * y
        th = th / jnp.linalg.norm(th)  # no drift off the sphere
        return th, logdensity_fn(center + r * th)

    omega = jax.random.uniform(k_w, (), minval=0.0, maxval=2 * jnp.pi)
    th, lp = at(omega)

    def cond(c):
        _, lp, _, _, _, n, _, _ = c
        return ~(lp > level_lp) & (n < max_proposals)

    def body(c):
        omega, lp, lo, hi, th, n, key, bad = c
        lo, hi = jnp.where(omega < 0, omega, lo), jnp.where(omega < 0, hi, omega)
        key, sub = jax.random.split(key)
        omega = jax.random.uniform(sub, (), minval=lo, maxval=hi)
        th, lp = at(omega)
        return omega, lp, lo, hi, th, n + 1, key, bad | _bad(lp)

    c0 = (omega, lp, omega - 2 * jnp.pi, omega, th, jnp.asarray(1, jnp.int32), key, _bad(lp))
    _, lp, _, _, th, n, _, bad = jax.lax.while_loop(cond, body, c0)
    ok = lp > level_lp
    return jnp.where(ok, th, theta), lp, n, ~ok, bad


def _radius(key, logdensity_fn, center, r, theta, level, w, lp_r, max_proposals):
    """Stepping-out (width w, clamped at 0) and shrinkage towards r on the ray c + r' theta.

    Returns (r', log p at r', tests made, capped, whether a test met a NaN / +inf log-density). lp_r: log p(c + r
    theta), in the slice by construction.
    """
    d = theta.shape[0]
    k_u, k_s = jax.random.split(key)

    def lp_at(s):
        return logdensity_fn(center + s * theta)

    def inside(s, lp):
        return (s > 0) & ((d - 1) * jnp.log(jnp.where(s > 0, s, 1.0)) + lp > level)

    u = jax.random.uniform(k_u, ())
    lo, hi = jnp.maximum(r - u * w, 0.0), r + (1 - u) * w

    # stepping-out: each test evaluates log p once (the failing one included); none at r' = 0, outside the slice
    no = jnp.asarray(False)

    def down_cond(c):
        lo, n, go, _ = c
        return go & (lo > 0)

    def down_body(c):
        lo, n, _, bad = c
        lp = lp_at(lo)
        ins = inside(lo, lp)
        n = n + 1
        return jnp.where(ins, jnp.maximum(lo - w, 0.0), lo), n, ins & (n < max_proposals), bad | _bad(lp)

    lo, n_lo, _, bad_lo = jax.lax.while_loop(down_cond, down_body, (lo, jnp.asarray(0, jnp.int32), ~no, no))

    def up_cond(c):
        return c[2]

    def up_body(c):
        hi, n, _, bad = c
        lp = lp_at(hi)
        ins = inside(hi, lp)
        n = n + 1
        return jnp.where(ins, hi + w, hi), n, ins & (n < max_proposals), bad | _bad(lp)

    hi, n_hi, _, bad_hi = jax.lax.while_loop(up_cond, up_body, (hi, jnp.asarray(0, jnp.int32), ~no, no))

    def s_cond(c):
        s, lp, lo, hi, n, key, ok, _ = c
        return ~ok & (n < max_proposals)

    def s_body(c):
        s, lp, lo, hi, n, key, ok, bad = c
        # shrink with the last rejected proposal (none before the first draw: n == 0)
        lo = jnp.where((n > 0) & (s < r), s, lo)
        hi = jnp.where((n > 0) & (s >= r), s, hi)
        key, sub = jax.random.split(key)
        s = jax.random.uniform(sub, (), minval=lo, maxval=hi)
        lp = lp_at(s)
        return s, lp, lo, hi, n + 1, key, inside(s, lp), bad | _bad(lp)

    c0 = (r, lp_r, lo, hi, jnp.asarray(0, jnp.int32), k_s, no, no)
    s, lp, _, _, n_s, _, ok, bad_s = jax.lax.while_loop(s_cond, s_body, c0)
    capped = ~ok | (n_lo >= max_proposals) | (n_hi >= max_proposals)
    return jnp.where(ok, s, r), jnp.where(ok, lp, lp_r), n_lo + n_hi + n_s, capped, bad_lo | bad_hi | bad_s


def kernel(key, state: GPSSState, logdensity_fn, w, center, scale=None, max_proposals: int = 1000):
    """One GPSS transition; w: radius search width, center / scale: the polar coordinates are those of
    z = (x - center) / scale (scale: per-coordinate, None = 1), a fixed affine map that leaves p invariant."""
    k_fix, k_level, k_dir, k_rad = jax.random.split(key, 4)
    x, lp = state.position, state.logdensity
    d = x.shape[0]
    scale = jnp.ones(d, x.dtype) if scale is None else scale

    def logp_z(zz):
        return logdensity_fn(center + scale * zz)

    z = (x - center) / scale
    r = jnp.linalg.norm(z)
    # x exactly at the centre has no direction: move it a hair along a random one (one extra evaluation). Only
    # a chain started at c (e.g. zeros with c = 0) meets this, once.
    at_center = ~(r > 0)
    z = jnp.where(at_center, jax.random.normal(k_fix, (d,), x.dtype) * 1e-8, z)
    # a loop run 0 or 1 times, not a cond: under vmap a cond evaluates both branches, this only when needed
    lp, _ = jax.lax.while_loop(lambda c: c[1], lambda c: (logp_z(z), jnp.asarray(False)), (lp, at_center))
    r = jnp.linalg.norm(z)
    theta = z / r
    e = jax.random.exponential(k_level, (), dtype=x.dtype)
    level = (d - 1) * jnp.log(r) + lp - e  # log t, on the scale of log rho1
    zero = jnp.zeros_like(z)
    theta, lp_dir, n_dir, cap_dir, bad_dir = _direction(k_dir, logp_z, zero, r, theta, lp - e, max_proposals)
    lp_dir = jnp.where(cap_dir, lp, lp_dir)
    r, lp_new, n_rad, cap_rad, bad_rad = _radius(k_rad, logp_z, zero, r, theta, level, w, lp_dir, max_proposals)
    n = n_dir + n_rad + at_center.astype(jnp.int32)
    new = GPSSState(center + scale * (r * theta), lp_new, state.n_logp_total + n)
    return new, GPSSInfo(n, n_dir, n_rad, cap_dir | cap_rad, bad_dir | bad_rad | (at_center & _bad(lp)))


def _build(max_proposals):
    def build(target, params):
        return Algorithm(
            init=lambda x, key: init(x, target.logdensity),
            step=lambda key, s: kernel(key, s, target.logdensity, params["w"], params["center"], params["scale"],
                                        max_proposals))

    return build


def stats(state, info, params):
    return {"lp": state.logdensity, "n_grad": jnp.asarray(0.0), "n_logp": info.n_logp,
            "n_logp_total": state.n_logp_total,
            "n_direction": info.n_direction, "n_radius": info.n_radius, "w": params["w"],
            "diverging": info.is_divergent | info.nonfinite | ~jnp.isfinite(state.logdensity),
            "diverging_nonfinite": info.nonfinite | ~jnp.isfinite(state.logdensity)}


def gpss_warmup(build, initial_params, adapt, w0: float = 1.0):
    """`warmup(target, key, position, num_steps)` adapting the params named in `adapt` (w, center, scale).

    Doubling windows ending at N/32, N/16, N/8, N/4, N/2, N: center and scale are the mean and per-coordinate sd of
    a window's draws, set at its end (held fixed inside a window: a centre that moves every step spoils the
    polar moves it is meant to help); w follows 3 x the running mean radial move of the current window. The
    sampling phase uses the estimates of the last window.
    """

    def warmup(target, key, position, num_steps):
        params = dict(initial_params(target))
        w = jnp.asarray(w0 if params["w"] is None else params["w"], float)
        c = jnp.asarray(params["center"], float)
        sc = jnp.asarray(params["scale"], float)
        ends = jnp.asarray([num_steps // 32, num_steps // 16, num_steps // 8, num_steps // 4, num_steps // 2,
                            num_steps]) - 1
        state = build(target, {"w": w, "center": c, "scale": sc}).init(position, key)

        def one(carry, xs):
            state, w, c, sc, n, sx, sxx, sdr = carry
            t, k = xs
            p = {"w": w, "center": c, "scale": sc}
            new, info = build(target, p).step(k, state)
            dr = jnp.abs(jnp.linalg.norm((new.position - c) / sc) - jnp.linalg.norm((state.position - c) / sc))
            n, sx, sxx, sdr = n + 1, sx + new.position, sxx + new.position**2, sdr + dr
            ready = n >= MIN_WINDOW
            if "w" in adapt:
                # floor: a chain that did not move radially must not get w = 0 (endless stepping-out)
                w_est = jnp.maximum(W_PER_MEAN_MOVE * sdr / n, 1e-6 * (1.0 + jnp.linalg.norm((new.position - c) / sc)))
                w = jnp.where(ready, w_est, w)
            end = jnp.any(t == ends) & ready
            mean = sx / n
            if "scale" in adapt:
                sd = jnp.sqrt(jnp.maximum(sxx / n - mean**2, 0.0) * n / jnp.maximum(n - 1, 1))
                sc = jnp.where(end & (sd > 0), sd, sc)  # a coordinate that has not moved keeps its scale
            if "center" in adapt:
                c = jnp.where(end, mean, c)
            st = stats(new, info, p)
            n, sx, sxx, sdr = (jnp.where(end, 0, n), jnp.where(end, 0.0, sx), jnp.where(end, 0.0, sxx),
                               jnp.where(end, 0.0, sdr))
            return (new, w, c, sc, n, sx, sxx, sdr), {"position": new.position, **st}

        zero = jnp.zeros_like(c)
        carry = (state, w, c, sc, jnp.asarray(0), zero, zero, jnp.asarray(0.0))
        (state, w, c, sc, *_), trace = jax.lax.scan(one, carry,
                                                    (jnp.arange(num_steps), jax.random.split(key, num_steps)))
        return Warmup(state, {"w": w, "center": c, "scale": sc}, trace)

    return warmup


@register("gpss")
def gpss(*, w: float | None = None, center=None, scale=None, adapt=None, max_proposals: int = 1000) -> Sampler:
    """Gibbsian polar slice sampling; gradient-free.

    w: initial width of the radius search (stepping-out), in units of the scaled coordinates; None: adapted in
      warmup (from 1.0).
    center, scale: the polar coordinates are those of (x - center) / scale; None: estimated in warmup (the
      mean and per-coordinate sd of the warmup draws; from 0 and 1).
    adapt: which of ("w", "center", "scale") warmup adapts; default: those not given.
    max_proposals: cap on each of the step's loops (capped steps keep the old value and report `diverging`).
    """
    if w is not None and not w > 0:
        raise ValueError(f"w must be > 0, got {w}")
    if not isinstance(max_proposals, int) or max_proposals < 1:
        raise ValueError(f"max_proposals must be an integer >= 1, got {max_proposals!r}")
    if scale is not None and not jnp.all(jnp.asarray(scale) > 0):
        raise ValueError("scale must be > 0 in every coordinate")
    adapted = adapted_names(adapt, ("w", "center", "scale"), {"w": w, "center": center, "scale": scale})

    def params(target):
        if target.dim < 2:
            raise ValueError(f"gpss needs dimension >= 2 (polar coordinates), got {target.dim}")
        vec = lambda v, default: jnp.full(target.dim, default, float) if v is None else jnp.broadcast_to(  # noqa: E731
            jnp.asarray(v, float), (target.dim,))
        return {"w": None if w is None else jnp.asarray(w, float), "center": vec(center, 0.0),
                "scale": vec(scale, 1.0)}

    def default_params(target):
        if w is None:
            raise ValueError("num_warmup=0 leaves gpss's radius width untuned: pass w=..., or use num_warmup > 0")
        return params(target)

    build = _build(max_proposals)
    warmup = None
    if adapted:
        warmup = gpss_warmup(build, params, adapted)
    elif w is None:
        raise ValueError(f"gpss: adapt={adapt!r} leaves w neither given nor adapted: pass w=...")
    return Sampler(name="gpss", build=build, stats=stats, default_params=default_params, warmup=warmup,
                   adapted=adapted, settings={"max_proposals": max_proposals})
