"""Many machines, for real: Ray clusters started by the tests on this machine.

A session's two-node cluster (``ray.cluster_utils.Cluster``: a head and a second node, each
its own raylet, one CPU each) runs sweeps of small systems as tasks and a system's models in
actors; the command line starts a local cluster of its own (``ray.init``) and is stopped by
a signal mid-sweep. Everything is compared with what the same systems give in one process.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

import pandas as pd
import pytest
import ray
import torch
import yaml
from ray.cluster_utils import Cluster
from typer.testing import CliRunner

from perspectives.cli.app import app
from perspectives.cluster import RayExecutor, RayPlacement, require_ray
from perspectives.errors import InputError
from perspectives.experiments.executors import FunctionExecutor
from perspectives.experiments.presets import load_preset
from perspectives.experiments.sweep import plan_sweep, read_sweep, run_sweep
from perspectives.simulation.config import parse_run_config
from perspectives.simulation.engine import Simulation
from perspectives.simulation.rundir import LEASE_FILE, RunFolder, read_parts
from perspectives.space.embed import get_embedder

runner = CliRunner()
LATE_INTRA = {
    "type": "switch",
    "at": 2,
    "before": {"type": "complete"},
    "after": {"type": "intra_class"},
}
pytestmark = pytest.mark.usefixtures("isolated_cache")


@pytest.fixture(scope="module")
def cluster():
    """A head and a second node on this machine, one CPU each; this process is the driver."""
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    c.add_node(num_cpus=1)
    c.wait_for_nodes()
    ray.init(address=c.address, log_to_driver=False)
    yield c
    ray.shutdown()
    c.shutdown()


def _tables(folder) -> dict:
    return {k: read_parts(folder, k) for k in ("responses", "edges")}


def _assert_same(a, b) -> None:
    for name, table in _tables(a).items():
        pd.testing.assert_frame_equal(table, _tables(b)[name], check_like=False)


def _sweep_file(tmp_path, raw: dict) -> str:
    raw = {
        **raw,
        "sweep": {
            "seeds": [0, 1],
            "conditions": [
                {"name": "complete", "set": {}},
                # The same system as "complete" until step 1: it starts from its copy.
                {"name": "late-intra", "set": {"communication": LATE_INTRA}},
            ],
        },
    }
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(raw))
    return str(path)


def _one_thread_here(fn):
    """Run ``fn`` with one torch thread here, as each system and actor has on the cluster."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return fn()
    finally:
        torch.set_num_threads(threads)


def _in_process(system) -> None:
    Simulation.create(
        system.cfg,
        system.folder,
        embedder=get_embedder("hashing"),
        keep_checkpoints=frozenset(system.keep_checkpoints),
    ).run()


@pytest.mark.parametrize("model", ["fake", "tiny"])
def test_a_sweep_on_two_nodes_gives_the_local_tables(
    cluster, tmp_path, tiny_config, tiny_model_dir, model
):
    raw = tiny_config("fake" if model == "fake" else tiny_model_dir, steps=2)
    preset = load_preset(_sweep_file(tmp_path, raw))
    seeds = [0, 1] if model == "fake" else [0]
    on_ray = plan_sweep(preset, tmp_path / "ray", seeds=seeds)
    executor = RayExecutor(embedder="hashing", cpus_per_system=1)
    record = run_sweep(on_ray, tmp_path / "ray", preset="p", scale=None, executor=executor)
    assert {s["status"] for s in record["systems"]} == {"done"}
    nodes = {w["node"] for w in executor.where.values()}
    assert len(executor.where) == len(on_ray)
    assert nodes <= {n["NodeID"] for n in ray.nodes()}
    assert len(nodes) == 2, "the systems should have run on both nodes"
    late = [s for s in record["systems"] if s["condition"] == "late-intra"]
    assert {s["forked_from"]["step"] for s in late} == {1}  # shared steps ran once
    here = plan_sweep(preset, tmp_path / "here", seeds=seeds)
    _one_thread_here(
        lambda: run_sweep(
            here, tmp_path / "here", preset="p", scale=None, executor=FunctionExecutor(_in_process)
        )
    )
    for a, b in zip(on_ray, here, strict=True):
        _assert_same(a.folder, b.folder)
        assert not (a.folder / LEASE_FILE).exists()  # released


def test_a_killed_worker_is_retried_and_its_system_resumes_exactly(
    cluster, tmp_path, tiny_config, tiny_model_dir
):
    raw = tiny_config(tiny_model_dir, steps=4)
    preset = load_preset(_sweep_file(tmp_path, raw))
    (system,) = plan_sweep(preset, tmp_path / "ray", seeds=[0], conditions=["complete"])
    executor = RayExecutor(embedder="hashing", max_retries=2)
    failure: list[BaseException] = []

    def run() -> None:
        try:
            executor.run(system)
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            failure.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    progress = system.folder / "progress.json"
    deadline = time.time() + 300
    while time.time() < deadline:
        if progress.exists() and json.loads(progress.read_text())["last_complete_step"] >= 1:
            break
        time.sleep(0.05)
    killed = json.loads((system.folder / LEASE_FILE).read_text())["pid"]
    os.kill(killed, signal.SIGKILL)  # the worker dies mid-system, its lease left behind
    thread.join(600)
    assert not failure, failure
    assert executor.where[str(system.folder.resolve())]["pid"] != killed
    assert system.run.last_complete_step() == 4
    straight = tmp_path / "straight"
    _one_thread_here(
        lambda: Simulation.create(system.cfg, straight, embedder=get_embedder("hashing")).run()
    )
    _assert_same(system.folder, straight)


