"""Bundled run presets (YAML configs shipped with the package)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import yaml

from ..errors import InputError
from ..runconfig import RunConfig, load_run_config, parse_run_config


def preset_names() -> list[str]:
    """Names of the bundled presets."""
    folder = resources.files("perspectives.presets")
    return sorted(
        p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml")
    )


def preset_text(name: str) -> str:
    """The YAML of a bundled preset. Raises InputError for an unknown name."""
    if name not in preset_names():
        raise InputError(f"no such preset; available: {preset_names()}", field="preset", value=name)
    return (resources.files("perspectives.presets") / f"{name}.yaml").read_text(encoding="utf-8")


def resolve_config(source: str) -> RunConfig:
    """A run config from a preset name or a YAML file."""
    if source in preset_names():
        return parse_run_config(yaml.safe_load(preset_text(source)), f"preset {source!r}")
    if Path(source).suffix.lower() in (".yaml", ".yml") or Path(source).exists():
        return load_run_config(source)
    raise InputError(
        f"neither a preset ({', '.join(preset_names())}) nor a YAML file",
        field="config",
        value=source,
    )
