"""Presets with scales, sweeps (resumable, a failed system does not stop the others), run
and sweep analyses on real (tiny) runs, and the bad-input messages."""

from __future__ import annotations

import importlib
import json
import os
import shutil
import sys
import time

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from interrupted import rewind
from typer.testing import CliRunner

from perspectives.cli.app import app
from perspectives.errors import CorruptStateError, InputError
from perspectives.experiments.executors import FunctionExecutor
from perspectives.experiments.presets import apply_overrides, load_preset, preset_names
from perspectives.experiments.sweep import plan_sweep, read_sweep, run_sweep
from perspectives.reporting.run_analysis import analyze_run, analyze_sweep, expected_snapshots
from perspectives.simulation.rundir import read_parts

runner = CliRunner()


pytestmark = pytest.mark.usefixtures("isolated_cache")


def test_case_study_presets_validate_at_cpu_scale_with_the_papers_protocol():
    for name in ("cs1-disruption", "cs2-adversary", "cs3-polarization"):
        assert name in preset_names()
        preset = load_preset(name)
        assert preset.default_scale == "cpu" and set(preset.scales) == {"cpu", "paper"}
        assert preset.scales["cpu"]["reductions"], name
        cpu = preset.config("cpu")
        paper = preset.raw_config("paper")
        # The protocol is kept: update rule, initial fine-tuning, graph structure.
        assert cpu.update.lr == 1e-5 and cpu.update.epochs == 1
        assert all(g.init.lr == 5e-5 and g.init.epochs == 3 for g in cpu.groups)
        assert paper["steps"] == 50 and cpu.steps < 50
    cs1 = load_preset("cs1-disruption")
    assert cs1.raw_config("paper")["groups"][0]["count"] == 25
    assert cs1.raw_config("paper")["communication"]["at"] == 21
    assert cs1.raw_config("paper")["interaction"]["questions"] == 50
    cs2 = load_preset("cs2-adversary").raw_config("paper")
    assert [g["count"] for g in cs2["groups"]] == [5, 1] and cs2["interaction"]["questions"] == 100
    assert cs2["groups"][1]["learning"] is False
    # Sweeps: CS1 2 conditions, CS2 targets {0,1,2,5} x every {2,5,10} (0 targets once),
    # CS3 2 conditions; 2 seeds each.
    counts = {
        n: len(plan_sweep(load_preset(n), "/x"))
        for n in ("cs1-disruption", "cs2-adversary", "cs3-polarization")
    }
    assert counts == {"cs1-disruption": 4, "cs2-adversary": 20, "cs3-polarization": 4}


def test_paper_scale_reads_the_yahoo_data_from_a_local_file(tmp_path, monkeypatch):
    """--scale paper takes the paper's data; a local file in the hub layout stands in."""
    rows = []
    for topic in (0, 1):
        for i in range(1100):
            rows.append(
                {
                    "id": f"{topic}-{i}",
                    "topic": topic,
                    "question_title": f"Question {i} of topic {topic}?",
                    "best_answer": f"Answer {i} of topic {topic}.",
                }
            )
    path = tmp_path / "yahoo.parquet"
    pd.DataFrame(rows).to_parquet(path)
    monkeypatch.setenv("PERSPECTIVES_YAHOO", str(path))
    cfg = load_preset("cs3-polarization").config("paper")
    assert cfg.steps == 50 and [g.count for g in cfg.groups] == [5, 5]
    from perspectives.data.banks import load_bank
    from perspectives.simulation.config import evaluation_prompts

    assert len(load_bank(cfg.question_bank)) == 400
    assert len(evaluation_prompts(cfg)) == 400
    monkeypatch.setenv("PERSPECTIVES_YAHOO", str(tmp_path / "missing.parquet"))
    with pytest.raises(InputError, match="missing.parquet"):
        load_preset("cs1-disruption").config("paper")


