"""Databases as vertices of the system (the paper's V = F ∪ D), their config and their state.

A database holds question–answer items (``models.memory.MemoryStore``: the items with unit
embeddings of their questions). Edges between it and the models are grants, each a window of
steps, so access can be given and taken away mid-run:

- a **read** edge (D, f): ``use: retrieval`` — f (a model of the ``memory`` rule) retrieves
  from D's items beside its own when it answers; ``use: training`` — f also learns, each step,
  from ``sample`` items drawn from D (a fine-tune for a fine-tuned model);
- a **write** edge (f, D): ``what: answers`` — the answers f gave in the step's interviews go
  into D; ``what: interviews`` — the pairs f heard in its interview; ``what: posts`` — f
  answers ``posts`` questions of the bank of its own accord and posts them (a forum).

Within step t, reads see D as it was after step t - 1 (as interviewed models answer as they
were), writes land after the step's learning, and the evaluation at t sees them. A database
with ``evaluate: true`` is placed in the perspective space by the answers a retrieval-only
model (``probe``, default the first group's model) gives with its items. Torch-free.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np
import pandas as pd
from pydantic import Field, StrictInt, field_validator

from ..bundled import BUNDLED_MODEL
from ..config import Strict
from ..errors import ConfigError
from ..models.spec import ApiSpec, check_api
from ..models.update import MAX_MEMORY_K

if TYPE_CHECKING:
    from .communication import BuildContext
    from .config import RunConfig

ITEM_COLUMNS = ["t", "database", "question", "answer", "source", "first_hand"]
ACCESS_COLUMNS = ["t", "database", "model", "access", "mode"]
DATABASES_DIR = "databases"  # inside a checkpoint: never a model's name (those end in -N)
MAX_POSTS = 10_000


class Grant(Strict):
    """Access for ``models`` (model, group or class names, or ``"all"``) at the steps t with
    ``since <= t < until`` and ``(t - since) % every == 0``."""

    models: str | list[str] = "all"
    since: StrictInt = Field(0, ge=0)
    until: StrictInt | None = Field(None, ge=1)
    every: StrictInt = Field(1, ge=1)

    @field_validator("models")
    @classmethod
    def _some_models(cls, v: str | list[str]) -> str | list[str]:
        if isinstance(v, list) and not v:
            raise ValueError("names no model: the edge would reach nobody")
        return v

    def covers(self, t: int) -> bool:
        return (
            self.since <= t
            and (self.until is None or t < self.until)
            and (t - self.since) % self.every == 0
        )


class ReadGrant(Grant):
    """A read edge: ``retrieval`` (the reader's prompt) or ``training`` (``sample`` items a
    step are learned from)."""

    use: Literal["retrieval", "training"] = "retrieval"
    sample: StrictInt = Field(8, ge=1)


class WriteGrant(Grant):
    """A write edge: the writer's interview ``answers``, the ``interviews`` it heard, or
    ``posts`` answers of its own to random bank questions each step."""

    what: Literal["answers", "interviews", "posts"] = "answers"
    posts: StrictInt = Field(4, ge=1, le=MAX_POSTS)


class InitialItems(Strict):
    """A database's content at t = 0: ``sample_size`` pairs (default all) of a bank, bundled
    or a file (CSV, JSONL or Parquet with ``question`` and ``answer`` columns)."""

    bank: str
    sample_size: StrictInt | None = Field(None, ge=1)


class Probe(Strict):
    """The retrieval-only model that places a database in the perspective space."""

    backend: str = "hf"
    model: str = BUNDLED_MODEL
    prompt_format: str = Field("chat", pattern="^(chat|appendix-a|plain)$")
    api: ApiSpec | None = None


class DatabaseConfig(Strict):
    """A database vertex: its initial items, read and write edges, and whether it is placed
    in the perspective space (``k`` items retrieved per question for that)."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.]+$")
    initial: InitialItems | None = None
    read: list[ReadGrant] = Field(default_factory=list)
    write: list[WriteGrant] = Field(default_factory=list)
    evaluate: bool = True
    k: StrictInt = Field(5, ge=1, le=MAX_MEMORY_K)
    probe: Probe | None = None


