"""The run folder's lease: one writer across processes and machines, stale when its holder dies."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from perspectives.errors import RunFolderBusy
from perspectives.lease import Lease, LeaseHeld
from perspectives.simulation.rundir import LEASE_FILE, RunFolder

HOLD = """
import sys, time
from perspectives.lease import Lease
lease = Lease(sys.argv[1], ttl=float(sys.argv[2]))
lease.acquire()
print("held", flush=True)
time.sleep(600)
"""


def _holder(path, ttl=30.0) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(path), str(ttl)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_lease_held_by_another_process_is_refused_and_freed_when_it_dies(tmp_path):
    path = tmp_path / "run" / LEASE_FILE
    proc = _holder(path)
    try:
        with pytest.raises(LeaseHeld) as info:
            Lease(path).acquire()
        assert info.value.holder["pid"] == proc.pid
        with pytest.raises(RunFolderBusy, match=rf"pid {proc.pid}\); wait for it"):
            with RunFolder(tmp_path / "run").lock():
                pass
    finally:
        proc.kill()  # SIGKILL: no release, the lease file stays behind
        proc.wait()
    assert json.loads(path.read_text())["pid"] == proc.pid
    # Its holder is gone from this machine: the lease is stale at once, and taken.
    with RunFolder(tmp_path / "run").lock():
        assert json.loads(path.read_text())["pid"] != proc.pid
    assert not path.exists()  # released


def test_an_expired_lease_of_another_machine_is_taken_and_a_live_one_waited_for(tmp_path):
    path = tmp_path / LEASE_FILE
    record = {"token": "x", "host": "another-machine", "pid": 1, "expires": time.time() + 60}
    path.write_text(json.dumps(record))
    with pytest.raises(LeaseHeld):
        Lease(path).acquire()
    start = time.monotonic()
    with pytest.raises(LeaseHeld):
        Lease(path).acquire(wait=1.5)  # waits for it, then gives up
    assert time.monotonic() - start >= 1.4
    path.write_text(json.dumps({**record, "expires": time.time() - 1}))
    lease = Lease(path)
    with lease.held():
        assert json.loads(path.read_text())["token"] == lease.token
    assert not path.exists()


def test_the_heartbeat_renews_the_lease_and_a_holder_learns_when_it_is_lost(tmp_path):
    path = tmp_path / LEASE_FILE
    lease = Lease(path, ttl=0.4)
    with lease.held():
        first = json.loads(path.read_text())["expires"]
        time.sleep(0.5)  # past the first ttl: renewed, so still held
        assert json.loads(path.read_text())["expires"] > first
        with pytest.raises(LeaseHeld):
            Lease(path).acquire()
        # Taken from it (as after a stall longer than ttl): the heartbeat notices.
        path.write_text(json.dumps({"token": "other", "host": "h", "pid": 1, "expires": 1e12}))
        assert lease.lost.wait(2.0)
    assert json.loads(path.read_text())["token"] == "other"  # not removed: not its own


def test_a_lease_file_that_is_not_a_lease_goes_stale_and_is_named_in_the_error(tmp_path):
    """An empty ``.lock`` left by an earlier version (which used flock) must not block a
    run forever; a garbled one is taken once it has not changed for ``ttl`` seconds."""
    run = tmp_path / "run"
    run.mkdir()
    path = run / LEASE_FILE
    path.write_text("")
    with RunFolder(run).lock():
        assert json.loads(path.read_text())["pid"] > 0
    path.write_text("not json")
    with pytest.raises(RunFolderBusy, match=r"lease \.lock is not readable; it is taken over 30 s"):
        with RunFolder(run).lock():
            pass
    old = time.time() - 31
    os.utime(path, (old, old))
    with RunFolder(run).lock():
        assert "token" in json.loads(path.read_text())
    assert not path.exists()


def test_a_run_whose_lease_was_taken_over_marks_no_step_complete(tmp_path):
    """A process stopped (SIGSTOP, a stall) past the lease's time, whose run another process
    then took over, must not mark a step complete when it goes on: two writers of one run."""
    import pickle

    folder = RunFolder(tmp_path / "run")
    with folder.lock():
        folder.commit_step(0)
        assert pickle.loads(pickle.dumps(folder))._lease is None  # a host's copy holds none
        # Taken from it now, before its heartbeat has noticed: read at the commit itself.
        lease_file = tmp_path / "run" / LEASE_FILE
        lease_file.write_text(
            json.dumps({"token": "other", "host": "h", "pid": 1, "expires": 1e12})
        )
        with pytest.raises(RunFolderBusy, match="lost the folder's lease .* step 1 is left"):
            folder.commit_step(1)
    assert json.loads((tmp_path / "run" / "progress.json").read_text())["last_complete_step"] == 0
    folder.commit_step(1)  # without the lock (a sweep's bookkeeping, a test): no lease to check


def test_a_folder_where_the_lease_file_should_be_is_named(tmp_path):
    from perspectives.errors import InputError

    (tmp_path / "run" / LEASE_FILE).mkdir(parents=True)
    with pytest.raises(InputError, match=f"{LEASE_FILE}: a folder where the lease file should"):
        with RunFolder(tmp_path / "run").lock():
            pass
