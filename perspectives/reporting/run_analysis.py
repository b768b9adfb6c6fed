"""Analyse a run folder: the joint perspective space of its history and every analysis of it.

``analyze_run`` reads the complete steps of a run (an interrupted run is analysed as far as it
got, and the missing steps are named), and ``write_run_analysis`` writes the tables and figures
to ``RUN/analysis/``. ``analyze_sweep`` gathers the runs of a sweep folder by condition.
"""

from __future__ import annotations

import functools
import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..analysis import (
    adversarial_polarization,
    answer_diversity,
    class_movement,
    class_polarization,
    class_trajectories,
    clusters_over_time,
    dispersion,
    iso_mirror,
    separate_embeddings,
)
from ..errors import CorruptStateError, InputError
from ..simulation.config import RunConfig, build_policy
from ..simulation.databases import database_change_points
from ..simulation.history import load_history
from ..simulation.rundir import RunFolder
from ..store import file_set, output_dir, write_csv, write_json, write_parquet

ANALYSIS_DIR = "analysis"
# Every file the analyses may write into a run's or a sweep's analysis/: one not written
# again goes (monitor's and the control comparison's files are others' and stay).
RUN_ANALYSIS_FILES = (
    "perspectives.parquet",
    "perspectives.csv",
    "isomirror.parquet",
    "clusters.parquet",
    "cluster_labels.parquet",
    "class_means.parquet",
    "class_movement.parquet",
    "polarization.parquet",
    "dispersion.parquet",
    "diversity.parquet",
    "databases.parquet",
    "summary.json",
    "trajectories.png",
    "isomirror.png",
    "clusters.png",
    "polarization.png",
)
SWEEP_ANALYSIS_FILES = (
    "polarization.parquet",
    "clusters.parquet",
    "isomirror.parquet",
    "dispersion.parquet",
    "diversity.parquet",
    "summary.json",
    "polarization.png",
    "polarization-kernel.png",
    "isomirror.png",
    "clusters.png",
)


@dataclass
class RunAnalysis:
    """Everything computed from one run folder (tables have a ``t`` column)."""

    run_dir: Path
    cfg: RunConfig
    perspectives: pd.DataFrame
    isomirror: pd.DataFrame
    clusters: pd.DataFrame
    cluster_labels: pd.DataFrame
    class_means: pd.DataFrame
    polarization: pd.DataFrame | None
    polarization_kind: str | None
    steps: list[int]
    missing_steps: list[int]
    summary: dict[str, Any] = field(default_factory=dict)
    dispersion: pd.DataFrame | None = None
    diversity: pd.DataFrame | None = None
    movement: pd.DataFrame | None = None
    databases: pd.DataFrame | None = None


def read_run_config(run_dir: Path) -> RunConfig:
    """The config a run folder was made from. Raises InputError if the folder is not a run,
    CorruptStateError if its ``run.json`` or ``config.yaml`` is damaged or was edited."""
    return RunFolder(run_dir).read_config(validate=False)


def expected_snapshots(cfg: RunConfig) -> list[int]:
    """The steps at which a finished run has evaluation snapshots (not those at which every
    model has left: nobody is evaluated)."""
    every = cfg.evaluation.every
    return [t for t in range(cfg.steps + 1) if (t % every == 0 or t == cfg.steps) and cfg.active(t)]


