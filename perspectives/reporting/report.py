"""A self-contained HTML report of a run or a sweep: interactive plotly charts (the library is
embedded, so the page opens offline), the config, every metric, and the PNG figures beside it.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
from matplotlib.colors import to_hex
from plotly.offline import get_plotlyjs
from plotly.subplots import make_subplots

from ..analysis import collapse_note
from ..config import dump_yaml
from ..errors import PerspectivesError
from ..simulation.rundir import RunFolder
from ..store import write_text
from .figures import PALETTE, polarization_panels
from .monitor import Monitor, event_line, monitor_run
from .run_analysis import (
    ANALYSIS_DIR,
    RunAnalysis,
    SweepAnalysis,
    compute_where,
    disruption_steps,
    first_runs,
    sweep_polarization,
)

REPORT_FILE = "report.html"


def _rgba(rgb, alpha: float) -> str:
    r, g, b = (round(c * 255) for c in rgb)
    return f"rgba({r},{g},{b},{alpha})"


def _layout(fig: go.Figure, title: str, height: int = 420) -> go.Figure:
    fig.update_layout(
        title=title, height=height, template="plotly_white", margin=dict(l=60, r=20, t=50, b=45)
    )
    return fig


def _vlines(fig: go.Figure, marks: list[int], **kw) -> None:
    for m in marks:
        fig.add_vline(x=m, line_dash="dash", line_color="#555", **kw)


# ----------------------------------------------------------------------------- charts
def trajectories_chart(
    table: pd.DataFrame,
    title: str,
    marks: list[int] = (),
    databases: pd.DataFrame | None = None,
) -> go.Figure:
    """z1 of every model over time (thin), class means (bold) and the databases placed in
    the space (black, dashed)."""
    fig = go.Figure()
    classes = sorted(table["class"].astype(str).unique())
    colors = {c: to_hex(PALETTE[i % len(PALETTE)]) for i, c in enumerate(classes)}
    for model, g in table.sort_values("t").groupby("model"):
        c = str(g["class"].iloc[0])
        fig.add_trace(
            go.Scatter(
                x=g["t"],
                y=g["z1"],
                mode="lines",
                name=str(model),
                legendgroup=c,
                line=dict(color=colors[c], width=1),
                opacity=0.5,
                showlegend=False,
                hovertemplate=f"{model}<br>t=%{{x}}<br>z1=%{{y:.3f}}<extra></extra>",
            )
        )
    for c in classes:
        mean = table[table["class"].astype(str) == c].groupby("t")["z1"].mean()
        fig.add_trace(
            go.Scatter(
                x=mean.index,
                y=mean.to_numpy(),
                mode="lines",
                name=f"{c or 'models'} (mean)",
                legendgroup=c,
                line=dict(color=colors[c], width=4),
            )
        )
    for name, g in () if databases is None else databases.sort_values("t").groupby("database"):
        fig.add_trace(
            go.Scatter(
                x=g["t"],
                y=g["z1"],
                mode="lines",
                name=f"database {name}",
                line=dict(color="black", width=3, dash="dash"),
                hovertemplate=f"database {name}<br>t=%{{x}}<br>z1=%{{y:.3f}}<extra></extra>",
            )
        )
    _vlines(fig, list(marks))
    fig.update_xaxes(title="time step t")
    fig.update_yaxes(title="perspective (z1)")
    return _layout(fig, title)


def isomirror_chart(runs: dict[str, pd.DataFrame], marks: list[int] = ()) -> go.Figure:
    fig = go.Figure()
    for i, (label, iso) in enumerate(runs.items()):
        color = to_hex(PALETTE[i % len(PALETTE)])
        name = f"{label}: " if label else ""
        fig.add_trace(
            go.Scatter(
                x=iso["t"],
                y=iso["psi_frobenius"],
                name=f"{name}Frobenius",
                line=dict(color=color, width=3),
            )
        )
        fig.add_trace(
            go.Scatter(
                x=iso["t"],
                y=iso["psi_spectral"],
                name=f"{name}spectral",
                line=dict(color=color, width=1.5, dash="dot"),
            )
        )
    _vlines(fig, list(marks))
    fig.update_xaxes(title="time step t")
    fig.update_yaxes(title="iso-mirror ψ(t)")
    return _layout(fig, "Iso-mirror")


def clusters_chart(runs: dict[str, pd.DataFrame], marks: list[int] = ()) -> go.Figure:
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08)
    for i, (label, c) in enumerate(runs.items()):
        color = to_hex(PALETTE[i % len(PALETTE)])
        fig.add_trace(
            go.Scatter(
                x=c["t"],
                y=c["n_clusters"],
                name=label or "clusters",
                line=dict(color=color, width=2, shape="hvh"),
            ),
            row=1,
            col=1,
        )
        fig.add_trace(
            go.Scatter(
                x=c["t"],
                y=c["ari_prev"],
                name=f"{label} ARI" if label else "ARI",
                mode="lines+markers",
                line=dict(color=color, width=2),
                showlegend=False,
            ),
            row=2,
            col=1,
        )
    _vlines(fig, list(marks))
    fig.update_yaxes(title="number of clusters", row=1, col=1, dtick=1)
    fig.update_yaxes(title="ARI(t, t−1)", row=2, col=1, range=[-0.1, 1.05])
    fig.update_xaxes(title="time step t", row=2, col=1)
    return _layout(fig, "Clusters (Gaussian mixtures, BIC) and their stability", height=520)


def polarization_chart(runs: dict[str, list[pd.DataFrame]], kind: str | None) -> go.Figure:
    panels = polarization_panels(list(runs))
    fig = make_subplots(
        rows=1, cols=len(panels), shared_yaxes=True, subplot_titles=[t or " " for t in panels]
    )
    colors = {c: PALETTE[i % len(PALETTE)] for i, c in enumerate(runs)}
    shown: set[str] = set()
    for col, conds in enumerate(panels.values(), start=1):
        for c in conds:
            wide = pd.concat([f.set_index("t")["polarization"] for f in runs[c]], axis=1)
            wide = wide.sort_index()
            mean, lo, hi = wide.mean(axis=1), wide.min(axis=1), wide.max(axis=1)
            if wide.shape[1] > 1:
                band = go.Scatter(
                    x=list(wide.index) + list(wide.index[::-1]),
                    y=list(hi) + list(lo[::-1]),
                    fill="toself",
                    mode="lines",
                    line=dict(width=0),
                    fillcolor=_rgba(colors[c], 0.18),
                    hoverinfo="skip",
                    showlegend=False,
                )
                fig.add_trace(band, row=1, col=col)
            line = go.Scatter(
                x=mean.index,
                y=mean.to_numpy(),
                name=f"{c} (n={wide.shape[1]})",
                mode="lines",
                line=dict(color=to_hex(colors[c]), width=3),
                legendgroup=c,
                showlegend=c not in shown,
            )
            shown.add(c)
            fig.add_trace(line, row=1, col=col)
    fig.update_xaxes(title="time step t")
    fig.update_yaxes(title=f"polarization{f' ({kind})' if kind else ''}", row=1, col=1)
    return _layout(fig, "Polarization (mean over seeds; band: range)", height=440)


# ----------------------------------------------------------------------------- page
_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1100px; color: #222; }
h1 { margin-bottom: 0.2rem; } .sub { color: #666; margin-top: 0; }
table { border-collapse: collapse; margin: 0.5rem 0 1.5rem; font-size: 0.9rem; }
td, th { border: 1px solid #ddd; padding: 0.25rem 0.6rem; text-align: right; }
th { background: #f4f4f4; } td:first-child, th:first-child { text-align: left; }
pre { background: #f7f7f7; padding: 0.8rem; overflow-x: auto; font-size: 0.8rem; }
.warn { background: #fff4d6; border-left: 4px solid #e0a800; padding: 0.5rem 0.8rem; }
.chart { margin: 1rem 0 2rem; }
.pngs img { max-width: 48%; margin: 0.3rem; border: 1px solid #eee; }
"""


