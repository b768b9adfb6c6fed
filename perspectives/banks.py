"""Question banks: question–answer pairs that models ask each other and learn from.

Bundled banks (written for this project, mirroring the paper's two Yahoo! Answers topics):
``society_culture``, ``science_mathematics`` and ``neutral``. Any CSV / JSON Lines / Parquet
file with columns ``question`` and ``answer`` (optional ``question_id``) works too.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from .bundled import bundled_data_names, read_bundled_data
from .errors import InputError
from .responses import read_table, require_columns


def bundled_banks() -> list[str]:
    """Names of the question banks shipped with the package."""
    return bundled_data_names("banks")


def load_bank(source: str | os.PathLike) -> pd.DataFrame:
    """Load a bank as columns ``question_id, question, answer``.

    Raises InputError (naming the file and column) for missing columns, empty or non-text
    questions or answers, and duplicate questions or ids.
    """
    name = str(source)
    if name in bundled_banks():
        frame = read_bundled_data("banks", name)
        label = f"bundled bank {name!r}"
    else:
        frame = read_table(Path(source))
        label = str(source)
    require_columns(frame, ("question", "answer"), label)
    if "question_id" not in frame.columns:
        frame = frame.assign(question_id=[f"q{i + 1:05d}" for i in range(len(frame))])
    frame = frame[["question_id", "question", "answer"]].reset_index(drop=True)
    if frame.empty:
        raise InputError("the bank has no questions", source=label)
    frame["question_id"] = frame["question_id"].astype(str)
    for col in ("question", "answer"):
        bad = frame[col].map(lambda v: not isinstance(v, str) or not v.strip())
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise InputError(
                f"empty or non-text value in row {row}",
                source=label,
                field=col,
                value=frame[col].iloc[row],
            )
    for col in ("question_id", "question"):
        dup = frame[col].duplicated()
        if dup.any():
            row = int(np.flatnonzero(dup.to_numpy())[0])
            raise InputError(
                f"duplicate value in row {row}", source=label, field=col, value=frame[col].iloc[row]
            )
    return frame


def sample_pairs(bank: pd.DataFrame, size: int, rng: np.random.Generator) -> list[tuple[str, str]]:
    """``size`` distinct (question, answer) pairs drawn without replacement from ``bank``.

    Raises InputError when the bank holds fewer than ``size`` pairs.
    """
    if size > len(bank):
        raise InputError(
            f"cannot draw {size} pairs from a bank of {len(bank)}", field="sample_size", value=size
        )
    idx = rng.choice(len(bank), size=size, replace=False)
    rows = bank.iloc[np.sort(idx)]
    return list(zip(rows["question"], rows["answer"], strict=True))
