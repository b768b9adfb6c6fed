"""Responses tables: reading, validating, and turning them into surrogate data kernels.

A responses table has one row per answer: columns ``model``, ``prompt_id``, ``response``;
optionally ``replicate``, ``time``, ``prompt`` and any label columns (e.g. ``class``). A
*point* of the perspective space is a model, or a (model, time) pair when ``time`` is present.

Every value is checked for what it is, not turned into text: an answer that is a list, a
boolean or a number in a JSON Lines or Parquet file is refused (naming the file, the column
and the row), never silently written as ``"['...']"`` or ``"True"``.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import numpy as np
import pandas as pd

from ..errors import InputError

REQUIRED = ("model", "prompt_id", "response")
RESERVED = (*REQUIRED, "replicate", "time", "prompt")
# Columns read as text from a CSV even when every value looks like a number ("42" is an answer).
TEXT_COLUMNS = ("model", "prompt_id", "response", "prompt")
# The coordinate columns of the written tables: a label of that name would be overwritten.
COORDINATE = re.compile(r"z\d+")
_INT64_MAX = 2**63 - 1
TABLE_SUFFIXES = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet"}


# --------------------------------------------------------------------------- reading


def read_table(
    path: str | os.PathLike, *, text_columns: Sequence[str] = TEXT_COLUMNS
) -> pd.DataFrame:
    """Read a CSV, JSON Lines or Parquet file by its extension.

    CSV cells of ``text_columns`` stay text; JSON Lines values keep their JSON types (a number
    stays a number, so a validator can refuse it). The frame's ``attrs["source"]`` holds the
    file's resolved path (so writers can refuse to overwrite it).

    Raises InputError naming the file when it is missing, a folder, of an unknown type, empty,
    not UTF-8 (CSV, JSON Lines), not parseable, or has duplicate or blank column names.
    """
    p = Path(path)
    source = str(p)
    if not p.exists():
        raise InputError("file not found", source=source)
    if p.is_dir():
        raise InputError("is a folder, not a file", source=source)
    kind = TABLE_SUFFIXES.get(p.suffix.lower())
    if kind is None:
        raise InputError(
            "unknown file type; use .csv, .jsonl or .parquet", source=source, value=p.suffix
        )
    try:
        size = p.stat().st_size
        if size == 0:
            raise InputError("the file is empty", source=source)
        if kind == "parquet":
            frame = _read_parquet(p, source)
        else:
            text = read_text(p)
            if not text.strip():
                raise InputError("the file is empty (only whitespace)", source=source)
            frame = (
                _read_csv(text, source, text_columns)
                if kind == "csv"
                else _read_jsonl(text, source)
            )
    except OSError as exc:
        raise InputError(f"cannot read the file: {exc.strerror or exc}", source=source) from None
    check_column_names(frame, source)
    frame.attrs["source"] = str(p.resolve())
    return frame


def read_text(path: str | os.PathLike) -> str:
    """A file's text, decoded as UTF-8 (a byte-order mark is dropped).

    Raises InputError naming the file, the line and the offending bytes when it is not UTF-8.
    """
    raw = Path(path).read_bytes()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise InputError(
            f"not UTF-8 text: undecodable byte(s) at line {line}, byte offset {exc.start}; "
            "save the file as UTF-8",
            source=str(path),
            value=raw[exc.start : exc.start + 4],
        ) from None


def _read_parquet(p: Path, source: str) -> pd.DataFrame:
    try:
        frame = pd.read_parquet(p)
    except Exception as exc:  # noqa: BLE001 - any parser failure is the file's fault
        detail = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise InputError(f"cannot read the file as Parquet: {detail}", source=source) from None
    # A table saved with its index (df.set_index("model").to_parquet()) gets it back as columns.
    if any(name is not None for name in frame.index.names):
        frame = frame.reset_index()
    return frame


def _read_csv(text: str, source: str, text_columns: Sequence[str]) -> pd.DataFrame:
    # pandas renames a repeated header ("model" -> "model.1"); a repeated column is an error.
    try:
        header = next(csv.reader(io.StringIO(text)), [])
    except csv.Error as exc:  # a stray carriage return in the header, say
        raise InputError(f"not a readable CSV header ({exc})", source=source) from None
    seen: set[str] = set()
    for name in header:
        if name in seen:
            raise InputError("the header repeats a column", source=source, field=name)
        seen.add(name)
    # pandas, told the first column is no index, drops values beyond the header silently:
    # empty ones (a comma ending each line) may go, others are the file's error.
    reader = csv.reader(io.StringIO(text))
    try:
        for row in reader:
            if len(row) > len(header) and any(v.strip() for v in row[len(header) :]):
                raise InputError(
                    f"line {reader.line_num} has {len(row)} values where the header names "
                    f"{len(header)} (a comma inside a text? put the text in double quotes)",
                    source=source,
                )
    except csv.Error:
        pass  # pandas names the problem below
    try:
        frame = pd.read_csv(
            io.StringIO(text),
            keep_default_na=False,
            na_values=[""],
            dtype={c: str for c in text_columns},
            index_col=False,  # a comma ending each row is no index column
        )
    except Exception as exc:  # noqa: BLE001 - any parser failure is the file's fault
        detail = str(exc).strip().splitlines()[-1][:200] if str(exc) else type(exc).__name__
        raise InputError(f"cannot read the file as CSV: {detail}", source=source) from None
    # An empty column without a name in the header comes from a comma ending each line:
    # dropped. One with values keeps pandas' name ("Unnamed: 0"), for the reader to refuse
    # or ignore (a bank keeps only its own columns).
    unnamed = [
        frame.columns[i]
        for i, name in enumerate(header)
        if not name.strip() and i < frame.shape[1] and frame.iloc[:, i].isna().all()
    ]
    return frame.drop(columns=unnamed)


def _no_duplicate_keys(pairs: list[tuple[str, object]]) -> dict:
    keys = [k for k, _ in pairs]
    for i, k in enumerate(keys):
        if k in keys[:i]:
            raise _DuplicateKey(k)
    return dict(pairs)


class _DuplicateKey(ValueError):
    pass


def _read_jsonl(text: str, source: str) -> pd.DataFrame:
    records: list[dict] = []
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line, object_pairs_hook=_no_duplicate_keys)
        except _DuplicateKey as exc:
            raise InputError(
                f"line {n} repeats the key {exc.args[0]!r}", source=source, field=exc.args[0]
            ) from None
        except ValueError as exc:
            reason = getattr(exc, "msg", str(exc))
            raise InputError(f"line {n} is not valid JSON: {reason}", source=source) from None
        if not isinstance(obj, dict):
            raise InputError(
                f"line {n} is not a JSON object {{...}}", source=source, value=type(obj).__name__
            )
        records.append(obj)
    if not records:
        raise InputError("the file has no records", source=source)
    columns = list(dict.fromkeys(k for r in records for k in r))
    # Object columns keep each value's JSON type: 1 stays 1, [1] stays a list, null is None.
    return pd.DataFrame({c: pd.Series([r.get(c) for r in records], dtype=object) for c in columns})


def check_column_names(frame: pd.DataFrame, source: str) -> None:
    """Raise InputError naming ``source`` for a column name that is not text, blank or repeated."""
    seen: set[str] = set()
    for name in frame.columns:
        if not isinstance(name, str):
            raise InputError("column names must be text", source=source, value=name)
        if not name.strip():
            raise InputError("a column has a blank name", source=source, value=name)
        if name in seen:
            raise InputError("the table repeats a column", source=source, field=name)
        seen.add(name)


def require_columns(frame: pd.DataFrame, columns: Sequence[str], source: str) -> None:
    """Raise InputError naming ``source`` and the first of ``columns`` that ``frame`` lacks."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise InputError(
            f"missing required column(s) {missing}; found {list(frame.columns)}",
            source=source,
            field=missing[0],
        )