def test_overrides_and_scale_errors():
    raw = {"a": {"b": [{"c": 1}, {"c": 2}]}, "d": 1}
    apply_overrides(raw, {"a.b.1.c": 5, "e.f": 3, "d": 4})
    assert raw == {"a": {"b": [{"c": 1}, {"c": 5}]}, "d": 4, "e": {"f": 3}}
    with pytest.raises(InputError, match="no such list item"):
        apply_overrides(raw, {"a.b.7.c": 1})
    with pytest.raises(InputError, match="plain value"):
        apply_overrides(raw, {"d.x": 1})
    with pytest.raises(InputError, match="no such scale"):
        load_preset("cs1-disruption").config("laptop")
    with pytest.raises(InputError, match="no sweep"):
        plan_sweep(load_preset("quickstart"), "/x")
    alone = runner.invoke(app, ["run", "quickstart", "--jobs", "2"])
    assert alone.exit_code == 2 and "add --sweep" in alone.output


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--seeds", "0,1,0"], "'--seeds': each seed once (value: '0,1,0')"),
        (["--conditions", " , "], "'--conditions': name at least one condition"),
        (["--set", "seed=5"], "a sweep sets each system's seed: use --seeds"),
        (["--set", "output=elsewhere"], "a sweep sets each system's output: use --out"),
        (["--out", "FILE"], "is a file, not a folder"),
    ],
)
def test_a_sweep_refuses_options_it_would_silently_override_or_repeat(tmp_path, args, said):
    (tmp_path / "FILE").write_text("x")
    args = [str(tmp_path / "FILE") if a == "FILE" else a for a in args]
    out = ["--out", str(tmp_path / "sweep")] if "--out" not in args else []
    result = runner.invoke(app, ["run", "cs3-polarization", "--sweep", *out, *args])
    assert result.exit_code == 2, result.output
    assert said in " ".join(result.output.split()) and "Traceback" not in result.output
    assert not (tmp_path / "sweep").exists()  # nothing started


def test_run_sweep_side_by_side_records_failures_interrupts_and_progress(tmp_path):
    preset = load_preset("cs3-polarization")
    systems = plan_sweep(preset, tmp_path / "s", seeds=[0, 1])
    waits: list[float] = []  # when the progress callback ran
    spans: dict[tuple, list[float]] = {}  # when each system's run started and ended
    statuses: list[tuple] = []  # the status events, in order

    def fake(system):
        key = (system.condition, system.seed)
        spans[key] = [time.monotonic()]
        try:
            if key == ("unrestricted", 1):
                raise ValueError("no luck")
            time.sleep(1.2)  # long enough for the progress callback to run
        finally:
            spans[key].append(time.monotonic())

    record = run_sweep(
        systems,
        tmp_path / "s",
        preset="cs3-polarization",
        scale="cpu",
        executor=FunctionExecutor(fake, jobs=2),
        on_wait=lambda: waits.append(time.monotonic()),
        on_status=lambda system, status, error: statuses.append(
            ((system.condition, system.seed), status)
        ),
    )
    status = {(s["condition"], s["seed"]): s["status"] for s in record["systems"]}
    assert list(status.values()).count("done") == 3
    assert status[("unrestricted", 1)] == "failed"
    failed = next(s for s in read_sweep(tmp_path / "s")["systems"] if s["status"] == "failed")
    assert failed["error"] == "ValueError: no luck" and "no luck" in failed["traceback"]
    # Each system reported running, then how it ended, once.
    for key in status:
        assert [st for k, st in statuses if k == key] == ["running", status[key]], key
    # Two at a time, side by side: never more, and at some point both.
    edges = sorted([(a, 1) for a, _ in spans.values()] + [(b, -1) for _, b in spans.values()])
    running = np.cumsum([d for _, d in edges])
    assert running.max() == 2
    # 3 runs of 1.2 s in 2 slots take at least 2.4 s, and not all four one after another.
    first, last = min(a for a, _ in spans.values()), max(b for _, b in spans.values())
    assert 2.4 <= last - first < 3 * 1.2
    # The progress callback ran about once a second all along, not only at the start.
    assert sum(first <= w <= last for w in waits) >= 2
    assert waits[0] <= first + 0.5 and max(np.diff(waits)) < 1.5
    assert len(waits) <= (waits[-1] - waits[0]) + 1 + len(systems)

    def interrupted(system):
        raise KeyboardInterrupt

    again = plan_sweep(preset, tmp_path / "i", seeds=[0])
    with pytest.raises(KeyboardInterrupt):
        run_sweep(
            again,
            tmp_path / "i",
            preset="p",
            scale=None,
            executor=FunctionExecutor(interrupted, jobs=2),
        )
    assert "interrupted" in {s["status"] for s in read_sweep(tmp_path / "i")["systems"]}
    with pytest.raises(InputError, match="at least 1"):
        run_sweep(
            again, tmp_path / "i", preset="p", scale=None, executor=FunctionExecutor(fake, jobs=0)
        )
    (tmp_path / "j").mkdir()
    (tmp_path / "j" / "sweep.json").write_text("{oops")
    with pytest.raises(InputError, match="not valid JSON"):
        read_sweep(tmp_path / "j")


