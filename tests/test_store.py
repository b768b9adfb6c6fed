"""Atomic writes: an interrupted write leaves the previous file intact and no debris."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from perspectives.errors import InputError
from perspectives.store import (
    atomic_dir,
    atomic_path,
    file_lock,
    link_or_copy,
    output_dir,
    replaceable_dir,
    write_csv,
    write_json,
    write_npy,
    write_parquet,
    write_text,
)

# Tests may run as root, whom permissions do not stop: the system's refusal is simulated.
DENIED = PermissionError(13, "Permission denied")


def test_interrupted_write_keeps_previous_file(tmp_path):
    target = tmp_path / "table.parquet"
    write_parquet(target, pd.DataFrame({"a": [1, 2, 3]}))
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"PAR1 half a file")
            raise KeyboardInterrupt
    assert pd.read_parquet(target)["a"].tolist() == [1, 2, 3]
    assert [p.name for p in tmp_path.iterdir()] == ["table.parquet"]


def test_file_lock_excludes_a_second_holder_and_is_released(tmp_path):
    lock = tmp_path / "deep" / ".lock"
    with file_lock(lock):
        with pytest.raises(BlockingIOError), file_lock(lock, wait=False):
            pass
    with file_lock(lock, wait=False):  # free again once the first holder left
        pass


def _refuse(*args, **kwargs):
    raise DENIED


WRITERS = {
    "text": lambda p: write_text(p, "new"),
    "json": lambda p: write_json(p, {"a": 1}),
    "parquet": lambda p: write_parquet(p, pd.DataFrame({"a": [1]})),
    "csv": lambda p: write_csv(p, pd.DataFrame({"a": [1]})),
    "npy": lambda p: write_npy(p, np.zeros(2)),
}


@pytest.mark.parametrize("writer", list(WRITERS))
@pytest.mark.parametrize(
    ("refused", "what"),
    [("replace", "cannot write this file"), ("mkstemp", "cannot write a file in this folder")],
)
def test_a_write_the_system_refuses_names_the_file(tmp_path, monkeypatch, writer, refused, what):
    """A file that cannot be replaced (or a folder that takes no new file) is an InputError
    naming it and what failed; the previous content stays and no temporary file is left."""
    target = tmp_path / "out" / "summary.json"
    target.parent.mkdir()
    target.write_text("old")
    monkeypatch.setattr(os if refused == "replace" else tempfile, refused, _refuse)
    with pytest.raises(InputError) as info:
        WRITERS[writer](target)
    assert str(info.value) == f"{target}: {what} (Permission denied)"
    assert target.read_text() == "old"
    assert [p.name for p in target.parent.iterdir()] == ["summary.json"]


def _lock(folder: Path) -> None:
    with file_lock(folder / ".lock"):
        pass


@pytest.mark.parametrize("make", [output_dir, lambda p: write_text(p / "a.txt", "x"), _lock])
def test_a_folder_that_cannot_be_made_is_named(tmp_path, monkeypatch, make):
    monkeypatch.setattr(Path, "mkdir", _refuse)
    out = tmp_path / "analysis"
    with pytest.raises(InputError, match=f"{out}: cannot make this folder for the outputs"):
        make(out)


def test_a_write_that_fails_midway_names_the_file(tmp_path):
    """The caller's own writing into the temporary path (a full disk, say) is named too."""
    target = tmp_path / "table.parquet"
    with pytest.raises(InputError, match=r"table.parquet: cannot write this file \(No space"):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise OSError(28, "No space left on device")
    assert list(tmp_path.iterdir()) == []


def test_a_folder_or_a_link_the_system_refuses_is_named(tmp_path, monkeypatch):
    src = tmp_path / "weights.bin"
    src.write_bytes(b"w")
    (tmp_path / "agent").mkdir()
    (tmp_path / "agent" / "agent.json").write_text("old")
    replace = os.replace

    def refuse_the_new(src, dst):  # the old folder moves aside, the new one cannot come in
        if Path(src).name.endswith(".tmp"):
            raise DENIED
        return replace(src, dst)

    monkeypatch.setattr(os, "replace", refuse_the_new)
    with pytest.raises(InputError, match=r"agent: cannot write this folder \(Permission denied"):
        with atomic_dir(tmp_path / "agent") as tmp:
            (tmp / "agent.json").write_text("new")
    monkeypatch.setattr(os, "replace", _refuse)
    with pytest.raises(InputError, match=r"copy .*weights.bin here \(Permission denied"):
        link_or_copy(src, tmp_path / "copy.bin")
    assert (tmp_path / "agent" / "agent.json").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["agent", "weights.bin"]


def test_an_error_that_is_not_the_destination_s_goes_up_as_it_is(tmp_path):
    # A source gone, or an error of the caller's own: not "cannot write" the target.
    with pytest.raises(FileNotFoundError, match="gone.bin"):
        link_or_copy(tmp_path / "gone.bin", tmp_path / "copy.bin")
    with pytest.raises(IsADirectoryError):
        with atomic_path(tmp_path / "out.txt") as tmp:
            tmp.parent.read_bytes()  # the caller's own mistake
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_a_folder_written_whole_gets_the_mode_of_a_plain_folder(tmp_path):
    os.umask(old := os.umask(0o022))  # under umask 077 a plain folder would be 0700 too
    assert old & 0o077 != 0o077, "run the tests with a umask that lets others read"
    plain = tmp_path / "plain"
    plain.mkdir()
    with atomic_dir(tmp_path / "model") as tmp:
        (tmp / "config.json").write_text("{}")
    assert (tmp_path / "model").stat().st_mode & 0o777 == plain.stat().st_mode & 0o777


