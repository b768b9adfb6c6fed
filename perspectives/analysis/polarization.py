"""Polarization over time, the paper's two definitions.

- Adversarial (case study 2): |mean of the non-adversarial models - the adversary| at t,
  divided by the same at the first step.
- Two classes (case study 3): |mean of class A - mean of class B| at t, divided by the same at
  the first step.

The paper measures both on the 1-d perspective ``z1`` (the default). ``axis="all"`` (or a list
of columns) measures the Euclidean distance between the means in the whole perspective space
instead, which a 1-d summary can hide: two groups may move apart along a direction that ``z1``
does not see.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..errors import InputError
from .rounding import negligible, scale_of
from .trajectories import _require, z_columns

Axis = str | Sequence[str]


def _axes(table: pd.DataFrame, axis: Axis) -> list[str]:
    if isinstance(axis, str):
        return z_columns(table) if axis == "all" else [axis]
    if not axis:
        raise InputError("give at least one column", field="axis", value=list(axis))
    return list(axis)


def _normalised(distance: pd.Series, scale: float) -> pd.DataFrame:
    """``distance`` and it divided by its first value; NaN when that is zero within rounding
    of coordinates of magnitude ``scale``."""
    first = float(distance.iloc[0])
    if not np.isfinite(first) or negligible(first, scale):
        warnings.warn(
            "the distance at the first step is 0: polarization is undefined (NaN)", stacklevel=3
        )
        pol = np.full(len(distance), np.nan)
    else:
        pol = distance.to_numpy() / first
    return pd.DataFrame(
        {"t": distance.index.to_numpy(), "distance": distance.to_numpy(), "polarization": pol}
    ).reset_index(drop=True)


def _gap(a: pd.DataFrame, b: pd.DataFrame) -> pd.Series:
    """Per step, the Euclidean distance between two ``t x axes`` frames of means."""
    a, b = a.align(b, join="inner", axis=0)
    keep = a.notna().all(axis=1) & b.notna().all(axis=1)
    diff = (a[keep] - b[keep]).to_numpy()
    return pd.Series(np.linalg.norm(diff, axis=1), index=a.index[keep])


def class_polarization(
    table: pd.DataFrame, classes: tuple[str, str] | None = None, axis: Axis = "z1"
) -> pd.DataFrame:
    """Columns ``t, distance, polarization`` for two classes (default: the table's two).

    ``axis``: one column (the paper: ``"z1"``), a list of columns, or ``"all"`` (every
    ``z`` column). Raises InputError when ``classes`` is not given and the table has other
    than two classes, or a class is absent.
    """
    cols = _axes(table, axis)
    _require(table, ("t", "class", *cols))
    present = sorted(table["class"].unique())
    if classes is None:
        if len(present) != 2:
            raise InputError(
                f"two-class polarization needs exactly two classes; found {present}",
                field="class",
            )
        classes = (present[0], present[1])
    for c in classes:
        if c not in present:
            raise InputError(f"no such class; found {present}", field="class", value=c)
    means = [table[table["class"] == c].groupby("t")[cols].mean() for c in classes]
    return _normalised(_gap(*means), scale_of(table[cols]))


def adversarial_polarization(
    table: pd.DataFrame, adversary: str | list[str], axis: Axis = "z1"
) -> pd.DataFrame:
    """Columns ``t, distance, polarization``: the non-adversarial mean against the adversary.

    ``adversary``: a model name, a class label or a list of model names (their mean is the
    adversarial perspective). ``axis`` as for ``class_polarization``. Raises InputError if it
    names no model of the table, or every model.
    """
    cols = _axes(table, axis)
    _require(table, ("t", "model", *cols))
    names = [adversary] if isinstance(adversary, str) else list(adversary)
    is_adv = table["model"].isin(names)
    if "class" in table.columns:
        is_adv |= table["class"].isin(names)
    if not is_adv.any():
        raise InputError("names no model or class of the table", field="adversary", value=adversary)
    if is_adv.all():
        raise InputError("every model is adversarial", field="adversary", value=adversary)
    adv = table[is_adv].groupby("t")[cols].mean()
    rest = table[~is_adv].groupby("t")[cols].mean()
    return _normalised(_gap(rest, adv), scale_of(table[cols]))
