"""Compare a collection of models: responses -> data kernels -> perspective space -> run folder."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..reporting.plots import scatter_html, scatter_png
from ..reporting.progress import progress_bar
from ..store import write_csv, write_json, write_npy, write_parquet
from .embed import CachedEmbedder, Embedder, get_embedder
from .estimator import PerspectiveSpace
from .responses import DataKernels, data_kernels, point_columns, validate_responses
from .separation import class_separation


@dataclass
class Comparison:
    """The result of comparing models: the fitted space and its tidy table."""

    space: PerspectiveSpace
    perspectives: pd.DataFrame
    kernels: DataKernels
    embedder_name: str
    info: dict = field(default_factory=dict)


def embed_with_progress(
    embedder: Embedder | CachedEmbedder, show_progress: bool = True
) -> Callable[[list[str]], np.ndarray]:
    """A text -> vectors function that drives a progress bar while embedding."""

    def embed(texts: list[str]) -> np.ndarray:
        with progress_bar("embedding", len(texts), show_progress) as advance:
            if isinstance(embedder, CachedEmbedder):
                return embedder.embed(texts, on_batch=advance)
            out = embedder.embed(texts)
            advance(len(texts))
            return out

    return embed


def compare_responses(
    responses: pd.DataFrame,
    *,
    embedder: Embedder | CachedEmbedder | None = None,
    n_components: int | None = None,
    source: str = "responses",
    drop_incomplete: bool = False,
    allow_empty: bool = False,
    show_progress: bool = True,
    warn: Callable[[str], None] | None = None,
) -> Comparison:
    """Validate a responses table, embed it and fit the perspective space of its points.

    Parameters
    ----------
    responses : DataFrame
        One row per answer: ``model, prompt_id, response``, optionally ``replicate`` (averaged),
        ``time`` (each (model, time) its own point) and label columns.
    embedder : Embedder, default=None
        The surrogate embedder (default: the bundled all-MiniLM-L6-v2, cached on disk).
    n_components : int, default=None
        Dimension of the space (default: the Zhu–Ghodsi elbow).
    source : str, default="responses"
        Named in error messages.
    drop_incomplete : bool, default=False
        Drop points that lack some prompts (reported through ``warn``) instead of failing.
    allow_empty : bool, default=False
        Accept empty answers.
    show_progress : bool, default=True
    warn : callable, default=None
        Receives one line per warning.

    Returns
    -------
    Comparison
        The fitted space, its table (labels + ``z1..zd``) and the data kernels.

    Raises
    ------
    InputError
        For any problem in the table (naming ``source``, the column and the value); see
        ``validate_responses`` and ``PerspectiveSpace.fit``.
    """
    df = validate_responses(
        responses, source, drop_incomplete=drop_incomplete, allow_empty=allow_empty, warn=warn
    )
    emb = embedder if embedder is not None else get_embedder()
    kernels = data_kernels(df, embed_with_progress(emb, show_progress))
    space = PerspectiveSpace(n_components=n_components).fit(kernels.kernels, labels=kernels.points)
    table = space.to_frame()
    info = {
        "n_points": int(len(kernels.points)),
        "n_prompts": len(kernels.prompt_ids),
        "embedding_dim": int(kernels.kernels.shape[2]),
        "n_responses": int(len(df)),
        "embedder": emb.name,
        "n_components": space.n_components_,
        "elbows": list(space.elbows_),
        "explained_variance_ratio": space.explained_variance_ratio_.tolist(),
    }
    return Comparison(space, table, kernels, emb.name, info)


def separation_by(comp: Comparison, label: str, dims: int | None = None) -> dict[str, float] | None:
    """Class separation of ``label`` in the first ``dims`` axes (all if None); None if the label
    is absent or has fewer than two classes with two points each."""
    if label not in comp.perspectives.columns:
        return None
    z = comp.perspectives[[c for c in comp.perspectives.columns if c.startswith("z")]]
    Z = z.to_numpy()[:, :dims] if dims else z.to_numpy()
    try:
        return class_separation(Z, comp.perspectives[label].astype(str).to_numpy())
    except ValueError:
        return None


def write_comparison(
    comp: Comparison,
    out_dir: str | os.PathLike,
    *,
    color_by: str | None = None,
    responses: pd.DataFrame | None = None,
    title: str = "Perspective space",
) -> Path:
    """Write a comparison's run folder; every file is written atomically.

    Files: ``perspectives.parquet`` / ``.csv`` (labels, z1..zd), ``distances.npy`` and
    ``distances.csv`` (Frobenius distances between points, labelled), ``space.png``,
    ``space.html`` (interactive, self-contained), ``summary.json``, and ``responses.parquet``
    when ``responses`` is given (generated answers).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if responses is not None:
        write_parquet(out / "responses.parquet", responses)
    write_parquet(out / "perspectives.parquet", comp.perspectives)
    write_csv(out / "perspectives.csv", comp.perspectives)
    names = _point_names(comp.kernels.points)
    D = comp.space.distances_
    write_npy(out / "distances.npy", D)
    write_csv(
        out / "distances.csv",
        pd.DataFrame(D, index=names, columns=names).reset_index(names="point"),
    )
    plot_frame = comp.perspectives
    if color_by is None:
        labels = [c for c in comp.kernels.points.columns if c not in point_columns(plot_frame)]
        color_by = labels[0] if labels else None
    scatter_png([(title, plot_frame)], out / "space.png", color_by=color_by)
    hover = [*point_columns(plot_frame), *([color_by] if color_by else [])]
    scatter_html(
        [(title, plot_frame)], out / "space.html", color_by=color_by, hover=hover, title=title
    )
    summary = dict(comp.info)
    if color_by:
        summary["color_by"] = color_by
        summary["separation"] = separation_by(comp, color_by)
    write_json(out / "summary.json", summary)
    return out


def _point_names(points: pd.DataFrame) -> list[str]:
    keys = point_columns(points)
    if keys == ["model"]:
        return points["model"].astype(str).tolist()
    return (points["model"].astype(str) + "@t" + points["time"].astype(str)).tolist()