def polarization_of(
    table: pd.DataFrame, cfg: RunConfig, kernels: pd.DataFrame | None = None
) -> tuple[pd.DataFrame | None, str | None]:
    """The polarization that fits the run: adversarial when the communication has an
    adversary (case study 2), two-class when the system has two classes (case study 3).

    Columns ``t, distance, polarization`` on ``z1`` (the paper's), ``distance_all,
    polarization_all`` in all d dimensions of the perspective space, and, given ``kernels``
    (``t, model, class`` and one column per entry of the flattened data kernel),
    ``distance_kernel, polarization_kernel``: between the mean data kernels themselves, which
    no fitted space or chosen dimension can change."""
    adversaries = build_policy(cfg.communication, cfg).adversaries
    if adversaries:
        kind = "adversarial"
        measure = functools.partial(adversarial_polarization, adversary=sorted(adversaries))
        side = table["model"].isin(adversaries) | table["class"].isin(adversaries)
    elif table["class"].nunique() == 2:
        kind = "two-class"
        measure = class_polarization
        side = table["class"] == sorted(table["class"].unique())[0]
    else:
        return None, None
    # Both sides must be present together at some step (groups join and leave): otherwise
    # there is no distance to measure at all.
    if not side.groupby(table["t"]).nunique().eq(2).any():
        return None, None
    out = measure(table, axis="z1")
    out = out.merge(_suffixed(measure(table, axis="all"), "all"), on="t", how="left")
    if kernels is not None:
        cols = [c for c in kernels.columns if c not in ("t", "model", "class")]
        out = out.merge(_suffixed(measure(kernels, axis=cols), "kernel"), on="t", how="left")
    return out, kind


def adversary_models(table: pd.DataFrame, cfg: RunConfig) -> list[str]:
    """The models of ``table`` that the run's communication names adversaries (by name or
    class)."""
    named = build_policy(cfg.communication, cfg).adversaries
    if not named:
        return []
    return sorted(
        table.loc[table["model"].isin(named) | table["class"].isin(named), "model"].unique()
    )


def dispersion_of(table: pd.DataFrame, kernels: pd.DataFrame) -> pd.DataFrame | None:
    """The population's dispersion per step (``analysis.dispersion``) in the perspective
    space, and with the suffix ``_kernel`` between the data kernels themselves; None for a
    single model."""
    if table.groupby("t")["model"].nunique().min() < 2:
        return None
    cols = [c for c in kernels.columns if c not in ("t", "model", "class")]
    names = {c: f"{c}_kernel" for c in ("spread", "nn_distance", "locality")}
    names |= {f"{c}_rel": f"{c}_kernel_rel" for c in ("spread", "nn_distance")}
    on_kernels = dispersion(kernels, axis=cols).rename(columns=names)
    return dispersion(table).merge(on_kernels, on="t")


def _suffixed(frame: pd.DataFrame, suffix: str) -> pd.DataFrame:
    return frame.rename(columns={c: f"{c}_{suffix}" for c in ("distance", "polarization")})


def kernel_table(hist) -> pd.DataFrame:
    """``t, model, class`` and the flattened data kernel ``A_i(t)`` (m x p values) per row."""
    flat = hist.kernels.reshape(len(hist.points), -1)
    values = pd.DataFrame(flat, columns=[f"a{j}" for j in range(flat.shape[1])])
    return pd.concat([hist.points[["t", "model", "class"]].reset_index(drop=True), values], axis=1)


def compute_paths(folder: RunFolder, upto: int | None = None) -> list[dict]:
    """The distinct ways the run's steps were computed: ``device``, torch's ``threads``,
    ``answer_dtype`` and ``train_dtype`` (None for agents without them), with the ``steps``
    of each. Greedy answers repeat exactly only on one path (in bfloat16 here, 51 of 144
    answers of the same models differed between one thread and two), so a run resumed on
    another kind of machine or with another thread count has more than one."""
    events = folder.read_parts("events", upto)
    if events.empty:
        return []
    paths: dict[tuple, list[int]] = {}
    unreadable: list[int] = []
    for row in events[events["kind"] == "timing"].itertuples():
        key = _compute_key(row.detail)
        if key is None:
            unreadable.append(int(row.t))
        else:
            paths.setdefault(key, []).append(int(row.t))
    if unreadable:
        # A timing record is informative, never needed: the analysis goes on without it,
        # but the steps it leaves out of the compute paths are named.
        warnings.warn(
            f"{folder.table_file('events', unreadable[0])}: the timing record of "
            f"{len(unreadable)} step(s) (t = {steps_text(unreadable)}) is not a JSON object of "
            "scalars; the compute paths leave those steps out",
            stacklevel=2,
        )
    return [
        {"device": d, "threads": n, "answer_dtype": a, "train_dtype": tr, "steps": steps}
        for (d, n, a, tr), steps in paths.items()
    ]