def test_sweep_runs_the_grid_skips_finished_and_survives_a_failed_system(tmp_path, sweep_yaml):
    broken = tmp_path / "broken-model"
    broken.mkdir()
    (broken / "config.json").write_text("{not json")
    path = sweep_yaml(
        [
            {"name": "complete", "set": {}},
            {"name": "intra", "set": {"communication": {"type": "intra_class"}}},
            {"name": "broken", "set": {"groups.1.backend": "hf", "groups.1.model": str(broken)}},
        ],
    )
    out = tmp_path / "runs" / "cs3-polarization-cpu"  # where `perspectives results` looks
    result = runner.invoke(app, ["run", str(path), "--sweep", "--out", str(out)])
    assert result.exit_code == 1, result.output
    assert "failed broken seed 0" in " ".join(result.output.split())
    record = read_sweep(out)
    status = {(s["condition"], s["seed"]): s["status"] for s in record["systems"]}
    assert status == {
        ("complete", 0): "done",
        ("intra", 0): "done",
        ("broken", 0): "failed",
        ("complete", 1): "done",
        ("intra", 1): "done",
        ("broken", 1): "failed",
    }
    done = out / "complete" / "seed-1"
    assert json.loads((done / "progress.json").read_text())["last_complete_step"] == 2
    assert not (done / "agents").exists()  # weights of finished systems are not kept
    assert yaml.safe_load((done / "config.yaml").read_text())["seed"] == 1
    # Running it again skips what is finished and retries only the failed systems.
    again = runner.invoke(app, ["run", str(path), "--sweep", "--out", str(out), "--seeds", "1"])
    assert "complete seed 1: skipped (finished)" in again.output
    assert "broken seed 1: failed" in again.output

    # The sweep analysis and report: failed systems are listed, the rest compared.
    rep = runner.invoke(app, ["report", str(out)])
    assert rep.exit_code == 0, rep.output
    assert "failed system" in rep.output
    html = (out / "report.html").read_text()
    assert "broken seed 0: failed" in html and html.count("class='chart'") >= 4
    pol = pd.read_parquet(out / "analysis" / "polarization.parquet")
    assert set(pol["condition"]) == {"complete", "intra"} and set(pol["seed"]) == {0, 1}
    ratios = ["polarization", "polarization_all", "polarization_kernel"]
    assert np.allclose(pol[pol["t"] == 0][ratios], 1.0)
    # In the whole space the class means are at least as far apart as on z1.
    assert (pol["distance_all"] >= pol["distance"] - 1e-9).all()
    disp = pd.read_parquet(out / "analysis" / "dispersion.parquet")
    assert np.allclose(disp[disp["t"] == 0][["spread_rel", "spread_kernel_rel"]], 1.0)
    assert (disp["nn_distance_kernel"] <= 2 * disp["spread_kernel"] + 1e-9).all()
    div = pd.read_parquet(out / "analysis" / "diversity.parquet")
    assert set(div["condition"]) == {"complete", "intra"}
    clusters = pd.read_parquet(out / "analysis" / "clusters.parquet")
    for (condition, seed), d in div.groupby(["condition", "seed"]):
        resp = read_parts(out / condition / f"seed-{seed}", "responses")
        evals = resp[resp["phase"] == "eval"]
        assert (resp["phase"] != "eval").any()  # interview answers are there, not counted
        assert d.set_index("t")["answers"].to_dict() == evals.groupby("t").size().to_dict()
        assert (d["questions"] == evals["question_id"].nunique()).all()
        # distinct and top_share are exactly the shares the evaluation answers give.
        answers = evals.assign(text=evals["text"].astype(str).str.strip())
        by_t = d.set_index("t")
        for t, snap in answers.groupby("t"):
            counts = snap["text"].value_counts()
            assert by_t.loc[t, "distinct"] == len(counts) / len(snap)
            assert by_t.loc[t, "top_share"] == counts.iloc[0] / len(snap)
            assert by_t.loc[t, "top_answer"] == min(counts.index[counts == counts.iloc[0]])
        same = clusters[(clusters["condition"] == condition) & (clusters["seed"] == seed)]
        assert d["t"].tolist() == same["t"].tolist()
    # A record whose folders are swapped counts each run under the other's seed: named.
    kept = (out / "sweep.json").read_text()
    swapped = json.loads(kept)
    for entry in swapped["systems"]:
        if entry["condition"] == "complete":
            entry["folder"] = f"complete/seed-{1 - entry['seed']}"
    (out / "sweep.json").write_text(json.dumps(swapped))
    with pytest.raises(CorruptStateError, match="seed 0 names folder 'complete/seed-1'"):
        analyze_sweep(out)
    (out / "sweep.json").write_text(kept)
    # Folders of two conditions swapped on disk, seeds equal: each run's name says whose.
    (out / "complete" / "seed-0").rename(out / "x")
    (out / "intra" / "seed-0").rename(out / "complete" / "seed-0")
    (out / "x").rename(out / "intra" / "seed-0")
    with pytest.raises(CorruptStateError, match=r"whose run is '.*-intra-seed0', not '.*-comp"):
        analyze_sweep(out)
    # The seed-1 folders, swapped too: the monitor leaves them out of the comparison, named.
    (out / "complete" / "seed-1").rename(out / "x")
    (out / "intra" / "seed-1").rename(out / "complete" / "seed-1")
    (out / "x").rename(out / "intra" / "seed-1")
    from perspectives.reporting.control import compare_sweep_to_control

    _, notes = compare_sweep_to_control(out, "complete", n_permutations=9)
    assert any("intra seed 1: not compared" in n and "whose run is" in n for n in notes), notes
    (out / "intra" / "seed-1").rename(out / "x")
    (out / "complete" / "seed-1").rename(out / "intra" / "seed-1")
    (out / "x").rename(out / "complete" / "seed-1")
    (out / "intra" / "seed-0").rename(out / "x")
    (out / "complete" / "seed-0").rename(out / "intra" / "seed-0")
    (out / "x").rename(out / "complete" / "seed-0")
    early = analyze_run(out / "complete" / "seed-0", upto=1)
    assert early.diversity["t"].tolist() == early.steps == [0, 1]
    for fig in ("polarization", "polarization-kernel", "isomirror", "clusters"):
        assert (out / "analysis" / f"{fig}.png").stat().st_size > 5_000

    # The reproduction page's block is rewritten from the sweep; the prose around it is kept.
    doc = tmp_path / "docs" / "results.md"
    doc.parent.mkdir()
    doc.write_text(
        "intro\n<!-- BEGIN cs3-polarization -->\nold\n<!-- END cs3-polarization -->\n"
        "an ablation, named by its sweep:\n"
        "<!-- BEGIN cs3-polarization-cpu -->\n<!-- END cs3-polarization-cpu -->\n"
        "the first step only:\n"
        "<!-- BEGIN cs3-polarization upto=1 -->\n<!-- END cs3-polarization -->\n"
        "<!-- BEGIN cs2-adversary -->\nnot run\n<!-- END cs2-adversary -->\nend\n"
    )
    res = runner.invoke(app, ["results", str(tmp_path / "runs"), "--doc", str(doc)])
    assert res.exit_code == 0, res.output
    text = doc.read_text()
    assert text.startswith("intro\n") and text.endswith("end\n") and "old" not in text
    assert text.count("| intra | 2 |") == 3 and "Failed: broken seed 0, broken seed 1." in text
    assert "(t <= 1)" in res.output
    assert "not run" in text  # a block without a sweep is left alone
    assert (doc.parent / "figures" / "cs3-polarization-polarization.png").exists()
    assert (doc.parent / "figures" / "cs3-polarization-trajectories-intra.png").exists()
    empty = runner.invoke(app, ["results", str(tmp_path / "docs"), "--doc", str(doc)])
    assert empty.exit_code == 2 and "no sweep folder for any block" in empty.output
    # A comparison beyond the runs' last step would silently end at T: refused.
    doc.write_text("<!-- BEGIN cs3-polarization upto=99 -->\n<!-- END cs3-polarization -->\n")
    beyond = runner.invoke(app, ["results", str(tmp_path / "runs"), "--doc", str(doc)])
    assert beyond.exit_code == 2, beyond.output
    assert "block 'cs3-polarization' asks for upto=99" in beyond.output
    assert "the run has steps 0 to" in beyond.output and "Traceback" not in beyond.output

    # A finished system whose folder is gone is named, not silently left out.
    shutil.rmtree(out / "intra" / "seed-1")
    gone = runner.invoke(app, ["report", str(out)])
    assert gone.exit_code == 0, gone.output
    said = " ".join(gone.output.split())
    assert "missing system intra seed 1: done, but its folder intra/seed-1 is gone" in said
    assert "3 runs over 2 conditions analysed (0 unfinished, 2 failed, 1 missing)" in said
    assert "intra seed 1: done, but its folder is gone" in (out / "report.html").read_text()
    # A dimension asked for holds for every run of the sweep (the elbow gives 2 here).
    fixed = runner.invoke(app, ["analyze", str(out), "--n-components", "3"])
    assert fixed.exit_code == 0, fixed.output
    for run in ("complete/seed-0", "complete/seed-1", "intra/seed-0"):
        summary = json.loads((out / run / "analysis" / "summary.json").read_text())
        assert summary["dimension"] == 3, run


