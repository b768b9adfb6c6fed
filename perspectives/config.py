"""Reading and validating configs: YAML files into strict pydantic models, with clear errors."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from .errors import ConfigError


class Strict(BaseModel):
    """Base of every config model: unknown keys are errors (a typo is never ignored)."""

    model_config = ConfigDict(extra="forbid")


def read_yaml(path: str | os.PathLike) -> Any:
    """Parse a YAML file; raises ConfigError naming the file when missing or invalid."""
    p = Path(path)
    if not p.exists():
        raise ConfigError("file not found", source=str(p))
    try:
        return yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"not valid YAML: {exc}", source=str(p)) from None


def validate_model(model: type[BaseModel], raw: Any, label: str) -> Any:
    """Validate a mapping with a pydantic model; the first error names ``label`` and the key.

    Raises ConfigError."""
    if not isinstance(raw, dict):
        raise ConfigError("expected a mapping at the top level", source=label)
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        key = ".".join(_keys(raw, err["loc"])) or "(top level)"
        message = err["msg"]
        if err["type"] == "union_tag_invalid":
            message = f"unknown type; one of [{err['ctx']['expected_tags']}]"
        elif err["type"] == "union_tag_not_found":
            message = "needs a 'type'"
        raise ConfigError(message, source=label, field=key, value=err.get("input")) from None


def _keys(raw: Any, loc: tuple) -> list[str]:
    """The keys of an error location, without the tags a discriminated union inserts (the
    ``type`` of the mapping at that point, which pydantic puts before the mapping's keys)."""
    keys: list[str] = []
    node, tag_seen = raw, False
    for item in loc:
        if isinstance(node, dict) and not tag_seen and node.get("type") == item:
            tag_seen = True
            continue
        keys.append(str(item))
        try:
            node = node[item]
        except (KeyError, IndexError, TypeError):
            node = None
        tag_seen = False
    return keys