def _page(title: str, subtitle: str, body: list[str]) -> str:
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style>"
        f"<script type='text/javascript'>{get_plotlyjs()}</script></head><body>"
        f"<h1>{html.escape(title)}</h1><p class='sub'>{html.escape(subtitle)}</p>"
        + "\n".join(body)
        + "</body></html>\n"
    )


def _chart(fig: go.Figure, div_id: str) -> str:
    inner = fig.to_html(
        full_html=False,
        include_plotlyjs=False,
        div_id=div_id,
        config={"displaylogo": False, "responsive": True},
    )
    return f"<div class='chart'>{inner}</div>"


def _table(frame: pd.DataFrame, digits: int = 3) -> str:
    return frame.to_html(
        index=False, float_format=lambda x: f"{x:.{digits}f}", border=0, na_rep="–"
    )


def _pngs(folder: Path, rel: str) -> str:
    imgs = [
        f"<a href='{rel}/{p.name}'><img src='{rel}/{p.name}' alt='{p.stem}'></a>"
        for p in sorted(folder.glob("*.png"))
    ]
    return "<div class='pngs'>" + "".join(imgs) + "</div>" if imgs else ""


def _warnings_html(result: RunAnalysis) -> str:
    """Warnings to read the page with: missing steps, a population repeating one answer."""
    notes = []
    collapsed = collapse_note(result.diversity) if result.diversity is not None else None
    if collapsed:
        notes.append(f"<p class='warn'>Collapsed: {html.escape(collapsed)}.</p>")
    if result.missing_steps:
        miss = result.missing_steps
        notes.append(
            f"<p class='warn'>Incomplete run: analysed the complete steps t = {result.steps[0]}.."
            f"{result.steps[-1]}; {len(miss)} snapshot(s) missing (t = {miss[0]}..{miss[-1]}).</p>"
        )
    return "".join(notes)


