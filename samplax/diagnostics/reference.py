"""Agreement with reference draws: per-coordinate z-scores of means and sds over the combined MCSE."""

from __future__ import annotations

import numpy as np
import pandas as pd


def mcse_sd_iid(r: np.ndarray) -> float:
    """MCSE of the sd of near-independent draws: sd * sqrt((kurtosis - 1) / (4 n)) (delta method)."""
    r = np.asarray(r, float)
    c = r - r.mean()
    m2, m4 = np.mean(c ** 2), np.mean(c ** 4)
    return float(np.sqrt(max(m4 / m2 ** 2 - 1, 0.0) / (4 * r.size)) * np.sqrt(m2))


def reference_z(dt, reference_draws: dict) -> pd.DataFrame:
    """One row per reference coordinate: run and reference mean / sd, and z = error / combined MCSE.

    The run's MCSEs (mean and sd) come from arviz-stats (they account for autocorrelation); the
    reference draws (posteriordb's are thinned to near-independence) use iid formulas.
    """
    from samplax.diagnostics.mixing import entry_label, summary

    s = summary(dt)
    rows = {}
    for site, ref in reference_draws.items():
        if site not in dt.posterior:
            raise ValueError(f"reference site {site!r} is not a posterior variable of the run "
                             f"({list(dt.posterior.data_vars)})")
        post = np.asarray(dt.posterior[site])
        post = post.reshape(-1, *post.shape[2:])
        ref = np.asarray(ref, float)
        for idx in np.ndindex(*ref.shape[1:]):
            label = entry_label(dt.posterior[site], idx)
            r, ours = ref[(slice(None), *idx)], post[(slice(None), *idx)]
            se_m = float(np.hypot(s.loc[label, "mcse_mean"], r.std() / np.sqrt(r.size)))
            se_s = float(np.hypot(s.loc[label, "mcse_sd"], mcse_sd_iid(r)))
            rows[label] = {"mean": ours.mean(), "ref_mean": r.mean(), "z_mean": (ours.mean() - r.mean()) / se_m,
                           "sd": ours.std(), "ref_sd": r.std(), "z_sd": (ours.std() - r.std()) / se_s,
                           "ess_bulk": float(s.loc[label, "ess_bulk"]), "r_hat": float(s.loc[label, "r_hat"])}
    return pd.DataFrame(rows).T


def population_reference_z(dt, reference_draws: dict) -> tuple[float, float, int]:
    """For a population run: max |z| of means and of sds against reference draws, and the run's effective size.

    Particles have no chain MCSE: the SE of a mean is the larger of the spread of the population means over
    sqrt(populations) and sd / sqrt(particles) (likewise for the sd); the effective size is min sd^2 / SE^2.
    """
    zm, zs, n_eff = 0.0, 0.0, np.inf
    for site, ref in reference_draws.items():
        post = np.asarray(dt.posterior[site], float)
        c, n = post.shape[:2]
        post, ref = post.reshape(c, n, -1), np.asarray(ref, float).reshape(len(ref), -1)
        for j in range(ref.shape[1]):
            v, r = post[:, :, j], ref[:, j]
            sd = v.std()
            se_m = max(v.mean(axis=1).std(ddof=1) / np.sqrt(c), sd / np.sqrt(v.size))
            se_s = max(v.std(axis=1).std(ddof=1) / np.sqrt(c), mcse_sd_iid(v.ravel()))
            zm = max(zm, abs(v.mean() - r.mean()) / np.hypot(se_m, r.std() / np.sqrt(r.size)))
            zs = max(zs, abs(sd - r.std()) / np.hypot(se_s, mcse_sd_iid(r)))
            if se_m > 0:
                n_eff = min(n_eff, (sd / se_m) ** 2)
    return float(zm), float(zs), int(min(n_eff, 10 ** 9))
