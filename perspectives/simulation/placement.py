"""One system's agents in several hosts that work at the same time.

A ``HostPlacement`` splits a system's models among hosts (each an ``AgentHost``) in config
order, in equal contiguous shares, and sends each host a step's questions and pairs at once.
What crosses to a host is the agent contract's arguments and results (questions, pairs,
seeds, answers), never weights; each host saves its agents' checkpoints into the run folder
itself. Two kinds:

- ``ProcessPlacement``: hosts in processes of this machine, ``cores // hosts`` torch threads
  each. On a CPU one small model rarely keeps two cores busy (fine-tuning the bundled model
  on 2 threads is 1.1x one thread, ``benchmarks/results/busy.json``), so two one-thread hosts
  working side by side finish a step sooner.
- ``perspectives.cluster.RayPlacement``: hosts in Ray actors, on many machines.

Agents answer together (one batch of a shared network) only within a host: remembering
agents that sample give other answers when split differently; greedy answers and fine-tuned
agents do not depend on the split.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import BackendUnavailable, InputError
from ..models.update import TrainStats
from .config import RunConfig
from .hosting import AgentHost, Calls, LearnJob, ask_agents, learn_one


class RemoteAgent:
    """An agent living in a host: the agent contract, each call sent to its host."""

    def __init__(self, name: str, host, placement: HostPlacement) -> None:
        self.name, self.host, self._placement = name, host, placement

    @property
    def version(self) -> str:
        return self._placement.call(self.host, "version", self.name)

    def answer(self, questions, sampling=None, *, seed: int = 0, replicates: int = 1):
        calls = {self.name: (list(questions), seed)}
        return self._placement.call(self.host, "ask", calls, sampling, replicates)[self.name]

    def learn(self, pairs, *, seed: int = 0, t: int | None = None, source: str | None = None):
        self._placement.call(self.host, "learn", [(self.name, list(pairs), seed, t, source)])
        return TrainStats()

    def save(self, directory: str | os.PathLike) -> Path:
        path = Path(directory)
        self._placement.call(self.host, "save", [self.name], str(path.parent))
        return path

    @classmethod
    def load(cls, directory, *, state_dir=None, own=False):
        raise InputError(
            "agents in a placement's hosts are loaded by their host", field="placement"
        )


class HostPlacement:
    """What every placement of agents in hosts shares; a kind supplies ``_start`` (make
    ``self._hosts`` if there are none), ``call(host, method, *args)`` (run ``AgentHost``'s
    ``method`` in ``host`` and return its result), ``close`` and ``where``."""

    cfg: RunConfig
    _hosts: list

    def _start(self) -> None:
        raise NotImplementedError

    def call(self, host, method: str, *args):
        raise NotImplementedError

    def host_of(self, name: str):
        """The host holding model ``name``: the models in config order, in equal shares."""
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
        pool = ThreadPoolExecutor(max_workers=len(work))
        try:
            futures = {h: pool.submit(fn, h, item) for h, item in work.items()}
            return {h: f.result() for h, f in futures.items()}
        finally:
            # On Ctrl-C or a host's error, do not wait here for the other hosts' calls to
            # end: ``close`` stops the hosts.
            pool.shutdown(wait=False, cancel_futures=True)

    def new_agents(self, names: list[str]) -> dict[str, RemoteAgent]:
        groups = self._by_host(names)
        self._each(groups, lambda h, ns: self.call(h, "new", ns))
        return {n: RemoteAgent(n, h, self) for h, ns in groups.items() for n in ns}

    def load_agents(self, names: list[str], checkpoint: Path) -> dict[str, RemoteAgent]:
        groups = self._by_host(names)
        self._each(groups, lambda h, ns: self.call(h, "load", ns, str(checkpoint)))
        return {n: RemoteAgent(n, h, self) for h, ns in groups.items() for n in ns}

    def ask(self, agents: dict, calls: Calls, sampling, replicates: int) -> dict:
        """The calls of agents in this process answered here, the others by their hosts,
        all hosts at once."""
        local = {n: c for n, c in calls.items() if not isinstance(agents[n], RemoteAgent)}
        remote: dict = {}
        for name, call in calls.items():
            if name not in local:
                remote.setdefault(agents[name].host, {})[name] = call
        out = ask_agents(agents, local, sampling, replicates) if local else {}
        answers = self._each(remote, lambda h, c: self.call(h, "ask", c, sampling, replicates))
        for got in answers.values():
            out.update(got)
        return {n: out[n] for n in calls}

    def learn(self, agents: dict, jobs: list[LearnJob]) -> list[float]:
        """Each host runs its agents' jobs in order, all hosts at once; the seconds each job
        took, in the order of ``jobs``."""
        remote: dict = {}
        seconds: dict[int, float] = {}
        for i, job in enumerate(jobs):
            agent = agents[job[0]]
            if isinstance(agent, RemoteAgent):
                remote.setdefault(agent.host, []).append(i)
            else:
                seconds[i] = learn_one(agent, *job[1:])
        done = self._each(remote, lambda h, idx: self.call(h, "learn", [jobs[i] for i in idx]))
        for host, idx in remote.items():
            seconds.update(zip(idx, done[host], strict=True))
        return [seconds[i] for i in range(len(jobs))]

    def save(self, agents: dict, checkpoint: Path) -> None:
        local = [n for n, a in agents.items() if not isinstance(a, RemoteAgent)]
        for name in local:
            agents[name].save(checkpoint / name)
        groups = self._by_host([n for n in agents if n not in local])
        self._each(groups, lambda h, ns: self.call(h, "save", ns, str(checkpoint)))


# The host of a ``ProcessPlacement`` worker process (one per process).
_HOST: AgentHost | None = None


def _start_host(cfg: RunConfig, run_path: str, threads: int, embedder: str | None) -> None:
    global _HOST
    # Ctrl-C reaches the whole process group: the driver stops the run and then its hosts.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _HOST = AgentHost(cfg, run_path, None, threads, embedder)


def _host_call(method: str, args: tuple):
    return getattr(_HOST, method)(*args)


def available_cores() -> int:
    """The cores this process may use."""
    affinity = getattr(os, "sched_getaffinity", None)  # Linux; elsewhere all the cores
    return len(affinity(0)) if affinity else os.cpu_count() or 1


# A host process takes ~5 s to start and load its network; below this size a model's step
# is too short to repay it (and the tests' tiny models stay in one process).
HOSTS_WORTH_PARAMETERS = 50_000_000


def _body_parameters(model: str) -> int | None:
    """About how many parameters the transformer blocks of ``model`` hold (from its config
    alone), or None when that cannot be read."""
    try:
        from transformers import AutoConfig

        from ..models.hf import resolve_model_path

        config = AutoConfig.from_pretrained(resolve_model_path(model))
        h, layers = config.hidden_size, config.num_hidden_layers
        inner = getattr(config, "intermediate_size", None) or 4 * h
    except Exception:  # noqa: BLE001 - any failure means: do not guess, stay in one process
        return None
    return layers * (4 * h * h + 3 * h * inner)


def auto_placement(
    cfg: RunConfig, *, cores: int | None = None, device: str | None = None
) -> tuple[str, str]:
    """Where ``--placement auto`` puts one system's models: ``("processes", why)`` when two
    one-thread processes will finish its steps sooner with the same tables — a CPU with at
    least 2 cores, fine-tuned transformers models of at least ``HOSTS_WORTH_PARAMETERS``,
    no databases, threads not set by the user — else ``("local", why)``. Remembering models
    stay in one process because their sampled answers depend on which agents share a batch."""
    cores = available_cores() if cores is None else cores
    if device is None:
        from ..models.device import current_device

        device = current_device().type
    if device != "cpu":
        return "local", f"models on {device}"
    if cores < 2:
        return "local", "one core"
    if os.environ.get("OMP_NUM_THREADS"):
        return "local", "OMP_NUM_THREADS is set"
    if cfg.databases:
        return "local", "the system has databases"
    if sum(g.count for g in cfg.groups) < 2:
        return "local", "one model"
    for g in cfg.groups:
        if g.backend != "hf":
            return "local", f"{g.name} models are served by {g.backend}"
        if (g.update or cfg.update).method == "memory":
            return "local", f"{g.name} models remember"
    sizes = {g.model: _body_parameters(g.model) for g in cfg.groups}
    if any(n is None or n < HOSTS_WORTH_PARAMETERS for n in sizes.values()):
        return "local", "models too small to repay a process each"
    return "processes", f"{cores} cores, fine-tuned models"


@dataclass
class ProcessPlacement(HostPlacement):
    """A system's agents in ``hosts`` processes of this machine, ``threads`` torch threads
    each (default: this process's cores shared among them, at least 1). ``embedder``: a
    ``get_embedder`` name for remembering agents (default: the bundled one, whatever
    embedder the simulation was given). The hosts are spawned: from a Python script, start
    the run under ``if __name__ == "__main__":``. Raises InputError for fewer than 1 host
    or thread."""

    cfg: RunConfig
    run_path: str | os.PathLike
    hosts: int = 2
    threads: int | None = None
    embedder: str | None = None
    _hosts: list = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        if self.hosts < 1:
            raise InputError("must be at least 1", field="hosts", value=self.hosts)
        if self.threads is None:
            self.threads = max(1, available_cores() // self.hosts)
        if self.threads < 1:
            raise InputError("must be at least 1", field="threads", value=self.threads)
        self.run_path = str(Path(self.run_path).resolve())
        self._lock = threading.Lock()

    def _start(self) -> None:
        with self._lock:
            if self._hosts:
                return
            # spawn: a fork would copy this process's torch thread pools, and its locks.
            context = multiprocessing.get_context("spawn")
            args = (self.cfg, self.run_path, self.threads, self.embedder)
            self._hosts = [
                ProcessPoolExecutor(1, mp_context=context, initializer=_start_host, initargs=args)
                for _ in range(self.hosts)
            ]

    def call(self, host, method: str, *args):
        try:
            return host.submit(_host_call, method, args).result()
        except BrokenProcessPool as exc:
            raise BackendUnavailable(
                f"a host process of the placement ended while running {method!r} (killed, out "
                "of memory, or it failed to start: from a Python script, start the run under "
                "`if __name__ == '__main__':`); the run stops at its last complete step"
            ) from exc

    def where(self) -> dict:
        """The first host's device, threads and dtypes, and how many hosts there are."""
        self._start()
        return {**self.call(self._hosts[0], "where"), "placement": f"processes x{self.hosts}"}

    def close(self) -> None:
        """End the host processes at once (their agents are saved in the run folder's
        checkpoints; a call still running belongs to a step that was not completed)."""
        hosts, self._hosts = self._hosts, []
        for host in hosts:
            processes = list(getattr(host, "_processes", {}).values())
            host.shutdown(wait=False, cancel_futures=True)
            for process in processes:
                process.terminate()
            for process in processes:
                process.join(timeout=30)
