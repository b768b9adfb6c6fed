"""Our reproduction of the paper's case studies: the numbers and figures of ``docs/results.md``,
regenerated from the sweep folders.

The prose of the results page is written by hand; the tables between the markers
``<!-- BEGIN name -->`` and ``<!-- END name -->`` are rewritten from the runs by
``perspectives results``, and the figures are copied next to it.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import InputError
from ..reporting.run_analysis import (
    ANALYSIS_DIR,
    SweepAnalysis,
    analyze_sweep,
    disruption_steps,
    write_sweep_analysis,
)
from ..store import file_set, output_dir, write_text
from .page import read_blocks, replace_block
from .sweep import read_sweep
from .verdicts import (
    CASE_STUDIES,
    COLLAPSED_NOTE,
    COLLAPSED_SHARE,
    UNFINISHED_NOTES,
    VERDICTS_BLOCK,
    verdict_table,
)


def _fmt(values: list[float]) -> str:
    """Mean with the range over seeds, e.g. ``0.42 (0.30–0.55)``."""
    v = np.array([x for x in values if x is not None and np.isfinite(x)], dtype=float)
    if v.size == 0:
        return "–"
    if v.size == 1:
        return f"{v[0]:.2f}"
    return f"{v.mean():.2f} ({v.min():.2f}–{v.max():.2f})"


def _markdown(frame: pd.DataFrame) -> str:
    if frame.empty:
        return "No step of any run is complete yet."
    cols = list(frame.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in frame.to_numpy()]
    return "\n".join(lines)


def _seeds_note(result: SweepAnalysis) -> str:
    n = {c: len(r) for c, r in result.runs.items()}
    reached = {
        (c, r.summary["seed"]): (max(r.steps, default=-1), max(r.steps + r.missing_steps))
        for c, rs in result.runs.items()
        for r in rs
        if r.steps or r.missing_steps
    }
    pending = []
    for e in result.pending:
        last, T = reached.get((e["condition"], e["seed"]), (-1, None))
        upto = f" (complete to t = {last} of {T}; the columns at T are at t = {last})" if T else ""
        pending.append(f"{e['condition']} seed {e['seed']}{upto}")
    failed = [f"{e['condition']} seed {e['seed']}" for e in result.failed]
    text = f"Runs per condition: {', '.join(f'{c} {k}' for c, k in n.items())}."
    if pending:
        text += f" {UNFINISHED_NOTES[0]} {', '.join(pending)}."
    if failed:
        text += f" {UNFINISHED_NOTES[1]} {', '.join(failed)}."
    missing = [f"{e['condition']} seed {e['seed']}" for e in result.missing]
    if missing:
        text += f" Missing (done, but the run folder is gone): {', '.join(missing)}."
    collapsed = [
        f"{c} seed {r.summary['seed']} ({how})"
        for c, rs in result.runs.items()
        for r in rs
        if (how := _collapse(r.summary))
    ]
    if collapsed:
        text += (
            f" {COLLAPSED_NOTE} (at T, {COLLAPSED_SHARE:.0%} or more of the evaluation answers "
            "are one text, or, an adversary's aside, ones another model and no adversary gave "
            f"word for word to the same question; their rows are not judged): "
            f"{', '.join(collapsed)}."
        )
    return text


def _collapse(summary: dict) -> str | None:
    """How a run's answers collapsed by its last step (``one text 0.90``, ``shared 0.85``),
    or None."""
    for key, what in (("top_share_last", "one text"), ("shared_last", "shared")):
        share = summary.get(key)
        if share is not None and share >= COLLAPSED_SHARE:
            return f"{what} {share:.2f}"
    return None


def cs1_table(result: SweepAnalysis) -> str:
    """Clusters, ARI and iso-mirror movement before and after the disruption step t*."""
    rows = []
    everything = [run for runs in result.runs.values() for run in runs]
    # One t* for every condition, so that the conditions are compared over the same periods.
    marks = sorted({m for run in everything for m in disruption_steps(run.cfg)})
    t_star = marks[0] if marks else max((r.steps[-1] for r in everything), default=0) // 2
    for condition, runs in result.runs.items():
        if not runs:
            continue
        keys = ("k", "kc", "ari_b", "ari_a", "iso_b", "iso_a", "spread", "local", "distinct")
        keys += ("top",)
        stats: dict[str, list[float]] = {k: [] for k in keys}
        for run in runs:
            c, iso = run.clusters, run.isomirror
            stats["k"].append(float(c["n_clusters"].iloc[-1]))
            after = c[c["t"] >= t_star]["n_clusters"].to_numpy()
            if len(after) > 1:
                stats["kc"].append(float(np.mean(after[1:] != after[:-1])))
            stats["ari_b"].append(float(c[(c["t"] > 0) & (c["t"] < t_star)]["ari_prev"].mean()))
            stats["ari_a"].append(float(c[c["t"] > t_star]["ari_prev"].mean()))
            psi = iso.set_index("t")["psi_frobenius"]
            span = float(psi.max() - psi.min()) or 1.0
            # Mean |step| of psi, in units of its whole range: how much the system still moves.
            before = psi[psi.index <= t_star].diff().abs().mean() / span
            after = psi[psi.index >= t_star].diff().abs().mean() / span
            stats["iso_b"].append(float(before))
            stats["iso_a"].append(float(after))
            if run.dispersion is not None:
                disp = run.dispersion.set_index("t")
                stats["spread"].append(float(disp["spread_kernel_rel"].iloc[-1]))
                at_star = disp["locality_kernel"].get(t_star, float("nan"))
                stats["local"].append(float(disp["locality_kernel"].iloc[-1] / at_star))
            if run.diversity is not None:
                stats["distinct"].append(float(run.diversity["distinct"].iloc[-1]))
                stats["top"].append(float(run.diversity["top_share"].iloc[-1]))
        rows.append(
            {
                "condition": condition,
                "runs": len(runs),
                "clusters at T": _fmt(stats["k"]),
                f"count changes, t > {t_star}": _fmt(stats["kc"]),
                f"mean ARI, t < {t_star}": _fmt(stats["ari_b"]),
                f"mean ARI, t > {t_star}": _fmt(stats["ari_a"]),
                f"iso-mirror step, t ≤ {t_star}": _fmt(stats["iso_b"]),
                f"iso-mirror step, t ≥ {t_star}": _fmt(stats["iso_a"]),
                "spread at T": _fmt(stats["spread"]),
                f"locality, T ÷ t = {t_star}": _fmt(stats["local"]),
                "distinct answers at T": _fmt(stats["distinct"]),
                "most common answer at T": _fmt(stats["top"]),
            }
        )
    note = (
        "Count changes: the fraction of the steps after t* at which the number of clusters "
        "differs from the step before (0: it has stabilised). "
        "Iso-mirror step: the mean |ψ(t) − ψ(t−1)| over the period, as a fraction of ψ's whole "
        "range in that run (0: the system stands still). Spread: the models' mean distance "
        "to their population mean, between the data kernels (no fitted space), divided by the "
        "same at t = 0 (below 1: the population converges). Locality: the mean distance to "
        "the nearest other model divided by the spread; it falls when the models gather in "
        "local sinks rather than converging as a whole (at T divided by at t*). Distinct "
        "answers: the fraction of the evaluation answers at T that are distinct texts; most "
        "common answer: the fraction that are the most common one (near 1: the population "
        "repeats one answer, whatever the question). Mean (range) over seeds. "
    )
    return _markdown(pd.DataFrame(rows)) + "\n\n" + note + _seeds_note(result)


def _polarization_stats(runs, column: str = "polarization") -> tuple[list[float], list[float]]:
    """Per run: the polarization at the last step, and its mean over t >= 1."""
    last, mean = [], []
    for run in runs:
        if run.polarization is None or column not in run.polarization:
            continue
        p = run.polarization[column]
        last.append(float(p.iloc[-1]))
        mean.append(float(p.iloc[1:].mean()) if len(p) > 1 else float("nan"))
    return last, mean


def cs2_table(result: SweepAnalysis) -> str:
    """Polarization (non-adversaries vs the adversary) per targets x attack period: at T and
    averaged over the run (lower: captured sooner), on the 1-d perspective (the paper's), in
    the whole space and between the data kernels."""
    rows = []
    for condition, runs in result.runs.items():
        if not runs:
            continue
        m = re.match(r"targets-(\d+)(?:-every-(\d+))?", condition)
        last, mean = _polarization_stats(runs)
        last_all, _ = _polarization_stats(runs, "polarization_all")
        last_kernel, mean_kernel = _polarization_stats(runs, "polarization_kernel")
        rows.append(
            {
                "targets": m.group(1) if m else condition,
                "attack every": m.group(2) if m and m.group(2) and m.group(1) != "0" else "–",
                "runs": len(runs),
                "at T": _fmt(last),
                "mean, t ≥ 1": _fmt(mean),
                "whole space, at T": _fmt(last_all),
                "data kernels, at T": _fmt(last_kernel),
                "data kernels, mean t ≥ 1": _fmt(mean_kernel),
            }
        )
    note = (
        "Polarization: |mean of the non-adversarial models − the adversary| on the 1-d "
        "perspective, divided by the same at t = 0 (1: no change; 0: captured). The mean over "
        "t ≥ 1 is lower when the system is pulled in sooner. Whole space: the same ratio for "
        "the Euclidean distance in all d dimensions of the perspective space. Data kernels: "
        "the same ratio for the Frobenius distance between the non-adversaries' mean data "
        "kernel and the adversary's (no fitted space, no chosen dimension). Mean (range) over "
        "seeds. With 0 targets the attack period does not matter (one condition). "
    )
    return _markdown(pd.DataFrame(rows)) + "\n\n" + note + _seeds_note(result)


def cs3_table(result: SweepAnalysis) -> str:
    """Two-class polarization at T and averaged over the run, per condition."""
    rows = []
    for condition, runs in result.runs.items():
        if not runs:
            continue
        last, mean = _polarization_stats(runs)
        last_all, _ = _polarization_stats(runs, "polarization_all")
        last_kernel, _ = _polarization_stats(runs, "polarization_kernel")
        rows.append(
            {
                "condition": condition,
                "runs": len(runs),
                "polarization at T": _fmt(last),
                "mean polarization, t ≥ 1": _fmt(mean),
                "per seed at T": ", ".join(f"{x:.2f}" for x in last),
                "whole space, at T": _fmt(last_all),
                "data kernels, at T": _fmt(last_kernel),
            }
        )
    note = (
        "Polarization: |class mean A − class mean B| on the 1-d perspective, divided by the "
        "same at t = 0 (the paper: about 15× on average for intra-class only, near 0 for "
        "unrestricted). Whole space: the same ratio for the Euclidean distance between the "
        "class means in all d dimensions of the perspective space. Data kernels: the same "
        "ratio for the Frobenius distance between the classes' mean data kernels (the "
        "embedded answers themselves: no fitted space, no chosen dimension). "
    )
    return _markdown(pd.DataFrame(rows)) + "\n\n" + note + _seeds_note(result)


def forum_table(result: SweepAnalysis) -> str:
    """The shared forum: two-class polarization per condition (at t = 3, the last step the
    closed forum is read, and at T) and the forum's distance to the models' mean at T."""
    rows = []
    for condition, runs in result.runs.items():
        if not runs:
            continue
        at3 = [_at(r.polarization, 3, "polarization") for r in runs]
        at3_kernel = [_at(r.polarization, 3, "polarization_kernel") for r in runs]
        last, mean = _polarization_stats(runs)
        last_kernel, _ = _polarization_stats(runs, "polarization_kernel")
        forum = [
            d["distance_to_mean"] for r in runs for d in (r.summary.get("databases") or {}).values()
        ]
        rows.append(
            {
                "condition": condition,
                "runs": len(runs),
                "polarization at t = 3": _fmt(at3),
                "at T": _fmt(last),
                "mean, t ≥ 1": _fmt(mean),
                "data kernels, t = 3": _fmt(at3_kernel),
                "data kernels, at T": _fmt(last_kernel),
                "forum to the models' mean, at T": _fmt(forum),
            }
        )
    note = (
        "Polarization: |class mean A − class mean B| on the 1-d perspective, divided by the "
        "same at t = 0 (below 1: the classes drawn together). Data kernels: the same ratio for "
        "the Frobenius distance between the classes' mean data kernels. The forum's distance "
        "is Euclidean, in all dimensions of the models' perspective space. "
    )
    return _markdown(pd.DataFrame(rows)) + "\n\n" + note + _seeds_note(result)


def _at(table: pd.DataFrame | None, t: int, column: str) -> float | None:
    if table is None or column not in table or not (table["t"] == t).any():
        return None
    return float(table.loc[table["t"] == t, column].iloc[0])


TABLES: dict[str, Callable[[SweepAnalysis], str]] = {
    "cs1-disruption": cs1_table,
    "cs2-adversary": cs2_table,
    "cs3-polarization": cs3_table,
    "shared-forum": forum_table,
}


def _sweep_folder(runs_dir: Path, name: str, scale: str) -> Path | None:
    """The sweep of a block: ``runs_dir/name`` (e.g. an ablation) or ``runs_dir/name-scale``,
    of the given scale."""
    for folder in (runs_dir / name, runs_dir / f"{name}-{scale}"):
        if (folder / "sweep.json").exists() and read_sweep(folder).get("scale") in (scale, None):
            return folder
    return None


def _table_for(name: str, folder: Path) -> Callable[[SweepAnalysis], str] | None:
    """The table of the case study named by the sweep's preset, or by the block's name."""
    preset = str(read_sweep(folder).get("preset") or "")
    for candidate in (Path(preset).stem, preset, name):
        for study in TABLES:
            if candidate.startswith(study):
                return TABLES[study]
    return None


def _publish(result: SweepAnalysis, name: str, figures: Path) -> None:
    """Write the sweep's analysis and copy its figures next to the page as ``name-*.png``.
    Raises InputError naming the path that cannot be written (or read)."""
    try:
        write_sweep_analysis(result)
        output_dir(figures)
        for png in sorted((result.sweep_dir / ANALYSIS_DIR).glob("*.png")):
            shutil.copyfile(png, figures / f"{name}-{png.name}")
        for condition, runs in result.runs.items():
            if runs:
                src = runs[0].run_dir / ANALYSIS_DIR / "trajectories.png"
                shutil.copyfile(src, figures / f"{name}-trajectories-{condition}.png")
    except OSError as exc:
        raise InputError(
            f"cannot write the analysis and figures of block {name!r} ({exc.strerror or exc})",
            source=str(exc.filename or figures),
        ) from None


def _judge(text: str, found: list[str], source: str) -> str:
    """The page with its verdict block (if it has one) judged anew on all its tables, so
    blocks whose runs are gone still count."""
    if not any(b.name == VERDICTS_BLOCK for b in read_blocks(text, source)):
        return text
    found.append(VERDICTS_BLOCK)
    return replace_block(text, VERDICTS_BLOCK, verdict_table(text, source), source=source)


def _sweep_of_block(folder: Path, name: str, upto: int | None, doc: Path):
    """The table function and analysis of the sweep in ``folder`` behind block ``name``, or
    None (with a warning) when the block is to be left as it is: the folder is not a sweep
    of a case study, or no run of it has a complete step yet."""
    table = _table_for(name, folder)
    if table is None:
        warnings.warn(
            f"{folder}: not a sweep of a case study ({', '.join(CASE_STUDIES)}); "
            f"block {name!r} left as it is",
            stacklevel=3,
        )
        return None
    try:
        result = analyze_sweep(folder, upto=upto)
    except InputError as exc:
        if exc.field != "upto":
            raise
        raise InputError(
            f"block {name!r} asks for upto={upto}, but {exc.source}: {exc.message}",
            source=str(doc),
        ) from None
    if not any(run.steps for runs in result.runs.values() for run in runs):
        # A sweep started again (or just begun) in the folder of one the page reports would
        # otherwise wipe its numbers, and the verdicts' evidence with them.
        warnings.warn(
            f"{folder}: no step of any run is complete yet; block {name!r} left as it is",
            stacklevel=3,
        )
        return None
    return table, result


def _read_page(doc: Path) -> str:
    if doc.is_dir():
        raise InputError("a folder, not a file (the results page to update)", source=str(doc))
    if not doc.is_file():
        raise InputError("no such file (the results page to update)", source=str(doc))
    try:
        return doc.read_bytes().decode("utf-8")  # as it is: CRLF pages stay CRLF
    except UnicodeDecodeError:
        raise InputError("not UTF-8 text", source=str(doc)) from None
    except OSError as exc:
        raise InputError(f"cannot read it ({exc.strerror or exc})", source=str(doc)) from None


def _write_page(doc: Path, text: str) -> None:
    try:
        write_text(doc, text)
    except OSError as exc:
        raise InputError(
            f"cannot write the results page ({exc.strerror or exc})", source=str(doc)
        ) from None


def regenerate(runs_dir: str | Path, doc: str | Path, scale: str = "cpu") -> list[str]:
    """Analyse the sweep behind every block of ``doc``, rewrite the block and copy the sweep's
    figures to ``<doc folder>/figures/<block>-*.png``.

    A block ``<!-- BEGIN name -->`` reads the sweep folder ``runs_dir/name`` if there is one
    (an ablation, say), else ``runs_dir/name-scale`` (a case study's sweep); its table is the
    one of the sweep's preset. ``<!-- BEGIN name upto=N -->`` analyses the runs' steps up to
    N only (to compare with a shorter sweep; no figures). Blocks without a sweep are left
    alone; so, with a warning, are blocks whose sweep has no complete step yet. Then the
    block ``<!-- BEGIN verdicts -->``, if the page has one, is judged anew on all the page's
    tables (``verdicts.verdict_table``). Returns the blocks rewritten. Raises InputError if
    there are none.
    """
    runs_dir, doc = Path(runs_dir), Path(doc)
    if not runs_dir.is_dir():
        what = "not a folder" if runs_dir.exists() else "no such folder"
        raise InputError(f"{what} (it should hold the sweeps)", source=str(runs_dir))
    text = _read_page(doc)
    found, kept, figures = [], [], []
    blocks = {(b.name, b.upto): None for b in read_blocks(text, str(doc))}
    for name, upto in blocks:
        folder = _sweep_folder(runs_dir, name, scale)
        if folder is None:
            continue
        sweep = _sweep_of_block(folder, name, upto, doc)
        if sweep is None:
            kept.append(name)
            continue
        table, result = sweep
        text = replace_block(text, name, table(result), upto, source=str(doc))
        found.append(name if upto is None else f"{name} (t <= {upto})")
        if upto is None:
            figures.append((result, name))
    swept = bool(found)
    text = _judge(text, found, str(doc))
    names = dict.fromkeys(n for n, _ in blocks if n != VERDICTS_BLOCK)
    looked = ", ".join(f"{n} or {n}-{scale}" for n in names) or "nothing: the page has no blocks"
    if not found:
        unread = ", ".join(dict.fromkeys(kept))
        what = f"the page is unchanged: no block's sweep could be read ({unread})"
        raise InputError(
            what
            if kept
            else f"no sweep folder for any block of the page (scale {scale!r}; looked for "
            f"{looked})",
            source=str(runs_dir),
        )
    if not swept and not kept:
        warnings.warn(
            f"{runs_dir}: no sweep folder for any block (looked for {looked}); only the "
            "verdicts were judged anew, on the page's tables",
            stacklevel=2,
        )
    # Only once every block is read, and staged beside the figures until the page is
    # written: a block or a page that fails leaves page and figures as they were.
    to = doc.parent / "figures"
    staged = file_set(to, last=None) if figures else contextlib.nullcontext(to)
    with staged as staging:
        for result, name in figures:
            _publish(result, name, staging)
        _write_page(doc, text)
    return found
