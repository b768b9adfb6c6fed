"""The run folder: the one place that knows its layout.

Written atomically, one part file per step::

    config.yaml  run.json  progress.json
    tables/responses/step-000t.parquet   t, model, phase (eval | interview), asker,
                                         question_id, replicate, text
    tables/edges/step-000t.parquet       t, src, dst
    tables/events/step-000t.parquet      t, kind, model, detail, seconds
    embeddings/step-000t.npy             eval answers' embeddings, rows in table order
    agents/<model>/                      each agent's live state
    checkpoints/step-000t/<model>/       agents after the last complete step (and after
                                         any step kept for other systems to fork from)

``progress.json`` is written last: a step is complete once it names it. Torch-free: the
analyses read a run folder through this class without loading a model.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from ..errors import CorruptStateError, InputError, RunFolderBusy
from ..store import file_lock, link_or_copy, write_json, write_npy, write_parquet, write_text
from .config import RunConfig, parse_run_config

TABLES = ("responses", "edges", "events")
COLUMNS = {
    "responses": ["t", "model", "phase", "asker", "question_id", "replicate", "text"],
    "edges": ["t", "src", "dst"],
    "events": ["t", "kind", "model", "detail", "seconds"],
}
# Parts that hold one file per step (the agents' checkpoints are folders per step).
STEP_PARTS = ("tables/responses", "tables/edges", "tables/events", "embeddings")


def part_name(t: int) -> str:
    """The stem of step ``t``'s part files: ``step-0000t``."""
    return f"step-{t:05d}"


def step_of(path: Path) -> int:
    """The step a part file or checkpoint folder belongs to."""
    return int(path.name.split("-")[1].split(".")[0])


