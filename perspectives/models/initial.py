"""Initial perspectives: models fine-tuned on their own samples, cached by content.

In the paper every initial model is the base model fine-tuned (3 epochs, lr 5e-5) on its own
random sample of a topic. Fine-tuning is the slow part of setting up a system, so each result
is cached under the hash of everything that determines it (base model, pairs, hyper-parameters,
format, system prompt, seed, and the compute path: device, training dtype, and threads in
bfloat16 on a CPU): re-running a preset reuses it at once. Entries are written atomically, so
an interrupted ``init`` leaves no half-written model behind.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..bundled import BUNDLED_MODEL, bundled_gguf, cache_dir, cache_lock
from ..data.banks import sample_pairs
from ..store import file_lock
from .contract import Agent, AgentSpec
from .registry import load_agent, make_agent
from .update import UpdateConfig

# 2: the compute path is part of the key (a model fine-tuned under bfloat16 autocast was
# served to float32 runs, which then differed from the same run on a float32 machine).
CACHE_VERSION = 2
INIT_UPDATE = {"epochs": 3, "lr": 5e-5, "batch_size": 8}  # the paper's initial fine-tuning


@dataclass
class InitialModel:
    """One initial model: a name, its training pairs and how to fine-tune on them."""

    name: str
    pairs: list[tuple[str, str]]
    model: str = BUNDLED_MODEL
    backend: str = "hf"
    update: dict = field(default_factory=lambda: dict(INIT_UPDATE))
    prompt_format: str = "chat"
    system_prompt: str | None = None
    seed: int = 0


def model_identity(model: str, backend: str = "hf") -> str:
    """A string that changes when the base model's weights change."""
    if backend != "hf":
        return f"{backend}:{model}"
    from .hf import resolve_model_path  # loads torch: only for transformers models

    if model == BUNDLED_MODEL:
        gguf = bundled_gguf()
        return f"bundled:{gguf.name}:{gguf.stat().st_size}"
    path = Path(resolve_model_path(model))
    if path.exists():
        files = sorted(path.glob("*.safetensors")) + sorted(path.glob("*.bin"))
        sig = [(f.name, f.stat().st_size, int(f.stat().st_mtime)) for f in files]
        return f"path:{path.resolve()}:{sig}"
    return f"hub:{model}"


def cache_key(spec: InitialModel) -> str:
    """Content hash of everything that determines the fine-tuned model."""
    payload = {
        "version": CACHE_VERSION,
        "model": model_identity(spec.model, spec.backend),
        "pairs": [list(p) for p in spec.pairs],
        "update": UpdateConfig(**spec.update).stable_dump(),
        "prompt_format": spec.prompt_format,
        "system_prompt": spec.system_prompt,
        "seed": spec.seed,
        "compute": compute_path(spec),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:24]


def compute_path(spec: InitialModel) -> str | None:
    """How ``spec``'s fine-tune computes here, ``"<device type>:<training dtype>"`` (the
    chosen device and precision, ``models.device``), with ``:<n> threads`` for bfloat16 on a
    CPU, whose numbers depend on the thread count (float32's did not: the same tables with
    one thread and two); None for a backend that is not fine-tuned by torch."""
    if spec.backend != "hf":
        return None
    import torch

    from .device import current_device
    from .training import _use_bf16

    device = current_device()
    if not _use_bf16(UpdateConfig(**spec.update).mixed_precision, device):
        return f"{device.type}:float32"
    if device.type == "cpu":
        return f"cpu:bfloat16:{torch.get_num_threads()} threads"
    return f"{device.type}:bfloat16"


def initial_cache_dir() -> Path:
    return cache_dir() / "initial"


def initial_agent(
    spec: InitialModel,
    *,
    cache: Path | None = None,
    wait: bool = True,
    state_dir: Path | None = None,
) -> tuple[Agent, bool]:
    """The fine-tuned initial agent for ``spec`` and whether it came from the cache; it keeps
    its state in ``state_dir`` from now on (as ``load_agent``).

    On a miss, fine-tunes a fresh agent on ``spec.pairs`` and stores it atomically. Another
    process making the same model is waited for, or with ``wait=False`` raises
    BlockingIOError at once (the caller can make its other models first).
    """
    root = cache or initial_cache_dir()
    entry = root / cache_key(spec)
    # Processes that need the same model (sweeps side by side) take turns: the first
    # fine-tunes it, the others then find it in the cache.
    with file_lock(cache_lock(f"initial-{entry.name}"), wait=wait):
        # Whoever makes this entry holds this lock: any work folder of it (or half-written
        # entry) now is the leftover of a process killed mid-fine-tune, a full weights copy.
        for stale in (*root.glob(f".work-{entry.name}-*"), *root.glob(f".{entry.name}.*.tmp")):
            shutil.rmtree(stale, ignore_errors=True)
        if (entry / "agent.json").exists():
            agent = load_agent(entry, state_dir=state_dir)
            agent.name = spec.name
            return agent, True
        work = root / f".work-{entry.name}-{os.getpid()}"
        agent = make_agent(
            AgentSpec(
                spec.name,
                spec.model,
                backend=spec.backend,
                system_prompt=spec.system_prompt,
                prompt_format=spec.prompt_format,
                update=UpdateConfig(**spec.update),
                seed=spec.seed,
            ),
            state_dir=work,
        )
        try:
            agent.learn(spec.pairs, seed=spec.seed)
            agent.save(entry)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    loaded = load_agent(entry, state_dir=state_dir)
    loaded.name = spec.name
    return loaded, False


def population_specs(
    bank: pd.DataFrame,
    n_models: int,
    sample_size: int,
    *,
    seed: int = 0,
    prefix: str = "model",
    **kwargs,
) -> list[InitialModel]:
    """``n_models`` specs, each with its own seeded sample of ``sample_size`` pairs of ``bank``
    (the paper's CS1: 25 models, 200 of 400 pairs each)."""
    rng = np.random.default_rng(seed)
    return [
        InitialModel(
            name=f"{prefix}-{i + 1}",
            pairs=sample_pairs(bank, sample_size, rng),
            seed=seed * 1000 + i,
            **kwargs,
        )
        for i in range(n_models)
    ]


def init_population(
    specs: Sequence[InitialModel],
    *,
    cache: Path | None = None,
    on_model: Callable[[str, bool], None] | None = None,
) -> list[Agent]:
    """Fine-tune (or load from the cache) every initial model; ``on_model(name, cached)`` is
    called after each."""
    agents = []
    for spec in specs:
        agent, cached = initial_agent(spec, cache=cache)
        agents.append(agent)
        if on_model is not None:
            on_model(spec.name, cached)
    return agents
