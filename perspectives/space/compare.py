"""Compare a collection of models: responses -> data kernels -> perspective space -> run folder."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import InputError
from ..reporting.plots import scatter_html, scatter_png
from ..reporting.progress import progress_bar
from ..store import file_set, write_csv, write_json, write_npy, write_parquet
from .embed import CachedEmbedder, Embedder, get_embedder
from .estimator import PerspectiveSpace
from .responses import (
    COORDINATE,
    DataKernels,
    data_kernels,
    point_columns,
    validate_responses,
)
from .separation import class_separation

# Every file ``write_comparison`` may write into its folder.
OUTPUT_FILES = (
    "responses.parquet",
    "perspectives.parquet",
    "perspectives.csv",
    "distances.npy",
    "distances.csv",
    "space.png",
    "space.html",
    "summary.json",
)


@dataclass
class Comparison:
    """The result of comparing models: the fitted space and its tidy table."""

    space: PerspectiveSpace
    perspectives: pd.DataFrame
    kernels: DataKernels
    embedder_name: str
    info: dict = field(default_factory=dict)
    inputs: list[str] = field(default_factory=list)
    """Files the comparison was read from; ``write_comparison`` never writes over them."""
    source: str = "responses"


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
        ``validate_responses`` and ``PerspectiveSpace.fit``; and for an ``n_components`` that
        is not a whole number from 1 to (points - 1). All are raised before embedding.
    """
    _check_n_components(n_components)
    df = validate_responses(
        responses, source, drop_incomplete=drop_incomplete, allow_empty=allow_empty, warn=warn
    )
    n_points = df.groupby(point_columns(df), sort=False).ngroups
    if n_components is not None and n_components > n_points - 1:
        raise InputError(
            f"is larger than possible: at most {n_points - 1} components for {n_points} points",
            source=source,
            field="n_components",
            value=n_components,
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
    return Comparison(
        space, table, kernels, emb.name, info, inputs=_inputs_of(responses), source=source
    )


def _check_n_components(n_components: object) -> None:
    if n_components is None:
        return
    whole = isinstance(n_components, int | np.integer) and not isinstance(n_components, bool)
    if not whole or n_components < 1:
        raise InputError(
            "must be a whole number >= 1 (or None for the elbow)",
            field="n_components",
            value=n_components,
        )


def _inputs_of(frame: pd.DataFrame) -> list[str]:
    """The files a table was read from, as ``read_table`` and ``generate_responses`` record
    them in its ``attrs``."""
    found = [frame.attrs.get("source"), *frame.attrs.get("inputs", [])]
    return [str(f) for f in found if f]


def check_output_dir(
    out_dir: str | os.PathLike,
    inputs: Iterable[str | os.PathLike] = (),
    *,
    files: Iterable[str] = OUTPUT_FILES,
) -> Path:
    """Check, before any work, that ``out_dir`` can take a comparison's files.

    Nothing is created. Raises InputError (field ``--out``) when ``out_dir`` or a folder above
    it is a file, when it is a run or sweep folder or its ``analysis/`` (whose files it would
    replace), when one of ``files`` in it is a folder or is one of ``inputs`` (an output never
    replaces an input: ``compare perspectives.csv --out .`` is refused), or when the nearest
    existing folder cannot be written.
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise InputError(
            "is an existing file, not a folder; choose a folder for the outputs",
            source=str(out),
            field="--out",
        )
    existing = next((p for p in (out, *out.parents) if p.exists()), Path("."))
    if not existing.is_dir():
        raise InputError(
            f"cannot make the output folder: {existing} is a file", source=str(out), field="--out"
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        raise InputError(
            f"cannot write the output folder: {existing} is not writable",
            source=str(out),
            field="--out",
        )
    # A run's or a sweep's folder, and its analysis/, hold files of these names
    # (summary.json, perspectives.parquet): a comparison written there would replace them.
    real = out.resolve()
    for folder in (real, real.parent) if real.name == "analysis" else (real,):
        if (folder / "run.json").is_file() or (folder / "sweep.json").is_file():
            raise InputError(
                f"is the run or sweep folder {folder}, or its analysis/, whose files a "
                "comparison would overwrite; choose another folder",
                source=str(out),
                field="--out",
            )
    sources = [Path(i) for i in inputs if i]
    for name in files:
        target = out / name
        if target.is_dir():
            raise InputError(
                f"{name} is a folder there; it would be replaced", source=str(out), field="--out"
            )
        for src in sources:
            if _same_file(target, src):
                raise InputError(
                    f"would overwrite the input file {src}; choose another --out folder",
                    source=str(target),
                    field="--out",
                )
    return out


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def separation_by(comp: Comparison, label: str, dims: int | None = None) -> dict[str, float] | None:
    """Class separation of ``label`` in the first ``dims`` axes (all if None); None if the label
    is absent or has fewer than two classes with two points each."""
    if label not in comp.perspectives.columns:
        return None
    z = comp.perspectives[[c for c in comp.perspectives.columns if COORDINATE.fullmatch(c)]]
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
    inputs: Iterable[str | os.PathLike] = (),
) -> Path:
    """Write a comparison's run folder, its files as one set: an interrupted write leaves
    the previous set, or one without ``summary.json`` (an earlier output not written again,
    a figure say, goes).

    Files: ``perspectives.parquet`` / ``.csv`` (labels, z1..zd), ``distances.npy`` and
    ``distances.csv`` (Frobenius distances between points, labelled), ``space.png``,
    ``space.html`` (interactive, self-contained), ``summary.json``, and ``responses.parquet``
    when ``responses`` is given (generated answers).

    Raises InputError before writing anything when ``color_by`` is not a column of the points
    (a point column or a label), or when ``check_output_dir`` refuses ``out_dir`` (a file, an
    unwritable folder, or an output that would replace ``inputs`` or ``comp.inputs``); and
    InputError naming the file when the system refuses a write.
    """
    if color_by is not None and color_by not in comp.kernels.points.columns:
        raise InputError(
            f"no such label column; available: {list(comp.kernels.points.columns)}",
            source=comp.source,
            field="--color-by",
            value=color_by,
        )
    files = OUTPUT_FILES if responses is not None else OUTPUT_FILES[1:]
    out = check_output_dir(out_dir, [*comp.inputs, *inputs], files=files)
    try:
        # As one set (a responses.parquet not written stays: it may be the input itself).
        with file_set(out, owned=files) as staging:
            _write(comp, staging, color_by, responses, title)
        return out
    except OSError as exc:
        raise InputError(
            f"cannot write the output: {exc.strerror or exc}", source=str(out), field="--out"
        ) from None


def _write(
    comp: Comparison,
    out: Path,
    color_by: str | None,
    responses: pd.DataFrame | None,
    title: str,
) -> Path:
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
    # A numeric time reads "model@t3"; a text one is shown as it is ("model@t1", not "@tt1").
    prefix = "@t" if pd.api.types.is_numeric_dtype(points["time"]) else "@"
    return (points["model"].astype(str) + prefix + points["time"].astype(str)).tolist()
