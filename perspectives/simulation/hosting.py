"""Where a system's agents live: made, loaded, asked, taught and saved by an ``AgentHost``.

The engine keeps its agents in its own process by default and calls them one by one. A
cluster's placement (``perspectives.cluster.ray_agents``) runs an ``AgentHost`` in each of
several Ray actors instead, each holding a share of the system's agents; the engine then
sends each host a step's questions and pairs at once, and the hosts work at the same time.
Either way an agent is made, loaded and called by the functions here, so a system gives the
same tables wherever its agents live.
"""

from __future__ import annotations

import inspect
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import numpy as np

from ..data.banks import load_bank
from ..models.contract import Agent, AgentSpec
from ..models.heap import trim_heap
from ..models.initial import InitialModel, initial_agent
from ..models.memory import answer_jointly
from ..models.registry import load_agent, make_agent, update_rules
from .config import RunConfig
from .rundir import RunFolder

# ``calls[agent] = (questions, seed)``; a learning job ``(agent, pairs, seed, t, source)``.
Calls = dict[str, tuple[list[str], int]]
LearnJob = tuple[str, list[tuple[str, str]], int, int | None, str | None]


class Placement(Protocol):
    """Where a system's agents live when not in the engine's own process: it makes and loads
    them (returning stand-ins that keep the agent contract), and runs a step's calls of many
    agents at once. ``perspectives.cluster.RayPlacement`` is one."""

    def new_agents(self, names: list[str]) -> dict[str, Agent]: ...

    def load_agents(self, names: list[str], checkpoint: Path) -> dict[str, Agent]: ...

    def ask(self, agents: dict[str, Agent], calls: Calls, sampling, replicates: int) -> dict: ...

    def learn(self, agents: dict[str, Agent], jobs: list[LearnJob]) -> list[float]: ...

    def save(self, agents: dict[str, Agent], checkpoint: Path) -> None: ...

    def where(self) -> dict: ...

    def close(self) -> None: ...


def agent_spec(cfg: RunConfig, name: str) -> AgentSpec:
    """What a new agent of the run is: its group's model, backend and prompts, its update."""
    g = cfg.group_of(name)
    return AgentSpec(
        name,
        g.model,
        backend=g.backend,
        system_prompt=g.system_prompt,
        prompt_format=g.prompt_format,
        update=cfg.update_of(name),
        sampling=cfg.interaction.sampling,
        seed=cfg.seed * 1000 + cfg.models().index(name),
        api=g.api,
    )


def adopt(cfg: RunConfig, name: str, agent: Agent, embedder: Callable[[], object]) -> Agent:
    """Give a made or loaded agent the run's settings: its group's update config, and the
    run's embedder (``embedder()``, asked only then) to an agent that retrieves."""
    agent.name = name
    agent.update = cfg.update_of(name)
    if hasattr(agent, "embedder"):
        agent.embedder = embedder()
    return agent


def new_agent(
    cfg: RunConfig,
    folder: RunFolder,
    name: str,
    embedder: Callable[[], object],
    *,
    wait: bool = True,
) -> Agent:
    """The agent ``name`` as it starts the run: its group's model, given its initial
    perspective (fine-tuned on a sample of its bank, or remembering it) if the group has one.
    With ``wait=False``, raises BlockingIOError if another process is fine-tuning the same
    initial model."""
    g = cfg.group_of(name)
    spec = agent_spec(cfg, name)
    state = folder.agent_state(name)
    if g.init is None:
        return adopt(cfg, name, make_agent(spec, state), embedder)
    bank = load_bank(g.init.bank)
    idx = cfg.models().index(name)
    rng = np.random.default_rng([cfg.seed, 11, idx])
    rows = bank.iloc[np.sort(rng.choice(len(bank), g.init.sample_size, replace=False))]
    pairs = list(zip(rows["question"], rows["answer"], strict=True))
    seed_initial = update_rules.get(spec.update.method).initial()
    if seed_initial is not None:
        # A rule that learns without fine-tuning takes its initial perspective the same way.
        agent = adopt(cfg, name, make_agent(spec, state), embedder)
        seed_initial(agent, pairs)
        return agent
    initial = InitialModel(
        name=name,
        pairs=pairs,
        model=g.model,
        backend=g.backend,
        prompt_format=g.prompt_format,
        system_prompt=g.system_prompt,
        update={
            "method": spec.update.method,
            "epochs": g.init.epochs,
            "lr": g.init.lr,
            "batch_size": g.init.batch_size,
        },
        seed=spec.seed,
    )
    # Fine-tunes, or finds it in the cache.
    agent, _ = initial_agent(initial, wait=wait, state_dir=state)
    return adopt(cfg, name, agent, embedder)


