"""A simulation run as a validated config (YAML -> pydantic), and its communication policy.

Unknown keys and wrong types are errors naming the key; cross-field problems (a policy naming a
class or model that does not exist, more questions per interview than the bank holds, an
evaluation set with duplicates) are found before any work starts.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

from ..bundled import BUNDLED_MODEL
from ..config import read_yaml, validate_model
from ..data.banks import load_bank
from ..data.prompts import load_prompts
from ..errors import InputError
from ..models.training import UpdateConfig
from .policies import (
    Adjacency,
    Complete,
    Database,
    ErdosRenyi,
    IntraClass,
    Isolate,
    NearestNeighbor,
    Periodic,
    Policy,
    Switch,
    Union,
    Vulnerable,
    choose_targets,
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class InitSpec(_Strict):
    """Initial perspective: fine-tune on a random sample of a bank (paper: 3 epochs, 5e-5)."""

    bank: str
    sample_size: int = Field(ge=1)
    epochs: int = Field(3, ge=1)
    lr: float = Field(5e-5, gt=0)
    batch_size: int = Field(8, ge=1)
    method: str = Field("full", pattern="^(full|lora)$")


class GroupSpec(_Strict):
    """``count`` models named ``{name}-1..count`` with one class label and one recipe."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    count: int = Field(1, ge=1)
    label: str | None = None
    model: str = BUNDLED_MODEL
    system_prompt: str | None = None
    prompt_format: str = Field("chat", pattern="^(chat|appendix-a|plain)$")
    init: InitSpec | None = None
    learning: bool = True
    join_at: int | None = Field(None, ge=0)
    leave_at: int | None = Field(None, ge=1)

    @property
    def class_label(self) -> str:
        return self.label or self.name

    def model_names(self) -> list[str]:
        return [f"{self.name}-{i + 1}" for i in range(self.count)]


class SamplingSpec(_Strict):
    do_sample: bool = True
    temperature: float = Field(0.7, gt=0)
    top_p: float = Field(0.9, gt=0, le=1)
    top_k: int = Field(50, ge=0)
    max_new_tokens: int = Field(48, ge=1)


class EvaluationSpec(_Strict):
    """Evaluation snapshots: at t = 0 and every ``every`` steps, every model answers the
    evaluation set ``replicates`` times. ``prompts``: ``"bank"`` (the question bank's
    questions), a bundled bank or prompt set name, a file, or a list of these (their union).
    ``n_prompts``: a fixed random sample of that many from each source (the same for every
    seed, so runs of a sweep share one evaluation set)."""

    prompts: str | list[str] = "bank"
    n_prompts: int | None = Field(None, ge=1)
    every: int = Field(1, ge=1)
    replicates: int = Field(1, ge=1)
    sampling: SamplingSpec = Field(default_factory=lambda: SamplingSpec(do_sample=False))


class InteractionSpec(_Strict):
    """The interview mechanic: each learning model picks one in-neighbour at random, asks it
    ``questions`` random questions from the bank and learns from the answers."""

    mechanic: str = "interview"
    questions: int = Field(ge=1)
    sampling: SamplingSpec = Field(default_factory=SamplingSpec)


class RunConfig(_Strict):
    """A system of interacting models: groups, question bank, interaction, structure, T."""

    name: str = "run"
    seed: int = 0
    steps: int = Field(ge=1)
    question_bank: str | list[str]
    groups: list[GroupSpec] = Field(min_length=1)
    interaction: InteractionSpec
    update: UpdateConfig = Field(default_factory=UpdateConfig)
    evaluation: EvaluationSpec = Field(default_factory=EvaluationSpec)
    communication: dict[str, Any] = Field(default_factory=lambda: {"type": "complete"})
    output: str | None = None
    notes: str | None = None

    @model_validator(mode="after")
    def _unique_names(self) -> RunConfig:
        names = [n for g in self.groups for n in g.model_names()]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"model names must be unique; repeated: {dup}")
        return self

    # ------------------------------------------------------------------ derived
    def models(self) -> list[str]:
        return [n for g in self.groups for n in g.model_names()]

    def classes(self) -> dict[str, str]:
        return {n: g.class_label for g in self.groups for n in g.model_names()}

    def group_of(self, model: str) -> GroupSpec:
        for g in self.groups:
            if model in g.model_names():
                return g
        raise KeyError(model)

    def active(self, t: int) -> list[str]:
        """Models present at step ``t`` (joined at or before t, not yet left)."""
        out = []
        for g in self.groups:
            if (g.join_at is None or g.join_at <= t) and (g.leave_at is None or t < g.leave_at):
                out += g.model_names()
        return out

    def fingerprint(self) -> str:
        """Hash of everything that determines the run (not the output folder)."""
        data = self.model_dump(exclude={"output", "notes"})
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def load_run_config(source: str | os.PathLike, *, label: str | None = None) -> RunConfig:
    """Read and validate a run YAML (``source`` a path); raises InputError naming the key."""
    return parse_run_config(read_yaml(source), label or str(source))


