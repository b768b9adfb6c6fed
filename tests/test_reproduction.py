"""The tables of docs/results.md, from hand-made analyses of small sweeps."""

import errno
import json
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

from perspectives.errors import InputError
from perspectives.experiments import reproduction
from perspectives.experiments.reproduction import cs1_table, cs2_table, regenerate
from perspectives.experiments.sweep import read_sweep
from perspectives.reporting.run_analysis import SweepAnalysis, analyze_sweep
from perspectives.simulation.config import RunConfig
from perspectives.store import output_dir, write_text


def _run(
    polarization=None,
    clusters=None,
    isomirror=None,
    communication=None,
    t_last=4,
    disp=None,
    seed=0,
    T=None,
    diversity=None,
):
    cfg = RunConfig.model_validate(
        {
            "steps": 12,
            "question_bank": "neutral",
            "interaction": {"questions": 2},
            "groups": [{"name": "m", "count": 2, "backend": "fake"}],
            "communication": communication or {"type": "complete"},
        }
    )
    return SimpleNamespace(
        polarization=polarization,
        clusters=clusters,
        isomirror=isomirror,
        dispersion=disp,
        diversity=diversity,
        cfg=cfg,
        steps=list(range(t_last + 1)),
        missing_steps=list(range(t_last + 1, (T if T is not None else t_last) + 1)),
        summary={"seed": seed},
    )


def _sweep(runs: dict, pending=()) -> SweepAnalysis:
    return SweepAnalysis(Path("."), {}, runs, failed=[], pending=list(pending))


def _pol(values, kernel):
    return pd.DataFrame(
        {
            "t": range(len(values)),
            "polarization": values,
            "polarization_all": [2 * v for v in values],
            "polarization_kernel": kernel,
        }
    )


def test_cs2_table_has_one_row_per_condition_with_last_and_mean_over_seeds():
    runs = {
        "targets-0": [_run(_pol([1.0, 1.2, 1.4], [1.0, 1.1, 1.2]))],
        "targets-2-every-5": [
            _run(_pol([1.0, 0.6, 0.2], [1.0, 0.8, 0.6])),
            _run(_pol([1.0, 0.4, 0.4], [1.0, 0.6, 0.4]), seed=1),
        ],
        "targets-5-every-2": [],
        "targets-5-every-5": [_run(_pol([1.0, 0.9], [1.0, 0.9]), t_last=1, T=12)],
    }
    pending = [{"condition": c, "seed": 0} for c in ("targets-5-every-2", "targets-5-every-5")]
    text = cs2_table(_sweep(runs, pending=pending))
    lines = text.splitlines()
    assert lines[0].startswith("| targets | attack every | runs | at T | mean, t ≥ 1 |")
    # targets 0: last 1.4, mean over t >= 1 of (1.2, 1.4) = 1.3; the period is irrelevant.
    assert "| 0 | – | 1 | 1.40 | 1.30 | 2.80 | 1.20 | 1.15 |" in lines
    # two seeds: last 0.2 and 0.4 -> 0.30 (0.20–0.40); means 0.4 and 0.4.
    assert "| 2 | 5 | 2 | 0.30 (0.20–0.40) | 0.40 (0.40–0.40) |" in text
    assert "\n| 5 | 2 |" not in text  # no row for a condition without a complete step
    # An unfinished run says how far it got: its "at T" is at its last complete step.
    assert (
        "Not finished: targets-5-every-2 seed 0, targets-5-every-5 seed 0 (complete to t = 1 "
        "of 12; the columns at T are at t = 1)." in " ".join(text.split())
    )


