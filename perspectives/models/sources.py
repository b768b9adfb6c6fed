"""Where a transformers model comes from, checked without loading it (and without torch).

A group's ``model`` is ``"bundled"``, a local folder or a hub id. A bad one is found when the
config is read, before a run folder is made, not when the first agent loads.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..bundled import BUNDLED_MODEL, hub_offline
from ..errors import BackendUnavailable, InputError


def looks_like_path(model: str) -> bool:
    """Whether ``model`` can only be a local path (a hub id is ``name`` or ``org/name``)."""
    return model.startswith((".", "/", "~")) or model.count("/") > 1 or "\\" in model


def check_hf_source(model: str) -> None:
    """Raise if ``model`` cannot be a transformers model here.

    Raises InputError for a local path that does not exist or is not a model folder (no
    ``config.json``), BackendUnavailable for a hub id that is not in the local cache when the
    hub is offline (``HF_HUB_OFFLINE``)."""
    if model == BUNDLED_MODEL:
        return
    path = Path(model).expanduser()
    if path.exists():
        if not path.is_dir() or not (path / "config.json").is_file():
            raise InputError(
                "not a transformers model folder (no config.json)", source=str(path), field="model"
            )
        return
    if looks_like_path(model) or not model.strip():
        raise InputError("no such model folder", source=model, field="model")
    if hub_offline() and not in_hub_cache(model):
        raise BackendUnavailable(
            "not found locally and no network access (HF_HUB_OFFLINE=1): give a local folder, "
            "'bundled', or a hub id already in the local cache",
            field="model",
            value=model,
        )


def is_model_folder(path: Path) -> bool:
    """Whether ``path`` holds a transformers model: a ``config.json`` naming its
    ``model_type`` or ``architectures`` (a file of that name alone is common elsewhere)."""
    try:
        config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(config, dict) and bool(
        config.get("model_type") or config.get("architectures")
    )


def in_hub_cache(repo_id: str) -> bool:
    """Whether the hub id's ``config.json`` is in the local Hugging Face cache."""
    from huggingface_hub import try_to_load_from_cache

    try:
        return isinstance(try_to_load_from_cache(repo_id, "config.json"), str)
    except Exception:  # noqa: BLE001 - an invalid repo id is simply not cached
        return False