def parse_run_config(raw: Any, label: str) -> RunConfig:
    """Validate a config mapping; raises InputError naming ``label`` and the key."""
    cfg = validate_model(RunConfig, raw, label)
    check_run_config(cfg, label)
    return cfg


def check_run_config(cfg: RunConfig, label: str) -> None:
    """Cross-field checks that need the data: bank size, evaluation set, policy references."""
    bank = load_bank(cfg.question_bank)
    if cfg.interaction.questions > len(bank):
        raise InputError(
            f"more questions per interview than the bank holds ({len(bank)})",
            source=label,
            field="interaction.questions",
            value=cfg.interaction.questions,
        )
    from .mechanics import MECHANICS

    if cfg.interaction.mechanic not in MECHANICS:
        raise InputError(
            f"unknown mechanic; one of {sorted(MECHANICS)}",
            source=label,
            field="interaction.mechanic",
            value=cfg.interaction.mechanic,
        )
    evaluation_prompts(cfg, label)
    build_policy(cfg.communication, cfg, label)


def evaluation_prompts(cfg: RunConfig, label: str = "config") -> pd.DataFrame:
    """The evaluation set as ``prompt_id, prompt``; duplicates are an error."""
    spec = cfg.evaluation
    sources = spec.prompts if isinstance(spec.prompts, list) else [spec.prompts]
    tables = []
    for source in sources:
        source = cfg.question_bank if source == "bank" else source
        table = _prompt_table(source)
        if spec.n_prompts is not None:
            if spec.n_prompts > len(table):
                raise InputError(
                    f"the evaluation set {source!r} holds only {len(table)} prompts",
                    source=label,
                    field="evaluation.n_prompts",
                    value=spec.n_prompts,
                )
            # A fixed sample (not the run's seed): every run of a sweep sees the same prompts.
            pick = np.random.default_rng(0).choice(len(table), spec.n_prompts, replace=False)
            table = table.iloc[np.sort(pick)]
        tables.append(table)
    table = pd.concat(tables, ignore_index=True)
    dup = table["prompt"].duplicated()
    if dup.any():
        raise InputError(
            "the evaluation set has duplicate prompts",
            source=label,
            field="evaluation.prompts",
            value=table["prompt"][dup].iloc[0],
        )
    return table.reset_index(drop=True)


def _prompt_table(source: str | list[str]) -> pd.DataFrame:
    try:
        bank = load_bank(source)
    except InputError:
        if isinstance(source, list):
            raise
        return load_prompts(source)
    return bank.rename(columns={"question_id": "prompt_id", "question": "prompt"})[
        ["prompt_id", "prompt"]
    ]


_POLICY_KEYS = {
    "complete": set(),
    "intra_class": set(),
    "nearest_neighbor": set(),
    "erdos_renyi": {"p"},
    "adjacency": {"edges"},
    "switch": {"at", "before", "after"},
    "periodic": {"every", "base", "alternate", "offset"},
    "union": {"of"},
    "isolate": {"models", "inner"},
    "adversary": {"adversary", "targets", "every", "offset"},
    "database": {"writers", "readers", "name"},
}