def saved_agent(
    cfg: RunConfig, folder: RunFolder, name: str, saved: Path, embedder: Callable[[], object]
) -> Agent:
    """The agent ``name`` as saved in ``saved`` (a checkpoint), in a copy of its own: a model
    that never learns would otherwise read its weights from a checkpoint that goes once the
    next step is complete."""
    agent = load_agent(saved, state_dir=folder.agent_state(name), own=True)
    return adopt(cfg, name, agent, embedder)


def takes_time(agent: Agent) -> bool:
    """Whether ``agent.learn`` takes ``t`` and ``source`` (agents written before the contract
    had them take only ``pairs`` and ``seed``)."""
    params = inspect.signature(agent.learn).parameters
    return ("t" in params and "source" in params) or any(
        p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()
    )


def learn_one(agent: Agent, pairs, seed: int, t: int | None, source: str | None) -> float:
    """Teach ``agent`` the pairs heard from ``source`` at step ``t``; returns the seconds."""
    start = time.perf_counter()
    when = {"t": t, "source": source} if takes_time(agent) else {}
    agent.learn(pairs, seed=seed, **when)
    return time.perf_counter() - start


def ask_agents(agents: dict[str, Agent], calls: Calls, sampling, replicates: int = 1) -> dict:
    """``calls[name] = (questions, seed)`` answered by ``agents[name]``: agents with one
    ``joint_key`` (remembering agents sharing a network) in one call seeded by the first
    one's seed, the others one call each."""
    joint: dict[str, list[str]] = {}
    for name in calls:
        key = getattr(agents[name], "joint_key", None)
        if key is not None:
            joint.setdefault(key, []).append(name)
    out: dict[str, list] = {}
    for names in joint.values():
        if len(names) > 1:
            answers = answer_jointly(
                [agents[n] for n in names],
                [calls[n][0] for n in names],
                sampling,
                seed=calls[names[0]][1],
                replicates=replicates,
            )
            out.update(zip(names, answers, strict=True))
    for name, (qs, seed) in calls.items():
        if name not in out:
            out[name] = agents[name].answer(qs, sampling, seed=seed, replicates=replicates)
    trim_heap()
    return out


def learn_all(agents: dict[str, Agent], jobs: list[LearnJob]) -> list[float]:
    """Run the learning jobs in order; the seconds each took."""
    seconds = [learn_one(agents[n], pairs, seed, t, src) for n, pairs, seed, t, src in jobs]
    trim_heap()
    return seconds


def take_settings(env: dict[str, str] | None, threads: int | None) -> None:
    """Set this process up as the driver asked: its environment settings (device, dtype,
    cache folder) and ``threads`` torch threads (None: leave them)."""
    os.environ.update(env or {})
    if threads is not None:
        os.environ["OMP_NUM_THREADS"] = str(threads)
        import torch

        torch.set_num_threads(threads)


class AgentHost:
    """A share of a system's agents, in one process (a Ray actor's, on a cluster).

    ``cfg``: the run's config; ``run_path``: its run folder (on a cluster, at the same path on
    every node); ``env``: environment settings to take first (device, dtype, cache folder);
    ``threads``: torch threads (None: leave them); ``embedder``: a ``get_embedder`` name for
    remembering agents (default: the bundled one).
    """

    def __init__(
        self,
        cfg: RunConfig,
        run_path: str,
        env: dict[str, str] | None = None,
        threads: int | None = None,
        embedder: str | None = None,
    ) -> None:
        take_settings(env, threads)
        self.cfg, self.folder = cfg, RunFolder(run_path)
        self.embedder_name, self._embedder = embedder, None
        self.agents: dict[str, Agent] = {}

    def embedder(self):
        if self._embedder is None:
            from ..space.embed import get_embedder

            self._embedder = get_embedder(self.embedder_name or "bundled")
        return self._embedder

    def new(self, names: list[str]) -> None:
        """Make the agents ``names`` as they start the run."""
        for name in names:
            self.agents[name] = new_agent(self.cfg, self.folder, name, self.embedder)

    def load(self, names: list[str], checkpoint: str) -> None:
        """Load the agents ``names`` as saved in the checkpoint folder ``checkpoint``."""
        for name in names:
            saved = Path(checkpoint) / name
            self.agents[name] = saved_agent(self.cfg, self.folder, name, saved, self.embedder)

    def ask(self, calls: Calls, sampling, replicates: int = 1) -> dict:
        """See ``ask_agents``."""
        return ask_agents(self.agents, calls, sampling, replicates)

    def learn(self, jobs: list[LearnJob]) -> list[float]:
        """Run the learning jobs in order; the seconds each took."""
        return learn_all(self.agents, jobs)

    def save(self, names: list[str], checkpoint: str) -> None:
        """Save the agents ``names`` into the checkpoint folder ``checkpoint``."""
        for name in names:
            self.agents[name].save(Path(checkpoint) / name)

    def version(self, name: str) -> str:
        return self.agents[name].version

    def where(self) -> dict:
        """Where and how this host computes (device, threads, dtypes)."""
        from .engine import _where

        return _where(self.cfg.update.mixed_precision)
