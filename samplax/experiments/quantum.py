"""Classical simulation of quantum dynamics on a grid (1D/2D): the qECD and quantised-gradient-descent baselines.

Nothing here runs on quantum hardware: wavefunctions are complex arrays on a periodic grid, evolved by
split-operator FFT steps (H = K(p) + V(theta), Strang splitting, error O(dt^2)) or, for a position-dependent
kinetic term, by a Chebyshev expansion of exp(-i H dt / hbar) (Tal-Ezer & Kosloff 1984, J. Chem. Phys. 81, 3967).

Operator ordering.  A classical Hamiltonian f(theta) p^2 / (2m) + U(theta) (ECD-like: speed |theta_dot| =
sqrt(2 f (E - U) / m), so f = m v(theta)^2 / (2E) reproduces any speed profile v at energy E when U = 0) has no
unique quantisation.  `ordering="symmetric"` uses (1/2)(f K0 + K0 f) with K0 = p^2/(2m);
`ordering="pfp"` uses p f p / (2m) (non-negative for f >= 0); they differ by -(hbar^2 / 4m) f''(theta)
(the identity f p^2 + p^2 f = 2 p f p - hbar^2 f'').  Both are Hermitian on the grid: `hamiltonian_matrix`
builds the dense matrix, `apply_hamiltonian` applies it with FFTs.  Every entry point also takes a
momentum-diagonal `kinetic(p)` in place of p^2/(2m); the separable ECDSep Hamiltonian log(s + p^2) + w(theta)
needs no ordering choice and runs with the split operator (`ecdsep_terms`).
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from scipy.special import jv

from samplax import checks

ORDERINGS = ("symmetric", "pfp")


class Grid(NamedTuple):
    """Periodic grid: `axes[i]` are the node coordinates along dimension i (spacing `dx[i]`)."""

    axes: tuple

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(len(a) for a in self.axes)

    @property
    def dx(self) -> tuple[float, ...]:
        return tuple(float(a[1] - a[0]) for a in self.axes)

    @property
    def cell(self) -> float:
        return float(np.prod(self.dx))

    @property
    def points(self) -> tuple[np.ndarray, ...]:
        return tuple(np.meshgrid(*self.axes, indexing="ij"))

    @property
    def wavenumbers(self) -> tuple[np.ndarray, ...]:
        ks = [2 * np.pi * np.fft.fftfreq(len(a), d) for a, d in zip(self.axes, self.dx)]
        return tuple(np.meshgrid(*ks, indexing="ij"))


def make_grid(lower, upper, num) -> Grid:
    """Grid of `num` nodes per axis on [lower, upper) (periodic); scalars for 1D, sequences for 2D."""
    lower, upper, num = np.atleast_1d(lower), np.atleast_1d(upper), np.atleast_1d(num)
    if not len(lower) == len(upper) == len(num) or len(lower) not in (1, 2):
        raise ValueError(f"lower, upper, num must all be scalars (1D) or length-2 (2D), got {lower}, {upper}, {num}")
    if np.any(num < 4):
        raise ValueError(f"num must be >= 4 per axis, got {num}")
    if np.any(upper <= lower):
        raise ValueError(f"upper must exceed lower, got lower={lower}, upper={upper}")
    return Grid(tuple(np.linspace(lo, hi, int(n), endpoint=False) for lo, hi, n in zip(lower, upper, num)))


def kinetic_energy(grid: Grid, *, hbar: float = 1.0, mass: float = 1.0, kinetic: Callable | None = None
                   ) -> np.ndarray:
    """K(p) on the FFT wavenumber grid, p = hbar k: p^2/(2m) by default, else kinetic(p_1, ...)."""
    if kinetic is None:
        return hbar**2 * sum(k**2 for k in grid.wavenumbers) / (2 * mass)
    K = np.asarray(kinetic(*[hbar * k for k in grid.wavenumbers]), float)
    if K.shape != grid.shape or not np.all(np.isfinite(K)):
        raise ValueError(f"kinetic(p) must give finite values of shape {grid.shape} on the momentum grid")
    return K


def ecdsep_terms(F, *, eta: float = 1.0, F0: float = 0.0, s: float = 1.0):
    """(V, kinetic) of the quantised ECDSep Hamiltonian H = eta log(F - F0) + log(s + |p|^2).

    ECDSep (De Luca, Gatti, Silverstein 2023, arXiv 2306.00352) is separable, so no ordering question
    arises: pass both to `split_operator` / `transfer_time`.  F: the loss on the grid, F0 < min F.
    """
    F = np.asarray(F, float)
    if not np.min(F) > F0:
        raise ValueError(f"F0 must lie below the loss on the grid: min F = {np.min(F)}, F0 = {F0}")
    if s <= 0:
        raise ValueError(f"s must be > 0 (log(s + p^2) is singular at p = 0 otherwise), got {s}")
    return eta * np.log(F - F0), (lambda *p: np.log(s + sum(q**2 for q in p)))


def _check(V, grid: Grid, ordering: str, hbar: float, mass: float, kinetic=None):
    if np.shape(V) != grid.shape:
        raise ValueError(f"V must be given on the grid, shape {grid.shape}, got {np.shape(V)}")
    if not checks.member(ordering, ORDERINGS):
        raise ValueError(f"ordering must be one of {ORDERINGS}, got {ordering!r}")
    if hbar <= 0 or mass <= 0:
        raise ValueError(f"hbar and mass must be > 0, got hbar={hbar}, mass={mass}")
    if kinetic is not None and ordering == "pfp":
        raise ValueError("ordering='pfp' needs the quadratic kinetic term: use kinetic=None or ordering='symmetric'")


def apply_hamiltonian(psi, V, grid: Grid, *, f=None, ordering: str = "symmetric", hbar: float = 1.0,
                      mass: float = 1.0, kinetic: Callable | None = None):
    """H psi with H = K + V, K = K0 (f=None), (f K0 + K0 f)/2 ("symmetric") or p f p/(2m) ("pfp").

    K0 = p^2/(2m), or the momentum-diagonal kinetic(p) when given.
    """
    _check(V, grid, ordering, hbar, mass, kinetic)
    k0 = jnp.asarray(kinetic_energy(grid, hbar=hbar, mass=mass, kinetic=kinetic))
    K0 = lambda u: jnp.fft.ifftn(k0 * jnp.fft.fftn(u))
    if f is None:
        return K0(psi) + V * psi
    if ordering == "symmetric":
        return 0.5 * (f * K0(psi) + K0(f * psi)) + V * psi
    out = 0.0
    for k in grid.wavenumbers:  # p f p = sum_axes p_i f p_i, p_i = hbar k_i in Fourier space
        dpsi = jnp.fft.ifftn(hbar * k * jnp.fft.fftn(psi))
        out = out + jnp.fft.ifftn(hbar * k * jnp.fft.fftn(f * dpsi))
    return out / (2 * mass) + V * psi


def hamiltonian_matrix(V, grid: Grid, *, f=None, ordering: str = "symmetric", hbar: float = 1.0,
                       mass: float = 1.0, kinetic: Callable | None = None) -> np.ndarray:
    """Dense Hermitian grid Hamiltonian (N x N, N = prod(grid.shape)), columns = H applied to unit vectors."""
    _check(V, grid, ordering, hbar, mass, kinetic)
    n = int(np.prod(grid.shape))
    if n > 2500:
        raise ValueError(f"grid has {n} nodes: too many for a dense Hamiltonian (memory ~ 16 n^2 bytes); "
                         "use <= 2500 nodes, e.g. 50 x 50 in 2D")
    eye = np.eye(n).reshape((n,) + grid.shape)
    with jax.enable_x64(True):
        cols = jax.vmap(lambda e: apply_hamiltonian(e, jnp.asarray(V), grid, f=None if f is None else jnp.asarray(f),
                                                    ordering=ordering, hbar=hbar, mass=mass, kinetic=kinetic)
                        )(jnp.asarray(eye))
        H = np.asarray(cols).reshape(n, n).T
    return 0.5 * (H + H.conj().T)  # exact symmetrisation of round-off


def eigenstates(V, grid: Grid, num: int = 2, *, mask=None, **kw) -> tuple[np.ndarray, np.ndarray]:
    """Lowest `num` energies and normalised eigenfunctions (num, *grid.shape) of the dense grid Hamiltonian.

    mask: keep only nodes where mask is True (Dirichlet outside): the ground state of a local well.
    """
    H = hamiltonian_matrix(V, grid, **kw)
    idx = np.arange(H.shape[0]) if mask is None else np.flatnonzero(np.asarray(mask).ravel())
    if len(idx) < num:
        raise ValueError(f"mask keeps {len(idx)} nodes, fewer than num={num}")
    from scipy.linalg import eigh

    sub = H[np.ix_(idx, idx)]
    if np.abs(sub.imag).max() <= 1e-12 * np.abs(sub).max():
        sub = sub.real  # real symmetric (f and V real, even kinetic): cheaper
    E, U = eigh(sub, subset_by_index=[0, num - 1])
    vecs = U[:, :num].T
    # fix the arbitrary complex phase: the largest component real and positive
    big = vecs[np.arange(num), np.argmax(np.abs(vecs), axis=1)]
    vecs = vecs * (np.abs(big) / big)[:, None]
    states = np.zeros((num, H.shape[0]), complex)
    states[:, idx] = vecs
    states /= np.sqrt(grid.cell)
    return E[:num], states.reshape((num,) + grid.shape)


def tunnelling_time(V, grid: Grid, **kw) -> float:
    """pi hbar / (E1 - E0): full transfer time between the wells of a symmetric double well (two-level limit).

    The probability in the other well then first exceeds 1/2 at half of it.  Needs no propagation, so it
    reaches barriers whose tunnelling time is far beyond what time stepping can cover.
    """
    E, _ = eigenstates(V, grid, 2, **kw)
    return float(np.pi * kw.get("hbar", 1.0) / (E[1] - E[0]))


def gaussian(grid: Grid, center, width, momentum=None, *, hbar: float = 1.0) -> np.ndarray:
    """Normalised Gaussian wave packet exp(-|x-c|^2/(4 width^2) + i p.x/hbar) (position sd = width)."""
    center = np.atleast_1d(center)
    momentum = np.zeros_like(center, float) if momentum is None else np.atleast_1d(momentum)
    pts = grid.points
    r2 = sum((x - c) ** 2 for x, c in zip(pts, center))
    phase = sum(p * x for x, p in zip(pts, momentum)) / hbar
    psi = np.exp(-r2 / (4 * width**2) + 1j * phase)
    return psi / np.sqrt(np.sum(np.abs(psi) ** 2) * grid.cell)


def probability_in(psi, mask, grid: Grid):
    """Probability that the particle is in the region `mask` (boolean array on the grid)."""
    return jnp.sum(jnp.where(mask, jnp.abs(psi) ** 2, 0.0)) * grid.cell


def _split_step(V, grid: Grid, dt: float, hbar: float, mass: float, kinetic):
    _check(V, grid, "symmetric", hbar, mass, kinetic)
    if dt <= 0:
        raise ValueError(f"dt must be > 0, got {dt}")
    K = kinetic_energy(grid, hbar=hbar, mass=mass, kinetic=kinetic)
    half_v = jnp.exp(-0.5j * dt * jnp.asarray(V) / hbar)
    full_k = jnp.exp(-1j * dt * jnp.asarray(K) / hbar)
    return lambda psi: half_v * jnp.fft.ifftn(full_k * jnp.fft.fftn(half_v * psi))


def _scan(step, psi0, num_steps: int, observe):
    if num_steps < 1:
        raise ValueError(f"num_steps must be >= 1, got {num_steps}")
    observe = observe or (lambda psi: jnp.zeros(()))

    def body(psi, _):
        psi = step(psi)
        return psi, observe(psi)

    psi0 = jnp.asarray(psi0, complex)
    psi, obs = jax.jit(lambda p: jax.lax.scan(body, p, None, length=num_steps))(psi0)
    return psi, jnp.concatenate([observe(psi0)[None], obs])


def split_operator(psi0, V, grid: Grid, dt: float, num_steps: int, *, hbar: float = 1.0, mass: float = 1.0,
                   kinetic: Callable | None = None, observe: Callable | None = None):
    """Strang split-operator propagation of exp(-i (K(p) + V) t / hbar).

    kinetic: K as a function of the momentum meshes (p_1, ...) = hbar k; default p^2/(2m).
    observe(psi) -> array, recorded at t = 0, dt, ..., num_steps dt.  Returns (psi_final, observations).
    """
    return _scan(_split_step(V, grid, dt, hbar, mass, kinetic), psi0, num_steps, observe)


def _chebyshev_step(V, grid: Grid, dt: float, f, ordering: str, hbar: float, mass: float, kinetic, tol: float):
    _check(V, grid, ordering, hbar, mass, kinetic)
    if dt <= 0:
        raise ValueError(f"dt must be > 0, got {dt}")
    kvals = kinetic_energy(grid, hbar=hbar, mass=mass, kinetic=kinetic)
    kmax = float(np.max(np.abs(kvals)))
    fmax = 1.0 if f is None else float(np.max(np.abs(f)))
    psd = (f is None and np.min(kvals) >= 0) or (f is not None and ordering == "pfp" and np.min(f) >= 0)
    lo = float(np.min(V)) - (0.0 if psd else fmax * kmax)
    hi = float(np.max(V)) + fmax * kmax
    lo, hi = lo - 0.01 * (hi - lo), hi + 0.01 * (hi - lo)
    centre, half = 0.5 * (hi + lo), 0.5 * (hi - lo)
    r = half * dt / hbar
    n_terms = int(r + 10 * r ** (1 / 3) + 20)
    while abs(jv(n_terms, r)) > tol:
        n_terms += 10
    coef = (2.0 - (np.arange(n_terms) == 0)) * (-1j) ** np.arange(n_terms) * jv(np.arange(n_terms), r)
    coef = jnp.asarray(coef * np.exp(-1j * centre * dt / hbar))
    Vj, fj = jnp.asarray(V), None if f is None else jnp.asarray(f)
    Hn = lambda u: (apply_hamiltonian(u, Vj, grid, f=fj, ordering=ordering, hbar=hbar, mass=mass,
                                      kinetic=kinetic) - centre * u) / half

    def step(psi):
        def term(c, a):
            t_prev, t_cur = c
            t_next = 2 * Hn(t_cur) - t_prev
            return (t_cur, t_next), a * t_next

        t1 = Hn(psi)
        _, terms = jax.lax.scan(term, (psi, t1), coef[2:])
        return coef[0] * psi + coef[1] * t1 + jnp.sum(terms, axis=0)

    return step


def chebyshev_propagate(psi0, V, grid: Grid, dt: float, num_steps: int, *, f=None, ordering: str = "symmetric",
                        hbar: float = 1.0, mass: float = 1.0, kinetic: Callable | None = None,
                        observe: Callable | None = None, tol: float = 1e-14):
    """exp(-i H dt / hbar) by Chebyshev series (any ordering / kinetic factor f), `num_steps` times.

    The spectrum is bounded by min/max V -+ max|f| max K0 (operator-norm bounds), mapped to [-1, 1];
    the series is cut where the Bessel coefficients drop below `tol`.  Returns (psi_final, observations).
    """
    step = _chebyshev_step(V, grid, dt, f, ordering, hbar, mass, kinetic, tol)
    return _scan(step, psi0, num_steps, observe)


def first_crossing_time(times, values, threshold: float = 0.5) -> float:
    """First time `values` exceeds `threshold`, linearly interpolated between samples; inf if never."""
    times, values = np.asarray(times, float), np.asarray(values, float)
    above = np.flatnonzero(values > threshold)
    if len(above) == 0:
        return float("inf")
    i = above[0]
    if i == 0:
        return float(times[0])
    t0, t1, v0, v1 = times[i - 1], times[i], values[i - 1], values[i]
    return float(t0 + (threshold - v0) * (t1 - t0) / (v1 - v0))


def transfer_time(psi0, V, grid: Grid, target, *, t_max: float, dt: float, f=None, ordering: str = "symmetric",
                  hbar: float = 1.0, mass: float = 1.0, kinetic: Callable | None = None,
                  threshold: float = 0.5, chunk: int = 4096) -> float:
    """Time for the probability in `target` (boolean mask) to first exceed `threshold`; inf if not by t_max.

    Split-operator when the kinetic term depends on p only (f=None), Chebyshev otherwise.  Propagates in
    compiled chunks of `chunk` steps and stops at the first chunk that crosses, so memory stays O(chunk)
    and the cost is set by the crossing time, not by t_max.
    """
    if t_max <= 0:
        raise ValueError(f"t_max must be > 0, got {t_max}")
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")
    num_steps = int(np.ceil(t_max / dt))
    if f is None:
        step = _split_step(V, grid, dt, hbar, mass, kinetic)
    else:
        step = _chebyshev_step(V, grid, dt, f, ordering, hbar, mass, kinetic, 1e-14)
    tgt = jnp.asarray(target)
    obs = lambda psi: probability_in(psi, tgt, grid)  # noqa: E731
    n = min(chunk, num_steps)

    def body(psi, _):
        psi = step(psi)
        return psi, obs(psi)

    advance = jax.jit(lambda p: jax.lax.scan(body, p, None, length=n))
    psi = jnp.asarray(psi0, complex)
    last, done = float(obs(psi)), 0
    if last > threshold:
        return 0.0
    while done < num_steps:
        psi, p = advance(psi)
        p = np.asarray(p)[: num_steps - done]
        if np.any(p > threshold):
            t = dt * (done + np.arange(len(p) + 1))
            return first_crossing_time(t, np.concatenate([[last], p]), threshold)
        last, done = float(p[-1]), done + len(p)
    return float("inf")


class PairCheck(NamedTuple):
    """Is (psi0, psi1) a symmetric/antisymmetric pair localised on two wells?  See `tunnelling_pair`."""

    ok: bool
    left0: float  # probability of psi0 in the left region (1/2 for a symmetric state)
    left1: float  # same for psi1
    localised: float  # probability of (psi0 + psi1)/sqrt2 or (psi0 - psi1)/sqrt2 in its own well (-> 1)
    sign_change: bool  # psi1 has opposite signs on the two wells, psi0 the same sign
    splitting: float  # E1 - E0
    gap: float  # E2 - E1
    start_weight: float  # |<psi0|start>|^2 + |<psi1|start>|^2 (nan when no start state given)


def tunnelling_pair(E, states, grid: Grid, left, *, start=None, tol: float = 0.05) -> PairCheck:
    """Check the lowest eigenstates form a tunnelling doublet across `left` / not `left` (boolean mask).

    E, states: at least 3 levels from `eigenstates` (the third sets the gap).  ok when the two states are
    each half in either region (|P_left - 1/2| < tol), psi1 changes sign between the regions while psi0
    does not, their combinations sit in one region each (probability > 1 - tol), the pair is a doublet
    (E1 - E0 < E2 - E1: in a single well the first excitation also changes sign and is half on each side)
    and (if `start` is given) the start state lies in the doublet to within tol.
    """
    if len(E) < 3 or len(states) < 3:
        raise ValueError(f"need the 3 lowest levels (the third sets the gap), got {len(E)}")
    left = np.asarray(left, bool)
    if left.shape != grid.shape:
        raise ValueError(f"left must be a boolean mask of shape {grid.shape}, got {left.shape}")
    s0, s1 = (np.asarray(s) for s in states[:2])
    P = lambda u, m: float(np.sum(np.abs(u) ** 2 * m) * grid.cell)  # noqa: E731
    left0, left1 = P(s0, left), P(s1, left)
    plus = (s0 + s1) / np.sqrt(2)
    localised = max(P(plus, left), P(plus, ~left))  # the minus combination is the mirror image
    lobe = lambda u, m: float(np.sum(np.real(u) * m))  # noqa: E731
    sign_change = bool(lobe(s1, left) * lobe(s1, ~left) < 0 and lobe(s0, left) * lobe(s0, ~left) > 0)
    splitting, gap = float(E[1] - E[0]), float(E[2] - E[1])
    weight = float("nan")
    if start is not None:
        weight = sum(abs(np.sum(np.conj(s) * np.asarray(start)) * grid.cell) ** 2 for s in (s0, s1))
    ok = (abs(left0 - 0.5) < tol and abs(left1 - 0.5) < tol and localised > 1 - tol and sign_change
          and splitting < gap and (start is None or weight > 1 - tol))
    return PairCheck(bool(ok), left0, left1, localised, sign_change, splitting, gap, weight)