def steps_text(steps: list[int], shown: int = 5) -> str:
    """Steps as a reader takes them in: ``3..12`` for a run of three or more, else
    ``1, 4, 7``, cut to ``shown`` with ``...``."""
    if len(steps) > 2 and steps == list(range(steps[0], steps[-1] + 1)):
        return f"{steps[0]}..{steps[-1]}"
    return ", ".join(map(str, steps[:shown])) + (", ..." if len(steps) > shown else "")


def _compute_key(detail: object) -> tuple | None:
    """A timing record's ``device, threads, answer_dtype, train_dtype`` (None for those it
    lacks), or None when its detail is no JSON object of such scalars."""
    if not isinstance(detail, str):
        return None
    try:
        info = json.loads(detail)
    except ValueError:
        return None
    if not isinstance(info, dict):
        return None
    key = tuple(info.get(k) for k in ("device", "threads", "answer_dtype", "train_dtype"))
    scalar = (str, int, float, bool, type(None))
    return key if all(isinstance(v, scalar) for v in key) else None


def compute_where(path: dict) -> str:
    """Where a compute path ran: ``"cpu 1 thread"``, ``"cpu 2 threads"``, or the device alone
    for runs recorded before the thread count was part of a path."""
    n = path.get("threads")
    return path["device"] if n is None else f"{path['device']} {n} thread{'s' if n != 1 else ''}"


def analyze_run(
    run_dir: str | Path, n_components: int | None = None, upto: int | None = None
) -> RunAnalysis:
    """Fit the joint space of a run's history (its steps up to ``upto``, default all) and
    compute every analysis. The 1-d perspective depends on the history the space is fitted
    on: to compare runs of different lengths, analyse them up to the same step.

    Raises InputError for a folder that is not a run or has no complete snapshot yet, or an
    ``upto`` outside the run's steps; CorruptStateError (or ConfigError) naming a damaged or
    edited file of the folder.
    """
    run_dir = Path(run_dir)
    folder = RunFolder(run_dir)
    folder.check(upto)  # a damaged part is named before any analysis starts
    cfg = folder.read_config(validate=False)
    if upto is not None and not 0 <= upto <= cfg.steps:
        # Beyond T the analysis would silently end at T and call it t = upto.
        raise InputError(
            f"the run has steps 0 to {cfg.steps}", source=str(run_dir), field="upto", value=upto
        )
    hist = load_history(folder, upto=upto, n_components=n_components)
    if hist is None:
        raise InputError("no complete evaluation snapshot yet", source=str(run_dir))
    table = hist.perspectives
    steps = sorted(int(t) for t in table["t"].unique())
    expected = [t for t in expected_snapshots(cfg) if upto is None or t <= upto]
    missing = [t for t in expected if t not in steps]
    d = hist.space.n_components_
    isomirror, iso_attrs = _isomirror(table, hist, d)
    clusters, labels = clusters_over_time(table, seed=cfg.seed)
    kernels = kernel_table(hist)
    polarization, kind = polarization_of(table, cfg, kernels)
    disp = dispersion_of(table, kernels)
    diversity = answer_diversity(hist.answers, sources=adversary_models(table, cfg))
    movement = class_movement(table)
    summary = {
        "run": cfg.name,
        "models": int(table["model"].nunique()),
        "steps_present": steps,
        "steps_missing": missing,
        "complete": not missing,
        "dimension": int(d),
        "isomirror": iso_attrs,
        "clusters_last": int(clusters["n_clusters"].iloc[-1]),
        "ari_mean": float(clusters["ari_prev"].mean()) if len(clusters) > 1 else None,
        "polarization_kind": kind,
        **{
            f"{col}_last": _number(polarization[col].iloc[-1]) if polarization is not None else None
            for col in ("polarization", "polarization_all", "polarization_kernel")
        },
        **{
            f"{col}_last": _number(disp[col].iloc[-1]) if disp is not None else None
            for col in ("spread_kernel_rel", "locality_kernel")
        },
        "class_movement": {
            str(r["class"]): {k: _number(r[k]) for k in ("displacement", "spread", "ratio")}
            for _, r in movement.iterrows()
        },
        "distinct_last": float(diversity["distinct"].iloc[-1]),
        "top_share_last": float(diversity["top_share"].iloc[-1]),
        **{
            f"{col}_last": _number(diversity[col].iloc[-1]) if col in diversity else None
            for col in ("shared", "adopted")
        },
        "compute": compute_paths(folder, upto),
    }
    if hist.databases is not None:
        summary["databases"] = _database_summary(hist.databases, table)
    return RunAnalysis(
        run_dir,
        cfg,
        table,
        isomirror,
        clusters,
        labels,
        class_trajectories(table),
        polarization,
        kind,
        steps,
        missing,
        summary,
        disp,
        diversity,
        movement,
        hist.databases,
    )