def changes_chart(monitor: Monitor) -> go.Figure:
    """Each charted series with its band (shaded), its alarms (red crosses) and the change
    points found in it or in the whole trajectory (dotted lines)."""
    names = list(dict.fromkeys(monitor.charts["series"]))
    fig = make_subplots(rows=len(names), cols=1, shared_xaxes=True, subplot_titles=names)
    for i, name in enumerate(names, start=1):
        c = monitor.charts[monitor.charts["series"] == name]
        fig.add_trace(
            go.Scatter(x=c["t"], y=c["upper"], mode="lines", line=dict(width=0), showlegend=False),
            row=i,
            col=1,
        )
        fig.add_trace(
            go.Scatter(
                x=c["t"],
                y=c["lower"],
                mode="lines",
                fill="tonexty",
                fillcolor="rgba(120,120,120,0.2)",
                line=dict(width=0),
                name="band",
                showlegend=i == 1,
            ),
            row=i,
            col=1,
        )
        fig.add_trace(
            go.Scatter(
                x=c["t"],
                y=c["statistic"],
                line=dict(color=to_hex(PALETTE[0]), width=2),
                name="statistic",
                showlegend=i == 1,
            ),
            row=i,
            col=1,
        )
        hit = c[c["alarm"]]
        fig.add_trace(
            go.Scatter(
                x=hit["t"],
                y=hit["statistic"],
                mode="markers",
                marker=dict(color="#c00", symbol="x", size=10),
                name="alarm",
                showlegend=i == 1,
            ),
            row=i,
            col=1,
        )
    for t in monitor.events.loc[monitor.events["kind"] == "change point", "t"].unique():
        fig.add_vline(x=t, line_dash="dot", line_color="#c00")
    fig.update_xaxes(title="time step t", row=len(names), col=1)
    return _layout(fig, "Control charts and change points", height=220 * len(names) + 80)