def test_sweep_jobs_run_systems_side_by_side_with_the_same_results(tmp_path, sweep_yaml):
    broken = tmp_path / "broken-model"
    broken.mkdir()
    (broken / "config.json").write_text("{not json")
    conditions = [
        {"name": "complete", "set": {}},
        {"name": "broken", "set": {"groups.1.backend": "hf", "groups.1.model": str(broken)}},
    ]
    path = sweep_yaml(conditions)
    # Both processes need the same initial models at the same time: one fine-tunes each,
    # the other waits for it and loads it from the cache.
    args = ["run", str(path), "--sweep", "--seeds", "0"]
    par = runner.invoke(app, [*args, "--out", str(tmp_path / "par"), "--jobs", "2"])
    assert par.exit_code == 1, par.output
    assert "2 systems at a time, " in par.output
    status = {s["condition"]: s for s in read_sweep(tmp_path / "par")["systems"]}
    assert status["complete"]["status"] == "done"
    assert status["broken"]["status"] == "failed"
    assert "exit code 2" in status["broken"]["error"] and "run.log" in status["broken"]["error"]
    done = tmp_path / "par" / "complete" / "seed-0"
    assert "run complete" in (done / "run.log").read_text()
    assert not (done / "agents").exists()
    # One system at a time, in this process, with the same thread count: the same tables.
    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, len(os.sched_getaffinity(0)) // 2))
    try:
        seq = runner.invoke(app, [*args, "--out", str(tmp_path / "seq")])
    finally:
        torch.set_num_threads(threads)
    assert seq.exit_code == 1, seq.output
    for table in ("responses", "edges"):
        pd.testing.assert_frame_equal(
            read_parts(done, table), read_parts(tmp_path / "seq" / "complete" / "seed-0", table)
        )


