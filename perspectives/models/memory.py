"""The ``memory`` update rule: an agent that remembers what it hears and retrieves it.

The paper's system has databases beside models: an edge (D, f) means f retrieves from D. Here
each agent owns one: a table of items (question, answer, source, t, first_hand) with the unit
embedding of each item's question. ``learn`` adds items; ``answer`` retrieves, for each question,
the ``k`` items whose questions are most like it (cosine similarity, optionally times
``exp(-decay · age)``) and puts them in the system message before the question. Nothing is
fine-tuned, so one loaded network serves every agent of a backend, local (``hf``) or behind an
API (``openai``).

Search is exact: one matrix product over all items, then the top k. At the sizes a simulation
reaches (10^3–10^5 items per agent) it costs milliseconds (``benchmarks/bench_memory.py``), and
an exact search applies the time decay to every item, not to a shortlist.
"""

from __future__ import annotations

import itertools
import json
import os
import time
import warnings
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ..config import saved_state_problem
from ..errors import ConfigError, CorruptStateError, InputError
from ..store import atomic_dir
from .contract import AgentSpec, Conversation
from .spec import ApiSpec, Sampling, check_prompts
from .update import TrainStats, UpdateConfig, check_pairs

AGENT_FILE = "agent.json"
ITEMS_FILE = "memory.parquet"
VECTORS_FILE = "memory-vectors.npy"
ITEM_COLUMNS = ("question", "answer", "source", "t", "first_hand")
MEMORY_HEADER = "Here is what you have heard about related questions:"
# Below this, a backend cannot hold a question, a few retrieved items and an answer.
MIN_CONTEXT_TOKENS = 256  # also simulation.config.MIN_CONTEXT
# What an answer must leave of it for the question and a retrieved item or two.
MIN_PROMPT_TOKENS = 128  # also simulation.config.MIN_PROMPT
# A step beyond any run (int64 holds it; a float of 1e30 cast to it would wrap).
MAX_STEP = 2**53
_ids = itertools.count()


