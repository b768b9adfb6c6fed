"""A sweep's systems as Ray tasks: the executor seam (``experiments.executors``) on a cluster.

Each system is one task with the resources it declares (``cpus_per_system``,
``gpus_per_system``); Ray places it on a node with them free, spreading the systems over the
nodes in turn, so the sweep needs no scheduler of ours. The run folders must be on storage
every node sees at the same path (a shared filesystem): a task writes its system's folder
there, and the driver follows the sweep's progress by reading them. A folder is held by a
lease (``perspectives.lease``), not ``flock``. A task whose worker or node dies is retried by
Ray (``max_retries``) and resumes from the system's last complete step; Ctrl-C cancels the
running tasks, which stop like a run stopped by Ctrl-C (their complete steps kept).
"""

from __future__ import annotations

import contextlib
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from . import connect, forwarded_env

if TYPE_CHECKING:
    from ..experiments.sweep import SweepSystem

# A retried system waits this long for its killed predecessor's lease to go stale (on
# another machine; on the same one it is stale at once).
LEASE_WAIT = 75.0


def run_system(
    cfg,
    folder: str,
    keep_checkpoints: tuple[int, ...],
    *,
    threads: int,
    env: dict[str, str],
    embedder: str | None,
    lock_wait: float,
) -> dict:
    """The body of a system's task: run it (or resume it) to its last step in ``folder``.
    Returns where it ran: ``{"node": Ray node id, "pid": worker pid}``."""
    import signal

    import ray

    # Ray cancels a running task by interrupting its thread as SIGINT would; a worker of a
    # cluster started in the background (nohup, a scheduler) ignores SIGINT, and the
    # interrupt would then do nothing: the system would run on after Ctrl-C.
    with contextlib.suppress(ValueError):  # not the main thread: nothing to restore
        signal.signal(signal.SIGINT, signal.default_int_handler)
    from ..simulation.engine import Simulation
    from ..simulation.hosting import take_settings

    take_settings(env, threads)
    from ..space.embed import get_embedder

    sim = Simulation.create(
        cfg,
        folder,
        keep_checkpoints=frozenset(keep_checkpoints),
        embedder=get_embedder(embedder) if embedder else None,
        lock_wait=lock_wait,
    )
    sim.run()
    return {"node": ray.get_runtime_context().get_node_id(), "pid": os.getpid()}


@dataclass
class RayExecutor:
    """Runs each system of a sweep as a Ray task.

    ``address``: the cluster (``auto``: the one ``ray start`` began on this machine;
    ``ray://host:port``; None: the one this process already joined, or a new local one).
    ``jobs``: systems submitted at once (Ray queues those its nodes have no room for).
    ``embedder``: a ``get_embedder`` name for the systems (default: the bundled one).
    ``where``: after a run, the node and worker pid of each system's last attempt, by folder.
    """

    address: str | None = None
    cpus_per_system: float = 1.0
    gpus_per_system: float = 0.0
    max_retries: int = 2
    jobs: int = 64
    device: str = "auto"
    dtype: str = "auto"
    embedder: str | None = None
    lock_wait: float = LEASE_WAIT
    where: dict[str, dict] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._ray = connect(self.address)
        self._running: dict[str, object] = {}
        self._lock = threading.Lock()
        self._task = self._ray.remote(run_system)

    @property
    def threads(self) -> int:
        """Torch threads per system: its whole CPUs (at least 1)."""
        return max(1, int(self.cpus_per_system))

    def run(self, system: SweepSystem) -> None:
        from ..models.device import DEVICE_ENV, PRECISION_ENV

        ray = self._ray
        folder = str(Path(system.folder).resolve())
        ref = self._task.options(
            num_cpus=self.cpus_per_system,
            num_gpus=self.gpus_per_system,
            max_retries=self.max_retries,
            retry_exceptions=False,
            # Ray's default packs tasks onto the submitting node while it has room: systems
            # that start one after another (a fork after its source) all ran on the head.
            # Systems are heavy and independent, so each goes to the next node in turn.
            scheduling_strategy="SPREAD",
            name=f"{system.condition}/seed-{system.seed}",
        ).remote(
            system.cfg,
            folder,
            tuple(system.keep_checkpoints),
            threads=self.threads,
            env=forwarded_env(**{DEVICE_ENV: self.device, PRECISION_ENV: self.dtype}),
            embedder=self.embedder,
            lock_wait=self.lock_wait,
        )
        with self._lock:
            self._running[folder] = ref
        try:
            self.where[folder] = ray.get(ref)
        except ray.exceptions.TaskCancelledError:
            raise KeyboardInterrupt from None
        except ray.exceptions.RayTaskError as exc:
            cause = exc.as_instanceof_cause()
            if isinstance(cause, KeyboardInterrupt):
                raise KeyboardInterrupt from None
            raise _unwrap(exc) from None
        finally:
            with self._lock:
                self._running.pop(folder, None)

    def stop(self, timeout: float = 30.0) -> None:
        """Cancel the running tasks: each stops as a run stopped by Ctrl-C (its complete
        steps kept); one still running after ``timeout`` s is killed."""
        ray = self._ray
        with self._lock:
            refs = list(self._running.values())
        for ref in refs:
            ray.cancel(ref)
        _, late = ray.wait(refs, num_returns=len(refs), timeout=timeout)
        for ref in late:
            ray.cancel(ref, force=True)


def _unwrap(exc) -> Exception:
    """The task's own exception where it can be rebuilt (a PerspectivesError reads the same
    as in one process), else a RuntimeError with its message."""
    cause = getattr(exc, "cause", None)
    if isinstance(cause, Exception):
        return cause
    return RuntimeError(str(exc).strip().splitlines()[-1])