def test_analysis_of_an_interrupted_run_names_the_missing_steps(tmp_path, two_classes):
    from perspectives.simulation.config import parse_run_config
    from perspectives.simulation.engine import Simulation

    cfg = parse_run_config(two_classes(steps=4), "t")
    Simulation.create(cfg, tmp_path / "run").run()
    # As if stopped during step 3: its files may be there, but step 2 is the last committed
    # (and no later step was begun).
    rewind(tmp_path / "run", 2, (4,))
    result = analyze_run(tmp_path / "run")
    assert expected_snapshots(cfg) == [0, 1, 2, 3, 4]
    assert result.steps == [0, 1, 2] and result.missing_steps == [3, 4]
    assert result.polarization_kind == "two-class"
    assert result.polarization["polarization"].iloc[0] == pytest.approx(1.0)
    out = runner.invoke(app, ["report", str(tmp_path / "run")])
    assert out.exit_code == 0, out.output
    assert "missing 2 snapshot(s): t = 3..4" in " ".join(out.output.split())
    page = (tmp_path / "run" / "report.html").read_text()
    assert "Incomplete run" in page and "Plotly" in page
    bad = runner.invoke(app, ["report", str(tmp_path)])
    assert bad.exit_code == 2 and "not a run folder" in bad.output


def test_disk_needed_and_the_warning_before_a_sweep_that_may_fill_the_disk(
    tiny_model_dir, tmp_path, monkeypatch, capsys, sweep_yaml
):
    from collections import namedtuple

    from perspectives.cli.app import _warn_disk
    from perspectives.experiments.sweep import disk_needed

    path = sweep_yaml([{"name": "c", "set": {}}], tiny_model_dir)
    systems = plan_sweep(load_preset(str(path)), tmp_path / "out")
    weights = sum(f.stat().st_size for f in tiny_model_dir.glob("*.safetensors"))
    # 4 learning models (tiny_config: 2 + 2), two float32 copies each.
    assert disk_needed(systems[0]) == 2 * 4 * weights
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(10**12, 0, 10**12))
    _warn_disk(systems, tmp_path / "out", jobs=2)
    assert "warning" not in capsys.readouterr().err
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(10**12, 0, 1000))
    _warn_disk(systems, tmp_path / "out", jobs=2)
    err = " ".join(capsys.readouterr().err.split())
    assert "warning:" in err and "fewer --jobs" in err.lower()


