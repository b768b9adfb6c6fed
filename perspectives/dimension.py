"""Choosing an embedding dimension: the Zhu–Ghodsi profile-likelihood elbow."""

from __future__ import annotations

import numpy as np


def profile_likelihood(values: np.ndarray) -> np.ndarray:
    """Profile log-likelihood of every split of ``values`` (sorted descending) into two groups.

    Entry ``q - 1`` is the log-likelihood of the first ``q`` values and the rest being two
    Gaussians with their own means and a pooled variance (Zhu & Ghodsi, 2006), ``q = 1..N``.
    """
    x = np.asarray(values, dtype=np.float64)
    n = x.size
    q = np.arange(1, n + 1)
    csum = np.cumsum(x)
    csq = np.cumsum(x * x)
    tot, tot_sq = csum[-1], csq[-1]
    # Sums of squared deviations from each group's own mean, from running sums.
    ss1 = csq - csum**2 / q
    n2 = n - q
    with np.errstate(invalid="ignore", divide="ignore"):
        ss2 = np.where(n2 > 0, (tot_sq - csq) - (tot - csum) ** 2 / np.maximum(n2, 1), 0.0)
    ss = np.maximum(ss1 + ss2, 0.0)
    var = ss / max(n - 2, 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        loglik = -0.5 * n * np.log(2 * np.pi * var) - ss / (2 * var)
    # A zero pooled variance (a degenerate split) gives no usable likelihood.
    loglik[~np.isfinite(loglik)] = -np.inf
    return loglik


def select_dimension(values: np.ndarray, n_elbows: int = 2) -> list[int]:
    """Elbows of a spectrum by repeated profile likelihood (graspologic's convention).

    Parameters
    ----------
    values : 1-d array of non-negative spectrum values (e.g. eigenvalues), any order.
    n_elbows : how many successive elbows to find.

    Returns
    -------
    The elbow positions as counts of leading values (each >= 1), increasing. The last one is
    the usual choice of dimension.
    """
    d = np.sort(np.abs(np.asarray(values, dtype=np.float64)))[::-1]
    elbows: list[int] = []
    idx = 0
    for _ in range(n_elbows):
        arr = d[idx:]
        if arr.size <= 1:
            break
        idx += int(np.argmax(profile_likelihood(arr))) + 1
        elbows.append(idx)
    if not elbows:
        elbows.append(1)
    return elbows