# --------------------------------------------------------------------------- value checks


def value_kind(value: object) -> str:
    """What a cell holds: ``missing``, ``text``, ``bool``, ``integer``, ``number`` or
    ``other`` (a list, a mapping, bytes, a date...)."""
    if value is None or value is pd.NA or value is pd.NaT:
        return "missing"
    if isinstance(value, str):
        return "text"
    if isinstance(value, bool | np.bool_):
        return "bool"
    if isinstance(value, int | np.integer):
        return "integer"
    if isinstance(value, float | np.floating):
        return "missing" if math.isnan(value) else "number"
    return "other"


def _kinds(column: pd.Series) -> np.ndarray:
    """``value_kind`` of every cell, fast for typed columns."""
    dtype = column.dtype
    n = len(column)
    if pd.api.types.is_bool_dtype(dtype) and not column.isna().any():
        return np.full(n, "bool", dtype=object)
    if pd.api.types.is_integer_dtype(dtype) and not column.isna().any():
        return np.full(n, "integer", dtype=object)
    if pd.api.types.is_float_dtype(dtype):
        return np.where(column.isna().to_numpy(), "missing", "number").astype(object)
    if isinstance(dtype, pd.StringDtype):
        return np.where(column.isna().to_numpy(), "missing", "text").astype(object)
    return np.fromiter((value_kind(v) for v in column.tolist()), dtype=object, count=n)


