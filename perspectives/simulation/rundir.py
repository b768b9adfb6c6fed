"""The run folder: the one place that knows its layout.

Written atomically, one part file per step::

    config.yaml  run.json  progress.json
    tables/responses/step-000t.parquet   t, model, phase (eval | interview), asker,
                                         question_id, replicate, text
    tables/edges/step-000t.parquet       t, src, dst
    tables/events/step-000t.parquet      t, kind, model, detail, seconds
    tables/db_items/step-000t.parquet    t, database, question, answer, source, first_hand
                                         (the items added at step t; a run with databases)
    tables/db_access/step-000t.parquet   t, database, model, access (read | write), mode
    embeddings/step-000t.npy             eval answers' embeddings, rows in table order
    agents/<model>/                      each agent's live state
    checkpoints/step-000t/<model>/       agents after the last complete step (and after
                                         any step kept for other systems to fork from)
    checkpoints/step-000t/databases/<db>/  the databases' items, likewise

``progress.json`` is written last: a step is complete once it names it. ``check`` validates
the folder (the config against the fingerprint in ``run.json``, every part of every complete
step) before a resume removes the leftovers of an interrupted step: a damaged folder is
reported, naming the file, never "repaired" by deletion. Torch-free: the analyses read a run
folder through this class without loading a model.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import yaml

from ..config import dump_yaml, validate_model
from ..errors import ConfigError, CorruptStateError, InputError, RunFolderBusy
from ..lease import Lease, LeaseHeld
from ..store import link_or_copy, output_dir, write_json, write_npy, write_parquet, write_text
from .config import RunConfig, parse_run_config
from .databases import ACCESS_COLUMNS, ITEM_COLUMNS

# The writer's lease (``RunFolder.lock``): present only while a process runs the folder.
LEASE_FILE = ".lock"
TABLES = ("responses", "edges", "events")
DATABASE_TABLES = ("db_items", "db_access")
COLUMNS = {
    "responses": ["t", "model", "phase", "asker", "question_id", "replicate", "text"],
    "edges": ["t", "src", "dst"],
    "events": ["t", "kind", "model", "detail", "seconds"],
    "db_items": ITEM_COLUMNS,
    "db_access": ACCESS_COLUMNS,
}
# The kind of value every row holds where the analyses key on it (missing is none).
VALUES = {
    "responses": {
        "t": "integer",
        "model": "text",
        "phase": "text",
        "asker": "text",
        "question_id": "text",
        "replicate": "integer",
        "text": "text",
    },
    "edges": {"t": "integer", "src": "text", "dst": "text"},
}
ALLOWED = {"responses": {"phase": ("eval", "interview")}}
# The key, in a responses part's pandas metadata, of its evaluation rows' digest.
EVAL_DIGEST = "eval_digest"

# Present in a folder while a fork into it is being made (and after one interrupted).
FORK_MARK = ".fork-incomplete"


def _temporary(name: str) -> bool:
    """Whether ``name`` is that of an atomic write's temporary file or folder (``store``)."""
    return name.startswith(".") and (name.endswith(".tmp") or name.endswith(".link"))


def eval_digest(ev: pd.DataFrame) -> str:
    """SHA-256 of evaluation rows' ``model, question_id, replicate, text`` in row order."""
    h = hashlib.sha256()
    for row in ev[["model", "question_id", "replicate", "text"]].itertuples(index=False):
        h.update(json.dumps([str(v) for v in row]).encode("utf-8") + b"\n")
    return h.hexdigest()


# The columns that say which row of a part an error is about.
ROW_KEYS = ("t", "model", "phase", "question_id")
# Parts that hold one file per step (the agents' checkpoints are folders per step).
STEP_PARTS = (
    "tables/responses",
    "tables/edges",
    "tables/events",
    "tables/db_items",
    "tables/db_access",
    "embeddings",
)


def part_name(t: int) -> str:
    """The stem of step ``t``'s part files: ``step-0000t``."""
    return f"step-{t:05d}"


def step_of(path: Path) -> int:
    """The step a part file or checkpoint folder belongs to, or -1 for a name that is none."""
    try:
        return int(path.name.split("-")[1].split(".")[0])
    except (IndexError, ValueError):
        return -1


def _reason(exc: BaseException) -> str:
    """``Class: first line of the message``: a library's error, on one short line."""
    lines = str(exc).strip().splitlines()
    text = f"{exc.__class__.__name__}: {lines[0]}" if lines else exc.__class__.__name__
    return text if len(text) <= 100 else text[:97] + "..."


