"""How varied a population's answers are at each step: the text-level view of convergence.

A population that collapses onto one answer (every model repeating the same string, whatever
the question) converges in perspective space too, but the perspective space cannot say *what*
it converged to. These measures read the answers themselves.
"""

from __future__ import annotations

from collections.abc import Collection

import pandas as pd

from ..errors import InputError
from .trajectories import _require


def answer_diversity(responses: pd.DataFrame, sources: Collection[str] = ()) -> pd.DataFrame:
    """Columns ``t, answers, distinct, top_share, top_answer`` per step of ``responses``
    (columns ``t`` and ``text``; pass the evaluation answers only), and ``questions,
    top_questions`` when ``responses`` has a ``question_id`` column.

    ``distinct``: the number of distinct answers divided by the number of answers (1: no two
    alike; replicates count as answers, so r identical greedy replicates give at most 1/r).
    ``top_share``: the fraction of answers that are the most common one, and ``top_answer``
    that answer (ties: the first in sorted order). ``questions``: the questions asked at the
    step; ``top_questions``: how many of them the most common answer was given to.

    With a ``model`` column as well, the answers of the models other than ``sources`` (an
    adversary's, say) are read against each other: ``shared`` is the fraction of them that
    another of these models gave word for word to the same question at the step, and no
    source did; ``adopted`` (with ``sources``) the fraction that a source gave word for
    word (NaN at a step where no source answered). Models that do not copy each other rarely
    agree to the word on an answer of any length, so a ``shared`` of a half or more reads as
    a population repeating its own templates (a collapse: read ``top_answer`` and the answers
    to see which), and a rising ``adopted`` as one repeating its sources (capture).

    Answers are compared after stripping surrounding whitespace. Raises InputError on
    missing columns, no rows or an answer without text (counting it as no answer would
    raise ``distinct``).
    """
    _require(responses, ("t", "text"))
    if responses.empty:
        raise InputError("no answers to measure", field="text")
    missing = responses["text"].isna().to_numpy()
    if missing.any():
        i = int(missing.argmax())
        raise InputError(
            f"{int(missing.sum())} of {len(responses)} answers have no text (e.g. row {i}, "
            f"t = {responses['t'].iloc[i]})",
            field="text",
        )
    by_question = "question_id" in responses.columns
    by_model = by_question and "model" in responses.columns
    rows = []
    for t, snap in responses.groupby("t", sort=True):
        texts = snap["text"].astype(str).str.strip()
        counts = texts.value_counts()
        top = counts[counts == counts.iloc[0]].index.min()
        n = int(counts.sum())
        row = {
            "t": t,
            "answers": n,
            "distinct": len(counts) / n,
            "top_share": int(counts.iloc[0]) / n,
            "top_answer": top,
        }
        if by_question:
            row["questions"] = int(snap["question_id"].nunique())
            row["top_questions"] = int(snap.loc[texts == top, "question_id"].nunique())
        if by_model:
            row.update(_agreement(snap.assign(text=texts), set(sources)))
        rows.append(row)
    return pd.DataFrame(rows)


def _agreement(snap: pd.DataFrame, sources: set[str]) -> dict[str, float]:
    """``shared`` and (with ``sources``) ``adopted`` of one step's answers."""
    is_source = snap["model"].isin(sources)
    own = snap[~is_source]
    if own.empty:
        return {"shared": float("nan"), **({"adopted": float("nan")} if sources else {})}
    said = pd.MultiIndex.from_frame(snap.loc[is_source, ["question_id", "text"]])
    adopted = pd.MultiIndex.from_frame(own[["question_id", "text"]]).isin(said)
    givers = own.groupby(["question_id", "text"])["model"].transform("nunique")
    out = {"shared": float(((givers > 1).to_numpy() & ~adopted).mean())}
    if sources:
        # No source answered (one that joins later, or left): nothing could be adopted.
        out["adopted"] = float(adopted.mean()) if is_source.any() else float("nan")
    return out


def collapse_note(diversity: pd.DataFrame, share: float = 0.5) -> str | None:
    """A sentence saying that the population repeats one answer at its last step, or None.

    It does when at least ``share`` of the answers are the same text and, if the table knows
    the questions (``top_questions``), that text answers more than one question: agreeing on
    one question is consensus, not collapse. ``diversity``: the table of ``answer_diversity``.
    """
    last = diversity.sort_values("t").iloc[-1]
    if last["top_share"] < share:
        return None
    over = ""
    if "top_questions" in diversity.columns:
        if last["top_questions"] < 2:
            return None
        over = f" (to {last['top_questions']} of {last['questions']} questions)"
    text = str(last["top_answer"])
    quoted = repr(text if len(text) <= 60 else text[:57] + "...") if text else "the empty answer"
    return (
        f"at t = {last['t']}, {last['top_share']:.0%} of the evaluation answers{over} are one "
        f"text: {quoted}"
    )