def test_cs1_table_splits_ari_and_isomirror_at_the_disruption():
    clusters = pd.DataFrame(
        {"t": range(5), "n_clusters": [1, 2, 3, 2, 2], "ari_prev": [None, 0.2, 0.4, 1.0, 1.0]}
    )
    # psi moves 1 per step up to t* = 2, then stands still: range 2.
    iso = pd.DataFrame({"t": range(5), "psi_frobenius": [0.0, 1.0, 2.0, 2.0, 2.0]})
    switch = {
        "type": "switch",
        "at": 2,
        "before": {"type": "complete"},
        "after": {"type": "nearest_neighbor"},
    }
    # Spread halves by T; locality 1.2 at t* = 2, then 0.6 (a sink) or unchanged.
    sinks = pd.DataFrame(
        {
            "t": range(5),
            "spread_kernel_rel": [1.0, 0.9, 0.8, 0.6, 0.5],
            "locality_kernel": [1.2, 1.2, 1.2, 0.9, 0.6],
        }
    )
    whole = sinks.assign(locality_kernel=1.2)
    # Without the disruption the population ends up repeating one answer: 9 of 10 alike.
    varied = pd.DataFrame({"t": [0, 4], "distinct": [1.0, 0.9], "top_share": [0.1, 0.2]})
    collapsed = varied.assign(distinct=[1.0, 0.2], top_share=[0.1, 0.9])
    runs = {
        "disruption": [_run(None, clusters, iso, switch, disp=sinks, diversity=varied)],
        "no-disruption": [_run(None, clusters, iso, None, disp=whole, diversity=collapsed)],
    }
    text = cs1_table(_sweep(runs))
    # The system without the switch is compared over the same periods, t* = 2.
    assert "| mean ARI, t < 2 | mean ARI, t > 2 |" in text
    assert "| locality, T ÷ t = 2 |" in text
    assert "| distinct answers at T | most common answer at T |" in text
    assert "| clusters at T | count changes, t > 2 |" in text
    # The count changes once in the 2 steps after t* (3 -> 2 -> 2).
    row = "| disruption | 1 | 2.00 | 0.50 | 0.20 | 1.00 | 0.50 | 0.00 | 0.50 | 0.50 | 0.90 | 0.20 |"  # noqa: E501
    assert row in text
    row = "| no-disruption | 1 | 2.00 | 0.50 | 0.20 | 1.00 | 0.50 | 0.00 | 0.50 | 1.00 | 0.20 | 0.90 |"  # noqa: E501
    assert row in text


def test_tables_of_a_sweep_with_no_complete_step_say_so():
    empty = _sweep({"a": [], "b": []}, pending=[{"condition": "a", "seed": 0}])
    for table in (cs1_table, cs2_table):
        assert table(empty).startswith("No step of any run is complete yet.")


def test_forum_table_reads_polarization_at_step_3_and_the_forums_distance():
    from perspectives.experiments.reproduction import forum_table

    closed = _run(_pol([1.0, 0.5, 0.3, 0.2, 1.0], [1.0, 0.9, 0.8, 0.7, 1.0]))
    closed.summary["databases"] = {"forum": {"distance_to_mean": 0.84}}
    short = _run(_pol([1.0, 0.8], [1.0, 0.9]), t_last=1, T=4)  # no step 3 yet
    text = forum_table(_sweep({"closed": [closed], "forum": [short]}))
    lines = text.splitlines()
    assert lines[0].startswith("| condition | runs | polarization at t = 3 | at T |")
    # at t = 3: 0.2 (kernel 0.7); at T 1.0; mean over t >= 1 of (0.5, 0.3, 0.2, 1.0) = 0.5.
    assert "| closed | 1 | 0.20 | 1.00 | 0.50 | 0.70 | 1.00 | 0.84 |" in lines
    assert "| forum | 1 | – | 0.80 | 0.80 | – | 0.90 | – |" in lines


def _record(**over):
    entry = {"condition": "a", "seed": 0, "status": "done", "folder": "a/seed-0"}
    return {"preset": "p", "conditions": ["a"], "systems": [{**entry, **over}]}


