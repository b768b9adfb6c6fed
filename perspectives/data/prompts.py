"""Prompt sets: the bundled ones (by name) and user files (txt, CSV, JSON Lines, Parquet)."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from ..bundled import bundled_data_names, read_bundled_data
from ..errors import InputError
from ..space.responses import id_column, read_table, read_text, text_column


def bundled_prompt_sets() -> list[str]:
    """Names of the prompt sets shipped with the package (e.g. ``figure2_relevant``)."""
    return bundled_data_names("prompts")


def prompts_from_list(prompts: list[str], source: str = "prompts") -> pd.DataFrame:
    """A prompt table from a list of texts (ids ``p0001``...); same checks as ``load_prompts``."""
    frame = pd.DataFrame({"prompt": list(prompts)})
    return _checked(frame, source)


def load_prompts(source: str | os.PathLike | list[str]) -> pd.DataFrame:
    """Load prompts as a table with columns ``prompt_id`` and ``prompt``.

    ``source`` is a bundled set's name or a file: ``.txt`` (one prompt per line, ids
    ``p0001``...), or ``.csv`` / ``.jsonl`` / ``.parquet`` with columns ``prompt_id`` (optional)
    and ``prompt``. The table's ``attrs["source"]`` is the file's resolved path.

    Raises InputError naming the file and column for an unknown name, a missing, unreadable
    or non-UTF-8 file (see ``read_table``), a missing ``prompt`` column, no prompts, empty or
    non-text prompts, ids that are neither text nor integers, and duplicate prompts or ids.
    """
    if isinstance(source, list):
        return prompts_from_list(source)
    if not isinstance(source, str | os.PathLike) or not str(source).strip():
        raise InputError("must name a prompt set or file", field="prompts", value=source)
    name = str(source)
    if name in bundled_prompt_sets():
        frame = read_bundled_data("prompts", name)
        label = f"bundled prompt set {name!r}"
    else:
        p = Path(source)
        label = str(p)
        if not p.suffix and not p.exists():
            raise InputError(
                f"no such bundled prompt set ({', '.join(bundled_prompt_sets())}) or file",
                field="prompts",
                value=name,
            )
        if p.suffix.lower() == ".txt":
            frame = _read_lines(p)
        else:
            frame = read_table(p, text_columns=("prompt_id", "prompt"))
    return _checked(frame, label)


def _read_lines(p: Path) -> pd.DataFrame:
    """A ``.txt`` prompt file: one prompt per non-blank line."""
    if not p.exists():
        raise InputError("file not found", source=str(p))
    if p.is_dir():
        raise InputError("is a folder, not a file", source=str(p))
    try:
        text = read_text(p)
    except OSError as exc:
        raise InputError(f"cannot read the file: {exc.strerror or exc}", source=str(p)) from None
    lines = [ln.strip() for ln in text.splitlines()]
    frame = pd.DataFrame({"prompt": [ln for ln in lines if ln]}, dtype=object)
    frame.attrs["source"] = str(p.resolve())
    return frame


def _checked(frame: pd.DataFrame, label: str) -> pd.DataFrame:
    if "prompt" not in frame.columns:
        raise InputError(
            f"missing column 'prompt'; found {list(frame.columns)}", source=label, field="prompt"
        )
    if "prompt_id" not in frame.columns:
        frame = frame.assign(prompt_id=[f"p{i + 1:04d}" for i in range(len(frame))])
    frame = frame[["prompt_id", "prompt"]].reset_index(drop=True)
    if frame.empty:
        raise InputError("no prompts", source=label)
    frame["prompt_id"] = id_column(frame, "prompt_id", label)
    frame["prompt"] = text_column(frame, "prompt", label)
    for col in ("prompt_id", "prompt"):
        dup = frame[col].duplicated()
        if dup.any():
            row = int(dup.to_numpy().nonzero()[0][0])
            raise InputError(
                f"duplicate value in row {row}", source=label, field=col, value=frame[col].iloc[row]
            )
    return frame.reset_index(drop=True)
