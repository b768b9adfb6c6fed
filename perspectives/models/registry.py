"""Registries that configs name: model backends and update rules.

- ``backends``: how a model answers. ``hf`` (transformers, local or hub), ``openai`` (any
  OpenAI-compatible server) and ``fake`` (a deterministic, torch-free test double). A backend
  names its static answering class and, if it can be fine-tuned, its trainable agent class.
- ``update_rules``: how an agent learns. ``full`` and ``lora`` fine-tune the backend's
  trainable agent; ``memory`` keeps what it hears in a retrieval database (any backend).

Entries are ``"module:attribute"`` strings, imported on first use, so naming a backend in a
config never loads torch. Register your own with ``backends.register(name, Backend(...))`` or
``update_rules.register(name, UpdateRule(...))``.
"""

from __future__ import annotations

import importlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from ..errors import ConfigError, CorruptStateError
from .contract import Agent, AgentSpec, LanguageModel
from .spec import ApiSpec

T = TypeVar("T")


def _resolve(target: Any) -> Any:
    """Import ``"module:attribute"``; anything else is returned as it is."""
    if isinstance(target, str):
        module, _, attr = target.partition(":")
        return getattr(importlib.import_module(module), attr)
    return target


class Registry(Generic[T]):
    """Named entries of one kind; ``get`` raises ConfigError listing the known names."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}

    def register(self, name: str, entry: T) -> T:
        self._entries[name] = entry
        return entry

    def names(self) -> list[str]:
        return sorted(self._entries)

    def check(self, name: str, field: str | None = None) -> str:
        """``name`` if registered; raises ConfigError otherwise."""
        if name not in self._entries:
            raise ConfigError(
                f"unknown {self.kind}; one of {self.names()}", field=field, value=name
            )
        return name

    def get(self, name: str, field: str | None = None) -> T:
        return self._entries[self.check(name, field)]

    def __contains__(self, name: object) -> bool:
        return name in self._entries


@dataclass(frozen=True)
class Backend:
    """A model backend: ``model`` makes its static answerer from (model, system_prompt,
    prompt_format, dtype, batch_size); ``agent`` is its fine-tunable agent class, if any;
    ``check(model)``, if given, raises a PerspectivesError for a model it cannot load, cheaply
    (configs call it before any work)."""

    model: str | Callable[..., LanguageModel]
    agent: str | type | None = None
    check: str | Callable[[str], None] | None = None

    def check_model(self, model: str) -> None:
        if self.check is not None:
            _resolve(self.check)(model)

    def model_class(self) -> Callable[..., LanguageModel]:
        return _resolve(self.model)

    def agent_class(self) -> type | None:
        return _resolve(self.agent) if self.agent is not None else None


@dataclass(frozen=True)
class UpdateRule:
    """An update rule: ``create(spec, state_dir) -> Agent`` makes a new agent that learns this
    way; ``load(directory, state_dir, own) -> Agent`` reads one saved by it. ``seed_initial(agent,
    pairs)``, if given, gives a new agent its initial perspective from ``pairs`` (otherwise an
    initial model is fine-tuned on them). Each may be a ``"module:attribute"`` string."""

    create: str | Callable[[AgentSpec, Path | None], Agent]
    load: str | Callable[[Path, Path | None, bool], Agent]
    seed_initial: str | Callable[[Agent, list], None] | None = None

    def make(self, spec: AgentSpec, state_dir: Path | None) -> Agent:
        return _resolve(self.create)(spec, state_dir)

    def read(self, directory: Path, state_dir: Path | None, own: bool) -> Agent:
        return _resolve(self.load)(directory, state_dir, own)

    def initial(self) -> Callable[[Agent, list], None] | None:
        return _resolve(self.seed_initial) if self.seed_initial is not None else None


backends: Registry[Backend] = Registry("model backend")
update_rules: Registry[UpdateRule] = Registry("update rule")

AGENT_FILE = "agent.json"


def _trainable(backend: str) -> type:
    cls = backends.get(backend, "backend").agent_class()
    if cls is None:
        raise ConfigError("this backend cannot be fine-tuned", field="backend", value=backend)
    return cls


def _fine_tuned(spec: AgentSpec, state_dir: Path | None) -> Agent:
    return _trainable(spec.backend).from_spec(spec, state_dir=state_dir)


def _load_fine_tuned(directory: Path, state_dir: Path | None, own: bool) -> Agent:
    return _trainable(_saved(directory).get("backend", "hf")).load(
        directory, state_dir=state_dir, own=own
    )


backends.register(
    "hf",
    Backend(
        "perspectives.models.hf:HFChatModel",
        "perspectives.models.hf_agent:HFAgent",
        "perspectives.models.sources:check_hf_source",
    ),
)
backends.register(
    "fake", Backend("perspectives.models.fake:FakeModel", "perspectives.models.fake:FakeAgent")
)
backends.register("openai", Backend("perspectives.models.api:OpenAIChatModel"))
for _method in ("full", "lora"):
    update_rules.register(_method, UpdateRule(_fine_tuned, _load_fine_tuned))
update_rules.register(
    "memory",
    UpdateRule(
        "perspectives.models.memory:_create",
        "perspectives.models.memory:_load",
        "perspectives.models.memory:_seed_initial",
    ),
)


def make_model(
    backend: str,
    model: str,
    *,
    system_prompt: str | None = None,
    prompt_format: str = "chat",
    dtype: str = "auto",
    batch_size: int = 64,
    api: ApiSpec | None = None,
) -> LanguageModel:
    """A static answerer of ``backend`` (no learning); ``api`` is where an ``openai``
    backend's server is. Raises ConfigError for an unknown backend."""
    cls = backends.get(backend, "backend").model_class()
    # Only a backend behind an API takes ``api`` (specs refuse it elsewhere).
    extra = {"api": api} if api is not None else {}
    return cls(
        model,
        system_prompt=system_prompt,
        prompt_format=prompt_format,
        dtype=dtype,
        batch_size=batch_size,
        **extra,
    )


