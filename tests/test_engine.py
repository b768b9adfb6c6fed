"""The simulation engine: config validation, determinism, resume after SIGKILL, analysis."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
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
from perspectives.errors import InputError, RunFolderBusy
from perspectives.models.device import current_device
from perspectives.models.hf_agent import HFAgent, clear_backbones
from perspectives.simulation.config import parse_run_config
from perspectives.simulation.engine import Simulation
from perspectives.simulation.history import load_history
from perspectives.simulation.rundir import read_parts

runner = CliRunner()


pytestmark = pytest.mark.usefixtures("isolated_cache")


def tables(out):
    return {name: read_parts(out, name) for name in ("responses", "edges")}


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"stepz": 3}, r"field 'stepz': Extra inputs are not permitted"),
        ({"steps": 0}, r"field 'steps': Input should be greater than or equal to 1"),
        ({"steps": "many"}, r"field 'steps'"),
        (
            {"communication": {"type": "isolate", "models": ["nobody"]}},
            r"field 'communication.models': names no model, group or class.*nobody",
        ),
        ({"communication": {"type": "ring"}}, r"field 'communication': unknown type"),
        ({"interaction": {"questions": 10_000}}, r"field 'interaction.questions': more questions"),
    ],
)
def test_invalid_configs_fail_before_any_work(tiny_model_dir, change, match, tiny_config):
    with pytest.raises(InputError, match=match):
        parse_run_config(tiny_config(tiny_model_dir, **change), "cfg.yaml")


def test_duplicate_evaluation_prompts_are_refused(tiny_model_dir, tmp_path, tiny_config):
    prompts = tmp_path / "eval.txt"
    prompts.write_text("Same question?\nOther?\nSame question?\n")
    raw = tiny_config(tiny_model_dir, evaluation={"prompts": str(prompts)})
    with pytest.raises(InputError, match="duplicate"):
        parse_run_config(raw, "cfg.yaml")


def test_same_config_and_seed_same_tables(tiny_model_dir, tmp_path, tiny_config, run_to_end):
    a = tables(run_to_end(tiny_config(tiny_model_dir), tmp_path / "a"))
    clear_backbones()
    b = tables(run_to_end(tiny_config(tiny_model_dir), tmp_path / "b"))
    pd.testing.assert_frame_equal(a["responses"], b["responses"])
    pd.testing.assert_frame_equal(a["edges"], b["edges"])
    for t in range(4):
        name = f"step-{t:05d}.npy"
        np.testing.assert_allclose(
            np.load(tmp_path / "a" / "embeddings" / name),
            np.load(tmp_path / "b" / "embeddings" / name),
            atol=1e-6,
        )
    resp = a["responses"]
    assert set(resp["phase"]) == {"eval", "interview"}
    assert (resp[resp.phase == "eval"].groupby("t").size() == 4 * 4).all()
    assert (resp[resp.phase == "interview"].groupby("t").size() == 4 * 3).all()
    assert len(a["edges"]) == 3 * 12  # complete graph on 4 models, 3 steps


def test_skips_static_models_and_nearest_neighbour(
    tiny_model_dir, tmp_path, tiny_config, run_to_end
):
    raw = tiny_config(
        tiny_model_dir,
        steps=2,
        communication={
            "type": "switch",
            "at": 2,
            "before": {"type": "adjacency", "edges": [["a-1", "a-2"], ["a-2", "b-1"]]},
            "after": {"type": "nearest_neighbor"},
        },
    )
    raw["groups"][1]["learning"] = False
    # A thread count other than the default, so the one recorded must be the one in use.
    default = torch.get_num_threads()
    threads = 2 if default != 2 else 1
    torch.set_num_threads(threads)
    try:
        out = run_to_end(raw, tmp_path / "run")
    finally:
        torch.set_num_threads(default)
    events = read_parts(out, "events")
    skips = events[events.kind == "skip"]
    assert skips[skips.t == 1]["model"].tolist() == ["a-1"]  # nobody may influence a-1
    learned = events[events.kind == "learn"]
    assert not learned["model"].str.startswith("b").any()  # b never learns
    edges = read_parts(out, "edges")
    assert (edges[edges.t == 2].groupby("dst").size() == 1).all()  # one nearest neighbour each
    timing_rows = events[events.kind == "timing"]
    assert timing_rows["t"].tolist() == [0, 1, 2]  # one per step
    timing = [json.loads(d) for d in timing_rows["detail"]]
    # where each step ran is recorded
    assert [tm["device"] for tm in timing] == [str(current_device())] * 3
    assert [tm["threads"] for tm in timing] == [threads] * 3
    # The phases are parts of the step: each is timed, and together they take at most the
    # step's total, the rest being the engine's own time.
    phases = ("setup", "answering", "learning", "evaluating", "embedding", "writing")
    for t, (tm, seconds) in enumerate(zip(timing, timing_rows["seconds"], strict=True)):
        assert all(tm[p] >= 0 for p in phases), tm
        assert sum(tm[p] for p in phases) <= tm["total"] + 1e-9, tm
        assert tm["engine"] == pytest.approx(tm["total"] - sum(tm[p] for p in phases), abs=1e-9)
        assert seconds == tm["total"]
        assert tm["evaluating"] > 0 and tm["embedding"] > 0 and tm["writing"] > 0
        # No interviews at t = 0; later, each learner's update lies within the learning phase.
        if t == 0:
            assert tm["answering"] == 0 and tm["learning"] == 0
        else:
            assert tm["answering"] > 0
            learn_s = learned.loc[learned.t == t, "seconds"]
            assert len(learn_s) > 0 and 0 < learn_s.sum() <= tm["learning"]


def test_static_models_greedy_evaluation_is_reused_not_recomputed(
    tiny_model_dir, tmp_path, monkeypatch, tiny_config, run_to_end
):
    raw = tiny_config(tiny_model_dir, steps=3)
    raw["groups"][1]["learning"] = False
    calls: list[str] = []
    answer = HFAgent.answer

    def spy(self, questions, *args, **kw):
        if len(questions) == 4:  # the evaluation set (interviews ask 3)
            calls.append(self.name)
        return answer(self, questions, *args, **kw)

    monkeypatch.setattr(HFAgent, "answer", spy)
    out = run_to_end(raw, tmp_path / "run")
    # b-1, b-2 never learn: evaluated once (t = 0); a-1, a-2 learn: evaluated at every step.
    assert sorted(calls) == ["a-1"] * 4 + ["a-2"] * 4 + ["b-1", "b-2"]
    resp = read_parts(out, "responses")
    static = resp[(resp.phase == "eval") & (resp.model == "b-1")]
    assert static.groupby("t").size().tolist() == [4] * 4  # still recorded at every step
    assert static.groupby("question_id")["text"].nunique().eq(1).all()


def test_a_run_folder_in_use_is_refused(tmp_path, tiny_config):
    from perspectives.lease import Lease

    sim = Simulation.create(parse_run_config(tiny_config("fake"), "t"), tmp_path / "r")
    held = Lease(tmp_path / "r" / ".lock").held()
    with held, pytest.raises(RunFolderBusy, match="another process"):
        sim.run()
    assert sim.last_complete_step() == -1


@pytest.mark.parametrize("stop", [signal.SIGKILL, signal.SIGTERM])
def test_resume_after_a_kill_matches_an_uninterrupted_run(
    tiny_model_dir, tmp_path, stop, tiny_config, run_to_end
):
    """SIGKILL: the process dies at once. SIGTERM (a scheduler's stop): treated as Ctrl-C,
    it says so and exits with 130. Either way the resumed run equals an uninterrupted one."""
    raw = tiny_config(tiny_model_dir, steps=4)
    cfg_file = tmp_path / "cfg.yaml"
    cfg_file.write_text(yaml.safe_dump(raw))
    killed = tmp_path / "killed"
    env = {**os.environ, "PERSPECTIVES_CACHE": os.environ["PERSPECTIVES_CACHE"]}
    proc = subprocess.Popen(
        [sys.executable, "-m", "perspectives.cli.app", "run", str(cfg_file), "--out", str(killed)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 300
    progress = killed / "progress.json"
    while time.time() < deadline:
        if progress.exists() and json.loads(progress.read_text())["last_complete_step"] >= 1:
            break
        time.sleep(0.05)
    time.sleep(0.3)  # into the next step
    proc.send_signal(stop)
    _, err = proc.communicate()
    if stop == signal.SIGTERM:
        assert proc.returncode == 130 and "interrupted" in err
    else:
        assert proc.returncode == -signal.SIGKILL
    last = json.loads(progress.read_text())["last_complete_step"]
    assert 1 <= last < 4, "the run should have been killed mid-way"
    # What writes killed half-way leave (a SIGKILL cannot be timed to land in one):
    # the resume removes its own, and leaves analysis/ to the analyses.
    debris = [
        killed / "tables" / "responses" / f".step-0000{last + 1}.parquet.x1.tmp",
        killed / "agents" / "model-1" / ".model.safetensors.x2.tmp",
        killed / "agents" / ".model-1.x3.tmp" / "model.safetensors",
        killed / ".progress.json.x4.tmp",
    ]
    for path in [*debris, killed / "analysis" / ".summary.json.x5.tmp"]:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"half")
    result = runner.invoke(app, ["run", "--resume", str(killed)])
    assert result.exit_code == 0, result.output
    assert not any(p.exists() for p in debris) and not debris[2].parent.exists()
    assert (killed / "analysis" / ".summary.json.x5.tmp").exists()
    clear_backbones()
    straight = run_to_end(raw, tmp_path / "straight")
    a, b = tables(killed), tables(straight)
    pd.testing.assert_frame_equal(a["responses"], b["responses"])
    pd.testing.assert_frame_equal(a["edges"], b["edges"])
    for t in range(5):
        name = f"step-{t:05d}.npy"
        np.testing.assert_allclose(
            np.load(killed / "embeddings" / name),
            np.load(straight / "embeddings" / name),
            atol=1e-6,
        )


def test_a_run_resumed_on_another_compute_path_says_so(
    tiny_model_dir, tmp_path, tiny_config, monkeypatch, isolated_cache
):
    """Its steps from there would not be those of the run uninterrupted (greedy answers
    differ between dtypes and thread counts): the resume warns, naming what changed."""
    import warnings

    from interrupted import run_until_interrupted

    from perspectives.models import device
    from perspectives.space.embed import get_embedder

    monkeypatch.setattr(device, "_chosen", torch.device("cpu"))
    raw = tiny_config(tiny_model_dir, steps=2)
    hashing = get_embedder("hashing")
    for precision, warned in (("float32", False), ("bfloat16", True)):
        monkeypatch.setattr(device, "_precision", "float32")
        folder = tmp_path / precision
        run_until_interrupted(raw, folder, hashing, at=1)
        clear_backbones()
        monkeypatch.setattr(device, "_precision", precision)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            Simulation.resume(folder, embedder=hashing).run()
        notes = [str(w.message) for w in caught if "compute path" in str(w.message)]
        assert len(notes) == int(warned), notes
        if warned:
            assert "step 0 ran on another compute path" in notes[0]
            assert "answer_dtype float32 -> bfloat16" in notes[0]
            assert "train_dtype" not in notes[0]  # the tiny config trains in float32
        clear_backbones()


@pytest.mark.parametrize(
    ("before", "now", "changes"),
    [
        # float32 gave the same tables with one thread and two: threads alone are no change
        ({"device": "cpu", "threads": 1, "answer_dtype": "float32"}, {"threads": 2}, []),
        (
            {"device": "cpu", "threads": 1, "answer_dtype": "bfloat16"},
            {"threads": 2},
            ["threads 1 -> 2"],
        ),
        (
            {"device": "cuda", "threads": 1, "answer_dtype": "bfloat16"},
            {"device": "cuda:0", "threads": 2},
            [],
        ),
        (
            {"device": "cpu", "answer_dtype": "bfloat16"},
            {"answer_dtype": "float32"},
            ["answer_dtype bfloat16 -> float32"],
        ),
        (
            {"device": "cpu", "answer_dtype": None, "train_dtype": "float32"},
            {"answer_dtype": "float32"},
            [],
        ),
        (
            {"device": "cpu", "answer_dtype": "float32"},
            {"device": "cuda", "answer_dtype": "float32"},
            ["device cpu -> cuda"],
        ),
    ],
)
def test_a_compute_path_changes_where_its_numbers_can(before, now, changes):
    from perspectives.simulation.engine import _path_changes

    assert _path_changes(before, {**before, **now}) == changes


def test_resume_refuses_another_config_and_analyze(tmp_path, tiny_config, run_to_end):
    out = run_to_end(tiny_config("fake", steps=2), tmp_path / "run")
    other = parse_run_config(tiny_config("fake", seed=9), "x")
    with pytest.raises(InputError, match="different config"):
        Simulation.resume(out, other)
    result = runner.invoke(app, ["analyze", str(out)])
    assert result.exit_code == 0, result.output
    table = pd.read_parquet(out / "analysis" / "perspectives.parquet")
    assert {"t", "model", "class", "z1"} <= set(table.columns)
    assert len(table) == 4 * 3  # 4 models x snapshots at t = 0, 1, 2
    for fig in ("trajectories", "isomirror", "clusters", "polarization"):
        assert (out / "analysis" / f"{fig}.png").stat().st_size > 5_000, fig
    hist = load_history(out, upto=1)
    assert sorted(hist.points["t"].unique()) == [0, 1]
    bad = runner.invoke(app, ["analyze", str(tmp_path)])
    assert bad.exit_code == 2 and "not a run folder" in bad.output
    # A complete run resumed (as a finished sweep system, without its weights) is complete:
    # not a missing checkpoint, and nothing is run or written again.
    shutil.rmtree(out / "checkpoints")
    before = sorted((p.relative_to(out), p.stat().st_mtime_ns) for p in out.rglob("*.parquet"))
    again = runner.invoke(app, ["run", "--resume", str(out)])
    assert again.exit_code == 0, again.output
    assert "the run is already complete (t = 0..2)" in " ".join(again.output.split())
    assert sorted((p.relative_to(out), p.stat().st_mtime_ns) for p in out.rglob("*.parquet")) == (
        before
    )


def test_disk_full_mid_step_keeps_the_last_complete_step(
    tmp_path, monkeypatch, tiny_config, run_to_end
):
    import errno

    import perspectives.simulation.rundir as engine
    from perspectives.space.embed import get_embedder

    raw = tiny_config("fake", steps=2)
    real = engine.write_npy
    calls = {"n": 0}

    def full_disk(path, array):
        calls["n"] += 1
        if calls["n"] == 2:  # the embeddings of step 1
            raise OSError(errno.ENOSPC, "No space left on device")
        real(path, array)

    monkeypatch.setattr(engine, "write_npy", full_disk)
    out = tmp_path / "run"
    with pytest.raises(OSError, match="No space left"):
        run_to_end(raw, out)
    assert json.loads((out / "progress.json").read_text())["last_complete_step"] == 0
    assert len(read_parts(out, "responses")) == 4 * 4  # step 0's evaluation, readable
    monkeypatch.setattr(engine, "write_npy", real)
    Simulation.resume(out, embedder=get_embedder("hashing")).run()
    assert json.loads((out / "progress.json").read_text())["last_complete_step"] == 2


def test_shared_database_policy_and_unknown_mechanic(tiny_model_dir, tiny_config):
    raw = tiny_config(
        tiny_model_dir,
        communication={"type": "database", "writers": ["a"], "readers": ["b-1", "b-2"]},
    )
    cfg = parse_run_config(raw, "cfg")
    from perspectives.simulation.config import build_policy
    from perspectives.simulation.policies import SystemState

    edges = build_policy(cfg.communication, cfg).edges(SystemState(1, cfg.models()))
    assert edges == {(a, b) for a in ("a-1", "a-2") for b in ("b-1", "b-2")}
    with pytest.raises(InputError, match="unknown mechanic"):
        parse_run_config(
            tiny_config(tiny_model_dir, interaction={"questions": 2, "mechanic": "gossip"}), "c"
        )


def test_a_model_that_never_learns_resumes_from_a_checkpoint_that_then_goes(
    tiny_model_dir, tmp_path, tiny_config
):
    """A static, fine-tuned model (the adversary of case study 2) reads its weights from the
    checkpoint it was resumed from; that checkpoint is deleted a step later, so the model must
    keep its own copy."""
    raw = tiny_config(tiny_model_dir, steps=3)
    raw["groups"][1].update(learning=False, init=dict(raw["groups"][0]["init"]))
    cfg = parse_run_config(raw, "t")
    straight = tmp_path / "straight"
    Simulation.create(cfg, straight, keep_checkpoints=frozenset({1})).run()
    resumed = tmp_path / "resumed"
    shutil.copytree(straight, resumed)
    rewind(resumed, 1, (2, 3))
    Simulation.resume(resumed, cfg).run()  # steps 2 and 3 from the step-1 checkpoint
    assert sorted(p.name for p in (resumed / "checkpoints").iterdir()) == ["step-00003"]
    a, b = tables(resumed), tables(straight)
    pd.testing.assert_frame_equal(a["responses"], b["responses"])
    pd.testing.assert_frame_equal(a["edges"], b["edges"])


def test_a_run_resumed_on_other_data_is_refused(tmp_path, tiny_config, monkeypatch):
    """A relative bank path read from another folder (or a bank edited) between an interrupt
    and the resume would continue the run on other questions under the same ids."""
    from interrupted import run_until_interrupted

    from perspectives.space.embed import get_embedder

    def bank(folder, answer):
        folder.mkdir()
        rows = [{"question": f"Question {i}?", "answer": f"{answer} {i}."} for i in range(12)]
        pd.DataFrame(rows).to_csv(folder / "bank.csv", index=False)

    bank(tmp_path / "a", "Yes")
    bank(tmp_path / "b", "No")
    raw = tiny_config("fake", steps=3, question_bank="bank.csv")
    hashing = get_embedder("hashing")
    monkeypatch.chdir(tmp_path / "a")
    run_until_interrupted(raw, tmp_path / "run", hashing, at=2)
    recorded = json.loads((tmp_path / "run" / "run.json").read_text())["data"]
    assert set(recorded) == {"question_bank", "evaluation.prompts", "groups.0.init.bank"}
    monkeypatch.chdir(tmp_path / "b")
    with pytest.raises(InputError, match="holds other data than when the run started") as err:
        Simulation.resume(tmp_path / "run", embedder=hashing).run()
    assert err.value.field == "question_bank" and err.value.value == "bank.csv"
    assert json.loads((tmp_path / "run" / "progress.json").read_text())["last_complete_step"] == 1
    # A fork's first steps are its source's: it keeps their digests, and is refused too.
    from perspectives.simulation.rundir import RunFolder

    cfg = parse_run_config(raw, "t")
    RunFolder(tmp_path / "run").fork(1, cfg, tmp_path / "fork")
    with pytest.raises(InputError, match="holds other data") as err:
        Simulation.resume(tmp_path / "fork", embedder=hashing).run()
    assert err.value.field == "question_bank"
    monkeypatch.chdir(tmp_path / "a")  # where it started: it finishes
    Simulation.resume(tmp_path / "run", embedder=hashing).run()
    assert json.loads((tmp_path / "run" / "run.json").read_text())["data"] == recorded
