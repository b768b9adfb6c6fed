"""How spread out a population of models is at each step, and how local its structure is.

- ``spread``: the mean Euclidean distance of the models to the population's mean.
- ``nn_distance``: the mean distance of each model to its nearest other model.

Both are given as they are and relative to the first step. A population that converges as a
whole shrinks both together; one that splits into local sinks (case study 1's disruption)
brings each model close to its neighbours while the sinks stay apart, so ``nn_distance``
falls faster than ``spread`` and their ratio ``locality`` drops.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.spatial.distance import pdist, squareform

from ..errors import InputError
from .polarization import Axis, _axes
from .rounding import negligible, scale_of
from .trajectories import _require


def dispersion(table: pd.DataFrame, axis: Axis = "all") -> pd.DataFrame:
    """Columns ``t, spread, nn_distance, locality, spread_rel, nn_distance_rel`` (the ``_rel``
    columns divided by their value at the first step; ``locality = nn_distance / spread``;
    NaN where the divisor is zero within rounding of the coordinates).

    ``axis``: ``"all"`` (every ``z`` column, the default), one column, or a list of columns
    (e.g. the flattened data kernels). Raises InputError when a step has fewer than two
    models.
    """
    cols = _axes(table, axis)
    _require(table, ("t", "model", *cols))
    rows = []
    for t, snap in table.sort_values(["t", "model"]).groupby("t", sort=True):
        x = snap[cols].to_numpy(float)
        if len(x) < 2:
            raise InputError("dispersion needs at least two models per step", field="t", value=t)
        dist = squareform(pdist(x))
        np.fill_diagonal(dist, np.inf)
        spread = float(np.linalg.norm(x - x.mean(axis=0), axis=1).mean())
        nearest = float(dist.min(axis=1).mean())
        rows.append({"t": t, "spread": spread, "nn_distance": nearest})
    out = pd.DataFrame(rows)
    # A spread within rounding of the coordinates is no spread: identical models.
    scale = scale_of(table[cols])
    zero = out[["spread", "nn_distance"]].map(lambda v: negligible(v, scale))
    with np.errstate(divide="ignore", invalid="ignore"):
        out["locality"] = (out["nn_distance"] / out["spread"]).mask(zero["spread"])
        for col in ("spread", "nn_distance"):
            first = out[col].iloc[0]
            out[f"{col}_rel"] = np.nan if zero[col].iloc[0] else out[col] / first
    return out
