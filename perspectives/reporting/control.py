"""A run against its control: when did a system depart from the same system without the
intervention (an adversary's access, a disruption), and by how much?

One run's control charts cannot tell an attack from the drift every population of
interacting models shows (case study 2's control, under memory, raised more alarms than the
attacked system). A sweep has the answer beside it: the same system, seed and evaluation
prompts under the control condition. ``compare_to_control`` reads both run folders and, at
every step both evaluated:

- ``distance``: the mean data-kernel (Frobenius) distance between a learning model and its
  namesake in the control, and ``distance_rel`` the same in units of the control's initial
  spread (the mean distance between two of its learning models at the first step);
- ``pull:<model>``: for every model that does not learn (an adversary, a fixed reference), the
  learners' mean distance to it in the run minus in the control — negative where the run's
  population came closer — and ``pull_rel:<model>`` that as a fraction of the control's;
- ``statistic``, ``p_value``: the energy test (``analysis.inference.energy_test``) of the
  learners' data kernels, run against control (a learner per sample; at least 4 a side).

The run *departed* at the first step of the final unbroken stretch of rejections at ``alpha``
that reaches the last step. Under the null of no difference the last step rejects with
probability at most ``alpha``, so declaring a departure at all is a level-``alpha`` decision
however many steps were tested; where it happened is the stretch's start. ``exposures`` are
the steps at which a learner heard a model that does not learn in the run but not in the
control (an adversary's attacks); ``graph_changes`` the steps at which the run's communication
graph differs from the control's at all (an attack, a disruption of the graph). The delay is
the departure's step minus the intervention's onset, the first of either.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..analysis.inference import MIN_SAMPLES, energy_test, model_kernels
from ..analysis.rounding import negligible
from ..errors import InputError, PerspectivesError
from ..simulation.rundir import RunFolder
from .run_analysis import check_system, steps_text, write_analysis_table

CONTROL_FILE = "control.parquet"


@dataclass
class ControlComparison:
    """A run against its control. ``steps``: one row per common step (``t, n_models,
    distance, distance_rel, statistic, p_value, reject, exposed, graph_differs`` and
    ``pull:<model>``, ``pull_rel:<model>`` per model that does not learn); ``departure``:
    the step of departure, or None; ``exposures``: the steps the run exposed its learners to a
    non-learning model and the control did not; ``graph_changes``: the steps at which the
    run's edges differ from the control's; ``onset``: the first step of either (None
    without); ``delay``: departure minus onset (None without either)."""

    run_dir: Path
    control_dir: Path
    alpha: float
    steps: pd.DataFrame
    exposures: list[int]
    learners: list[str]
    fixed: list[str]
    notes: list[str] = field(default_factory=list)
    graph_changes: list[int] = field(default_factory=list)

    @property
    def departure(self) -> int | None:
        return departure(self.steps.set_index("t")["p_value"], self.alpha)

    @property
    def onset(self) -> int | None:
        return onset_of(self.exposures, self.graph_changes)

    @property
    def delay(self) -> int | None:
        if self.departure is None or self.onset is None:
            return None
        return self.departure - self.onset


def onset_of(exposures: list[int], graph_changes: list[int]) -> int | None:
    """The intervention's first step: the first exposure to a model that does not learn, or
    the first step whose graph differs from the control's, whichever comes first."""
    return min(exposures[:1] + graph_changes[:1], default=None)


def departure(p_values: pd.Series, alpha: float) -> int | None:
    """The first step of the final unbroken stretch of p-values at most ``alpha`` (indexed by
    step, in order) that reaches the last step; None if the last step does not reject."""
    reject = (p_values <= alpha).to_numpy()
    if len(reject) == 0 or not reject[-1]:
        return None
    i = len(reject) - 1
    while i > 0 and reject[i - 1]:
        i -= 1
    return int(p_values.index[i])


def _model_kernels(folder: RunFolder) -> tuple[dict[tuple[int, str], np.ndarray], list]:
    """Each (t, model)'s data kernel (replicates averaged) and the evaluation prompts' ids."""
    kernels, keys = model_kernels(folder)
    out = {
        (int(t), str(m)): k for (t, m), k in zip(keys.itertuples(index=False), kernels, strict=True)
    }
    return out, list(keys.attrs["prompts"])


