"""Surrogate embedders: text -> vectors, with a disk cache keyed by (embedder, text).

The default is the paper's surrogate, all-MiniLM-L6-v2, loaded from the bundled package. Any
sentence-transformers model (name or path) and any OpenAI-compatible ``/v1/embeddings``
endpoint work too.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
import requests

from ..bundled import BUNDLED_EMBEDDER, BUNDLED_EMBEDDER_NAME, bundled_embedder_path, cache_dir
from ..errors import InputError

ProgressCallback = Callable[[int], None]


@runtime_checkable
class Embedder(Protocol):
    """Anything that maps texts to a ``(len(texts), p)`` float32 array.

    ``name`` identifies the embedder in the cache: two embedders with the same name must give
    the same vectors.
    """

    name: str

    def embed(self, texts: Sequence[str]) -> np.ndarray: ...


def _check_texts(texts: Sequence[str]) -> None:
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise InputError("every text to embed must be a string", field=f"texts[{i}]", value=t)


class SentenceTransformerEmbedder:
    """A sentence-transformers model: ``"bundled"`` (all-MiniLM-L6-v2), a hub name or a path."""

    def __init__(self, model: str = BUNDLED_EMBEDDER, *, batch_size: int = 64) -> None:
        self.model = model
        self.batch_size = batch_size
        if model == BUNDLED_EMBEDDER:
            self.name = f"sentence-transformers:{BUNDLED_EMBEDDER_NAME}"
        else:
            path = Path(model).expanduser()
            self.name = f"sentence-transformers:{path.resolve() if path.exists() else model}"
        self._st = None

    def _load(self):
        if self._st is None:
            from sentence_transformers import SentenceTransformer
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()
            target = str(bundled_embedder_path()) if self.model == BUNDLED_EMBEDDER else self.model
            try:
                # On the CPU whatever the agents' device: embedding is cheap, and cached
                # vectors then do not depend on the machine's GPU.
                self._st = SentenceTransformer(target, device="cpu")
            except OSError as exc:
                offline = os.environ.get("HF_HUB_OFFLINE") == "1"
                reason = (
                    "not found locally and no network access" if offline else "cannot be loaded"
                )
                raise InputError(
                    f"{reason}: {exc.__class__.__name__}", field="embedder", value=self.model
                ) from None
        return self._st

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embed ``texts``; returns ``(len(texts), p)`` float32."""
        _check_texts(texts)
        st = self._load()
        vectors = st.encode(
            list(texts), batch_size=self.batch_size, convert_to_numpy=True, show_progress_bar=False
        )
        return np.asarray(vectors, dtype=np.float32).reshape(len(texts), -1)


class HashingEmbedder:
    """A torch-free embedder for tests and quick looks: scikit-learn's ``HashingVectorizer``
    (word unigrams and bigrams hashed to ``n_features`` dimensions, L2-normalised). Texts
    that share words are near; it knows no meaning."""

    def __init__(self, n_features: int = 256) -> None:
        from sklearn.feature_extraction.text import HashingVectorizer

        self.name = f"hashing-{n_features}"
        self._vectorizer = HashingVectorizer(
            n_features=n_features, ngram_range=(1, 2), alternate_sign=False, norm="l2"
        )

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        _check_texts(texts)
        return self._vectorizer.transform(list(texts)).toarray().astype(np.float32)


class OpenAIEmbedder:
    """An OpenAI-compatible embeddings endpoint (``POST {base_url}/embeddings``).

    ``base_url`` is e.g. ``http://localhost:8000/v1``; the API key is read from ``api_key`` or
    the ``OPENAI_API_KEY`` environment variable (optional for local servers).
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        batch_size: int = 128,
        timeout: float = 60.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.api_key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
        self.batch_size = batch_size
        self.timeout = timeout
        self.name = f"openai:{self.base_url}#{model}"

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embed ``texts`` in batches; returns ``(len(texts), p)`` float32.

        Raises InputError when the endpoint is unreachable or answers with an error or a
        malformed body.
        """
        _check_texts(texts)
        url = f"{self.base_url}/embeddings"
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        out: list[np.ndarray] = []
        for start in range(0, len(texts), self.batch_size):
            batch = list(texts[start : start + self.batch_size])
            try:
                resp = requests.post(
                    url,
                    json={"model": self.model, "input": batch},
                    headers=headers,
                    timeout=self.timeout,
                )
            except requests.RequestException as exc:
                raise InputError(
                    f"embedding endpoint unreachable: {exc.__class__.__name__}", source=url
                ) from None
            if resp.status_code != 200:
                raise InputError(
                    f"embedding endpoint answered HTTP {resp.status_code}",
                    source=url,
                    value=resp.text[:200],
                )
            try:
                data = sorted(resp.json()["data"], key=lambda d: d["index"])
                vectors = np.asarray([d["embedding"] for d in data], dtype=np.float32)
            except (ValueError, KeyError, TypeError):
                raise InputError(
                    "embedding endpoint returned a malformed body",
                    source=url,
                    value=resp.text[:200],
                ) from None
            if vectors.shape[0] != len(batch):
                raise InputError(
                    f"endpoint returned {vectors.shape[0]} vectors for {len(batch)} texts",
                    source=url,
                )
            out.append(vectors)
        return np.concatenate(out) if out else np.zeros((0, 0), dtype=np.float32)


