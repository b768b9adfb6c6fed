"""The simulation loop: interviews over a time-varying graph, updates, evaluation snapshots.

Step t (1..T): draw E(t) from the policy; every active learning model picks one in-neighbour
at random and asks it k random questions from the bank (all answers come from the models as
they were after step t - 1); then every interviewer learns from its answers. At t = 0 and every
``evaluation.every`` steps every active model answers the evaluation set; answers are embedded
and stored. Every random choice comes from a generator seeded by (seed, t), so a resumed run
repeats an uninterrupted one exactly.

The run folder (written atomically, one part file per step)::

    config.yaml  run.json  progress.json
    tables/responses/step-000t.parquet   t, model, phase (eval | interview), asker,
                                         question_id, replicate, text
    tables/edges/step-000t.parquet       t, src, dst
    tables/events/step-000t.parquet      t, kind, model, detail, seconds
    embeddings/step-000t.npy             eval answers' embeddings, rows in table order
    agents/<model>/                      each agent's live state
    checkpoints/step-000t/<model>/       agents after the last complete step (and after
                                         any step in ``keep_checkpoints``)
"""

from __future__ import annotations

import contextlib
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml

from ..data.banks import load_bank
from ..errors import InputError
from ..models.device import current_device
from ..models.hf import Sampling
from ..models.hf_agent import Agent
from ..models.initial import InitialModel, cache_key, initial_agent, initial_cache_dir
from ..space.embed import CachedEmbedder, Embedder, get_embedder
from ..space.estimator import PerspectiveSpace
from ..space.responses import mean_kernels
from ..store import file_lock, write_json, write_npy, write_parquet, write_text
from .config import RunConfig, build_policy, evaluation_prompts
from .mechanics import MECHANICS
from .policies import SystemState


def _part(t: int) -> str:
    return f"step-{t:05d}"


def last_complete_step(out: str | Path) -> int:
    """The last step whose tables and checkpoints are complete in run folder ``out``, or -1."""
    p = Path(out) / "progress.json"
    return int(json.loads(p.read_text())["last_complete_step"]) if p.exists() else -1


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
        return max(
            self.total
            - self.setup
            - self.answering
            - self.learning
            - self.evaluating
            - self.embedding
            - self.writing,
            0.0,
        )