def test_models_in_two_actors_give_the_same_tables_bitwise(
    cluster, tmp_path, tiny_config, tiny_model_dir
):
    """Interrupted at step 2 and resumed (the actors load the checkpoint they wrote), a
    system whose models live in two actors, one per node, equals the same system in one
    process, bit for bit."""
    raw = tiny_config(tiny_model_dir, steps=3)
    cfg = parse_run_config(raw, "t")
    here = tmp_path / "here"
    _one_thread_here(lambda: Simulation.create(cfg, here, embedder=get_embedder("hashing")).run())
    out = tmp_path / "actors"
    placement = RayPlacement(cfg, out, actors=2, embedder="hashing")
    sim = Simulation.create(cfg, out, embedder=get_embedder("hashing"), placement=placement)
    step = sim._step

    def stop_at_2(t: int) -> None:
        if t == 2:
            raise KeyboardInterrupt
        step(t)

    sim._step = stop_at_2
    with pytest.raises(KeyboardInterrupt):
        sim.run()
    assert RunFolder(out).last_complete_step() == 1
    # Questions, pairs and answers cross the wire, never weights: a few kB a step.
    assert 1_000 < placement.sent < 50_000 and 500 < placement.received < 50_000
    again = RayPlacement(cfg, out, actors=2, embedder="hashing")
    Simulation.resume(out, cfg, embedder=get_embedder("hashing"), placement=again).run()
    _assert_same(here, out)
    timing = read_parts(out, "events").query("kind == 'timing'")
    assert json.loads(timing["detail"].iloc[-1])["placement"] == "ray x2"


def test_the_command_line_places_models_on_the_cluster(cluster, tmp_path, tiny_config):
    raw = tiny_config("fake", steps=2)
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(raw))
    out = tmp_path / "actors"
    result = runner.invoke(
        app, ["run", str(path), "--out", str(out), "--placement", "ray", "--actors", "2"]
    )
    assert result.exit_code == 0, result.output
    here = tmp_path / "here"
    Simulation.create(parse_run_config(raw, "t"), here, embedder=get_embedder("hashing")).run()
    _assert_same(out, here)


def test_a_sweep_stopped_by_a_signal_resumes_on_another_cluster(
    cluster, tmp_path, tiny_config, tiny_model_dir
):
    """The command line starts its own local cluster; SIGTERM (like Ctrl-C) cancels the
    tasks, which keep their complete steps; the sweep then finishes on the test's cluster
    with the same tables as one process gives."""
    raw = tiny_config(tiny_model_dir, steps=10)  # too many to finish before the signal lands
    path = _sweep_file(tmp_path, raw)
    out = tmp_path / "sweep"
    cmd = [sys.executable, "-m", "perspectives.cli.app", "run", path, "--sweep", "--out", str(out)]
    cmd += ["--seeds", "0", "--conditions", "complete", "--executor", "ray"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    progress = out / "complete" / "seed-0" / "progress.json"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if progress.exists() and json.loads(progress.read_text())["last_complete_step"] >= 1:
            break
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    (entry,) = read_sweep(out)["systems"]
    assert entry["status"] == "interrupted"
    folder = RunFolder(out / "complete" / "seed-0")
    assert 1 <= folder.last_complete_step() < 10
    assert not (folder.path / LEASE_FILE).exists()  # the cancelled task let the folder go
    again = runner.invoke(
        app, ["run", path, "--sweep", "--out", str(out), "--seeds", "0", "--executor", "ray"]
    )
    assert again.exit_code == 0, again.output
    assert "on Ray: each system a task of 1 CPU(s)" in again.output
    assert folder.last_complete_step() == 10
    straight = tmp_path / "straight"
    _one_thread_here(lambda: Simulation.create(folder.read_config(), straight).run())
    _assert_same(folder.path, straight)


def test_without_ray_the_error_says_how_to_install_it(monkeypatch, tmp_path, tiny_config):
    monkeypatch.setitem(sys.modules, "ray", None)  # as if it were not installed
    with pytest.raises(InputError, match=r"pip install 'perspectives\[ray\]'"):
        require_ray()
    path = tmp_path / "sweep.yaml"
    path.write_text(_sweep_text(tiny_config))
    result = runner.invoke(app, ["run", str(path), "--sweep", "--executor", "ray"])
    assert result.exit_code == 2
    assert "pip install 'perspectives[ray]'" in " ".join(result.output.split())


def _sweep_text(tiny_config) -> str:
    raw = tiny_config("fake", steps=1)
    raw["sweep"] = {"conditions": [{"name": "only", "set": {}}]}
    return yaml.safe_dump(raw)


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["--executor", "ray"], "add --sweep"),
        (["--executor", "slurm", "--sweep"], "`local` or `ray`, not 'slurm'"),
        (["--placement", "ray", "--sweep"], "with --executor ray"),
        (["--executor", "ray", "--sweep", "--jobs", "2"], "--jobs is for --executor local"),
    ],
)
def test_cluster_options_that_do_not_go_together(tmp_path, tiny_config, args, match):
    path = tmp_path / "sweep.yaml"
    path.write_text(_sweep_text(tiny_config))
    result = runner.invoke(app, ["run", str(path), *args])
    assert result.exit_code == 2
    assert match in " ".join(re.sub("[│╭╮╰╯─]", " ", result.output).split())


def test_databases_are_refused_with_models_on_a_cluster(tmp_path, tiny_config):
    from test_databases import forum_config

    cfg = parse_run_config(forum_config(tiny_config), "t")
    placement = RayPlacement(cfg, tmp_path / "r", actors=2)
    sim = Simulation.create(cfg, tmp_path / "r", placement=placement)
    with pytest.raises(InputError, match="field 'databases': .* not yet supported"):
        sim.run()
    assert not placement._hosts  # refused before any actor started
