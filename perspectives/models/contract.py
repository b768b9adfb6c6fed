"""The agent contract: what the simulation asks of a model, whatever runs it.

A *language model* (a backend: transformers, a test double, later a server) answers prompts.
An *agent* is a language model with state: it answers, learns from question–answer pairs (by
fine-tuning, or later by writing to a retrieval database), saves and loads that state, and
says through ``version`` when its behaviour may have changed. The engine, the initial models,
``generate`` and ``compare`` use models only through these protocols and the registries in
``models.registry``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

from ..bundled import BUNDLED_MODEL
from .spec import ApiSpec, Sampling
from .update import TrainStats, UpdateConfig

# One chat: messages ``{"role": "system" | "user" | "assistant", "content": text}``, the last
# one the user's.
Conversation = list[dict[str, str]]


@runtime_checkable
class LanguageModel(Protocol):
    """A model that answers prompts (a backend). Stateless between calls.

    ``answer`` puts each prompt under the model's own system prompt; ``chat`` takes whole
    conversations (a system message with retrieved memories, say) and answers their last turn.
    ``context_tokens`` is how many tokens a prompt and its answer may take together, and
    ``count_tokens(text)`` how many a text takes (an estimate where the backend cannot say).
    """

    def answer(
        self,
        prompts: Sequence[str],
        sampling: Sampling | None = None,
        *,
        seed: int = 0,
        replicates: int = 1,
        on_batch: Callable[[int], None] | None = None,
    ) -> list[list[str]]:
        """``answers[prompt][replicate]``; sampling, if on, seeded by ``seed``."""
        ...

    def chat(
        self,
        conversations: Sequence[Conversation],
        sampling: Sampling | None = None,
        *,
        seed: int = 0,
        replicates: int = 1,
        on_batch: Callable[[int], None] | None = None,
    ) -> list[list[str]]:
        """``answers[conversation][replicate]``: each conversation's next assistant turn."""
        ...

    @property
    def context_tokens(self) -> int: ...

    def count_tokens(self, text: str) -> int: ...


@runtime_checkable
class Agent(Protocol):
    """A stateful model of a simulated system.

    ``answer`` returns one text per question (a list of ``replicates`` texts per question when
    ``replicates > 1``); ``sampling=None`` uses the agent's own. ``learn`` is the update
    function. ``save(dir)`` writes the state atomically; ``load(dir)`` (a classmethod) reads
    it back, and ``models.registry.load_agent`` finds the class from the folder. ``version``
    changes whenever the agent's behaviour may change (an update, a reload): two calls to
    ``answer`` with the same arguments and the same ``version`` give the same answers.
    """

    name: str

    @property
    def version(self) -> str: ...

    def answer(
        self,
        questions: Sequence[str],
        sampling: Sampling | None = None,
        *,
        seed: int = 0,
        replicates: int = 1,
    ) -> list[str] | list[list[str]]: ...

    def learn(
        self,
        pairs: Sequence[tuple[str, str]],
        *,
        seed: int = 0,
        t: int | None = None,
        source: str | None = None,
    ) -> TrainStats:
        """Learn from ``pairs``, heard at step ``t`` from the model ``source`` (both None
        outside a simulation; rules that do not keep them ignore them)."""
        ...

    def save(self, directory: str | os.PathLike) -> Path: ...

    @classmethod
    def load(
        cls,
        directory: str | os.PathLike,
        *,
        state_dir: str | os.PathLike | None = None,
        own: bool = False,
    ) -> Agent: ...


@dataclass
class AgentSpec:
    """Everything needed to make a new agent.

    ``backend`` names a model backend (``models.registry.backends``), ``update.method`` an
    update rule (``models.registry.update_rules``); ``api`` says where an ``openai`` backend's
    server is (an ``ApiSpec``).
    """

    name: str
    model: str = BUNDLED_MODEL
    backend: str = "hf"
    system_prompt: str | None = None
    prompt_format: str = "chat"
    update: UpdateConfig = field(default_factory=UpdateConfig)
    sampling: Sampling = field(default_factory=lambda: Sampling(do_sample=False))
    seed: int = 0
    batch_size: int = 64
    dtype: str = "auto"
    api: ApiSpec | None = None
