"""RunFolder: the run folder's layout, commits, corrupt state, locks, forks and cleaning."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from perspectives import RunConfig, RunFolder, Simulation, get_embedder
from perspectives.errors import CorruptStateError, InputError, RunFolderBusy


@pytest.fixture
def cfg() -> RunConfig:
    return RunConfig.model_validate(
        {
            "steps": 3,
            "question_bank": "neutral",
            "interaction": {"questions": 2},
            "groups": [
                {"name": "a", "count": 2, "backend": "fake", "model": "calm"},
                {"name": "b", "count": 2, "backend": "fake", "model": "loud"},
            ],
            "evaluation": {"n_prompts": 4},
        }
    )


def test_a_step_is_written_then_committed(tmp_path, cfg):
    run = RunFolder(tmp_path / "r")
    assert not run.exists() and run.last_complete_step() == -1
    run.create(cfg)
    assert run.exists() and run.info()["fingerprint"] == cfg.fingerprint()
    assert run.read_config().fingerprint() == cfg.fingerprint()
    row = {
        "t": 0,
        "model": "a-1",
        "phase": "eval",
        "asker": "",
        "question_id": "q",
        "replicate": 0,
        "text": "x",
    }
    run.write_step(0, [row], {("a-1", "b-1")}, np.ones((1, 3)))
    run.write_events(0, [])
    assert run.table_file("responses", 0).name == "step-00000.parquet"
    assert run.read_parts("responses").empty  # written, not yet committed
    run.commit_step(0)
    assert run.last_complete_step() == 0
    assert run.read_parts("responses")["text"].tolist() == ["x"]
    assert run.read_parts("edges")[["src", "dst"]].values.tolist() == [["a-1", "b-1"]]
    run.write_step(1, [row | {"t": 1}], set(), None)
    run.drop_incomplete()
    assert not run.table_file("responses", 1).exists()


@pytest.mark.parametrize(
    ("progress", "match"),
    [
        ('{"last_complete_step": -5}', "not a step number"),
        ('{"last_complete_step": "2"}', "not a step number"),
        ("{oops", "damaged progress record"),
        ("{}", "damaged progress record"),
    ],
)
def test_a_damaged_progress_record_is_refused_before_anything_is_removed(
    tmp_path, cfg, progress, match
):
    out = tmp_path / "r"
    Simulation.create(cfg, out, embedder=get_embedder("hashing")).run()
    files = sorted(p for p in out.rglob("*") if p.is_file() and p.name != ".lock")
    (out / "progress.json").write_text(progress)
    with pytest.raises(CorruptStateError, match=match):
        Simulation.resume(out, embedder=get_embedder("hashing")).run()
    after = sorted(p for p in out.rglob("*") if p.is_file() and p.name != ".lock")
    assert after == files  # nothing removed


def _steps(tmp_path, cfg, last: int, written: int) -> RunFolder:
    """A run folder of ``cfg`` whose steps 0..``written`` are on disk and whose progress
    record names step ``last`` (the parts of a step: one answer, one edge, its events)."""
    run = RunFolder(tmp_path / "r")
    run.create(cfg)
    row = {"model": "a-1", "phase": "eval", "asker": "", "question_id": "q", "replicate": 0}
    for t in range(written + 1):
        run.write_step(
            t, [row | {"t": t, "text": f"answer {t}"}], {("a-1", "b-1")}, np.ones((1, 3))
        )
        run.write_events(t, [])
        run.commit_step(t)
    (run.path / "progress.json").write_text(json.dumps({"last_complete_step": last}))
    return run


def _files(run: RunFolder) -> list:
    return sorted(p for p in run.path.rglob("*") if p.is_file())


@pytest.mark.parametrize("last", [-1, 0, 1])
def test_a_progress_record_behind_the_complete_steps_deletes_nothing(tmp_path, cfg, last):
    """A lost or restored progress.json that names step ``last`` while steps up to 3 are on
    disk: a resume removed the complete steps after it, an analysis called them missing."""
    run = _steps(tmp_path, cfg, last, written=3)
    files = _files(run)
    for call in (run.check, run.drop_incomplete):
        with pytest.raises(CorruptStateError) as info:
            call()
        message = str(info.value)
        assert message.startswith(f"{run.progress_file}, field 'last_complete_step'"), message
        assert "behind the folder" in message and "steps up to 3" in message
        assert "tables/responses/step-00003.parquet" in message
    assert _files(run) == files


def test_the_step_after_the_last_complete_one_is_a_leftover(tmp_path, cfg):
    """An interrupted run leaves step last + 1 partial (written, not committed): that is no
    lagging record, and a resume removes it."""
    run = _steps(tmp_path, cfg, last=2, written=3)
    assert run.check() == 2
    run.drop_incomplete()
    assert not run.table_file("responses", 3).exists() and run.table_file("edges", 2).exists()


@pytest.mark.parametrize("name", ["config.yaml", "run.json", "progress.json"])
def test_a_folder_where_a_record_should_be_is_named(tmp_path, cfg, name):
    run = _steps(tmp_path, cfg, last=1, written=1)
    (run.path / name).unlink()
    (run.path / name).mkdir()
    readers = {
        "config.yaml": [run.read_config, run.check],
        "run.json": [run.info, run.read_config, run.last_complete_step, run.check],
        "progress.json": [run.last_complete_step, run.check, run.drop_incomplete],
    }
    for read in readers[name]:
        with pytest.raises(CorruptStateError, match="a folder, where the run keeps a file") as e:
            read()
        assert str(e.value).startswith(str(run.path / name))


def test_a_new_run_where_a_folder_holds_its_config_s_place_is_refused(tmp_path, cfg):
    (tmp_path / "new" / "config.yaml").mkdir(parents=True)
    with pytest.raises(InputError, match="config.yaml: a folder, where the run writes its config"):
        RunFolder(tmp_path / "new").create(cfg)


@pytest.mark.parametrize("name", ["config.yaml", "run.json", "progress.json"])
def test_a_record_that_cannot_be_read_is_named(tmp_path, cfg, monkeypatch, name):
    from pathlib import Path

    run = _steps(tmp_path, cfg, last=1, written=1)
    read = Path.read_bytes

    def refuse(self):
        if self.name == name:
            raise PermissionError(13, "Permission denied", str(self))
        return read(self)

    monkeypatch.setattr(Path, "read_bytes", refuse)
    with pytest.raises(InputError) as info:
        run.check()
    assert str(info.value) == f"{run.path / name}: cannot be read (Permission denied)"


def test_a_resume_with_a_missing_checkpoint_refuses(tmp_path, cfg):
    out = tmp_path / "r"
    short = cfg.model_copy(update={"steps": 2})
    keep = frozenset({1})
    Simulation.create(short, out, embedder=get_embedder("hashing"), keep_checkpoints=keep).run()
    # Stopped in step 2's commit (a finished run has nothing left to load).
    (out / "progress.json").write_text(json.dumps({"last_complete_step": 1}))
    shutil.rmtree(RunFolder(out).checkpoint(1) / "a-2")
    with pytest.raises(CorruptStateError, match=r"lacks the agents \['a-2'\]"):
        Simulation.resume(out, embedder=get_embedder("hashing")).run()


def test_a_busy_folder_is_refused(tmp_path, cfg):
    run = RunFolder(tmp_path / "r")
    with run.lock(), pytest.raises(RunFolderBusy, match="another process"), run.lock():
        pass


def test_fork_and_clean_weights(tmp_path, cfg):
    out = tmp_path / "src"
    Simulation.create(
        cfg, out, embedder=get_embedder("hashing"), keep_checkpoints=frozenset({1})
    ).run()
    src = RunFolder(out)
    assert src.can_fork(1) and src.can_fork(3) and not src.can_fork(2)
    other = cfg.model_copy(update={"name": "other"})
    dest = src.fork(1, other, tmp_path / "dst")
    assert dest.last_complete_step() == 1
    assert dest.forked_from() == {"run": "../src", "step": 1}
    assert dest.read_parts("responses").equals(src.read_parts("responses", upto=1))
    with pytest.raises(InputError, match="already a run folder"):
        src.fork(1, other, tmp_path / "dst")
    with pytest.raises(InputError, match="no complete step 2"):
        src.fork(2, other, tmp_path / "dst2")
    src.clean_weights(keep={1})
    assert not (out / "agents").exists() and src.can_fork(1) and not src.checkpoint(3).exists()
    src.clean_weights()
    assert not (out / "checkpoints").exists()
    assert json.loads(src.progress_file.read_text()) == {"last_complete_step": 3}


def test_not_a_run_folder(tmp_path):
    with pytest.raises(InputError, match="not a run folder"):
        RunFolder(tmp_path).info()
    with pytest.raises(InputError, match="not a run folder"):
        Simulation.resume(tmp_path)
