"""A simulation run as a validated config (YAML -> pydantic), and its communication policy.

Unknown keys and wrong types are errors naming the key; cross-field problems (a policy naming a
class or model that does not exist, more questions per interview than the bank holds, an
evaluation set with duplicates) are found before any work starts.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from typing import Any

import numpy as np
import pandas as pd
from pydantic import Field, StrictInt, field_validator, model_validator

from ..bundled import BUNDLED_MODEL
from ..config import Strict, read_yaml, validate_model
from ..data.banks import load_bank
from ..data.prompts import load_prompts
from ..errors import BackendUnavailable, ConfigError, InputError
from ..models.spec import MAX_REPLICATES, ApiSpec, Sampling, check_api
from ..models.update import MAX_EPOCHS, UpdateConfig
from .communication import BuildContext, CommunicationSpec, CompleteSpec
from .databases import DatabaseConfig, check_databases
from .policies import Policy

# The fewest tokens of context a remembering model needs (models.memory.MIN_CONTEXT_TOKENS;
# said here so that checking a config does not import the memory module).
MIN_CONTEXT = 256
# What an answer must leave of that context for the question and a retrieved item or two
# (models.memory.MIN_PROMPT_TOKENS).
MIN_PROMPT = 128
# Far beyond any study (the paper's: 50): a larger value is a typo, not a plan.
MAX_STEPS = 100_000
MAX_MODELS = 100_000


class InitSpec(Strict):
    """Initial perspective: fine-tune on a random sample of a bank (paper: 3 epochs, 5e-5)."""

    bank: str
    sample_size: StrictInt = Field(ge=1)
    epochs: StrictInt = Field(3, ge=1, le=MAX_EPOCHS)
    lr: float = Field(5e-5, gt=0)
    batch_size: StrictInt = Field(8, ge=1)
    method: str = Field("full", pattern="^(full|lora)$")


class GroupSpec(Strict):
    """``count`` models named ``{name}-1..count`` with one class label and one recipe.

    ``update`` (default: the run's) says how this group learns, so one system can mix
    fine-tuned and remembering models; ``api`` says where an ``openai`` backend's server is.
    ``learning: false``: its models interview nobody (a static adversary, say); a database
    they read for training still teaches them.
    """

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    count: StrictInt = Field(1, ge=1, le=MAX_MODELS)
    label: str | None = None
    backend: str = "hf"
    model: str = BUNDLED_MODEL
    system_prompt: str | None = None
    prompt_format: str = Field("chat", pattern="^(chat|appendix-a|plain)$")
    init: InitSpec | None = None
    learning: bool = True
    join_at: StrictInt | None = Field(None, ge=0)
    leave_at: StrictInt | None = Field(None, ge=1)
    update: UpdateConfig | None = None
    api: ApiSpec | None = None

    @field_validator("backend")
    @classmethod
    def _backend(cls, v: str) -> str:
        from ..models.registry import backends

        backends.check(v)
        return v

    @field_validator("model", "label")
    @classmethod
    def _not_blank(cls, v: str | None) -> str | None:
        # A blank label fell back to the group's name without a word; a blank model name
        # reached the server.
        if v is not None and not v.strip():
            raise ValueError("must not be blank (leave it out for the default)")
        return v

    @model_validator(mode="after")
    def _api_fits(self) -> GroupSpec:
        check_api(self.backend, self.api)
        if self.backend == "openai" and self.prompt_format != "chat":
            raise ValueError("a model behind an API takes chat messages: prompt_format 'chat'")
        return self

    @property
    def class_label(self) -> str:
        return self.label or self.name

    def model_names(self) -> list[str]:
        return [f"{self.name}-{i + 1}" for i in range(self.count)]


class EvaluationSpec(Strict):
    """Evaluation snapshots: at t = 0 and every ``every`` steps, every model answers the
    evaluation set ``replicates`` times. ``prompts``: ``"bank"`` (the question bank's
    questions), a bundled bank or prompt set name, a file, or a list of these (their union).
    ``n_prompts``: a fixed random sample of that many from each source (the same for every
    seed, so runs of a sweep share one evaluation set)."""

    prompts: str | list[str] = "bank"
    n_prompts: StrictInt | None = Field(None, ge=1)
    every: StrictInt = Field(1, ge=1)
    replicates: StrictInt = Field(1, ge=1, le=MAX_REPLICATES)
    sampling: Sampling = Field(default_factory=lambda: Sampling(do_sample=False))

    @field_validator("prompts")
    @classmethod
    def _some_prompts(cls, v: str | list[str]) -> str | list[str]:
        if not v or (isinstance(v, str) and not v.strip()):
            raise ValueError("name at least one source of prompts")
        return v


class InteractionSpec(Strict):
    """The interview mechanic: each learning model picks one in-neighbour at random, asks it
    ``questions`` random questions from the bank and learns from the answers."""

    mechanic: str = "interview"
    questions: StrictInt = Field(ge=1)
    sampling: Sampling = Field(default_factory=Sampling)


class RunConfig(Strict):
    """A system of interacting models: groups, question bank, interaction, structure
    (``communication`` between models, ``databases`` beside them), T."""

    # The run folder is runs/<name>: one plain folder name, never a path out of runs/.
    name: str = Field("run", pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$", max_length=200)
    seed: StrictInt = Field(0, ge=0, le=2**63 - 1)
    steps: StrictInt = Field(ge=1, le=MAX_STEPS)
    question_bank: str | list[str]
    groups: list[GroupSpec] = Field(min_length=1)
    interaction: InteractionSpec
    update: UpdateConfig = Field(default_factory=UpdateConfig)
    evaluation: EvaluationSpec = Field(default_factory=EvaluationSpec)
    communication: CommunicationSpec = Field(default_factory=CompleteSpec)
    databases: list[DatabaseConfig] = Field(default_factory=list)
    output: str | None = None
    notes: str | None = None

    @model_validator(mode="after")
    def _unique_names(self) -> RunConfig:
        total = sum(g.count for g in self.groups)
        if total > MAX_MODELS:
            raise ValueError(f"{total} models in all; at most {MAX_MODELS}")
        names = Counter(n for g in self.groups for n in g.model_names())
        dup = sorted(n for n, k in names.items() if k > 1)
        if dup:
            raise ValueError(f"model names must be unique; repeated: {dup}")
        return self

    # ------------------------------------------------------------------ derived
    def models(self) -> list[str]:
        return [n for g in self.groups for n in g.model_names()]

    def classes(self) -> dict[str, str]:
        return {n: g.class_label for g in self.groups for n in g.model_names()}

    def update_of(self, model: str) -> UpdateConfig:
        """How ``model`` learns: its group's update config, else the run's."""
        return self.group_of(model).update or self.update

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
        # Fields added after run folders existed are left out at their defaults, so an older
        # config keeps its fingerprint and its run folder resumes.
        data["update"] = self.update.stable_dump()
        if not data["databases"]:
            del data["databases"]
        for g, raw in zip(self.groups, data["groups"], strict=True):
            for key in ("update", "api"):
                if raw[key] is None:
                    del raw[key]
            if g.update is not None:
                raw["update"] = g.update.stable_dump()
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]

    def extends(self, earlier: RunConfig) -> bool:
        """Whether this config is ``earlier`` run for more steps, and nothing else changed.
        Every random choice of a step is seeded by (seed, t) and no schedule depends on the
        last step, so such a run continued is the run made with these steps from the start."""
        if self.steps <= earlier.steps:
            return False
        return self.model_copy(update={"steps": earlier.steps}).fingerprint() == (
            earlier.fingerprint()
        )


def load_run_config(source: str | os.PathLike, *, label: str | None = None) -> RunConfig:
    """Read and validate a run YAML (``source`` a path); raises ConfigError naming the key."""
    return parse_run_config(read_yaml(source), label or str(source))


def parse_run_config(raw: Any, label: str) -> RunConfig:
    """Validate a config mapping; raises ConfigError naming ``label`` and the key."""
    cfg = validate_model(RunConfig, raw, label)
    check_run_config(cfg, label)
    return cfg


def check_run_config(cfg: RunConfig, label: str) -> None:
    """Cross-field checks that need the data: bank size, evaluation set, policy references,
    who is present when. Raises ConfigError naming ``label`` and the field."""
    bank = _data(load_bank, cfg.question_bank, label, "question_bank")
    if cfg.interaction.questions > len(bank):
        raise ConfigError(
            f"more questions per interview than the bank holds ({len(bank)})",
            source=label,
            field="interaction.questions",
            value=cfg.interaction.questions,
        )
    from .mechanics import MECHANICS

    if cfg.interaction.mechanic not in MECHANICS:
        raise ConfigError(
            f"unknown mechanic; one of {sorted(MECHANICS)}",
            source=label,
            field="interaction.mechanic",
            value=cfg.interaction.mechanic,
        )
    from ..models.registry import backends

    for i, g in enumerate(cfg.groups):
        _data(backends.get(g.backend).check_model, g.model, label, f"groups.{i}.model")
        method = (g.update or cfg.update).method
        if method == "memory" and g.api is not None and g.api.context_tokens < MIN_CONTEXT:
            raise ConfigError(
                f"too short for retrieved memories (the memory update needs {MIN_CONTEXT})",
                source=label,
                field=f"groups.{i}.api.context_tokens",
                value=g.api.context_tokens,
            )
        if method == "memory" and g.api is not None:
            _check_answer_room(cfg, g.api.context_tokens, label, f"groups.{i}.api.context_tokens")
        if method in ("full", "lora") and backends.get(g.backend).agent is None:
            raise ConfigError(
                f"a model of the {g.backend} backend cannot be fine-tuned ({method}); give the "
                "group 'update: {method: memory}' to let it learn by remembering",
                source=label,
                field=f"groups.{i}.backend",
                value=g.backend,
            )
        if g.init is not None:
            init_bank = _data(load_bank, g.init.bank, label, f"groups.{i}.init.bank")
            if g.init.sample_size > len(init_bank):
                raise ConfigError(
                    f"larger than the bank {g.init.bank!r} ({len(init_bank)} pairs)",
                    source=label,
                    field=f"groups.{i}.init.sample_size",
                    value=g.init.sample_size,
                )
    _check_membership(cfg, label)
    evaluation_prompts(cfg, label)
    build_policy(cfg.communication, cfg, label)
    check_databases(cfg, policy_context(cfg, label), label)


def _check_answer_room(
    cfg: RunConfig, context: int, label: str, where: str, *, interviews: bool = True
) -> None:
    """Raise ConfigError when an answer of ``max_new_tokens`` leaves less than MIN_PROMPT
    tokens of a remembering model's ``context``: every retrieved item would be left out.
    ``interviews=False``: a model that only answers the evaluation (a database's probe)."""
    answers = [("evaluation.sampling", cfg.evaluation.sampling)]
    if interviews:
        answers.insert(0, ("interaction.sampling", cfg.interaction.sampling))
    for field, sampling in answers:
        if context - sampling.max_new_tokens < MIN_PROMPT:
            raise ConfigError(
                f"leaves {context - sampling.max_new_tokens} of the {context} tokens of "
                f"{where} for the question and retrieved memories (at least {MIN_PROMPT})",
                source=label,
                field=f"{field}.max_new_tokens",
                value=sampling.max_new_tokens,
            )


def _data(load, source, label: str, field: str):
    """``load(source)``, its InputError (or BackendUnavailable) re-raised naming the config's
    field as well."""
    try:
        return load(source)
    except ConfigError:
        raise
    except (InputError, BackendUnavailable) as exc:
        where = f"{exc.source}: " if exc.source not in (None, source) else ""
        kind = BackendUnavailable if isinstance(exc, BackendUnavailable) else ConfigError
        raise kind(where + exc.message, source=label, field=field, value=source) from None


def _check_membership(cfg: RunConfig, label: str) -> None:
    """Joins and leaves within 0..T, a leave after the join, and someone present at every
    step (an empty step has nothing to evaluate)."""
    for i, g in enumerate(cfg.groups):
        for key, verb in (("join_at", "join"), ("leave_at", "leave")):
            at = getattr(g, key)
            if at is not None and at > cfg.steps:
                raise ConfigError(
                    f"after the last step ({cfg.steps}): the group would never {verb}",
                    source=label,
                    field=f"groups.{i}.{key}",
                    value=at,
                )
        if g.leave_at is not None and g.leave_at <= (g.join_at or 0):
            raise ConfigError(
                f"must come after join_at ({g.join_at or 0})",
                source=label,
                field=f"groups.{i}.leave_at",
                value=g.leave_at,
            )
    # Who is present changes only where a group joins or leaves.
    changes = {0} | {t for g in cfg.groups for t in (g.join_at, g.leave_at) if t is not None}
    for t in sorted(changes):
        if not cfg.active(t):
            key = "join_at" if t == 0 else "leave_at"
            raise ConfigError(
                f"no model is present at step {t}; every step needs one",
                source=label,
                field=f"groups.*.{key}",
            )


def evaluation_prompts(cfg: RunConfig, label: str = "config") -> pd.DataFrame:
    """The evaluation set as ``prompt_id, prompt``; duplicates are an error."""
    spec = cfg.evaluation
    sources = spec.prompts if isinstance(spec.prompts, list) else [spec.prompts]
    tables = []
    for source in sources:
        source = cfg.question_bank if source == "bank" else source
        table = _data(_prompt_table, source, label, "evaluation.prompts")
        if spec.n_prompts is not None:
            if spec.n_prompts > len(table):
                raise ConfigError(
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
        raise ConfigError(
            "the evaluation set has duplicate prompts",
            source=label,
            field="evaluation.prompts",
            value=table["prompt"][dup].iloc[0],
        )
    return table.reset_index(drop=True)


def data_digests(
    cfg: RunConfig, bank: pd.DataFrame | None = None, eval_set: pd.DataFrame | None = None
) -> dict[str, str]:
    """A content hash of every table the run reads, by the config field naming it: the
    question bank, the evaluation set, each group's and database's initial bank. A file
    edited, or a relative path read from another folder, changes its digest. ``bank`` and
    ``eval_set``: the question bank and evaluation set already loaded (else read here)."""
    tables = {
        "question_bank": load_bank(cfg.question_bank) if bank is None else bank,
        "evaluation.prompts": evaluation_prompts(cfg) if eval_set is None else eval_set,
    }
    for i, g in enumerate(cfg.groups):
        if g.init is not None:
            tables[f"groups.{i}.init.bank"] = load_bank(g.init.bank)
    for i, db in enumerate(cfg.databases):
        if db.initial is not None:
            tables[f"databases.{i}.initial.bank"] = load_bank(db.initial.bank)
    return {
        key: hashlib.sha256(
            pd.util.hash_pandas_object(t, index=False).values.tobytes()
        ).hexdigest()[:16]
        for key, t in tables.items()
    }


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


def policy_context(cfg: RunConfig, label: str = "config") -> BuildContext:
    """What building ``cfg``'s policies needs: its models, groups and classes, T and seed."""
    groups: dict[str, list[str]] = {}
    for g in cfg.groups:
        for key in dict.fromkeys([g.name, g.class_label]):
            groups.setdefault(key, []).extend(g.model_names())
    return BuildContext(cfg.models(), groups, cfg.steps, cfg.seed, label)


def build_policy(
    spec: CommunicationSpec | dict,
    cfg: RunConfig,
    label: str = "config",
    path: str = "communication",
) -> Policy:
    """Turn a communication spec (typed, or a mapping to validate) into a policy, checking the
    names it refers to against ``cfg``. Raises ConfigError naming the field.

    ``{type: adversary, adversary: MODEL_OR_GROUP, targets: N, every: K}`` is the paper's CS2:
    the base state isolates the adversary; every K-th step is vulnerable with N targets drawn
    once (seeded) from the other models.
    """
    if isinstance(spec, dict):
        spec = validate_model(_CommunicationOnly, {"communication": spec}, label).communication
    return spec.build(policy_context(cfg, label), path)


class _CommunicationOnly(Strict):
    communication: CommunicationSpec