@pytest.mark.parametrize(
    ("record", "field"),
    [
        ({"preset": "p", "systems": []}, "conditions"),
        (_record(condition="b"), "systems.0.condition"),
        (_record(folder=None), "systems.0.folder"),
        (_record(folder="../../elsewhere"), "systems.0.folder"),
        (_record(folder="/abs/run"), "systems.0.folder"),
        (_record(status="banana"), "systems.0.status"),
        (_record(seed="0"), "systems.0.seed"),
        ({**_record(), "systems": _record()["systems"] * 2}, "systems.1.seed"),
        (
            {
                **_record(),
                "systems": [*_record()["systems"], {**_record()["systems"][0], "seed": 1}],
            },
            "systems.1.folder",
        ),
        (  # the same folder spelled another way: one run counted as two seeds
            {
                **_record(),
                "systems": [
                    *_record()["systems"],
                    {**_record()["systems"][0], "seed": 1, "folder": "./a/seed-0/"},
                ],
            },
            "systems.1.folder",
        ),
        ({**_record(), "scale": [1]}, "scale"),
    ],
)
def test_a_damaged_sweep_record_names_the_field(tmp_path, record, field):
    (tmp_path / "sweep.json").write_text(json.dumps(record))
    with pytest.raises(InputError) as err:
        read_sweep(tmp_path)
    assert err.value.field == field and "sweep.json" in str(err.value)


def test_a_system_marked_done_whose_folder_is_gone_is_named_on_the_page(tmp_path):
    (tmp_path / "sweep.json").write_text(json.dumps(_record()))
    result = analyze_sweep(tmp_path)
    assert result.runs == {"a": []} and result.missing[0]["folder"] == "a/seed-0"
    text = cs2_table(result)
    assert "Missing (done, but the run folder is gone): a seed 0." in text
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "seed-0").write_text("a file where the run folder should be")
    assert analyze_sweep(tmp_path).missing  # not a NotADirectoryError


def test_an_output_folder_blocked_by_a_file_is_a_clear_error(tmp_path):
    (tmp_path / "analysis").write_text("x")
    with pytest.raises(InputError, match="not a folder"):
        output_dir(tmp_path / "analysis")
    with pytest.raises(InputError, match="not a folder"):
        write_text(tmp_path / "analysis" / "summary.json", "{}")
    (tmp_path / "alarms.parquet").mkdir()
    with pytest.raises(InputError, match="a folder is where this file should be written"):
        write_text(tmp_path / "alarms.parquet", "x")


PAGE = "<!-- BEGIN verdicts -->\nold\n<!-- END verdicts -->\n"


def test_a_results_page_that_is_a_folder_is_named_so(tmp_path):
    (tmp_path / "runs").mkdir()
    (tmp_path / "results.md").mkdir()
    with pytest.raises(InputError, match="a folder, not a file") as err:
        regenerate(tmp_path / "runs", tmp_path / "results.md")
    assert err.value.source == str(tmp_path / "results.md")


def _refuse(dst, monkeypatch, real=shutil.copyfile):
    """Make copying to ``dst`` fail as a write-protected folder does."""

    def copyfile(src, to, *args, **kwargs):
        if Path(to).parent == dst:
            raise PermissionError(errno.EACCES, "Permission denied", str(to))
        return real(src, to, *args, **kwargs)

    monkeypatch.setattr(shutil, "copyfile", copyfile)


def test_an_unwritable_figures_folder_is_an_input_error_naming_the_file(tmp_path, monkeypatch):
    sweep = tmp_path / "runs" / "cs3-polarization"
    (sweep / "analysis").mkdir(parents=True)
    # A figure the analysis does not make (its own, of no runs here, would be removed).
    (sweep / "analysis" / "extra.png").write_bytes(b"png")
    figures = tmp_path / "figures"
    _refuse(figures, monkeypatch)
    result = SweepAnalysis(sweep, {}, {}, failed=[], pending=[])
    with pytest.raises(InputError) as err:
        reproduction._publish(result, "cs3-polarization", figures)
    assert err.value.source == str(figures / "cs3-polarization-extra.png")
    assert "Permission denied" in err.value.message and "'cs3-polarization'" in err.value.message


