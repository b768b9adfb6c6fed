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