def _read_bytes(path: Path) -> bytes:
    """``path``'s bytes. A missing file raises FileNotFoundError (its caller knows what that
    means); a folder in its place or a file that cannot be read is named."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise
    except IsADirectoryError:
        raise CorruptStateError("a folder, where the run keeps a file", source=str(path)) from None
    except OSError as exc:
        raise InputError(
            f"cannot be read ({exc.strerror or _reason(exc)})", source=str(path)
        ) from None


def _wrong_rows(values: pd.Series, kind: str) -> np.ndarray:
    """Which of ``values`` are not of ``kind`` (``text`` or ``integer``; missing is wrong)."""
    if kind == "text":
        if isinstance(values.dtype, pd.StringDtype):
            return values.isna().to_numpy()
        return np.array([not isinstance(v, str) for v in values.tolist()], dtype=bool)
    if pd.api.types.is_integer_dtype(values.dtype) and not isinstance(
        values.dtype, pd.api.extensions.ExtensionDtype
    ):
        return np.zeros(len(values), dtype=bool)  # numpy integers hold no missing value
    return np.array([not _is_integer(v) for v in values.tolist()], dtype=bool)


def _is_integer(value: object) -> bool:
    """An integer, or a float that is one (pandas reads integers beside a missing value as
    floats: the missing one is the row to name)."""
    if isinstance(value, bool | np.bool_):
        return False
    if isinstance(value, float | np.floating):
        return bool(np.isfinite(value)) and float(value).is_integer()
    return isinstance(value, int | np.integer)


def _shown(value: object) -> str:
    """A cell's value, short, as Python writes it (no numpy wrapper; None for missing)."""
    if pd.api.types.is_scalar(value) and pd.isna(value):
        return "None"
    text = repr(value.item() if isinstance(value, np.generic) else value)
    return text if len(text) <= 40 else text[:37] + "..."


