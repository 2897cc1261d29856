"""Grid quantum dynamics vs exactly known cases: harmonic levels and period, double-well tunnelling time."""

import jax.numpy as jnp
import numpy as np
import pytest

from samplax.experiments.quantum import (apply_hamiltonian, chebyshev_propagate, ecdsep_terms, eigenstates, first_crossing_time,
                             gaussian, hamiltonian_matrix, make_grid, probability_in, split_operator, transfer_time,
                             tunnelling_pair, tunnelling_time)


def overlap(a, b, grid):
    return complex(np.sum(np.conj(a) * b) * grid.cell)


def dense_propagate(psi0, H, grid, t, hbar=1.0):
    E, U = np.linalg.eigh(H)
    c = U.conj().T @ np.asarray(psi0).ravel()
    return (U @ (np.exp(-1j * E * t / hbar) * c)).reshape(grid.shape)


def double_well(x, a=2.0, omega=2.0):
    return omega**2 * (x**2 - a**2) ** 2 / (8 * a**2)


@pytest.mark.parametrize("hbar,mass", [(1.0, 1.0), (0.5, 2.0)])
def test_harmonic_levels(hbar, mass):
    omega, g = 1.5, make_grid(-10, 10, 256)
    x = g.points[0]
    E, _ = eigenstates(0.5 * mass * omega**2 * x**2, g, 8, hbar=hbar, mass=mass)
    np.testing.assert_allclose(E, hbar * omega * (np.arange(8) + 0.5), atol=1e-9)


def test_harmonic_levels_2d():
    g = make_grid((-6, -6), (6, 6), (32, 32))
    X, Y = g.points
    E, S = eigenstates(0.5 * X**2 + 0.5 * 4.0 * Y**2, g, 5)  # omega_x = 1, omega_y = 2
    np.testing.assert_allclose(E, [1.5, 2.5, 3.5, 3.5, 4.5], atol=1e-6)
    assert S.shape == (5, 32, 32)


