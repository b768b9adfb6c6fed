"""Responses tables: reading, validating, and turning them into surrogate data kernels.

A responses table has one row per answer: columns ``model``, ``prompt_id``, ``response``;
optionally ``replicate``, ``time``, ``prompt`` and any label columns (e.g. ``class``). A
*point* of the perspective space is a model, or a (model, time) pair when ``time`` is present.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import InputError

REQUIRED = ("model", "prompt_id", "response")
RESERVED = (*REQUIRED, "replicate", "time", "prompt")
# Columns that are text even when every value looks like a number ("42" is an answer).
_TEXT_COLUMNS = {"model": str, "prompt_id": str, "response": str, "prompt": str}


def read_table(path: str | os.PathLike) -> pd.DataFrame:
    """Read a CSV, JSON Lines or Parquet file by its extension.

    Raises InputError naming the file when it is missing, of an unknown type or unreadable.
    """
    p = Path(path)
    if not p.exists():
        raise InputError("file not found", source=str(p))
    suffix = p.suffix.lower()
    try:
        if suffix == ".csv":
            return pd.read_csv(p, keep_default_na=False, na_values=[""], dtype=_TEXT_COLUMNS)
        if suffix in (".jsonl", ".ndjson"):
            return pd.read_json(p, lines=True, dtype=_TEXT_COLUMNS)
        if suffix == ".parquet":
            return pd.read_parquet(p)
    except Exception as exc:  # noqa: BLE001 - any parser failure is the file's fault
        raise InputError(f"cannot read the file: {exc}", source=str(p)) from None
    raise InputError(
        "unknown file type; use .csv, .jsonl or .parquet", source=str(p), value=p.suffix
    )


def require_columns(frame: pd.DataFrame, columns: Sequence[str], source: str) -> None:
    """Raise InputError naming ``source`` and the first of ``columns`` that ``frame`` lacks."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise InputError(
            f"missing required column(s) {missing}; found {list(frame.columns)}",
            source=source,
            field=missing[0],
        )


def validate_responses(
    frame: pd.DataFrame,
    source: str = "responses",
    *,
    drop_incomplete: bool = False,
    allow_empty: bool = False,
    warn: Callable[[str], None] | None = None,
) -> pd.DataFrame:
    """Check a responses table and return a clean copy (``prompt_id`` as text, ``replicate``
    filled with 0).

    Raises InputError (naming ``source``, the column and the value) on: missing columns, empty
    or non-text responses, duplicate (point, prompt, replicate) rows, labels that vary within a
    point, points missing some prompts (unless ``drop_incomplete``, which drops those points and
    reports them through ``warn``), or fewer than two points. ``allow_empty`` accepts empty
    answers (a generated answer may legitimately be empty).
    """
    require_columns(frame, REQUIRED, source)
    if frame.empty:
        raise InputError("the table has no rows", source=source)
    df = frame.copy()
    if "replicate" not in df.columns:
        df["replicate"] = 0
    for col in ("model", "prompt_id"):
        if df[col].isna().any():
            row = int(np.flatnonzero(df[col].isna().to_numpy())[0])
            raise InputError(f"empty value in row {row}", source=source, field=col)
        df[col] = df[col].astype(str)
    texts = df["response"]
    _raise_at_first(df, texts.isna(), "missing response", source, show_value=False)
    _raise_at_first(df, ~texts.map(lambda v: isinstance(v, str)), "non-text response", source)
    if not allow_empty:
        _raise_at_first(df, texts.str.strip() == "", "empty response", source)

    keys = point_columns(df)
    _check_unique_and_constant_labels(df, keys, source)
    df = _complete_points(df, keys, source, drop_incomplete, warn)
    n_points = df.groupby(keys, sort=False).ngroups
    if n_points < 2:
        raise InputError(
            f"a perspective space needs at least 2 points (models), found {n_points}",
            source=source,
            field="model",
        )
    return df


def _check_unique_and_constant_labels(df: pd.DataFrame, keys: list[str], source: str) -> None:
    """No duplicate (point, prompt, replicate) rows; labels constant within a point."""
    dup = df.duplicated([*keys, "prompt_id", "replicate"], keep=False)
    if dup.any():
        row = int(np.flatnonzero(dup.to_numpy())[0])
        what = ", ".join(f"{k}={df[k].iloc[row]!r}" for k in [*keys, "prompt_id", "replicate"])
        raise InputError(f"duplicate rows for ({what})", source=source, field="prompt_id")
    for col in label_columns(df):
        varying = df.groupby(keys, sort=False)[col].nunique(dropna=False)
        if (varying > 1).any():
            point = varying.index[np.flatnonzero(varying.to_numpy() > 1)[0]]
            raise InputError(
                f"label varies within point {point!r}; labels must be constant per point",
                source=source,
                field=col,
            )