class RunFolder:
    """A run folder on disk (see the module docstring for its layout).

    Parameters
    ----------
    path : str or os.PathLike
        The folder; it need not exist yet.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunFolder({str(self.path)!r})"

    def __fspath__(self) -> str:
        return str(self.path)

    # ------------------------------------------------------------------ files
    @property
    def config_file(self) -> Path:
        return self.path / "config.yaml"

    @property
    def run_file(self) -> Path:
        return self.path / "run.json"

    @property
    def progress_file(self) -> Path:
        return self.path / "progress.json"

    def table_file(self, table: str, t: int) -> Path:
        return self.path / "tables" / table / f"{part_name(t)}.parquet"

    def embeddings_file(self, t: int) -> Path:
        return self.path / "embeddings" / f"{part_name(t)}.npy"

    def checkpoint(self, t: int) -> Path:
        """The folder of the agents' checkpoint after step ``t``."""
        return self.path / "checkpoints" / part_name(t)

    def agent_state(self, model: str) -> Path:
        """The folder of ``model``'s live state."""
        return self.path / "agents" / model

    # ------------------------------------------------------------------ state
    def exists(self) -> bool:
        """Whether the folder holds a run (its ``run.json``)."""
        return self.run_file.exists()

    def info(self) -> dict:
        """``run.json``: fingerprint, name, steps and, for a fork, ``forked_from``."""
        try:
            info = json.loads(self.run_file.read_text())
        except FileNotFoundError:
            raise InputError("not a run folder (no run.json)", source=str(self.path)) from None
        except ValueError as exc:
            raise CorruptStateError(f"not valid JSON: {exc}", source=str(self.run_file)) from None
        if not isinstance(info, dict):
            raise CorruptStateError("not a run record", source=str(self.run_file))
        return info

    def read_config(self, validate: bool = True) -> RunConfig:
        """The run's resolved config. ``validate``: also the checks that read the data (the
        bank, the evaluation set); without, only the schema. Raises InputError if missing."""
        if not self.config_file.exists():
            raise InputError("not a run folder (no config.yaml)", source=str(self.path))
        raw = yaml.safe_load(self.config_file.read_text())
        if validate:
            return parse_run_config(raw, str(self.config_file))
        return RunConfig.model_validate(raw)

    def last_complete_step(self) -> int:
        """The last step whose tables and checkpoints are complete, or -1.

        Raises CorruptStateError if ``progress.json`` is damaged."""
        if not self.progress_file.exists():
            return -1
        try:
            last = json.loads(self.progress_file.read_text())["last_complete_step"]
        except (ValueError, KeyError, TypeError) as exc:
            raise CorruptStateError(
                f"damaged progress record ({exc.__class__.__name__})",
                source=str(self.progress_file),
            ) from None
        if not isinstance(last, int) or isinstance(last, bool) or last < -1:
            raise CorruptStateError(
                "not a step number",
                source=str(self.progress_file),
                field="last_complete_step",
                value=last,
            )
        return last

    # ----------------------------------------------------------------- writing
    def create(self, cfg: RunConfig, forked_from: dict | None = None) -> None:
        """Write the config and ``run.json`` of a new run."""
        self.path.mkdir(parents=True, exist_ok=True)
        write_text(self.config_file, yaml.safe_dump(cfg.model_dump(), sort_keys=False))
        info = {"fingerprint": cfg.fingerprint(), "name": cfg.name, "steps": cfg.steps}
        if forked_from is not None:
            info["forked_from"] = forked_from
        write_json(self.run_file, info)

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the folder for one writer; raises RunFolderBusy if another process holds it."""
        self.path.mkdir(parents=True, exist_ok=True)
        try:
            with file_lock(self.path / ".lock", wait=False):
                yield
        except BlockingIOError:
            raise RunFolderBusy(
                "another process is running this folder; wait for it or stop it first",
                source=str(self.path),
            ) from None

    def write_step(
        self,
        t: int,
        responses: list[dict],
        edges: Iterable[tuple[str, str]],
        vectors: np.ndarray | None,
    ) -> None:
        """Write step ``t``'s responses, edges and evaluation embeddings (not yet committed)."""
        write_parquet(
            self.table_file("responses", t), pd.DataFrame(responses, columns=COLUMNS["responses"])
        )
        frame = pd.DataFrame(sorted(edges), columns=["src", "dst"]).assign(t=t)
        write_parquet(self.table_file("edges", t), frame[COLUMNS["edges"]])
        if vectors is not None:
            write_npy(self.embeddings_file(t), np.asarray(vectors, np.float32))

    def write_events(self, t: int, events: list[dict]) -> None:
        """Write step ``t``'s events (skips, joins, leaves, learning and step timings)."""
        write_parquet(self.table_file("events", t), pd.DataFrame(events, columns=COLUMNS["events"]))

    def commit_step(self, t: int, keep: Iterable[int] = ()) -> None:
        """Mark step ``t`` complete; remove checkpoints but ``t``'s and those in ``keep``."""
        write_json(self.progress_file, {"last_complete_step": t})
        names = {part_name(k) for k in keep} | {part_name(t)}
        for old in (self.path / "checkpoints").glob("step-*"):
            if old.name not in names:
                shutil.rmtree(old, ignore_errors=True)

    def drop_incomplete(self, last: int | None = None) -> None:
        """Remove the parts of steps after ``last`` (default: the last complete step)."""
        last = self.last_complete_step() if last is None else last
        for sub in (*STEP_PARTS, "checkpoints"):
            for p in (self.path / sub).glob("step-*"):
                if step_of(p) > last:
                    shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink()

    # ----------------------------------------------------------------- reading
    def read_parts(self, table: str, upto: int | None = None) -> pd.DataFrame:
        """One table's per-step parts concatenated, up to the last complete step (or ``upto``)."""
        last = self.last_complete_step()
        if upto is not None:
            last = min(last, upto)
        files = sorted((self.path / "tables" / table).glob("step-*.parquet"))
        frames = [pd.read_parquet(f) for f in files if step_of(f) <= last]
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()

    def evaluation_snapshots(
        self, upto: int | None = None
    ) -> Iterator[tuple[pd.DataFrame, np.ndarray]]:
        """Each complete step's evaluation answers (``t, model, question_id, text``, in table
        order) with their embeddings, for the steps that have them."""
        last = self.last_complete_step()
        if upto is not None:
            last = min(last, upto)
        for t in range(last + 1):
            emb = self.embeddings_file(t)
            if not emb.exists():
                continue
            resp = pd.read_parquet(self.table_file("responses", t))
            ev = resp[resp["phase"] == "eval"].reset_index(drop=True)
            yield ev[["t", "model", "question_id", "text"]], np.load(emb)

    # ----------------------------------------------------------- forks, weights
    def can_fork(self, step: int) -> bool:
        """Whether the folder holds step ``step`` complete, with its agents' checkpoint."""
        return self.last_complete_step() >= step and self.checkpoint(step).is_dir()

    def fork(self, step: int, cfg: RunConfig, dest: str | os.PathLike) -> RunFolder:
        """Make ``dest`` a run folder of ``cfg`` whose steps 0..``step`` are this run's
        (linked, or copied across file systems); running ``cfg`` there continues from
        ``step + 1``. The caller vouches the two are the same system up to ``step``.

        Raises InputError if this folder lacks that step or its checkpoint, or ``dest`` is
        already a run."""
        target = RunFolder(dest)
        if not self.can_fork(step):
            raise InputError(
                f"holds no complete step {step} with its checkpoint", source=str(self.path)
            )
        if target.exists():
            raise InputError("already a run folder", source=str(target.path))
        # Leftovers of an interrupted fork go; progress.json, written last, commits the new one.
        target.progress_file.unlink(missing_ok=True)
        for sub in (*STEP_PARTS, "checkpoints", "agents"):
            shutil.rmtree(target.path / sub, ignore_errors=True)
        for sub in STEP_PARTS:
            for p in sorted((self.path / sub).glob("step-*")):
                if step_of(p) <= step:
                    (target.path / sub).mkdir(parents=True, exist_ok=True)
                    link_or_copy(p, target.path / sub / p.name)
        shutil.copytree(self.checkpoint(step), target.checkpoint(step), copy_function=link_or_copy)
        write_json(target.progress_file, {"last_complete_step": step})
        # run.json last: until it exists the folder is no run, and a new fork starts over.
        target.create(cfg, {"run": os.path.relpath(self.path, target.path), "step": step})
        return target

    def forked_from(self) -> dict | None:
        """``{"run": relative path, "step": t}`` of the run this one started from, if any."""
        return self.info().get("forked_from") if self.exists() else None

    def clean_weights(self, keep: Iterable[int] = ()) -> None:
        """Remove the agents' weights (live state and checkpoints) but the checkpoints of the
        steps in ``keep``: a finished run's analyses need only its tables and embeddings."""
        keep = {part_name(k) for k in keep}
        shutil.rmtree(self.path / "agents", ignore_errors=True)
        for p in (self.path / "checkpoints").glob("step-*"):
            if p.name not in keep:
                shutil.rmtree(p, ignore_errors=True)
        if not keep:
            shutil.rmtree(self.path / "checkpoints", ignore_errors=True)


def read_parts(
    run: str | os.PathLike | RunFolder, table: str, upto: int | None = None
) -> pd.DataFrame:
    """A run's ``table`` (``responses``, ``edges``, ``events``) up to its last complete step."""
    return (run if isinstance(run, RunFolder) else RunFolder(run)).read_parts(table, upto)


def last_complete_step(run: str | os.PathLike | RunFolder) -> int:
    """The last complete step of the run in ``run``, or -1."""
    return (run if isinstance(run, RunFolder) else RunFolder(run)).last_complete_step()