def test_displaced_gaussian_returns_after_period_1d():
    omega, hbar, mass, x0 = 2.0, 0.7, 1.3, 1.5
    g = make_grid(-8, 8, 256)
    x = g.points[0]
    psi0 = gaussian(g, x0, np.sqrt(hbar / (2 * mass * omega)), hbar=hbar)  # coherent state
    period, n = 2 * np.pi / omega, 1000
    mean_x = lambda p: jnp.sum(x * jnp.abs(p) ** 2) * g.cell
    psi, xs = split_operator(psi0, 0.5 * mass * omega**2 * x**2, g, period / n, n, hbar=hbar, mass=mass,
                             observe=mean_x)
    assert abs(overlap(psi0, psi, g)) > 1 - 1e-6
    np.testing.assert_allclose(xs[n // 2], -x0, atol=1e-6)
    # in between, Strang splitting lags by a phase O((omega dt)^2) ~ 1e-5
    np.testing.assert_allclose(np.asarray(xs), x0 * np.cos(omega * period / n * np.arange(n + 1)), atol=5e-5)


def test_displaced_gaussian_returns_after_period_2d():
    wx, wy = 1.0, 2.0
    g = make_grid((-8, -8), (8, 8), (64, 64))
    X, Y = g.points
    V = 0.5 * wx**2 * X**2 + 0.5 * wy**2 * Y**2
    psi0 = np.exp(-((X - 1.0) ** 2) * wx / 2 - (Y + 0.5) ** 2 * wy / 2)  # coherent state at (1, -0.5)
    psi0 = psi0 / np.sqrt(np.sum(np.abs(psi0) ** 2) * g.cell)
    n = 800
    psi, ys = split_operator(psi0, V, g, 2 * np.pi / n, n, observe=lambda p: jnp.sum(Y * jnp.abs(p) ** 2) * g.cell)
    assert abs(overlap(psi0, psi, g)) > 1 - 1e-5
    # y has period pi: back at -0.5 after pi, at +0.5 after pi/2
    np.testing.assert_allclose(ys[n // 2], -0.5, atol=1e-5)
    np.testing.assert_allclose(ys[n // 4], 0.5, atol=1e-5)


def test_double_well_tunnelling_time_is_pi_hbar_over_splitting():
    """(psi0 - psi1)/sqrt2 starts in the left well; P(right) = 1/2 - c cos(dE t / hbar): 1/2 at
    pi hbar / (2 dE), full transfer at pi hbar / dE, with dE from the grid Hamiltonian.

    Nodes at +-dx/2, ..., so "x > 0" is exactly half the grid (a node at 0 would shift the 1/2 crossing)."""
    dx = 20 / 256
    g = make_grid(-10 + dx / 2, 10 + dx / 2, 256)
    x = g.points[0]
    V = double_well(x)
    E, S = eigenstates(V, g, 2)
    dE = E[1] - E[0]
    s1 = S[1] * np.sign(np.sum(S[1].real * (x > 0)))
    left = (S[0] - s1) / np.sqrt(2)
    assert float(probability_in(left, x > 0, g)) < 0.01
    errors = []
    for dt in (0.04, 0.02):
        t_half = transfer_time(left, V, g, x > 0, t_max=np.pi / dE, dt=dt)
        errors.append(abs(t_half / (np.pi / (2 * dE)) - 1))
    assert errors[-1] < 1e-3
    assert errors[0] / errors[1] > 3  # Strang splitting: second order in dt
    dt = 0.02
    _, pr = split_operator(left, V, g, dt, int(1.2 * np.pi / dE / dt),
                           observe=lambda p: probability_in(p, x > 0, g))
    assert abs(np.argmax(np.asarray(pr)) * dt / tunnelling_time(V, g) - 1) < 1e-3
    assert float(pr.max()) > 0.98
    # from the ground state of the left well alone (Dirichlet at the barrier): nearly the same time
    _, G = eigenstates(V, g, 1, mask=x < 0)
    t_local = transfer_time(G[0], V, g, x > 0, t_max=np.pi / dE, dt=dt)
    assert abs(t_local / (np.pi / (2 * dE)) - 1) < 0.02


@pytest.mark.parametrize("ordering", ["symmetric", "pfp"])
def test_position_dependent_kinetic_is_hermitian_and_ordering_differs_by_f_second_derivative(ordering):
    hbar, mass = 0.7, 1.3
    g = make_grid(-10, 10, 128)
    x = g.points[0]
    f = 1 + 0.3 * np.cos(x)
    V = double_well(x)
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(2, 128)) + 1j * rng.normal(size=(2, 128))
    Ha = apply_hamiltonian(a, V, g, f=f, ordering=ordering, hbar=hbar, mass=mass)
    Hb = apply_hamiltonian(b, V, g, f=f, ordering=ordering, hbar=hbar, mass=mass)
    assert abs(np.vdot(a, Hb) - np.vdot(Ha, b)) < 1e-9 * abs(np.vdot(a, Hb))
    # on smooth states: (f K0 + K0 f)/2 - p f p/(2m) = -(hbar^2 / 4m) f''
    psi = gaussian(g, 0.5, 0.7, 1.0, hbar=hbar)
    kw = dict(f=f, hbar=hbar, mass=mass)
    diff = apply_hamiltonian(psi, V, g, ordering="symmetric", **kw) - apply_hamiltonian(psi, V, g, ordering="pfp", **kw)
    np.testing.assert_allclose(diff, -(hbar**2) / (4 * mass) * (-0.3 * np.cos(x)) * psi, atol=1e-10)


@pytest.mark.parametrize("ordering", ["symmetric", "pfp"])
def test_chebyshev_matches_exact_eigen_propagation(ordering):
    g = make_grid(-10, 10, 128)
    x = g.points[0]
    f, V = 1 + 0.3 * np.cos(x), double_well(x)
    psi0 = gaussian(g, -2.0, 0.5, 0.5)
    H = hamiltonian_matrix(V, g, f=f, ordering=ordering)
    psi, _ = chebyshev_propagate(psi0, V, g, 0.25, 12, f=f, ordering=ordering)
    np.testing.assert_allclose(np.asarray(psi), dense_propagate(psi0, H, g, 3.0), atol=1e-9)


def test_constant_kinetic_factor_equals_lighter_mass():
    """f = c gives c p^2/2m: the Chebyshev (ECD) path must tunnel like the split operator with mass m/c."""
    g = make_grid(-10, 10, 256)
    x = g.points[0]
    V, c = double_well(x), 1.5
    _, G = eigenstates(V, g, 1, mask=x < 0)
    t_ecd = transfer_time(G[0], V, g, x > 0, t_max=60.0, dt=0.2, f=np.full_like(x, c))
    t_so = transfer_time(G[0], V, g, x > 0, t_max=60.0, dt=0.01, mass=1 / c)
    assert np.isfinite(t_ecd) and abs(t_ecd / t_so - 1) < 1e-3


def test_ecdsep_log_kinetic_split_operator_converges_to_exact():
    """Quantised ECDSep, H = log(s + p^2) + eta log(F - F0), is separable: the split operator must converge
    at second order to exact (eigen-decomposition) propagation of the same grid Hamiltonian."""
    g = make_grid(-6, 6, 128)
    x = g.points[0]
    V, kinetic = ecdsep_terms(double_well(x, a=1.0) + 0.1, eta=1.0, F0=0.0, s=1.0)
    psi0 = gaussian(g, -1.0, 0.4)
    exact = dense_propagate(psi0, hamiltonian_matrix(V, g, kinetic=kinetic), g, 2.0)
    errs = [np.abs(np.asarray(split_operator(psi0, V, g, 2.0 / n, n, kinetic=kinetic)[0]) - exact).max()
            for n in (100, 200)]
    assert errs[1] < 1e-3 and 3.5 < errs[0] / errs[1] < 4.5, errs
    cheb, _ = chebyshev_propagate(psi0, V, g, 0.5, 4, kinetic=kinetic)
    np.testing.assert_allclose(np.asarray(cheb), exact, atol=1e-9)
    assert np.isfinite(transfer_time(psi0, V, g, x > 0, t_max=200.0, dt=0.05, kinetic=kinetic))


def half_grid(half_width, n):
    """Nodes at +-dx/2, ...: x < 0 and x > 0 are mirror halves."""
    dx = 2 * half_width / n
    return make_grid(-half_width + dx / 2, half_width + dx / 2, n)


# (kinetic, hbar, beta, grid) in the two-level regime: start state >= 99.9% in the lowest pair
QGD = dict(ecd=None, hbar=2.0, beta=3.0, half_width=16.0, n=512)
QECD = dict(ecd=dict(eta=8.0, s=0.05), hbar=1.0, beta=3.0, half_width=30.0, n=512)


def well_problem(ecd, hbar, beta, half_width, n):
    g = half_grid(half_width, n)
    x = g.points[0]
    F = double_well(x, a=np.sqrt(8 * beta), omega=1.0) + 1.0  # barrier beta, F > F0 = 0
    V, kin = (F, None) if ecd is None else ecdsep_terms(F, F0=0.0, **ecd)
    E, S = eigenstates(V, g, 3, hbar=hbar, kinetic=kin)
    _, G = eigenstates(V, g, 1, hbar=hbar, kinetic=kin, mask=x < 0)
    return g, x, V, kin, E, S, G[0]


def test_tunnelling_pair_accepts_qecd_doublet_and_rejects_single_well_and_low_barrier():
    g, x, V, kin, E, S, start = well_problem(**QECD)
    pair = tunnelling_pair(E, S, g, x < 0, start=start)
    assert pair.ok and pair.sign_change and pair.localised > 0.999 and pair.start_weight > 0.999
    # qECD in a single well: psi0, psi1 are half on either side by symmetry and psi1 changes sign, but
    # they are no doublet (E1 - E0 > E2 - E1) and psi0 + psi1 is only partly on one side
    V1, kin1 = ecdsep_terms(0.5 * x**2 + 1.0, eta=8.0, F0=0.0, s=0.05)
    E1, S1 = eigenstates(V1, g, 3, kinetic=kin1)
    single = tunnelling_pair(E1, S1, g, x < 0)
    assert abs(single.left0 - 0.5) < 1e-6 and single.sign_change
    assert not single.ok and single.splitting > single.gap and single.localised < 0.99
    # quantised GD over a barrier comparable to hbar omega / 2: the local ground state leaks out of the pair
    low = well_problem(**{**QGD, "beta": 1.0})
    assert not tunnelling_pair(low[4], low[5], low[0], low[1] < 0, start=low[6]).ok
    with pytest.raises(ValueError, match="3 lowest levels"):
        tunnelling_pair(E[:2], S[:2], g, x < 0)
    with pytest.raises(ValueError, match="left must be a boolean mask"):
        tunnelling_pair(E, S, g, np.ones(7, bool))


@pytest.mark.parametrize("problem", [QGD, QECD], ids=["qGD", "qECD"])
def test_tall_barrier_transfer_time_is_pi_hbar_over_twice_splitting(problem):
    """Start in the left-well ground state ~ (psi0 - psi1)/sqrt2 (sign of psi1: positive on the right):
    psi(t) ~ (e^{-i E0 t/hbar} psi0 - e^{-i E1 t/hbar} psi1)/sqrt2, so P(right) = sin^2(dE t / (2 hbar)),
    which first exceeds 1/2 at t = pi hbar / (2 dE).  Corrections are O(1 - start weight in the pair)."""
    g, x, V, kin, E, S, start = well_problem(**problem)
    hbar = problem["hbar"]
    pair = tunnelling_pair(E, S, g, x < 0, start=start)
    assert pair.ok and pair.start_weight > 0.999
    predicted = np.pi * hbar / (2 * (E[1] - E[0]))
    t = transfer_time(start, V, g, x > 0, t_max=2 * predicted, dt=0.05, hbar=hbar, kinetic=kin, chunk=1000)
    assert abs(t / predicted - 1) < 0.01, (t, predicted)


def test_transfer_time_stops_early_and_censors_at_t_max():
    g, x, V, kin, E, S, start = well_problem(**QGD)
    predicted = np.pi * QGD["hbar"] / (2 * (E[1] - E[0]))
    assert transfer_time(start, V, g, x > 0, t_max=0.5 * predicted, dt=0.05, hbar=2.0, chunk=997) == float("inf")
    # the chunk length must not change the answer (crossing found inside a chunk, interpolated)
    a = transfer_time(start, V, g, x > 0, t_max=2 * predicted, dt=0.05, hbar=2.0, chunk=997)
    b = transfer_time(start, V, g, x > 0, t_max=2 * predicted, dt=0.05, hbar=2.0, chunk=5000)
    assert a == pytest.approx(b, rel=1e-12)


def test_first_crossing_time_and_bad_input():
    assert first_crossing_time([0, 1, 2], [0.0, 0.4, 0.8]) == pytest.approx(1.25)
    assert first_crossing_time([0, 1, 2], [0.0, 0.1, 0.2]) == float("inf")
    g = make_grid(-1, 1, 16)
    with pytest.raises(ValueError, match="V must be given on the grid"):
        split_operator(np.ones(16), np.ones(8), g, 0.1, 3)
    with pytest.raises(ValueError, match="ordering"):
        apply_hamiltonian(np.ones(16), np.ones(16), g, f=np.ones(16), ordering="weyl")
    with pytest.raises(ValueError, match="upper"):
        make_grid(1, -1, 16)
    with pytest.raises(ValueError, match="F0"):
        ecdsep_terms(np.ones(16), F0=2.0)
    with pytest.raises(ValueError, match="pfp"):
        apply_hamiltonian(np.ones(16), np.ones(16), g, f=np.ones(16), ordering="pfp", kinetic=lambda p: p**2)