def build_policy(
    spec: dict, cfg: RunConfig, label: str = "config", path: str = "communication"
) -> Policy:
    """Turn a ``communication`` mapping into a policy, checking names against the config.

    ``{type: adversary, adversary: MODEL_OR_GROUP, targets: N, every: K}`` is the paper's CS2:
    the base state isolates the adversary; every K-th step is vulnerable with N targets drawn
    once (seeded) from the other models.
    """
    if not isinstance(spec, dict) or "type" not in spec:
        raise InputError("each policy needs a 'type'", source=label, field=path, value=spec)
    kind = spec["type"]
    if kind not in _POLICY_KEYS:
        raise InputError(
            f"unknown policy; one of {sorted(_POLICY_KEYS)}",
            source=label,
            field=f"{path}.type",
            value=kind,
        )
    extra = set(spec) - _POLICY_KEYS[kind] - {"type"}
    if extra:
        raise InputError(
            f"unknown key(s) {sorted(extra)} for policy {kind!r}", source=label, field=path
        )
    models = cfg.models()

    def need(key: str):
        if key not in spec:
            raise InputError(f"policy {kind!r} needs {key!r}", source=label, field=path)
        return spec[key]

    def model_refs(names: list[str], key: str) -> list[str]:
        out = []
        for name in names:
            group = [g for g in cfg.groups if g.name == name or g.class_label == name]
            if name in models:
                out.append(name)
            elif group:
                out += [m for g in group for m in g.model_names()]
            else:
                raise InputError(
                    "names no model, group or class of this config",
                    source=label,
                    field=f"{path}.{key}",
                    value=name,
                )
        return out

    if kind == "complete":
        return Complete()
    if kind == "intra_class":
        return IntraClass()
    if kind == "nearest_neighbor":
        return NearestNeighbor()
    if kind == "erdos_renyi":
        p = float(need("p"))
        if not 0 <= p <= 1:
            raise InputError("must be in [0, 1]", source=label, field=f"{path}.p", value=p)
        return ErdosRenyi(p)
    if kind == "adjacency":
        edges = need("edges")
        pairs = []
        for e in edges:
            if not isinstance(e, list | tuple) or len(e) != 2:
                raise InputError(
                    "each edge is [src, dst]", source=label, field=f"{path}.edges", value=e
                )
            pairs.append((model_refs([e[0]], "edges")[0], model_refs([e[1]], "edges")[0]))
        return Adjacency(pairs)
    if kind == "switch":
        at = int(need("at"))
        if not 1 <= at <= cfg.steps:
            raise InputError(
                f"must be within 1..{cfg.steps}", source=label, field=f"{path}.at", value=at
            )
        return Switch(
            build_policy(need("before"), cfg, label, f"{path}.before"),
            build_policy(need("after"), cfg, label, f"{path}.after"),
            at,
        )
    if kind == "periodic":
        return Periodic(
            build_policy(need("base"), cfg, label, f"{path}.base"),
            build_policy(need("alternate"), cfg, label, f"{path}.alternate"),
            int(need("every")),
            int(spec.get("offset", 0)),
        )
    if kind == "union":
        return Union(
            [build_policy(s, cfg, label, f"{path}.of[{i}]") for i, s in enumerate(need("of"))]
        )
    if kind == "isolate":
        inner = build_policy(spec.get("inner", {"type": "complete"}), cfg, label, f"{path}.inner")
        return Isolate(model_refs(list(need("models")), "models"), inner)
    if kind == "database":
        return Database(
            str(spec.get("name", "database")),
            model_refs(list(need("writers")), "writers"),
            model_refs(list(need("readers")), "readers"),
        )
    # adversary (CS2)
    [adversary] = model_refs([need("adversary")], "adversary")[:1]
    others = [m for m in models if m != adversary]
    n_targets = int(need("targets"))
    if n_targets > len(others):
        raise InputError(
            f"at most {len(others)} targets", source=label, field=f"{path}.targets", value=n_targets
        )
    targets = choose_targets(others, n_targets, np.random.default_rng([cfg.seed, 7]))
    return Periodic(
        Isolate([adversary]),
        Vulnerable(adversary, targets),
        int(need("every")),
        int(spec.get("offset", 0)),
    )