def _raise_row(row: int, message: str, source: str, column: str, value: object = None) -> NoReturn:
    if isinstance(value, np.generic):  # shown as 0.5, not np.float64(0.5)
        value = value.item()
    raise InputError(f"{message} in row {row}", source=source, field=column, value=value)


def text_column(
    frame: pd.DataFrame,
    column: str,
    source: str,
    *,
    allow_missing: bool = False,
    allow_blank: bool = False,
) -> pd.Series:
    """``frame[column]`` checked to hold text (missing cells as None when ``allow_missing``).

    Raises InputError naming ``source``, ``column``, the row and the value for a missing cell,
    a non-text value (a number, a boolean, a list...) or blank text (unless allowed).
    """
    values = frame[column]
    kinds = _kinds(values)
    for row, kind in enumerate(kinds):
        if kind == "missing" and not allow_missing:
            _raise_row(row, "missing value", source, column)
        if kind not in ("text", "missing"):
            _raise_row(row, f"non-text value ({kind})", source, column, values.iloc[row])
    out = values.astype(object).where(kinds == "text", None)
    if not allow_blank:
        blank = out.map(lambda v: isinstance(v, str) and not v.strip()).to_numpy()
        if blank.any():
            row = int(np.flatnonzero(blank)[0])
            _raise_row(row, "empty text", source, column, values.iloc[row])
    return out


def id_column(frame: pd.DataFrame, column: str, source: str) -> pd.Series:
    """``frame[column]`` as text ids: each cell non-blank text or an integer, not both kinds
    in one column (``1`` and ``"1"`` would merge).

    Raises InputError naming ``source``, ``column``, the row and the value.
    """
    values = frame[column]
    kinds = _kinds(values)
    first: str | None = None
    for row, kind in enumerate(kinds):
        if kind == "missing":
            _raise_row(row, "empty value", source, column)
        if kind not in ("text", "integer"):
            _raise_row(
                row,
                f"an id must be text or an integer, not {kind}",
                source,
                column,
                values.iloc[row],
            )
        if first is None:
            first = kind
        elif kind != first:
            _raise_row(row, f"mixes {first} and {kind} ids", source, column, values.iloc[row])
    out = pd.Series([str(v) for v in values.tolist()], index=values.index, dtype=object)
    blank = out.map(lambda v: not v.strip()).to_numpy()
    if blank.any():
        _raise_row(int(np.flatnonzero(blank)[0]), "empty value", source, column)
    return out