def _learning_models(folder: RunFolder) -> tuple[set[str], set[str]]:
    """The names of the models that learn and of those that do not, from the run's config."""
    cfg = folder.read_config(validate=False)
    learns, fixed = set(), set()
    for group in cfg.groups:
        (learns if group.learning else fixed).update(group.model_names())
    return learns, fixed


def _exposures(edges: pd.DataFrame, fixed: set[str], learners: set[str]) -> set[tuple[int, str]]:
    """(t, model): a learner heard the non-learning ``model`` at step t (``edges``: a run's
    edges table)."""
    if edges.empty:
        return set()
    heard = edges[edges["src"].isin(fixed) & edges["dst"].isin(learners)]
    return {(int(t), str(m)) for t, m in zip(heard["t"], heard["src"], strict=True)}


def _graph_changes(run_edges: pd.DataFrame, control_edges: pd.DataFrame, last: int) -> list[int]:
    """The steps up to ``last`` (both runs' last complete step) at which the run's edges
    differ from the control's."""
    graphs = []
    for edges in (run_edges, control_edges):
        if edges.empty:
            graphs.append({})
            continue
        graphs.append(
            {
                int(t): set(zip(g["src"], g["dst"], strict=True))
                for t, g in edges.groupby("t", sort=True)
            }
        )
    # A step's edges are only written when it has any: a step missing from one run's table
    # but recorded by the other's (within both runs' completed steps) is an empty graph there.
    steps = sorted(t for t in set(graphs[0]) | set(graphs[1]) if t <= last)
    return [t for t in steps if graphs[0].get(t, set()) != graphs[1].get(t, set())]


