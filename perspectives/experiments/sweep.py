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
import threading
import traceback
import warnings
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ConfigError, CorruptStateError, InputError, RunFolderBusy
from ..simulation.config import RunConfig, parse_run_config
from ..simulation.rundir import RunFolder
from ..store import file_lock, output_dir, write_json
from .executors import Executor
from .fork import shared_steps
from .presets import Preset

SWEEP_FILE = "sweep.json"
SWEEP_LOCK = ".sweep.lock"  # held by the process running the sweep


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

    @property
    def run(self) -> RunFolder:
        """The system's run folder."""
        return RunFolder(self.folder)


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
        if system.run.exists():
            continue
        best, step = None, min_steps - 1
        for earlier in systems[:i]:
            k = shared_steps(earlier.cfg, system.cfg)
            if k > step and (_last_step(earlier) < k or earlier.run.can_fork(k)):
                best, step = earlier, k
        if best is not None:
            system.source, system.fork_step = best, step
            best.keep_checkpoints = tuple(sorted({*best.keep_checkpoints, step}))


def system_done(system: SweepSystem) -> bool:
    """Whether the system's run folder holds its last step."""
    return _last_step(system) >= system.cfg.steps


def check_same_configs(
    systems: list[SweepSystem], out: Path, others: list[SweepSystem] | None = None
) -> None:
    """Raise ConfigError, naming the systems, if a system's folder already holds a run of
    another config: a sweep run again with other options into the same folder would otherwise
    skip its finished systems as done and start new ones from the old systems' steps. A run
    of the same config for fewer steps is continued (``RunFolder.extend``), unless it cannot
    be (InputError, before any system starts). ``others``: the systems of earlier invocations
    that this one does not run (other seeds), which must hold this config exactly: one
    continued without them would leave the grid with two horizons. A damaged run record is
    left for the system's own run to report."""
    stale = []
    planned = {id(s) for s in systems}
    for system in [*systems, *(others or [])]:
        try:
            made = system.run.read_config(validate=False) if system.run.exists() else None
        except (CorruptStateError, ConfigError):
            continue
        if made is not None and id(system) in planned and system.cfg.extends(made):
            system.run.check_extensible(system.cfg, made)
        elif made is not None and made.fingerprint() != system.cfg.fingerprint():
            folder = system.folder
            stale.append(folder.relative_to(out) if folder.is_relative_to(out) else folder)
    if stale:
        shown = ", ".join(p.as_posix() for p in stale[:5])
        more = f" and {len(stale) - 5} more" if len(stale) > 5 else ""
        raise ConfigError(
            f"{shown}{more}: run from another config (other --set, --scale, --update, --model or "
            "preset options) than this sweep's; run it with the options it was started with, "
            "or give another --out",
            source=str(out),
            field="--out",
        )


