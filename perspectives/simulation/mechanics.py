"""Interaction mechanics: who asks whom which questions at a step.

A mechanic maps the step's graph to a list of interviews; the engine then has every source
answer its questions (with the weights of the previous step) and every asker learn from the
answers. Register another mechanic in ``MECHANICS`` to change how models interact.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from .policies import Edge, in_neighbours


@dataclass
class Interview:
    """``asker`` asks ``source`` the bank questions at positions ``questions``."""

    asker: str
    source: str
    questions: list[int]


def interview_one_neighbour(
    edges: Iterable[Edge],
    learners: Sequence[str],
    bank_size: int,
    k: int,
    rng: np.random.Generator,
) -> tuple[list[Interview], list[str]]:
    """The paper's mechanic: each learner picks one in-neighbour uniformly at random and asks
    it ``k`` distinct random questions. Returns the interviews and the learners skipped for
    having no in-neighbour."""
    edges = list(edges)
    interviews, skipped = [], []
    for name in learners:
        sources = in_neighbours(edges, name)
        if not sources:
            skipped.append(name)
            continue
        source = sources[int(rng.integers(len(sources)))]
        questions = sorted(int(x) for x in rng.choice(bank_size, k, replace=False))
        interviews.append(Interview(name, source, questions))
    return interviews, skipped


Mechanic = Callable[..., tuple[list[Interview], list[str]]]
MECHANICS: dict[str, Mechanic] = {"interview": interview_one_neighbour}