def _replicate_column(frame: pd.DataFrame, source: str) -> pd.Series:
    """The ``replicate`` column as int64: whole numbers >= 0 (digit strings from a CSV too)."""
    values = frame["replicate"]
    if pd.api.types.is_signed_integer_dtype(values.dtype) and not values.isna().any():
        out = values.astype(np.int64)
    else:
        parsed = []
        for row, v in enumerate(values.tolist()):
            kind = value_kind(v)
            text = v.strip() if kind == "text" else ""
            if kind == "integer":
                number = int(v)
            elif kind == "number" and math.isfinite(v) and float(v).is_integer():
                number = int(v)
            elif text.isascii() and text.isdigit():
                number = int(text)
            elif kind == "missing":
                _raise_row(row, "missing replicate", source, "replicate")
            else:
                _raise_row(row, "a replicate must be a whole number", source, "replicate", v)
            if abs(number) > _INT64_MAX:
                _raise_row(row, "a replicate this large is not a count", source, "replicate", v)
            parsed.append(number)
        out = pd.Series(parsed, index=values.index, dtype=np.int64)
    negative = (out < 0).to_numpy()
    if negative.any():
        row = int(np.flatnonzero(negative)[0])
        _raise_row(row, "a replicate must be >= 0", source, "replicate", int(out.iloc[row]))
    return out


def _category(kind: str) -> str:
    return "number" if kind in ("integer", "number") else kind


def _scalar_column(
    frame: pd.DataFrame, column: str, source: str, *, allow_missing: bool, what: str
) -> None:
    """Check that a label or time column holds scalars of one kind: all text, all numbers or
    all booleans (missing cells only when ``allow_missing``). Raises InputError naming the row."""
    values = frame[column]
    kinds = _kinds(values)
    first: str | None = None
    for row, kind in enumerate(kinds):
        if kind == "missing":
            if not allow_missing:
                _raise_row(row, f"missing {what}", source, column)
            continue
        if kind == "other":
            _raise_row(
                row,
                f"a {what} must be text, a number or a boolean",
                source,
                column,
                values.iloc[row],
            )
        if kind == "number" and not math.isfinite(values.iloc[row]):
            _raise_row(row, f"a {what} must be finite", source, column, values.iloc[row])
        if kind == "integer" and abs(int(values.iloc[row])) > _INT64_MAX:
            # The written Parquet table stores it as a 64-bit integer.
            _raise_row(row, f"a {what} must fit in 64 bits", source, column, values.iloc[row])
        cat = _category(kind)
        if first is None:
            first = cat
        elif cat != first:
            _raise_row(
                row,
                f"the column mixes {first} and {cat} values",
                source,
                column,
                values.iloc[row],
            )


def check_label_names(columns: Sequence[str], source: str) -> None:
    """Raise InputError for a label column whose name a written table uses (``z1``, ``z2``...,
    the coordinates)."""
    for name in columns:
        if name not in RESERVED and COORDINATE.fullmatch(name):
            raise InputError(
                "this name is reserved for the coordinates of the written tables (z1, z2, ...); "
                "rename the label column",
                source=source,
                field=name,
            )


