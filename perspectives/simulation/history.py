"""A run's history in perspective space: the data kernels of every (model, t) snapshot and
their joint embedding. Reads the run folder only (torch-free)."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import CorruptStateError, InputError
from ..space.estimator import PerspectiveSpace
from ..space.responses import mean_kernels
from .rundir import RunFolder


@dataclass
class History:
    """The evaluation history of a run.

    Attributes
    ----------
    kernels : ndarray of shape (n_points, m_prompts, p)
        The data kernel of every (model, t), replicates averaged.
    points : DataFrame
        ``t, model, class``, one row per kernel.
    space : PerspectiveSpace
        Fitted jointly on every point.
    perspectives : DataFrame
        ``points`` with ``z1..zd``.
    answers : DataFrame
        The evaluation answers themselves, ``t, model, question_id, text``.
    databases : DataFrame or None
        ``t, database, z1..zd``: each database placed in the space (not fitted on it) by
        its probe's answers, for a run whose databases are evaluated.
    """

    kernels: np.ndarray
    points: pd.DataFrame
    space: PerspectiveSpace
    perspectives: pd.DataFrame
    answers: pd.DataFrame
    databases: pd.DataFrame | None = None


def load_history(
    run: str | os.PathLike | RunFolder, upto: int | None = None, n_components: int | None = None
) -> History | None:
    """Fit the joint perspective space over every evaluation snapshot up to ``upto``.

    Returns None when fewer than two points are complete. Raises InputError if a model lacks
    some evaluation answers, CorruptStateError naming a damaged file of the run folder."""
    folder = run if isinstance(run, RunFolder) else RunFolder(run)
    classes = folder.read_config(validate=False).classes()
    if folder.last_complete_step() < 0:
        return None
    meta, blocks = [], []
    for answers, vectors in folder.evaluation_snapshots(upto):
        t = int(answers["t"].iloc[0]) if len(answers) else -1
        if blocks and vectors.shape[1] != blocks[0].shape[1]:
            raise CorruptStateError(
                f"holds {vectors.shape[1]}-dimensional embeddings; the steps before hold "
                f"{blocks[0].shape[1]}-dimensional ones",
                source=str(folder.embeddings_file(t)),
            )
        meta.append(answers)
        blocks.append(vectors)
    if not blocks:
        return None
    ev = pd.concat(meta, ignore_index=True)
    prompt_ids = sorted(ev["question_id"].unique())
    points, kernels = _kernels(ev, np.concatenate(blocks), prompt_ids, folder)
    unknown = sorted(set(points["model"]) - set(classes))
    if unknown:  # a part of another run, or edited: its rows are no model of this one
        t = int(points.loc[points["model"] == unknown[0], "t"].iloc[0])
        raise CorruptStateError(
            f"evaluation answers at t = {t} of a model the run's config does not have",
            source=str(folder.path / "tables" / "responses"),
            field="model",
            value=unknown[0],
        )
    points["class"] = points["model"].map(classes).fillna("")
    if len(points) < 2:
        return None
    try:
        space = PerspectiveSpace(n_components=n_components).fit(kernels, labels=points)
    except InputError as exc:
        if exc.source is not None:
            raise
        # The space's own error knows no run: in a sweep, which run is the one too small.
        raise type(exc)(
            f"{exc.message} ({len(points)} points of this run)",
            source=str(folder.path),
            field=exc.field,
            value=exc.value,
        ) from None
    return History(
        kernels, points, space, space.to_frame(), ev, _databases(folder, upto, space, prompt_ids)
    )


def _kernels(
    ev: pd.DataFrame, vectors: np.ndarray, prompt_ids: list, folder: RunFolder
) -> tuple[pd.DataFrame, np.ndarray]:
    """The ``t, model`` points of evaluation answers ``ev`` and their mean data kernels."""
    return evaluation_kernels(ev, vectors, ["t", "model"], prompt_ids, folder)


def evaluation_kernels(
    ev: pd.DataFrame, vectors: np.ndarray, keys: list[str], prompt_ids: list, folder: RunFolder
) -> tuple[pd.DataFrame, np.ndarray]:
    """The points (distinct ``keys`` of evaluation answers ``ev``, in order of appearance)
    and their mean data kernels ``(points, prompts, p)``; ``vectors``: one row per row of
    ``ev``. Raises InputError if a point lacks an answer to a prompt, CorruptStateError
    (naming ``folder``'s responses) if a point has another number of answers to a prompt
    than the others: rows of another model or step, which a mean would silently blend in."""
    points = ev.drop_duplicates(keys)[keys].reset_index(drop=True)
    pi = pd.MultiIndex.from_frame(points).get_indexer(pd.MultiIndex.from_frame(ev[keys]))
    qi = pd.Index(prompt_ids).get_indexer(ev["question_id"])
    kernels, counts = mean_kernels(pi, qi, vectors, len(points), len(prompt_ids))
    if (counts == 0).any():
        raise InputError("a model lacks some evaluation answers", source=str(folder.path))
    if counts.min() != counts.max():
        # Every model answers every prompt the same number of times (its replicates).
        values, seen = np.unique(counts, return_counts=True)
        usual = int(values[np.argmax(seen)])
        i, q = (int(x[0]) for x in np.nonzero(counts != usual))
        raise CorruptStateError(
            f"{int(counts[i, q])} evaluation answer(s) of {points['model'].iloc[i]!r} at "
            f"t = {int(points['t'].iloc[i])} to question {prompt_ids[q]!r}, where the others "
            f"have {usual}",
            source=str(folder.path / "tables" / "responses"),
        )
    return points, kernels


def _databases(
    folder: RunFolder, upto: int | None, space: PerspectiveSpace, prompt_ids: list
) -> pd.DataFrame | None:
    """The databases' positions: their probes' kernels placed in the models' space."""
    snapshots = list(folder.evaluation_snapshots(upto, databases=True))
    if not snapshots:
        return None
    ev = pd.concat([a for a, _ in snapshots], ignore_index=True)
    vectors = np.concatenate([v for _, v in snapshots])
    points, kernels = _kernels(ev, vectors, prompt_ids, folder)
    z = space.transform(kernels)
    table = points.rename(columns={"model": "database"})
    for j in range(z.shape[1]):
        table[f"z{j + 1}"] = z[:, j]
    return table
