"""Surrogate embedders: text -> vectors, with a disk cache keyed by (embedder, text).

The default is the paper's surrogate, all-MiniLM-L6-v2, loaded from the bundled package. Any
sentence-transformers model (name or path) and any OpenAI-compatible ``/v1/embeddings``
endpoint work too.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
import requests

from ..bundled import (
    BUNDLED_EMBEDDER,
    BUNDLED_EMBEDDER_NAME,
    bundled_embedder_path,
    cache_dir,
    hub_offline,
)
from ..errors import InputError

ProgressCallback = Callable[[int], None]
_log = logging.getLogger(__name__)


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
        if not texts:  # scikit-learn's hasher needs one text to start
            return np.zeros((0, self._vectorizer.n_features), np.float32)
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

    The cache is never trusted over the embedder: a row whose stored length disagrees with its
    vector, a non-finite vector, or a vector of another length than the embedder's (recorded
    with the rows) is recomputed and rewritten. A file that is not an SQLite database (garbage,
    truncated) is moved aside to ``<name>.damaged`` with a warning and a new cache is started;
    a cache that cannot be opened or written (a read-only folder) is bypassed with a warning.
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
        self._usable = True

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        con = sqlite3.connect(self.path, timeout=60)
        try:
            con.execute("PRAGMA journal_mode=WAL")
            con.execute("CREATE TABLE IF NOT EXISTS emb (key BLOB PRIMARY KEY, dim INT, vec BLOB)")
            # The length of each embedder's vectors, so a row of another length is known stale.
            con.execute("CREATE TABLE IF NOT EXISTS dims (name TEXT PRIMARY KEY, dim INT)")
        except BaseException:
            con.close()
            raise
        return con

    def _key(self, text: str) -> bytes:
        return hashlib.sha256(f"{self.name}\x00{text}".encode()).digest()

    def _damaged(self, exc: Exception) -> None:
        """Stop using the cache for this embedder; move a damaged database file aside."""
        self._usable = False
        corrupt = isinstance(exc, sqlite3.DatabaseError) and not isinstance(
            exc, sqlite3.OperationalError
        )
        if corrupt:
            try:
                # The WAL and shared-memory files belong to the damaged file: they go with it.
                for suffix in ("", "-wal", "-shm"):
                    part = self.path.with_name(self.path.name + suffix)
                    if part.exists():
                        os.replace(part, part.with_name(part.name + ".damaged"))
                self._usable = True  # a fresh cache is made on the next lookup
                what = f"damaged ({exc}); moved it to {self.path.name}.damaged, starting anew"
            except OSError:
                what = f"damaged ({exc}); embedding without it"
        else:
            what = f"unusable ({exc}); embedding without it"
        _log.warning("embedding cache %s: %s", self.path, what)

    def _lookup(self, keys: dict[str, bytes]) -> dict[str, np.ndarray]:
        """Valid cached vectors of ``keys``' texts; a row that fails a check is left out."""
        found: dict[str, np.ndarray] = {}
        texts = list(keys)
        con = self._connect()
        try:
            row = con.execute("SELECT dim FROM dims WHERE name = ?", (self.name,)).fetchone()
            expected = row[0] if row is not None else None
            for start in range(0, len(texts), 500):
                part = texts[start : start + 500]
                marks = ",".join("?" * len(part))
                by_key = {keys[t]: t for t in part}
                rows = con.execute(
                    f"SELECT key, dim, vec FROM emb WHERE key IN ({marks})",
                    [keys[t] for t in part],
                ).fetchall()
                for key, dim, vec in rows:
                    vector = _stored_vector(dim, vec)
                    if vector is None or (expected is not None and vector.size != expected):
                        continue
                    if key in by_key:
                        found[by_key[key]] = vector
        finally:
            con.close()
        return found

    def _store(self, keys: dict[str, bytes], texts: list[str], vectors: np.ndarray) -> None:
        if not self._usable:
            return
        try:
            con = self._connect()
            try:
                with con:
                    con.execute(
                        "INSERT OR REPLACE INTO dims VALUES (?, ?)",
                        (self.name, int(vectors.shape[1])),
                    )
                    con.executemany(
                        "INSERT OR REPLACE INTO emb VALUES (?, ?, ?)",
                        [
                            (keys[t], int(v.size), v.tobytes())
                            for t, v in zip(texts, vectors, strict=True)
                        ],
                    )
            finally:
                con.close()
        except (sqlite3.Error, OSError) as exc:
            self._damaged(exc)

    def _compute(
        self,
        texts: list[str],
        keys: dict[str, bytes],
        into: dict[str, np.ndarray],
        on_batch: ProgressCallback | None,
    ) -> None:
        for start in range(0, len(texts), self.batch_size):
            part = texts[start : start + self.batch_size]
            vectors = np.asarray(self.embedder.embed(part), dtype=np.float32)
            if vectors.ndim != 2 or vectors.shape[0] != len(part):
                raise InputError(
                    f"the embedder returned an array of shape {vectors.shape} for "
                    f"{len(part)} texts",
                    field="embedder",
                    value=self.name,
                )
            self._store(keys, part, vectors)
            for t, v in zip(part, vectors, strict=True):
                into[t] = v
            if on_batch is not None:
                on_batch(len(part))

    def embed(self, texts: Sequence[str], on_batch: ProgressCallback | None = None) -> np.ndarray:
        """Embed ``texts`` (duplicates embedded once); returns ``(len(texts), p)`` float32.

        ``on_batch(k)`` is called with the number of texts done after each cache lookup and
        each embedded batch. Raises InputError for a text that is not a string or an embedder
        that returns the wrong shape; never for a damaged cache (see the class).
        """
        _check_texts(texts)
        unique = list(dict.fromkeys(texts))
        keys = {t: self._key(t) for t in unique}
        cached: dict[str, np.ndarray] = {}
        if self._usable and unique:
            try:
                cached = self._lookup(keys)
            except (sqlite3.Error, OSError) as exc:
                self._damaged(exc)
        fresh: dict[str, np.ndarray] = {}
        missing = [t for t in unique if t not in cached]
        self.hits += len(unique) - len(missing)
        self.misses += len(missing)
        if on_batch is not None and len(unique) > len(missing):
            on_batch(len(unique) - len(missing))
        self._compute(missing, keys, fresh, on_batch)
        # A cached vector of another length than the embedder gives now is stale (another
        # model saved under the same name, a tampered row): recompute it, never mix lengths.
        dims = {v.size for v in fresh.values()}
        cached_dims = {v.size for v in cached.values()}
        if dims:
            stale = [t for t, v in cached.items() if v.size not in dims]
        else:
            stale = list(cached) if len(cached_dims) > 1 else []
        if stale:
            _log.warning(
                "embedding cache %s: %d vector(s) of the wrong length; recomputed",
                self.path,
                len(stale),
            )
            self._compute(stale, keys, fresh, None)
        vectors = {**cached, **fresh}
        if len({v.size for v in vectors.values()}) > 1:
            raise InputError(
                "the embedder returned vectors of different lengths",
                field="embedder",
                value=self.name,
            )
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        return np.stack([vectors[t] for t in texts])


