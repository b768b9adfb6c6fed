"""One system's models in two processes of this machine (``--placement processes``): the same
tables as in one process, bit for bit, across an interruption; a host that dies is named."""

from __future__ import annotations

import json
import os
import signal

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from perspectives.cli import app
from perspectives.errors import BackendUnavailable, InputError
from perspectives.simulation import placement as placement_module
from perspectives.simulation.config import parse_run_config
from perspectives.simulation.engine import Simulation
from perspectives.simulation.placement import ProcessPlacement, auto_placement
from perspectives.simulation.rundir import RunFolder, read_parts
from perspectives.space.embed import get_embedder

runner = CliRunner()


def _assert_same(a, b) -> None:
    for table in ("responses", "edges"):
        pd.testing.assert_frame_equal(read_parts(a, table), read_parts(b, table))


def _stopping_at(sim: Simulation, t_stop: int, before=None) -> Simulation:
    """``sim`` stopped by Ctrl-C as step ``t_stop`` starts (after ``before()``, if given)."""
    step = sim._step

    def stop(t: int) -> None:
        if t == t_stop:
            if before is not None:
                before()
            raise KeyboardInterrupt
        step(t)

    sim._step = stop
    return sim


def test_models_in_two_processes_give_the_same_tables_across_a_resume(
    tmp_path, tiny_config, tiny_model_dir
):
    """Interrupted at step 2 and resumed (the hosts load the checkpoint they wrote), a system
    whose fine-tuned models live in two processes equals the same system in this one."""
    cfg = parse_run_config(tiny_config(tiny_model_dir, steps=3), "t")
    here = tmp_path / "here"
    Simulation.create(cfg, here, embedder=get_embedder("hashing")).run()
    out = tmp_path / "processes"
    placement = ProcessPlacement(cfg, out, hosts=2)
    assert placement.threads >= 1
    sim = Simulation.create(cfg, out, embedder=get_embedder("hashing"), placement=placement)
    with pytest.raises(KeyboardInterrupt):
        _stopping_at(sim, 2).run()
    assert RunFolder(out).last_complete_step() == 1 and not placement._hosts  # closed
    again = ProcessPlacement(cfg, out, hosts=2)
    Simulation.resume(out, cfg, embedder=get_embedder("hashing"), placement=again).run()
    _assert_same(here, out)
    timing = read_parts(out, "events").query("kind == 'timing'")
    assert json.loads(timing["detail"].iloc[-1])["placement"] == "processes x2"


def test_a_host_that_dies_stops_the_run_at_its_last_complete_step(tmp_path, tiny_config):
    cfg = parse_run_config(tiny_config("fake", steps=3), "t")
    out = tmp_path / "run"
    placement = ProcessPlacement(cfg, out, hosts=2)
    sim = Simulation.create(cfg, out, embedder=get_embedder("hashing"), placement=placement)
    step = sim._step

    def kill_a_host_at_2(t: int) -> None:
        if t == 2:
            pid = next(iter(placement._hosts[1]._processes))
            os.kill(pid, signal.SIGKILL)
        step(t)

    sim._step = kill_a_host_at_2
    with pytest.raises(BackendUnavailable, match="host process of the placement ended"):
        sim.run()
    assert RunFolder(out).last_complete_step() == 1
    # Resumed in this process, it finishes as an uninterrupted run does.
    Simulation.resume(out, cfg, embedder=get_embedder("hashing")).run()
    here = tmp_path / "here"
    Simulation.create(cfg, here, embedder=get_embedder("hashing")).run()
    _assert_same(here, out)


