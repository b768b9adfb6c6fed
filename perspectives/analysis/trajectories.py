"""Per-model and per-class trajectories of perspectives through time."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import InputError


def z_columns(table: pd.DataFrame) -> list[str]:
    """The perspective coordinate columns ``z1..zd``, in order; InputError if there are none."""
    cols = sorted(
        (c for c in table.columns if c.startswith("z") and c[1:].isdecimal()),
        key=lambda c: int(c[1:]),
    )
    if not cols:
        raise InputError(f"no perspective columns z1..zd; found {list(table.columns)}")
    return cols


def _require(table: pd.DataFrame, columns: tuple[str, ...]) -> None:
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise InputError(f"missing column(s) {missing}; found {list(table.columns)}")


def model_trajectories(table: pd.DataFrame, axis: str = "z1") -> pd.DataFrame:
    """A ``t x model`` frame of one coordinate (NaN where a model is absent)."""
    _require(table, ("t", "model", axis))
    return table.pivot(index="t", columns="model", values=axis).sort_index()


def class_trajectories(table: pd.DataFrame, axis: str = "z1") -> pd.DataFrame:
    """Per step and class: ``mean``, ``std`` (0 for one model) and ``n`` of one coordinate."""
    _require(table, ("t", "model", "class", axis))
    g = table.groupby(["t", "class"])[axis]
    out = pd.DataFrame({"mean": g.mean(), "std": g.std(ddof=0), "n": g.size()}).reset_index()
    return out.sort_values(["class", "t"]).reset_index(drop=True)


def class_movement(table: pd.DataFrame) -> pd.DataFrame:
    """How far each class's mean perspective travelled against how spread the class is.

    For each class: ``displacement``, the distance (over all coordinates ``z1..zd``) between
    the class mean at its first and last step; ``spread``, the root-mean-square distance of
    the class's models to their class mean, averaged over its steps; ``ratio`` =
    displacement / spread (NaN when the spread is 0); ``first``, ``last`` (steps) and ``n``
    (models at the last step). A ratio above 1 means the class moved as a whole by more than
    its members differ, not just wandered within itself.
    """
    _require(table, ("t", "model", "class"))
    cols = z_columns(table)
    rows = []
    for name, g in table.groupby("class", sort=True):
        means = g.groupby("t")[cols].mean().sort_index()
        centred = g[cols].to_numpy() - means.loc[g["t"]].to_numpy()
        per_t = pd.Series((centred**2).sum(axis=1), index=g["t"].to_numpy()).groupby(level=0)
        spread = float(np.sqrt(per_t.mean()).mean())
        first, last = int(means.index[0]), int(means.index[-1])
        disp = float(np.linalg.norm(means.loc[last].to_numpy() - means.loc[first].to_numpy()))
        rows.append(
            {
                "class": name,
                "first": first,
                "last": last,
                "n": int((g["t"] == last).sum()),
                "displacement": disp,
                "spread": spread,
                "ratio": disp / spread if spread > 0 else float("nan"),
            }
        )
    return pd.DataFrame(
        rows, columns=["class", "first", "last", "n", "displacement", "spread", "ratio"]
    )
