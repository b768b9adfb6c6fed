"""Question banks: question–answer pairs that models ask each other and learn from.

Sources:

- bundled banks (written for this project, mirroring the paper's two Yahoo! Answers topics):
  ``society_culture``, ``science_mathematics`` and ``neutral``;
- any CSV / JSON Lines / Parquet file with columns ``question`` and ``answer`` (optional
  ``question_id``);
- ``yahoo:TOPIC`` or ``yahoo:TOPIC:N``: the paper's data, Yahoo! Answers questions of one topic
  filtered as in the paper (N: a seeded random sample of that many), read from the file named
  by ``$PERSPECTIVES_YAHOO`` (the hub layout) or else from the hub;
- a list of any of these: their union, in order (with two or more files without ids, the
  numbered ids of the j-th of them are prefixed ``bj-``, so that they do not collide).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from ..bundled import bundled_data_names, read_bundled_data
from ..errors import InputError
from ..space.responses import id_column, read_table, require_columns, text_column

BANK_COLUMNS = ("question_id", "question", "answer")


def bundled_banks() -> list[str]:
    """Names of the question banks shipped with the package."""
    return bundled_data_names("banks")


YAHOO_PREFIX = "yahoo:"


def load_bank(source: str | os.PathLike | list) -> pd.DataFrame:
    """Load a bank (see the module docstring) as columns ``question_id, question, answer``.

    Raises InputError (naming the file and column) for an unknown name, an unreadable file
    (see ``read_table``), missing columns, no rows, empty or non-text questions or answers,
    ids that are neither text nor integers, and duplicate questions or ids.
    """
    if isinstance(source, list | tuple):
        if not source:
            raise InputError("an empty list of banks", field="question_bank")
        loaded = [_load_one(s) for s in source]
        if sum(numbered for _, numbered in loaded) > 1:
            # Each file without ids is numbered from q00001: told apart by its place among
            # them. (With one such file its ids stay as they were, as older runs have them.)
            j = 0
            for k, (f, numbered) in enumerate(loaded):
                if numbered:
                    j += 1
                    ids = [f"b{j}-{i}" for i in f["question_id"]]
                    loaded[k] = (f.assign(question_id=ids), True)
        frame = pd.concat([f for f, _ in loaded], ignore_index=True)
        return _checked(frame, f"banks {list(map(str, source))}")
    return _load_one(source)[0]


def _load_one(source: str | os.PathLike) -> tuple[pd.DataFrame, bool]:
    """One bank, and whether its ids were numbered here (its file has no ``question_id``)."""
    if not isinstance(source, str | os.PathLike) or not str(source).strip():
        raise InputError(
            "must name a bundled bank, a file or yahoo:TOPIC", field="bank", value=source
        )
    name = str(source)
    if name in bundled_banks():
        frame = read_bundled_data("banks", name)
        label = f"bundled bank {name!r}"
    elif name.startswith(YAHOO_PREFIX):
        frame, label = _yahoo_bank(name)
    else:
        path = Path(source)
        if not path.suffix and not path.exists():
            raise InputError(
                f"no such bundled bank ({', '.join(bundled_banks())}) or file",
                field="bank",
                value=name,
            )
        frame = read_table(path, text_columns=BANK_COLUMNS)
        label = str(source)
    require_columns(frame, ("question", "answer"), label)
    numbered = "question_id" not in frame.columns
    if numbered:
        frame = frame.assign(question_id=[f"q{i + 1:05d}" for i in range(len(frame))])
    frame = frame[["question_id", "question", "answer"]].reset_index(drop=True)
    return _checked(frame, label), numbered


def _yahoo_bank(spec: str) -> tuple[pd.DataFrame, str]:
    from .datasets import YAHOO_HUB_ID, load_yahoo_answers

    parts = spec[len(YAHOO_PREFIX) :].split(":")
    topic, limit = parts[0], None
    if len(parts) > 2 or not topic:
        raise InputError("expected yahoo:TOPIC or yahoo:TOPIC:N", field="bank", value=spec)
    if len(parts) == 2:
        if not parts[1].isdecimal() or int(parts[1]) < 1:
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
    frame = frame.reset_index(drop=True)
    if frame.empty:
        raise InputError("the bank has no questions", source=label)
    frame["question_id"] = id_column(frame, "question_id", label)
    for col in ("question", "answer"):
        frame[col] = text_column(frame, col, label)
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

    Raises InputError when ``size`` is not a whole number >= 1 or the bank holds fewer than
    ``size`` pairs.
    """
    if isinstance(size, bool) or not isinstance(size, int | np.integer) or size < 1:
        raise InputError("must be a whole number >= 1", field="sample_size", value=size)
    if size > len(bank):
        raise InputError(
            f"cannot draw {size} pairs from a bank of {len(bank)}", field="sample_size", value=size
        )
    idx = rng.choice(len(bank), size=size, replace=False)
    rows = bank.iloc[np.sort(idx)]
    return list(zip(rows["question"], rows["answer"], strict=True))
