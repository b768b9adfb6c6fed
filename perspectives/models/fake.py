"""The ``fake`` backend: a deterministic, torch-free test double of a language model.

Like Concordia's no-language-model, it lets the engine, forks, sweeps, resume and the analyses
be tested in milliseconds. Unlike a constant stub, its answers depend on what it has learned:
an answer is drawn from the question's words, the agent's persona (its ``model`` string and
system prompt) and the words of the answers it learned from, so agents that interview each
other drift toward each other in perspective space, as real ones do.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from ..config import saved_state_problem
from ..errors import CorruptStateError, InputError
from ..store import atomic_dir
from .contract import AgentSpec
from .spec import Sampling, check_conversations, check_prompts
from .update import TrainStats, UpdateConfig

MEMORY_WORDS = 256  # the most recent learned words an agent keeps
_ids = itertools.count()


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z']+", text.lower())


def _seed(*parts: object) -> int:
    return zlib.crc32("|".join(map(str, parts)).encode())


class FakeModel:
    """A static fake model (the ``fake`` backend's answerer): same arguments as ``HFChatModel``."""

    def __init__(
        self,
        model: str = "fake",
        *,
        system_prompt: str | None = None,
        prompt_format: str = "chat",
        dtype: str = "auto",
        batch_size: int = 64,
    ) -> None:
        self.model = model
        self.system_prompt = system_prompt
        self.prompt_format = prompt_format
        self.memory: list[str] = []

    def _persona(self) -> list[str]:
        return _words(self.model) + _words(self.system_prompt or "")

    def _one(
        self, prompt: str, sampling: Sampling, seed: int, replicate: int, context: str = ""
    ) -> str:
        # What a conversation tells it (retrieved memories) weighs like its own memory.
        pool = _words(prompt)[:4] + self._persona() * 2 + self.memory + _words(context)
        if not pool:
            pool = ["nothing"]
        n = max(1, min(sampling.max_new_tokens, 8))
        key = (prompt, " ".join(self._persona()), " ".join(self.memory))
        if context:  # the key of a plain prompt is unchanged: earlier fake runs repeat exactly
            key += (context,)
        rng = np.random.default_rng(
            _seed(*key, seed, replicate) if sampling.do_sample else _seed(*key)
        )
        return " ".join(pool[i] for i in rng.integers(len(pool), size=n))

    def answer(
        self,
        prompts: Sequence[str],
        sampling: Sampling | None = None,
        *,
        seed: int = 0,
        replicates: int = 1,
        on_batch: Callable[[int], None] | None = None,
    ) -> list[list[str]]:
        """``answers[prompt][replicate]``; greedy (``sampling=None``) ignores ``seed``."""
        check_prompts(prompts)
        sampling = sampling or Sampling(do_sample=False)
        out = [[self._one(p, sampling, seed, r) for r in range(replicates)] for p in prompts]
        if on_batch is not None:
            on_batch(len(prompts) * replicates)
        return out

    def chat(
        self,
        conversations: Sequence[list[dict[str, str]]],
        sampling: Sampling | None = None,
        *,
        seed: int = 0,
        replicates: int = 1,
        on_batch: Callable[[int], None] | None = None,
    ) -> list[list[str]]:
        """Answer each conversation's last turn; the earlier turns' words join the pool."""
        check_conversations(conversations)
        sampling = sampling or Sampling(do_sample=False)
        out = []
        for conv in conversations:
            context = " ".join(m["content"] for m in conv[:-1])
            out.append(
                [
                    self._one(conv[-1]["content"], sampling, seed, r, context)
                    for r in range(replicates)
                ]
            )
        if on_batch is not None:
            on_batch(len(conversations) * replicates)
        return out

    # A fake "token" is a word; its context is as long as a small real model's.
    context_tokens = 2048

    def count_tokens(self, text: str) -> int:
        return len(text.split())


class FakeAgent(FakeModel):
    """A fake agent: learning appends the learned answers' words to its memory."""

    def __init__(
        self,
        name: str = "agent",
        model: str = "fake",
        *,
        system_prompt: str | None = None,
        prompt_format: str = "chat",
        update: UpdateConfig | dict | None = None,
        sampling: Sampling | None = None,
        seed: int = 0,
        state_dir: str | os.PathLike | None = None,
        **_: object,
    ) -> None:
        super().__init__(model, system_prompt=system_prompt, prompt_format=prompt_format)
        self.name = name
        self.update = update if isinstance(update, UpdateConfig) else UpdateConfig(**(update or {}))
        self.sampling = sampling or Sampling(do_sample=False)
        self.seed = seed
        self.n_updates = 0
        self._uid = f"f{next(_ids)}"

    @classmethod
    def from_spec(cls, spec: AgentSpec, *, state_dir: str | os.PathLike | None = None) -> FakeAgent:
        return cls(
            spec.name,
            spec.model,
            system_prompt=spec.system_prompt,
            prompt_format=spec.prompt_format,
            update=spec.update,
            sampling=spec.sampling,
            seed=spec.seed,
        )

    @property
    def version(self) -> str:
        return f"{self._uid}:{self.n_updates}"

    def answer(  # type: ignore[override]
        self,
        questions: Sequence[str],
        sampling: Sampling | None = None,
        *,
        seed: int = 0,
        replicates: int = 1,
        on_batch: Callable[[int], None] | None = None,
    ) -> list[str] | list[list[str]]:
        out = super().answer(
            questions,
            sampling or self.sampling,
            seed=seed,
            replicates=replicates,
            on_batch=on_batch,
        )
        return [reps[0] for reps in out] if replicates == 1 else out

    def learn(
        self,
        pairs: Sequence[tuple[str, str]],
        *,
        seed: int = 0,
        t: int | None = None,
        source: str | None = None,
    ) -> TrainStats:
        """Add the answers' words to memory (``update.epochs`` times). Raises InputError for an
        empty set of pairs."""
        pairs = list(pairs)
        if not pairs:
            raise InputError("an update needs at least one question–answer pair", field="pairs")
        learned = [w for _, a in pairs for w in _words(a)] * self.update.epochs
        self.memory = (self.memory + learned)[-MEMORY_WORDS:]
        self.n_updates += 1
        return TrainStats(n_examples=len(pairs), n_answer_tokens=len(learned))

    def save(self, directory: str | os.PathLike) -> Path:
        state = {
            "name": self.name,
            "backend": "fake",
            "model": self.model,
            "system_prompt": self.system_prompt,
            "prompt_format": self.prompt_format,
            "update": self.update.model_dump(),
            "sampling": self.sampling.model_dump(),
            "seed": self.seed,
            "n_updates": self.n_updates,
            "memory": self.memory,
        }
        with atomic_dir(directory) as tmp:
            (tmp / "agent.json").write_text(json.dumps(state, indent=2))
        return Path(directory)

    @classmethod
    def load(
        cls,
        directory: str | os.PathLike,
        *,
        state_dir: str | os.PathLike | None = None,
        own: bool = False,
    ) -> FakeAgent:
        """Read a fake agent written by ``save``; raises CorruptStateError if it is damaged."""
        path = Path(directory) / "agent.json"
        try:
            state = json.loads(path.read_text())
            agent = cls(
                state["name"],
                state["model"],
                system_prompt=state["system_prompt"],
                prompt_format=state["prompt_format"],
                update=state["update"],
                sampling=Sampling(**state["sampling"]),
                seed=state["seed"],
            )
            agent.n_updates = int(state["n_updates"])
            agent.memory = [str(w) for w in state["memory"]]
        except FileNotFoundError:
            raise CorruptStateError(
                "not an agent folder (no agent.json)", source=str(directory)
            ) from None
        except (ValueError, KeyError, TypeError) as exc:
            raise CorruptStateError(
                f"corrupt agent.json: {saved_state_problem(exc)}", source=str(path)
            ) from None
        return agent
