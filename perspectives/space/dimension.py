"""Choosing an embedding dimension: the Zhu–Ghodsi profile-likelihood elbow.

Follows graspologic's ``select_dimension`` (the implementation the paper used), so the same
spectrum gives the same dimension: the elbows are sought among the leading
``ceil(log2(n))`` values of the spectrum of an ``n x n`` matrix.
"""

from __future__ import annotations

import math

import numpy as np


def n_candidates(n: int) -> int:
    """How many leading spectrum values of an ``n x n`` matrix the elbow search considers.

    Parameters
    ----------
    n : int
        Size of the matrix (number of points).

    Returns
    -------
    count : int
        ``ceil(log2(n))``, at least 2.
    """
    return max(2, math.ceil(math.log2(max(n, 2))))


def profile_likelihood(values: np.ndarray) -> np.ndarray:
    """Profile log-likelihood of every split of ``values`` (sorted descending) into two groups.

    Entry ``q - 1`` is the log-likelihood of the first ``q`` values and the rest being two
    Gaussians with their own means and a pooled variance (Zhu & Ghodsi, 2006), ``q = 1..N``.

    Parameters
    ----------
    values : array-like of shape (N,)
        Spectrum values, sorted descending.

    Returns
    -------
    loglik : ndarray of shape (N,)
        Log-likelihood of each split. A split with zero pooled variance has no likelihood
        (NaN), as in graspologic; the split of two single values is ``-inf``.
    """
    x = np.asarray(values, dtype=np.float64)
    n = x.size
    out = np.empty(n)
    # Deviations are computed directly (not from running sums): spectra span many orders of
    # magnitude and the short form loses the small tail to rounding.
    for q in range(1, n + 1):
        head, tail = x[:q], x[q:]
        if head.size == 1 and tail.size == 1:
            out[q - 1] = -np.inf
            continue
        ss = np.sum((head - head.mean()) ** 2)
        if tail.size:
            ss += np.sum((tail - tail.mean()) ** 2)
        var = ss / (n - 1 - (q < n))
        if var <= 0:
            out[q - 1] = np.nan
            continue
        out[q - 1] = -0.5 * n * np.log(2 * np.pi * var) - ss / (2 * var)
    return out


def select_dimension(values: np.ndarray, n_elbows: int = 2) -> list[int]:
    """Elbows of a spectrum by repeated profile likelihood (Zhu & Ghodsi, 2006).

    Parameters
    ----------
    values : array-like of shape (N,)
        Spectrum values (e.g. eigenvalues); their absolute values are sorted descending. Pass
        only the leading ones to search (see ``n_candidates``).
    n_elbows : int, default=2
        How many successive elbows to find.

    Returns
    -------
    elbows : list of int
        The elbow positions as counts of leading values (each >= 1), increasing; fewer than
        ``n_elbows`` when the spectrum runs out. The last one is the usual choice of dimension.

    Examples
    --------
    >>> select_dimension([10.0, 9.5, 9.0, 1.0, 0.9, 0.8, 0.7], n_elbows=1)
    [3]
    """
    d = np.sort(np.abs(np.asarray(values, dtype=np.float64)))[::-1]
    elbows: list[int] = []
    idx = 0
    for _ in range(n_elbows):
        arr = d[idx:]
        if arr.size <= 1:
            break
        # np.argmax returns the first NaN if any, which is graspologic's behaviour too.
        idx += int(np.argmax(profile_likelihood(arr))) + 1
        elbows.append(idx)
    if not elbows:
        elbows.append(1)
    return elbows