def _database_summary(databases: pd.DataFrame, table: pd.DataFrame) -> dict:
    """Per database at the last step: its ``z1`` and its distance (all dimensions) to the
    models' mean and to the nearest model."""
    zcols = [c for c in table.columns if c.startswith("z") and c[1:].isdecimal()]
    out = {}
    for name, g in databases.groupby("database"):
        last = g[g["t"] == g["t"].max()].iloc[0]
        models = table[table["t"] == last["t"]]
        if not len(models):
            continue
        here, points = last[zcols].to_numpy(float), models[zcols].to_numpy(float)
        dist = np.linalg.norm(points - here, axis=1)
        out[str(name)] = {
            "t": int(last["t"]),
            "z1": float(last["z1"]),
            "distance_to_mean": float(np.linalg.norm(points.mean(axis=0) - here)),
            "distance_to_nearest": float(dist.min()),
            "nearest": str(models["model"].iloc[int(dist.argmin())]),
        }
    return out


def _number(x) -> float | None:
    """A float for JSON (None for NaN and infinity, which JSON lacks)."""
    return float(x) if pd.notna(x) and np.isfinite(x) else None


def _isomirror(table: pd.DataFrame, hist, d: int) -> tuple[pd.DataFrame, dict]:
    """``t, psi_frobenius, psi_spectral`` and the mirror's dimensions. A variant that does
    not apply to the run (no model present throughout, as when groups join and leave; a step
    with a single model) gives NaN, not a failed analysis."""
    steps = sorted(table["t"].unique())
    out = pd.DataFrame({"t": steps})
    attrs: dict[str, int | None] = {
        "mirror_dim": None,
        "n_neighbors": None,
        "spectral_mirror_dim": None,
    }
    try:
        iso = iso_mirror(table, "frobenius")
    except InputError:
        out["psi_frobenius"] = float("nan")
    else:
        out = out.merge(iso.rename(columns={"psi": "psi_frobenius"}), on="t", how="left")
        attrs["mirror_dim"], attrs["n_neighbors"] = (
            iso.attrs["mirror_dim"],
            iso.attrs["n_neighbors"],
        )
    try:
        separate = separate_embeddings(hist.kernels, hist.points, d)
        # A step of fewer models is embedded in fewer dimensions: zeros in the others are the
        # same points (and the Procrustes fit needs no gaps).
        zcols = [c for c in separate.columns if c.startswith("z") and c[1:].isdecimal()]
        separate[zcols] = separate[zcols].fillna(0.0)
        spectral = iso_mirror(separate, "spectral")
    except InputError:
        out["psi_spectral"] = float("nan")
    else:
        out = out.merge(spectral.rename(columns={"psi": "psi_spectral"}), on="t", how="left")
        attrs["spectral_mirror_dim"] = spectral.attrs["mirror_dim"]
    return out[["t", "psi_frobenius", "psi_spectral"]], attrs


def write_analysis_table(folder: str | Path, name: str, frame: pd.DataFrame) -> Path:
    """Write ``frame`` to ``FOLDER/analysis/<name>`` (a run's or a sweep's); returns its path."""
    out = Path(folder) / ANALYSIS_DIR
    output_dir(out)
    write_parquet(out / name, frame)
    return out / name