@dataclass
class Simulation:
    """A run in progress; ``run()`` continues it to step T."""

    cfg: RunConfig
    out: Path
    embedder: Embedder | CachedEmbedder | None = None
    on_phase: Callable[[int, str], None] | None = None
    agents: dict[str, Agent] = field(default_factory=dict)
    timings: dict[int, StepTimings] = field(default_factory=dict)
    # Steps whose checkpoints outlive the next step (other systems fork from them).
    keep_checkpoints: frozenset[int] = frozenset()
    # Greedy evaluation answers by agent (its uid), with the update count they were made at.
    _eval_cache: dict[str, tuple[int, list]] = field(default_factory=dict, repr=False)

    # ------------------------------------------------------------------ setup
    @classmethod
    def create(cls, cfg: RunConfig, out: str | Path, **kw) -> Simulation:
        """Start a new run folder. A folder that already holds a run of the same config is
        continued (so re-running a command finishes or repeats nothing); one of another
        config is refused."""
        out = Path(out)
        if (out / "run.json").exists():
            return cls.resume(out, cfg, **kw)
        out.mkdir(parents=True, exist_ok=True)
        write_text(out / "config.yaml", yaml.safe_dump(cfg.model_dump(), sort_keys=False))
        write_json(
            out / "run.json",
            {"fingerprint": cfg.fingerprint(), "name": cfg.name, "steps": cfg.steps},
        )
        return cls(cfg, out, **kw)

    @classmethod
    def resume(cls, out: str | Path, cfg: RunConfig | None = None, **kw) -> Simulation:
        """Reopen a run folder; with ``cfg``, refuse it if it was made from another config."""
        from .config import parse_run_config

        out = Path(out)
        if not (out / "run.json").exists():
            raise InputError("not a run folder (no run.json)", source=str(out))
        saved = parse_run_config(
            yaml.safe_load((out / "config.yaml").read_text()), str(out / "config.yaml")
        )
        if cfg is not None and cfg.fingerprint() != saved.fingerprint():
            raise InputError("the run folder was made from a different config", source=str(out))
        return cls(saved, out, **kw)

    def last_complete_step(self) -> int:
        """The last step whose tables and checkpoints are complete, or -1."""
        return last_complete_step(self.out)

    def _phase(self, t: int, name: str) -> None:
        if self.on_phase is not None:
            self.on_phase(t, name)

    def _embedder(self):
        if self.embedder is None:
            self.embedder = get_embedder()
        return self.embedder

    def _new_agent(self, name: str) -> Agent:
        g = self.cfg.group_of(name)
        state = self.out / "agents" / name
        sampling = Sampling(**self.cfg.interaction.sampling.model_dump())
        if g.init is not None:
            bank = load_bank(g.init.bank)
            idx = self.cfg.models().index(name)
            rng = np.random.default_rng([self.cfg.seed, 11, idx])
            rows = bank.iloc[np.sort(rng.choice(len(bank), g.init.sample_size, replace=False))]
            spec = InitialModel(
                name=name,
                pairs=list(zip(rows["question"], rows["answer"], strict=True)),
                model=g.model,
                prompt_format=g.prompt_format,
                system_prompt=g.system_prompt,
                update={
                    "method": self.cfg.update.method,
                    "epochs": g.init.epochs,
                    "lr": g.init.lr,
                    "batch_size": g.init.batch_size,
                },
                seed=self.cfg.seed * 1000 + idx,
            )
            initial_agent(spec)  # fine-tunes, or finds it in the cache
            agent = Agent.load(initial_cache_dir() / cache_key(spec), state_dir=state)
        else:
            agent = Agent(
                name,
                g.model,
                system_prompt=g.system_prompt,
                prompt_format=g.prompt_format,
                state_dir=state,
                seed=self.cfg.seed * 1000 + self.cfg.models().index(name),
            )
        agent.name = name
        agent.update = self.cfg.update
        agent.sampling = sampling
        return agent

    # ------------------------------------------------------------- checkpoints
    def _save_checkpoint(self, t: int) -> None:
        folder = self.out / "checkpoints" / _part(t)
        for name, agent in self.agents.items():
            agent.save(folder / name)

    def _load_checkpoint(self, t: int) -> None:
        folder = self.out / "checkpoints" / _part(t)
        for name in self.cfg.models():
            if (folder / name).exists():
                # Its own copy: a model that never learns would otherwise read its weights
                # from this checkpoint, which goes once the next step is complete.
                agent = Agent.load(folder / name, state_dir=self.out / "agents" / name, own=True)
                agent.sampling = Sampling(**self.cfg.interaction.sampling.model_dump())
                agent.update = self.cfg.update
                self.agents[name] = agent

    def _commit_step(self, t: int) -> None:
        write_json(self.out / "progress.json", {"last_complete_step": t})
        keep = {_part(k) for k in self.keep_checkpoints} | {_part(t)}
        for old in (self.out / "checkpoints").glob("step-*"):
            if old.name not in keep:
                shutil.rmtree(old, ignore_errors=True)

    def _drop_incomplete(self, last: int) -> None:
        for sub in (
            "tables/responses",
            "tables/edges",
            "tables/events",
            "embeddings",
            "checkpoints",
        ):
            for p in (self.out / sub).glob("step-*"):
                if int(p.name.split("-")[1].split(".")[0]) > last:
                    shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink()

    # -------------------------------------------------------------- the loop
    def run(self) -> Path:
        """Continue the run to step T; returns the run folder.

        Raises InputError if another process is running the same folder."""
        with contextlib.ExitStack() as stack:
            try:
                stack.enter_context(file_lock(self.out / ".lock", wait=False))
            except BlockingIOError:
                raise InputError(
                    "another process is running this folder; wait for it or stop it first",
                    source=str(self.out),
                ) from None
            return self._run()

    def _run(self) -> Path:
        cfg = self.cfg
        last = self.last_complete_step()
        self._drop_incomplete(last)
        self.eval_set = evaluation_prompts(cfg)
        self.bank = load_bank(cfg.question_bank)
        self.policy = build_policy(cfg.communication, cfg)
        if last >= 0:
            self._load_checkpoint(last)
        for t in range(last + 1, cfg.steps + 1):
            self._step(t)
        return self.out

    def _ensure_agents(self, t: int) -> list[str]:
        active = self.cfg.active(t)
        for name in active:
            if name not in self.agents:
                self._phase(t, f"setting up {name}")
                self.agents[name] = self._new_agent(name)
        return active

    def _step(self, t: int) -> None:
        cfg = self.cfg
        tm = StepTimings()
        start = time.perf_counter()
        rng = np.random.default_rng([cfg.seed, t])
        t0 = time.perf_counter()
        active = self._ensure_agents(t)
        tm.setup = time.perf_counter() - t0
        rows: list[dict] = []
        events: list[dict] = []
        edges: set = set()
        if t > 0:
            needs_space = "nearest_neighbor" in json.dumps(cfg.communication)
            perspectives = self._perspectives(t) if needs_space else None
            state = SystemState(t, active, cfg.classes(), perspectives, rng)
            edges = self.policy.edges(state)
            learners = [m for m in active if cfg.group_of(m).learning]
            mechanic = MECHANICS[cfg.interaction.mechanic]
            interviews, skipped = mechanic(
                edges, learners, len(self.bank), cfg.interaction.questions, rng
            )
            for name in skipped:
                events.append(
                    {
                        "t": t,
                        "kind": "skip",
                        "model": name,
                        "detail": "no in-neighbour",
                        "seconds": 0.0,
                    }
                )
            plan = {iv.asker: (iv.source, iv.questions) for iv in interviews}
            asks: dict[str, list[tuple[str, list[int]]]] = {}
            for iv in interviews:
                asks.setdefault(iv.source, []).append((iv.asker, iv.questions))
            self._phase(t, "interviews")
            t0 = time.perf_counter()
            answers: dict[tuple[str, str], list[str]] = {}
            for j, requests in sorted(asks.items()):
                flat = [qi for _, qs in requests for qi in qs]
                texts = self.agents[j].answer(
                    self.bank["question"].iloc[flat].tolist(), seed=int(rng.integers(2**31))
                )
                pos = 0
                for asker, qs in requests:
                    answers[(asker, j)] = texts[pos : pos + len(qs)]
                    pos += len(qs)
            tm.answering = time.perf_counter() - t0
            self._phase(t, "learning")
            t0 = time.perf_counter()
            for name, (j, qs) in sorted(plan.items()):
                got = answers[(name, j)]
                for qi, text in zip(qs, got, strict=True):
                    rows.append(
                        {
                            "t": t,
                            "model": j,
                            "phase": "interview",
                            "asker": name,
                            "question_id": self.bank["question_id"].iloc[qi],
                            "replicate": 0,
                            "text": text,
                        }
                    )
                pairs = [(self.bank["question"].iloc[qi], a) for qi, a in zip(qs, got, strict=True)]
                t1 = time.perf_counter()
                self.agents[name].learn(pairs, seed=int(rng.integers(2**31)))
                events.append(
                    {
                        "t": t,
                        "kind": "learn",
                        "model": name,
                        "detail": j,
                        "seconds": time.perf_counter() - t1,
                    }
                )
            tm.learning = time.perf_counter() - t0
        for name in cfg.models():
            g = cfg.group_of(name)
            if g.join_at == t and t > 0:
                events.append({"t": t, "kind": "join", "model": name, "detail": "", "seconds": 0.0})
            if g.leave_at == t:
                events.append(
                    {"t": t, "kind": "leave", "model": name, "detail": "", "seconds": 0.0}
                )
        vectors = None
        if t % cfg.evaluation.every == 0 or t == cfg.steps:
            self._phase(t, "evaluation")
            t0 = time.perf_counter()
            eval_rows = self._evaluate(t, active, rng)
            tm.evaluating = time.perf_counter() - t0
            t0 = time.perf_counter()
            vectors = self._embedder().embed([r["text"] for r in eval_rows])
            tm.embedding = time.perf_counter() - t0
            rows = eval_rows + rows
        self._phase(t, "writing")
        t0 = time.perf_counter()
        part = _part(t)
        columns = ["t", "model", "phase", "asker", "question_id", "replicate", "text"]
        write_parquet(
            self.out / "tables" / "responses" / f"{part}.parquet",
            pd.DataFrame(rows, columns=columns),
        )
        write_parquet(
            self.out / "tables" / "edges" / f"{part}.parquet",
            pd.DataFrame(sorted(edges), columns=["src", "dst"]).assign(t=t)[["t", "src", "dst"]],
        )
        if vectors is not None:
            write_npy(self.out / "embeddings" / f"{part}.npy", np.asarray(vectors, np.float32))
        self._save_checkpoint(t)
        tm.writing = time.perf_counter() - t0
        tm.total = time.perf_counter() - start
        events.append(
            {
                "t": t,
                "kind": "timing",
                "model": "",
                # Where it ran: numbers differ slightly between devices and thread counts.
                "detail": json.dumps(
                    {
                        **tm.__dict__,
                        "engine": tm.engine,
                        "device": str(current_device()),
                        "threads": torch.get_num_threads(),
                    }
                ),
                "seconds": tm.total,
            }
        )
        write_parquet(
            self.out / "tables" / "events" / f"{part}.parquet",
            pd.DataFrame(events, columns=["t", "kind", "model", "detail", "seconds"]),
        )
        self._commit_step(t)
        self.timings[t] = tm

    def _evaluate(self, t: int, active: list[str], rng: np.random.Generator) -> list[dict]:
        spec = self.cfg.evaluation
        prompts = self.eval_set["prompt"].tolist()
        ids = self.eval_set["prompt_id"].tolist()
        rows = []
        greedy = not spec.sampling.do_sample
        for name in active:
            agent = self.agents[name]
            seed = int(rng.integers(2**31))  # drawn even when unused: the same stream either way
            cached = self._eval_cache.get(agent._uid)
            if greedy and cached is not None and cached[0] == agent.n_updates:
                # A model that has not learned since its last evaluation (a static adversary,
                # say) gives the same greedy answers: they are reused, not recomputed.
                out = cached[1]
            else:
                keep = agent.sampling
                agent.sampling = Sampling(**spec.sampling.model_dump())
                try:
                    out = agent.answer(prompts, seed=seed, replicates=spec.replicates)
                finally:
                    agent.sampling = keep
                if greedy:
                    self._eval_cache[agent._uid] = (agent.n_updates, out)
            if spec.replicates == 1:
                out = [[a] for a in out]
            for pid, reps in zip(ids, out, strict=True):
                for r, text in enumerate(reps):
                    rows.append(
                        {
                            "t": t,
                            "model": name,
                            "phase": "eval",
                            "asker": "",
                            "question_id": pid,
                            "replicate": r,
                            "text": text,
                        }
                    )
        return rows

    def _perspectives(self, t: int) -> dict[str, np.ndarray] | None:
        """Every model's latest perspective before step t (joint space of the history)."""
        hist = load_history(self.out, upto=t - 1)
        if hist is None:
            return None
        table = hist.perspectives
        latest = table[table["t"] == table["t"].max()]
        zcols = [c for c in table.columns if c.startswith("z")]
        return {m: row[zcols].to_numpy(float) for m, row in latest.set_index("model").iterrows()}


