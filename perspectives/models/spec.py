"""What a model is and how it decodes: the one sampling type, generation settings, model specs.

Torch-free: configs, the engine and the analyses use these without loading a model.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

from pydantic import Field, ValidationInfo, field_validator, model_validator

from ..bundled import BUNDLED_MODEL
from ..config import Strict, read_yaml, validate_model
from ..errors import ConfigError, InputError


def check_prompts(prompts: Sequence[str], field: str = "prompts") -> None:
    """Raise InputError for a prompt that is not non-empty text."""
    for i, p in enumerate(prompts):
        if not isinstance(p, str) or not p.strip():
            raise InputError("every prompt must be non-empty text", field=f"{field}[{i}]", value=p)


ROLES = ("system", "user", "assistant")


def check_conversations(conversations: Sequence[list[dict[str, str]]]) -> None:
    """Raise InputError for a conversation that is not a list of ``{"role", "content"}``
    messages ending with a non-empty user turn."""
    for i, conv in enumerate(conversations):
        where = f"conversations[{i}]"
        if not isinstance(conv, list) or not conv:
            raise InputError("must be a non-empty list of messages", field=where, value=conv)
        for j, m in enumerate(conv):
            if (
                not isinstance(m, dict)
                or m.get("role") not in ROLES
                or not isinstance(m.get("content"), str)
            ):
                raise InputError(
                    f"a message is {{'role': one of {list(ROLES)}, 'content': text}}",
                    field=f"{where}[{j}]",
                    value=m,
                )
        if conv[-1]["role"] != "user" or not conv[-1]["content"].strip():
            raise InputError("must end with a non-empty user turn", field=where, value=conv[-1])


# Answer length cap: longer than any answer a perspective space is built from, and short
# enough that a typo (100000000) is refused instead of generating for hours.
MAX_NEW_TOKENS = 8192
MAX_TEMPERATURE = 100.0
MAX_REPLICATES = 1000
MAX_BATCH_SIZE = 4096
DTYPES = ("auto", "float32", "bfloat16", "float16")
# Columns of the responses and perspectives tables a label would overwrite; ``z1``, ``z2``...
# (the coordinates) too.
RESERVED_LABELS = ("model", "prompt_id", "prompt", "replicate", "response", "time")
_COORDINATE = re.compile(r"z\d+")


def _number(value: object) -> object:
    """Refuse what pydantic would quietly turn into a number: ``true`` is not 1, ``"0.7"``
    (a quoted YAML value) is text."""
    if isinstance(value, bool):
        raise ValueError("must be a number, not a boolean")
    if isinstance(value, str):
        raise ValueError("must be a number, not text")
    return value


class Sampling(Strict):
    """Decoding settings: with ``do_sample``, temperature + top-p + top-k (pure temperature
    sampling wanders off-language on small models); without it, greedy.

    Parameters
    ----------
    do_sample : bool, default=True
    temperature : float, default=0.7
        In (0, 100].
    top_p : float, default=0.9
        In (0, 1].
    top_k : int, default=50
        0 (off) or more.
    max_new_tokens : int, default=48
        Answer length cap, in tokens: 1 to MAX_NEW_TOKENS (8192).
    """

    do_sample: bool = True
    temperature: float = Field(0.7, gt=0, le=MAX_TEMPERATURE, allow_inf_nan=False)
    top_p: float = Field(0.9, gt=0, le=1, allow_inf_nan=False)
    top_k: int = Field(50, ge=0)
    max_new_tokens: int = Field(48, ge=1, le=MAX_NEW_TOKENS)

    @field_validator("do_sample", mode="before")
    @classmethod
    def _boolean(cls, v: object) -> object:
        if not isinstance(v, bool):
            raise ValueError("must be true or false")
        return v

    @field_validator("temperature", "top_p", "top_k", "max_new_tokens", mode="before")
    @classmethod
    def _numbers(cls, v: object) -> object:
        return _number(v)

    def decoding(self) -> Sampling:
        """Only the decoding settings (a subclass's extra fields dropped)."""
        return Sampling(**{k: getattr(self, k) for k in Sampling.model_fields})


GREEDY = Sampling(do_sample=False)


class GenerationConfig(Sampling):
    """How every model of a collection answers: decoding, replicates, batching, dtype.

    ``replicates``: 1 to MAX_REPLICATES; ``batch_size``: 1 to MAX_BATCH_SIZE; ``dtype``: one
    of DTYPES.
    """

    replicates: int = Field(1, ge=1, le=MAX_REPLICATES)
    batch_size: int = Field(64, ge=1, le=MAX_BATCH_SIZE)
    dtype: str = "auto"

    @field_validator("replicates", "batch_size", mode="before")
    @classmethod
    def _counts(cls, v: object) -> object:
        return _number(v)

    @field_validator("dtype")
    @classmethod
    def _dtype(cls, v: str) -> str:
        if v not in DTYPES:
            raise ValueError(f"must be one of {list(DTYPES)}")
        return v


# Query parameters that carry a credential (api_key=, key=, token=, access_token=...); whole
# names, so that max_tokens= or author= pass.
_KEY_PARAM = re.compile(
    r"(api[-_]?)?key|(access[-_]|auth[-_]|id[-_])?token|secret|password|auth(orization)?|sig",
    re.IGNORECASE,
)
# An environment variable's name (POSIX): what ``api_key_env`` holds, never the key itself.
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
MAX_CONCURRENCY = 256


class ApiSpec(Strict):
    """Where and how to reach a model behind an OpenAI-compatible API (the ``openai`` backend).

    Parameters
    ----------
    url : str
        The API's base URL, e.g. ``http://127.0.0.1:8080/v1`` (requests go to
        ``{url}/chat/completions``).
    api_key_env : str, default=None
        The *name* of the environment variable that holds the API key (e.g.
        ``OPENAI_API_KEY``); the key itself is never written to a config, run folder or log.
        None: no key (local servers).
    concurrency : int, default=4
        Requests in flight at once (1 to 256).
    timeout : float, default=120
        Seconds to wait for one response.
    max_retries : int, default=4
        Retries, with exponential backoff, after a 429, a 5xx or a connection error.
    context_tokens : int, default=2048
        The server's context length (prompt + answer), used to trim retrieved memories.
    cache : bool, default=True
        Keep responses on disk, keyed by server, model, messages, sampling and replicate, so a
        resumed run or a repeated comparison does not ask again.
    """

    url: str
    api_key_env: str | None = None
    concurrency: int = Field(4, ge=1, le=MAX_CONCURRENCY)
    timeout: float = Field(120.0, gt=0, le=86_400, allow_inf_nan=False)
    max_retries: int = Field(4, ge=0, le=20)
    context_tokens: int = Field(2048, ge=64, le=10_000_000)
    cache: bool = True

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        # The errors do not repeat the URL: it may hold a key.
        example = "e.g. http://127.0.0.1:8080/v1"
        if not re.fullmatch(r"https?://[^\s/]+(/\S*)?", v.strip()):
            raise ValueError(f"must be an http:// or https:// URL, {example}")
        try:
            parts = urlsplit(v.strip())
            port = parts.port  # reading it checks it (a number from 0 to 65535)
        except ValueError:
            raise ValueError(f"has a malformed host or port, {example}") from None
        if port == 0:
            raise ValueError(f"has port 0, where no server listens, {example}")
        if not parts.hostname:
            raise ValueError(f"names no host, {example}")
        if parts.username is not None or parts.password is not None:
            raise ValueError(
                "must not hold a user or password (it is saved with the run): give the key "
                "through api_key_env"
            )
        if any(_KEY_PARAM.fullmatch(name) for name, _ in parse_qsl(parts.query)):
            raise ValueError(
                "must not hold a key in its query (it is saved with the run): give the key "
                "through api_key_env"
            )
        return v.strip().rstrip("/")

    @field_validator("api_key_env")
    @classmethod
    def _env_name(cls, v: str | None) -> str | None:
        if v is not None and not _ENV_NAME.fullmatch(v):
            # Said without the value: it may be the key itself, pasted by mistake.
            raise ValueError(
                "must be the name of an environment variable (e.g. OPENAI_API_KEY), not a key"
            )
        return v

    @field_validator("concurrency", "timeout", "max_retries", "context_tokens", mode="before")
    @classmethod
    def _numbers(cls, v: object) -> object:
        return _number(v)


def check_api(backend: str, api: ApiSpec | None) -> None:
    """Raise ValueError when ``api`` does not fit ``backend``: the ``openai`` backend needs
    one (its ``url``); the others take none."""
    if backend == "openai" and api is None:
        raise ValueError("the openai backend needs 'api' with at least a 'url'")
    if backend != "openai" and api is not None:
        raise ValueError(f"'api' applies to the openai backend, not {backend!r}")


class ModelSpec(Strict):
    """One model of a collection: backend, weights, system prompt, sampling seed, labels.

    ``model`` is, for the ``hf`` backend, ``"bundled"``, a local folder or a hub id; for the
    ``openai`` backend, the server's name for the model, with ``api`` saying where it is.

    ``labels`` are text, numbers or booleans under names that no table column uses (not
    RESERVED_LABELS, not ``z1``, ``z2``...).
    """

    name: str = Field(min_length=1)
    backend: str = "hf"
    model: str = Field(BUNDLED_MODEL, min_length=1)
    system_prompt: str | None = None
    prompt_format: str = "chat"
    seed: int = 0
    labels: dict[str, str | bool | int | float] = Field(default_factory=dict)
    api: ApiSpec | None = None

    @model_validator(mode="after")
    def _api_fits(self) -> ModelSpec:
        check_api(self.backend, self.api)
        return self

    @field_validator("name", "model")
    @classmethod
    def _not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("must not be blank")
        return v

    @field_validator("seed", mode="before")
    @classmethod
    def _seed(cls, v: object) -> object:
        return _number(v)

    @field_validator("prompt_format")
    @classmethod
    def _format(cls, v: str) -> str:
        if v not in ("chat", "plain"):
            raise ValueError("must be 'chat' or 'plain'")
        return v

    @field_validator("backend")
    @classmethod
    def _backend(cls, v: str) -> str:
        from .registry import backends

        if v not in backends:  # said once here: backends.check's error carries the value too
            raise ValueError(f"unknown model backend; one of {backends.names()}")
        return v

    @field_validator("labels", mode="before")
    @classmethod
    def _labels(cls, v: object) -> object:
        # Before pydantic's own checks: its message for a bad value would name the first
        # member of the union ("should be a valid string"), not what is wrong.
        if not isinstance(v, dict):
            return v
        for name, value in v.items():
            if not isinstance(name, str) or not name.strip():
                raise ValueError(f"a label name must be non-blank text, not {name!r}")
            if name in RESERVED_LABELS or _COORDINATE.fullmatch(name):
                raise ValueError(
                    f"{name!r} is reserved: the written tables have a column of that name "
                    f"({', '.join(RESERVED_LABELS)}, z1, z2, ...); rename the label"
                )
            if not isinstance(value, str | bool | int | float):
                raise ValueError(
                    f"label {name!r} must be text, a number or a boolean, not "
                    f"{type(value).__name__}"
                )
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError(f"label {name!r} must be a finite number, not {value}")
        return v

    @field_validator("model")
    @classmethod
    def _local_model(cls, v: str, info: ValidationInfo) -> str:
        # A path that is not there fails at once, not after the models before it answered.
        if info.data.get("backend", "hf") == "hf" and v.startswith(("/", "./", "../", "~")):
            path = Path(v).expanduser()
            if not path.is_dir():
                raise ValueError(
                    "is a file, not a model folder" if path.exists() else "no such model folder"
                )
        return v


def _label_kind(value: object) -> str:
    if isinstance(value, bool):
        return "boolean"
    return "text" if isinstance(value, str) else "number"


class CompareConfig(Strict):
    """A collection of models to compare on a prompt set (``perspectives compare models.yaml``).

    ``prompts``: a bundled set's name, a file, or a non-empty list of distinct texts. Every
    model has the same label names, each label of one kind (text, number or boolean).
    """

    prompts: str | list[str]
    models: list[ModelSpec] = Field(min_length=2)
    generation: GenerationConfig = Field(default_factory=GenerationConfig)

    @field_validator("prompts", mode="before")
    @classmethod
    def _prompt_types(cls, v: object) -> object:
        # Before pydantic's union check, whose message would be "should be a valid string".
        if isinstance(v, list):
            for i, p in enumerate(v):
                if not isinstance(p, str):
                    raise ValueError(f"prompt {i} is not text ({type(p).__name__}: {p!r})")
        elif not isinstance(v, str):
            raise ValueError("must be a prompt set's name, a file, or a list of prompts")
        return v

    @field_validator("prompts")
    @classmethod
    def _prompts(cls, v: str | list[str]) -> str | list[str]:
        if isinstance(v, str):
            if not v.strip():
                raise ValueError("must name a prompt set or file, or list prompts")
            return v
        if not v:
            raise ValueError("the list of prompts is empty")
        for i, p in enumerate(v):
            if not p.strip():
                raise ValueError(f"prompt {i} is empty")
            if p in v[:i]:
                raise ValueError(f"prompt {i} repeats prompt {v.index(p)}: {p!r}")
        return v

    @field_validator("models")
    @classmethod
    def _unique_names(cls, v: list[ModelSpec]) -> list[ModelSpec]:
        names = [m.name for m in v]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"model names must be unique; repeated: {dup}")
        # A label one model lacks would be an empty cell; a typo ("clas") would be a column.
        first = v[0].labels
        for i, m in enumerate(v[1:], start=1):
            if set(m.labels) != set(first):
                raise ValueError(
                    f"models.{i} ({m.name!r}) has labels {sorted(m.labels)}, models.0 "
                    f"({v[0].name!r}) has {sorted(first)}; every model needs the same labels"
                )
            for name, value in m.labels.items():
                if _label_kind(value) != _label_kind(first[name]):
                    raise ValueError(
                        f"label {name!r} is {_label_kind(value)} in models.{i} ({m.name!r}) but "
                        f"{_label_kind(first[name])} in models.0; use one kind per label"
                    )
        return v


