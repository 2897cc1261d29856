"""A bias check for unadjusted samplers from the target's own Stein identities.

For a smooth density p on R^d whose tails decay (every unconstrained samplax target), integration by parts gives,
per coordinate i and for any constant c_i,

    E_p[d log p / dx_i] = 0        and        E_p[(x_i - c_i) d log p / dx_i] = -1.

Both are exact and scale-free. An unadjusted sampler (ULA, unadjusted underdamped Langevin) samples a nearby
density p_h instead of p, and R-hat and ESS, which compare chains with each other, cannot see the difference: on
a standard Gaussian ULA's stationary variance is 1 / (1 - h / 2), so the second identity reads -1 / (1 - h / 2).
Here each identity is estimated from the run's draws (at most STEIN_DRAWS evenly spaced per chain, c_i the
draws' mean) with its MCSE from arviz-stats (autocorrelation included), and a coordinate whose estimate is more
than STEIN_Z MCSEs from the exact value is a finding: the bias is larger than the run's Monte Carlo error.
Coordinates whose statistic has fewer than MIN_ESS effective draws are not judged. A streamed run checks at most
its trust check's TRUST_DRAWS per chain (the only draws it keeps in memory). The gradients are evaluated
afresh at the checked draws (counted apart, in attrs["n_grad_check"], not in the run's n_grad).
"""

from __future__ import annotations

import numpy as np

STEIN_DRAWS = 5000  # draws per chain the check evaluates gradients at (every k-th, evenly spaced)
STEIN_Z = 5.0  # |estimate - exact| / MCSE above this is a finding
MIN_ESS = 400  # a coordinate's statistic needs this many effective draws to be judged


def stride(num_draws: int, per_chain: int | None = None) -> int:
    """Every k-th draw is checked: k = ceil(num_draws / per_chain), per_chain STEIN_DRAWS unless given (a streamed
    run keeps only the draws it checks, at most as many as its trust check reads, so its memory stays flat)."""
    return max(1, -(-int(num_draws) // int(STEIN_DRAWS if per_chain is None else per_chain)))


def identities(logdensity, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per draw the two Stein statistics, each (chain, draw, d) and zero in expectation under the target:
    d log p / dx_i, and (x_i - mean_i) d log p / dx_i + 1."""
    import jax

    x = np.asarray(positions, dtype=float)
    grad = np.asarray(jax.jit(jax.vmap(jax.vmap(jax.grad(logdensity))))(x), dtype=float)
    centred = x - x.reshape(-1, x.shape[-1]).mean(axis=0)
    return grad, centred * grad + 1.0


def check(logdensity, positions: np.ndarray, names) -> tuple[list[str], dict]:
    """(findings, info) for unconstrained draws `positions` (chain, draw, d) of a run meant to sample
    exp(logdensity). info: the largest |z| judged, how many coordinates were judged and the gradients spent."""
    from arviz_stats import ess

    c, n, d = positions.shape
    info = {"stein_max_z": np.nan, "stein_judged": 0, "n_grad_check": int(c * n)}
    if c * n < MIN_ESS or not np.all(np.isfinite(positions)):
        return [], info  # too few draws to judge; non-finite draws are reported by the trust check itself
    stats = identities(logdensity, positions)
    worst = None
    judged, failed = 0, 0
    for label, s, exact in (("E[d log p / dx]", stats[0], 0.0), ("E[(x - mean) d log p / dx]", stats[1], -1.0)):
        if not np.all(np.isfinite(s)):
            continue
        e = np.asarray(ess(s, method="mean", chain_axis=0, draw_axis=1), dtype=float).reshape(d)
        mean = s.reshape(-1, d).mean(axis=0)
        sd = s.reshape(-1, d).std(axis=0, ddof=1)
        ok = (e >= MIN_ESS) & (sd > 0)
        z = np.where(ok, mean / np.where(ok, sd / np.sqrt(np.maximum(e, 1)), 1.0), 0.0)
        judged += int(ok.sum())
        failed += int((np.abs(z) > STEIN_Z).sum())
        i = int(np.argmax(np.abs(z)))
        if ok.any() and (worst is None or abs(z[i]) > abs(worst[3])):
            worst = (label, names[i], mean[i] + exact, z[i], exact, sd[i] / np.sqrt(e[i]))
    info["stein_judged"] = judged
    if worst is not None:
        info["stein_max_z"] = float(abs(worst[3]))
    if not failed:
        return [], info
    label, name, value, z, exact, se = worst
    return [f"the draws are biased (a step-size bias R-hat and ESS cannot see): the target's Stein identity "
            f"{label} = {exact:g} fails in {failed} of {judged} checked coordinate statistic(s) by more than "
            f"{STEIN_Z:g} MCSE (worst {name}, unconstrained: {value:.4f} ± {se:.4f}, z = {z:.1f}); lower step_size "
            "(or raise target_accept towards 1), or use an adjusted sampler (mala, underdamped with adjusted=True, "
            "nuts)."], info


def applies(sampler_name: str, settings: dict | None) -> bool:
    """The samplers whose draws carry a step-size bias and have no check of their own: ULA and unadjusted
    underdamped Langevin (MCLMC / sECD judge their energy error; the adjusted samplers are exact)."""
    if sampler_name == "ula":
        return True
    return sampler_name == "underdamped" and not (settings or {}).get("adjusted", False)


def coordinate_names(target) -> list[str]:
    """Names of the unconstrained coordinates: a numpyro model's sites (their unconstrained shapes), the
    constrained names where they match one to one, else positions."""
    unravel = (target.info or {}).get("unravel")
    if unravel is not None:
        names = [f"coordinate {i}" for i in range(target.dim)]
        for site, idx in unravel(np.arange(target.dim, dtype=float)).items():
            idx = np.asarray(idx)
            for at in np.ndindex(*idx.shape):
                names[int(idx[at])] = site if at == () else f"{site}[{','.join(map(str, at))}]"
        return names
    names = list(target.names)
    return names if len(names) == target.dim else [f"coordinate {i}" for i in range(target.dim)]