def make_agent(spec: AgentSpec, state_dir: str | os.PathLike | None = None) -> Agent:
    """A new agent of ``spec.backend`` that learns by ``spec.update.method``.

    Parameters
    ----------
    spec : AgentSpec
        Name, backend, model, prompt, update config, sampling and seed.
    state_dir : str or os.PathLike, default=None
        Where the agent keeps its state between uses (default: a scratch folder of its own).

    Returns
    -------
    Agent

    Raises
    ------
    ConfigError
        For an unknown backend or update rule, or a backend that cannot learn that way.

    Examples
    --------
    >>> from perspectives import AgentSpec, make_agent
    >>> agent = make_agent(AgentSpec("a1", "calm", backend="fake"))
    >>> stats = agent.learn([("What is rain?", "water falling from clouds")])
    >>> agent.answer(["What is rain?"])[0] != ""
    True
    """
    rule = update_rules.get(spec.update.method, "update.method")
    return rule.make(spec, Path(state_dir) if state_dir is not None else None)


def _saved(directory: Path) -> dict:
    try:
        meta = json.loads((directory / AGENT_FILE).read_text())
    except FileNotFoundError:
        raise CorruptStateError(
            "not an agent folder (no agent.json)", source=str(directory)
        ) from None
    except ValueError as exc:
        raise CorruptStateError(
            f"corrupt agent.json: {exc}", source=str(directory / AGENT_FILE)
        ) from None
    except OSError as exc:  # a folder in its place, unreadable
        raise CorruptStateError(
            f"cannot read agent.json: {exc.strerror or exc}", source=str(directory / AGENT_FILE)
        ) from None
    if not isinstance(meta, dict):
        raise CorruptStateError(
            "corrupt agent.json: not a mapping", source=str(directory / AGENT_FILE)
        )
    return meta


def load_agent(
    directory: str | os.PathLike,
    *,
    state_dir: str | os.PathLike | None = None,
    own: bool = False,
) -> Agent:
    """Read an agent saved by any backend and update rule (``agent.json`` says which).

    Parameters
    ----------
    directory : str or os.PathLike
        A folder written by the agent's ``save``.
    state_dir : str or os.PathLike, default=None
        Where the loaded agent keeps its state from now on.
    own : bool, default=False
        Link or copy its state into ``state_dir`` so it outlives ``directory``.

    Returns
    -------
    Agent

    Raises
    ------
    CorruptStateError
        For a missing or damaged folder, or an update rule that is not registered.
    """
    d = Path(directory)
    meta = _saved(d)
    update = meta.get("update") if isinstance(meta.get("update"), dict) else {}
    method = update.get("method", "full")
    if not isinstance(method, str) or method not in update_rules:
        raise CorruptStateError(f"unknown update rule {method!r}", source=str(d / AGENT_FILE))
    rule = update_rules.get(method)
    return rule.read(d, Path(state_dir) if state_dir is not None else None, own)