class CachedEmbedder:
    """Wrap an embedder with an on-disk cache keyed by (embedder name, text).

    The cache is an SQLite file (default ``<cache_dir>/embeddings.sqlite``); writes are
    transactional, so an interrupted run keeps every batch it finished. ``hits`` and ``misses``
    count lookups since creation.
    """

    def __init__(
        self,
        embedder: Embedder,
        path: str | os.PathLike | None = None,
        *,
        batch_size: int = 256,
    ) -> None:
        self.embedder = embedder
        self.name = embedder.name
        self.path = Path(path) if path is not None else cache_dir() / "embeddings.sqlite"
        self.batch_size = batch_size
        self.hits = 0
        self.misses = 0

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        con = sqlite3.connect(self.path, timeout=60)
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("CREATE TABLE IF NOT EXISTS emb (key BLOB PRIMARY KEY, dim INT, vec BLOB)")
        return con

    def _key(self, text: str) -> bytes:
        return hashlib.sha256(f"{self.name}\x00{text}".encode()).digest()

    def embed(self, texts: Sequence[str], on_batch: ProgressCallback | None = None) -> np.ndarray:
        """Embed ``texts`` (duplicates embedded once); returns ``(len(texts), p)`` float32.

        ``on_batch(k)`` is called with the number of texts done after each cache lookup and
        each embedded batch.
        """
        _check_texts(texts)
        unique = list(dict.fromkeys(texts))
        keys = {t: self._key(t) for t in unique}
        found: dict[str, np.ndarray] = {}
        con = self._connect()
        try:
            for start in range(0, len(unique), 500):
                part = unique[start : start + 500]
                marks = ",".join("?" * len(part))
                by_key = {keys[t]: t for t in part}
                rows = con.execute(
                    f"SELECT key, vec FROM emb WHERE key IN ({marks})", [keys[t] for t in part]
                ).fetchall()
                for key, vec in rows:
                    found[by_key[key]] = np.frombuffer(vec, dtype=np.float32)
            missing = [t for t in unique if t not in found]
            self.hits += len(unique) - len(missing)
            self.misses += len(missing)
            if on_batch is not None and len(unique) > len(missing):
                on_batch(len(unique) - len(missing))
            for start in range(0, len(missing), self.batch_size):
                part = missing[start : start + self.batch_size]
                vectors = np.asarray(self.embedder.embed(part), dtype=np.float32)
                with con:
                    con.executemany(
                        "INSERT OR REPLACE INTO emb VALUES (?, ?, ?)",
                        [
                            (keys[t], v.size, v.tobytes())
                            for t, v in zip(part, vectors, strict=True)
                        ],
                    )
                for t, v in zip(part, vectors, strict=True):
                    found[t] = v
                if on_batch is not None:
                    on_batch(len(part))
        finally:
            con.close()
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        return np.stack([found[t] for t in texts])


def get_embedder(
    model: str = BUNDLED_EMBEDDER,
    *,
    url: str | None = None,
    cache: bool | str | os.PathLike = True,
) -> Embedder | CachedEmbedder:
    """The one obvious way to get an embedder.

    ``model``: ``"bundled"``, ``"hashing"`` (torch-free, for tests: ``HashingEmbedder``), a
    sentence-transformers name or path, or (with ``url``) the endpoint's model name.
    ``url``: base URL of an OpenAI-compatible API. ``cache``: True for the default disk
    cache, a path for another, False for none.
    """
    embedder: Embedder
    if url:
        embedder = OpenAIEmbedder(url, model)
    elif model == "hashing":
        return HashingEmbedder()  # as fast as a cache lookup: never cached
    else:
        embedder = SentenceTransformerEmbedder(model)
    if cache is False:
        return embedder
    return CachedEmbedder(embedder, None if cache is True else cache)