def control_chart(table: pd.DataFrame) -> go.Figure:
    """A run against its control (``analysis/control.parquet``): the learners' distance to
    their namesakes in the control (in units of its initial spread) and how much closer they
    came to each non-learning model; red where the energy test rejects, dotted lines at the
    steps the run exposed its learners to a non-learning model (without any, one at the first
    step its graph differs from the control's: a disruption)."""
    pulls = [c.split(":", 1)[1] for c in table.columns if c.startswith("pull_rel:")]
    titles = ["distance to the control (x initial spread)"] + [
        f"closer to {m} than the control (%)" for m in pulls
    ]
    fig = make_subplots(rows=len(titles), cols=1, shared_xaxes=True, subplot_titles=titles)
    series = [table["distance_rel"]] + [-100 * table[f"pull_rel:{m}"] for m in pulls]
    hit = table["reject"].to_numpy(bool)
    for i, y in enumerate(series, start=1):
        fig.add_trace(
            go.Scatter(
                x=table["t"],
                y=y,
                line=dict(color=to_hex(PALETTE[0]), width=2),
                name="run - control",
                showlegend=i == 1,
            ),
            row=i,
            col=1,
        )
        fig.add_trace(
            go.Scatter(
                x=table["t"][hit],
                y=y[hit],
                mode="markers",
                marker=dict(color="#c00", size=9),
                name="energy test rejects",
                showlegend=i == 1,
            ),
            row=i,
            col=1,
        )
    exposed = table.loc[table["exposed"].astype(bool), "t"] if "exposed" in table else []
    for t in exposed:
        fig.add_vline(x=t, line_dash="dot", line_color="#888")
    if not len(exposed) and table.get("graph_differs", pd.Series(dtype=bool)).any():
        onset = table.loc[table["graph_differs"].astype(bool), "t"].min()
        fig.add_vline(
            x=onset, line_dash="dot", line_color="#888", annotation_text="graph differs from here"
        )
    fig.update_xaxes(title="time step t", row=len(titles), col=1)
    return _layout(fig, "Against the control", height=220 * len(titles) + 80)


def _control_html(result: RunAnalysis) -> list[str]:
    """The run against its control, when ``perspectives monitor --control`` wrote one."""
    from .control import CONTROL_FILE

    path = result.run_dir / ANALYSIS_DIR / CONTROL_FILE
    if not path.exists():
        return []
    try:
        table = pd.read_parquet(path)
        missing = {"control", "t", "distance_rel", "reject"} - set(table.columns)
    except Exception as exc:  # a derived file: say so and go on, the rest of the page stands
        missing, reason = None, f"{type(exc).__name__}: {exc}"
    if missing is None or missing or table.empty:
        why = (
            reason
            if missing is None
            else f"columns missing: {sorted(missing)}"
            if missing
            else "empty"
        )
        return [
            f"<p class='warn'>{html.escape(str(path))} cannot be read ({html.escape(why)}); "
            "run <code>perspectives monitor RUN --control CONTROL</code> again.</p>"
        ]
    control = html.escape(str(table["control"].iloc[0]))
    return [
        "<h3>Against the control</h3>",
        f"<p>Step by step against the control run <code>{control}</code> (written by "
        "<code>perspectives monitor --control</code>): the learning models' distance to "
        "their namesakes there and how much closer they came to each model that does not "
        "learn; red where the energy test of run against control rejects; dotted lines where "
        "the run exposed its learners to a model that does not learn.</p>",
        *_control_behind(result, table),
        _chart(control_chart(table), "control"),
    ]