@dataclass
class History:
    """The evaluation history of a run: data kernels of every (model, t), the joint space, and
    the evaluation answers themselves (``t, model, question_id, text``)."""

    kernels: np.ndarray
    points: pd.DataFrame
    space: PerspectiveSpace
    perspectives: pd.DataFrame
    answers: pd.DataFrame


def read_parts(out: Path, table: str, upto: int | None = None) -> pd.DataFrame:
    """Concatenate a run's per-step parts of ``table`` up to the last complete step."""
    last = last_complete_step(out)
    if upto is not None:
        last = min(last, upto)
    files = sorted((out / "tables" / table).glob("step-*.parquet"))
    frames = [pd.read_parquet(f) for f in files if int(f.stem.split("-")[1]) <= last]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def load_history(
    out: str | Path, upto: int | None = None, n_components: int | None = None
) -> History | None:
    """Fit the joint perspective space over every evaluation snapshot up to ``upto``."""
    out = Path(out)
    last = last_complete_step(out)
    if last < 0:
        return None
    if upto is not None:
        last = min(last, upto)
    cfg_classes = {}
    cfg_file = out / "config.yaml"
    if cfg_file.exists():
        from .config import RunConfig

        cfg_classes = RunConfig.model_validate(yaml.safe_load(cfg_file.read_text())).classes()
    blocks, meta = [], []
    for t in range(last + 1):
        emb_file = out / "embeddings" / f"{_part(t)}.npy"
        resp_file = out / "tables" / "responses" / f"{_part(t)}.parquet"
        if not emb_file.exists():
            continue
        resp = pd.read_parquet(resp_file)
        ev = resp[resp["phase"] == "eval"].reset_index(drop=True)
        vec = np.load(emb_file)
        blocks.append(vec)
        meta.append(ev[["t", "model", "question_id", "text"]])
    if not blocks:
        return None
    vec = np.concatenate(blocks)
    ev = pd.concat(meta, ignore_index=True)
    points = ev.drop_duplicates(["t", "model"])[["t", "model"]].reset_index(drop=True)
    prompt_ids = sorted(ev["question_id"].unique())
    pi = pd.MultiIndex.from_frame(points).get_indexer(pd.MultiIndex.from_frame(ev[["t", "model"]]))
    qi = pd.Index(prompt_ids).get_indexer(ev["question_id"])
    kernels, counts = mean_kernels(pi, qi, vec, len(points), len(prompt_ids))
    if (counts == 0).any():
        raise InputError("a model lacks some evaluation answers", source=str(out))
    points["class"] = points["model"].map(cfg_classes).fillna("")
    if len(points) < 2:
        return None
    space = PerspectiveSpace(n_components=n_components).fit(kernels, labels=points)
    return History(kernels, points, space, space.to_frame(), ev)
