"""The simulation loop: interviews over a time-varying graph, updates, evaluation snapshots.

Step t (1..T) runs in named phases: **draw edges** E(t) from the policy; **plan interviews**
(the mechanic: every active learning model picks one in-neighbour and k questions);
**answer** (every source answers, as it was after step t - 1); **learn** (every interviewer
is updated on its answers); **membership** (joins and leaves); **evaluate** (at t = 0 and
every ``evaluation.every`` steps every active model answers the evaluation set, and the
answers are embedded); **write** (the step's parts and the agents' checkpoint, then the
commit). Every random choice comes from a generator seeded by (seed, t), so a resumed run
repeats an uninterrupted one exactly. Agents are made through the model registries
(``models.registry``), so any backend and update rule runs here; the run folder's layout is
``RunFolder``'s.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..data.banks import load_bank
from ..errors import CorruptStateError, InputError
from ..models.contract import Agent
from ..models.memory import MemoryAgent, MemoryStore
from ..models.update import UpdateConfig
from ..space.embed import CachedEmbedder, Embedder, get_embedder
from .config import RunConfig, build_policy, data_digests, evaluation_prompts, policy_context
from .databases import (
    DATABASES_DIR,
    ITEM_COLUMNS,
    Access,
    database_edges,
    initial_items,
    probe_of,
)
from .history import load_history
from .hosting import (
    LearnJob,
    Placement,
    ask_agents,
    learn_all,
    learn_one,
    new_agent,
    saved_agent,
)
from .mechanics import MECHANICS, Interview, Mechanic
from .policies import Edge, Policy, SystemState
from .rundir import RunFolder, other_config


@dataclass
class StepTimings:
    """Seconds spent in each phase of a step."""

    setup: float = 0.0
    answering: float = 0.0
    learning: float = 0.0
    evaluating: float = 0.0
    embedding: float = 0.0
    writing: float = 0.0
    total: float = 0.0

    @property
    def engine(self) -> float:
        """Time outside the timed phases (drawing edges, planning, bookkeeping)."""
        phases = self.setup + self.answering + self.learning + self.evaluating
        return max(self.total - phases - self.embedding - self.writing, 0.0)


@dataclass
class Step:
    """What one step draws and produces, phase by phase."""

    t: int
    rng: np.random.Generator
    active: list[str] = field(default_factory=list)
    edges: set[Edge] = field(default_factory=set)
    interviews: list[Interview] = field(default_factory=list)
    answers: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    rows: list[dict] = field(default_factory=list)
    events: list[dict] = field(default_factory=list)
    # Databases: the edges present at this step, the posts written, the items added.
    access: list[Access] = field(default_factory=list)
    posts: list[tuple[Access, list[int], list[str]]] = field(default_factory=list)
    db_items: list[dict] = field(default_factory=list)
    vectors: np.ndarray | None = None
    timings: StepTimings = field(default_factory=StepTimings)

    def event(self, kind: str, model: str = "", detail: str = "", seconds: float = 0.0) -> None:
        self.events.append(
            {"t": self.t, "kind": kind, "model": model, "detail": detail, "seconds": seconds}
        )


@dataclass
class Simulation:
    """A run in progress; ``run()`` continues it to step T.

    Parameters
    ----------
    cfg : RunConfig
        The system: groups, question bank, interaction, update, evaluation, communication.
    out : str, os.PathLike or RunFolder
        The run folder.
    embedder : Embedder, optional
        Embeds the evaluation answers (default: the bundled all-MiniLM-L6-v2, cached).
    on_phase : callable, optional
        ``on_phase(t, phase)`` as each phase starts (a progress display).
    policy : Policy, optional
        The communication structure; default: built from ``cfg.communication``.
    mechanic : callable, optional
        Who asks whom what (``simulation.mechanics``); default: ``cfg.interaction.mechanic``.
    keep_checkpoints : frozenset of int
        Steps whose checkpoints outlive the next step (other systems fork from them).
    lock_wait : float
        Seconds to wait for another process holding the run folder (a retried system whose
        killed predecessor's lease has not yet gone stale).
    placement : Placement, optional
        Where the agents live (``perspectives.cluster.RayPlacement``: Ray actors, each
        holding a share of them); default: in this process.

    Examples
    --------
    A system of four fake (torch-free) models over two steps, embedded by a hashing embedder:

    >>> import tempfile
    >>> from perspectives import RunConfig, Simulation, get_embedder
    >>> cfg = RunConfig.model_validate({
    ...     "steps": 2, "question_bank": "neutral",
    ...     "groups": [{"name": "a", "count": 2, "backend": "fake", "model": "calm"},
    ...                {"name": "b", "count": 2, "backend": "fake", "model": "loud"}],
    ...     "interaction": {"questions": 3},
    ...     "evaluation": {"n_prompts": 5}})
    >>> run = Simulation.create(cfg, tempfile.mkdtemp(), embedder=get_embedder("hashing")).run()
    >>> run.last_complete_step(), len(run.read_parts("edges"))
    (2, 24)
    """

    cfg: RunConfig
    out: Path | RunFolder
    embedder: Embedder | CachedEmbedder | None = None
    on_phase: Callable[[int, str], None] | None = None
    policy: Policy | None = None
    mechanic: Mechanic | None = None
    agents: dict[str, Agent] = field(default_factory=dict)
    timings: dict[int, StepTimings] = field(default_factory=dict)
    keep_checkpoints: frozenset[int] = frozenset()
    lock_wait: float = 0.0
    placement: Placement | None = None
    # The steps the run had when ``resume`` continued it to more (None: not continued).
    extended_from: int | None = field(default=None, init=False)
    # Greedy evaluation answers by agent name, with the agent version they were made at.
    _eval_cache: dict[str, tuple[str, list]] = field(default_factory=dict, repr=False)
    # The databases' items, and the retrieval-only models that place them in the space.
    stores: dict[str, MemoryStore] = field(default_factory=dict, repr=False)
    probes: dict[str, MemoryAgent] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.folder = self.out if isinstance(self.out, RunFolder) else RunFolder(self.out)
        self.out = self.folder.path

    # ------------------------------------------------------------------ setup
    @classmethod
    def create(cls, cfg: RunConfig, out: str | Path | RunFolder, **kw) -> Simulation:
        """Start a new run folder. A folder that already holds a run of the same config is
        continued (so re-running a command finishes or repeats nothing); one of another
        config is refused (ConfigError)."""
        folder = out if isinstance(out, RunFolder) else RunFolder(out)
        if folder.exists():
            return cls.resume(folder, cfg, **kw)
        folder.create(cfg)
        return cls(cfg, folder, **kw)

    @classmethod
    def resume(cls, out: str | Path | RunFolder, cfg: RunConfig | None = None, **kw) -> Simulation:
        """Reopen a run folder; with ``cfg``, refuse it (ConfigError) if it was made from
        another config, and continue it to ``cfg.steps`` if ``cfg`` is its config for more
        steps (``RunFolder.extend``; ``extended_from`` then holds the steps it had). Raises
        InputError if ``out`` is not a run folder or cannot be continued, CorruptStateError
        if its ``run.json`` or ``config.yaml`` is damaged or the config was edited since the
        run started (the rest of the folder is checked when it runs)."""
        folder = out if isinstance(out, RunFolder) else RunFolder(out)
        saved = folder.read_config()  # checked against run.json's fingerprint
        if cfg is None or cfg.fingerprint() == saved.fingerprint():
            return cls(saved, folder, **kw)
        if not cfg.extends(saved):
            raise other_config(folder, cfg, saved)
        # Refused now if it cannot go on; written when it runs, once the folder is checked.
        folder.check_extensible(cfg, saved)
        sim = cls(cfg, folder, **kw)
        sim.extended_from = saved.steps
        return sim

    def _check_data(self) -> None:
        """Record the digests of the data the run reads when it first runs; later, refuse
        (InputError naming the field) data that changed since: its steps would continue on
        other questions under the same ids."""
        digests = data_digests(self.cfg, self.bank, self.eval_set)
        recorded = self.folder.info().get("data")
        recorded = recorded if isinstance(recorded, dict) else {}  # older runs kept none
        for key, digest in digests.items():
            if key in recorded and recorded[key] != digest:
                value = self.cfg.model_dump()
                for part in key.split("."):
                    value = value[int(part)] if isinstance(value, list) else value[part]
                raise InputError(
                    "holds other data than when the run started (a file was edited, or a "
                    "relative path is read from another folder than the run's first): restore "
                    "it, or run from that folder",
                    source=str(self.folder.path),
                    field=key,
                    value=value,
                )
        if digests.keys() - recorded.keys():  # a new run, or tables not digested before
            self.folder.record_data({**digests, **recorded})

    def last_complete_step(self) -> int:
        """The last step whose tables and checkpoints are complete, or -1."""
        return self.folder.last_complete_step()

    def _phase(self, t: int, name: str) -> None:
        if self.on_phase is not None:
            self.on_phase(t, name)

    @contextlib.contextmanager
    def _timed(self, step: Step, phase: str, shown: str | None = None) -> Iterator[None]:
        """Time a phase into ``step.timings.<phase>`` (added up), announcing it as ``shown``."""
        if shown is not None:
            self._phase(step.t, shown)
        start = time.perf_counter()
        try:
            yield
        finally:
            setattr(step.timings, phase, getattr(step.timings, phase) + time.perf_counter() - start)

    def _embedder(self) -> Embedder | CachedEmbedder:
        if self.embedder is None:
            self.embedder = get_embedder()
        return self.embedder

    def _new_agents(self, t: int, names: list[str]) -> None:
        if self.placement is not None:
            self._phase(t, f"setting up {len(names)} models")
            self.agents.update(self.placement.new_agents(names))
            return
        # Systems side by side need the same initial models: each makes those no other process
        # is making first, and then finds the rest in the cache, instead of waiting in turn.
        made, later = {}, []
        for name in names:
            self._phase(t, f"setting up {name}")
            try:
                made[name] = new_agent(self.cfg, self.folder, name, self._embedder, wait=False)
            except BlockingIOError:
                later.append(name)
        for name in later:
            self._phase(t, f"setting up {name} (another process is making it)")
            made[name] = new_agent(self.cfg, self.folder, name, self._embedder)
        for name in names:  # in the config's order, whichever was made first
            self.agents[name] = made[name]

    # ------------------------------------------------------------- checkpoints
    def _load_checkpoint(self, t: int) -> None:
        """Load the agents saved after step ``t``. Raises CorruptStateError if the checkpoint
        or an agent in it is missing or damaged."""
        folder = self.folder.checkpoint(t)
        # Every model present at some step up to t was saved after step t: one that is missing
        # would restart from its initial weights, a silently wrong run.
        expected = {m for s in range(t + 1) for m in self.cfg.active(s)}
        if expected and not folder.is_dir():
            raise CorruptStateError(
                f"missing: the agents' checkpoint of step {t}, the last complete one; the run "
                "cannot resume exactly (start it again in a new folder)",
                source=str(folder),
            )
        missing = sorted(m for m in expected if not (folder / m / "agent.json").exists())
        if missing:
            raise CorruptStateError(
                f"the checkpoint of step {t} lacks the agents {missing}; the run cannot resume "
                "exactly (start it again in a new folder)",
                source=str(folder),
            )
        names = [m for m in self.cfg.models() if (folder / m).exists()]
        if self.placement is not None:
            self.agents.update(self.placement.load_agents(names, folder))
            return
        for name in names:
            self.agents[name] = saved_agent(
                self.cfg, self.folder, name, folder / name, self._embedder
            )

    # -------------------------------------------------------------- the loop
    def run(self) -> RunFolder:
        """Continue the run to step T; returns the run folder.

        Raises RunFolderBusy if another process is running the same folder (after waiting
        ``lock_wait`` s for it to stop)."""
        with self.folder.lock(self.lock_wait):
            try:
                return self._run()
            finally:
                if self.placement is not None:
                    self.placement.close()

    def _run(self) -> RunFolder:
        cfg = self.cfg
        # Everything is checked, and the agents loaded, before anything is removed: a damaged
        # folder is reported, never "repaired" by deleting what looks incomplete.
        last = self.folder.check()
        made = self.folder.read_config(validate=False)
        if cfg.fingerprint() != made.fingerprint() and not cfg.extends(made):
            raise other_config(self.folder, cfg, made)
        if last >= cfg.steps:
            # Complete: nothing to load (a finished sweep system keeps no weights to load).
            return self.folder
        self.eval_set = evaluation_prompts(cfg)
        self.bank = load_bank(cfg.question_bank)
        self._check_data()
        if self.placement is not None and cfg.databases:
            raise InputError(
                "databases are not yet supported with agents placed in other processes or on "
                "a cluster; run this system in one process",
                field="databases",
            )
        self.db_edges = database_edges(cfg, policy_context(cfg))
        if last >= 0:
            self._load_checkpoint(last)
            self._load_databases(last)
            self._note_compute_path(last)
        self.folder.extend(cfg)  # to more steps, or finishes an extension that was stopped
        self.folder.drop_incomplete(last)
        if self.policy is None:
            self.policy = build_policy(cfg.communication, cfg)
        if self.mechanic is None:
            self.mechanic = MECHANICS[cfg.interaction.mechanic]
        for t in range(last + 1, cfg.steps + 1):
            self._step(t)
        return self.folder

    def _step(self, t: int) -> None:
        start = time.perf_counter()
        step = Step(t, np.random.default_rng([self.cfg.seed, t]))
        with self._timed(step, "setup"):
            step.active = self._ensure_agents(t)
            if t == 0:
                self._seed_databases(step)
            self._grant_access(step)
        if t > 0:
            self._draw_edges(step)
            self._plan_interviews(step)
            with self._timed(step, "answering", "interviews"):
                self._answer(step)
            with self._timed(step, "learning", "learning"):
                self._learn(step)
                self._learn_from_databases(step)
                self._write_databases(step)
        self._membership(step)
        if t % self.cfg.evaluation.every == 0 or t == self.cfg.steps:
            with self._timed(step, "evaluating", "evaluation"):
                eval_rows = self._evaluate(step)
            if eval_rows:  # none when every model has left: nothing to embed
                with self._timed(step, "embedding"):
                    step.vectors = self._embedder().embed([r["text"] for r in eval_rows])
            step.rows = eval_rows + step.rows
        with self._timed(step, "writing", "writing"):
            self._write(step)
        step.timings.total = time.perf_counter() - start
        self._commit(step)

    # -------------------------------------------------------------- the phases
    def _ensure_agents(self, t: int) -> list[str]:
        active = self.cfg.active(t)
        missing = [name for name in active if name not in self.agents]
        if missing:
            self._new_agents(t, missing)
        return active

    def _draw_edges(self, step: Step) -> None:
        perspectives = self._perspectives(step.t) if self.policy.needs_perspectives else None
        state = SystemState(step.t, step.active, self.cfg.classes(), perspectives, step.rng)
        step.edges = self.policy.edges(state)

    def _plan_interviews(self, step: Step) -> None:
        learners = [m for m in step.active if self.cfg.group_of(m).learning]
        step.interviews, skipped = self.mechanic(
            step.edges, learners, len(self.bank), self.cfg.interaction.questions, step.rng
        )
        for name in skipped:
            step.event("skip", name, "no in-neighbour")

    def _answer(self, step: Step) -> None:
        """Every source answers all the questions put to it this step, in one call (sources
        that share a network, as remembering agents do, in one call together)."""
        asks: dict[str, list[Interview]] = {}
        for iv in step.interviews:
            asks.setdefault(iv.source, []).append(iv)
        questions = self.bank["question"]
        calls = {}
        for source, ivs in sorted(asks.items()):
            flat = [qi for iv in ivs for qi in iv.questions]
            calls[source] = (questions.iloc[flat].tolist(), int(step.rng.integers(2**31)))
        # Posts to a database are answered in the same call, after the interviews' questions.
        posts = self._plan_posts(step)
        for acc, picked, seed in posts:
            asked, seed = calls.get(acc.model, ([], seed))
            calls[acc.model] = (asked + questions.iloc[picked].tolist(), seed)
        texts = self._ask(calls, self.cfg.interaction.sampling)
        pos = dict.fromkeys(texts, 0)
        for source, ivs in sorted(asks.items()):
            for iv in ivs:
                at = pos[source]
                step.answers[(iv.asker, source)] = texts[source][at : at + len(iv.questions)]
                pos[source] = at + len(iv.questions)
        for acc, picked, _ in posts:
            at = pos[acc.model]
            step.posts.append((acc, picked, texts[acc.model][at : at + len(picked)]))
            pos[acc.model] = at + len(picked)

    def _ask(
        self, calls: dict[str, tuple[list[str], int]], sampling, replicates: int = 1
    ) -> dict[str, list]:
        """``calls[agent] = (questions, seed)`` answered: agents with one ``joint_key`` in one
        call seeded by the first one's seed, the others one call each."""
        agents = {n: self.agents[n] if n in self.agents else self.probes[n] for n in calls}
        if self.placement is None:
            return ask_agents(agents, calls, sampling, replicates)
        return self.placement.ask(agents, calls, sampling, replicates)

    def _learn(self, step: Step) -> None:
        ids, questions = self.bank["question_id"], self.bank["question"]
        jobs: list[LearnJob] = []
        for iv in sorted(step.interviews, key=lambda iv: iv.asker):
            got = step.answers[(iv.asker, iv.source)]
            for qi, text in zip(iv.questions, got, strict=True):
                step.rows.append(
                    {
                        "t": step.t,
                        "model": iv.source,
                        "phase": "interview",
                        "asker": iv.asker,
                        "question_id": ids.iloc[qi],
                        "replicate": 0,
                        "text": text,
                    }
                )
            pairs = [(questions.iloc[qi], a) for qi, a in zip(iv.questions, got, strict=True)]
            jobs.append((iv.asker, pairs, int(step.rng.integers(2**31)), step.t, iv.source))
        if self.placement is None:
            seconds = learn_all(self.agents, jobs)
        else:
            seconds = self.placement.learn(self.agents, jobs)
        for (asker, _, _, _, source), s in zip(jobs, seconds, strict=True):
            step.event("learn", asker, source, s)

    def _membership(self, step: Step) -> None:
        for name in self.cfg.models():
            g = self.cfg.group_of(name)
            if g.join_at == step.t and step.t > 0:
                step.event("join", name)
            if g.leave_at == step.t:
                step.event("leave", name)

    # ------------------------------------------------------------- databases
    def _seed_databases(self, step: Step) -> None:
        """Every database's initial items, at t = 0."""
        for i, edges in enumerate(self.db_edges):
            items = initial_items(edges.spec, self.cfg.seed, i)
            self.stores[edges.spec.name] = MemoryStore()
            self._add_items(step, edges.spec.name, items)

    def _add_items(self, step: Step, database: str, items) -> None:
        if not len(items):
            return
        vectors = self._embedder().embed(items["question"].tolist())
        self.stores[database].add(items, vectors)
        step.db_items += items.to_dict("records")

    def _grant_access(self, step: Step) -> None:
        """The database edges present at this step; each remembering agent is given the
        databases it may retrieve from (none, where access was taken away)."""
        step.access = [a for edges in self.db_edges for a in edges.at(step.t, step.active)]
        for name in step.active:
            agent = self.agents[name]
            if hasattr(agent, "shared"):
                agent.shared = [
                    self.stores[a.database]
                    for a in step.access
                    if a.model == name and a.mode == "retrieval"
                ]

    def _db_rng(self, step: Step, kind: int, acc: Access) -> np.random.Generator:
        """A generator of its own for each database edge: the interviews' stream stays that
        of the same system without databases."""
        names = [e.spec.name for e in self.db_edges]
        where = [names.index(acc.database), self.cfg.models().index(acc.model)]
        return np.random.default_rng([self.cfg.seed, step.t, kind, *where])

    def _plan_posts(self, step: Step) -> list[tuple[Access, list[int], int]]:
        """``(edge, question indices, seed)`` for every writer that posts at this step."""
        out = []
        for acc in step.access:
            if acc.mode == "posts":
                rng = self._db_rng(step, 37, acc)
                picked = np.sort(rng.choice(len(self.bank), acc.grant.posts, replace=False))
                out.append((acc, picked.tolist(), int(rng.integers(2**31))))
        return out

    def _learn_from_databases(self, step: Step) -> None:
        """Readers with ``use: training`` learn from a sample of the database as it was after
        the last step."""
        for acc in step.access:
            store = self.stores[acc.database]
            if acc.mode != "training" or not len(store):
                continue
            rng = self._db_rng(step, 41, acc)
            n = min(acc.grant.sample, len(store))
            items = store.items.iloc[np.sort(rng.choice(len(store), n, replace=False))]
            pairs = list(zip(items["question"], items["answer"], strict=True))
            seconds = learn_one(
                self.agents[acc.model], pairs, int(rng.integers(2**31)), step.t, acc.database
            )
            step.event("learn", acc.model, acc.database, seconds)

    def _write_databases(self, step: Step) -> None:
        """What each writer wrote at this step goes into its database."""
        questions = self.bank["question"]
        posted = {(a.database, a.model): (q, ans) for a, q, ans in step.posts}
        for acc in step.access:
            if acc.access != "write":
                continue
            if acc.mode == "posts":
                picked, answers = posted[(acc.database, acc.model)]
                pairs = list(zip(questions.iloc[picked], answers, strict=True))
            else:
                role = "source" if acc.mode == "answers" else "asker"
                pairs = [
                    (questions.iloc[qi], text)
                    for iv in step.interviews
                    if getattr(iv, role) == acc.model
                    for qi, text in zip(
                        iv.questions, step.answers[(iv.asker, iv.source)], strict=True
                    )
                ]
            items = pd.DataFrame(
                {
                    "t": step.t,
                    "database": acc.database,
                    "question": [q for q, _ in pairs],
                    "answer": [a for _, a in pairs],
                    "source": acc.model,
                    # What it said itself is first-hand; what it heard is not.
                    "first_hand": acc.mode != "interviews",
                },
                columns=ITEM_COLUMNS,
            )
            self._add_items(step, acc.database, items)

    def _probes(self, step: Step) -> dict[str, MemoryAgent]:
        """The retrieval-only models of the databases placed in the space, by name."""
        out = {}
        for edges in self.db_edges:
            db = edges.spec
            if not db.evaluate:
                continue
            if db.name not in self.probes:
                probe = probe_of(self.cfg, db)
                agent = MemoryAgent(
                    db.name,
                    probe.model,
                    backend=probe.backend,
                    prompt_format=probe.prompt_format,
                    update=UpdateConfig(method="memory", memory_k=db.k),
                    api=probe.api,
                    embedder=self._embedder(),
                )
                self.probes[db.name] = agent
            self.probes[db.name].shared = [self.stores[db.name]]
            out[db.name] = self.probes[db.name]
        return out

    def _load_databases(self, t: int) -> None:
        """The databases as saved after step ``t``. Raises CorruptStateError if one is
        missing or damaged."""
        for edges in self.db_edges:
            folder = self.folder.checkpoint(t) / DATABASES_DIR / edges.spec.name
            if not folder.is_dir():
                raise CorruptStateError(
                    f"the checkpoint of step {t} lacks the database {edges.spec.name!r}; the "
                    "run cannot resume exactly (start it again in a new folder)",
                    source=str(self.folder.checkpoint(t)),
                )
            self.stores[edges.spec.name] = MemoryStore.load(folder)

    def _evaluate(self, step: Step) -> list[dict]:
        spec = self.cfg.evaluation
        prompts = self.eval_set["prompt"].tolist()
        ids = self.eval_set["prompt_id"].tolist()
        greedy = not spec.sampling.do_sample
        outs, calls = {}, {}
        probes = self._probes(step)
        answerers = {**{n: self.agents[n] for n in step.active}, **probes}
        for name, agent in answerers.items():
            # Drawn even when unused: the same stream (a probe's from its own generator).
            seed = (
                int(step.rng.integers(2**31))
                if name in self.agents
                else int(np.random.default_rng([self.cfg.seed, step.t, 43]).integers(2**31))
            )
            cached = self._eval_cache.get(name)
            if greedy and cached is not None and cached[0] == agent.version:
                # A model that has not changed since its last evaluation (a static adversary,
                # say) gives the same greedy answers: they are reused, not recomputed.
                outs[name] = cached[1]
            else:
                calls[name] = (prompts, seed)
        for name, out in self._ask(calls, spec.sampling, spec.replicates).items():
            outs[name] = out
            if greedy:
                self._eval_cache[name] = (answerers[name].version, out)
        rows = []
        for name in answerers:
            out = outs[name]
            if spec.replicates == 1:
                out = [[a] for a in out]
            for pid, reps in zip(ids, out, strict=True):
                for r, text in enumerate(reps):
                    rows.append(
                        {
                            "t": step.t,
                            "model": name,
                            "phase": "eval",
                            "asker": "",
                            "question_id": pid,
                            "replicate": r,
                            "text": text,
                        }
                    )
        return rows

    def _write(self, step: Step) -> None:
        """The step's tables and embeddings, then the agents' checkpoint."""
        self.folder.check_lease(step.t)  # not beside another process that took the run over
        self.folder.write_step(step.t, step.rows, step.edges, step.vectors)
        if self.cfg.databases:
            access = [a.row(step.t) for a in step.access]
            self.folder.write_databases(step.t, step.db_items, access)
        folder = self.folder.checkpoint(step.t)
        if self.placement is not None:
            self.placement.save(self.agents, folder)
        else:
            for name, agent in self.agents.items():
                agent.save(folder / name)
        for name, store in self.stores.items():
            (folder / DATABASES_DIR / name).mkdir(parents=True, exist_ok=True)
            store.save(folder / DATABASES_DIR / name)

    def _where(self) -> dict:
        if self.placement is None:
            return _where(self.cfg.update.mixed_precision)
        return self.placement.where()

    def _note_compute_path(self, last: int) -> None:
        """Warn when a resumed run goes on on another compute path than its step ``last``
        ran on: greedy answers repeat exactly on one path only, so the steps from here
        would not be those of the run uninterrupted."""
        if all(g.backend != "hf" for g in self.cfg.groups):
            return  # no model computes with torch (fake or API agents): no path to keep
        events = self.folder.read_part("events", last)
        details = events.loc[events["kind"] == "timing", "detail"]
        try:
            before = json.loads(details.iloc[-1])
        except (IndexError, TypeError, ValueError):
            return  # no readable record (analyze names an unreadable one)
        if not isinstance(before, dict):
            return
        changed = _path_changes(before, self._where())
        if changed:
            warnings.warn(
                f"{self.folder.path}: step {last} ran on another compute path than this "
                f"process's ({', '.join(changed)}); greedy answers may differ between paths, "
                "so the steps from here may not be those of the run uninterrupted. To keep its "
                "path, resume it as it ran (the same --dtype, --device, and --jobs or "
                "--placement)",
                stacklevel=2,
            )

    def _commit(self, step: Step) -> None:
        """The events (with the step's timings) last, then mark the step complete."""
        tm = step.timings
        where = self._where()
        step.event(
            "timing", "", json.dumps({**tm.__dict__, "engine": tm.engine, **where}), tm.total
        )
        self.folder.write_events(step.t, step.events)
        self.folder.commit_step(step.t, self.keep_checkpoints)
        self.timings[step.t] = tm

    def _perspectives(self, t: int) -> dict[str, np.ndarray] | None:
        """Every model's latest perspective before step t (joint space of the history)."""
        hist = load_history(self.folder, upto=t - 1)
        if hist is None:
            return None
        table = hist.perspectives
        latest = table[table["t"] == table["t"].max()]
        zcols = [c for c in table.columns if c.startswith("z")]
        return {m: row[zcols].to_numpy(float) for m, row in latest.set_index("model").iterrows()}


def _path_changes(before: dict, now: dict) -> list[str]:
    """What differs between two compute paths (``_where``) in a way that can change the
    numbers: the device's kind (not its index), the dtypes, and the thread count where
    bfloat16 runs on a CPU (float32 gave the same tables with one thread and two). A value
    missing on either side (an older record, no model loaded) is not compared."""

    def kind(device):
        return str(device).split(":")[0] if device is not None else None

    seen = {"device": (kind(before.get("device")), kind(now.get("device")))}
    for key in ("answer_dtype", "train_dtype"):
        seen[key] = (before.get(key), now.get(key))
    bf16_cpu = "bfloat16" in {*seen["answer_dtype"], *seen["train_dtype"]} and "cpu" in {
        *seen["device"]
    }
    if bf16_cpu:
        seen["threads"] = (before.get("threads"), now.get("threads"))
    return [
        f"{key} {a} -> {b}"
        for key, (a, b) in seen.items()
        if a is not None and b is not None and a != b
    ]


def _where(mixed_precision: str = "auto") -> dict:
    """Where and how a step ran: numbers differ between devices and thread counts, and
    greedy answers between dtype paths (``answer_dtype``; ``train_dtype``: float32, or
    bfloat16 autocast). Asked of torch only when the agents loaded it (a run of torch-free
    agents never does)."""
    if "torch" not in sys.modules:
        return {"device": "cpu", "threads": None, "answer_dtype": None, "train_dtype": None}
    import torch

    from ..models.device import current_device
    from ..models.hf import _resolve_dtype
    from ..models.training import _use_bf16

    device = current_device()
    where = {"device": str(device), "threads": torch.get_num_threads()}
    # A transformers network answers wherever models.hf is loaded (remembering agents too);
    # one is fine-tuned only where an agent of models.hf_agent is.
    answers = "perspectives.models.hf" in sys.modules
    trains = "perspectives.models.hf_agent" in sys.modules
    return {
        **where,
        "answer_dtype": str(_resolve_dtype("auto", device)).removeprefix("torch.")
        if answers
        else None,
        "train_dtype": ("bfloat16" if _use_bf16(mixed_precision, device) else "float32")
        if trains
        else None,
    }
