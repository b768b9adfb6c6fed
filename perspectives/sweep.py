"""Sweeps: a preset's grid of conditions x seeds, each system in its own run folder.

Layout: ``OUT/sweep.json`` (the plan and every system's status) and ``OUT/<condition>/seed-<s>/``
(ordinary run folders). Running a sweep again skips finished systems and continues interrupted
ones; a system that fails is recorded with its error and the others still run. A finished
system's model weights (``agents/``, ``checkpoints/``: hundreds of MB per model) are removed
unless kept: the analyses need only its tables and embeddings.
"""

from __future__ import annotations

import json
import shutil
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .errors import InputError
from .presets import Preset
from .runconfig import RunConfig, parse_run_config
from .store import write_json

SWEEP_FILE = "sweep.json"


@dataclass
class SweepSystem:
    """One system of a sweep: a condition at a seed, and where it runs."""

    condition: str
    seed: int
    cfg: RunConfig
    folder: Path


def plan_sweep(
    preset: Preset,
    out: str | Path,
    scale: str | None = None,
    seeds: list[int] | None = None,
    sets: dict | None = None,
) -> list[SweepSystem]:
    """Every (condition, seed) system of ``preset``'s sweep, validated before any work.
    ``sets``: overrides applied to every system (a condition's own settings win).

    Raises InputError when the preset has no sweep or a condition's config is invalid.
    """
    if preset.sweep is None:
        raise InputError("this config has no sweep section", source=preset.label, field="sweep")
    out = Path(out)
    seeds = list(seeds if seeds is not None else preset.sweep.get("seeds", [0]))
    systems = []
    # Seed-major: each seed's conditions finish together (a comparable set early on), and
    # they share the seed's initial models (cached).
    for seed in seeds:
        for cond in preset.sweep["conditions"]:
            raw = preset.raw_config(scale, {**(sets or {}), **(cond.get("set") or {})})
            raw["seed"] = seed
            raw["name"] = f"{raw.get('name', 'run')}-{cond['name']}-seed{seed}"
            raw.pop("output", None)
            label = f"{preset.label}, condition {cond['name']!r}, seed {seed}"
            cfg = parse_run_config(raw, label)
            systems.append(
                SweepSystem(cond["name"], seed, cfg, out / cond["name"] / f"seed-{seed}")
            )
    return systems


def system_done(system: SweepSystem) -> bool:
    """Whether the system's run folder holds its last step."""
    p = system.folder / "progress.json"
    if not p.exists():
        return False
    return int(json.loads(p.read_text())["last_complete_step"]) >= system.cfg.steps


def read_sweep(out: str | Path) -> dict:
    """The ``sweep.json`` of a sweep folder; raises InputError if it is not one."""
    p = Path(out) / SWEEP_FILE
    if not p.exists():
        raise InputError("not a sweep folder (no sweep.json)", source=str(out))
    return json.loads(p.read_text())


def run_sweep(
    systems: list[SweepSystem],
    out: str | Path,
    *,
    preset: str,
    scale: str | None,
    run_system: Callable[[SweepSystem], None],
    on_status: Callable[[SweepSystem, str, str | None], None] | None = None,
    keep_weights: bool = False,
) -> dict:
    """Run every unfinished system with ``run_system``; returns the final status record.

    Failures (any exception) are recorded in ``sweep.json`` and reported through
    ``on_status``; the remaining systems still run. KeyboardInterrupt stops the sweep (the
    interrupted system resumes next time).
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    # Systems of an earlier invocation that this one does not run (e.g. other seeds) stay listed.
    earlier = read_sweep(out)["systems"] if (out / SWEEP_FILE).exists() else []
    planned = {(s.condition, s.seed) for s in systems}
    kept = [e for e in earlier if (e["condition"], e["seed"]) not in planned]
    entries = [
        {
            "condition": s.condition,
            "seed": s.seed,
            "folder": str(s.folder.relative_to(out)),
            "status": "done" if system_done(s) else "pending",
            "error": None,
        }
        for s in systems
    ]
    record = {
        "preset": preset,
        "scale": scale,
        "conditions": list(dict.fromkeys([e["condition"] for e in earlier + entries])),
        "seeds": sorted({e["seed"] for e in earlier + entries}),
        "systems": kept + entries,
    }
    write_json(out / SWEEP_FILE, record)
    for system, entry in zip(systems, entries, strict=True):
        if entry["status"] == "done":
            if on_status is not None:
                on_status(system, "skipped (finished)", None)
            continue
        entry["status"] = "running"
        write_json(out / SWEEP_FILE, record)
        if on_status is not None:
            on_status(system, "running", None)
        try:
            run_system(system)
        except KeyboardInterrupt:
            entry["status"] = "interrupted"
            write_json(out / SWEEP_FILE, record)
            raise
        except Exception as exc:  # noqa: BLE001 - one failed system must not stop the sweep
            entry["status"] = "failed"
            entry["error"] = f"{exc.__class__.__name__}: {exc}"
            entry["traceback"] = traceback.format_exc(limit=8)
        else:
            entry["status"] = "done"
            if not keep_weights:
                for sub in ("agents", "checkpoints"):
                    shutil.rmtree(system.folder / sub, ignore_errors=True)
        write_json(out / SWEEP_FILE, record)
        if on_status is not None:
            on_status(system, entry["status"], entry["error"])
    return record