def test_a_block_or_page_that_fails_leaves_the_figures_as_they_were(tmp_path, monkeypatch):
    # The first block's figures were copied over the page's, then the second block failed and
    # the page kept its old tables: page and figures disagreed.
    doc = tmp_path / "results.md"
    page = "<!-- BEGIN a -->\nold\n<!-- END a -->\n<!-- BEGIN b -->\nold\n<!-- END b -->\n"
    doc.write_text(page)
    (tmp_path / "runs").mkdir()
    figures = tmp_path / "figures"
    figures.mkdir()
    (figures / "a-polarization.png").write_text("old")
    failing = {"b"}

    def sweep_of_block(folder, name, upto, doc):
        if name in failing:
            raise InputError("one row short", source=str(folder))
        return (lambda result: "new"), SweepAnalysis(folder, {}, {}, failed=[], pending=[])

    def publish(result, name, to):
        (to / f"{name}-polarization.png").write_text("new")

    monkeypatch.setattr(reproduction, "_sweep_folder", lambda runs, name, scale: runs / name)
    monkeypatch.setattr(reproduction, "_sweep_of_block", sweep_of_block)
    monkeypatch.setattr(reproduction, "_publish", publish)
    with pytest.raises(InputError, match="one row short"):
        regenerate(tmp_path / "runs", doc)
    assert doc.read_text() == page and (figures / "a-polarization.png").read_text() == "old"
    # Every block read, the page unwritable: the figures staged for it are not published.
    failing.clear()
    write_page = reproduction._write_page

    def refuse(path, text):
        raise InputError("cannot write the results page", source=str(path))

    monkeypatch.setattr(reproduction, "_write_page", refuse)
    with pytest.raises(InputError, match="cannot write"):
        regenerate(tmp_path / "runs", doc)
    assert sorted(p.name for p in figures.iterdir()) == ["a-polarization.png"]
    assert (figures / "a-polarization.png").read_text() == "old"
    monkeypatch.setattr(reproduction, "_write_page", write_page)
    assert regenerate(tmp_path / "runs", doc) == ["a", "b"]
    assert sorted(p.name for p in figures.iterdir()) == ["a-polarization.png", "b-polarization.png"]
    assert (figures / "a-polarization.png").read_text() == "new" and "old" not in doc.read_text()


def test_an_unwritable_results_page_is_an_input_error_and_stays_as_it_was(tmp_path, monkeypatch):
    doc = tmp_path / "results.md"
    doc.write_text(PAGE)
    (tmp_path / "runs").mkdir()

    def refuse(path, text):
        raise PermissionError(errno.EACCES, "Permission denied", str(path))

    monkeypatch.setattr(reproduction, "write_text", refuse)
    with pytest.warns(UserWarning), pytest.raises(InputError) as err:
        regenerate(tmp_path / "runs", doc)
    assert err.value.source == str(doc) and "cannot write the results page" in str(err.value)
    assert doc.read_text() == PAGE


def test_an_immutable_results_page_is_an_input_error(tmp_path):
    doc = tmp_path / "results.md"
    doc.write_text(PAGE)
    (tmp_path / "runs").mkdir()
    chattr = shutil.which("chattr")
    if not chattr or subprocess.run([chattr, "+i", str(doc)], capture_output=True).returncode:
        pytest.skip("chattr +i is not possible here (not root, or the file system)")
    try:
        with pytest.warns(UserWarning), pytest.raises(InputError, match="cannot write") as err:
            regenerate(tmp_path / "runs", doc)
    finally:
        subprocess.run([chattr, "-i", str(doc)], check=True)
    assert err.value.source == str(doc) and doc.read_text() == PAGE
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.md", "runs"]  # no temp