def _control_behind(result: RunAnalysis, table: pd.DataFrame) -> list[str]:
    """A warning when the comparison stops before the run's last step: which side is behind."""
    compared = int(table["t"].max())
    if not result.steps or result.steps[-1] <= compared:
        return []
    try:
        control_last = RunFolder(str(table["control"].iloc[0])).last_complete_step()
    except PerspectivesError:  # gone or damaged: the advice below still holds
        control_last = None
    if control_last is not None and control_last <= compared:
        why = f"the control is complete to t = {control_last} only"
    else:
        why = (
            "run <code>perspectives monitor RUN --control CONTROL</code> again to compare them all"
        )
    return [
        f"<p class='warn'>Compared up to t = {compared}; the run has steps to "
        f"t = {result.steps[-1]}: {why}.</p>"
    ]


def _changes_html(result: RunAnalysis) -> list[str]:
    """The report's "Changes" section: charts, events, and what could not be charted."""
    monitor = monitor_run(result)
    out = [
        "<h2>Changes</h2>",
        "<p>Adaptive control charts (mean ± 3σ of a trailing window of a third of the run, "
        "after a burn-in as long) on the run's series, and change points (PELT with a "
        "permutation p-value; dotted lines where p ≤ 0.05) in the iso-mirror and the whole "
        "trajectory. <code>perspectives monitor</code> runs them with other settings.</p>",
    ]
    if len(monitor.charts):
        out.append(_chart(changes_chart(monitor), "changes"))
    lines = [event_line(e) for _, e in monitor.events.iterrows()] or ["no alarm, no change point"]
    out.append("<ul>" + "".join(f"<li>{html.escape(x)}</li>" for x in lines) + "</ul>")
    if monitor.notes:
        out.append("<p class='note'>" + "<br>".join(html.escape(n) for n in monitor.notes) + "</p>")
    return out + _control_html(result)


def run_report(result: RunAnalysis) -> Path:
    """Write ``RUN/report.html`` for an analysed run (``write_run_analysis`` first, for the
    PNGs beside it); returns its path."""
    marks = disruption_steps(result.cfg)
    s = result.summary
    metrics = result.clusters.merge(result.isomirror, on="t")
    if result.polarization is not None:
        metrics = metrics.merge(result.polarization, on="t")
    if result.dispersion is not None:
        metrics = metrics.merge(result.dispersion, on="t")
    if result.diversity is not None:
        wanted = ("t", "distinct", "top_share", "shared", "adopted")
        columns = [c for c in wanted if c in result.diversity]
        answers = result.diversity[columns].rename(
            columns={
                "distinct": "distinct_answers",
                "top_share": "top_answer_share",
                "shared": "shared_answers",
                "adopted": "adopted_answers",
            }
        )
        metrics = metrics.merge(answers, on="t")
    body = [
        _warnings_html(result),
        _chart(
            trajectories_chart(
                result.perspectives, "Perspective trajectories", marks, result.databases
            ),
            "traj",
        ),
        _chart(isomirror_chart({"": result.isomirror}, marks), "isomirror"),
        _chart(clusters_chart({"": result.clusters}, marks), "clusters"),
    ]
    if result.polarization is not None:
        body.append(
            _chart(
                polarization_chart(
                    {result.cfg.name: [result.polarization]}, result.polarization_kind
                ),
                "polarization",
            )
        )
    if result.movement is not None and len(result.movement):
        body += [
            "<h2>How far each class moved</h2>",
            "<p>The distance its mean perspective travelled from the first step to the last, "
            "against its within-class spread (RMS distance of its models to the class mean, "
            "averaged over steps). A ratio above 1: the class moved as a whole.</p>",
            _table(result.movement),
        ]
    body += _changes_html(result)
    body += [
        "<h2>Metrics by step</h2>",
        _table(metrics),
        "<h2>Figures</h2>",
        _pngs(result.run_dir / ANALYSIS_DIR, ANALYSIS_DIR),
        "<h2>Summary</h2>",
        f"<pre>{html.escape(json.dumps(s, indent=2))}</pre>",
        "<h2>Config</h2>",
        f"<pre>{html.escape(dump_yaml(result.cfg.model_dump()))}</pre>",
    ]
    sub = (
        f"{s['models']} models, {len(result.steps)} snapshots (t = {result.steps[0]}.."
        f"{result.steps[-1]}), joint space d = {s['dimension']}"
    )
    paths = [p for p in s.get("compute") or [] if p["answer_dtype"] is not None]
    if paths:
        sub += "; computed " + ", ".join(
            f"on {compute_where(p)}, answering in "
            f"{p['answer_dtype']}, training in {p['train_dtype']}"
            for p in paths
        )
    path = result.run_dir / REPORT_FILE
    write_text(path, _page(f"Run {result.cfg.name}", sub, body))
    return path


