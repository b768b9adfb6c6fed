"""Sweeps: a preset's grid of conditions x seeds, each system in its own run folder.

Layout: ``OUT/sweep.json`` (the plan and every system's status) and ``OUT/<condition>/seed-<s>/``
(ordinary run folders). Running a sweep again skips finished systems and continues interrupted
ones; a system that fails is recorded with its error and the others still run. A finished
system's model weights (``agents/``, ``checkpoints/``: hundreds of MB per model) are removed
unless kept: the analyses need only its tables and embeddings.

Conditions of a seed that are the same system up to a step (``fork.shared_steps``: before a
disruption, say) run those steps once: the later system starts from a copy of the earlier
one's folder at that step, and continues alone.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import traceback
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ..errors import InputError
from ..simulation.config import RunConfig, parse_run_config
from ..simulation.engine import last_complete_step
from ..store import write_json
from .fork import can_fork, fork_run, shared_steps
from .presets import Preset

SWEEP_FILE = "sweep.json"


@dataclass
class SweepSystem:
    """One system of a sweep: a condition at a seed, and where it runs.

    ``source``, ``fork_step``: an earlier system of the sweep that is the same system up to
    ``fork_step``; this one starts from a copy of its folder at that step.
    ``keep_checkpoints``: the steps whose checkpoints later systems start from.
    """

    condition: str
    seed: int
    cfg: RunConfig
    folder: Path
    source: SweepSystem | None = field(default=None, repr=False)
    fork_step: int = -1
    keep_checkpoints: tuple[int, ...] = ()


def plan_sweep(
    preset: Preset,
    out: str | Path,
    scale: str | None = None,
    seeds: list[int] | None = None,
    sets: dict | None = None,
    share_steps: bool = True,
    conditions: list[str] | None = None,
) -> list[SweepSystem]:
    """Every (condition, seed) system of ``preset``'s sweep, validated before any work.
    ``sets``: overrides applied to every system (a condition's own settings win).
    ``conditions``: only these conditions of the sweep (default: all), in the sweep's order.
    ``share_steps``: each system starts from the earlier system of its seed with which it
    shares the most steps (at least one), if any (``plan_forks``).

    Raises InputError when the preset has no sweep, ``conditions`` names one it does not have,
    or a condition's config is invalid.
    """
    if preset.sweep is None:
        raise InputError("this config has no sweep section", source=preset.label, field="sweep")
    chosen = list(preset.sweep["conditions"])
    if conditions is not None:
        names = [c["name"] for c in chosen]
        for name in conditions:
            if name not in names:
                raise InputError(
                    f"no such condition in the sweep (it has: {', '.join(names)})",
                    source=preset.label,
                    field="conditions",
                    value=name,
                )
        chosen = [c for c in chosen if c["name"] in conditions]
    out = Path(out)
    seeds = list(seeds if seeds is not None else preset.sweep.get("seeds", [0]))
    systems = []
    # Seed-major: each seed's conditions finish together (a comparable set early on), and
    # they share the seed's initial models (cached).
    for seed in seeds:
        for cond in chosen:
            raw = preset.raw_config(scale, {**(sets or {}), **(cond.get("set") or {})})
            raw["seed"] = seed
            raw["name"] = f"{raw.get('name', 'run')}-{cond['name']}-seed{seed}"
            raw.pop("output", None)
            label = f"{preset.label}, condition {cond['name']!r}, seed {seed}"
            cfg = parse_run_config(raw, label)
            systems.append(
                SweepSystem(cond["name"], seed, cfg, out / cond["name"] / f"seed-{seed}")
            )
    if share_steps:
        plan_forks(systems)
    return systems


def plan_forks(systems: list[SweepSystem], min_steps: int = 1) -> None:
    """Give each system the earlier one it shares the most steps with (at least
    ``min_steps`` after t = 0) as its ``source``, and the sources the checkpoints to keep.
    A system that has already started (its folder holds a run) resumes its own steps instead,
    and one that has passed a step without keeping its checkpoint cannot give it."""
    for i, system in enumerate(systems):
        if (system.folder / "run.json").exists():
            continue
        best, step = None, min_steps - 1
        for earlier in systems[:i]:
            k = shared_steps(earlier.cfg, system.cfg)
            if k > step and (last_complete_step(earlier.folder) < k or can_fork(earlier.folder, k)):
                best, step = earlier, k
        if best is not None:
            system.source, system.fork_step = best, step
            best.keep_checkpoints = tuple(sorted({*best.keep_checkpoints, step}))


def system_done(system: SweepSystem) -> bool:
    """Whether the system's run folder holds its last step."""
    return last_complete_step(system.folder) >= system.cfg.steps


def _forked_from(system: SweepSystem, systems: list[SweepSystem]) -> dict | None:
    """The system and step the run in ``system.folder`` started from, as its run.json says."""
    p = system.folder / "run.json"
    info = json.loads(p.read_text()).get("forked_from") if p.exists() else None
    if not info:
        return None
    source = (system.folder / info["run"]).resolve()
    for s in systems:
        if s.folder.resolve() == source:
            return {"condition": s.condition, "seed": s.seed, "step": info["step"]}
    return {"run": info["run"], "step": info["step"]}


def read_sweep(out: str | Path) -> dict:
    """The ``sweep.json`` of a sweep folder; raises InputError if it is not one, or the file
    is not a sweep record."""
    p = Path(out) / SWEEP_FILE
    if not p.exists():
        raise InputError("not a sweep folder (no sweep.json)", source=str(out))
    try:
        record = json.loads(p.read_text())
    except json.JSONDecodeError as exc:
        raise InputError(f"not valid JSON ({exc.msg}, line {exc.lineno})", source=str(p)) from None
    if not isinstance(record, dict) or not isinstance(record.get("systems"), list):
        raise InputError("not a sweep record (no list of systems)", source=str(p), field="systems")
    return record


def run_sweep(
    systems: list[SweepSystem],
    out: str | Path,
    *,
    preset: str,
    scale: str | None,
    run_system: Callable[[SweepSystem], None],
    on_status: Callable[[SweepSystem, str, str | None], None] | None = None,
    keep_weights: bool = False,
    jobs: int = 1,
    on_wait: Callable[[], None] | None = None,
) -> dict:
    """Run every unfinished system with ``run_system``; returns the final status record.

    ``jobs``: how many systems run at once (``run_system`` must then be safe to call from
    several threads, e.g. by running each system in its own process: ``run_in_subprocess``).
    ``on_wait`` is called about once a second while systems run in parallel (a progress
    display). Failures (any exception) are recorded in ``sweep.json`` and reported through
    ``on_status``; the remaining systems still run. KeyboardInterrupt stops the sweep (the
    interrupted systems resume next time).
    """
    if jobs < 1:
        raise InputError("must be at least 1", field="jobs", value=jobs)
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
            **({"forked_from": f} if (f := _forked_from(s, systems)) else {}),
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
    lock = threading.Lock()
    stopping = threading.Event()
    entry_of = {id(s): e for s, e in zip(systems, entries, strict=True)}
    # Systems still to start from a source's checkpoint: the checkpoint stays until they have.
    unresolved = {id(s) for s in systems if s.source is not None}

    def update(system: SweepSystem, entry: dict, status: str, error: str | None = None) -> None:
        with lock:
            entry["status"] = status
            if error is not None:
                entry["error"] = error
                entry["traceback"] = traceback.format_exc(limit=8)
            write_json(out / SWEEP_FILE, record)
            if on_status is not None:
                on_status(system, status, error)

    def clean(system: SweepSystem) -> None:
        """Remove a finished system's weights but the checkpoints later systems still need."""
        if keep_weights or entry_of[id(system)]["status"] != "done":
            return
        needed = {
            f"step-{d.fork_step:05d}" for d in systems if d.source is system and id(d) in unresolved
        }
        shutil.rmtree(system.folder / "agents", ignore_errors=True)
        for p in (system.folder / "checkpoints").glob("step-*"):
            if p.name not in needed:
                shutil.rmtree(p, ignore_errors=True)
        if not needed:
            shutil.rmtree(system.folder / "checkpoints", ignore_errors=True)

    def start_from_source(system: SweepSystem, entry: dict) -> None:
        source, step = system.source, system.fork_step
        try:
            if not (system.folder / "run.json").exists() and can_fork(source.folder, step):
                fork_run(source.folder, step, system.cfg, system.folder)
                entry["forked_from"] = _forked_from(system, systems)
                if on_status is not None:
                    on_status(system, f"starts from {source.condition} at step {step}", None)
        finally:
            with lock:
                unresolved.discard(id(system))
                clean(source)

    def one(system: SweepSystem, entry: dict) -> None:
        update(system, entry, "running")
        try:
            if system.source is not None:
                start_from_source(system, entry)
            if stopping.is_set():  # interrupted while it copied its source's steps
                raise KeyboardInterrupt
            run_system(system)
        except KeyboardInterrupt:
            update(system, entry, "interrupted")
            raise
        except Exception as exc:  # noqa: BLE001 - one failed system must not stop the sweep
            update(system, entry, "failed", f"{exc.__class__.__name__}: {exc}")
        else:
            with lock:
                entry["status"] = "done"
                clean(system)
            update(system, entry, "done")

    def ready(system: SweepSystem) -> bool:
        """Whether a system may start: it has no source, or its source has reached the step
        it starts from, or never will (failed, finished without it, resumed past it)."""
        source = system.source
        if source is None or (system.folder / "run.json").exists():
            return True
        if can_fork(source.folder, system.fork_step):
            return True
        status = entry_of[id(source)]["status"]
        return status in ("done", "failed") or last_complete_step(source.folder) >= system.fork_step

    write_json(out / SWEEP_FILE, record)
    todo = []
    for system, entry in zip(systems, entries, strict=True):
        if entry["status"] == "done":
            unresolved.discard(id(system))
            if on_status is not None:
                on_status(system, "skipped (finished)", None)
        else:
            todo.append((system, entry))
    if jobs == 1:
        # In plan order a source has finished (or failed) before the systems starting from it.
        for system, entry in todo:
            one(system, entry)
        return record
    pending = list(todo)
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        running: dict = {}
        try:
            while pending or running:
                for item in list(pending):
                    if len(running) >= jobs:
                        break
                    if ready(item[0]) or not running:
                        pending.remove(item)
                        running[pool.submit(one, *item)] = item
                if on_wait is not None:
                    on_wait()
                finished, _ = wait(running, timeout=1.0, return_when=FIRST_COMPLETED)
                for f in finished:
                    running.pop(f)
                    f.result()  # re-raise what ``one`` did not record (an interrupt)
        except KeyboardInterrupt:
            stopping.set()
            for f in running:
                f.cancel()
            # The interrupt may have reached this process only (kill -INT, a scheduler):
            # the systems' processes must not run on, unwatched.
            stop_children()
            with lock:
                for _, entry in todo:
                    if entry["status"] == "running":
                        entry["status"] = "interrupted"
                write_json(out / SWEEP_FILE, record)
            raise
    return record


def _weights_bytes(model: str) -> int:
    """Bytes of one float32 copy of a local model's weights (0 if it is not local)."""
    from ..errors import PerspectivesError
    from ..models.hf import resolve_model_path

    try:
        path = Path(resolve_model_path(model))
    except PerspectivesError:
        return 0
    if not path.is_dir():
        return 0
    size = sum(f.stat().st_size for pat in ("*.safetensors", "*.bin") for f in path.glob(pat))
    try:
        config = json.loads((path / "config.json").read_text())
    except (OSError, ValueError):
        config = {}  # an unreadable model is the run's error to report, not the estimate's
    if not isinstance(config, dict):
        config = {}
    dtype = str(config.get("torch_dtype") or config.get("dtype") or "float32")
    # Agents keep float32 weights; a checkpoint stored in 16 bits doubles when loaded.
    return size * (2 if "16" in dtype else 1)


def disk_needed(system: SweepSystem) -> int:
    """Bytes a running system may need at most: two float32 copies of every learning model
    under full fine-tuning (its current weights and the last step's checkpoint), and one more
    per checkpoint kept for other systems; LoRA adapters and the tables are small beside them."""
    cfg = system.cfg
    if cfg.update.method != "full":
        return 0
    copies = 2 + len(system.keep_checkpoints)
    return sum(copies * g.count * _weights_bytes(g.model) for g in cfg.groups if g.learning)


_children: set[subprocess.Popen] = set()
_children_lock = threading.Lock()


def stop_children(timeout: float = 30.0) -> None:
    """Ask every running system process to stop (SIGTERM, which ``perspectives run`` treats
    as Ctrl-C: it keeps its complete steps), then wait for them; kill any still running after
    ``timeout`` s. SIGINT would not do: a process started in the background ignores it."""
    with _children_lock:
        procs = list(_children)
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()


def steps_done(system: SweepSystem) -> int:
    """How many of the system's T + 1 snapshots are complete."""
    return last_complete_step(system.folder) + 1


def run_in_subprocess(system: SweepSystem, *, threads: int, device: str = "auto") -> None:
    """Run one system in its own Python process with ``threads`` torch threads, its output in
    ``FOLDER/run.log``. Raises RuntimeError naming the log's last line if the run fails."""
    system.folder.mkdir(parents=True, exist_ok=True)
    cfg_file = system.folder / "system.yaml"
    cfg_file.write_text(yaml.safe_dump(system.cfg.model_dump(), sort_keys=False))
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    cmd = [sys.executable, "-m", "perspectives.cli", "run", str(cfg_file)]
    cmd += ["--out", str(system.folder), "--device", device]
    for step in system.keep_checkpoints:
        cmd += ["--keep-checkpoint", str(step)]
    log = system.folder / "run.log"
    with log.open("a") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env)
        with _children_lock:
            _children.add(proc)
        try:
            code = proc.wait()
        finally:
            with _children_lock:
                _children.discard(proc)
    if code in (130, -signal.SIGINT, -signal.SIGTERM):
        raise KeyboardInterrupt
    if code != 0:
        lines = [ln.strip() for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
        raise RuntimeError(f"exit code {code}: {lines[-1] if lines else 'no output'} (see {log})")