def _forked_from(system: SweepSystem, systems: list[SweepSystem]) -> dict | None:
    """The system and step the run in ``system.folder`` started from, as its run.json says."""
    info = system.run.forked_from()
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
    if not p.is_file():
        raise InputError("not a file", source=str(p))
    try:
        record = json.loads(p.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise InputError("not UTF-8 text", source=str(p)) from None
    except json.JSONDecodeError as exc:
        raise InputError(f"not valid JSON ({exc.msg}, line {exc.lineno})", source=str(p)) from None
    if not isinstance(record, dict) or not isinstance(record.get("systems"), list):
        raise InputError("not a sweep record (no list of systems)", source=str(p), field="systems")
    _check_record(record, p)
    return record


_STATUSES = ("pending", "running", "interrupted", "failed", "done")


def _check_record(record: dict, path: Path) -> None:
    """Raise InputError, naming the field and value, for a sweep record that a hand edit or a
    damaged disk left inconsistent (the analyses would otherwise fail or read elsewhere)."""

    def bad(message: str, field: str, value: object) -> InputError:
        return InputError(message, source=str(path), field=field, value=value)

    conditions = record.get("conditions")
    if not isinstance(conditions, list) or not all(isinstance(c, str) for c in conditions):
        raise bad("must be a list of condition names", "conditions", conditions)
    scale = record.get("scale")
    if scale is not None and not isinstance(scale, str):
        raise bad("must be a scale's name or null", "scale", scale)
    seen: dict[tuple, int] = {}
    for i, entry in enumerate(record["systems"]):
        where = f"systems.{i}"
        if not isinstance(entry, dict):
            raise bad("must be a record of a system", where, entry)
        _check_entry_values(entry, where, conditions, bad)
        folder = entry.get("folder")
        if (
            not isinstance(folder, str)
            or not folder
            or Path(folder).is_absolute()
            or ".." in Path(folder).parts
        ):
            raise bad("must be a folder inside the sweep's folder", f"{where}.folder", folder)
        # One system per (condition, seed) and per folder: a repeat would count one run twice.
        # A folder is compared as a path ("a/b/" and "./a/b" are "a/b").
        place = Path(folder).as_posix()
        for key, what in (((entry["condition"], entry["seed"]), "seed"), ((place,), "folder")):
            if (what, *key) in seen:
                raise bad(
                    f"the same {'condition and seed' if what == 'seed' else 'folder'} as "
                    f"systems.{seen[(what, *key)]}",
                    f"{where}.{what}",
                    key[-1],
                )
            seen[(what, *key)] = i


def _check_entry_values(
    entry: dict, where: str, conditions: list, bad: Callable[[str, str, object], InputError]
) -> None:
    """Raise ``bad(...)`` for a system record's condition, seed, status or run name."""
    if entry.get("condition") not in conditions:
        raise bad("not one of the sweep's conditions", f"{where}.condition", entry.get("condition"))
    if not isinstance(entry.get("seed"), int) or isinstance(entry.get("seed"), bool):
        raise bad("must be an integer", f"{where}.seed", entry.get("seed"))
    if entry.get("status") not in _STATUSES:
        raise bad(f"must be one of {', '.join(_STATUSES)}", f"{where}.status", entry.get("status"))
    if not isinstance(entry.get("run", ""), str):
        raise bad("must be the name of the system's run", f"{where}.run", entry["run"])


def run_sweep(
    systems: list[SweepSystem],
    out: str | Path,
    *,
    preset: str,
    scale: str | None,
    executor: Executor,
    on_status: Callable[[SweepSystem, str, str | None], None] | None = None,
    keep_weights: bool = False,
    on_wait: Callable[[], None] | None = None,
) -> dict:
    """Run every unfinished system with ``executor``; returns the final status record.

    ``executor.jobs`` systems run at once (``executors``: in this process, in local processes).
    ``on_wait`` is called about once a second while systems run in parallel (a progress
    display). Failures (any exception) are recorded in ``sweep.json`` and reported through
    ``on_status``; the remaining systems still run. KeyboardInterrupt stops the sweep (the
    interrupted systems resume next time). Raises InputError if ``executor.jobs < 1``,
    ConfigError (before anything runs) if a system's folder holds a run of another config,
    RunFolderBusy if another process is running a sweep in ``out``.
    """
    if executor.jobs < 1:
        raise InputError("must be at least 1", field="jobs", value=executor.jobs)
    check_same_configs(systems, Path(out))
    with ExitStack() as held:
        try:
            held.enter_context(file_lock(Path(out) / SWEEP_LOCK, wait=False))
        except BlockingIOError:
            raise RunFolderBusy(
                "another sweep is running in this folder; wait for it or stop it first",
                source=str(out),
            ) from None
        except OSError as exc:  # a file system without flock (some network and FUSE mounts)
            warnings.warn(
                f"{out}: the sweep's folder cannot be locked ({exc.strerror or exc}); run one "
                "sweep at a time in it",
                stacklevel=2,
            )
        runner = _SweepRun(systems, Path(out), preset, scale, executor, on_status, keep_weights)
        todo = runner.start()
        if executor.jobs == 1:
            # In plan order a source has finished (or failed) before the systems starting from it.
            for system, entry in todo:
                runner.one(system, entry)
        else:
            runner.side_by_side(todo, on_wait)
    return runner.record


class _SweepRun:
    """One invocation of a sweep: its status record and the systems' life cycle."""

    def __init__(
        self,
        systems: list[SweepSystem],
        out: Path,
        preset: str,
        scale: str | None,
        executor: Executor,
        on_status: Callable[[SweepSystem, str, str | None], None] | None,
        keep_weights: bool,
    ) -> None:
        self.systems, self.out, self.executor = systems, out, executor
        self.on_status, self.keep_weights = on_status, keep_weights
        output_dir(out)
        # Systems of an earlier invocation that this one does not run (other seeds) stay listed.
        earlier = read_sweep(out)["systems"] if (out / SWEEP_FILE).exists() else []
        planned = {(s.condition, s.seed) for s in systems}
        kept = [e for e in earlier if (e["condition"], e["seed"]) not in planned]
        self.entries = [
            {
                "condition": s.condition,
                "seed": s.seed,
                "folder": str(s.folder.relative_to(out)),
                "status": "done" if system_done(s) else "pending",
                "error": None,
                "run": s.cfg.name,  # whose run the folder must hold (analyses check it)
                **({"forked_from": f} if (f := _forked_from(s, systems)) else {}),
            }
            for s in systems
        ]
        self.record = {
            "preset": preset,
            "scale": scale,
            "conditions": list(dict.fromkeys([e["condition"] for e in earlier + self.entries])),
            "seeds": sorted({e["seed"] for e in earlier + self.entries}),
            "systems": kept + self.entries,
        }
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.entry_of = {id(s): e for s, e in zip(systems, self.entries, strict=True)}
        # Systems still to start from a source's checkpoint: it stays until they have.
        self.unresolved = {id(s) for s in systems if s.source is not None}

    def _say(self, system: SweepSystem, status: str, error: str | None = None) -> None:
        if self.on_status is not None:
            self.on_status(system, status, error)

    def update(
        self, system: SweepSystem, entry: dict, status: str, error: str | None = None
    ) -> None:
        with self.lock:
            entry["status"] = status
            if error is not None:
                entry["error"] = error
                entry["traceback"] = traceback.format_exc(limit=8)
            write_json(self.out / SWEEP_FILE, self.record)
            self._say(system, status, error)

    def start(self) -> list[tuple[SweepSystem, dict]]:
        """Write the record; the systems still to run, in plan order."""
        write_json(self.out / SWEEP_FILE, self.record)
        todo = []
        for system, entry in zip(self.systems, self.entries, strict=True):
            if entry["status"] == "done":
                self.unresolved.discard(id(system))
                self._say(system, "skipped (finished)")
            else:
                had = _steps_made(system)
                if had is not None and had < system.cfg.steps:
                    self._say(system, f"to be continued from {had} to {system.cfg.steps} steps")
                todo.append((system, entry))
        return todo

    def clean(self, system: SweepSystem) -> None:
        """Remove a finished system's weights but the checkpoints later systems still need."""
        if self.keep_weights or self.entry_of[id(system)]["status"] != "done":
            return
        needed = {
            d.fork_step for d in self.systems if d.source is system and id(d) in self.unresolved
        }
        system.run.clean_weights(keep=needed)

    def start_from_source(self, system: SweepSystem, entry: dict) -> None:
        """Start ``system`` from a copy of its source's steps, if it has not started and the
        source holds them; then the source's checkpoint may go. An interrupted or failed copy
        keeps it, for the next invocation to copy again."""
        source, step = system.source, system.fork_step
        if not system.run.exists() and source.run.can_fork(step):
            source.run.fork(step, system.cfg, system.folder)
            entry["forked_from"] = _forked_from(system, self.systems)
            self._say(system, f"starts from {source.condition} at step {step}")
        with self.lock:
            self.unresolved.discard(id(system))
            self.clean(source)

    def one(self, system: SweepSystem, entry: dict) -> None:
        self.update(system, entry, "running")
        try:
            if system.source is not None:
                self.start_from_source(system, entry)
            if system.run.discard_partial_fork():  # its source's checkpoint is gone since
                self._say(system, "runs from t = 0 (its copy of a source's steps was not finished)")
            if self.stopping.is_set():  # interrupted while it copied its source's steps
                raise KeyboardInterrupt
            self.executor.run(system)
        except KeyboardInterrupt:
            self.update(system, entry, "interrupted")
            raise
        except Exception as exc:  # noqa: BLE001 - one failed system must not stop the sweep
            self.update(system, entry, "failed", f"{exc.__class__.__name__}: {exc}")
        else:
            with self.lock:
                entry["status"] = "done"
                self.clean(system)
            self.update(system, entry, "done")

    def ready(self, system: SweepSystem) -> bool:
        """Whether a system may start: it has no source, or its source has reached the step
        it starts from, or never will (failed, finished without it, resumed past it)."""
        source = system.source
        if source is None or system.run.exists() or source.run.can_fork(system.fork_step):
            return True
        status = self.entry_of[id(source)]["status"]
        return status in ("done", "failed") or _last_step(source) >= system.fork_step

    def side_by_side(self, todo: list, on_wait: Callable[[], None] | None) -> None:
        jobs = self.executor.jobs
        pending = list(todo)
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            running: dict = {}
            try:
                while pending or running:
                    for item in list(pending):
                        if len(running) >= jobs:
                            break
                        if self.ready(item[0]) or not running:
                            pending.remove(item)
                            running[pool.submit(self.one, *item)] = item
                    if on_wait is not None:
                        on_wait()
                    finished, _ = wait(running, timeout=1.0, return_when=FIRST_COMPLETED)
                    for f in finished:
                        running.pop(f)
                        f.result()  # re-raise what ``one`` did not record (an interrupt)
            except KeyboardInterrupt:
                self.stopping.set()
                for f in running:
                    f.cancel()
                # The interrupt may have reached this process only (kill -INT, a scheduler):
                # the systems must not run on, unwatched.
                self.executor.stop()
                with self.lock:
                    for _, entry in todo:
                        if entry["status"] == "running":
                            entry["status"] = "interrupted"
                    write_json(self.out / SWEEP_FILE, self.record)
                raise


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
    copies = 2 + len(system.keep_checkpoints)
    return sum(
        copies * g.count * _weights_bytes(g.model)
        for g in cfg.groups
        if g.learning and (g.update or cfg.update).method == "full"
    )


# Resident memory of one system per byte of a float32 copy of its base model's weights,
# measured on the bundled model (0.54 GB of weights; three CS2 systems at 100 questions per
# interview sampled every 15 s for an hour): the training and answering copies and the
# libraries between phases (1.4-2.2 GB: 4x), and with a fine-tuning pass's gradients, AdamW
# moments and activations on top (at most 6.2 GB at 100 pairs: 12x).
MEMORY_BETWEEN, MEMORY_LEARNING = 4, 12


def memory_needed(system: SweepSystem) -> int:
    """Bytes of memory a running system may hold at its peak: its agents share one network
    per local base model, which a full fine-tuning pass multiplies; models behind an API
    hold none here."""
    cfg = system.cfg
    factor: dict[str, int] = {}
    for g in cfg.groups:
        if g.backend != "hf":
            continue
        tuned = g.learning and (g.update or cfg.update).method == "full"
        factor[g.model] = max(factor.get(g.model, 0), MEMORY_LEARNING if tuned else MEMORY_BETWEEN)
    return sum(f * _weights_bytes(model) for model, f in factor.items())


def _steps_made(system: SweepSystem) -> int | None:
    """The steps the system's folder was made for, if it holds a readable run record."""
    try:
        steps = system.run.info().get("steps") if system.run.exists() else None
    except (CorruptStateError, InputError):
        return None
    return steps if isinstance(steps, int) else None


def steps_done(system: SweepSystem) -> int:
    """How many of the system's T + 1 snapshots are complete."""
    return _last_step(system) + 1


def _last_step(system: SweepSystem) -> int:
    """The system's last complete step; -1 while its folder holds only an interrupted copy
    of a source's steps (which is made again, or removed, when the system runs)."""
    return -1 if system.run.holds_partial_fork() else system.run.last_complete_step()


@dataclass
class SweepPlan:
    """A sweep ready to run: its systems, folder and scale, and the steps it shares."""

    name: str
    scale: str | None
    out: Path
    systems: list[SweepSystem]

    @property
    def shared(self) -> list[SweepSystem]:
        """Systems that start from a step they share with an earlier one."""
        return [s for s in self.systems if s.source is not None]

    def steps_saved(self) -> tuple[int, int]:
        """(snapshots not run twice, snapshots of all the systems)."""
        once = sum(s.fork_step + 1 for s in self.shared)
        return once, sum(s.cfg.steps + 1 for s in self.systems)


def prepare_sweep(
    preset: Preset,
    *,
    out: str | Path | None = None,
    scale: str | None = None,
    seeds: str | list[int] | None = None,
    sets: dict | None = None,
    share_steps: bool = True,
    conditions: str | list[str] | None = None,
) -> SweepPlan:
    """Plan ``preset``'s sweep as the command line asks for it: ``seeds`` and ``conditions``
    as comma-separated text or lists; ``out`` defaults to ``runs/<name>-<scale>``.

    Raises InputError for seeds that are not integers or repeat, conditions that are empty,
    a ``seed`` or ``output`` in ``sets`` (the sweep sets them), an ``out`` that is a file, or
    as ``plan_sweep`` does."""
    if isinstance(seeds, str):
        try:
            seeds = [_seed_number(x) for x in seeds.split(",")]
        except ValueError:
            raise InputError(
                "a comma-separated list of integers", field="--seeds", value=seeds
            ) from None
    if seeds is not None and len(set(seeds)) != len(seeds):
        # Two systems of one seed would share a folder and overwrite each other.
        raise InputError("each seed once", field="--seeds", value=",".join(map(str, seeds)))
    if isinstance(conditions, str):
        given = conditions
        conditions = [c.strip() for c in conditions.split(",") if c.strip()]
        if not conditions:  # "" would otherwise mean every condition
            raise InputError("name at least one condition", field="--conditions", value=given)
    for key, option in (("seed", "--seeds"), ("output", "--out")):
        if key in (sets or {}):
            raise InputError(
                f"a sweep sets each system's {key}: use {option}", field="--set", value=key
            )
    scale = scale or preset.default_scale
    name = (sets or {}).get("name") or preset.raw.get("name", "sweep")
    out = Path(out) if out else Path("runs") / (f"{name}-{scale}" if scale else name)
    # The folder, or the nearest of its parents that exists, must be one.
    there = next((p for p in (out, *out.parents) if p.exists()), None)
    if there is not None and not there.is_dir():
        raise InputError("is a file, not a folder", source=str(there), field="--out")
    systems = plan_sweep(preset, out, scale, seeds, sets, share_steps, conditions)
    check_same_configs(systems, out, _earlier_systems(preset, out, scale, sets, systems))
    return SweepPlan(name, scale, out, systems)


def _seed_number(text: str) -> int:
    """A seed as written: an optional sign and digits (``int`` would also take ``1_0``)."""
    if not text.strip().lstrip("+-").isdecimal():
        raise ValueError(text)
    return int(text)


def _earlier_systems(
    preset: Preset, out: Path, scale: str | None, sets: dict | None, systems: list[SweepSystem]
) -> list[SweepSystem]:
    """The systems an earlier invocation recorded in ``out`` (other seeds or conditions) as
    this invocation's options would make them: a sweep extended with options of its own
    would mix two grids in one folder."""
    if not (out / SWEEP_FILE).exists():
        return []
    planned = {(s.condition, s.seed) for s in systems}
    names = {c["name"] for c in (preset.sweep or {}).get("conditions", [])}
    earlier = [
        (e["condition"], e["seed"])
        for e in read_sweep(out)["systems"]
        if (e["condition"], e["seed"]) not in planned and e["condition"] in names
    ]
    if not earlier:
        return []
    conds = sorted({c for c, _ in earlier})
    seeds = sorted({s for _, s in earlier})
    made = plan_sweep(preset, out, scale, seeds, sets, share_steps=False, conditions=conds)
    return [s for s in made if (s.condition, s.seed) in set(earlier)]
