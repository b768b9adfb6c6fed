"""The paper's prompt data: Yahoo! Answers questions and Dolly instructions, filtered as in
"Tracking the Perspectives of Interacting Language Models" (Appendix A and B).

Each loader takes a local ``.csv`` / ``.jsonl`` / ``.parquet`` file in the Hugging Face layout
of the dataset, or a hub id loaded with the optional ``datasets`` package. Every problem (a
missing column, an unknown topic, no network for a hub id) is an InputError, never a stack trace.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ..bundled import hub_offline
from ..errors import InputError
from ..models.formats import END_MARK, INSTRUCTION_MARK, RESPONSE_MARK
from ..space.responses import id_column, read_table, require_columns, text_column

YAHOO_HUB_ID = "community-datasets/yahoo_answers_topics"
DOLLY_HUB_ID = "databricks/databricks-dolly-15k"

# Index = the integer label of the hub dataset's ``topic`` column.
YAHOO_TOPICS: tuple[str, ...] = (
    "Society & Culture",
    "Science & Mathematics",
    "Health",
    "Education & Reference",
    "Computers & Internet",
    "Sports",
    "Business & Finance",
    "Entertainment & Music",
    "Family & Relationships",
    "Politics & Government",
)
# Columns the loader uses; the hub layout's ``question_content`` is not needed (titles only).
YAHOO_COLUMNS = ("id", "topic", "question_title", "best_answer")
YAHOO_MAX_ANSWER_CHARS = 200  # Appendix B: best answers strictly shorter than this

DOLLY_COLUMNS = ("instruction", "context", "response", "category")
DOLLY_CATEGORIES = ("open_qa", "brainstorming", "general_qa", "creative_writing")
DOLLY_MAX_RESPONSE_CHARS = 100  # Appendix A: responses strictly shorter than this


_TABLE_SUFFIXES = (".csv", ".jsonl", ".ndjson", ".parquet")
# End punctuation (a run of it, e.g. "?!" or "..."), optional closing quotes/brackets, then
# whitespace and more text: a second sentence starts there.
_SENTENCE_BOUNDARY = re.compile(r"[.!?]+[\"'\u201d\u2019)\]]*\s+\S")


# --------------------------------------------------------------------------- filter rules


def is_single_sentence(text: str) -> bool:
    """Whether ``text`` is one non-empty sentence.

    Rule: after stripping whitespace the text is non-empty and has no sentence boundary, i.e.
    no run of ``.``, ``!`` or ``?`` (optionally followed by closing quotes or brackets) that is
    followed by whitespace and more text. Final punctuation is fine ("Yes. " is one sentence);
    an ellipsis or abbreviation mid-text ("e.g. this") counts as a boundary. The literal two
    characters backslash-n, which Yahoo! Answers dumps use for line breaks, count as whitespace.
    """
    stripped = text.replace("\\n", "\n").strip()
    return bool(stripped) and _SENTENCE_BOUNDARY.search(stripped) is None


def is_single_question(title: str) -> bool:
    """Whether a question title asks exactly one question: it contains exactly one ``?``."""
    return title.count("?") == 1


def is_short_answer(text: str, max_chars: int = YAHOO_MAX_ANSWER_CHARS) -> bool:
    """Whether the stripped ``text`` is non-empty and shorter than ``max_chars`` characters."""
    return 0 < len(text.strip()) < max_chars


def yahoo_keep(title: str, answer: str) -> bool:
    """The paper's Yahoo! Answers filter (Appendix B): a short, single-sentence best answer to a
    title with a single question. Empty answers are dropped."""
    return is_short_answer(answer) and is_single_sentence(answer) and is_single_question(title)


def dolly_keep(category: str, response: str) -> bool:
    """The paper's Dolly filter (Appendix A): category in DOLLY_CATEGORIES and a non-empty
    response shorter than DOLLY_MAX_RESPONSE_CHARS characters (stripped)."""
    return category.strip() in DOLLY_CATEGORIES and is_short_answer(
        response, DOLLY_MAX_RESPONSE_CHARS
    )


# --------------------------------------------------------------------------- loaders


def load_yahoo_answers(
    source: str | os.PathLike = YAHOO_HUB_ID,
    *,
    topics: Sequence[str | int] | str | int | None = None,
    split: str = "train",
    limit: int | None = None,
    seed: int = 0,
    apply_filter: bool = True,
) -> pd.DataFrame:
    """Load Yahoo! Answers questions with their best answers, filtered as in the paper.

    ``source``: a local ``.csv``/``.jsonl``/``.parquet`` file with the hub layout (columns
    ``id, topic, question_title, best_answer`` are used, others ignored; ``topic`` an int 0..9,
    see YAHOO_TOPICS) or a hub id (needs ``datasets``; ``split`` applies to hub ids only).
    ``topics``: names (case-insensitive) or ints to keep; None keeps all. ``apply_filter``:
    keep only rows passing :func:`yahoo_keep`. ``limit``: a random sample of that many rows
    after filtering, drawn with ``numpy.random.default_rng(seed)`` and kept in source order.

    Returns columns ``question_id`` (``"ya-<id>"``), ``topic`` (name), ``question`` (the title,
    stripped), ``answer`` (the best answer, stripped); all text.
    Raises InputError on a missing file or column, a topic outside 0..9, an unknown topic name,
    a bad ``limit`` or fewer rows than ``limit``, a missing ``datasets`` package or no network.
    """
    wanted = _topic_ids(topics)
    frame, where = _load_source(source, split, YAHOO_COLUMNS)
    require_columns(frame, YAHOO_COLUMNS, where)
    if frame["id"].isna().any():
        row = int(np.flatnonzero(frame["id"].isna().to_numpy())[0])
        raise InputError(f"empty id in row {row}", source=where, field="id")

    topic_ids = _topic_column(frame["topic"], where)
    frame = frame.reset_index(drop=True)
    titles = _text(frame, "question_title", where)
    answers = _text(frame, "best_answer", where)
    keep = np.ones(len(frame), dtype=bool)
    if wanted is not None:
        keep &= np.isin(topic_ids, wanted)
    if apply_filter:
        keep &= np.fromiter(
            (yahoo_keep(t, a) for t, a in zip(titles, answers, strict=True)), bool, len(frame)
        )

    out = pd.DataFrame(
        {
            "question_id": "ya-" + id_column(frame, "id", where).str.strip(),
            "topic": [YAHOO_TOPICS[i] for i in topic_ids],
            "question": titles.str.strip(),
            "answer": answers.str.strip(),
        }
    )[keep]
    out = _sample(out, limit, seed, where, topics=wanted)
    return out.reset_index(drop=True)


def load_dolly(
    source: str | os.PathLike = DOLLY_HUB_ID, *, apply_filter: bool = True
) -> pd.DataFrame:
    """Load databricks-dolly-15k instructions, filtered as in the paper (Appendix A).

    ``source``: a local ``.jsonl``/``.csv``/``.parquet`` file with columns ``instruction,
    context, response, category`` or a hub id (needs ``datasets``; split ``train``).
    ``apply_filter`` keeps only rows passing :func:`dolly_keep`.

    Returns columns ``instruction, context, response, category`` (text; ``response`` stripped,
    an empty context as ``""``). Raises InputError on a missing file or column, a missing
    ``datasets`` package or no network.
    """
    frame, where = _load_source(source, "train", DOLLY_COLUMNS)
    require_columns(frame, DOLLY_COLUMNS, where)
    frame = frame.reset_index(drop=True)
    out = pd.DataFrame({c: _text(frame, c, where) for c in DOLLY_COLUMNS})
    out["response"] = out["response"].str.strip()
    if apply_filter:
        keep = np.fromiter(
            (dolly_keep(c, r) for c, r in zip(out["category"], out["response"], strict=True)),
            bool,
            len(out),
        )
        out = out[keep]
    return out.reset_index(drop=True)


def format_appendix_a(instruction: str, response: str | None = None) -> str:
    """The paper's Appendix-A prompt format.

    ``"### Instruction: {instruction}\\n### Response: {response}\\n### End"``; with
    ``response=None`` the prefix up to and including ``"### Response: "``, for a model to continue.
    """
    prompt = f"{INSTRUCTION_MARK} {instruction}\n{RESPONSE_MARK} "
    if response is None:
        return prompt
    return f"{prompt}{response}\n{END_MARK}"


# --------------------------------------------------------------------------- helpers


def _topic_ids(topics: Sequence[str | int] | str | int | None) -> list[int] | None:
    """Turn topic names (case-insensitive) or ints into sorted label ints; None stays None."""
    if topics is None:
        return None
    # A lone name is a common slip for a one-element list; "Health" is not a list of letters.
    items = [topics] if isinstance(topics, str | int) else list(topics)
    if not items:
        raise InputError("give at least one topic, or None for all", field="topics", value=[])
    by_name = {name.casefold(): i for i, name in enumerate(YAHOO_TOPICS)}
    valid = ", ".join(f"{i} {name!r}" for i, name in enumerate(YAHOO_TOPICS))
    ids = set()
    for item in items:
        if isinstance(item, bool):  # bool is an int subclass, but True is no topic
            index = None
        elif isinstance(item, int | np.integer):
            index = int(item) if 0 <= item < len(YAHOO_TOPICS) else None
        elif isinstance(item, str):
            index = by_name.get(item.strip().casefold())
        else:
            index = None
        if index is None:
            raise InputError(f"unknown topic; valid topics: {valid}", field="topics", value=item)
        ids.add(index)
    return sorted(ids)


def _topic_column(column: pd.Series, where: str) -> np.ndarray:
    """The ``topic`` column as label ints 0..9 (ints, int-like text or topic names accepted)."""
    if pd.api.types.is_integer_dtype(column.dtype):  # the hub's own layout: check at once
        values = column.to_numpy(dtype=np.int64)
        outside = (values < 0) | (values >= len(YAHOO_TOPICS))
        if not outside.any():
            return values
    by_name = {name.casefold(): i for i, name in enumerate(YAHOO_TOPICS)}

    def label(value: object) -> int | None:
        if isinstance(value, bool):
            return None
        if isinstance(value, int | np.integer):
            return int(value) if 0 <= value < len(YAHOO_TOPICS) else None
        if isinstance(value, float | np.floating):
            whole = float(value).is_integer() and 0 <= value < len(YAHOO_TOPICS)
            return int(value) if whole else None
        if isinstance(value, str):
            text = value.strip()
            if text.isdecimal():
                return label(int(text))
            return by_name.get(text.casefold())
        return None

    ids = []
    for row, value in enumerate(column.tolist()):
        index = label(value)
        if index is None:
            raise InputError(
                f"topic in row {row} is not a label 0..{len(YAHOO_TOPICS) - 1} or a topic name",
                source=where,
                field="topic",
                value=value,
            )
        ids.append(index)
    return np.asarray(ids, dtype=np.int64)


def _text(frame: pd.DataFrame, column: str, where: str) -> pd.Series:
    """A column as plain text: missing values become ``""`` (CSV reads empty cells as NaN).

    Raises InputError naming ``where``, the column and the row for a value that is not text
    (a number, a boolean, a list in a JSON Lines or Parquet file): it is never stringified.
    """
    values = text_column(frame, column, where, allow_missing=True, allow_blank=True)
    return values.where(values.notna(), "").astype(str)


def _sample(
    frame: pd.DataFrame, limit: int | None, seed: int, where: str, *, topics: list[int] | None
) -> pd.DataFrame:
    """A seeded sample of ``limit`` rows without replacement, kept in source order."""
    if limit is None:
        return frame
    if isinstance(limit, bool) or not isinstance(limit, int | np.integer) or limit < 1:
        raise InputError("must be a positive integer or None", field="limit", value=limit)
    if limit > len(frame):
        chosen = "all topics" if topics is None else [YAHOO_TOPICS[i] for i in topics]
        raise InputError(
            f"only {len(frame)} row(s) remain after filtering ({chosen}), fewer than "
            f"limit={limit}; lower the limit or widen the topics",
            source=where,
            field="limit",
        )
    rows = np.sort(np.random.default_rng(seed).choice(len(frame), size=int(limit), replace=False))
    return frame.iloc[rows]


def _is_local(source: str | os.PathLike) -> bool:
    """A path object, an existing file or a name with a table suffix is local; else a hub id."""
    if isinstance(source, os.PathLike):
        return True
    path = Path(source).expanduser()
    return path.suffix.lower() in _TABLE_SUFFIXES or path.is_file()


def _load_source(
    source: str | os.PathLike, split: str, columns: Sequence[str]
) -> tuple[pd.DataFrame, str]:
    """Read a local table or a hub dataset split; returns the frame and a name for messages."""
    if _is_local(source):
        path = Path(source).expanduser()
        return _read_local(path, columns), str(path)
    return _load_hub(str(source), split), f"hub dataset {source!r} (split {split!r})"


def _read_local(path: Path, columns: Sequence[str]) -> pd.DataFrame:
    """Read a local table with text columns kept as text (``"007"`` stays ``"007"``) and JSON
    values keeping their JSON types (a number is not guessed from a string, nor the reverse).
    """
    return read_table(path, text_columns=columns)


# Exception class names (anywhere in the cause chain) that mean the hub could not be reached.
_NETWORK_ERRORS = {
    "ConnectionError",
    "ConnectError",
    "ConnectTimeout",
    "ReadTimeout",
    "Timeout",
    "TimeoutError",
    "TimeoutException",
    "OfflineModeIsEnabled",
    "LocalEntryNotFoundError",
    "gaierror",
    "MaxRetryError",
    "NewConnectionError",
}


def _is_network_error(exc: BaseException) -> bool:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if any(cls.__name__ in _NETWORK_ERRORS for cls in type(current).__mro__):
            return True
        current = current.__cause__ or current.__context__
    return False


def _load_hub(hub_id: str, split: str) -> pd.DataFrame:
    """Load one split of a hub dataset as a DataFrame through the optional ``datasets``."""
    local_hint = "pass a local .csv/.jsonl/.parquet file of the dataset instead"
    try:
        import datasets
    except ImportError:
        offline = (
            " (note: HF_HUB_OFFLINE is set, so the dataset must also be in the local cache)"
            if hub_offline()
            else ""
        )
        raise InputError(
            f"loading a hub dataset needs the optional 'datasets' package: pip install "
            f"datasets, or {local_hint}{offline}",
            field="source",
            value=hub_id,
        ) from None
    try:
        data = datasets.load_dataset(hub_id, split=split)
        return data.to_pandas()
    except Exception as exc:  # noqa: BLE001 - every hub failure becomes one readable message
        detail = f"{type(exc).__name__}: {exc}".splitlines()[0][:200]
        if hub_offline() or _is_network_error(exc):
            reason = (
                f"not found locally and no network access: {local_hint}, or load it once with "
                "network access so it is cached"
            )
        else:
            reason = f"cannot load the hub dataset: {local_hint}"
        raise InputError(f"{reason} [{detail}]", field="source", value=hub_id) from None