def validate_responses(
    frame: pd.DataFrame,
    source: str = "responses",
    *,
    drop_incomplete: bool = False,
    allow_empty: bool = False,
    warn: Callable[[str], None] | None = None,
) -> pd.DataFrame:
    """Check a responses table and return a clean copy (``model`` and ``prompt_id`` as text,
    ``replicate`` as integers, 0 when absent).

    Raises InputError (naming ``source``, the column, the row and the value) on: column names
    that are not text, repeated or reserved (``z1``...); missing columns; ``model`` or
    ``prompt_id`` cells that are missing, blank or neither text nor integers; missing,
    non-text or empty responses; a ``replicate`` that is not a whole number >= 0; a missing
    ``time``; labels that are lists or mix text and numbers; duplicate (point, prompt,
    replicate) rows; a prompt_id with two prompt texts; labels that vary within a point;
    points missing some prompts (unless ``drop_incomplete``, which drops those points and
    reports them through ``warn``); or fewer than two points. ``allow_empty`` accepts empty
    answers (a generated answer may legitimately be empty).
    """
    if not isinstance(frame, pd.DataFrame):
        raise InputError(
            "expected a table (a pandas DataFrame)", source=source, value=type(frame).__name__
        )
    check_column_names(frame, source)
    unnamed = [c for c in frame.columns if re.fullmatch(r"Unnamed: \d+", c)]
    if unnamed:  # pandas' name for a header cell left blank: no label anyone chose
        raise InputError(
            "a column has values but no name in the header (a table's index, written by "
            "to_csv? write it with index=False)",
            source=source,
            field=unnamed[0],
        )
    require_columns(frame, REQUIRED, source)
    if frame.empty:
        raise InputError("the table has no rows", source=source)
    check_label_names(frame.columns, source)
    df = frame.reset_index(drop=True)
    df = df.copy()
    for col in ("model", "prompt_id"):
        df[col] = id_column(df, col, source)
    _check_responses(df, source, allow_empty)
    if "prompt" in df.columns:
        df["prompt"] = text_column(df, "prompt", source, allow_missing=True, allow_blank=True)
        _check_one_prompt_per_id(df, source)
    df["replicate"] = _replicate_column(df, source) if "replicate" in df.columns else 0
    if "time" in df.columns:
        _scalar_column(df, "time", source, allow_missing=False, what="time")
    for col in label_columns(df):
        _scalar_column(df, col, source, allow_missing=True, what="label")

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


def _check_responses(df: pd.DataFrame, source: str, allow_empty: bool) -> None:
    kinds = _kinds(df["response"])
    _raise_at_first(df, kinds == "missing", "missing response", source, show_value=False)
    _raise_at_first(df, kinds != "text", "non-text response", source)
    if not allow_empty:
        blank = df["response"].map(lambda v: not v.strip()).to_numpy()
        _raise_at_first(df, blank, "empty response", source)


def _check_one_prompt_per_id(df: pd.DataFrame, source: str) -> None:
    """A ``prompt_id`` names one prompt: kernels are aligned by id, so two texts under one
    id would compare answers to different questions as answers to the same one."""
    # Spaces around a text, or a blank or missing text, say nothing about which prompt it is.
    stripped = df["prompt"].map(lambda v: (v.strip() or None) if isinstance(v, str) else None)
    texts = stripped.groupby(df["prompt_id"], sort=False).unique()
    varying = texts[texts.map(lambda v: len([x for x in v if x is not None]) > 1)]
    if len(varying):
        pid = varying.index[0]
        first, second = [x for x in varying.iloc[0] if x is not None][:2]
        raise InputError(
            f"prompt_id {pid!r} names more than one prompt ({first!r} and {second!r}); "
            "answers are aligned by prompt_id",
            source=source,
            field="prompt",
        )


def _check_unique_and_constant_labels(df: pd.DataFrame, keys: list[str], source: str) -> None:
    """No duplicate (point, prompt, replicate) rows; labels constant within a point."""
    dup = df.duplicated([*keys, "prompt_id", "replicate"], keep=False)
    if dup.any():
        row = int(np.flatnonzero(dup.to_numpy())[0])
        # .item(): a numpy scalar's repr is np.int64(0), not what the file says
        cells = {k: df[k].iloc[row] for k in [*keys, "prompt_id", "replicate"]}
        cells = {k: v.item() if isinstance(v, np.generic) else v for k, v in cells.items()}
        what = ", ".join(f"{k}={v!r}" for k, v in cells.items())
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
    df: pd.DataFrame, bad: np.ndarray, what: str, source: str, show_value: bool = True
) -> None:
    """Raise InputError for the first row where ``bad`` holds, naming the model and prompt."""
    bad = np.asarray(bad, dtype=bool)
    if not bad.any():
        return
    row = int(np.flatnonzero(bad)[0])
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

    return tuple(int(t) if t.isdecimal() else t for t in re.split(r"(\d+)", s))
