"""Bundled run presets (YAML configs shipped with the package), their scales and sweeps.

A preset (or any run YAML) is a run config plus, optionally:

- ``scales``: named variants (``paper``, ``cpu``), each with ``notes``, the ``reductions``
  it makes against the paper (stated in words) and ``set``: overrides of dotted keys
  (``groups.0.count: 10``, ``communication.at: 9``, or a whole mapping);
- ``default_scale``: the scale used when none is asked for;
- ``sweep``: ``seeds`` and named ``conditions``, each a ``set`` of overrides, whose grid
  (conditions x seeds) ``perspectives run --sweep`` runs.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from ...config import parse_yaml, read_yaml
from ...errors import InputError
from ...simulation.config import RunConfig, parse_run_config

PRESET_KEYS = ("scales", "default_scale", "sweep")


def preset_names() -> list[str]:
    """Names of the bundled presets."""
    folder = resources.files("perspectives.experiments.presets")
    return sorted(
        p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml")
    )


def preset_text(name: str) -> str:
    """The YAML of a bundled preset. Raises InputError for an unknown name."""
    if name not in preset_names():
        raise InputError(f"no such preset; available: {preset_names()}", field="preset", value=name)
    folder = resources.files("perspectives.experiments.presets")
    return (folder / f"{name}.yaml").read_text(encoding="utf-8")


@dataclass
class Preset:
    """A run config with its scales and sweep, before validation."""

    label: str
    raw: dict[str, Any]
    scales: dict[str, dict[str, Any]] = field(default_factory=dict)
    default_scale: str | None = None
    sweep: dict[str, Any] | None = None

    def scale_names(self) -> list[str]:
        return list(self.scales)

    def raw_config(self, scale: str | None = None, sets: dict[str, Any] | None = None) -> dict:
        """The config mapping at ``scale`` (default: the preset's) with ``sets`` applied."""
        raw = copy.deepcopy(self.raw)
        scale = scale or self.default_scale
        if scale is not None:
            if scale not in self.scales:
                raise InputError(
                    f"no such scale; this config has {self.scale_names() or 'none'}",
                    source=self.label,
                    field="scale",
                    value=scale,
                )
            apply_overrides(raw, self.scales[scale].get("set") or {}, self.label)
        apply_overrides(raw, sets or {}, self.label)
        return raw

    def config(self, scale: str | None = None, sets: dict[str, Any] | None = None) -> RunConfig:
        """The validated run config at ``scale`` with ``sets`` applied."""
        where = self.label if scale is None else f"{self.label} (scale {scale})"
        return parse_run_config(self.raw_config(scale, sets), where)


def load_preset(source: str) -> Preset:
    """A preset name or a YAML file, split into config, scales and sweep."""
    if source in preset_names():
        raw, label = parse_yaml(preset_text(source), source), f"preset {source!r}"
    elif Path(source).suffix.lower() in (".yaml", ".yml") or Path(source).exists():
        raw, label = read_yaml(source), str(source)
    else:
        raise InputError(
            f"neither a preset ({', '.join(preset_names())}) nor a YAML file",
            field="config",
            value=source,
        )
    if not isinstance(raw, dict):
        raise InputError("a config must be a mapping", source=label)
    scales = raw.pop("scales", None) or {}
    default_scale = raw.pop("default_scale", None)
    sweep = raw.pop("sweep", None)
    if not isinstance(scales, dict) or not all(isinstance(v, dict) for v in scales.values()):
        raise InputError("scales must map names to mappings", source=label, field="scales")
    if default_scale is not None and default_scale not in scales:
        raise InputError(
            f"not one of the scales {list(scales)}",
            source=label,
            field="default_scale",
            value=default_scale,
        )
    if sweep is not None:
        _check_sweep(sweep, label)
    return Preset(label, raw, scales, default_scale, sweep)


def resolve_config(source: str, scale: str | None = None) -> RunConfig:
    """A validated run config from a preset name or a YAML file, at ``scale``."""
    return load_preset(source).config(scale)


def apply_overrides(raw: dict, sets: dict[str, Any], label: str = "config") -> dict:
    """Set dotted keys of ``raw`` in place (``a.b.0.c``: list items by index); returns it."""
    for key, value in sets.items():
        parts = str(key).split(".")
        node: Any = raw
        for i, part in enumerate(parts[:-1]):
            node = _child(node, part, ".".join(parts[: i + 1]), label)
        last = parts[-1]
        if isinstance(node, list):
            if not last.isdecimal() or int(last) >= len(node):
                raise InputError("no such list item", source=label, field=key, value=last)
            node[int(last)] = copy.deepcopy(value)
        elif isinstance(node, dict):
            node[last] = copy.deepcopy(value)
        else:
            raise InputError("cannot set a key inside a plain value", source=label, field=key)
    return raw


def _child(node: Any, part: str, path: str, label: str) -> Any:
    if isinstance(node, list):
        if not part.isdecimal() or int(part) >= len(node):
            raise InputError("no such list item", source=label, field=path, value=part)
        return node[int(part)]
    if isinstance(node, dict):
        return node.setdefault(part, {})
    raise InputError("cannot set a key inside a plain value", source=label, field=path)


def _check_sweep(sweep: Any, label: str) -> None:
    if not isinstance(sweep, dict):
        raise InputError("sweep must be a mapping", source=label, field="sweep")
    seeds = sweep.get("seeds", [0])
    if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) for s in seeds):
        raise InputError("a list of integers", source=label, field="sweep.seeds", value=seeds)
    if any(isinstance(s, bool) for s in seeds) or len(set(seeds)) != len(seeds):
        # Two systems of one seed would share a folder and overwrite each other.
        raise InputError(
            "each seed once, as an integer", source=label, field="sweep.seeds", value=seeds
        )
    conditions = sweep.get("conditions")
    if not isinstance(conditions, list) or not conditions:
        raise InputError("a non-empty list", source=label, field="sweep.conditions")
    names = []
    for i, cond in enumerate(conditions):
        if not isinstance(cond, dict) or not isinstance(cond.get("name"), str):
            raise InputError(
                "each condition needs a name", source=label, field=f"sweep.conditions[{i}]"
            )
        name = cond["name"]
        # Each condition's runs go in OUT/<name>/ ("a/b": a folder in a folder), inside OUT.
        parts = name.split("/")
        if (
            any(p.strip() in ("", ".", "..") for p in parts)
            or any(c in name for c in "\\\0")
            or name != name.strip()
        ):
            raise InputError(
                "a condition's name must be a folder name inside the sweep's folder (no empty, "
                "'.' or '..' part, no backslash, no surrounding spaces)",
                source=label,
                field=f"sweep.conditions[{i}].name",
                value=name,
            )
        names.append(name)
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise InputError("condition names must be unique", source=label, value=dup)
