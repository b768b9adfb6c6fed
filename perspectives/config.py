"""Reading and validating configs: YAML files into strict pydantic models, with clear errors."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from .errors import ConfigError, PerspectivesError


class Strict(BaseModel):
    """Base of every config model: unknown keys are errors (a typo is never ignored) and
    values are never coerced (``"3"`` is no int, ``1`` no bool, ``2.0`` no int; an int is
    a float)."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


# YAML 1.1 (PyYAML) reads 1e-4 as a string; YAML 1.2, and every user, reads a number.
_FLOAT = re.compile(
    r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
    |\.[0-9_]+(?:[eE][-+][0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""",
    re.X,
)


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, but a key given twice in one mapping is an error: the default
    keeps the last silently, so an edit at the top of a file could be undone at its end."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, list | dict):
                continue  # an unhashable key: PyYAML's own error follows
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"the key {key!r} is given twice", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep)


# YAML 1.1 (PyYAML) reads 010 as 8 and 1:30 as 90; YAML 1.2 reads 10 and a string.
_INT = re.compile(r"^(?:[-+]?[0-9][0-9_]*|0o[0-7_]+|0x[0-9a-fA-F_]+)$")


def _construct_int(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> int:
    text = loader.construct_scalar(node).replace("_", "")
    base = {"0o": 8, "0x": 16}.get(text[:2], 10)
    try:
        return int(text[2:] if base != 10 else text, base)
    except ValueError:  # an explicit !!int tag, or digits only underscores ("0x_")
        raise yaml.constructor.ConstructorError(
            None, None, f"{text!r} is not an integer", node.start_mark
        ) from None


_UniqueKeyLoader.yaml_implicit_resolvers = {
    k: [
        (tag, rx)
        for tag, rx in v
        if tag not in ("tag:yaml.org,2002:float", "tag:yaml.org,2002:int")
    ]
    for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_UniqueKeyLoader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT, list("-+0123456789."))
_UniqueKeyLoader.add_implicit_resolver("tag:yaml.org,2002:int", _INT, list("-+0123456789"))
_UniqueKeyLoader.add_constructor("tag:yaml.org,2002:int", _construct_int)


class _QuotingDumper(yaml.SafeDumper):
    """PyYAML's safe dumper, quoting every string that either YAML 1.1 (``yaml.safe_load``)
    or ``parse_yaml`` would read as a number ("08", "1e5", "1:30"): a config written out
    reads back as it was, by both."""


_QuotingDumper.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT, list("-+0123456789."))
_QuotingDumper.add_implicit_resolver("tag:yaml.org,2002:int", _INT, list("-+0123456789"))


def dump_yaml(data: Any) -> str:
    """``data`` as YAML text, keys in their order, that ``parse_yaml`` and ``yaml.safe_load``
    both read back equal to ``data``."""
    return yaml.dump(data, Dumper=_QuotingDumper, sort_keys=False, allow_unicode=False)


def parse_yaml(text: str, source: str) -> Any:
    """Parse YAML text; raises ConfigError naming ``source`` when invalid (a key given twice
    included)."""
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.YAMLError as exc:
        raise ConfigError(f"not valid YAML: {_yaml_problem(exc)}", source=source) from None


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """The problem and where it is, by line and column (PyYAML's own text names the source
    "<unicode string>" and repeats the offending lines)."""
    if not isinstance(exc, yaml.MarkedYAMLError) or exc.problem_mark is None:
        return " ".join(str(exc).split())
    mark = exc.problem_mark
    text = f"line {mark.line + 1}, column {mark.column + 1}: {exc.problem}"
    if exc.context and exc.context_mark is not None:
        where = exc.context_mark
        text += f" ({exc.context} started on line {where.line + 1}, column {where.column + 1})"
    elif exc.context:
        text += f" ({exc.context})"
    return text


def read_yaml(path: str | os.PathLike) -> Any:
    """Parse a YAML file; raises ConfigError naming the file when it is missing, not a file,
    not UTF-8 text or not valid YAML."""
    p = Path(path)
    if not p.exists():
        raise ConfigError("file not found", source=str(p))
    if not p.is_file():
        raise ConfigError("not a file", source=str(p))
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"not UTF-8 text (byte {exc.start}); save it as UTF-8", source=str(p)
        ) from None
    except OSError as exc:
        raise ConfigError(f"cannot be read: {exc.strerror}", source=str(p)) from None
    return parse_yaml(text, str(p))


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
        message = err["msg"].removeprefix("Value error, ")
        cause = (err.get("ctx") or {}).get("error")
        if isinstance(cause, PerspectivesError):  # a check of ours: its text, without its value
            message = cause.message
        if err["type"] == "union_tag_invalid":
            message = f"unknown type; one of [{err['ctx']['expected_tags']}]"
        elif err["type"] == "union_tag_not_found":
            message = "needs a 'type'"
        # A value under a key-like name may be a secret pasted by mistake, and a refused URL
        # may hold one (a password, a key in its query): no text under "api" is echoed.
        parts = key.lower().split(".")
        secret = "key" in parts[-1] or (
            "api" in parts and not isinstance(err.get("input"), int | float)
        )
        value = None if secret else err.get("input")
        raise ConfigError(message, source=label, field=key, value=value) from None


def saved_state_problem(exc: Exception) -> str:
    """What is wrong in a saved agent's settings, said without their values (pydantic's text
    repeats the input, and a saved API URL or key-like field may hold a secret)."""
    if isinstance(exc, ValidationError):
        first = exc.errors(include_input=False, include_url=False)[0]
        where = ".".join(str(k) for k in first["loc"])
        return f"{where}: {first['msg']}" if where else first["msg"]
    return str(exc)


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
