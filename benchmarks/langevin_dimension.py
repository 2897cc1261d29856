"""Gradient evaluations for Langevin samplers to reach W2 <= eps from a fixed warm start, as the dimension d grows.

Theory for ULA (Li, Zha & Tao, "Sqrt(d) dimension dependence of Langevin Monte Carlo", ICLR 2022): under a warm
start the mixing time in W2 is ~ sqrt(d)/eps, i.e. a slope of 1/2 in log(steps) vs log(d).

Set-up, the same for every d:
- targets (all strongly log-concave, coordinates independent): isotropic Gaussian N(0, I); ill-conditioned
  Gaussian with variances cycling through 4 log-spaced levels in [1/KAPPA, 1]; and a non-Gaussian product of
  V(x) = x^2/2 + softplus(2x) (V'' in [1, 2], skewed);
- warm start: the target shifted by W0 along coordinate 0 (a variance-1 coordinate), so W2(start, target) = W0
  exactly for every d;
- ULA and unadjusted underdamped (OBABO, gamma=2) step size: the largest h whose *stationary* W2 bias is <= eps/2;
  MALA (unbiased): h from samplax's dual-averaging warmup at acceptance 0.574 (warmup cost not counted);
- count: first step k with W2(law of x_k, target) <= eps; one gradient per step for all three.

How W2 is computed:
- ULA / underdamped on the Gaussians: the iterates are Gaussian with closed-form mean and covariance recursions
  (per coordinate; coordinates of one kind are identical, so the cost does not grow with d): no sampling noise.
- ULA on the product target: the iterate law is a product of 1D laws, propagated exactly on a fine grid
  (Gaussian transition kernel, Delta << sqrt(2h)); W2^2 of two product laws is *exactly* the sum of the 1D W2^2
  (a coupling's cost splits over coordinates, each at least its 1D W2^2; the product of 1D optimal couplings
  attains it), and 1D W2 is the quantile formula (POT `wasserstein_1d`).
- MALA: sampled with N_CHAINS chains (no closed form); W2 is replaced by the lower bound
  sum_i [(mean_i - mu_i)^2 + (sd_i - sigma_i)^2] <= sum_i W2^2(marginal_i) <= W2^2 (Gelbrich per marginal),
  with moments pooled over coordinates that are exchangeable by symmetry, so its noise does not grow with d
  (and its expected noise contribution subtracted). Underdamped Langevin is shown on the Gaussians only.
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
import ot
import scipy.special

jax.config.update("jax_enable_x64", True)

from samplax import Target  # noqa: E402
from samplax.diagnostics.wasserstein import gaussian_w2  # noqa: E402
from samplax.samplers import get as get_sampler  # noqa: E402
from samplax.samplers.langevin import ula_kernel  # noqa: E402

EPS, W0, KAPPA, GAMMA = 0.1, 1.0, 10.0, 2.0
LEVELS = KAPPA ** -(np.arange(3, -1, -1) / 3)  # ill-conditioned variances, smallest first
GRID = np.linspace(-9.0, 8.0, 851)  # 1D grid for the product target (spacing 0.02)
N_CHAINS = 2000


# --------------------------------------------------------------------------- targets as coordinate kinds
def kinds(target: str, d: int):
    """(variance or None, multiplicity) per kind of coordinate; kind 0 is the shifted coordinate."""
    if target == "isotropic":
        return [(1.0, 1), (1.0, d - 1)]
    if target == "ill_conditioned":
        counts = np.bincount(np.arange(d - 1) % 4, minlength=4)
        return [(1.0, 1)] + [(float(v), int(c)) for v, c in zip(LEVELS, counts) if c > 0]
    return [(None, 1), (None, d - 1)]  # product target


def level_of(d: int) -> np.ndarray:
    """Kind index of each coordinate for the ill-conditioned target (0 = shifted coordinate)."""
    return np.concatenate([[0], 1 + np.arange(d - 1) % 4])


def product_V(x):
    return 0.5 * x**2 + jnp.logaddexp(0.0, 2 * x)


def product_dV(x):
    return x + 2 * scipy.special.expit(2 * x)


def product_pi():
    w = np.exp(-np.asarray(product_V(GRID)))
    return w / w.sum()


def product_moments():
    p = product_pi()
    m = float(p @ GRID)
    return m, float(np.sqrt(p @ (GRID - m) ** 2))


def make_target(target: str, d: int) -> Target:
    if target == "product":
        return Target.from_logdensity(lambda x: -jnp.sum(product_V(x)), d, name="product")
    var = np.ones(d) if target == "isotropic" else np.concatenate([[1.0], LEVELS[(np.arange(d - 1) % 4)]])
    prec = jnp.asarray(1 / var)
    return Target.from_logdensity(lambda x: -0.5 * jnp.sum(prec * x**2), d, name=target,
                                  mean=jnp.zeros(d), cov=jnp.diag(jnp.asarray(var)))


# --------------------------------------------------------------------------- ULA, Gaussian, closed form
def ula_gaussian_bias(kinds_, h):
    """Stationary W2 of ULA: variance s / (1 - h / (2 s)) per coordinate (x' = (1 - h/s) x + sqrt(2h) xi)."""
    return np.sqrt(sum(m * s * (1 / np.sqrt(1 - h / (2 * s)) - 1) ** 2 for s, m in kinds_))


def ula_gaussian_w2(kinds_, h, ks):
    """W2 at steps `ks` from the warm start (mean W0 on kind 0, exact covariance)."""
    tot = np.zeros(len(ks))
    for i, (s, m) in enumerate(kinds_):
        a = 1 - h / s
        v_inf = s / (1 - h / (2 * s))
        var = v_inf + a ** (2 * ks) * (s - v_inf)
        mean2 = (W0 * a**ks) ** 2 if i == 0 else 0.0
        tot += m * (mean2 + (np.sqrt(var) - np.sqrt(s)) ** 2)
    return np.sqrt(tot)


# --------------------------------------------------------------------------- underdamped OBABO, closed form
def obabo_affine(lam, h, gamma=GAMMA):
    """(M, Q): one OBABO step on N(0, 1/lam) with unit mass, z = (x, p) -> M z + N(0, Q). Batched over lam."""
    lam = np.atleast_1d(lam)
    n = lam.size

    def batch(mat):
        return np.broadcast_to(mat, (n, 2, 2)).copy()

    c = np.exp(-gamma * h / 2)
    o_m, o_q = batch(np.diag([1.0, c])), batch(np.diag([0.0, 1 - c**2]))
    b = batch(np.eye(2))
    b[:, 1, 0] = -h / 2 * lam
    a = batch(np.array([[1.0, h], [0.0, 1.0]]))
    m, q = np.broadcast_to(np.eye(2), (n, 2, 2)).copy(), np.zeros((n, 2, 2))
    for mi, qi in ((o_m, o_q), (b, 0), (a, 0), (b, 0), (o_m, o_q)):
        m = mi @ m
        q = mi @ q @ np.swapaxes(mi, 1, 2) + qi
    return m, q


def stationary_cov(m, q):
    """Solve S = M S M^T + Q for batched 2x2 M via vec(S) = (I - M kron M)^{-1} vec(Q)."""
    kron = np.einsum("nij,nkl->nikjl", m, m).reshape(-1, 4, 4)
    return np.linalg.solve(np.eye(4) - kron, q.reshape(-1, 4, 1)).reshape(-1, 2, 2)


def obabo_bias(kinds_, h):
    lam = np.array([1 / s for s, _ in kinds_])
    mult = np.array([m for _, m in kinds_])
    m, q = obabo_affine(lam, h)
    if np.any(np.abs(np.linalg.eigvals(m)) >= 1):  # unstable: no stationary law
        return np.inf
    s_xx = stationary_cov(m, q)[:, 0, 0]
    return np.sqrt(np.sum(mult * (np.sqrt(s_xx) - np.sqrt(1 / lam)) ** 2))


def obabo_gaussian_w2(kinds_, h, ks):
    lam = np.array([1 / s for s, _ in kinds_])
    mult = np.array([m for _, m in kinds_])
    m, q = obabo_affine(lam, h)
    mean = np.zeros((lam.size, 2))
    mean[0, 0] = W0
    cov = np.zeros((lam.size, 2, 2))
    cov[:, 0, 0], cov[:, 1, 1] = 1 / lam, 1.0  # target x-marginal, unit-mass momentum
    out, k_done = np.empty(len(ks)), 0
    for j, k in enumerate(ks):
        for _ in range(k - k_done):
            mean = np.einsum("nij,nj->ni", m, mean)
            cov = m @ cov @ np.swapaxes(m, 1, 2) + q
        k_done = k
        out[j] = np.sqrt(np.sum(mult * (mean[:, 0] ** 2 + (np.sqrt(cov[:, 0, 0]) - np.sqrt(1 / lam)) ** 2)))
    return out


# --------------------------------------------------------------------------- ULA on the product target: 1D grid
def ula_grid_kernel(h, dV=product_dV):
    """Row-stochastic ULA transition matrix on GRID (Gaussian N(x - h V'(x), 2h) integrated by the grid)."""
    mean = GRID - h * dV(GRID)
    z = (GRID[None, :] - mean[:, None]) ** 2 / (4 * h)
    k = np.where(z < 600, np.exp(-np.minimum(z, 600)), 0.0)  # no subnormals: they make matmuls ~100x slower
    k /= k.sum(1, keepdims=True)
    return np.where(k < 1e-20, 0.0, k)


def grid_w2sq(p, q, n_u=20_000):
    """1D W2^2 between laws on GRID (batched over rows of p), each read as a piecewise-constant density on
    the grid cells: its quantile function is piecewise linear, so nearly equal laws have nearly equal
    quantiles (atoms would give a spurious first-order term Delta^2 |F_p - F_q| that d copies amplify)."""
    p = np.atleast_2d(p)
    delta = GRID[1] - GRID[0]
    edges = np.concatenate([GRID - delta / 2, [GRID[-1] + delta / 2]])
    u = (np.arange(n_u) + 0.5) / n_u

    def quantile(w):
        cdf = np.concatenate([[0.0], np.cumsum(w) / np.sum(w)])
        return np.interp(u, cdf, edges)

    q_u = quantile(q)
    return np.array([np.mean((quantile(row) - q_u) ** 2) for row in p])


def stationary_grid(P):
    n = P.shape[0]
    a = P.T - np.eye(n)
    a[-1] = 1.0
    rhs = np.zeros(n)
    rhs[-1] = 1.0
    return np.linalg.solve(a, rhs)


def shifted(p, shift):
    return np.interp(GRID - shift, GRID, p, left=0.0, right=0.0) / np.interp(GRID - shift, GRID, p, left=0.0,
                                                                              right=0.0).sum()


def ula_product_w2(d, h, k_max, pi=None, dV=product_dV):
    """Exact W2 (up to the grid) of ULA's law at steps 0..k_max on the d-dim product target."""
    pi = product_pi() if pi is None else pi
    P = ula_grid_kernel(h, dV)
    laws = np.empty((2, k_max + 1, GRID.size))
    laws[:, 0] = shifted(pi, W0), pi
    for k in range(k_max):
        laws[:, k + 1] = laws[:, k] @ P
    w_shift, w_rest = grid_w2sq(laws[0], pi), grid_w2sq(laws[1], pi)
    return np.sqrt(w_shift + (d - 1) * w_rest)


def product_bias_1d(hs):
    pi = product_pi()
    return np.array([np.sqrt(grid_w2sq(stationary_grid(ula_grid_kernel(h)), pi)[0]) for h in hs])


# --------------------------------------------------------------------------- step sizes and step counts
def largest_h(bias_fn, h_max):
    """Largest h in (0, h_max) with bias_fn(h) <= EPS / 2 (bisection in log h; bias increases with h)."""
    lo, hi = 1e-6, h_max
    if bias_fn(hi) <= EPS / 2:
        return hi
    for _ in range(50):
        mid = np.sqrt(lo * hi)
        lo, hi = (mid, hi) if bias_fn(mid) <= EPS / 2 else (lo, mid)
    return lo


def first_below(w2_fn, chunk=2000, k_limit=10**6):
    k0 = 0
    while k0 < k_limit:
        ks = np.arange(k0, k0 + chunk)
        w = w2_fn(ks)
        hit = np.nonzero(w <= EPS)[0]
        if hit.size:
            return int(ks[hit[0]])
        k0 += chunk
    raise RuntimeError("W2 did not fall below eps")


def ula_steps(target, d, product_bias_table):
    kd = kinds(target, d)
    if target != "product":
        h = largest_h(lambda h: ula_gaussian_bias(kd, h), h_max=min(s for s, _ in kd))
        return h, first_below(lambda ks: ula_gaussian_w2(kd, h, ks))
    hs, b1 = product_bias_table
    # sqrt(d) * b1(h) = EPS/2, b1 interpolated in log-log (smooth and increasing)
    h = float(np.exp(np.interp(np.log(EPS / 2 / np.sqrt(d)), np.log(b1), np.log(hs))))
    return h, first_hit(ula_product_w2_chunks(d, h))


def first_hit(chunks):
    """Index of the first value <= EPS in a stream of W2 chunks (steps 0, 1, 2, ...)."""
    k0 = 0
    for w in chunks:
        hit = np.nonzero(w <= EPS)[0]
        if hit.size:
            return k0 + int(hit[0])
        k0 += len(w)
    raise RuntimeError("W2 did not fall below eps")


def ula_product_w2_chunks(d, h, chunk=64, max_chunks=10_000):
    pi = product_pi()
    P = ula_grid_kernel(h)
    laws = np.stack([shifted(pi, W0), pi])
    for _ in range(max_chunks):
        hist = np.empty((2, chunk, GRID.size))
        for k in range(chunk):
            hist[:, k] = laws
            laws = laws @ P
        yield np.sqrt(grid_w2sq(hist[0], pi) + (d - 1) * grid_w2sq(hist[1], pi))


def obabo_steps(target, d):
    kd = kinds(target, d)
    h = largest_h(lambda h: obabo_bias(kd, h), h_max=1.9 * np.sqrt(min(s for s, _ in kd)))

    def w2(ks):
        return obabo_gaussian_w2(kd, h, ks)

    k_max = 16
    while True:
        w = w2(np.arange(k_max + 1))
        hit = np.nonzero(w <= EPS)[0]
        if hit.size:
            return h, int(hit[0])
        k_max *= 2


# --------------------------------------------------------------------------- MALA, sampled
def truth_moments(target, d):
    """Per kind-group (mean, sd) of the target marginals, and the group index of each coordinate."""
    if target == "product":
        m, s = product_moments()
        return np.array([[m, s], [m, s]]), np.concatenate([[0], np.ones(d - 1, int)])
    if target == "isotropic":
        return np.array([[0.0, 1.0], [0.0, 1.0]]), np.concatenate([[0], np.ones(d - 1, int)])
    return np.array([[0.0, 1.0]] + [[0.0, np.sqrt(v)] for v in LEVELS]), level_of(d)


def inverse_cdf(u):
    """Quantiles of the product target's 1D law, read as a piecewise-constant density on the grid cells."""
    delta = GRID[1] - GRID[0]
    edges = np.concatenate([GRID - delta / 2, [GRID[-1] + delta / 2]])
    return np.interp(u, np.concatenate([[0.0], np.cumsum(product_pi())]), edges)


def sample_start(target, d, key, n):
    """n draws from the target shifted by W0 along coordinate 0."""
    if target == "product":
        x = inverse_cdf(np.asarray(jax.random.uniform(key, (n, d))))
    else:
        var = np.asarray(jnp.diag(make_target(target, d).cov))
        x = np.asarray(jax.random.normal(key, (n, d))) * np.sqrt(var)
    x[:, 0] += W0
    return jnp.asarray(x)


def moment_lower_bound(target, d, means, sqs, n):
    """Lower bound on W2 from per-group pooled first/second moments of n chains (see module docstring).

    Estimation noise adds, per group, about count * (v / (n count) + v / (2 n count)) = 1.5 v / n to the
    squared bound (mean and Gaussian-sd sampling variances, coordinates of a group pooled); it is subtracted.
    """
    truth, group = truth_moments(target, d)
    counts = np.bincount(group, minlength=len(truth))
    var = np.maximum(sqs - means**2, 0.0)
    tot = counts * ((means - truth[:, 0]) ** 2 + (np.sqrt(var) - truth[:, 1]) ** 2)
    noise = 1.5 * np.sum(np.where(counts > 0, var, 0.0), axis=-1) / n
    return np.sqrt(np.maximum(tot.sum(-1) - noise, 0.0))


def run_sampled(target, d, step_fn, init_fn, chunk=64, max_chunks=200, seed=0, n=None):
    """n chains of `step_fn` from the warm start, continued in chunks; yields per-step W2 lower bounds."""
    n = N_CHAINS if n is None else n
    truth, group = truth_moments(target, d)
    onehot = jnp.asarray(np.eye(len(truth))[group])  # (d, groups)
    counts = np.maximum(np.asarray(onehot.sum(0)), 1)

    @jax.jit
    def advance(keys, states):
        def chain(key, s):
            def one(s, k):
                s = step_fn(k, s)[0]
                return s, (s.position @ onehot, (s.position**2) @ onehot)

            return jax.lax.scan(one, s, jax.random.split(key, chunk))

        return jax.vmap(chain)(keys, states)

    states = jax.vmap(init_fn)(sample_start(target, d, jax.random.PRNGKey(seed), n))
    yield np.array([W0])  # step 0: the warm start itself
    for c in range(max_chunks):
        keys = jax.vmap(lambda i: jax.random.fold_in(jax.random.PRNGKey(seed + 1), i))(jnp.arange(n) + c * n)
        states, (m, sq) = advance(keys, states)
        yield moment_lower_bound(target, d, np.asarray(m).mean(0) / counts, np.asarray(sq).mean(0) / counts, n)


def mala_step_size(target, d, seed=0):
    t = make_target(target, d)
    sampler = get_sampler("mala")
    x0 = sample_start(target, d, jax.random.PRNGKey(seed + 7), 4) - jnp.eye(d)[0] * W0  # start in the target
    w = jax.jit(jax.vmap(lambda k, x: sampler.warmup(t, k, x, 300)))(jax.random.split(jax.random.PRNGKey(seed), 4), x0)
    return float(np.median(np.asarray(w.params["step_size"])))


def mala_steps(target, d, seed=0):
    t = make_target(target, d)
    h = mala_step_size(target, d, seed)
    alg = get_sampler("mala").build(t, {"step_size": h})
    return h, first_hit(run_sampled(target, d, alg.step, lambda x: alg.init(x, None), seed=seed))


# --------------------------------------------------------------------------- checks against sampling
def checks(quick):
    """Closed forms vs gaussian_w2 and vs sampled ULA runs, once each."""
    d, h, k = 10, 0.05, 20
    kd = kinds("ill_conditioned", d)
    var = np.concatenate([[1.0], LEVELS[np.arange(d - 1) % 4]])
    a = 1 - h / var
    v_inf = var / (1 - h / (2 * var))
    mean = np.zeros(d)
    mean[0] = W0 * a[0] ** k
    cov = np.diag(v_inf + a ** (2 * k) * (var - v_inf))
    exact = ula_gaussian_w2(kd, h, np.array([k]))[0]
    print(f"check: closed-form ULA W2 at k={k}, d={d}: {exact:.5f}; samplax gaussian_w2 of the same law: "
          f"{gaussian_w2(mean, cov, np.zeros(d), np.diag(var)):.5f}")
    n = 20_000 if quick else 100_000
    t = make_target("ill_conditioned", d)
    x0 = sample_start("ill_conditioned", d, jax.random.PRNGKey(0), n)

    def chain(key, x):
        s = jax.lax.scan(lambda s, kk: (ula_kernel(kk, s, t.logdensity, h, jnp.ones(d))[0], None),
                         get_sampler("ula", step_size=h).build(t, {"step_size": h, "inverse_mass_matrix": jnp.ones(d)})
                         .init(x, None), jax.random.split(key, k))[0]
        return s.position

    xs = np.asarray(jax.jit(jax.vmap(chain))(jax.random.split(jax.random.PRNGKey(1), n), x0))
    se = mean[0] * np.sqrt(cov[0, 0] / n) / exact  # the estimated shift's noise dominates
    print(f"check: sampled ULA ({n} chains, samplax ula_kernel), Gaussian-fit W2: "
          f"{gaussian_w2(xs.mean(0), np.cov(xs.T), np.zeros(d), np.diag(var)):.5f} (vs exact {exact:.5f}, "
          f"sampling noise ~ {se:.4f})")
    # grid propagation reproduces the Gaussian closed form when V is Gaussian
    gauss = np.exp(-0.5 * GRID**2)
    gauss /= gauss.sum()
    w_grid = ula_product_w2(50, h, k, pi=gauss, dV=lambda x: x)[-1]
    w_exact = ula_gaussian_w2(kinds("isotropic", 50), h, np.array([k]))[0]
    print(f"check: 1D-grid ULA W2 on N(0, I_50) at k={k}: {w_grid:.6f} vs closed form {w_exact:.6f}")
    # grid propagation vs sampled ULA on the product target (1D marginal of the shifted coordinate)
    t1 = Target.from_logdensity(lambda x: -jnp.sum(product_V(x)), 1)
    x0 = sample_start("product", 1, jax.random.PRNGKey(2), n)

    def chain1(key, x):
        init = get_sampler("mala").build(t1, {"step_size": h}).init(x, None)
        s = jax.lax.scan(lambda s, kk: (ula_kernel(kk, s, t1.logdensity, h, jnp.ones(1))[0], None),
                         init, jax.random.split(key, k))[0]
        return s.position[0]

    xs1 = np.asarray(jax.jit(jax.vmap(chain1))(jax.random.split(jax.random.PRNGKey(3), n), x0))
    pi = product_pi()
    law = shifted(pi, W0) @ np.linalg.matrix_power(ula_grid_kernel(h), k)
    w_samp = np.sqrt(ot.wasserstein_1d(xs1, GRID, None, pi, p=2))  # sample vs grid atoms: noise >> Delta
    print(f"check: product target, 1D shifted coordinate at k={k}: grid W2 {np.sqrt(grid_w2sq(law, pi)[0]):.4f}, "
          f"sampled W2 {w_samp:.4f} (sampling noise ~ {1 / np.sqrt(n):.3f})")


# --------------------------------------------------------------------------- main
def run(quick: bool, with_mala: bool = True, dims=None, mala_targets=("isotropic", "ill_conditioned", "product")):
    """Rows (target, sampler, d, h, gradient evaluations to W2 <= EPS)."""
    if dims is None:
        dims = [2, 10, 100, 1000] if quick else [2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000]
    hs = np.geomspace(1e-4, 0.4, 16 if quick else 30)
    table = (hs, product_bias_1d(hs))
    rows = []
    for target in ("isotropic", "ill_conditioned", "product"):
        for d in dims:
            h, k = ula_steps(target, d, table)
            rows.append((target, "ula", d, h, k))
            if target != "product":
                h, k = obabo_steps(target, d)
                rows.append((target, "underdamped_obabo", d, h, k))
            if with_mala and target in mala_targets:
                h, k = mala_steps(target, d)
                rows.append((target, "mala", d, h, k))
    return rows


def slopes(rows):
    out = {}
    for key in sorted({(r[0], r[1]) for r in rows}):
        ds = np.array([r[2] for r in rows if (r[0], r[1]) == key], float)
        ks = np.array([r[4] for r in rows if (r[0], r[1]) == key], float)
        out[key] = float(np.polyfit(np.log(ds), np.log(ks), 1)[0])
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="d in {2, 10, 100, 1000}, fewer checks (< 2 min)")
    parser.add_argument("--no-mala", action="store_true", help="skip the sampled MALA curves")
    args = parser.parse_args()
    global N_CHAINS
    if args.quick:
        N_CHAINS = 1000
    t0 = time.perf_counter()
    print(f"eps={EPS}, warm start W2={W0}, kappa={KAPPA}, underdamped gamma={GAMMA}, MALA chains={N_CHAINS}")
    checks(args.quick)
    rows = run(args.quick, with_mala=not args.no_mala)
    print(f"\n{'target':16s} {'sampler':18s} {'d':>6s} {'step h':>10s} {'grads to W2<=eps':>17s}")
    for target, name, d, h, k in rows:
        print(f"{target:16s} {name:18s} {d:6d} {h:10.5f} {k:17d}")
    print("\nfitted slope of log(gradient evaluations) vs log(d)   [theory for ULA, warm start: 0.5]")
    for (target, name), s in slopes(rows).items():
        print(f"  {target:16s} {name:18s} slope {s:5.2f}")
    print(f"(wall time {time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
