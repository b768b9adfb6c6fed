"""Polarization over time, the paper's two definitions (on the 1-d perspective ``z1``).

- Adversarial (case study 2): |mean of the non-adversarial models - the adversary| at t,
  divided by the same at the first step.
- Two classes (case study 3): |mean of class A - mean of class B| at t, divided by the same at
  the first step.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from ..errors import InputError
from .trajectories import _require


def _normalised(distance: pd.Series) -> pd.DataFrame:
    first = float(distance.iloc[0])
    if first == 0 or not np.isfinite(first):
        warnings.warn(
            "the distance at the first step is 0: polarization is undefined (NaN)", stacklevel=3
        )
        pol = np.full(len(distance), np.nan)
    else:
        pol = distance.to_numpy() / first
    return pd.DataFrame(
        {"t": distance.index.to_numpy(), "distance": distance.to_numpy(), "polarization": pol}
    ).reset_index(drop=True)


def class_polarization(
    table: pd.DataFrame, classes: tuple[str, str] | None = None, axis: str = "z1"
) -> pd.DataFrame:
    """Columns ``t, distance, polarization`` for two classes (default: the table's two).

    Raises InputError when ``classes`` is not given and the table has other than two classes,
    or a class is absent.
    """
    _require(table, ("t", "class", axis))
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
    means = table[table["class"].isin(classes)].groupby(["t", "class"])[axis].mean().unstack()
    means = means.dropna()
    return _normalised((means[classes[0]] - means[classes[1]]).abs())


def adversarial_polarization(
    table: pd.DataFrame, adversary: str | list[str], axis: str = "z1"
) -> pd.DataFrame:
    """Columns ``t, distance, polarization``: the non-adversarial mean against the adversary.

    ``adversary``: a model name, a class label or a list of model names (their mean is the
    adversarial perspective). Raises InputError if it names no model of the table.
    """
    _require(table, ("t", "model", axis))
    names = [adversary] if isinstance(adversary, str) else list(adversary)
    is_adv = table["model"].isin(names)
    if "class" in table.columns:
        is_adv |= table["class"].isin(names)
    if not is_adv.any():
        raise InputError("names no model or class of the table", field="adversary", value=adversary)
    if is_adv.all():
        raise InputError("every model is adversarial", field="adversary", value=adversary)
    adv = table[is_adv].groupby("t")[axis].mean()
    rest = table[~is_adv].groupby("t")[axis].mean()
    both = pd.concat([rest, adv], axis=1, keys=["rest", "adv"]).dropna()
    return _normalised((both["rest"] - both["adv"]).abs())
