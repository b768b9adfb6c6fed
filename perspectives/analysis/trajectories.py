"""Per-model and per-class trajectories of perspectives through time."""

from __future__ import annotations

import pandas as pd

from ..errors import InputError


def z_columns(table: pd.DataFrame) -> list[str]:
    """The perspective coordinate columns ``z1..zd``, in order; InputError if there are none."""
    cols = sorted(
        (c for c in table.columns if c.startswith("z") and c[1:].isdigit()),
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