class MemoryStore:
    """A retrieval database of question–answer items with unit embeddings of their questions.

    ``items`` is a DataFrame of ITEM_COLUMNS; ``vectors`` an ``(n, d)`` float32 array of unit
    rows, row i embedding ``items.question[i]``.
    """

    def __init__(self) -> None:
        self.items = pd.DataFrame({c: pd.Series(dtype=_dtype(c)) for c in ITEM_COLUMNS})
        self.vectors = np.zeros((0, 0), dtype=np.float32)
        self.uid = f"s{next(_ids)}"  # items are only ever added: (uid, len) names a content

    def __len__(self) -> int:
        return len(self.items)

    def add(self, items: pd.DataFrame, vectors: np.ndarray) -> None:
        """Append ``items`` (ITEM_COLUMNS) with their question embeddings ``(len(items), d)``."""
        vectors = np.asarray(vectors, dtype=np.float32)
        finite = bool(np.isfinite(vectors).all())
        if vectors.ndim != 2 or len(vectors) != len(items) or not finite:
            # Saved, they would make every later checkpoint one that cannot be read.
            raise InputError(
                f"{len(items)} items need as many finite embeddings, not an array of "
                f"{vectors.shape}" + ("" if finite else " holding NaN or inf"),
                field="vectors",
            )
        vectors = _unit(vectors)
        if len(self) and vectors.shape[1] != self.vectors.shape[1]:
            raise InputError(
                f"embeddings of {vectors.shape[1]} dimensions for a memory of "
                f"{self.vectors.shape[1]}",
                field="vectors",
            )
        new = items[list(ITEM_COLUMNS)].astype({c: _dtype(c) for c in ITEM_COLUMNS})
        if len(self):
            self.items = pd.concat([self.items, new], ignore_index=True)
            self.vectors = np.concatenate([self.vectors, vectors])
        else:
            self.items, self.vectors = new.reset_index(drop=True), vectors

    @classmethod
    def union(cls, stores: Sequence[MemoryStore]) -> MemoryStore:
        """One store holding the items of ``stores``, in order."""
        out = cls()
        for store in stores:
            if len(store):
                out.add(store.items, store.vectors)
        return out

    def search(
        self, queries: np.ndarray, k: int, *, now: int = 0, decay: float = 0.0
    ) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` best items for each query: ``(indices, scores)``, each ``(q, min(k, n))``,
        best first. The score is cosine similarity times ``exp(-decay · (now - t))``; ties go
        to the newer item."""
        n = len(self)
        if n == 0:
            return np.zeros((len(queries), 0), dtype=np.int64), np.zeros((len(queries), 0))
        queries = np.asarray(queries, dtype=np.float32)
        if queries.ndim != 2 or queries.shape[1] != self.vectors.shape[1]:
            # Vectors from another embedder of the same name, or a damaged vectors file:
            # numpy would fail with a shape error, or compare what is not comparable.
            raise InputError(
                f"questions embedded in {queries.shape[-1]} dimensions for a memory of "
                f"{self.vectors.shape[1]} (its vectors come from another embedder, or are "
                "damaged)",
                field="queries",
            )
        scores = _unit(queries) @ self.vectors.T
        if decay:
            age = np.maximum(now - self.items["t"].to_numpy(dtype=np.float64), 0.0)
            scores = scores * np.exp(-decay * age)[None, :].astype(np.float32)
        k = min(k, n)
        # Newest first among equals: sort on (-score, -position).
        part = np.argpartition(-scores, k - 1, axis=1)[:, :k] if k < n else None
        cand = part if part is not None else np.broadcast_to(np.arange(n), scores.shape)
        picked = np.take_along_axis(scores, cand, axis=1)
        order = np.lexsort((-cand, -picked), axis=1)
        idx = np.take_along_axis(cand, order, axis=1)
        return idx, np.take_along_axis(scores, idx, axis=1)

    def save(self, directory: Path) -> None:
        self.items.to_parquet(directory / ITEMS_FILE, index=False)
        np.save(directory / VECTORS_FILE, self.vectors)

    @classmethod
    def load(cls, directory: Path) -> MemoryStore:
        """Raises CorruptStateError for missing or inconsistent files, or values no saved
        memory holds (nulls, a step that is no whole number, vectors that are not finite)."""
        store = cls()
        if not (directory / ITEMS_FILE).exists():
            # ``save`` always writes it, an empty memory too: read as empty, a damaged
            # folder would lose every item without a word.
            raise CorruptStateError(f"corrupt memory: no {ITEMS_FILE}", source=str(directory))
        try:
            items = pd.read_parquet(directory / ITEMS_FILE)
            vectors = np.load(directory / VECTORS_FILE, allow_pickle=False)
        except Exception as exc:  # noqa: BLE001 - a damaged file, whatever the library says
            raise CorruptStateError(
                f"corrupt memory: {exc.__class__.__name__}: {exc}", source=str(directory)
            ) from None
        missing = [c for c in ITEM_COLUMNS if c not in items.columns]
        if missing or vectors.ndim != 2 or len(vectors) != len(items):
            raise CorruptStateError(
                f"corrupt memory: {len(items)} items, vectors {vectors.shape}, "
                f"missing columns {missing}",
                source=str(directory),
            )
        if len(items):
            _check_items(items, vectors, directory)
            # As saved: normalising unit vectors again could move them by an ulp and turn
            # a tie between equal questions another way than in the run before the resume.
            store.items = items[list(ITEM_COLUMNS)].astype({c: _dtype(c) for c in ITEM_COLUMNS})
            store.vectors = np.asarray(vectors, dtype=np.float32)
        return store


def _count(cfg: dict, key: str) -> int:
    """``cfg[key]`` as a count (a whole number, at least 0); ValueError otherwise (int()
    would turn 2.9 into 2, and "2" or True into a count)."""
    value = cfg[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{key} is {value!r}, not a count")
    return value


def _check_items(items: pd.DataFrame, vectors: np.ndarray, directory: Path) -> None:
    """Raise CorruptStateError naming the first column (and row) that ``save`` cannot have
    written: a cast would turn a null into "nan" or a step into an error, "False" into True."""

    def bad(column: str, rows: np.ndarray, what: str) -> CorruptStateError:
        row = int(np.flatnonzero(rows)[0])
        value = items[column].iloc[row]
        value = value.item() if isinstance(value, np.generic) else value
        said = "missing" if pd.api.types.is_scalar(value) and pd.isna(value) else repr(value)
        return CorruptStateError(
            f"corrupt memory: {column} of item {row} is {said} ({what})",
            source=str(directory / ITEMS_FILE),
        )

    for column in ITEM_COLUMNS:
        missing = items[column].isna().to_numpy(dtype=bool)
        if missing.any():
            raise bad(column, missing, "missing")
    for column in ("question", "answer", "source"):
        not_text = ~items[column].map(lambda v: isinstance(v, str)).to_numpy(dtype=bool)
        if not_text.any():
            raise bad(column, not_text, "not text")
    t = items["t"]
    if pd.api.types.is_bool_dtype(t) or not pd.api.types.is_integer_dtype(t):
        numbers = pd.to_numeric(t, errors="coerce").to_numpy(dtype=np.float64)
        flags = t.map(_is_bool).to_numpy(dtype=bool)
        whole = np.isfinite(numbers) & (numbers == np.round(numbers)) & ~flags
        if not whole.all():
            raise bad("t", ~whole, "not a whole step")
    out_of_range = ~pd.to_numeric(t).between(0, MAX_STEP).to_numpy(dtype=bool)
    if out_of_range.any():
        raise bad("t", out_of_range, f"not a step from 0 to {MAX_STEP}")
    not_bool = ~items["first_hand"].map(_is_bool).to_numpy(dtype=bool)
    if not_bool.any():
        raise bad("first_hand", not_bool, "not true or false")
    if vectors.dtype.kind != "f":
        raise CorruptStateError(
            f"corrupt memory: vectors of {vectors.dtype}, not floating-point numbers",
            source=str(directory / VECTORS_FILE),
        )
    finite = np.isfinite(vectors).all(axis=1)
    if not finite.all():
        raise CorruptStateError(
            f"corrupt memory: the vector of item {int(np.flatnonzero(~finite)[0])} is not finite",
            source=str(directory / VECTORS_FILE),
        )


def _is_bool(v: object) -> bool:
    return isinstance(v, bool | np.bool_)


def _dtype(column: str) -> str:
    return {"t": "int64", "first_hand": "bool"}.get(column, "object")


def _unit(v: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    return v / np.where(norms > 0, norms, 1.0)


def render_memories(items: pd.DataFrame) -> str:
    """The retrieved items as the text put in the system message."""
    lines = [MEMORY_HEADER]
    for q, a in zip(items["question"], items["answer"], strict=True):
        lines.append(f"Q: {q}\nA: {a}")
    return "\n\n".join(lines)


class MemoryAgent:
    """An agent that learns by remembering: the ``memory`` update rule on any backend.

    Parameters
    ----------
    name : the agent's name.
    model : the backend's model (``"bundled"``, a folder or hub id; the server's model name).
    backend : ``"hf"``, ``"openai"`` or ``"fake"`` (any registered backend with ``chat``).
    system_prompt, prompt_format, sampling, batch_size, dtype, api : as for the backend.
    update : an ``UpdateConfig`` with ``method="memory"``; ``memory_k`` items are retrieved per
        question, scored with decay ``memory_decay`` per step of age.
    embedder : embeds questions (default: the bundled sentence embedder, cached); a simulation
        gives its own.

    Raises
    ------
    ConfigError
        When the backend's context cannot hold retrieved items (fewer than 256 tokens).
    """

    def __init__(
        self,
        name: str = "agent",
        model: str = "bundled",
        *,
        backend: str = "hf",
        system_prompt: str | None = None,
        prompt_format: str = "chat",
        update: UpdateConfig | dict | None = None,
        sampling: Sampling | None = None,
        batch_size: int = 64,
        dtype: str = "auto",
        api: ApiSpec | dict | None = None,
        seed: int = 0,
        embedder=None,
    ) -> None:
        from .registry import make_model

        self.name = name
        self.model = model
        self.backend = backend
        self.system_prompt = system_prompt
        self.prompt_format = prompt_format
        self.update = update if isinstance(update, UpdateConfig) else UpdateConfig(**(update or {}))
        self.sampling = sampling or Sampling(do_sample=False)
        self.batch_size = batch_size
        self.dtype = dtype
        self.api = api if isinstance(api, ApiSpec) or api is None else ApiSpec(**api)
        self.seed = seed
        self.embedder = embedder
        self.lm = make_model(
            backend,
            model,
            prompt_format=prompt_format,
            dtype=dtype,
            batch_size=batch_size,
            api=self.api,
        )
        self.memory = MemoryStore()
        # Databases it may read at this step (set by the simulation; not part of its state).
        self.shared: list[MemoryStore] = []
        self.embedder_name: str | None = None
        self.clock = 0  # the latest step it heard something at
        self.n_updates = 0
        self._uid = f"m{next(_ids)}"
        self._warned_trim = False
        self._union: tuple[tuple, MemoryStore] | None = None

    @classmethod
    def from_spec(cls, spec: AgentSpec, *, state_dir: str | Path | None = None) -> MemoryAgent:
        return cls(
            spec.name,
            spec.model,
            backend=spec.backend,
            system_prompt=spec.system_prompt,
            prompt_format=spec.prompt_format,
            update=spec.update,
            sampling=spec.sampling,
            batch_size=spec.batch_size,
            dtype=spec.dtype,
            api=spec.api,
            seed=spec.seed,
        )

    @property
    def version(self) -> str:
        """Changes whenever what it may retrieve changes (its memory or a database it reads)."""
        reads = "".join(f",{s.uid}:{len(s)}" for s in self.shared)
        return f"{self._uid}:{self.n_updates}{reads}"

    # ---------------------------------------------------------------- embedding
    def _embed(self, texts: Sequence[str]) -> np.ndarray:
        if self.embedder is None:
            from ..space.embed import get_embedder

            self.embedder = get_embedder()
        name = getattr(self.embedder, "name", type(self.embedder).__name__)
        if self.embedder_name is not None and name != self.embedder_name and len(self.memory):
            # Vectors of another embedder are not comparable: the memory is embedded anew.
            self.memory.vectors = _unit(self._raw_embed(self.memory.items["question"].tolist()))
            self._union = None
        self.embedder_name = name
        return self._raw_embed(texts)

    def _raw_embed(self, texts: Sequence[str]) -> np.ndarray:
        return np.asarray(self.embedder.embed(list(texts)), dtype=np.float32)

    # ------------------------------------------------------------------ learning
    def remember(
        self,
        pairs: Sequence[tuple[str, str]],
        *,
        t: int,
        source: str,
        first_hand: bool,
    ) -> None:
        """Add ``pairs`` as items heard at step ``t`` from ``source`` (a name, "" for none).
        Raises InputError for pairs as ``check_pairs`` does, or a source that is no text."""
        pairs = check_pairs(pairs)
        if not isinstance(source, str):
            raise InputError("must be a model's name, or '' for none", field="source", value=source)
        items = pd.DataFrame(
            {
                "question": [q for q, _ in pairs],
                "answer": [a for _, a in pairs],
                "source": source,
                "t": int(t),
                "first_hand": bool(first_hand),
            }
        )
        self.memory.add(items, self._embed(items["question"].tolist()))
        self.clock = max(self.clock, int(t))

    def learn(
        self,
        pairs: Sequence[tuple[str, str]],
        *,
        seed: int = 0,
        t: int | None = None,
        source: str | None = None,
    ) -> TrainStats:
        """Remember ``pairs``, heard at step ``t`` (default: one after the last) from
        ``source``. Raises InputError for an empty set or non-text pairs."""
        start = time.perf_counter()
        when = self.clock + 1 if t is None else int(t)
        self.remember(pairs, t=when, source=source or "", first_hand=False)
        self.n_updates += 1
        return TrainStats(n_examples=len(pairs), total_s=time.perf_counter() - start)

    # ----------------------------------------------------------------- answering
    @property
    def joint_key(self) -> str:
        """Agents with the same key answer with the same network (or server): the engine may
        ask them in one call (``answer_jointly``)."""
        api = self.api.model_dump() if self.api is not None else None
        parts = [self.backend, self.model, self.prompt_format, self.dtype, self.batch_size, api]
        return json.dumps(parts, sort_keys=True)

    def conversations(self, questions: Sequence[str], max_new_tokens: int) -> list[Conversation]:
        """The conversation each question is asked in: the system prompt and the retrieved
        items in the system message, then the question. Items that would overflow the
        backend's context are left out, the least relevant first (warned about once).

        Raises ConfigError when the backend's context cannot hold retrieved items, or an
        answer of ``max_new_tokens`` would leave no room for them."""
        check_prompts(questions, "questions")
        if self.lm.context_tokens < MIN_CONTEXT_TOKENS:
            raise ConfigError(
                f"the backend's context ({self.lm.context_tokens} tokens) is too short for "
                f"retrieved memories (at least {MIN_CONTEXT_TOKENS})",
                field="update.method",
                value="memory",
            )
        budget = self.lm.context_tokens - max_new_tokens
        if budget < MIN_PROMPT_TOKENS:
            # Every item would be left out: a memory that is never read.
            raise ConfigError(
                f"leaves {budget} of the backend's {self.lm.context_tokens} tokens of context "
                f"for the question and retrieved memories (at least {MIN_PROMPT_TOKENS})",
                field="max_new_tokens",
                value=max_new_tokens,
            )
        stores = [s for s in (self.memory, *self.shared) if len(s)]
        searched = self.memory
        if stores:
            vectors = self._embed(questions)  # first: a changed embedder re-embeds the memory
            searched = stores[0] if len(stores) == 1 else self._union_of(stores)
            idx, _ = searched.search(
                vectors,
                self.update.memory_k,
                now=max(self.clock, int(searched.items["t"].max())),
                decay=self.update.memory_decay,
            )
        else:
            idx = np.zeros((len(questions), 0), dtype=np.int64)
        out, trimmed = [], 0
        for q, rows in zip(questions, idx, strict=True):
            rows = list(rows)
            while True:
                conv = self._conversation(q, searched.items.iloc[rows])
                if not rows or self._tokens(conv) <= budget:
                    break
                rows.pop()
                trimmed += 1
            out.append(conv)
        if trimmed and not self._warned_trim:
            warnings.warn(
                f"agent {self.name!r}: {trimmed} retrieved item(s) left out to fit the "
                f"context of {self.lm.context_tokens} tokens",
                stacklevel=3,
            )
            self._warned_trim = True
        return out

    def _union_of(self, stores: list[MemoryStore]) -> MemoryStore:
        """The union of ``stores``, built again only when one of them has grown (a store is
        only ever added to, so its uid and length name its content)."""
        key = tuple((s.uid, len(s)) for s in stores)
        if self._union is None or self._union[0] != key:
            self._union = (key, MemoryStore.union(stores))
        return self._union[1]

    def _conversation(self, question: str, items: pd.DataFrame) -> Conversation:
        parts = [self.system_prompt] if self.system_prompt else []
        turns: Conversation = []
        if len(items) and self.update.memory_format == "turns":
            # Most relevant nearest the question; ``items`` come most relevant first.
            for q, a in zip(items["question"][::-1], items["answer"][::-1], strict=True):
                turns += [{"role": "user", "content": q}, {"role": "assistant", "content": a}]
        elif len(items):
            parts.append(render_memories(items))
        system = [{"role": "system", "content": "\n\n".join(parts)}] if parts else []
        return [*system, *turns, {"role": "user", "content": question}]

    def _tokens(self, conv: Conversation) -> int:
        # A few tokens per message for the chat template's markers.
        return sum(self.lm.count_tokens(m["content"]) + 8 for m in conv)

    def answer(
        self,
        questions: Sequence[str],
        sampling: Sampling | None = None,
        *,
        seed: int = 0,
        replicates: int = 1,
        on_batch: Callable[[int], None] | None = None,
    ) -> list[str] | list[list[str]]:
        """Answer each question with what it remembers in the prompt; one text per question
        (a list of ``replicates`` texts when ``replicates > 1``). Raises InputError for an
        empty question."""
        return answer_jointly(
            [self],
            [questions],
            sampling or self.sampling,
            seed=seed,
            replicates=replicates,
            on_batch=on_batch,
        )[0]

    # --------------------------------------------------------------- persistence
    def config_dict(self) -> dict:
        return {
            "name": self.name,
            "backend": self.backend,
            "model": self.model,
            "system_prompt": self.system_prompt,
            "prompt_format": self.prompt_format,
            "update": self.update.model_dump(),
            "sampling": self.sampling.model_dump(),
            "batch_size": self.batch_size,
            "dtype": self.dtype,
            # The server's address and settings; api_key_env is a variable's name, never a key.
            "api": self.api.model_dump() if self.api is not None else None,
            "seed": self.seed,
            "n_updates": self.n_updates,
            "clock": self.clock,
            "embedder": self.embedder_name,
        }

    def save(self, directory: str | os.PathLike) -> Path:
        """Write the agent (config + its memory) to ``directory`` atomically."""
        with atomic_dir(directory) as tmp:
            self.memory.save(tmp)
            (tmp / AGENT_FILE).write_text(json.dumps(self.config_dict(), indent=2))
        return Path(directory)

    @classmethod
    def load(
        cls,
        directory: str | os.PathLike,
        *,
        state_dir: str | os.PathLike | None = None,
        own: bool = False,
    ) -> MemoryAgent:
        """Read an agent written by ``save`` (its memory is read into memory, so ``own`` and
        ``state_dir`` change nothing). Raises CorruptStateError for a damaged folder."""
        d = Path(directory)
        try:
            cfg = json.loads((d / AGENT_FILE).read_text())
            agent = cls(
                cfg["name"],
                cfg["model"],
                backend=cfg["backend"],
                system_prompt=cfg["system_prompt"],
                prompt_format=cfg["prompt_format"],
                update=cfg["update"],
                sampling=Sampling(**cfg["sampling"]),
                batch_size=cfg["batch_size"],
                dtype=cfg["dtype"],
                api=cfg["api"],
                seed=cfg["seed"],
            )
            agent.n_updates = _count(cfg, "n_updates")
            agent.clock = _count(cfg, "clock")
            if not isinstance(cfg["embedder"], str | None):
                raise ValueError(f"embedder is {cfg['embedder']!r}, not a name")
            agent.embedder_name = cfg["embedder"]
        except FileNotFoundError:
            raise CorruptStateError("not an agent folder (no agent.json)", source=str(d)) from None
        except OSError as exc:  # a folder in its place, unreadable
            raise CorruptStateError(
                f"cannot read agent.json: {exc.strerror or exc}", source=str(d / AGENT_FILE)
            ) from None
        except (ValueError, KeyError, TypeError) as exc:
            raise CorruptStateError(
                f"corrupt agent.json: {saved_state_problem(exc)}", source=str(d / AGENT_FILE)
            ) from None
        agent.memory = MemoryStore.load(d)
        return agent


# Greedy answers already given, per shared network: an agent whose retrieved items for a
# question have not changed since it was last asked gives the same answer, so it is reused.
_GREEDY_ANSWERS: dict[str, OrderedDict[str, str]] = {}
GREEDY_CACHE_SIZE = 200_000


def clear_greedy_answers() -> None:
    """Forget the reused greedy answers (frees memory; what a new process starts with)."""
    _GREEDY_ANSWERS.clear()


def answer_jointly(
    agents: Sequence[MemoryAgent],
    questions: Sequence[Sequence[str]],
    sampling: Sampling,
    *,
    seed: int = 0,
    replicates: int = 1,
    on_batch: Callable[[int], None] | None = None,
) -> list[list[str] | list[list[str]]]:
    """Each agent's answers to its questions, in one call of the network (or server) they
    share: a few large batches instead of many small ones. ``agents`` must have one
    ``joint_key``; sampling, if on, is seeded by ``seed`` for the whole call. Greedy answers to
    a conversation asked before (the same system prompt, retrieved items and question) are
    reused, not generated again. Returns, per agent, what ``MemoryAgent.answer`` returns."""
    keys = {a.joint_key for a in agents}
    if len(keys) > 1:
        raise InputError("agents answered together must share a network", field="agents")
    convs = [
        a.conversations(qs, sampling.max_new_tokens)
        for a, qs in zip(agents, questions, strict=True)
    ]
    flat = [c for cs in convs for c in cs]
    lm = agents[0].lm
    if sampling.do_sample:
        out = lm.chat(flat, sampling, seed=seed, replicates=replicates, on_batch=on_batch)
    else:
        known = _GREEDY_ANSWERS.setdefault(keys.pop(), OrderedDict())
        decoding = sampling.decoding().model_dump()
        texts = [json.dumps([c, decoding], sort_keys=True) for c in flat]
        # Each conversation not answered before, once (agents alike ask alike).
        todo = {t: c for t, c in zip(texts, flat, strict=True) if t not in known}
        if todo:
            asked = lm.chat(list(todo.values()), sampling, seed=seed)
            for text, reps in zip(todo, asked, strict=True):
                known[text] = reps[0]
            while len(known) > GREEDY_CACHE_SIZE:
                known.popitem(last=False)
        if on_batch is not None:
            on_batch(len(flat) * replicates)
        out = [[known[t]] * replicates for t in texts]
    result, pos = [], 0
    for cs in convs:
        part = out[pos : pos + len(cs)]
        pos += len(cs)
        result.append([reps[0] for reps in part] if replicates == 1 else part)
    return result


def _create(spec: AgentSpec, state_dir: Path | None) -> MemoryAgent:
    return MemoryAgent.from_spec(spec, state_dir=state_dir)


def _load(directory: Path, state_dir: Path | None, own: bool) -> MemoryAgent:
    return MemoryAgent.load(directory, state_dir=state_dir, own=own)


def _seed_initial(agent: MemoryAgent, pairs: Sequence[tuple[str, str]]) -> None:
    """An initial perspective by memory: the sample is the agent's own knowledge at t = 0."""
    agent.remember(pairs, t=0, source=agent.name, first_hand=True)
