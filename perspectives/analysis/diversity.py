"""How varied a population's answers are at each step: the text-level view of convergence.

A population that collapses onto one answer (every model repeating the same string, whatever
the question) converges in perspective space too, but the perspective space cannot say *what*
it converged to. These measures read the answers themselves.
"""

from __future__ import annotations

import pandas as pd

from ..errors import InputError
from .trajectories import _require


def answer_diversity(responses: pd.DataFrame) -> pd.DataFrame:
    """Columns ``t, answers, distinct, top_share, top_answer`` per step of ``responses``
    (columns ``t`` and ``text``; pass the evaluation answers only).

    ``distinct``: the number of distinct answers divided by the number of answers (1: no two
    alike). ``top_share``: the fraction of answers that are the most common one, and
    ``top_answer`` that answer (ties: the first in sorted order). Answers are compared after
    stripping surrounding whitespace. Raises InputError on missing columns or no rows.
    """
    _require(responses, ("t", "text"))
    if responses.empty:
        raise InputError("no answers to measure", field="text")
    rows = []
    for t, snap in responses.groupby("t", sort=True):
        counts = snap["text"].astype(str).str.strip().value_counts()
        top = counts[counts == counts.iloc[0]].index.min()
        n = int(counts.sum())
        rows.append(
            {
                "t": t,
                "answers": n,
                "distinct": len(counts) / n,
                "top_share": int(counts.iloc[0]) / n,
                "top_answer": top,
            }
        )
    return pd.DataFrame(rows)


def collapse_note(diversity: pd.DataFrame, share: float = 0.5) -> str | None:
    """A sentence saying that the population repeats one answer at its last step (at least
    ``share`` of the answers are the same text), or None when it does not.

    ``diversity``: the table of ``answer_diversity``.
    """
    last = diversity.sort_values("t").iloc[-1]
    if last["top_share"] < share:
        return None
    text = str(last["top_answer"])
    quoted = repr(text if len(text) <= 60 else text[:57] + "...") if text else "the empty answer"
    return (
        f"at t = {last['t']}, {last['top_share']:.0%} of the evaluation answers are one text, "
        f"whatever the question: {quoted}"
    )
