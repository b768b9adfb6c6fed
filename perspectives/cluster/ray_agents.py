"""One system's agents across machines: Ray actors, each an ``AgentHost`` with a share of them.

The engine stays the driver: it draws the graph, plans the interviews, writes the run folder.
Each step it sends every actor the questions its agents must answer and the pairs they must
learn from, all actors at once, and collects the answers. What crosses the wire is the agent
contract's arguments and results (questions, pairs, seeds, answers): a few kB per step, never
weights. Each actor saves its agents' checkpoints into the run folder itself, so the folder
must be at the same path on every node (a shared filesystem).

The models are split among the actors as ``simulation.placement.HostPlacement`` splits them
among hosts (in config order, in equal contiguous shares); the same module has the placement's
logic and a placement in local processes.
"""

from __future__ import annotations

import os
import pickle
import threading
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InputError
from ..simulation.config import RunConfig
from ..simulation.hosting import AgentHost
from ..simulation.placement import HostPlacement, RemoteAgent
from . import connect, forwarded_env

__all__ = ["RayPlacement", "RemoteAgent"]


@dataclass
class RayPlacement(HostPlacement):
    """A system's agents in ``actors`` Ray actors of ``cpus_per_actor`` CPUs (torch threads)
    and ``gpus_per_actor`` GPUs each.

    ``address``: the cluster (as ``RayExecutor``'s). ``embedder``: a ``get_embedder`` name
    for remembering agents (default: the bundled one). ``sent`` / ``received``: bytes of the
    calls' arguments and results (pickled) since the placement started, the traffic a step
    makes besides what the actors write to the run folder.
    """

    cfg: RunConfig
    run_path: str | os.PathLike
    actors: int = 2
    cpus_per_actor: float = 1.0
    gpus_per_actor: float = 0.0
    address: str | None = None
    embedder: str | None = None
    sent: int = 0
    received: int = 0
    _hosts: list = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        if self.actors < 1:
            raise InputError("must be at least 1", field="actors", value=self.actors)
        self.run_path = str(Path(self.run_path).resolve())
        self._bytes = threading.Lock()

    # ------------------------------------------------------------------ plumbing
    def _count(self, sent: int = 0, received: int = 0) -> None:
        with self._bytes:
            self.sent += sent
            self.received += received

    def call(self, host, method: str, *args):
        """Call an actor's method and wait for the result, counting the bytes both ways."""
        ray = connect(self.address)
        self._count(sent=len(pickle.dumps(args)))
        result = ray.get(getattr(host, method).remote(*args))
        self._count(received=len(pickle.dumps(result)))
        return result

    def _start(self) -> None:
        if self._hosts:
            return
        ray = connect(self.address)
        actor = ray.remote(AgentHost)
        env = forwarded_env()
        threads = max(1, int(self.cpus_per_actor))
        self._hosts = [
            actor.options(num_cpus=self.cpus_per_actor, num_gpus=self.gpus_per_actor).remote(
                self.cfg, self.run_path, env, threads, self.embedder
            )
            for _ in range(self.actors)
        ]

    def where(self) -> dict:
        """The first actor's device, threads and dtypes, and how many actors there are."""
        self._start()
        return {**self.call(self._hosts[0], "where"), "placement": f"ray x{len(self._hosts)}"}

    def close(self) -> None:
        """End the actors (their agents are saved in the run folder's checkpoints)."""
        if not self._hosts:
            return
        ray = connect(self.address)
        for host in self._hosts:
            ray.kill(host)
        self._hosts = []
