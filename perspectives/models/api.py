"""The ``openai`` backend: a model behind any OpenAI-compatible chat-completions server.

vLLM, Ollama, llama.cpp's server, LM Studio and OpenAI itself speak the same
``POST {url}/chat/completions``. Requests go through the official ``openai`` client (its
retries with exponential backoff on 429, 5xx and connection errors, its timeouts), a bounded
number at a time, and every response is kept in an on-disk cache keyed by (server, model,
messages, sampling, replicate), so a resumed run or a repeated comparison does not pay twice.

The API key is read from the environment variable that ``api.api_key_env`` names, when a
request is made; it is never stored, logged or put in an error message.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sqlite3
import threading
import warnings
import zlib
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from pathlib import Path

from ..bundled import cache_dir
from ..errors import BackendUnavailable, InputError
from .contract import Conversation
from .spec import ApiSpec, Sampling, check_conversations, check_prompts

_log = logging.getLogger(__name__)
# llama.cpp and vLLM say "context" in a 400 for a prompt too long; OpenAI says "maximum
# context length".
_CONTEXT_WORDS = ("context", "too long", "n_ctx", "maximum length")
# Without a tokenizer, a token is taken as this many characters (English BPE: about 4; a
# smaller figure over-counts, so a trimmed prompt fits).
CHARS_PER_TOKEN = 3


class ResponseCache:
    """Answers already given, in an SQLite file (default ``<cache_dir>/api-responses.sqlite``).

    Keys are hashes of everything that determines an answer. A file that cannot be opened or
    written is bypassed with one warning (answers are then asked again, never wrong).
    """

    def __init__(self, path: str | os.PathLike | None = None) -> None:
        self.path = Path(path) if path is not None else cache_dir() / "api-responses.sqlite"
        self._usable = True
        self._lock = threading.Lock()

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        con = sqlite3.connect(self.path, timeout=60)
        try:
            con.execute("PRAGMA journal_mode=WAL")
            con.execute("CREATE TABLE IF NOT EXISTS answers (key BLOB PRIMARY KEY, text TEXT)")
        except BaseException:
            con.close()
            raise
        return con

    def _unusable(self, exc: Exception) -> None:
        if self._usable:
            _log.warning("response cache %s is unusable (%s); asking without it", self.path, exc)
            warnings.warn(
                f"response cache {self.path} is unusable ({exc}); asking without it",
                stacklevel=3,
            )
        self._usable = False

    def get(self, keys: Sequence[bytes]) -> dict[bytes, str]:
        """The cached answers of ``keys`` (those found)."""
        if not self._usable or not keys:
            return {}
        found: dict[bytes, str] = {}
        try:
            con = self._connect()
            try:
                unique = list(dict.fromkeys(keys))
                for start in range(0, len(unique), 500):
                    part = unique[start : start + 500]
                    marks = ",".join("?" * len(part))
                    rows = con.execute(
                        f"SELECT key, text FROM answers WHERE key IN ({marks})", part
                    ).fetchall()
                    found.update({bytes(k): t for k, t in rows if isinstance(t, str)})
            finally:
                con.close()
        except (sqlite3.Error, OSError) as exc:
            self._unusable(exc)
        return found

    def put(self, key: bytes, text: str) -> None:
        """Keep one answer (committed at once: an interrupted call keeps what it got)."""
        if not self._usable:
            return
        with self._lock:
            try:
                con = self._connect()
                try:
                    with con:
                        con.execute("INSERT OR REPLACE INTO answers VALUES (?, ?)", (key, text))
                finally:
                    con.close()
            except (sqlite3.Error, OSError) as exc:
                self._unusable(exc)


def _request_seed(seed: int, replicate: int) -> int:
    return zlib.crc32(f"{seed}:{replicate}".encode()) & 0x7FFFFFFF


class OpenAIChatModel:
    """A model served by an OpenAI-compatible API (the ``openai`` backend).

    Parameters
    ----------
    model : str
        The server's name for the model (``model`` in the request).
    system_prompt : str, default=None
        Sent as the system message of every prompt given to ``answer``.
    prompt_format : str, default="chat"
        Must be ``"chat"``: the server applies the model's chat template.
    dtype, batch_size :
        Accepted for a uniform backend signature; the server decides both.
    api : ApiSpec or dict
        Where the server is and how to talk to it (``url``, ``api_key_env``, ``concurrency``,
        ``timeout``, ``max_retries``, ``context_tokens``, ``cache``).
    cache_path : path, default=None
        Another response cache file (default: the shared one in the cache folder).

    Raises
    ------
    InputError
        For a missing ``api`` or a prompt format other than ``"chat"``.

    Notes
    -----
    Sampling sends ``temperature``, ``top_p``, ``max_tokens`` and a per-replicate ``seed`` (which
    servers that honour it, such as llama.cpp's and vLLM's, use to repeat a sample); greedy
    decoding sends ``temperature`` 0. ``top_k`` is not part of the API and is not sent.
    """

    def __init__(
        self,
        model: str,
        *,
        system_prompt: str | None = None,
        prompt_format: str = "chat",
        dtype: str = "auto",
        batch_size: int = 64,
        api: ApiSpec | dict | None = None,
        cache_path: str | os.PathLike | None = None,
    ) -> None:
        if api is None:
            raise InputError("the openai backend needs 'api' with at least a 'url'", field="api")
        if prompt_format != "chat":
            raise InputError(
                "a model behind an API takes chat messages only",
                field="prompt_format",
                value=prompt_format,
            )
        self.model = model
        self.system_prompt = system_prompt
        self.prompt_format = prompt_format
        self.api = api if isinstance(api, ApiSpec) else ApiSpec(**api)
        self.cache = ResponseCache(cache_path) if self.api.cache else None
        self._client = None
        self._warned_empty = False
        self.requests = 0  # answers asked of the server (not found in the cache)

    # ----------------------------------------------------------------- the server
    @property
    def url(self) -> str:
        return self.api.url

    def _key(self) -> str:
        env = self.api.api_key_env
        if env is None:
            return "not-needed"  # local servers take any key; never the user's OPENAI_API_KEY
        key = os.environ.get(env)
        if not key:
            raise BackendUnavailable(
                f"the environment variable {env} that api.api_key_env names is not set",
                source=self.url,
                field="api.api_key_env",
            )
        return key

    def client(self):
        """The ``openai.OpenAI`` client for this server (made once)."""
        if self._client is None:
            import openai

            self._client = openai.OpenAI(
                base_url=self.url,
                api_key=self._key(),
                max_retries=self.api.max_retries,
                timeout=self.api.timeout,
            )
        return self._client

    def _failure(self, exc: Exception) -> Exception:
        """The exception (of this package) to raise for a failed request."""
        import openai

        env = self.api.api_key_env
        if isinstance(exc, openai.APIConnectionError):
            what = "timed out" if isinstance(exc, openai.APITimeoutError) else "is unreachable"
            return BackendUnavailable(
                f"the server {what} after {self.api.max_retries} retries "
                f"({exc.__cause__.__class__.__name__ if exc.__cause__ else exc})",
                source=self.url,
            )
        if isinstance(exc, openai.AuthenticationError | openai.PermissionDeniedError):
            hint = (
                f"check the key in the environment variable {env}"
                if env
                else "set api.api_key_env to the name of the environment variable holding the key"
            )
            return BackendUnavailable(
                f"the server refused the request (HTTP {exc.status_code}); {hint}", source=self.url
            )
        if isinstance(exc, openai.NotFoundError):
            return BackendUnavailable(
                f"the server has no model {self.model!r} (HTTP 404){self._served()}",
                source=self.url,
                field="model",
            )
        if isinstance(exc, openai.APIStatusError):
            message = _server_message(exc)
            if exc.status_code == 400 and any(w in message.lower() for w in _CONTEXT_WORDS):
                return InputError(
                    f"the prompt does not fit the server's context ({message}); lower "
                    "api.context_tokens to the server's context length",
                    source=self.url,
                )
            return BackendUnavailable(
                f"the server answered HTTP {exc.status_code}: {message}", source=self.url
            )
        if isinstance(exc, openai.APIResponseValidationError | ValueError):
            return BackendUnavailable(
                f"the server's response is not a chat completion ({exc})", source=self.url
            )
        return exc

    def _served(self) -> str:
        try:
            names = [m.id for m in self.client().models.list()]
        except Exception:  # noqa: BLE001 - a hint only: the 404 is the error
            return ""
        return f"; it serves {names}" if names else ""

    def _complete(self, messages: Conversation, sampling: Sampling, seed: int | None) -> str:
        import openai

        kwargs: dict = {"max_tokens": sampling.max_new_tokens}
        if sampling.do_sample:
            kwargs.update(temperature=sampling.temperature, top_p=sampling.top_p, seed=seed)
        else:
            kwargs.update(temperature=0.0)
        try:
            resp = self.client().chat.completions.create(
                model=self.model, messages=messages, **kwargs
            )
        except (openai.OpenAIError, ValueError) as exc:
            raise self._failure(exc) from None
        try:
            text = resp.choices[0].message.content
        except (AttributeError, IndexError, TypeError):
            raise BackendUnavailable(
                "the server's response has no message (not a chat completion)", source=self.url
            ) from None
        if text is None:
            text = ""
        return text.strip()

    # -------------------------------------------------------------------- answers
    def _cache_key(self, messages: Conversation, sampling: Sampling, seed: int | None) -> bytes:
        record = [self.url, self.model, messages, sampling.decoding().model_dump(), seed]
        return hashlib.sha256(json.dumps(record, sort_keys=True).encode()).digest()

    def answer(
        self,
        prompts: Sequence[str],
        sampling: Sampling | None = None,
        *,
        seed: int = 0,
        replicates: int = 1,
        on_batch: Callable[[int], None] | None = None,
    ) -> list[list[str]]:
        """Answer every prompt ``replicates`` times under the system prompt; returns
        ``answers[prompt][replicate]``. Raises InputError for an empty prompt,
        BackendUnavailable when the server cannot answer (after the retries)."""
        check_prompts(prompts)
        system = [{"role": "system", "content": self.system_prompt}] if self.system_prompt else []
        conversations = [[*system, {"role": "user", "content": p}] for p in prompts]
        return self._chat(conversations, sampling, seed, replicates, on_batch)

    def chat(
        self,
        conversations: Sequence[Conversation],
        sampling: Sampling | None = None,
        *,
        seed: int = 0,
        replicates: int = 1,
        on_batch: Callable[[int], None] | None = None,
    ) -> list[list[str]]:
        """Answer each conversation's last turn (see ``answer``); the model's own system
        prompt is not added."""
        check_conversations(conversations)
        return self._chat(list(conversations), sampling, seed, replicates, on_batch)

    def _chat(self, conversations, sampling, seed, replicates, on_batch) -> list[list[str]]:
        if replicates < 1:
            raise InputError("must be at least 1", field="replicates", value=replicates)
        sampling = (sampling or Sampling(do_sample=False)).decoding()
        # Greedy replicates are one answer: asked once.
        reps = replicates if sampling.do_sample else 1
        jobs = {}
        for i, conv in enumerate(conversations):
            for r in range(reps):
                s = _request_seed(seed, r) if sampling.do_sample else None
                jobs[(i, r)] = (conv, s, self._cache_key(conv, sampling, s))
        found = self.cache.get([k for _, _, k in jobs.values()]) if self.cache else {}
        results: dict[tuple[int, int], str] = {}
        todo: dict[bytes, list[tuple[int, int]]] = {}
        for job, (_, _, key) in jobs.items():
            if key in found:
                results[job] = found[key]
            else:
                todo.setdefault(key, []).append(job)
        if on_batch is not None and results:
            on_batch(len(results) * (replicates // reps))
        if todo:
            self._ask(jobs, todo, results, sampling, on_batch, replicates // reps)
        empty = sum(1 for key in todo if results[todo[key][0]] == "")
        if empty and not self._warned_empty:
            warnings.warn(
                f"{self.url} ({self.model}): {empty} of {len(todo)} completions were empty",
                stacklevel=3,
            )
            self._warned_empty = True
        return [
            [results[(i, r if sampling.do_sample else 0)] for r in range(replicates)]
            for i in range(len(conversations))
        ]

    def _ask(self, jobs, todo, results, sampling, on_batch, per_job) -> None:
        """Ask the server for ``todo``'s answers, ``api.concurrency`` at a time; each one is
        cached as it arrives. The first failure cancels what has not started and is raised."""
        pool = ThreadPoolExecutor(max_workers=self.api.concurrency, thread_name_prefix="api")
        try:
            futures = {
                pool.submit(self._complete, jobs[group[0]][0], sampling, jobs[group[0]][1]): key
                for key, group in todo.items()
            }
            pending = set(futures)
            while pending:
                done, pending = wait(pending, return_when=FIRST_EXCEPTION)
                for fut in done:
                    exc = fut.exception()
                    if exc is not None:
                        for other in pending:
                            other.cancel()
                        raise exc
                    key = futures[fut]
                    text = fut.result()
                    self.requests += 1
                    if self.cache is not None:
                        self.cache.put(key, text)
                    for job in todo[key]:
                        results[job] = text
                    if on_batch is not None:
                        on_batch(len(todo[key]) * per_job)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    # ---------------------------------------------------------------- context size
    @property
    def context_tokens(self) -> int:
        """The server's context length as configured (``api.context_tokens``)."""
        return self.api.context_tokens

    def count_tokens(self, text: str) -> int:
        """An upper estimate of the tokens ``text`` takes (the API has no tokenizer)."""
        return -(-len(text) // CHARS_PER_TOKEN)


def _server_message(exc) -> str:
    """The server's own error message from an ``APIStatusError``, on one line."""
    body = getattr(exc, "body", None)
    message = None
    if isinstance(body, dict):
        err = body.get("error", body)
        message = err.get("message") if isinstance(err, dict) else err
    text = str(message or getattr(exc, "message", "") or exc)
    return " ".join(text.split())[:300]