def test_the_warning_before_a_sweep_whose_systems_may_not_fit_in_memory(
    tiny_model_dir, tmp_path, monkeypatch, capsys, sweep_yaml
):
    # The module, not the Typer app of the same name that perspectives.cli exports.
    cli = importlib.import_module("perspectives.cli.app")
    from perspectives.experiments.sweep import MEMORY_BETWEEN, MEMORY_LEARNING, memory_needed

    path = sweep_yaml([{"name": "c", "set": {}}], tiny_model_dir)
    systems = plan_sweep(load_preset(str(path)), tmp_path / "out")
    weights = sum(f.stat().st_size for f in tiny_model_dir.glob("*.safetensors"))
    # Four fine-tuned models of one base share its network: one network, fine-tuning.
    assert memory_needed(systems[0]) == MEMORY_LEARNING * weights
    raw = yaml.safe_load(path.read_text())
    raw["update"]["method"] = "memory"  # remembering: the network answers, never learns
    path.write_text(yaml.safe_dump(raw))
    assert memory_needed(plan_sweep(load_preset(str(path)), tmp_path / "o2")[0]) == (
        MEMORY_BETWEEN * weights
    )
    monkeypatch.setattr(cli, "_available_memory", lambda: 1.5 * MEMORY_LEARNING * weights)
    cli._warn_memory(systems, jobs=1)
    assert "warning" not in capsys.readouterr().err
    cli._warn_memory(systems, jobs=2)  # two seeds' systems side by side
    err = " ".join(capsys.readouterr().err.split())
    assert "warning:" in err and "memory available" in err and "fewer --jobs" in err.lower()
    # Where the machine does not say, no warning rather than a guess.
    monkeypatch.setattr(cli, "_available_memory", lambda: None)
    cli._warn_memory(systems, jobs=2)
    assert "warning" not in capsys.readouterr().err
    if sys.platform.startswith("linux"):
        monkeypatch.undo()
        assert 0 < cli._available_memory() < 2**50


