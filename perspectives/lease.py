"""A lease on a folder: one writer at a time, across the machines that share a filesystem.

``flock`` is not reliable on network filesystems, and a cluster's systems run on several
machines over one shared folder. A lease is a small JSON file (owner, host, pid, expiry):

- **taken** with ``link(2)`` of a unique file to the lease's name, which fails if the lease
  exists, atomically, on NFS too (the link count of the unique file settles a lost reply);
- **renewed** by a heartbeat thread, written by atomic rename, every ``ttl / 4`` seconds;
- **stale** when its expiry has passed, or at once when its owner is a process of this
  machine that no longer runs (a killed worker); a stale lease is moved aside by rename and
  taken anew. A holder whose lease was taken from it (it stalled beyond ``ttl``) is told by
  ``Lease.lost``.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from .errors import InputError

DEFAULT_TTL = 30.0


class LeaseHeld(Exception):
    """Someone else holds the lease (``holder``: what its file says)."""

    def __init__(self, holder: dict) -> None:
        super().__init__(f"held by {holder.get('host')} pid {holder.get('pid')}")
        self.holder = holder


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True


class Lease:
    """The lease file ``path``, held for ``ttl`` seconds past each renewal."""

    def __init__(self, path: str | os.PathLike, ttl: float = DEFAULT_TTL) -> None:
        self.path, self.ttl = Path(path), ttl
        self.token = uuid.uuid4().hex
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _record(self) -> dict:
        return {
            "token": self.token,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "expires": time.time() + self.ttl,
        }

    def read(self) -> dict | None:
        """What the lease file says, or None if there is none. A file that is not a lease
        record (an empty ``.lock`` of an earlier version, or garbage) reads as
        ``{"unreadable": True, "expires": mtime + ttl}`` (or 0 when empty): it goes stale
        like a lease whose holder stopped renewing."""
        try:
            text = self.path.read_text()
            mtime = self.path.stat().st_mtime
        except FileNotFoundError:
            return None
        except IsADirectoryError:
            raise InputError(
                "a folder where the lease file should be: remove it", source=str(self.path)
            ) from None
        except UnicodeDecodeError:
            text, mtime = "?", 0.0
        try:
            record = json.loads(text)
            if isinstance(record, dict) and {"token", "pid", "expires"} <= record.keys():
                return record
        except json.JSONDecodeError:
            pass
        return {"unreadable": True, "expires": mtime + self.ttl if text.strip() else 0.0}

    @staticmethod
    def stale(record: dict) -> bool:
        """Whether a lease may be taken from its holder: expired, or its process is gone."""
        pid = record.get("pid")
        if pid is not None and record.get("host") == socket.gethostname():
            if not _pid_alive(int(pid)):
                return True
        return float(record.get("expires", 0)) < time.time()

    def _write_unique(self) -> Path:
        unique = self.path.with_name(f"{self.path.name}.{self.token}.tmp")
        unique.write_text(json.dumps(self._record()))
        return unique

    def try_acquire(self) -> bool:
        """Take the lease if it is free or stale; raises LeaseHeld if it is held."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        unique = self._write_unique()
        try:
            for _ in range(3):
                try:
                    os.link(unique, self.path)
                    return True
                except FileExistsError:
                    pass
                except OSError:
                    # NFS: the link may have been made though the reply was lost.
                    if unique.stat().st_nlink == 2:
                        return True
                    raise
                held = self.read()
                if held is None:
                    continue  # released or being replaced this instant: try again
                if not self.stale(held):
                    raise LeaseHeld(held)
                self._break(held)
            held = self.read() or {}
            raise LeaseHeld(held)
        finally:
            unique.unlink(missing_ok=True)

    def _break(self, held: dict) -> None:
        """Move a stale lease aside (by rename, so two breakers cannot both remove it)."""
        aside = self.path.with_name(f"{self.path.name}.{self.token}.stale.tmp")
        with contextlib.suppress(FileNotFoundError):
            os.replace(self.path, aside)
            try:
                moved = json.loads(aside.read_text() or "{}")
            except (json.JSONDecodeError, UnicodeDecodeError):
                moved = {}
            if isinstance(moved, dict) and moved.get("token") != held.get("token"):
                # Another breaker took it in between and this was its fresh lease: put it
                # back unless a third has already taken the free name.
                with contextlib.suppress(FileExistsError):
                    os.link(aside, self.path)
            aside.unlink(missing_ok=True)

    def acquire(self, wait: float = 0.0) -> None:
        """Take the lease, waiting up to ``wait`` s for a holder to release it or go stale;
        raises LeaseHeld if it is still held then. Starts the heartbeat."""
        deadline = time.monotonic() + wait
        while True:
            try:
                self.try_acquire()
                break
            except LeaseHeld:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(min(1.0, max(deadline - time.monotonic(), 0.05)))
        self._stop.clear()
        self._thread = threading.Thread(target=self._beat, name="lease", daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        while not self._stop.wait(self.ttl / 4):
            held = self.read()
            if held is None or held.get("token") != self.token:
                self.lost.set()
                return
            tmp = self.path.with_name(f"{self.path.name}.{self.token}.renew.tmp")
            tmp.write_text(json.dumps(self._record()))
            os.replace(tmp, self.path)

    def still_held(self) -> bool:
        """Whether the lease is still this holder's, read now (not at the last heartbeat)."""
        if self.lost.is_set():
            return False
        held = self.read()
        return held is not None and held.get("token") == self.token

    def release(self) -> None:
        """Stop the heartbeat and remove the lease if it is still this holder's."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        held = self.read()
        if held is not None and held.get("token") == self.token:
            self.path.unlink(missing_ok=True)

    @contextlib.contextmanager
    def held(self, wait: float = 0.0) -> Iterator[Lease]:
        """Hold the lease for a block (see ``acquire``)."""
        self.acquire(wait)
        try:
            yield self
        finally:
            self.release()
