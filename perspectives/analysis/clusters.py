"""Clusters of models at each step (Gaussian mixtures, k by BIC) and their stability (ARI).

As in model-based clustering (Fraley & Raftery, 2002), the number of clusters and the
covariance structure are chosen together: every k in 1..K and every covariance type, lowest
BIC wins. With a few models a component can collapse onto one or two points, whose likelihood
then grows without bound; such fits (a component with fewer points than its covariance needs:
at least 3, and d + 1 for ``full``) are not candidates.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import adjusted_rand_score
from sklearn.mixture import GaussianMixture
from threadpoolctl import threadpool_limits

from ..errors import InputError
from .trajectories import _require, z_columns

COVARIANCE_TYPES = ("spherical", "diag", "tied", "full")
MIN_POINTS = 3  # the fewest points a component may have


def count_clusters(
    points: np.ndarray,
    max_clusters: int | None = None,
    *,
    seed: int = 0,
    covariance_types: tuple[str, ...] = COVARIANCE_TYPES,
) -> tuple[int, np.ndarray, float]:
    """The number of clusters of ``points`` (n x d) by BIC, the labels (n,) and the best BIC.

    ``max_clusters`` defaults to min(9, n - 1), and is at most n // 3 (every component needs
    3 points); a single point is one cluster.
    Raises InputError for an empty or non-finite input.
    """
    x = np.asarray(points, dtype=float)
    if x.ndim == 1:
        x = x[:, None]
    if len(x) == 0 or not np.isfinite(x).all():
        raise InputError("clustering needs finite points", field="points")
    n = len(x)
    if n == 1:
        return 1, np.zeros(1, dtype=int), float("nan")
    # k components of at least MIN_POINTS each need k * MIN_POINTS points: larger k are never
    # candidates, so they are not fitted.
    top = max(1, min(max_clusters or 9, n - 1, n // MIN_POINTS))
    best: tuple[float, int, np.ndarray] | None = None
    # The fits are tiny: BLAS and OpenMP threads only add overhead (tens of times slower when
    # the cores are busy, e.g. beside a running sweep); one thread gives the same results.
    with warnings.catch_warnings(), threadpool_limits(1):
        warnings.simplefilter("ignore", ConvergenceWarning)
        for k in range(1, top + 1):
            for cov in covariance_types:
                gm = GaussianMixture(
                    k, covariance_type=cov, n_init=3, random_state=seed, reg_covar=1e-6
                ).fit(x)
                labels = gm.predict(x)
                if k > 1 and np.bincount(labels, minlength=k).min() < _min_size(cov, x.shape[1]):
                    continue
                bic = float(gm.bic(x))
                if best is None or bic < best[0] - 1e-9:
                    best = (bic, k, labels)
    assert best is not None
    bic, _, labels = best
    # Report the clusters actually used (a component may end up empty).
    labels = np.unique(labels, return_inverse=True)[1]
    return int(labels.max() + 1), labels, bic


def _min_size(covariance_type: str, d: int) -> int:
    return max(MIN_POINTS, d + 1) if covariance_type == "full" else MIN_POINTS


def clusters_over_time(
    table: pd.DataFrame,
    max_clusters: int | None = None,
    *,
    seed: int = 0,
    columns: list[str] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per step: ``t, n_clusters, bic, ari_prev`` (ARI with the previous step's labels over
    the models present at both; NaN at the first step), and the labels ``t, model, cluster``."""
    _require(table, ("t", "model"))
    cols = columns or z_columns(table)
    rows, labels = [], []
    prev: pd.Series | None = None
    for t, snap in table.sort_values(["t", "model"]).groupby("t", sort=True):
        k, lab, bic = count_clusters(snap[cols].to_numpy(float), max_clusters, seed=seed)
        cur = pd.Series(lab, index=snap["model"].to_numpy())
        ari = float("nan")
        if prev is not None:
            common = cur.index.intersection(prev.index)
            if len(common) >= 2:
                ari = float(adjusted_rand_score(prev[common], cur[common]))
        rows.append({"t": t, "n_clusters": k, "bic": bic, "ari_prev": ari})
        labels.append(pd.DataFrame({"t": t, "model": cur.index, "cluster": cur.to_numpy()}))
        prev = cur
    return pd.DataFrame(rows), pd.concat(labels, ignore_index=True)
