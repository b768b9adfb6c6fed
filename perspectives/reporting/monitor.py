"""Watch a run: control charts and change points on its series, as alarms.

``run_series`` takes the 1-d series of an analysed run (the iso-mirror, the polarization, each
class's mean z1, the data-kernel spread); ``monitor_run`` charts each and finds the change
points of the iso-mirror and of the whole trajectory (every model's position, stacked per
step); ``write_alarms`` writes them to ``RUN/analysis/alarms.parquet``, one row per event.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..analysis.changepoints import change_points
from ..analysis.monitoring import CHARTS, run_chart
from ..analysis.trajectories import z_columns
from ..errors import InputError
from .run_analysis import RunAnalysis, steps_text, write_analysis_table

ALARMS_FILE = "alarms.parquet"
EVENT_COLUMNS = [
    "kind",
    "series",
    "chart",
    "t",
    "value",
    "statistic",
    "lower",
    "upper",
    "direction",
    "shift",
    "p_value",
]


@dataclass
class MonitorSettings:
    """How to chart a run's series. ``chart``: one of ``analysis.monitoring.CHARTS``;
    ``window``/``burn_in`` (adaptive) and ``reference`` (fixed, EWMA, CUSUM) in snapshots;
    None picks a third of the run's snapshots (at least 2, at most 100: the authors' burn-in
    for runs of 300 steps); ``k`` the band's width in σ; ``alpha`` the level at which a
    change point is reported."""

    chart: str = "adaptive"
    window: int | None = None
    burn_in: int | None = None
    reference: int | None = None
    k: float | None = None  # None: 3
    alpha: float = 0.05
    min_size: int = 2
    n_permutations: int = 999
    seed: int = 0

    def __post_init__(self) -> None:
        """Raises InputError for an unknown chart, a value out of range, or a setting the
        chart does not use (it would be ignored without a word)."""
        if self.chart not in CHARTS:
            raise InputError(f"one of {CHARTS}", field="chart", value=self.chart)
        if not 0 < self.alpha <= 1:
            raise InputError("must be in (0, 1]", field="alpha", value=self.alpha)
        if self.k is not None and not (math.isfinite(self.k) and self.k > 0):
            raise InputError("must be a positive number", field="k", value=self.k)
        unused = {
            "adaptive": ("reference",),
            "fixed": ("window", "burn_in"),
            "ewma": ("window", "burn_in"),
            "cusum": ("window", "burn_in", "k"),
        }[self.chart]
        for name in unused:
            if getattr(self, name) is not None:
                raise InputError(
                    f"not used by the {self.chart} chart", field=name, value=getattr(self, name)
                )

    @property
    def width(self) -> float:
        """The band's half-width in σ (fixed, adaptive, EWMA charts)."""
        return 3.0 if self.k is None else self.k

    def params(self, n: int) -> dict:
        """The chart's parameters for a series of ``n`` snapshots."""
        default = max(2, min(100, n // 3))
        if self.chart == "adaptive":
            window = self.window or default
            return {"window": window, "burn_in": self.burn_in or window, "k": self.width}
        params: dict = {"reference": self.reference or default}
        if self.chart in ("fixed", "ewma"):
            params["k"] = self.width
        return params


def _article(word: str) -> str:
    return f"{'an' if word[0] in 'aeiou' else 'a'} {word}"


@dataclass
class Monitor:
    """A run's charts (long: ``series`` plus ``analysis.monitoring.COLUMNS``), change points
    (``series, t, shift, p_value``) and events (``EVENT_COLUMNS``); ``notes`` say what could
    not be charted and why."""

    charts: pd.DataFrame
    changes: pd.DataFrame
    events: pd.DataFrame
    notes: list[str] = field(default_factory=list)


def run_series(result: RunAnalysis) -> dict[str, pd.Series]:
    """The run's 1-d series by name, each indexed by step: ``isomirror``, ``polarization``
    (two classes or an adversary), ``spread`` (the data-kernel spread) and ``z1:<class>`` (a
    class's mean z1). Series that are NaN throughout (not defined for the run) are left out."""
    out: dict[str, pd.Series] = {}
    iso = result.isomirror.set_index("t")["psi_frobenius"]
    out["isomirror"] = iso
    if result.polarization is not None:
        out["polarization"] = result.polarization.set_index("t")["polarization"]
    if result.dispersion is not None and "spread_kernel_rel" in result.dispersion:
        out["spread"] = result.dispersion.set_index("t")["spread_kernel_rel"]
    table = result.perspectives
    if table["class"].nunique() > 1 or (table["class"] != "").all():
        for cls, sub in table.groupby("class"):
            if cls:
                out[f"z1:{cls}"] = sub.groupby("t")["z1"].mean()
    return {k: v.astype(float) for k, v in out.items() if v.notna().any()}


def trajectory_matrix(table: pd.DataFrame) -> pd.DataFrame:
    """Every model's position, one row per step (columns ``model/zk``), for the models present
    at every step."""
    zcols = z_columns(table)
    wide = table.pivot_table(index="t", columns="model", values=zcols)
    return wide.dropna(axis=1)


def monitor_run(result: RunAnalysis, settings: MonitorSettings | None = None) -> Monitor:
    """Chart every series of ``result`` and find its change points (see the module
    docstring). A series too short for the chart (fewer snapshots than the burn-in or
    reference period plus one) is named in ``notes`` instead."""
    s = settings or MonitorSettings()
    charts, events, changes, notes = [], [], [], []
    for name, series in run_series(result).items():
        infinite = series[np.isinf(series)]
        if len(infinite):
            # A ratio to a zero start: the chart cannot place it, the steps around it it can.
            notes.append(
                f"{name}: infinite at t = {steps_text(infinite.index.tolist())}; those steps "
                "are left out of its chart"
            )
        series = series[np.isfinite(series)]
        params = s.params(len(series))
        start = params.get("burn_in", params.get("reference"))
        if len(series) <= start:
            notes.append(
                f"{name}: {len(series)} snapshots, too few for {_article(s.chart)} chart "
                f"(it watches from snapshot {start + 1} on)"
            )
            continue
        chart = run_chart(series, s.chart, **params)
        chart.insert(0, "series", name)
        charts.append(chart)
        hit = chart[chart["alarm"]]
        for _, r in hit.iterrows():
            events.append(
                {
                    "kind": "alarm",
                    "series": name,
                    "chart": s.chart,
                    "t": int(r["t"]),
                    "value": r["value"],
                    "statistic": r["statistic"],
                    "lower": r["lower"],
                    "upper": r["upper"],
                    "direction": "up" if r["statistic"] > r["upper"] else "down",
                }
            )
    targets = {"isomirror": run_series(result).get("isomirror")}
    targets["trajectories"] = trajectory_matrix(result.perspectives)
    for name, values in targets.items():
        if values is None or len(values) < 2 * s.min_size:
            notes.append(f"{name}: too few snapshots for change points")
            continue
        found = change_points(
            values, min_size=s.min_size, n_permutations=s.n_permutations, seed=s.seed
        )
        found.insert(0, "series", name)
        changes.append(found)
        for _, r in found[found["p_value"] <= s.alpha].iterrows():
            events.append(
                {
                    "kind": "change point",
                    "series": name,
                    "chart": "pelt",
                    "t": int(r["t"]),
                    "shift": r["shift"],
                    "p_value": r["p_value"],
                }
            )
    charts_df = pd.concat(charts, ignore_index=True) if charts else pd.DataFrame()
    changes_df = (
        pd.concat(changes, ignore_index=True)
        if changes
        else pd.DataFrame(columns=["series", "t", "index", "shift", "gain", "p_value"])
    )
    events_df = pd.DataFrame(events, columns=EVENT_COLUMNS)
    if len(events_df):
        events_df = events_df.sort_values(["t", "kind", "series"], kind="stable")
    for col in ("value", "statistic", "lower", "upper", "shift", "p_value"):
        events_df[col] = events_df[col].astype(float)
    events_df["t"] = events_df["t"].astype(np.int64)
    return Monitor(charts_df, changes_df, events_df.reset_index(drop=True), notes)


CLASS_TESTS_FILE = "class_tests.parquet"


def run_class_tests(result: RunAnalysis, seed: int = 0) -> tuple[pd.DataFrame | None, str]:
    """Do a run's two classes occupy different regions, step by step? The energy test of their
    models' data kernels (``analysis.inference.class_tests``) at every snapshot, for a run of
    exactly two classes with at least 4 models each. Returns the table (``t, statistic,
    p_value, n_a, n_b``; its attributes ``classes``) or None, and a line saying what was
    found or why nothing was tested."""
    from ..analysis.inference import MIN_SAMPLES, class_tests, model_kernels
    from ..errors import BackendUnavailable

    table = result.perspectives
    labels = table.drop_duplicates("model").set_index("model")["class"]
    classes = sorted(c for c in labels.unique() if c)
    if len(classes) != 2:
        return None, ""
    sizes = labels.value_counts()
    if min(sizes.get(c, 0) for c in classes) < MIN_SAMPLES:
        counts = ", ".join(f"{c} {sizes.get(c, 0)}" for c in classes)
        return None, f"classes not tested ({counts} models): a test needs {MIN_SAMPLES} a class"
    kernels, keys = model_kernels(result.run_dir, result.steps)
    points = keys.assign(**{"class": keys["model"].map(labels).fillna("")})
    try:
        tests = class_tests(kernels, points, *classes, seed=seed)
    except BackendUnavailable as exc:
        return None, f"classes not tested: {exc}"
    if tests.empty:
        return None, f"classes not tested: at no step do both have {MIN_SAMPLES} models"
    tests.attrs["classes"] = classes
    first, last = tests.iloc[0], tests.iloc[-1]
    line = (
        f"classes {classes[0]} vs {classes[1]} (energy test, {int(last['n_a'])} against "
        f"{int(last['n_b'])} models): p = {first['p_value']:.3g} at t={int(first['t'])}, "
        f"{last['p_value']:.3g} at t={int(last['t'])}"
    )
    return tests, line


def write_class_tests(result: RunAnalysis, tests: pd.DataFrame) -> Path:
    """Write ``RUN/analysis/class_tests.parquet``; returns its path."""
    frame = tests.copy()
    frame.insert(1, "class_a", tests.attrs["classes"][0])
    frame.insert(2, "class_b", tests.attrs["classes"][1])
    return write_analysis_table(result.run_dir, CLASS_TESTS_FILE, frame)


def write_alarms(result: RunAnalysis, monitor: Monitor) -> Path:
    """Write ``RUN/analysis/alarms.parquet`` (the events); returns its path."""
    return write_analysis_table(result.run_dir, ALARMS_FILE, monitor.events)


def event_line(e: dict | pd.Series) -> str:
    """One event as a line: ``t=7 alarm isomirror up (0.82 above 0.61)`` or
    ``t=5 change point trajectories (shift 0.41, p = 0.002)``."""
    if e["kind"] == "alarm":
        side = "above" if e["direction"] == "up" else "below"
        limit = e["upper"] if e["direction"] == "up" else e["lower"]
        return (
            f"t={e['t']} alarm {e['series']} {e['direction']} "
            f"({e['statistic']:.3g} {side} {limit:.3g}, {e['chart']} chart)"
        )
    return f"t={e['t']} change point {e['series']} (shift {e['shift']:.3g}, p = {e['p_value']:.3g})"