def test_set_options_apply_in_order_and_model_reaches_every_group_set():
    from perspectives.cli.app import _overrides

    preset = load_preset("cs3-polarization")  # two groups
    one = "groups=[{name: a, count: 2}]"
    out = _overrides("m", ["groups.0.count=3", one, "groups.0.count=5"], preset)
    raw = apply_overrides({}, out)
    assert raw["groups"] == [{"name": "a", "count": 5, "model": "m"}]
    three = "groups=[{name: a}, {name: b}, {name: c}]"
    raw = apply_overrides({}, _overrides("m", [three], preset))
    assert [g["model"] for g in raw["groups"]] == ["m", "m", "m"]


SYSTEM = """
import signal, sys, time
from perspectives.experiments.executors import stop_with_parent
signal.signal(signal.SIGTERM, lambda *a: sys.exit(143))
stop_with_parent(interval=0.1)
print("watching", flush=True)
time.sleep(60)
"""

SWEEP = """
import os, subprocess, sys
from perspectives.experiments.executors import PARENT_ENV
env = {**os.environ, PARENT_ENV: str(os.getpid())}
cmd = [sys.executable, "-c", sys.argv[1]]
child = subprocess.Popen(
    cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
)
assert child.stdout.readline().strip() == "watching"
print(child.pid, flush=True)
os.kill(os.getpid(), 9)  # the sweep is killed: no chance to stop its systems
"""


def test_a_system_process_stops_when_its_sweep_is_killed():
    import signal
    import subprocess

    sweep = subprocess.run(
        [sys.executable, "-c", SWEEP, SYSTEM], capture_output=True, text=True, timeout=60
    )
    assert sweep.returncode == -signal.SIGKILL, sweep.stderr
    pid = int(sweep.stdout.strip())
    deadline = time.time() + 20
    while time.time() < deadline:
        try:  # gone, or a zombie its new parent has not reaped (a container's PID 1, say)
            if open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] == "Z":
                break
        except (FileNotFoundError, ProcessLookupError):
            break
        time.sleep(0.1)
    else:
        os.kill(pid, signal.SIGKILL)
        raise AssertionError("the system process ran on after its sweep was killed")


def test_a_system_process_warning_reaches_the_sweep(
    tmp_path, tiny_config, tiny_model_dir, monkeypatch
):
    """A system run in its own process writes its output to its run.log; what it warns (here:
    resumed on another dtype path) is warned by the sweep too, naming the system."""
    from interrupted import run_until_interrupted

    from perspectives.experiments.executors import run_in_subprocess
    from perspectives.experiments.sweep import SweepSystem
    from perspectives.models import device
    from perspectives.models.hf_agent import clear_backbones
    from perspectives.simulation.config import parse_run_config
    from perspectives.simulation.rundir import RunFolder

    raw = tiny_config(tiny_model_dir, steps=2)
    folder = tmp_path / "late" / "seed-0"
    monkeypatch.setattr(device, "_chosen", torch.device("cpu"))
    monkeypatch.setattr(device, "_precision", "float32")
    run_until_interrupted(raw, folder, None, at=1)
    clear_backbones()
    monkeypatch.setenv(device.PRECISION_ENV, "bfloat16")  # the system's process computes so
    system = SweepSystem("late", 0, parse_run_config(raw, "t"), folder)
    with pytest.warns(UserWarning) as caught:
        run_in_subprocess(system, threads=1, device="cpu")
    notes = [str(w.message) for w in caught if "compute path" in str(w.message)]
    assert len(notes) == 1 and notes[0].startswith("late seed 0: "), notes
    assert "answer_dtype float32 -> bfloat16" in notes[0]
    assert RunFolder(folder).last_complete_step() == 2
    assert "warning: " in (folder / "run.log").read_text()  # kept in the log as well
