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
    from samplax.diagnostics.mixing import summary

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
            label = site if idx == () else f"{site}[{','.join(map(str, idx))}]"
            r, ours = ref[(slice(None), *idx)], post[(slice(None), *idx)]
            se_m = float(np.hypot(s.loc[label, "mcse_mean"], r.std() / np.sqrt(r.size)))
            se_s = float(np.hypot(s.loc[label, "mcse_sd"], mcse_sd_iid(r)))
            rows[label] = {"mean": ours.mean(), "ref_mean": r.mean(), "z_mean": (ours.mean() - r.mean()) / se_m,
                           "sd": ours.std(), "ref_sd": r.std(), "z_sd": (ours.std() - r.std()) / se_s,
                           "ess_bulk": float(s.loc[label, "ess_bulk"]), "r_hat": float(s.loc[label, "r_hat"])}
    return pd.DataFrame(rows).T
