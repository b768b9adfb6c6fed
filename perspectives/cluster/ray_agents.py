"""One system's agents across machines: Ray actors, each an ``AgentHost`` with a share of them.

The engine stays the driver: it draws the graph, plans the interviews, writes the run folder.
Each step it sends every actor the questions its agents must answer and the pairs they must
learn from, all actors at once, and collects the answers. What crosses the wire is the agent
contract's arguments and results (questions, pairs, seeds, answers): a few kB per step, never
weights. Each actor saves its agents' checkpoints into the run folder itself, so the folder
must be at the same path on every node (a shared filesystem).

The models are split among the actors in config order, in equal contiguous shares. Agents
answer together (one batch of a shared network) only within an actor: remembering agents that
sample give other answers when split differently; greedy answers and fine-tuned agents do not
depend on the split.
"""

from __future__ import annotations

import os
import pickle
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InputError
from ..models.update import TrainStats
from ..simulation.config import RunConfig
from ..simulation.hosting import AgentHost, Calls, LearnJob, ask_agents, learn_one
from . import connect, forwarded_env


class RemoteAgent:
    """An agent living in an actor: the agent contract, each call sent to its host."""

    def __init__(self, name: str, host, placement: RayPlacement) -> None:
        self.name, self.host, self._placement = name, host, placement

    @property
    def version(self) -> str:
        return self._placement.call(self.host.version, self.name)

    def answer(self, questions, sampling=None, *, seed: int = 0, replicates: int = 1):
        calls = {self.name: (list(questions), seed)}
        return self._placement.call(self.host.ask, calls, sampling, replicates)[self.name]

    def learn(self, pairs, *, seed: int = 0, t: int | None = None, source: str | None = None):
        self._placement.call(self.host.learn, [(self.name, list(pairs), seed, t, source)])
        return TrainStats()

    def save(self, directory: str | os.PathLike) -> Path:
        path = Path(directory)
        self._placement.call(self.host.save, [self.name], str(path.parent))
        return path

    @classmethod
    def load(cls, directory, *, state_dir=None, own=False):
        raise InputError("agents on a cluster are loaded by their actor", field="placement")


@dataclass
class RayPlacement:
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

    def call(self, method, *args):
        """Call an actor's method and wait for the result, counting the bytes both ways."""
        ray = connect(self.address)
        self._count(sent=len(pickle.dumps(args)))
        result = ray.get(method.remote(*args))
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

    def host_of(self, name: str):
        """The actor holding model ``name``: the models in config order, in equal shares."""
        self._start()
        models = self.cfg.models()
        share = -(-len(models) // len(self._hosts))
        return self._hosts[models.index(name) // share]

    def _by_host(self, names) -> dict:
        groups: dict = {}
        for name in names:
            groups.setdefault(self.host_of(name), []).append(name)
        return groups

    def _each(self, work: dict, fn) -> dict:
        """``fn(host, item)`` for every host's item, all hosts at once; results by host."""
        if len(work) <= 1:
            return {h: fn(h, item) for h, item in work.items()}
        with ThreadPoolExecutor(max_workers=len(work)) as pool:
            futures = {h: pool.submit(fn, h, item) for h, item in work.items()}
            return {h: f.result() for h, f in futures.items()}

    # ------------------------------------------------------------- the placement
    def new_agents(self, names: list[str]) -> dict[str, RemoteAgent]:
        groups = self._by_host(names)
        self._each(groups, lambda h, ns: self.call(h.new, ns))
        return {n: RemoteAgent(n, h, self) for h, ns in groups.items() for n in ns}

    def load_agents(self, names: list[str], checkpoint: Path) -> dict[str, RemoteAgent]:
        groups = self._by_host(names)
        self._each(groups, lambda h, ns: self.call(h.load, ns, str(checkpoint)))
        return {n: RemoteAgent(n, h, self) for h, ns in groups.items() for n in ns}

    def ask(self, agents: dict, calls: Calls, sampling, replicates: int) -> dict:
        """The calls of agents in this process answered here, the others by their actors,
        all actors at once."""
        local = {n: c for n, c in calls.items() if not isinstance(agents[n], RemoteAgent)}
        remote: dict = {}
        for name, call in calls.items():
            if name not in local:
                remote.setdefault(agents[name].host, {})[name] = call
        out = ask_agents(agents, local, sampling, replicates) if local else {}
        answers = self._each(remote, lambda h, c: self.call(h.ask, c, sampling, replicates))
        for got in answers.values():
            out.update(got)
        return {n: out[n] for n in calls}

    def learn(self, agents: dict, jobs: list[LearnJob]) -> list[float]:
        """Each actor runs its agents' jobs in order, all actors at once; the seconds each
        job took, in the order of ``jobs``."""
        remote: dict = {}
        seconds: dict[int, float] = {}
        for i, job in enumerate(jobs):
            agent = agents[job[0]]
            if isinstance(agent, RemoteAgent):
                remote.setdefault(agent.host, []).append(i)
            else:
                seconds[i] = learn_one(agent, *job[1:])
        done = self._each(remote, lambda h, idx: self.call(h.learn, [jobs[i] for i in idx]))
        for host, idx in remote.items():
            seconds.update(zip(idx, done[host], strict=True))
        return [seconds[i] for i in range(len(jobs))]

    def save(self, agents: dict, checkpoint: Path) -> None:
        local = [n for n, a in agents.items() if not isinstance(a, RemoteAgent)]
        for name in local:
            agents[name].save(checkpoint / name)
        groups = self._by_host([n for n in agents if n not in local])
        self._each(groups, lambda h, ns: self.call(h.save, ns, str(checkpoint)))

    def where(self) -> dict:
        """The first actor's device, threads and dtypes, and how many actors there are."""
        self._start()
        return {**self.call(self._hosts[0].where), "placement": f"ray x{len(self._hosts)}"}

    def close(self) -> None:
        """End the actors (their agents are saved in the run folder's checkpoints)."""
        if not self._hosts:
            return
        ray = connect(self.address)
        for host in self._hosts:
            ray.kill(host)
        self._hosts = []
