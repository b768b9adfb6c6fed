"""Change points in a run's trajectories: where did the system's mean position shift?

``change_points`` finds shifts in the mean of a series (1-d, such as the iso-mirror, or
multivariate, such as every model's perspective stacked per step) with ``ruptures``' PELT
under a least-squares cost, and gives each a p-value from a permutation test.

The penalty, stated: each dimension is scaled by its noise σ̂ (the median absolute first
difference / (0.6745·√2), robust to the shifts themselves), and a change point costs
(d + 1)·log T, the BIC of a Gaussian mean shift in d dimensions over T steps (d means and
the location). The permutation test of a change point at τ in its segment [a, b) (between its
neighbours): the largest drop of the squared error from splitting the segment at any
position, observed against the same for shuffled segments; it assumes the values of a segment
are exchangeable without a change (a random walk's are not: expect small p-values there).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import InputError


def _as_matrix(values) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(values, pd.Series | pd.DataFrame):
        steps = values.index.to_numpy()
        x = values.to_numpy(float)
    else:
        x = np.asarray(values, dtype=float)
        steps = np.arange(len(x))
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2 or len(x) == 0:
        raise InputError("needs a series of values per step (T,) or (T, d)", field="values")
    if not np.all(np.isfinite(x)):
        raise InputError("the series has a missing or infinite value", field="values")
    return steps, x


def noise_scale(x: np.ndarray) -> np.ndarray:
    """Robust noise σ per column of ``x`` (T, d) from first differences (MAD); columns with
    no variation get 1."""
    diff = np.diff(x, axis=0)
    if len(diff) == 0:
        return np.ones(x.shape[1])
    mad = np.median(np.abs(diff - np.median(diff, axis=0)), axis=0)
    sd = mad / (0.6745 * np.sqrt(2))
    fallback = diff.std(axis=0) / np.sqrt(2)
    sd = np.where(sd > 0, sd, fallback)
    return np.where(sd > 0, sd, 1.0)


def _best_split_gain(seg: np.ndarray, min_size: int) -> float:
    """Largest drop of the squared error of ``seg`` (n, d) from one split into two parts."""
    n = len(seg)
    if n < 2 * min_size:
        return 0.0
    csum = np.cumsum(seg, axis=0)
    total = csum[-1]
    k = np.arange(min_size, n - min_size + 1)
    left = csum[k - 1]
    # SSE(whole) − SSE(left) − SSE(right) = k(n−k)/n · |mean_left − mean_right|²
    diff = left / k[:, None] - (total - left) / (n - k)[:, None]
    return float(np.max(k * (n - k) / n * np.sum(diff**2, axis=1)))


def change_points(
    values,
    *,
    penalty: float | None = None,
    min_size: int = 2,
    n_permutations: int = 999,
    seed: int = 0,
) -> pd.DataFrame:
    """Mean shifts in ``values`` ((T,) or (T, d) per step; a pandas object's index gives the
    steps) by PELT (``ruptures``), with a permutation p-value each.

    ``penalty``: the cost of a change point in units of σ̂² (default: the BIC rule of the
    module docstring). ``min_size``: the fewest steps of a segment. Returns one row per
    change point: ``t`` (the first step after the change), ``index`` (its position),
    ``shift`` (the distance between the segment means, in the values' units), ``gain``
    and ``p_value``. Raises InputError for a series that is empty, not finite, or whose
    ``min_size`` is below 1.
    """
    import ruptures as rpt

    steps, x = _as_matrix(values)
    if min_size < 1:
        raise InputError("must be at least 1", field="min_size", value=min_size)
    columns = ["t", "index", "shift", "gain", "p_value"]
    T, d = x.shape
    if T < 2 * min_size:
        return pd.DataFrame(columns=columns)
    scaled = (x - x.mean(axis=0)) / noise_scale(x)
    pen = (d + 1) * np.log(T) if penalty is None else float(penalty)
    algo = rpt.Pelt(model="l2", min_size=min_size, jump=1).fit(scaled)
    ends = algo.predict(pen=pen)  # segment ends; the last is T
    bounds = [0, *ends]
    rng = np.random.default_rng(seed)
    rows = []
    for j, tau in enumerate(ends[:-1]):
        a, b = bounds[j], bounds[j + 2]
        seg = scaled[a:b]
        gain = _best_split_gain(seg, min_size)
        null = np.array(
            [
                _best_split_gain(seg[rng.permutation(len(seg))], min_size)
                for _ in range(n_permutations)
            ]
        )
        p = (1 + int(np.sum(null >= gain - 1e-12))) / (1 + n_permutations)
        shift = float(np.linalg.norm(x[tau:b].mean(axis=0) - x[a:tau].mean(axis=0)))
        rows.append({"t": steps[tau], "index": tau, "shift": shift, "gain": gain, "p_value": p})
    return pd.DataFrame(rows, columns=columns)
