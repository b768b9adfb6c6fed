"""Shared prefixes: which systems are the same up to a step, and a sweep that runs those steps
once gives the tables of one that runs every system from t = 0."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from perspectives.cli.app import app
from perspectives.errors import InputError
from perspectives.experiments.fork import shared_steps
from perspectives.experiments.presets import load_preset
from perspectives.experiments.sweep import disk_needed, plan_sweep, read_sweep
from perspectives.simulation.config import parse_run_config
from perspectives.simulation.engine import Simulation
from perspectives.simulation.rundir import RunFolder, last_complete_step, read_parts

runner = CliRunner()

pytestmark = pytest.mark.usefixtures("isolated_cache")


def plan(name, tmp_path, **kw):
    return {(s.condition, s.seed): s for s in plan_sweep(load_preset(name), tmp_path, **kw)}


def test_case_study_conditions_share_the_steps_before_they_differ(tmp_path):
    cs1 = plan("cs1-disruption", tmp_path, scale="cpu")
    at = cs1["disruption", 0].cfg.communication.at
    # The same system until the disruption at t*: steps 0..t*-1 are shared, per seed.
    assert shared_steps(cs1["disruption", 0].cfg, cs1["no-disruption", 0].cfg) == at - 1
    assert shared_steps(cs1["disruption", 0].cfg, cs1["no-disruption", 1].cfg) == -1
    assert shared_steps(cs1["disruption", 0].cfg, cs1["disruption", 0].cfg) == 20
    late = cs1["no-disruption", 1]
    assert late.source is cs1["disruption", 1] and late.fork_step == at - 1
    assert cs1["disruption", 1].keep_checkpoints == (at - 1,)

    cs2 = plan("cs2-adversary", tmp_path, scale="cpu")
    # Attacks at t = 1, 1 + K, ...: every 2nd and every 5th step first differ at t = 3,
    # every 5th and every 10th at t = 6; another number of targets differs from t = 1.
    assert cs2["targets-2-every-5", 0].source is cs2["targets-2-every-2", 0]
    assert cs2["targets-2-every-5", 0].fork_step == 2
    assert cs2["targets-2-every-10", 0].source is cs2["targets-2-every-5", 0]
    assert cs2["targets-2-every-10", 0].fork_step == 5
    assert cs2["targets-2-every-5", 0].keep_checkpoints == (5,)
    assert shared_steps(cs2["targets-1-every-2", 0].cfg, cs2["targets-2-every-2", 0].cfg) == 0
    assert cs2["targets-2-every-2", 0].source is None and cs2["targets-0", 1].source is None
    # A kept checkpoint is one more copy of the weights on disk.
    assert disk_needed(cs2["targets-2-every-5", 0]) == 1.5 * disk_needed(
        cs2["targets-2-every-10", 0]
    )

    cs3 = plan("cs3-polarization", tmp_path, scale="cpu")
    assert all(s.source is None for s in cs3.values())  # intra-class differs from t = 1
    off = plan("cs1-disruption", tmp_path, scale="cpu", share_steps=False)
    assert all(s.source is None and not s.keep_checkpoints for s in off.values())


def test_a_system_already_started_resumes_its_own_steps(tmp_path):
    late = plan("cs1-disruption", tmp_path, scale="cpu")["no-disruption", 0]
    late.folder.mkdir(parents=True)
    (late.folder / "run.json").write_text("{}")  # started before, without a source
    cs1 = plan("cs1-disruption", tmp_path, scale="cpu")
    assert cs1["no-disruption", 0].source is None
    assert cs1["disruption", 0].keep_checkpoints == ()  # no one starts from it
    assert cs1["no-disruption", 1].source is cs1["disruption", 1]
    # A source past the step without its checkpoint cannot give it; with it, it can.
    source = cs1["disruption", 1].folder
    source.mkdir(parents=True)
    (source / "progress.json").write_text('{"last_complete_step": 12}')
    cs1 = plan("cs1-disruption", tmp_path, scale="cpu")
    assert cs1["no-disruption", 1].source is None and cs1["disruption", 1].keep_checkpoints == ()
    (source / "checkpoints" / "step-00008").mkdir(parents=True)
    cs1 = plan("cs1-disruption", tmp_path, scale="cpu")
    assert cs1["no-disruption", 1].source is cs1["disruption", 1]


def test_a_sweep_of_some_conditions_only(tmp_path):
    some = plan(
        "cs2-adversary", tmp_path, scale="cpu", conditions=["targets-2-every-5", "targets-0"]
    )
    assert [(s.condition, s.seed) for s in some.values()] == [
        ("targets-0", 0),
        ("targets-2-every-5", 0),
        ("targets-0", 1),
        ("targets-2-every-5", 1),
    ]
    assert all(s.source is None for s in some.values())  # its source is not in the sweep
    with pytest.raises(InputError, match="it has: targets-0, targets-1-every-2") as err:
        plan("cs2-adversary", tmp_path, scale="cpu", conditions=["targets-3"])
    assert err.value.field == "conditions" and err.value.value == "targets-3"
    bad = runner.invoke(app, ["run", "cs2-adversary", "--sweep", "--conditions", "targets-3"])
    assert bad.exit_code == 2 and "no such condition in the sweep" in " ".join(bad.output.split())
    bad = runner.invoke(app, ["run", "cs2-adversary", "--conditions", "targets-0"])
    assert bad.exit_code == 2 and "add --sweep" in bad.output


def test_shared_steps_end_where_the_configs_or_the_graphs_may_differ(tiny_model_dir, tiny_config):
    def cfg(**over):
        return parse_run_config(tiny_config(tiny_model_dir, steps=6, **over), "t")

    complete = cfg()
    later = {"type": "switch", "at": 4, "before": {"type": "complete"}}
    assert (
        shared_steps(complete, cfg(communication={**later, "after": {"type": "intra_class"}})) == 3
    )
    # Nearest neighbours depend on the perspectives, which may differ once anything has.
    nn = cfg(communication={**later, "after": {"type": "nearest_neighbor"}})
    assert shared_steps(complete, nn) == 3
    other_nn = cfg(communication={**later, "at": 5, "after": {"type": "nearest_neighbor"}})
    assert shared_steps(nn, other_nn) == 3
    # Random graphs: the same edges only with the same draws.
    er = cfg(communication={"type": "erdos_renyi", "p": 0.5})
    assert shared_steps(er, cfg(communication={"type": "erdos_renyi", "p": 0.5})) == 6
    assert shared_steps(er, cfg(communication={"type": "erdos_renyi", "p": 0.6})) < 6
    # Anything else that differs differs from t = 0.
    assert shared_steps(complete, cfg(update={"lr": 2e-3, "batch_size": 4})) == -1
    assert shared_steps(complete, cfg(seed=4)) == -1


def test_fork_run_refuses_a_step_without_its_checkpoint_and_a_run_folder(tmp_path, tiny_config):
    raw = tiny_config("fake", steps=3)
    # A static, fine-tuned model (an adversary) too: it must not read from a checkpoint that goes.
    raw["groups"][1].update(learning=False, init=dict(raw["groups"][0]["init"]))
    cfg = parse_run_config(raw, "t")
    Simulation.create(cfg, tmp_path / "a", keep_checkpoints=frozenset({1})).run()
    assert sorted(p.name for p in (tmp_path / "a" / "checkpoints").iterdir()) == [
        "step-00001",
        "step-00003",
    ]
    with pytest.raises(InputError, match="no complete step 0 with its checkpoint"):
        RunFolder(tmp_path / "a").fork(0, cfg, tmp_path / "b")
    with pytest.raises(InputError, match="already a run folder"):
        RunFolder(tmp_path / "a").fork(1, cfg, tmp_path / "a")
    # A fork interrupted before it committed leaves files that the next fork replaces.
    (tmp_path / "b" / "tables" / "edges").mkdir(parents=True)
    (tmp_path / "b" / "tables" / "edges" / "step-00003.parquet").write_text("half")
    RunFolder(tmp_path / "a").fork(1, cfg, tmp_path / "b")
    assert sorted(p.name for p in (tmp_path / "b" / "tables" / "edges").iterdir()) == [
        "step-00000.parquet",
        "step-00001.parquet",
    ]
    run = json.loads((tmp_path / "b" / "run.json").read_text())
    assert run["forked_from"] == {"run": "../a", "step": 1}
    Simulation.create(cfg, tmp_path / "b").run()
    for table in ("responses", "edges"):
        pd.testing.assert_frame_equal(
            read_parts(tmp_path / "a", table), read_parts(tmp_path / "b", table)
        )


def _late_intra_sweep(tmp_path, tiny_config):
    """A sweep of two systems that are one until t = 2 (steps 0 and 1 shared)."""
    raw = tiny_config("fake", steps=3)
    switch = {"type": "switch", "at": 2, "before": {"type": "complete"}}
    late = {"communication": {**switch, "after": {"type": "intra_class"}}}
    raw["sweep"] = {
        "seeds": [0],
        "conditions": [{"name": "complete", "set": {}}, {"name": "late-intra", "set": late}],
    }
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_a_sweep_that_shares_steps_gives_the_tables_of_one_that_does_not(tmp_path, tiny_config):
    path = _late_intra_sweep(tmp_path, tiny_config)
    # Side by side, the later system waits for the step it starts from; one at a time, it
    # starts from the finished system's kept checkpoint.
    for jobs in (2, 1):
        out = tmp_path / f"shared-{jobs}"
        res = runner.invoke(
            app, ["run", str(path), "--sweep", "--jobs", str(jobs), "--out", str(out)]
        )
        assert res.exit_code == 0, res.output
        text = " ".join(res.output.split())
        assert "1 systems start from a step they share with another: 2 of 8 steps" in text
        record = {s["condition"]: s for s in read_sweep(out)["systems"]}
        assert record["late-intra"]["forked_from"] == {
            "condition": "complete",
            "seed": 0,
            "step": 1,
        }
        assert "forked_from" not in record["complete"]
        assert "late-intra seed 0: starts from complete at step 1" in text
    # Run again, everything is skipped, and the record still says where each system started.
    again = runner.invoke(app, ["run", str(path), "--sweep", "--out", str(tmp_path / "shared-1")])
    assert again.exit_code == 0 and "late-intra seed 0: skipped (finished)" in again.output
    record = {s["condition"]: s for s in read_sweep(tmp_path / "shared-1")["systems"]}
    assert record["late-intra"]["forked_from"] == {"condition": "complete", "seed": 0, "step": 1}
    # Run again with another option: refused before anything runs, naming the systems, where
    # it would have skipped them as finished (their tables are of the old config).
    before = (tmp_path / "shared-1" / "sweep.json").read_text()
    other = runner.invoke(
        app,
        [
            "run",
            str(path),
            "--sweep",
            "--out",
            str(tmp_path / "shared-1"),
            "--set",
            "interaction.questions=2",
        ],
    )
    text = " ".join(other.output.split())
    assert other.exit_code == 2 and "run from another config" in text, other.output
    assert "complete/seed-0" in text and "late-intra/seed-0" in text
    assert (tmp_path / "shared-1" / "sweep.json").read_text() == before
    # Another seed with another option would mix two grids in one folder: refused too.
    mixed = runner.invoke(
        app,
        ["run", str(path), "--sweep", "--out", str(tmp_path / "shared-1")]
        + ["--seeds", "1", "--set", "interaction.questions=2"],
    )
    text = " ".join(mixed.output.split())
    assert mixed.exit_code == 2 and "complete/seed-0, late-intra/seed-0: run from" in text
    assert (tmp_path / "shared-1" / "sweep.json").read_text() == before
    assert not (tmp_path / "shared-1" / "complete" / "seed-1").exists()
    alone = runner.invoke(
        app, ["run", str(path), "--sweep", "--out", str(tmp_path / "alone"), "--no-share-steps"]
    )
    assert alone.exit_code == 0, alone.output
    assert "start from a step" not in alone.output
    for cond in ("complete", "late-intra"):
        b = tmp_path / "alone" / cond / "seed-0"
        for jobs in (2, 1):
            a = tmp_path / f"shared-{jobs}" / cond / "seed-0"
            assert not (a / "checkpoints").exists() and not (a / "agents").exists()
            for table in ("responses", "edges"):
                pd.testing.assert_frame_equal(read_parts(a, table), read_parts(b, table))
    edges = read_parts(tmp_path / "shared-2" / "late-intra" / "seed-0", "edges")
    assert len(edges[edges["t"] == 1]) == 12 and len(edges[edges["t"] == 2]) == 4


def test_side_by_side_a_system_waits_for_the_step_it_starts_from(tmp_path):
    """The scheduling alone (no models): the later system starts once its source has reached
    the shared step, from a copy of it, and the kept checkpoint goes when nobody needs it."""
    import time

    from perspectives.experiments.executors import FunctionExecutor
    from perspectives.experiments.sweep import run_sweep

    systems = plan_sweep(load_preset("cs1-disruption"), tmp_path / "s", "cpu", seeds=[0])
    source, later = systems
    k = later.fork_step
    seen = {}

    def step(folder, t):
        (folder / "checkpoints" / f"step-{t:05d}" / "m0").mkdir(parents=True, exist_ok=True)
        (folder / "progress.json").write_text(json.dumps({"last_complete_step": t}))

    def fake(system):
        folder = system.folder
        folder.mkdir(parents=True, exist_ok=True)
        seen[system.condition] = (time.monotonic(), last_complete_step(folder))
        if system is source:
            assert system.keep_checkpoints == (k,)
            time.sleep(1.5)
            step(folder, k)
            time.sleep(1.5)
            step(folder, system.cfg.steps)
        else:
            step(folder, system.cfg.steps)

    record = run_sweep(
        systems,
        tmp_path / "s",
        preset="cs1-disruption",
        scale="cpu",
        executor=FunctionExecutor(fake, jobs=2),
    )
    entries = {e["condition"]: e for e in record["systems"]}
    assert entries["no-disruption"]["forked_from"] == {
        "condition": "disruption",
        "seed": 0,
        "step": k,
    }
    # It started after the source's step k, from a copy of it.
    assert seen["no-disruption"][0] - seen["disruption"][0] >= 1.4
    assert seen["no-disruption"][1] == k
    assert not (source.folder / "checkpoints").exists()
    assert not (later.folder / "checkpoints").exists()


def test_a_sweep_refuses_to_start_a_system_from_a_source_of_another_config(tmp_path):
    """A sweep interrupted after its first system passed the shared step, run again with other
    options: the later system must not start from the old system's steps."""
    from perspectives.errors import ConfigError
    from perspectives.experiments.executors import FunctionExecutor
    from perspectives.experiments.sweep import run_sweep

    systems = plan_sweep(load_preset("cs1-disruption"), tmp_path / "s", "cpu", seeds=[0])
    source, later = systems
    assert later.source is source
    source.run.create(later.cfg)  # the folder holds a run of another config
    (source.folder / "progress.json").write_text(json.dumps({"last_complete_step": 9}))
    (source.folder / "checkpoints" / f"step-{later.fork_step:05d}").mkdir(parents=True)
    ran = []
    with pytest.raises(ConfigError, match="run from another config") as err:
        run_sweep(
            systems,
            tmp_path / "s",
            preset="cs1-disruption",
            scale="cpu",
            executor=FunctionExecutor(ran.append, jobs=2),
        )
    assert "'--out': disruption/seed-0: run from another config" in str(err.value)
    assert err.value.source == str(tmp_path / "s")
    assert ran == [] and not later.folder.exists()
    assert not (tmp_path / "s" / "sweep.json").exists()


