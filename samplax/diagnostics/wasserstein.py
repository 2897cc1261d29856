"""Wasserstein error of draws against ground truth (POT / ott-jax for the transport problems)."""

from __future__ import annotations

import numpy as np
import scipy.linalg


def gaussian_w2(mean1, cov1, mean2, cov2) -> float:
    """Closed-form W2 between N(mean1, cov1) and N(mean2, cov2) (the Bures metric on covariances)."""
    m1, m2 = np.atleast_1d(np.asarray(mean1, float)), np.atleast_1d(np.asarray(mean2, float))
    c1, c2 = np.atleast_2d(np.asarray(cov1, float)), np.atleast_2d(np.asarray(cov2, float))
    if c1.shape != c2.shape or m1.shape != m2.shape or c1.shape != (m1.size, m1.size):
        raise ValueError(f"gaussian_w2: shapes disagree: means {m1.shape}, {m2.shape}; covs {c1.shape}, {c2.shape}")
    r1 = scipy.linalg.sqrtm(c1)
    cross = scipy.linalg.sqrtm(r1 @ c2 @ r1)
    bures2 = np.trace(c1) + np.trace(c2) - 2.0 * np.real(np.trace(cross))
    return float(np.sqrt(max(np.sum((m1 - m2) ** 2) + bures2, 0.0)))