def _complete_points(
    df: pd.DataFrame,
    keys: list[str],
    source: str,
    drop_incomplete: bool,
    warn: Callable[[str], None] | None,
) -> pd.DataFrame:
    """``df`` if every point answers every prompt; else its complete points (with
    ``drop_incomplete``, reported through ``warn``) or InputError naming the first."""
    all_prompts = set(df["prompt_id"])
    have = df.groupby(keys, sort=False)["prompt_id"].agg(lambda s: set(s))
    incomplete = have[have.map(len) < len(all_prompts)]
    if not len(incomplete):
        return df
    if not drop_incomplete:
        point = incomplete.index[0]
        lacking = sorted(all_prompts - incomplete.iloc[0])
        raise InputError(
            f"point {point!r} lacks {len(lacking)} prompt(s), e.g. {lacking[:3]}; every point "
            "must answer every prompt (or pass --drop-incomplete)",
            source=source,
            field="prompt_id",
        )
    drop = set(incomplete.index)
    mask = df.set_index(keys).index.isin(list(drop))
    if warn is not None:
        warn(f"{source}: dropped {len(drop)} incomplete point(s): {sorted(map(str, drop))[:5]}")
    return df[~mask].reset_index(drop=True)


def _raise_at_first(
    df: pd.DataFrame, bad: pd.Series, what: str, source: str, show_value: bool = True
) -> None:
    """Raise InputError for the first row where ``bad`` holds, naming the model and prompt."""
    if not bad.any():
        return
    row = int(np.flatnonzero(bad.to_numpy())[0])
    raise InputError(
        f"{what} in row {row} (model {df['model'].iloc[row]!r}, "
        f"prompt {df['prompt_id'].iloc[row]!r})",
        source=source,
        field="response",
        value=df["response"].iloc[row] if show_value else None,
    )


def point_columns(df: pd.DataFrame) -> list[str]:
    """Columns that identify a point: ``model`` and, if present, ``time``."""
    return ["model", "time"] if "time" in df.columns else ["model"]


def label_columns(df: pd.DataFrame) -> list[str]:
    """Extra label columns carried with each point (everything not reserved)."""
    return [c for c in df.columns if c not in RESERVED]


@dataclass
class DataKernels:
    """Surrogate data kernels of every point.

    ``kernels``: ``(n_points, m_prompts, p)`` float32, response embeddings averaged over
    replicates; ``points``: one row per point (point columns and labels); ``prompt_ids``:
    the prompt order of axis 1.
    """

    kernels: np.ndarray
    points: pd.DataFrame
    prompt_ids: list[str]


def data_kernels(
    df: pd.DataFrame,
    embed: Callable[[Sequence[str]], np.ndarray],
) -> DataKernels:
    """Embed every response of a validated table and average replicates per (point, prompt).

    ``embed`` maps a list of texts to a ``(len, p)`` array. Unique texts are embedded once.
    Raises InputError if an embedding is NaN or infinite.
    """
    keys = point_columns(df)
    points = df.drop_duplicates(keys)[keys + label_columns(df)].reset_index(drop=True)
    point_index = pd.MultiIndex.from_frame(points[keys])
    prompt_ids = sorted(df["prompt_id"].unique(), key=_natural_key)
    pi = point_index.get_indexer(pd.MultiIndex.from_frame(df[keys]))
    qi = pd.Index(prompt_ids).get_indexer(df["prompt_id"])

    texts = df["response"].tolist()
    unique, inverse = np.unique(np.asarray(texts, dtype=object), return_inverse=True)
    vectors = np.asarray(embed(list(unique)), dtype=np.float32)
    if not np.isfinite(vectors).all():
        bad = int(np.flatnonzero(~np.isfinite(vectors).all(axis=1))[0])
        raise InputError(
            "the embedder returned NaN or infinite values", field="response", value=unique[bad]
        )
    kernels, _ = mean_kernels(pi, qi, vectors[inverse], len(points), len(prompt_ids))
    return DataKernels(kernels=kernels, points=points, prompt_ids=prompt_ids)


def mean_kernels(
    point_idx: np.ndarray,
    prompt_idx: np.ndarray,
    vectors: np.ndarray,
    n_points: int,
    n_prompts: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Average answer embeddings per (point, prompt): ``vectors[k]`` belongs to point
    ``point_idx[k]`` and prompt ``prompt_idx[k]``. Returns the ``(n_points, n_prompts, p)``
    float32 kernels and the ``(n_points, n_prompts)`` answer counts (cells without answers are
    NaN in the kernels)."""
    sums = np.zeros((n_points, n_prompts, vectors.shape[1]), dtype=np.float64)
    counts = np.zeros((n_points, n_prompts), dtype=np.int64)
    np.add.at(sums, (point_idx, prompt_idx), vectors)
    np.add.at(counts, (point_idx, prompt_idx), 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        kernels = (sums / counts[..., None]).astype(np.float32)
    return kernels, counts


def _natural_key(s: str) -> tuple:
    import re

    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", s))