def _stored_vector(dim: object, blob: object) -> np.ndarray | None:
    """A cached row's vector, or None when the row is damaged (wrong type, length or values)."""
    if not isinstance(blob, bytes) or isinstance(dim, bool) or not isinstance(dim, int):
        return None
    if dim < 1 or len(blob) != 4 * dim:
        return None
    vector = np.frombuffer(blob, dtype=np.float32)
    return vector if np.isfinite(vector).all() else None


# A hub model id: "name" or "owner/name" (letters, digits, "-", "_", ".").
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?")


def check_embedder_name(model: str) -> None:
    """Refuse, before anything is loaded, a sentence-transformers ``model`` that cannot be
    found: an existing path that is not a model folder, a path that does not exist, or (with
    ``HF_HUB_OFFLINE`` set) a hub name that is not in the local cache.

    Raises InputError (field ``embedder``).
    """
    if not isinstance(model, str) or not model.strip():
        raise InputError("must name an embedder", field="embedder", value=model)
    if model in (BUNDLED_EMBEDDER, "hashing"):
        return
    path = Path(model).expanduser()
    if path.exists():
        if not path.is_dir():
            raise InputError(
                "is a file, not a sentence-transformers model folder", field="embedder", value=model
            )
        if not any((path / f).is_file() for f in ("modules.json", "config.json")):
            raise InputError(
                "not a sentence-transformers model folder (no modules.json or config.json)",
                field="embedder",
                value=model,
            )
        return
    if model.startswith(("/", ".", "~")) or "\\" in model or not _HUB_ID.fullmatch(model):
        raise InputError(
            "no such folder, and not a hub model name; use 'bundled', 'hashing', a model "
            "folder or a hub name",
            field="embedder",
            value=model,
        )
    if hub_offline():
        from huggingface_hub import try_to_load_from_cache

        # sentence-transformers also tries "sentence-transformers/<name>" for a bare name.
        names = [model] if "/" in model else [model, f"sentence-transformers/{model}"]
        if not any(isinstance(try_to_load_from_cache(n, "config.json"), str) for n in names):
            raise InputError(
                "not a folder, and not in the local hub cache (HF_HUB_OFFLINE is set, so it "
                "cannot be downloaded)",
                field="embedder",
                value=model,
            )


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

    Raises InputError, before loading anything, for an empty name, a URL that is not http(s),
    or a sentence-transformers model that cannot be found (see ``check_embedder_name``).
    """
    embedder: Embedder
    if url is not None:
        if not isinstance(url, str) or not re.match(r"https?://[^\s/]+", url):
            raise InputError(
                "must be an http:// or https:// URL, e.g. http://localhost:8000/v1",
                field="embedding_url",
                value=url,
            )
        if not isinstance(model, str) or not model.strip():
            raise InputError("must name the endpoint's model", field="embedder", value=model)
        embedder = OpenAIEmbedder(url, model)
    elif model == "hashing":
        return HashingEmbedder()  # as fast as a cache lookup: never cached
    else:
        check_embedder_name(model)
        embedder = SentenceTransformerEmbedder(model)
    if cache is False:
        return embedder
    return CachedEmbedder(embedder, None if cache is True else cache)
