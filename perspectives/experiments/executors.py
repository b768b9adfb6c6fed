"""Where a sweep's systems run: the executor seam.

An executor runs one system of a sweep to its last step (``run``) and stops the running ones
on an interrupt (``stop``); ``jobs`` say how many it runs at once. ``InProcess`` runs them one
at a time in this process; ``LocalProcesses`` runs ``jobs`` side by side, each in its own
Python process with an equal share of the cores; ``FunctionExecutor`` wraps a function (tests,
custom schedulers). Another executor (a cluster's) only has to provide the same three things.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from ..config import dump_yaml
from ..simulation.placement import available_cores

if TYPE_CHECKING:
    from ..simulation.engine import Simulation
    from .sweep import SweepSystem


class Executor(Protocol):
    """Runs a sweep's systems (see the module docstring)."""

    jobs: int

    def run(self, system: SweepSystem) -> None:
        """Run ``system`` to its last step; raise on failure, KeyboardInterrupt if stopped."""
        ...

    def stop(self) -> None:
        """Stop every system this executor is running (they resume next time)."""
        ...


@dataclass
class InProcess:
    """One system at a time, in this process. ``run_simulation(sim, system)`` runs the
    simulation (default: ``sim.run()``; the command line wraps it in a progress display)."""

    run_simulation: Callable[[Simulation, SweepSystem], None] | None = None
    jobs: int = 1

    def run(self, system: SweepSystem) -> None:
        from ..simulation.engine import Simulation

        sim = Simulation.create(
            system.cfg, system.folder, keep_checkpoints=frozenset(system.keep_checkpoints)
        )
        if self.run_simulation is None:
            sim.run()
        else:
            self.run_simulation(sim, system)

    def stop(self) -> None:
        """Nothing to do: an interrupt reaches this process's run directly."""


@dataclass
class FunctionExecutor:
    """``fn(system)`` runs a system; ``jobs`` of them at once (``fn`` must be thread-safe)."""

    fn: Callable[[SweepSystem], None]
    jobs: int = 1

    def run(self, system: SweepSystem) -> None:
        self.fn(system)

    def stop(self) -> None:
        """Nothing to stop: the function runs in this process's threads."""


@dataclass
class LocalProcesses:
    """``jobs`` systems side by side, each in its own process (``run_in_subprocess``) with
    ``cores // jobs`` threads."""

    jobs: int
    device: str = "auto"

    @property
    def threads(self) -> int:
        return max(1, available_cores() // max(self.jobs, 1))

    def run(self, system: SweepSystem) -> None:
        run_in_subprocess(system, threads=self.threads, device=self.device)

    def stop(self) -> None:
        stop_children()


_children: set[subprocess.Popen] = set()
_children_lock = threading.Lock()


def stop_children(timeout: float = 30.0) -> None:
    """Ask every running system process to stop (SIGTERM, which ``perspectives run`` treats
    as Ctrl-C: it keeps its complete steps), then wait for them; kill any still running after
    ``timeout`` s. SIGINT would not do: a process started in the background ignores it."""
    with _children_lock:
        procs = list(_children)
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()


PARENT_ENV = "PERSPECTIVES_SWEEP_PID"  # a system process's sweep, which it outlives not


def stop_with_parent(interval: float = 1.0) -> None:
    """In a system process: stop it (SIGTERM, as the sweep would) if the sweep that started
    it is gone (killed with SIGKILL, say), instead of running on unwatched."""
    parent = os.environ.pop(PARENT_ENV, None)  # not for the processes this one starts
    if not parent or not parent.isdecimal():
        return

    def watch() -> None:
        while os.getppid() == int(parent):
            time.sleep(interval)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="sweep-watch", daemon=True).start()


WARNING_PREFIX = "warning: "  # how the command line prints a warning (one line each)


def _forward_warnings(system: SweepSystem, log: Path, start: int) -> None:
    """Warn, naming ``system``, what its process warned in ``log`` from byte ``start`` on: a
    sweep's reader watches its table, not each system's log."""
    try:
        with log.open("rb") as fh:
            fh.seek(start)
            text = fh.read().decode("utf-8", errors="replace")
    except OSError:
        return  # the log is the run's record; its failure is reported where it is read
    for line in text.splitlines():
        if line.startswith(WARNING_PREFIX):
            warnings.warn(
                f"{system.condition} seed {system.seed}: {line[len(WARNING_PREFIX) :]}",
                stacklevel=3,
            )


def run_in_subprocess(system: SweepSystem, *, threads: int, device: str = "auto") -> None:
    """Run one system in its own Python process with ``threads`` torch threads, its output in
    ``FOLDER/run.log``; the process's warnings are warned here too, naming the system.
    Raises RuntimeError naming the log's last line if the run fails."""
    system.folder.mkdir(parents=True, exist_ok=True)
    cfg_file = system.folder / "system.yaml"
    cfg_file.write_text(dump_yaml(system.cfg.model_dump()))
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    env[PARENT_ENV] = str(os.getpid())
    cmd = [sys.executable, "-m", "perspectives.cli", "run", str(cfg_file)]
    cmd += ["--out", str(system.folder), "--device", device]
    for step in system.keep_checkpoints:
        cmd += ["--keep-checkpoint", str(step)]
    log = system.folder / "run.log"
    with log.open("a") as fh:
        start = fh.tell()
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env)
        with _children_lock:
            _children.add(proc)
        try:
            code = proc.wait()
        finally:
            with _children_lock:
                _children.discard(proc)
    _forward_warnings(system, log, start)
    if code in (130, -signal.SIGINT, -signal.SIGTERM):
        raise KeyboardInterrupt
    if code != 0:
        lines = [ln.strip() for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
        raise RuntimeError(f"exit code {code}: {lines[-1] if lines else 'no output'} (see {log})")