@dataclass
class Access:
    """One edge at one step: ``model`` reads (``retrieval``/``training``) or writes
    (``answers``/``interviews``/``posts``) ``database``."""

    database: str
    model: str
    access: str  # read | write
    grant: ReadGrant | WriteGrant

    @property
    def mode(self) -> str:
        return self.grant.use if self.access == "read" else self.grant.what

    def row(self, t: int) -> dict:
        return {
            "t": t,
            "database": self.database,
            "model": self.model,
            "access": self.access,
            "mode": self.mode,
        }


@dataclass
class DatabaseEdges:
    """A database's grants with their names resolved to models."""

    spec: DatabaseConfig
    reads: list[tuple[ReadGrant, list[str]]]
    writes: list[tuple[WriteGrant, list[str]]]

    def at(self, t: int, active: Sequence[str]) -> list[Access]:
        """The edges present at step ``t`` between the database and the ``active`` models,
        in config order (a model granted twice keeps its first grant)."""
        here, seen, out = set(active), set(), []
        # Nothing is written at t = 0 (only evaluated): its edges are the reads.
        kinds = (("read", self.reads), ("write", self.writes if t > 0 else []))
        for kind, grants in kinds:
            for grant, models in grants:
                if not grant.covers(t):
                    continue
                for m in models:
                    if m in here and (kind, m) not in seen:
                        seen.add((kind, m))
                        out.append(Access(self.spec.name, m, kind, grant))
        return out


def database_edges(cfg: RunConfig, ctx: BuildContext) -> list[DatabaseEdges]:
    """Resolve every database's grants; ConfigError naming the field for a name that is no
    model, group or class."""
    out = []
    for i, db in enumerate(cfg.databases):
        parts = {}
        for kind in ("read", "write"):
            parts[kind] = [
                (g, _models(g.models, ctx, f"databases.{i}.{kind}.{j}.models"))
                for j, g in enumerate(getattr(db, kind))
            ]
        out.append(DatabaseEdges(db, parts["read"], parts["write"]))
    return out


def _models(names: str | list[str], ctx: BuildContext, path: str) -> list[str]:
    if names == "all":
        return list(ctx.models)
    return list(dict.fromkeys(ctx.refs([names] if isinstance(names, str) else names, path)))


def database_change_points(cfg: RunConfig) -> list[int]:
    """Steps where a database edge is granted or taken away (after t = 0)."""
    points = set()
    for db in cfg.databases:
        for g in (*db.read, *db.write):
            if g.every == 1:
                points |= {s for s in (g.since, g.until) if s is not None and 0 < s <= cfg.steps}
    return sorted(points)


def shared_database_steps(a: RunConfig, b: RunConfig) -> int:
    """The last step through which the databases of ``a`` and ``b`` (configs alike in all
    else) have the same edges doing the same things, or -1: from the next step on, their
    runs may differ."""
    if a.databases == b.databases:
        return a.steps
    fixed = [[db.model_dump(exclude={"read", "write"}) for db in c.databases] for c in (a, b)]
    if fixed[0] != fixed[1]:
        return -1
    from .config import policy_context

    edges = [database_edges(c, policy_context(c)) for c in (a, b)]
    for t in range(a.steps + 1):
        present = [
            [
                (x.database, x.model, x.access, x.grant.model_dump(exclude=_WINDOW))
                for e in es
                for x in e.at(t, c.active(t))
            ]
            for es, c in zip(edges, (a, b), strict=True)
        ]
        if present[0] != present[1]:
            return t - 1
    return a.steps


_WINDOW = {"models", "since", "until", "every"}


def probe_of(cfg: RunConfig, db: DatabaseConfig) -> Probe:
    """The database's probe, by default the first group's model."""
    if db.probe is not None:
        return db.probe
    g = cfg.groups[0]
    return Probe(backend=g.backend, model=g.model, prompt_format=g.prompt_format, api=g.api)


def check_databases(cfg: RunConfig, ctx: BuildContext, label: str) -> None:
    """Names unique and apart from the models', groups' and classes'; grants that fit the run
    (steps within 0..T, retrieval only by remembering models, posts within the bank); initial
    banks big enough; a probe that exists. Raises ConfigError naming the field."""
    if not cfg.databases:
        return
    taken = set(ctx.models) | set(ctx.groups) | {"all"}
    for i, db in enumerate(cfg.databases):
        if db.name in taken:
            raise ConfigError(
                "already the name of a model, group, class or another database",
                source=label,
                field=f"databases.{i}.name",
                value=db.name,
            )
        taken.add(db.name)
        _check_database(cfg, db, label, f"databases.{i}")
    _check_edges(cfg, ctx, label)