class RunFolder:
    """A run folder on disk (see the module docstring for its layout).

    Parameters
    ----------
    path : str or os.PathLike
        The folder; it need not exist yet.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self._lease: Lease | None = None  # held while this object runs the folder (lock)

    def __getstate__(self) -> dict:
        # A copy in another process (a model host) holds no lease of its own.
        return {**self.__dict__, "_lease": None}

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
        """``run.json``: fingerprint, name, steps and, for a fork, ``forked_from``.

        Raises InputError for a folder that is no run, CorruptStateError for a damaged or
        missing record of a folder that holds a run's other files."""
        try:
            data = _read_bytes(self.run_file)
        except FileNotFoundError:
            if self.config_file.exists() or self.progress_file.exists():
                raise CorruptStateError(
                    "missing: the folder holds a run's files but not its run record",
                    source=str(self.run_file),
                ) from None
            raise InputError("not a run folder (no run.json)", source=str(self.path)) from None
        try:
            info = json.loads(data.decode("utf-8"))
        except ValueError as exc:  # also UnicodeDecodeError
            raise CorruptStateError(
                f"not valid JSON ({_reason(exc)})", source=str(self.run_file)
            ) from None
        if not isinstance(info, dict) or not isinstance(info.get("fingerprint"), str):
            raise CorruptStateError("not a run record (no fingerprint)", source=str(self.run_file))
        return info

    def read_config(self, validate: bool = True) -> RunConfig:
        """The run's resolved config, checked against the fingerprint ``run.json`` recorded
        when the run started. ``validate``: also the checks that read the data (the bank, the
        evaluation set); without, only the schema.

        Raises InputError if the folder is no run, CorruptStateError if ``config.yaml`` is
        missing, unreadable or edited since, ConfigError if it is no valid config."""
        info = self.info()
        source = str(self.config_file)
        try:
            data = _read_bytes(self.config_file)
            raw = yaml.safe_load(data.decode("utf-8"))
        except FileNotFoundError:
            raise CorruptStateError("missing from the run folder", source=source) from None
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            raise CorruptStateError(f"not valid YAML ({_reason(exc)})", source=source) from None
        cfg = parse_run_config(raw, source) if validate else validate_model(RunConfig, raw, source)
        # The file's own hash where run.json has it: a config schema that grows a defaulted
        # field changes every fingerprint, never these bytes. Older folders have only the
        # fingerprint.
        if "config_sha256" in info:
            edited = hashlib.sha256(data).hexdigest() != info["config_sha256"]
            if edited and self._lags_extension(data, info):
                # Interrupted between run.json and config.yaml: the file holds the config
                # before the extension, and run.json the steps it was extended to.
                cfg = cfg.model_copy(update={"steps": info["steps"]})
                edited = cfg.fingerprint() != info["fingerprint"]
        else:
            edited = cfg.fingerprint() != info["fingerprint"]
        if edited and cfg.fingerprint() == info["fingerprint"]:
            # The same config in other bytes (rewritten, reformatted), or run.json's hash damaged:
            # which is the right one cannot be told, so neither is trusted.
            raise CorruptStateError(
                "its bytes differ from the hash run.json records (config_sha256), though it is "
                "the config fingerprinted there: the file was rewritten or run.json damaged; "
                "restore either",
                source=source,
            )
        if edited:
            # The tables were made by the config run.json fingerprinted: any other config would
            # continue or analyse them as a system they are not.
            raise CorruptStateError(
                "edited after the run started (it differs from the config fingerprinted in "
                "run.json); restore it, or start a new run",
                source=source,
            )
        return cfg

    def last_complete_step(self) -> int:
        """The last step whose tables and checkpoints are complete, or -1.

        Raises CorruptStateError if ``progress.json`` is damaged, names a step after the
        run's last, or is missing from a folder that holds later steps."""
        try:
            text = _read_bytes(self.progress_file).decode("utf-8")
        except FileNotFoundError:
            # Parts of step 1 or later are written only after step 0 is committed: then the
            # record is lost, not yet to be written (an interrupted step 0 holds step 0 only).
            later = [p for p in self._step_files() if step_of(p) >= 1]
            if later:
                raise CorruptStateError(
                    f"missing, though the folder holds {len(later)} part(s) of complete steps "
                    f"(e.g. {later[0].relative_to(self.path)})",
                    source=str(self.progress_file),
                ) from None
            return -1
        except UnicodeDecodeError as exc:
            raise CorruptStateError(
                f"damaged progress record ({exc.__class__.__name__})",
                source=str(self.progress_file),
            ) from None
        try:
            last = json.loads(text)["last_complete_step"]
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
        steps = self.info().get("steps") if self.run_file.exists() else None
        if isinstance(steps, int) and last > steps:
            raise CorruptStateError(
                f"after the run's last step ({steps})",
                source=str(self.progress_file),
                field="last_complete_step",
                value=last,
            )
        return last

    def check(self, upto: int | None = None) -> int:
        """Check the folder before anything reads or changes it: ``run.json``, ``config.yaml``
        (against its fingerprint), ``progress.json`` and every part of every complete step up
        to ``upto`` (present, readable, with its columns; embeddings with one row per
        evaluation answer). Reads the Parquet footers and one column, not the tables.

        Returns the last complete step. Raises InputError for a folder that is no run,
        CorruptStateError (or ConfigError) naming the first damaged file, or ``progress.json``
        when it is behind the parts on disk."""
        # Listed before progress.json is read: a run writing meanwhile only adds parts of
        # steps after the record it commits, so none listed here is wrongly "later".
        found = self._step_files()
        cfg = self.read_config(validate=False)
        last = self.last_complete_step()
        self._check_not_behind(last, found)
        tables = ("edges", "events", *(DATABASE_TABLES if cfg.databases else ()))
        for t in range((last if upto is None else min(last, upto)) + 1):
            for table in tables:
                self._check_part(table, t)
            phase = self._check_part("responses", t, ["phase"])["phase"]
            self._check_embeddings(t, int((phase == "eval").sum()), mmap=True)
        return last

    def _step_files(self) -> list[Path]:
        """The part files and checkpoint folders of every step, in step order."""
        found = [
            p
            for sub in (*STEP_PARTS, "checkpoints")
            for p in (self.path / sub).glob("step-*")
            if step_of(p) >= 0
        ]
        return sorted(found, key=lambda p: (step_of(p), str(p)))

    def _check_not_behind(self, last: int, found: list[Path]) -> None:
        """Refuse a progress record behind the parts ``found``: step t + 1 is written only
        after step t is committed, so an interruption leaves step ``last + 1`` partial and
        never a later one. Later parts mean a lost or restored record, and steps it does not
        name may be complete: a resume would delete them, an analysis call them missing."""
        later = [p for p in found if step_of(p) > last + 1]
        if later:
            raise CorruptStateError(
                f"behind the folder, which holds parts of steps up to {step_of(later[-1])} "
                f"(e.g. {later[-1].relative_to(self.path)}), while only step {last + 1} can be "
                "unfinished; restore the record of the last complete step",
                source=str(self.progress_file),
                field="last_complete_step",
                value=last,
            )

    def _check_part(self, table: str, t: int, extra: Iterable[str] = ()) -> pd.DataFrame:
        """Check step ``t``'s part of ``table`` from its footer (it exists and has its
        columns) and its ``t`` column; returns ``t`` and the ``extra`` columns."""
        path = self.table_file(table, t)
        with self._parquet(path, t):
            part = pq.ParquetFile(path)
            self._check_columns(path, table, part.schema_arrow.names)
            frame = part.read(columns=["t", *extra]).to_pandas()
        self._check_step(path, frame, t)
        return frame

    @contextlib.contextmanager
    def _parquet(self, path: Path, t: int) -> Iterator[None]:
        """Reading step ``t``'s part ``path``: a missing or unreadable file is named."""
        try:
            yield
        except FileNotFoundError:
            raise self._missing(path, t) from None
        except UnicodeEncodeError:  # the file is fine: pyarrow takes UTF-8 paths only
            raise InputError(
                "the path is not valid UTF-8, which the Parquet reader needs: rename the folder",
                source=os.fsencode(path).decode("utf-8", "backslashreplace"),
            ) from None
        except (OSError, ValueError) as exc:  # pyarrow: ArrowInvalid, ArrowIOError
            raise CorruptStateError(
                f"not a readable Parquet file ({_reason(exc)})", source=str(path)
            ) from None

    def _check_step(self, path: Path, frame: pd.DataFrame, t: int) -> None:
        if (frame["t"] != t).any():
            raise CorruptStateError(
                f"holds rows of another step than {t}", source=str(path), field="t"
            )

    def _check_columns(self, path: Path, table: str, names: Iterable[str]) -> None:
        lacking = [c for c in COLUMNS[table] if c not in set(names)]
        if lacking:
            raise CorruptStateError(
                f"lacks the column(s) {lacking}", source=str(path), field=lacking[0]
            )

    def _missing(self, path: Path, t: int) -> CorruptStateError:
        return CorruptStateError(
            f"missing, though progress.json marks step {t} complete", source=str(path)
        )

    def read_part(self, table: str, t: int) -> pd.DataFrame:
        """Step ``t``'s part of ``table``. Raises CorruptStateError naming the file if it is
        missing, unreadable, lacks a column or holds another step's rows."""
        path = self.table_file(table, t)
        with self._parquet(path, t):
            frame = pd.read_parquet(path)
        self._check_columns(path, table, frame.columns)
        self._check_values(path, table, frame)
        self._check_step(path, frame, t)
        return frame

    def _check_values(self, path: Path, table: str, frame: pd.DataFrame) -> None:
        """Every row of ``frame`` holds a value of its column's kind (``VALUES``, ``ALLOWED``):
        a part written by another tool or damaged is named, never read as other rows or none."""
        for column, kind in VALUES.get(table, {}).items():
            wrong = _wrong_rows(frame[column], kind)
            if wrong.any():
                raise self._wrong_values(path, frame, column, wrong, f"hold no {kind}")
        for column, allowed in ALLOWED.get(table, {}).items():
            wrong = ~frame[column].isin(allowed).to_numpy()
            if wrong.any():
                raise self._wrong_values(path, frame, column, wrong, f"hold none of {allowed}")

    @staticmethod
    def _wrong_values(
        path: Path, frame: pd.DataFrame, column: str, wrong: np.ndarray, what: str
    ) -> CorruptStateError:
        """The error for the rows ``wrong`` of ``column``, with the first as an example."""
        i = int(np.flatnonzero(wrong)[0])
        row = frame.iloc[i]
        shown = [f"{c}={_shown(row[c])}" for c in ROW_KEYS if c in frame.columns and c != column]
        shown.append(f"{column}={_shown(row[column])}")
        return CorruptStateError(
            f"{int(wrong.sum())} of {len(frame)} row(s) {what} (e.g. row {i}: {', '.join(shown)})",
            source=str(path),
            field=column,
        )

    def _check_embeddings(self, t: int, n_eval: int, mmap: bool = False) -> np.ndarray | None:
        """Step ``t``'s embeddings, checked to hold ``n_eval`` rows (None when there are none).
        ``mmap``: map the file (reads its header only)."""
        path = self.embeddings_file(t)
        if not path.exists():
            if n_eval:
                raise CorruptStateError(
                    f"missing, though step {t} has {n_eval} evaluation answers", source=str(path)
                )
            return None
        try:
            vectors = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
        except (OSError, ValueError, EOFError) as exc:
            raise CorruptStateError(
                f"not a readable .npy file ({_reason(exc)})", source=str(path)
            ) from None
        if vectors.ndim != 2 or vectors.shape[0] != n_eval or vectors.dtype.kind != "f":
            raise CorruptStateError(
                f"holds an array of shape {vectors.shape} ({vectors.dtype}); expected "
                f"{n_eval} rows of floats, one per evaluation answer of step {t}",
                source=str(path),
            )
        return vectors

    # ----------------------------------------------------------------- writing
    def create(self, cfg: RunConfig, forked_from: dict | None = None) -> None:
        """Write the config and ``run.json`` of a new run.

        Raises InputError for a path that is a file or a folder holding other files than a
        run's (a config.yaml of the user's, say: it would be written over), CorruptStateError
        for a folder that holds the steps of a run of another config whose ``run.json`` is
        gone (writing over its config would continue them as another system)."""
        if self.path.exists() and not self.path.is_dir():
            raise InputError("not a folder; a run folder is made there", source=str(self.path))
        if not self.exists() and self.path.is_dir():
            self._check_foreign(cfg)
        if not self.exists() and self.progress_file.exists() and self.config_file.exists():
            # A fork writes its config last, with run.json: this is a run that lost run.json.
            data = _read_bytes(self.config_file)
            try:
                raw = yaml.safe_load(data.decode("utf-8"))
                same = RunConfig.model_validate(raw).fingerprint() == cfg.fingerprint()
            except (ValueError, yaml.YAMLError):  # also pydantic's ValidationError
                same = False
            if not same:
                raise CorruptStateError(
                    "missing, and the folder holds the steps of a run of another config",
                    source=str(self.run_file),
                )
        output_dir(self.path)
        text = dump_yaml(cfg.model_dump())
        write_text(self.config_file, text)
        info = {
            "fingerprint": cfg.fingerprint(),
            "config_sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(),
            "name": cfg.name,
            "steps": cfg.steps,
        }
        if forked_from is not None:
            info["forked_from"] = forked_from
        write_json(self.run_file, info)

    @staticmethod
    def _lags_extension(data: bytes, info: dict) -> bool:
        """Whether ``data`` is the config.yaml of the run before its last extension."""
        history = info.get("extended")
        return (
            isinstance(history, list)
            and bool(history)
            and isinstance(history[-1], dict)
            and history[-1].get("config_sha256") == hashlib.sha256(data).hexdigest()
            and isinstance(info.get("steps"), int)
        )

    def extend(self, cfg: RunConfig) -> None:
        """Make the run continue to ``cfg.steps``: ``cfg`` must be the run's config for more
        steps (``RunConfig.extends``). Its steps so far stay; running it goes on from the last
        complete one. The caller holds the folder's lock, and has checked and loaded the
        folder first (``Simulation`` does, then extends). With ``cfg`` already its config, it
        only finishes an extension stopped before config.yaml was written.

        Raises ConfigError if ``cfg`` is another config or fewer steps, InputError as
        ``check_extensible``."""
        earlier = self.read_config(validate=False)
        info = self.info()
        text = dump_yaml(cfg.model_dump())
        sha = hashlib.sha256(text.encode("utf-8")).hexdigest()
        old = _read_bytes(self.config_file)
        if cfg.fingerprint() == earlier.fingerprint():
            if self._lags_extension(old, info) and sha == info["config_sha256"]:
                write_text(self.config_file, text)
            return
        if not cfg.extends(earlier):
            raise other_config(self, cfg, earlier)
        self.check_extensible(cfg, earlier)
        previous = {
            "steps": earlier.steps,
            "fingerprint": info["fingerprint"],
            "config_sha256": hashlib.sha256(old).hexdigest(),
        }
        history = info.get("extended") if isinstance(info.get("extended"), list) else []
        # run.json first: until config.yaml follows, read_config takes the old file for the
        # config run.json names (``_lags_extension``): no moment leaves the folder unreadable.
        write_json(
            self.run_file,
            {
                **info,
                "fingerprint": cfg.fingerprint(),
                "config_sha256": sha,
                "steps": cfg.steps,
                "extended": [*history, previous],
            },
        )
        write_text(self.config_file, text)

    def check_extensible(self, cfg: RunConfig, earlier: RunConfig) -> None:
        """Raise InputError if the run of ``earlier`` cannot go on to ``cfg.steps`` as the
        longer run would have: its agents' weights after its last step were removed (a
        finished sweep system's, without ``--keep-weights``), or its last step was evaluated
        only because it was the last (``evaluation.every``), a snapshot later steps would
        read that the longer run never makes."""
        last = self.last_complete_step()
        present = {m for s in range(last + 1) for m in earlier.active(s)}
        why = None
        if (present or earlier.databases) and last >= 0 and not self.checkpoint(last).is_dir():
            why = (
                f"the agents' weights after its last step ({last}) were removed when it "
                "finished (a sweep keeps them with --keep-weights)"
            )
        elif last == earlier.steps and last % earlier.evaluation.every:
            why = (
                f"its last step ({last}) was evaluated only because it was the last "
                f"(evaluation.every = {earlier.evaluation.every}), a snapshot the later steps "
                "would read and the longer run never makes"
            )
        if why is not None:
            raise InputError(
                f"cannot continue to {cfg.steps} steps: {why}; start the longer run in "
                "another folder",
                source=str(self.path),
                field="steps",
                value=cfg.steps,
            )

    def record_data(self, digests: dict[str, str]) -> None:
        """Keep in ``run.json`` the digests of the data the run reads (``data_digests``)."""
        write_json(self.run_file, {**self.info(), "data": digests})

    def _check_foreign(self, cfg: RunConfig) -> None:
        """Refuse to make a run in a folder holding files that are not a run's."""
        layout = {"config.yaml", "run.json", "progress.json", LEASE_FILE, "agents", "analysis"}
        layout |= {"tables", "embeddings", "checkpoints", "report.html", FORK_MARK}
        # What a sweep's subprocess executor keeps beside the run it starts there.
        layout |= {"system.yaml", "run.log"}
        # Hidden temporary files and folders are the atomic writes of an interrupted run.
        foreign = sorted(
            p.name
            for p in self.path.iterdir()
            if p.name not in layout and not (p.name.startswith(".") and ".tmp" in p.name)
        )
        if foreign:
            raise InputError(
                f"not a run folder: it holds other files ({', '.join(foreign[:3])}); give a new "
                "or empty folder",
                source=str(self.path),
            )
        if self.config_file.is_dir():
            raise InputError(
                "a folder, where the run writes its config; give another folder",
                source=str(self.config_file),
            )
        ours = dump_yaml(cfg.model_dump())
        if (
            self.config_file.exists()
            and not self.progress_file.exists()
            and _read_bytes(self.config_file) != ours.encode("utf-8")
        ):
            # Only a run started this instant has its config.yaml and no run.json yet: this
            # one is the user's own (comments, scales) and would be written over.
            raise InputError(
                "not this run's config, and the run would write its own over it; give another "
                "folder",
                source=str(self.config_file),
            )

    def is_running(self) -> bool:
        """Whether a live process holds the folder's lease (is running the run now)."""
        held = Lease(self.path / LEASE_FILE).read()
        return held is not None and not Lease.stale(held)

    @contextlib.contextmanager
    def lock(self, wait: float = 0.0) -> Iterator[None]:
        """Hold the folder for one writer, on this machine or any other that shares the
        folder (a lease, ``perspectives.lease``: not ``flock``, which network filesystems do
        not keep). Waits up to ``wait`` s for a holder to finish or go stale (a killed
        process's lease is stale at once on its own machine, elsewhere after 30 s); raises
        RunFolderBusy if another process still holds it."""
        output_dir(self.path)
        lease = Lease(self.path / LEASE_FILE)
        try:
            lease.acquire(wait)
        except OSError as exc:  # a full disk, no permission: the lease file cannot be written
            raise InputError(
                f"cannot take the folder's lease ({exc.strerror or exc})", source=str(self.path)
            ) from None
        except LeaseHeld as exc:
            holder = exc.holder
            who = (
                f"its lease {LEASE_FILE} is not readable; it is taken over "
                f"{Lease(self.path / LEASE_FILE).ttl:.0f} s after its last change"
                if holder.get("unreadable")
                else f"{holder.get('host')}, pid {holder.get('pid')}"
            )
            raise RunFolderBusy(
                f"another process is running this folder ({who}); wait for it or stop it first",
                source=str(self.path),
            ) from None
        self._lease = lease
        try:
            yield
        finally:
            self._lease = None
            lease.release()

    def write_step(
        self,
        t: int,
        responses: list[dict],
        edges: Iterable[tuple[str, str]],
        vectors: np.ndarray | None,
    ) -> None:
        """Write step ``t``'s responses, edges and evaluation embeddings (not yet committed).
        The responses part carries a digest of its evaluation rows in order (``EVAL_DIGEST``):
        the embeddings are paired with those rows by position."""
        frame = pd.DataFrame(responses, columns=COLUMNS["responses"])
        frame.attrs[EVAL_DIGEST] = eval_digest(frame[frame["phase"] == "eval"])
        write_parquet(self.table_file("responses", t), frame)
        frame = pd.DataFrame(sorted(edges), columns=["src", "dst"]).assign(t=t)
        write_parquet(self.table_file("edges", t), frame[COLUMNS["edges"]])
        if vectors is not None:
            write_npy(self.embeddings_file(t), np.asarray(vectors, np.float32))

    def write_databases(self, t: int, items: list[dict], access: list[dict]) -> None:
        """Write the items added to the databases at step ``t`` and the database edges
        present at it (not yet committed)."""
        for table, rows in (("db_items", items), ("db_access", access)):
            frame = pd.DataFrame(rows, columns=COLUMNS[table]).astype({"t": "int64"})
            write_parquet(self.table_file(table, t), frame)

    def write_events(self, t: int, events: list[dict]) -> None:
        """Write step ``t``'s events (skips, joins, leaves, learning and step timings)."""
        write_parquet(self.table_file("events", t), pd.DataFrame(events, columns=COLUMNS["events"]))

    def check_lease(self, t: int) -> None:
        """Raise RunFolderBusy if this object runs the folder (``lock``) but its lease is no
        longer its own: it stalled, or was stopped, past the lease's time and another process
        took the run over. Step ``t`` is then left to that process."""
        lease = self._lease
        if lease is not None and not lease.still_held():
            raise RunFolderBusy(
                f"this process lost the folder's lease (it was stopped or stalled for more than "
                f"{lease.ttl:.0f} s) and another process took the run over; step {t} is left "
                "for it",
                source=str(self.path),
            )

    def commit_step(self, t: int, keep: Iterable[int] = ()) -> None:
        """Mark step ``t`` complete; remove checkpoints but ``t``'s and those in ``keep``.
        Raises RunFolderBusy, marking nothing, if this process holds the folder's lease no
        more (it stalled, or was stopped, past the lease's time and another took it over)."""
        self.check_lease(t)
        write_json(self.progress_file, {"last_complete_step": t})
        names = {part_name(k) for k in keep} | {part_name(t)}
        for old in (self.path / "checkpoints").glob("step-*"):
            if old.name not in names:
                shutil.rmtree(old, ignore_errors=True)

    def drop_incomplete(self, last: int | None = None) -> None:
        """Remove the parts of steps after ``last`` (default: the last complete step, once
        the folder is checked: ``check`` raises before anything goes)."""
        last = self.check() if last is None else last
        for sub in (*STEP_PARTS, "checkpoints"):
            for p in (self.path / sub).glob("step-*"):
                if step_of(p) > last:
                    shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink()
        self._drop_temporaries()

    def _drop_temporaries(self) -> None:
        """Remove the temporary files and folders of writes a killed process left (a
        weights file's is as large as the weights). Only the run's writer calls this, under
        its lease; ``analysis/`` is another command's and is left alone."""
        for root, dirs, files in os.walk(self.path):
            here = Path(root)
            if here == self.path and "analysis" in dirs:
                dirs.remove("analysis")
            for name in [d for d in dirs if _temporary(d)]:
                dirs.remove(name)
                shutil.rmtree(here / name, ignore_errors=True)
            for name in filter(_temporary, files):
                (here / name).unlink(missing_ok=True)

    # ----------------------------------------------------------------- reading
    def read_parts(self, table: str, upto: int | None = None) -> pd.DataFrame:
        """One table's per-step parts concatenated, up to the last complete step (or ``upto``).

        Raises CorruptStateError naming a part that is missing or damaged."""
        last = self.last_complete_step()
        if upto is not None:
            last = min(last, upto)
        frames = [self.read_part(table, t) for t in range(last + 1)]
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()

    def evaluation_snapshots(
        self, upto: int | None = None, *, databases: bool = False
    ) -> Iterator[tuple[pd.DataFrame, np.ndarray]]:
        """Each complete step's evaluation answers (``t, model, question_id, replicate, text``,
        in table order) with their embeddings, for the steps that have them: the models'
        answers, or with ``databases`` only the databases' (their probes').

        Raises CorruptStateError naming a responses part or embeddings file that is missing,
        damaged, of another length than the other, or holding NaN or infinity, or a part whose
        evaluation rows differ from the digest it was written with (reordered or edited by a
        tool that kept its metadata, as pandas and pyarrow do)."""
        last = self.last_complete_step()
        if upto is not None:
            last = min(last, upto)
        names = {d.name for d in self.read_config(validate=False).databases}
        for t in range(last + 1):
            resp = self.read_part("responses", t)
            ev = resp[resp["phase"] == "eval"].reset_index(drop=True)
            vectors = self._check_embeddings(t, len(ev))
            written = resp.attrs.get(EVAL_DIGEST)  # parts written before it have none
            if vectors is not None and written is not None and written != eval_digest(ev):
                raise CorruptStateError(
                    "its evaluation answers are not the ones, or not in the order, its "
                    "embeddings were written for (rows reordered or edited since): each "
                    "embedding would be read as another answer's",
                    source=str(self.table_file("responses", t)),
                )
            if vectors is not None:
                if not np.isfinite(vectors).all():
                    raise CorruptStateError(
                        "holds values that are not finite", source=str(self.embeddings_file(t))
                    )
                keep = (ev["model"].isin(names) == databases).to_numpy()
                if databases and not keep.any():
                    continue
                cols = ["t", "model", "question_id", "replicate", "text"]
                if keep.all():
                    yield ev[cols], vectors
                else:
                    yield ev.loc[keep, cols].reset_index(drop=True), vectors[keep]

    # ----------------------------------------------------------- forks, weights
    def can_fork(self, step: int) -> bool:
        """Whether the folder holds a run with step ``step`` complete and its agents'
        checkpoint."""
        return (
            not self.holds_partial_fork()
            and self.last_complete_step() >= step
            and self.checkpoint(step).is_dir()
        )

    def holds_partial_fork(self) -> bool:
        """Whether the folder holds what an interrupted ``fork`` left, and no run."""
        return self.fork_mark.exists() and not self.exists()

    @property
    def fork_mark(self) -> Path:
        """Present while a ``fork`` into this folder is under way (or was interrupted)."""
        return self.path / FORK_MARK

    def discard_partial_fork(self) -> bool:
        """Remove what an interrupted ``fork`` into this folder left (step parts, their
        record, checkpoints), so that the folder can take a run again; returns whether there
        was one. Anything else, a damaged run's steps included, is left as it is."""
        if not self.holds_partial_fork():
            return False
        self._clear_steps()
        self.fork_mark.unlink(missing_ok=True)
        return True

    def _clear_steps(self) -> None:
        self.progress_file.unlink(missing_ok=True)
        for sub in (*STEP_PARTS, "checkpoints", "agents"):
            shutil.rmtree(self.path / sub, ignore_errors=True)

    def fork(self, step: int, cfg: RunConfig, dest: str | os.PathLike) -> RunFolder:
        """Make ``dest`` a run folder of ``cfg`` whose steps 0..``step`` are this run's
        (linked, or copied across file systems); running ``cfg`` there continues from
        ``step + 1``. The caller vouches the two are the same system up to ``step``.

        Raises InputError if this folder lacks that step or its checkpoint, or ``dest`` is
        already a run (a damaged part is copied as it is, and named when ``dest`` runs)."""
        target = RunFolder(dest)
        if not self.can_fork(step):
            raise InputError(
                f"holds no complete step {step} with its checkpoint", source=str(self.path)
            )
        if target.exists():
            raise InputError("already a run folder", source=str(target.path))
        # Leftovers of an interrupted fork go; progress.json, written last, commits the new
        # one. The mark says, until run.json is written, that the steps here are a copy's.
        output_dir(target.path)
        target.fork_mark.touch()
        target._clear_steps()
        for sub in STEP_PARTS:
            for p in sorted((self.path / sub).glob("step-*")):
                if step_of(p) <= step:
                    (target.path / sub).mkdir(parents=True, exist_ok=True)
                    link_or_copy(p, target.path / sub / p.name)
        shutil.copytree(self.checkpoint(step), target.checkpoint(step), copy_function=link_or_copy)
        write_json(target.progress_file, {"last_complete_step": step})
        # run.json last: until it exists the folder is no run, and a new fork starts over.
        target.create(cfg, {"run": os.path.relpath(self.path, target.path), "step": step})
        data = self.info().get("data") if self.exists() else None
        if isinstance(data, dict):  # its steps 0..step were made on this data
            target.record_data(data)
        target.fork_mark.unlink()
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


def other_config(folder: RunFolder, cfg: RunConfig, made: RunConfig) -> ConfigError:
    """The error for running ``folder``, made from ``made``, with ``cfg``, another config."""
    shorter = made.extends(cfg)
    return ConfigError(
        "the run folder was made from a different config"
        + (f" ({made.steps} steps; a run goes on, never back)" if shorter else ""),
        source=str(folder.path),
    )


def read_parts(
    run: str | os.PathLike | RunFolder, table: str, upto: int | None = None
) -> pd.DataFrame:
    """A run's ``table`` (``responses``, ``edges``, ``events``) up to its last complete step."""
    return (run if isinstance(run, RunFolder) else RunFolder(run)).read_parts(table, upto)


def last_complete_step(run: str | os.PathLike | RunFolder) -> int:
    """The last complete step of the run in ``run``, or -1."""
    return (run if isinstance(run, RunFolder) else RunFolder(run)).last_complete_step()