def test_a_second_sweep_into_a_folder_in_use_is_refused(tmp_path):
    from perspectives.errors import RunFolderBusy
    from perspectives.experiments.executors import FunctionExecutor
    from perspectives.experiments.sweep import SWEEP_LOCK, run_sweep
    from perspectives.store import file_lock

    systems = plan_sweep(load_preset("cs1-disruption"), tmp_path / "s", "cpu", seeds=[0])
    ran = []
    with file_lock(tmp_path / "s" / SWEEP_LOCK):  # as the first sweep's process holds it
        with pytest.raises(RunFolderBusy, match="another sweep is running in this folder"):
            run_sweep(
                systems,
                tmp_path / "s",
                preset="cs1-disruption",
                scale="cpu",
                executor=FunctionExecutor(ran.append),
            )
    assert ran == [] and not (tmp_path / "s" / "sweep.json").exists()


def test_a_sweep_interrupted_while_it_copies_a_source_s_steps_goes_on(
    tmp_path, tiny_config, monkeypatch
):
    """Ctrl-C during the copy of the shared steps left a folder that blocked the whole sweep
    on its next run, and had removed the source's checkpoint it was copying."""
    import perspectives.simulation.rundir as rundir

    path = _late_intra_sweep(tmp_path, tiny_config)
    args = ["run", str(path), "--sweep", "--jobs", "1"]
    copytree = rundir.shutil.copytree

    def interrupted(src, dst, *args, **kw):  # the step parts linked, the checkpoint copied
        copytree(src, dst, *args, **kw)
        if Path(dst).name.startswith("step-"):  # not its subfolders (copytree recurses)
            raise KeyboardInterrupt

    monkeypatch.setattr(rundir.shutil, "copytree", interrupted)
    out = tmp_path / "out"
    res = runner.invoke(app, [*args, "--out", str(out)])
    assert res.exit_code == 130, res.output
    monkeypatch.setattr(rundir.shutil, "copytree", copytree)
    source, copy = out / "complete" / "seed-0", out / "late-intra" / "seed-0"
    assert (source / "checkpoints" / "step-00001").is_dir()  # kept for the copy to come
    assert not (copy / "run.json").exists() and not (copy / "progress.json").exists()
    assert any((copy / "tables").rglob("step-*"))  # which a run folder without its record refuses
    res = runner.invoke(app, [*args, "--out", str(out)])
    assert res.exit_code == 0, res.output
    record = {s["condition"]: s for s in read_sweep(out)["systems"]}
    assert record["late-intra"]["status"] == "done"
    assert record["late-intra"]["forked_from"]["step"] == 1
    assert not (source / "checkpoints").exists()  # gone once the copy was made

    # The source's checkpoint lost as well: the system runs from t = 0, over the leftovers.
    monkeypatch.setattr(rundir.shutil, "copytree", interrupted)
    again = tmp_path / "again"
    assert runner.invoke(app, [*args, "--out", str(again)]).exit_code == 130
    monkeypatch.setattr(rundir.shutil, "copytree", copytree)
    import shutil

    shutil.rmtree(again / "complete" / "seed-0" / "checkpoints")
    res = runner.invoke(app, [*args, "--out", str(again)])
    assert res.exit_code == 0, res.output
    record = {s["condition"]: s for s in read_sweep(again)["systems"]}
    assert record["late-intra"]["status"] == "done" and "forked_from" not in record["late-intra"]
    for cond in ("complete", "late-intra"):
        for table in ("responses", "edges"):
            pd.testing.assert_frame_equal(
                read_parts(again / cond / "seed-0", table), read_parts(out / cond / "seed-0", table)
            )