def _mean_distance(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    return float(np.mean([np.linalg.norm(x - y) for x in a for y in b]))


def _step_row(t, learners, fixed, kr, kc, spread: float, size: float, test: dict) -> dict:
    """One step of the comparison (see ``ControlComparison.steps``), on the ``learners``
    evaluated at step t in both runs; ``size``: a kernel's norm, the scale of rounding."""
    learners = [m for m in learners if (t, m) in kr and (t, m) in kc]
    a = [kr[(t, m)] for m in learners]
    b = [kc[(t, m)] for m in learners]
    dist = float(np.mean([np.linalg.norm(x - y) for x, y in zip(a, b, strict=True)]))
    row = {
        "t": t,
        "n_models": len(learners),
        "distance": dist,
        "distance_rel": dist / spread if spread > 0 else np.nan,
    }
    for m in fixed:
        if (t, m) in kr and (t, m) in kc:
            near = _mean_distance(b, [kc[(t, m)]])
            row[f"pull:{m}"] = _mean_distance(a, [kr[(t, m)]]) - near
            rel = np.nan if negligible(near, size) else row[f"pull:{m}"] / near
            row[f"pull_rel:{m}"] = rel
    if negligible(dist, size):
        # Identical populations: every permutation ties, nothing to test.
        row.update(statistic=0.0, p_value=1.0)
    else:
        res = energy_test(np.stack(a), np.stack(b), **test)
        row.update(statistic=res.statistic, p_value=res.p_value)
    return row


def _read_pair(fr: RunFolder, fc: RunFolder):
    """Both runs' kernels, checked to share the evaluation prompts."""
    for f in (fr, fc):
        if not f.exists():
            raise InputError("not a run folder", source=str(f.path))
        f.check()  # as `analyze` does: a damaged part is named, not read into the test
    kr, prompts_r = _model_kernels(fr)
    kc, prompts_c = _model_kernels(fc)
    if prompts_r != prompts_c:
        only_c = sorted(set(prompts_c) - set(prompts_r))
        only_r = sorted(set(prompts_r) - set(prompts_c))
        which = "; ".join(
            f"{len(ids)} only in the {whose}, e.g. {ids[0]!r}"
            for ids, whose in ((only_c, "control"), (only_r, "run"))
            if ids
        )
        raise InputError(
            f"evaluated on other prompts than the run ({len(prompts_c)} against "
            f"{len(prompts_r)}: {which or 'the same ones in another order'}; a control must "
            "share the run's evaluation set and seed)",
            source=str(fc.path),
        )
    shape_r, shape_c = next(iter(kr.values())).shape, next(iter(kc.values())).shape
    if shape_r != shape_c:
        raise InputError(
            f"answers embedded in {shape_c[1]} dimensions, the run's in {shape_r[1]} (a control "
            "must be embedded by the run's embedder)",
            source=str(fc.path),
        )
    return kr, kc


def check_control(
    run: str | os.PathLike, control: str | os.PathLike, *, itself: bool = False
) -> list[str]:
    """The learning models ``run`` and ``control`` share, from their configs alone (cheap:
    checked before any analysis). Raises InputError if either is not a run folder, they
    share fewer than 4 learning models (the test's minimum), or, unless ``itself`` (a null
    comparison, which never departs), the control is the run itself."""
    fr, fc = RunFolder(run), RunFolder(control)
    for f in (fr, fc):
        if not f.exists():
            raise InputError("not a run folder", source=str(f.path))
    if not itself and fr.path.resolve() == fc.path.resolve():
        raise InputError(
            "is the run itself: a control is another run (the same system and seed without "
            "the intervention)",
            source=str(fc.path),
        )
    learners = sorted(_learning_models(fr)[0] & _learning_models(fc)[0])
    if len(learners) < MIN_SAMPLES:
        raise InputError(
            f"the run and its control share {len(learners)} learning model(s); the test needs "
            f"{MIN_SAMPLES}",
            source=str(fc.path),
        )
    return learners


def compare_to_control(
    run: str | os.PathLike,
    control: str | os.PathLike,
    *,
    alpha: float = 0.05,
    n_permutations: int = 999,
    seed: int = 0,
) -> ControlComparison:
    """Compare run folder ``run`` with ``control`` step by step (see the module docstring).

    Raises InputError if either is not a run, if they were evaluated on different prompts,
    share fewer than 4 learning models (the test's minimum) or no step at which 4 of them
    were evaluated in both, or for ``alpha`` outside (0, 1]. A run against itself is a null
    comparison: it never departs."""
    if not 0 < alpha <= 1:
        raise InputError("must be in (0, 1]", field="alpha", value=alpha)
    learners = check_control(run, control, itself=True)
    fr, fc = RunFolder(run), RunFolder(control)
    kr, kc = _read_pair(fr, fc)
    learns_r, fixed_r = _learning_models(fr)
    learns_c, fixed_c = _learning_models(fc)
    fixed = sorted(fixed_r & fixed_c)
    # A step is compared on the learners evaluated in both runs (models join and leave),
    # if there are enough of them for the test.
    common = {t for t, _ in kr} & {t for t, _ in kc}
    shared = {t: sum((t, m) in kr and (t, m) in kc for m in learners) for t in common}
    steps = sorted(t for t, n in shared.items() if n >= MIN_SAMPLES)
    if not steps:
        raise InputError(
            f"no step at which both the run and its control evaluated {MIN_SAMPLES} of the "
            "same learning models",
            source=str(fc.path),
        )
    notes = []
    dropped = sorted((learns_r | learns_c) - set(learners))
    if dropped:
        notes.append(f"not in both runs, left out: {', '.join(dropped)}")
    few = sorted(t for t, n in shared.items() if n < MIN_SAMPLES)
    if few:
        notes.append(
            f"steps with fewer than {MIN_SAMPLES} learners in both runs, left out: "
            f"{', '.join(map(str, few))}"
        )
    notes += _unmatched_steps(kr, kc)
    first = [kc[(steps[0], m)] for m in learners if (steps[0], m) in kc]
    pairs = [np.linalg.norm(x - y) for i, x in enumerate(first) for y in first[i + 1 :]]
    spread = float(np.mean(pairs)) if pairs else 0.0
    # Distances within rounding of the kernels' own size are none (identical learners).
    size = float(np.linalg.norm(first[0])) if first else 0.0
    if negligible(spread, size):
        spread = 0.0
        notes.append("the control's learners start identical: distance_rel is undefined")
    test = {"n_permutations": n_permutations, "seed": seed}
    rows = [_step_row(t, learners, fixed, kr, kc, spread, size, test) for t in steps]
    table = pd.DataFrame(rows)
    table["reject"] = table["p_value"] <= alpha
    er, ec = fr.read_parts("edges"), fc.read_parts("edges")
    heard = _exposures(er, fixed_r, set(learners)) - _exposures(ec, fixed_c, set(learners))
    exposures = sorted({t for t, _ in heard})
    table["exposed"] = table["t"].isin(exposures)
    changes = _graph_changes(er, ec, min(fr.last_complete_step(), fc.last_complete_step()))
    table["graph_differs"] = table["t"].isin(changes)
    notes += _differences_before_onset(table, onset_of(exposures, changes))
    return ControlComparison(
        fr.path, fc.path, alpha, table, exposures, learners, fixed, notes, changes
    )


def _unmatched_steps(kr: dict, kc: dict) -> list[str]:
    """Notes on the steps evaluated in one run only (a control still running, say): the
    verdict covers the steps both have."""
    notes = []
    for one, other, whose in ((kr, kc, "the run's"), (kc, kr, "the control's")):
        alone = sorted({t for t, _ in one} - {t for t, _ in other})
        if alone:
            notes.append(
                f"{whose} steps t = {steps_text(alone)} have no counterpart in the other: "
                "not compared"
            )
    return notes


def _differences_before_onset(table: pd.DataFrame, onset: int | None) -> list[str]:
    """A note if the two differ before the intervention at ``onset``: then a control is the
    same system, so such a difference is not the intervention's effect, and later steps
    carry it."""
    if onset is None or not (before := table[table["reject"] & (table["t"] < onset)]).size:
        return []
    return [
        f"the two differ at t={int(before['t'].iloc[0])}, before the intervention at "
        f"t={onset}: is the control the same system (seed, models, initial samples, update "
        "rule), run on the same compute path (device, dtype, threads)?"
    ]


def write_control(comparison: ControlComparison) -> Path:
    """Write ``RUN/analysis/control.parquet`` (the per-step table, with the control's path
    in the file's metadata column ``control``); returns its path."""
    table = comparison.steps.copy()
    table.insert(0, "control", str(comparison.control_dir))
    return write_analysis_table(comparison.run_dir, CONTROL_FILE, table)


def step_line(row: pd.Series, fixed: list[str]) -> str:
    """One step as a line: ``t=3  distance 0.41 (1.20x spread)  toward adversary-1 +4.1%
    p=0.008 *`` (the distance to the control in units of its initial spread; how much closer
    the learners are to a non-learning model than in the control; the energy test's p-value,
    ``*`` where it rejects)."""
    rel = "" if pd.isna(row["distance_rel"]) else f" ({row['distance_rel']:.2f}x spread)"
    pulls = "".join(
        f"  toward {m} {0.0 - row[f'pull_rel:{m}']:+.1%}"
        for m in fixed
        if pd.notna(row.get(f"pull_rel:{m}"))
    )
    mark = " *" if row["reject"] else ""
    head = f"t={int(row['t'])}  distance {row['distance']:.3g}{rel}"
    return f"{head}{pulls}  p={row['p_value']:.3g}{mark}"


def summary_line(comparison: ControlComparison) -> str:
    """The verdict: departed at t (with the delay after the intervention's onset) or not."""
    if comparison.exposures:
        exposed = f"; first exposure at t={comparison.exposures[0]}"
    elif comparison.graph_changes:
        exposed = f"; the graph first differs from the control's at t={comparison.onset}"
    else:
        exposed = ""
    if comparison.departure is None:
        return f"no departure from the control at p <= {comparison.alpha:g}{exposed}"
    delay = "" if comparison.delay is None else f", a delay of {comparison.delay} step(s)"
    return (
        f"departed from the control at t={comparison.departure} (every step from there "
        f"rejects at p <= {comparison.alpha:g}){exposed}{delay}"
    )


def departure_event(events: pd.DataFrame, comparison: ControlComparison) -> pd.DataFrame:
    """``events`` (``monitor.EVENT_COLUMNS``) with a ``departure`` row at the departure's step,
    its p-value and mean distance, when there is one."""
    if comparison.departure is None:
        return events
    row = comparison.steps.set_index("t").loc[comparison.departure]
    extra = pd.DataFrame(
        [
            {
                "kind": "departure",
                "series": "control",
                "chart": "energy",
                "t": comparison.departure,
                "value": row["distance"],
                "statistic": row["statistic"],
                "p_value": row["p_value"],
            }
        ],
        columns=events.columns,
    ).astype(events.dtypes.to_dict())
    out = pd.concat([events, extra], ignore_index=True)
    return out.sort_values(["t", "kind", "series"], kind="stable").reset_index(drop=True)


SWEEP_CONTROL_COLUMNS = [
    "condition",
    "seed",
    "steps",
    "first_exposure",
    "onset",
    "departure",
    "delay",
    "distance_rel_at_T",
    "p_at_T",
]


def _started_systems(record: dict, sweep_dir: Path) -> tuple[dict[tuple, Path], list[str]]:
    """The folders of the sweep's systems with a complete step and the run the record names,
    by (condition, seed), and notes on the others."""
    folders, notes = {}, []
    for e in record["systems"]:
        folder, name = sweep_dir / e["folder"], f"{e['condition']} seed {e['seed']}"
        run = RunFolder(folder)
        try:
            started = folder.is_dir() and run.last_complete_step() >= 0
        except PerspectivesError as exc:
            notes.append(f"{name}: {exc}")
            continue
        if not started:
            notes.append(f"{name}: no complete step yet")
            continue
        try:
            check_system(run.read_config(validate=False), e, sweep_dir)
        except PerspectivesError as exc:
            notes.append(f"{name}: not compared ({exc})")
            continue
        folders[(e["condition"], e["seed"])] = folder
    return folders, notes


def compare_sweep_to_control(
    sweep_dir: str | os.PathLike,
    control: str,
    *,
    alpha: float = 0.05,
    n_permutations: int = 999,
    seed: int = 0,
) -> tuple[pd.DataFrame, list[str]]:
    """Every run of a sweep against the run of condition ``control`` with the same seed
    (``compare_to_control``; each run's ``analysis/control.parquet`` is written). Returns one
    row per (condition, seed) (``SWEEP_CONTROL_COLUMNS`` plus ``closer_at_T:<model>``, how
    much closer than the control the learners end to each non-learning model) and notes on
    the systems left out or that could not be compared (and why). Raises InputError for a
    folder that is not a sweep or a ``control`` that is not one of its conditions."""
    from ..experiments.sweep import read_sweep

    sweep_dir = Path(sweep_dir)
    record = read_sweep(sweep_dir)
    if control not in record["conditions"]:
        raise InputError(
            f"not a condition of this sweep ({', '.join(record['conditions'])})",
            source=str(sweep_dir),
            field="control",
            value=control,
        )
    folders, notes = _started_systems(record, sweep_dir)
    rows = []
    for (condition, s), folder in sorted(folders.items(), key=lambda kv: str(kv[0])):
        if condition == control:
            continue
        if (control, s) not in folders:
            notes.append(f"{condition} seed {s}: no {control} run of seed {s} to compare with")
            continue
        try:
            cmp = compare_to_control(
                folder, folders[(control, s)], alpha=alpha, n_permutations=n_permutations, seed=seed
            )
        except PerspectivesError as exc:
            notes.append(f"{condition} seed {s}: not compared ({exc})")
            continue
        write_control(cmp)
        last = cmp.steps.iloc[-1]
        row = {
            "condition": condition,
            "seed": s,
            "steps": int(last["t"]),
            "first_exposure": cmp.exposures[0] if cmp.exposures else None,
            "onset": cmp.onset,
            "departure": cmp.departure,
            "delay": cmp.delay,
            "distance_rel_at_T": last["distance_rel"],
            "p_at_T": last["p_value"],
        }
        for m in cmp.fixed:
            row[f"closer_at_T:{m}"] = -last.get(f"pull_rel:{m}", np.nan)
        rows.append(row)
    table = pd.DataFrame(rows)
    if table.empty:
        table = pd.DataFrame(columns=SWEEP_CONTROL_COLUMNS)
    for col in ("first_exposure", "onset", "departure", "delay"):
        table[col] = table[col].astype("Int64")
    return table, notes


def write_sweep_control(sweep_dir: str | os.PathLike, table: pd.DataFrame, control: str) -> Path:
    """Write ``SWEEP/analysis/control.parquet`` (the table, with the control condition in a
    column ``control``); returns its path."""
    return write_analysis_table(sweep_dir, CONTROL_FILE, table.assign(control=control))