def write_run_analysis(result: RunAnalysis) -> Path:
    """Write the tables, ``summary.json`` and the figures to ``RUN/analysis/``, as one set:
    an interrupted write leaves the previous set, or a set without ``summary.json``."""
    from .figures import clusters_png, isomirror_png, polarization_png, trajectories_png

    folder = result.run_dir / ANALYSIS_DIR
    with file_set(folder, RUN_ANALYSIS_FILES) as out:
        write_parquet(out / "perspectives.parquet", result.perspectives)
        write_csv(out / "perspectives.csv", result.perspectives)
        write_parquet(out / "isomirror.parquet", result.isomirror)
        write_parquet(out / "clusters.parquet", result.clusters)
        write_parquet(out / "cluster_labels.parquet", result.cluster_labels)
        write_parquet(out / "class_means.parquet", result.class_means)
        if result.movement is not None:
            write_parquet(out / "class_movement.parquet", result.movement)
        if result.polarization is not None:
            write_parquet(out / "polarization.parquet", result.polarization)
        if result.dispersion is not None:
            write_parquet(out / "dispersion.parquet", result.dispersion)
        if result.diversity is not None:
            write_parquet(out / "diversity.parquet", result.diversity)
        if result.databases is not None:
            write_parquet(out / "databases.parquet", result.databases)
        write_json(out / "summary.json", result.summary)
        marks = disruption_steps(result.cfg)
        trajectories_png(
            result.perspectives, out / "trajectories.png", marks=marks, databases=result.databases
        )
        isomirror_png({"": result.isomirror}, out / "isomirror.png", marks=marks)
        clusters_png({"": result.clusters}, out / "clusters.png", marks=marks)
        if result.polarization is not None:
            polarization_png(
                {"": [result.polarization]}, out / "polarization.png", kind=result.polarization_kind
            )
    return folder


def disruption_steps(cfg: RunConfig) -> list[int]:
    """Steps where the communication switches or a database edge is granted or taken away
    (drawn as vertical lines in figures)."""
    points = set(build_policy(cfg.communication, cfg).change_points)
    return sorted(points | set(database_change_points(cfg)))


# ------------------------------------------------------------------------------ sweeps
@dataclass
class SweepAnalysis:
    """The runs of a sweep, analysed, by condition (each a list over seeds)."""

    sweep_dir: Path
    record: dict
    runs: dict[str, list[RunAnalysis]]
    failed: list[dict]
    pending: list[dict]
    missing: list[dict] = field(default_factory=list)  # marked done, but no run folder


def analyze_sweep(
    sweep_dir: str | Path,
    write: bool = True,
    upto: int | None = None,
    n_components: int | None = None,
) -> SweepAnalysis:
    """Analyse every run of a sweep that has at least one snapshot, up to step ``upto``
    (default: all; then each run's ``analysis/`` is written when ``write``), each in a joint
    space of ``n_components`` dimensions (default: the elbow); failed and unfinished systems
    are listed, not fatal."""
    from ..experiments.sweep import read_sweep

    sweep_dir = Path(sweep_dir)
    record = read_sweep(sweep_dir)
    runs: dict[str, list[RunAnalysis]] = {c: [] for c in record["conditions"]}
    failed, pending = [], []
    missing = []
    for entry in record["systems"]:
        folder = sweep_dir / entry["folder"]
        if entry["status"] == "failed":
            failed.append(entry)
        elif entry["status"] != "done":
            pending.append(entry)
        if not folder.is_dir() or RunFolder(folder).last_complete_step() < 0:
            if entry["status"] == "done":
                missing.append(entry)
            continue
        check_system(read_run_config(folder), entry, sweep_dir)  # before the long part
        result = analyze_run(folder, n_components=n_components, upto=upto)
        result.summary["seed"] = entry["seed"]
        if write and upto is None:
            write_run_analysis(result)
        runs[entry["condition"]].append(result)
    return SweepAnalysis(sweep_dir, record, runs, failed, pending, missing)


