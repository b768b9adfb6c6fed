"""Validated configuration of a comparison of models (YAML -> pydantic)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .bundled import BUNDLED_MODEL
from .errors import InputError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class GenerationConfig(_Strict):
    """How every model answers: length, decoding, replicates, batching."""

    max_new_tokens: int = Field(48, ge=1)
    do_sample: bool = True
    temperature: float = Field(0.7, gt=0)
    top_p: float = Field(0.9, gt=0, le=1)
    top_k: int = Field(50, ge=0)
    replicates: int = Field(1, ge=1)
    batch_size: int = Field(64, ge=1)
    dtype: str = "auto"


class ModelSpec(_Strict):
    """One model of the collection: weights, optional system prompt, sampling seed, labels."""

    name: str = Field(min_length=1)
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


class CompareConfig(_Strict):
    """A collection of models to compare on a prompt set."""

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


def read_yaml(path: str | os.PathLike) -> Any:
    """Parse a YAML file; raises InputError naming the file when missing or invalid."""
    p = Path(path)
    if not p.exists():
        raise InputError("file not found", source=str(p))
    try:
        return yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise InputError(f"not valid YAML: {exc}", source=str(p)) from None


def validate_model(model: type[BaseModel], raw: Any, label: str) -> Any:
    """Validate a mapping with a pydantic model; the first error names ``label`` and the key."""
    if not isinstance(raw, dict):
        raise InputError("expected a mapping at the top level", source=label)
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        key = ".".join(str(x) for x in err["loc"]) or "(top level)"
        raise InputError(err["msg"], source=label, field=key, value=err.get("input")) from None


def load_compare_config(path: str | os.PathLike) -> CompareConfig:
    """Read and validate a comparison YAML. Relative prompt paths resolve against its folder.

    Raises InputError naming the file and the offending key.
    """
    p = Path(path)
    cfg = validate_model(CompareConfig, read_yaml(p), str(p))
    if isinstance(cfg.prompts, str):
        candidate = p.parent / cfg.prompts
        if candidate.exists():
            cfg.prompts = str(candidate)
    return cfg