def _check_database(cfg: RunConfig, db: DatabaseConfig, label: str, path: str) -> None:
    from ..data.banks import load_bank
    from ..models.registry import backends
    from .config import _data

    if db.initial is not None:
        bank = _data(load_bank, db.initial.bank, label, f"{path}.initial.bank")
        if db.initial.sample_size is not None and db.initial.sample_size > len(bank):
            raise ConfigError(
                f"larger than the bank {db.initial.bank!r} ({len(bank)} pairs)",
                source=label,
                field=f"{path}.initial.sample_size",
                value=db.initial.sample_size,
            )
    for kind in ("read", "write"):
        for j, g in enumerate(getattr(db, kind)):
            where = f"{path}.{kind}.{j}"
            if g.since > cfg.steps:
                raise ConfigError(
                    f"after the last step ({cfg.steps}): the edge would never be present",
                    source=label,
                    field=f"{where}.since",
                    value=g.since,
                )
            if g.until is not None and g.until <= g.since:
                raise ConfigError(
                    f"must come after since ({g.since})",
                    source=label,
                    field=f"{where}.until",
                    value=g.until,
                )
            if kind == "write" and g.until is not None and g.until <= 1:
                raise ConfigError(
                    "models write from step 1 on (step 0 is the start): the edge would "
                    "never be present",
                    source=label,
                    field=f"{where}.until",
                    value=g.until,
                )
    if db.evaluate:
        probe = probe_of(cfg, db)
        try:
            backends.check(probe.backend)
            check_api(probe.backend, probe.api)
        except (ConfigError, ValueError) as exc:
            raise ConfigError(
                str(getattr(exc, "message", exc)),
                source=label,
                field=f"{path}.probe.backend",
                value=probe.backend,
            ) from None
        _data(backends.get(probe.backend).check_model, probe.model, label, f"{path}.probe.model")
        if probe.api is not None:
            from .config import _check_answer_room

            where = f"{path}.probe.api.context_tokens"
            _check_answer_room(cfg, probe.api.context_tokens, label, where, interviews=False)


def _check_edges(cfg: RunConfig, ctx: BuildContext, label: str) -> None:
    from ..data.banks import load_bank
    from .config import _data

    bank_size = len(_data(load_bank, cfg.question_bank, label, "question_bank"))
    for i, edges in enumerate(database_edges(cfg, ctx)):
        for j, (g, models) in enumerate(edges.reads):
            wrong = [m for m in models if cfg.update_of(m).method != "memory"]
            if g.use == "retrieval" and wrong:
                raise ConfigError(
                    f"retrieves, but {wrong[0]!r} learns by {cfg.update_of(wrong[0]).method!r}: "
                    "a retrieval read needs a model of the 'memory' update (or use: training)",
                    source=label,
                    field=f"databases.{i}.read.{j}.models",
                    value=wrong[0],
                )
        for j, (g, _) in enumerate(edges.writes):
            if g.what == "posts" and g.posts > bank_size:
                raise ConfigError(
                    f"more posts per step than the bank holds ({bank_size})",
                    source=label,
                    field=f"databases.{i}.write.{j}.posts",
                    value=g.posts,
                )


def initial_items(db: DatabaseConfig, seed: int, index: int) -> pd.DataFrame:
    """The database's items at t = 0 (ITEM_COLUMNS): its initial bank sample, seeded."""
    if db.initial is None:
        return pd.DataFrame(columns=ITEM_COLUMNS)
    from ..data.banks import load_bank

    bank = load_bank(db.initial.bank)
    if db.initial.sample_size is not None:
        rng = np.random.default_rng([seed, 31, index])
        bank = bank.iloc[np.sort(rng.choice(len(bank), db.initial.sample_size, replace=False))]
    return pd.DataFrame(
        {
            "t": 0,
            "database": db.name,
            "question": bank["question"].to_numpy(),
            "answer": bank["answer"].to_numpy(),
            "source": db.name,
            "first_hand": True,
        },
        columns=ITEM_COLUMNS,
    )
