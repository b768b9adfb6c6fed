"""What a model is and how it decodes: the one sampling type, generation settings, model specs.

Torch-free: configs, the engine and the analyses use these without loading a model.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from pydantic import Field, field_validator

from ..bundled import BUNDLED_MODEL
from ..config import Strict, read_yaml, validate_model
from ..errors import InputError


def check_prompts(prompts: Sequence[str], field: str = "prompts") -> None:
    """Raise InputError for a prompt that is not non-empty text."""
    for i, p in enumerate(prompts):
        if not isinstance(p, str) or not p.strip():
            raise InputError("every prompt must be non-empty text", field=f"{field}[{i}]", value=p)


class Sampling(Strict):
    """Decoding settings: with ``do_sample``, temperature + top-p + top-k (pure temperature
    sampling wanders off-language on small models); without it, greedy.

    Parameters
    ----------
    do_sample : bool, default=True
    temperature : float, default=0.7
    top_p : float, default=0.9
    top_k : int, default=50
    max_new_tokens : int, default=48
        Answer length cap, in tokens.
    """

    do_sample: bool = True
    temperature: float = Field(0.7, gt=0)
    top_p: float = Field(0.9, gt=0, le=1)
    top_k: int = Field(50, ge=0)
    max_new_tokens: int = Field(48, ge=1)

    def decoding(self) -> Sampling:
        """Only the decoding settings (a subclass's extra fields dropped)."""
        return Sampling(**{k: getattr(self, k) for k in Sampling.model_fields})


GREEDY = Sampling(do_sample=False)


class GenerationConfig(Sampling):
    """How every model of a collection answers: decoding, replicates, batching, dtype."""

    replicates: int = Field(1, ge=1)
    batch_size: int = Field(64, ge=1)
    dtype: str = "auto"


class ModelSpec(Strict):
    """One model of a collection: backend, weights, system prompt, sampling seed, labels."""

    name: str = Field(min_length=1)
    backend: str = "hf"
    model: str = BUNDLED_MODEL
    system_prompt: str | None = None
    prompt_format: str = "chat"
    seed: int = 0
    labels: dict[str, str | int | float] = Field(default_factory=dict)

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

        backends.check(v)
        return v


class CompareConfig(Strict):
    """A collection of models to compare on a prompt set (``perspectives compare models.yaml``)."""

    prompts: str | list[str]
    models: list[ModelSpec] = Field(min_length=2)
    generation: GenerationConfig = Field(default_factory=GenerationConfig)

    @field_validator("models")
    @classmethod
    def _unique_names(cls, v: list[ModelSpec]) -> list[ModelSpec]:
        names = [m.name for m in v]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"model names must be unique; repeated: {dup}")
        return v


def load_compare_config(path: str | os.PathLike) -> CompareConfig:
    """Read and validate a comparison YAML. Relative prompt paths resolve against its folder.

    Raises ConfigError naming the file and the offending key.
    """
    p = Path(path)
    cfg = validate_model(CompareConfig, read_yaml(p), str(p))
    if isinstance(cfg.prompts, str):
        candidate = p.parent / cfg.prompts
        if candidate.exists():
            cfg.prompts = str(candidate)
    return cfg