def load_compare_config(path: str | os.PathLike) -> CompareConfig:
    """Read and validate a comparison YAML. Relative prompt paths resolve against its folder.

    Raises ConfigError naming the file and the offending key (dotted, e.g.
    ``generation.max_new_tokens`` or ``models.1.labels``), or the file when it is missing, a
    folder, not UTF-8 or not YAML.
    """
    p = Path(path)
    if p.is_dir():
        raise ConfigError("is a folder, not a YAML file", source=str(p))
    try:
        raw = read_yaml(p)
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"not UTF-8 text (undecodable byte at offset {exc.start}); save it as UTF-8",
            source=str(p),
        ) from None
    except OSError as exc:
        raise ConfigError(f"cannot read the file: {exc.strerror or exc}", source=str(p)) from None
    cfg = validate_model(CompareConfig, raw, str(p))
    if isinstance(cfg.prompts, str):
        from ..data.prompts import bundled_prompt_sets

        candidate = p.parent / cfg.prompts
        if candidate.exists():
            cfg.prompts = str(candidate)
        elif cfg.prompts not in bundled_prompt_sets() and not Path(cfg.prompts).exists():
            # Named here, with the YAML that names it, before any model is loaded.
            raise ConfigError(
                f"no such file (beside the YAML or here), and not a bundled prompt set "
                f"({', '.join(bundled_prompt_sets())})",
                source=str(p),
                field="prompts",
                value=cfg.prompts,
            )
    return cfg
