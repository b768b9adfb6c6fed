"""Question banks: question–answer pairs that models ask each other and learn from.

Sources:

- bundled banks (written for this project, mirroring the paper's two Yahoo! Answers topics):
  ``society_culture``, ``science_mathematics`` and ``neutral``;
- any CSV / JSON Lines / Parquet file with columns ``question`` and ``answer`` (optional
  ``question_id``);
- ``yahoo:TOPIC`` or ``yahoo:TOPIC:N``: the paper's data, Yahoo! Answers questions of one topic
  filtered as in the paper (N: a seeded random sample of that many), read from the file named
  by ``$PERSPECTIVES_YAHOO`` (the hub layout) or else from the hub;
- a list of any of these: their union, in order.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from ..bundled import bundled_data_names, read_bundled_data
from ..errors import InputError
from ..space.responses import read_table, require_columns


def bundled_banks() -> list[str]:
    """Names of the question banks shipped with the package."""
    return bundled_data_names("banks")


YAHOO_PREFIX = "yahoo:"


def load_bank(source: str | os.PathLike | list) -> pd.DataFrame:
    """Load a bank (see the module docstring) as columns ``question_id, question, answer``.

    Raises InputError (naming the file and column) for missing columns, empty or non-text
    questions or answers, and duplicate questions or ids.
    """
    if isinstance(source, list | tuple):
        if not source:
            raise InputError("an empty list of banks", field="question_bank")
        frame = pd.concat([load_bank(s) for s in source], ignore_index=True)
        return _checked(frame, f"banks {list(map(str, source))}")
    name = str(source)
    if name in bundled_banks():
        frame = read_bundled_data("banks", name)
        label = f"bundled bank {name!r}"
    elif name.startswith(YAHOO_PREFIX):
        frame, label = _yahoo_bank(name)
    else:
        frame = read_table(Path(source))
        label = str(source)
    require_columns(frame, ("question", "answer"), label)
    if "question_id" not in frame.columns:
        frame = frame.assign(question_id=[f"q{i + 1:05d}" for i in range(len(frame))])
    return _checked(frame[["question_id", "question", "answer"]].reset_index(drop=True), label)


def _yahoo_bank(spec: str) -> tuple[pd.DataFrame, str]:
    from .datasets import YAHOO_HUB_ID, load_yahoo_answers

    parts = spec[len(YAHOO_PREFIX) :].split(":")
    topic, limit = parts[0], None
    if len(parts) > 2 or not topic:
        raise InputError("expected yahoo:TOPIC or yahoo:TOPIC:N", field="bank", value=spec)
    if len(parts) == 2:
        if not parts[1].isdigit() or int(parts[1]) < 1:
            raise InputError("N must be a positive integer", field="bank", value=spec)
        limit = int(parts[1])
    source = os.environ.get("PERSPECTIVES_YAHOO") or YAHOO_HUB_ID
    try:
        frame = load_yahoo_answers(source, topics=[topic], limit=limit, seed=0)
    except InputError as exc:
        if source != YAHOO_HUB_ID:
            raise
        raise InputError(
            f"{exc.message}; or set PERSPECTIVES_YAHOO to a local file of the dataset",
            source=exc.source,
            field=exc.field,
            value=exc.value,
        ) from None
    return frame, f"{spec} (from {source})"


def _checked(frame: pd.DataFrame, label: str) -> pd.DataFrame:
    frame = frame.copy()
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