def sweep_report(result: SweepAnalysis) -> Path:
    """Write ``SWEEP/report.html``: the conditions compared, then each condition's runs."""
    body = []
    if result.failed or result.pending or result.missing:
        items = [
            f"{e['condition']} seed {e['seed']}: failed ({html.escape(str(e['error']))})"
            for e in result.failed
        ]
        items += [f"{e['condition']} seed {e['seed']}: not finished" for e in result.pending]
        items += [
            f"{e['condition']} seed {e['seed']}: done, but its folder is gone (left out)"
            for e in result.missing
        ]
        body.append("<div class='warn'><b>Not complete:</b><br>" + "<br>".join(items) + "</div>")
    runs = {c: r for c, r in result.runs.items() if r}
    first = first_runs(result)
    marks = sorted({m for r in first.values() for m in disruption_steps(r.cfg)})
    pol, kind = sweep_polarization(result)
    if pol:
        body.append(_chart(polarization_chart(pol, kind), "polarization"))
    if first:
        body.append(
            _chart(isomirror_chart({c: r.isomirror for c, r in first.items()}, marks), "isomirror")
        )
        body.append(
            _chart(clusters_chart({c: r.clusters for c, r in first.items()}, marks), "clusters")
        )
    rows = []
    for c, rs in runs.items():
        for r in rs:
            s = r.summary
            rows.append(
                {
                    "condition": c,
                    "seed": r.cfg.seed,
                    "snapshots": len(r.steps),
                    "missing": len(r.missing_steps),
                    "d": s["dimension"],
                    "clusters (last)": s["clusters_last"],
                    "mean ARI": s["ari_mean"],
                    "polarization (last)": s["polarization_last"],
                    "whole space (last)": s.get("polarization_all_last"),
                    "data kernels (last)": s.get("polarization_kernel_last"),
                }
            )
    if rows:
        body += ["<h2>Runs</h2>", _table(pd.DataFrame(rows))]
    for i, (c, r) in enumerate(first.items()):
        body.append(
            _chart(
                trajectories_chart(
                    r.perspectives,
                    f"Trajectories: {c} (seed {r.cfg.seed})",
                    disruption_steps(r.cfg),
                ),
                f"traj-{i}",
            )
        )
    body += ["<h2>Figures</h2>", _pngs(result.sweep_dir / ANALYSIS_DIR, ANALYSIS_DIR)]
    if first:
        some = next(iter(first.values()))
        body += [
            "<h2>Config (first condition, first seed)</h2>",
            f"<pre>{html.escape(dump_yaml(some.cfg.model_dump()))}</pre>",
        ]
    preset = str(result.record.get("preset"))
    title = f"Sweep {Path(preset).stem if preset.endswith(('.yaml', '.yml')) else preset}"
    sub = (
        f"scale {result.record.get('scale') or 'as written'}; "
        f"{sum(len(r) for r in runs.values())} runs over {len(runs)} conditions; "
        f"seeds {result.record.get('seeds')}"
    )
    path = result.sweep_dir / REPORT_FILE
    write_text(path, _page(title, sub, body))
    return path