def check_system(cfg: RunConfig, entry: dict, sweep_dir: Path) -> None:
    """Raise CorruptStateError if the run in a system's folder (config ``cfg``) is not the
    one the sweep record's ``entry`` names: another seed's, another condition's or another
    sweep's (a moved or copied folder), whose numbers would count under this system. The
    record names each system's run (``run``); in a record written before it did, or by
    hand, only the seed is checked."""
    where = f"system {entry['condition']} seed {entry['seed']} names folder {entry['folder']!r}"
    source = str(sweep_dir / "sweep.json")
    if cfg.seed != entry["seed"]:
        raise CorruptStateError(f"{where}, whose run has seed {cfg.seed}", source=source)
    expected = entry.get("run")
    if expected is not None and cfg.name != expected:
        raise CorruptStateError(
            f"{where}, whose run is {cfg.name!r}, not {expected!r} (a folder moved or copied "
            "from elsewhere)",
            source=source,
        )


def sweep_table(result: SweepAnalysis, metric: str) -> pd.DataFrame:
    """One long table of a per-step metric over the sweep's runs: ``condition, seed, t, ...``.

    ``metric``: ``polarization``, ``clusters``, ``isomirror``, ``dispersion`` or
    ``diversity``.
    """
    frames = []
    for condition, runs in result.runs.items():
        for run in runs:
            frame = getattr(run, metric)
            if frame is None:
                continue
            frames.append(frame.assign(condition=condition, seed=run.cfg.seed))
    if not frames:
        return pd.DataFrame()
    return pd.concat(frames, ignore_index=True)


def sweep_polarization(result: SweepAnalysis) -> tuple[dict[str, list[pd.DataFrame]], str | None]:
    """Each condition's polarization tables (one per seed) and their kind; empty if none."""
    pol = {
        c: [r.polarization for r in runs if r.polarization is not None]
        for c, runs in result.runs.items()
    }
    kinds = [r.polarization_kind for runs in result.runs.values() for r in runs]
    return {c: v for c, v in pol.items() if v}, next((k for k in kinds if k), None)


def first_runs(result: SweepAnalysis) -> dict[str, RunAnalysis]:
    """The first analysed run of every condition that has one."""
    return {c: runs[0] for c, runs in result.runs.items() if runs}


def write_sweep_analysis(result: SweepAnalysis) -> Path:
    """Write ``SWEEP/analysis/``: long tables over runs, a summary and the comparison figures,
    as one set (as ``write_run_analysis`` does)."""
    from .figures import clusters_png, isomirror_png, polarization_png

    folder = result.sweep_dir / ANALYSIS_DIR
    with file_set(folder, SWEEP_ANALYSIS_FILES) as out:
        for metric in ("polarization", "clusters", "isomirror", "dispersion", "diversity"):
            table = sweep_table(result, metric)
            if not table.empty:
                write_parquet(out / f"{metric}.parquet", table)
        summary = {
            "preset": result.record.get("preset"),
            "scale": result.record.get("scale"),
            "conditions": {c: [r.summary for r in runs] for c, runs in result.runs.items() if runs},
            "failed": result.failed,
            "pending": [f"{e['condition']} seed {e['seed']}" for e in result.pending],
        }
        write_json(out / "summary.json", json.loads(json.dumps(summary, default=str)))
        pol, kind = sweep_polarization(result)
        if pol:
            polarization_png(pol, out / "polarization.png", kind=kind)
            if all("polarization_kernel" in f for tables in pol.values() for f in tables):
                polarization_png(
                    pol, out / "polarization-kernel.png", kind=kind, column="polarization_kernel"
                )
        first = first_runs(result)
        if first:
            marks = sorted({m for r in first.values() for m in disruption_steps(r.cfg)})
            isomirror_png(
                {c: r.isomirror for c, r in first.items()}, out / "isomirror.png", marks=marks
            )
            clusters_png(
                {c: r.clusters for c, r in first.items()}, out / "clusters.png", marks=marks
            )
    return folder