def test_the_command_line_places_models_in_processes(tmp_path, tiny_config):
    raw = tiny_config("fake", steps=2)
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(raw))
    out = tmp_path / "processes"
    args = ["run", str(path), "--out", str(out), "--placement", "processes", "--actors", "2"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    here = tmp_path / "here"
    Simulation.create(parse_run_config(raw, "t"), here, embedder=get_embedder("hashing")).run()
    _assert_same(out, here)
    raw["sweep"] = {"conditions": [{"name": "only", "set": {}}]}
    path.write_text(yaml.safe_dump(raw))
    swept = runner.invoke(app, ["run", str(path), "--sweep", "--placement", "processes"])
    assert swept.exit_code == 2 and "--placement processes places one system" in " ".join(
        swept.output.split()
    )
    bad = runner.invoke(app, ["run", str(path), "--placement", "threads"])
    assert bad.exit_code == 2 and "`auto`, `local`, `processes` or `ray`" in bad.output


def test_a_placement_needs_a_host_and_refuses_databases(tmp_path, tiny_config):
    from test_databases import forum_config

    cfg = parse_run_config(tiny_config("fake", steps=1), "t")
    with pytest.raises(InputError, match="'hosts'"):
        ProcessPlacement(cfg, tmp_path / "r", hosts=0)
    forum = parse_run_config(forum_config(tiny_config), "t")
    placement = ProcessPlacement(forum, tmp_path / "f", hosts=2)
    sim = Simulation.create(forum, tmp_path / "f", placement=placement)
    with pytest.raises(InputError, match="other processes or on a cluster"):
        sim.run()
    assert not placement._hosts  # refused before any process started


def test_auto_placement_uses_processes_only_where_they_pay_and_change_no_number(
    tmp_path, tiny_config, tiny_model_dir, monkeypatch
):
    """The main job's system (six fine-tuned bundled models) goes to processes on a 2-core
    CPU; one core, a GPU, threads set by the user, small models, remembering models,
    databases or an API's models keep it in one process, each with its reason."""
    from test_databases import forum_config

    from perspectives.experiments.presets import load_preset

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    quickstart = parse_run_config(load_preset("quickstart").raw_config(), "quickstart")
    assert auto_placement(quickstart, cores=2, device="cpu")[0] == "processes"
    assert auto_placement(quickstart, cores=1, device="cpu") == ("local", "one core")
    assert auto_placement(quickstart, cores=8, device="cuda") == ("local", "models on cuda")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert auto_placement(quickstart, cores=2, device="cpu")[1] == "OMP_NUM_THREADS is set"
    monkeypatch.delenv("OMP_NUM_THREADS")
    tiny = parse_run_config(tiny_config(tiny_model_dir), "t")
    assert auto_placement(tiny, cores=2, device="cpu")[1].startswith("models too small")
    memory = quickstart.model_copy(
        update={"update": quickstart.update.model_copy(update={"method": "memory"})}
    )
    assert auto_placement(memory, cores=2, device="cpu")[1] == "society models remember"
    forum = parse_run_config(forum_config(tiny_config), "t")
    assert auto_placement(forum, cores=2, device="cpu")[1] == "the system has databases"
    fake = parse_run_config(tiny_config("fake"), "t")
    assert auto_placement(fake, cores=2, device="cpu")[1] == "a models are served by fake"


def test_the_command_line_places_models_automatically(
    tmp_path, tiny_config, tiny_model_dir, monkeypatch
):
    """By default a run goes to processes where ``auto_placement`` says so (here: a 2-core
    CPU and the tiny model let through), with the same tables as in one process."""
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(placement_module, "HOSTS_WORTH_PARAMETERS", 0)
    monkeypatch.setattr(placement_module, "available_cores", lambda: 2)
    raw = tiny_config(tiny_model_dir, steps=1)
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(raw))
    out = tmp_path / "auto"
    result = runner.invoke(app, ["run", str(path), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "models in 2 processes (2 cores, fine-tuned models" in " ".join(result.output.split())
    timing = read_parts(out, "events").query("kind == 'timing'")
    assert json.loads(timing["detail"].iloc[-1])["placement"] == "processes x2"
    monkeypatch.setattr(placement_module, "HOSTS_WORTH_PARAMETERS", 10**12)
    here = tmp_path / "here"
    result = runner.invoke(app, ["run", str(path), "--out", str(here)])
    assert result.exit_code == 0 and "processes" not in result.output
    _assert_same(out, here)
