"""Prompt sets: the bundled ones (by name) and user files (txt, CSV, JSON Lines, Parquet)."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from ..bundled import bundled_data_names, read_bundled_data
from ..errors import InputError
from ..space.responses import read_table


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
    and ``prompt``. Raises InputError for a missing file or column, empty or duplicate prompts.
    """
    if isinstance(source, list):
        return prompts_from_list(source)
    name = str(source)
    if name in bundled_prompt_sets():
        frame = read_bundled_data("prompts", name)
        label = f"bundled prompt set {name!r}"
    else:
        p = Path(source)
        label = str(p)
        if p.suffix.lower() == ".txt":
            if not p.exists():
                raise InputError("file not found", source=label)
            lines = [ln.strip() for ln in p.read_text(encoding="utf-8").splitlines()]
            lines = [ln for ln in lines if ln]
            frame = pd.DataFrame({"prompt": lines})
        else:
            frame = read_table(p)
    return _checked(frame, label)


def _checked(frame: pd.DataFrame, label: str) -> pd.DataFrame:
    if "prompt" not in frame.columns:
        raise InputError(
            f"missing column 'prompt'; found {list(frame.columns)}", source=label, field="prompt"
        )
    if "prompt_id" not in frame.columns:
        frame = frame.assign(prompt_id=[f"p{i + 1:04d}" for i in range(len(frame))])
    frame = frame[["prompt_id", "prompt"]].copy()
    frame["prompt_id"] = frame["prompt_id"].astype(str)
    if frame.empty:
        raise InputError("no prompts", source=label)
    for col in ("prompt_id", "prompt"):
        bad = frame[col].map(lambda v: not isinstance(v, str) or not v.strip())
        if bad.any():
            row = int(bad.to_numpy().nonzero()[0][0])
            raise InputError(
                f"empty value in row {row}", source=label, field=col, value=frame[col].iloc[row]
            )
        dup = frame[col].duplicated()
        if dup.any():
            row = int(dup.to_numpy().nonzero()[0][0])
            raise InputError(
                f"duplicate value in row {row}", source=label, field=col, value=frame[col].iloc[row]
            )
    return frame.reset_index(drop=True)