def test_a_file_written_atomically_gets_the_mode_of_a_plain_write(tmp_path):
    os.umask(old := os.umask(0o022))
    assert old & 0o077 != 0o077, "run the tests with a umask that lets others read"
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    for name, write in WRITERS.items():
        write(tmp_path / name)  # new: as a plain new file (not mkstemp's 0600)
        assert (tmp_path / name).stat().st_mode & 0o777 == plain.stat().st_mode & 0o777, name
        (tmp_path / name).chmod(0o640)
        write(tmp_path / name)  # replaced: keeps the mode its owner gave it
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o640, name


def test_the_current_folder_is_never_replaced_whole(tmp_path, monkeypatch):
    here = tmp_path / "work" / "here"
    here.mkdir(parents=True)
    (here / "notes.txt").write_text("keep")
    monkeypatch.chdir(here)
    for path in (".", "..", str(here)):
        with pytest.raises(InputError, match="current folder"):
            with atomic_dir(path) as tmp:
                (tmp / "config.json").write_text("{}")
        with pytest.raises(InputError, match="current folder"):
            replaceable_dir(path, is_kind=lambda p: True, what="a model folder")
    # The same folder through a symbolic link is the same folder.
    (tmp_path / "link").symlink_to(tmp_path / "work")
    with pytest.raises(InputError, match="current folder"):
        with atomic_dir(tmp_path / "link" / "here") as tmp:
            (tmp / "config.json").write_text("{}")
    assert (here / "notes.txt").read_text() == "keep"
    assert sorted(p.name for p in (tmp_path / "work").iterdir()) == ["here"]


def test_only_a_new_empty_or_same_kind_folder_may_be_replaced_whole(tmp_path):
    from perspectives.models.sources import is_model_folder

    what = dict(is_kind=is_model_folder, what="a model folder")
    assert replaceable_dir(tmp_path / "new", **what) == tmp_path / "new"
    (tmp_path / "empty").mkdir()
    replaceable_dir(tmp_path / "empty", **what)
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text('{"model_type": "llama"}')
    replaceable_dir(tmp_path / "model", **what)
    # A config.json of some other project is no model: its folder is not deleted.
    (tmp_path / "project").mkdir()
    (tmp_path / "project" / "config.json").write_text('{"debug": true}')
    with pytest.raises(InputError, match="project: this folder holds other files"):
        replaceable_dir(tmp_path / "project", **what)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    with pytest.raises(InputError, match="mine: this folder holds other files"):
        replaceable_dir(tmp_path / "mine", **what)
    (tmp_path / "f").write_text("x")
    with pytest.raises(InputError, match="a file is where a model folder"):
        replaceable_dir(tmp_path / "f", **what)


def test_a_file_set_replaces_its_own_files_whole_or_not_at_all(tmp_path, monkeypatch):
    from perspectives.store import file_set

    out = tmp_path / "analysis"
    out.mkdir()
    for name in ("a.parquet", "b.png", "summary.json", "alarms.parquet"):
        (out / name).write_text(f"old {name}")
    owned = ("a.parquet", "b.png", "summary.json")

    def state():
        return {p.name: p.read_text() for p in out.iterdir()}

    old = state()
    with pytest.raises(KeyboardInterrupt):  # while the new set is written: the old stays
        with file_set(out, owned) as staging:
            (staging / "a.parquet").write_text("new")
            raise KeyboardInterrupt
    assert state() == old
    replace = os.replace
    calls = []

    def interrupted(src, dst):  # as the set is moved in: it says it is not whole
        calls.append(dst)
        if len(calls) == 2:
            raise KeyboardInterrupt
        replace(src, dst)

    monkeypatch.setattr(os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt), file_set(out, owned) as staging:
        for name in ("a.parquet", "c.csv", "summary.json"):
            (staging / name).write_text(f"new {name}")
    monkeypatch.setattr(os, "replace", replace)
    assert state() == {"a.parquet": "new a.parquet", "alarms.parquet": "old alarms.parquet"}
    with file_set(out, owned) as staging:
        for name in ("a.parquet", "summary.json"):
            (staging / name).write_text(f"new {name}")
    # An owned file not written again (an old figure) goes; another command's stays.
    assert state() == {
        "a.parquet": "new a.parquet",
        "summary.json": "new summary.json",
        "alarms.parquet": "old alarms.parquet",
    }


def test_a_file_set_that_cannot_be_written_names_the_file_in_its_folder(tmp_path, monkeypatch):
    from perspectives.store import file_set

    out = tmp_path / "analysis"
    replace = os.replace

    def refuse(inside):
        def refusing(src, dst):
            if Path(dst).name == "a.json" and (Path(dst).parent == out) != inside:
                raise DENIED
            replace(src, dst)

        return refusing

    for inside in (True, False):  # as it is written into the staging folder, or moved in
        monkeypatch.setattr(os, "replace", refuse(inside))
        with pytest.raises(InputError) as err, file_set(out, ["a.json"]) as staging:
            write_json(staging / "a.json", {"a": 1})
        assert err.value.source == str(out / "a.json") and "Permission denied" in str(err.value)
        assert os.listdir(out) == []
