"""Helpers for tests that cut a run short and resume it."""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from pathlib import Path

import pytest

from perspectives.simulation.config import parse_run_config
from perspectives.simulation.engine import Simulation
from perspectives.simulation.rundir import read_parts


def run_until_interrupted(raw, folder, embedder, at: int) -> None:
    """Run the raw config ``raw`` into ``folder`` as if Ctrl-C came at the start of step
    ``at``."""
    cut = Simulation.create(parse_run_config(raw, "t"), folder, embedder=embedder)
    original = cut._step

    def stop(t):
        if t == at:
            raise KeyboardInterrupt
        original(t)

    cut._step = stop
    with pytest.raises(KeyboardInterrupt):
        cut.run()


def tables(folder, names=("responses", "edges")) -> dict:
    """The run's tables ``names`` up to its last complete step."""
    return {k: read_parts(folder, k) for k in names}


def rewind(folder: Path, last: int, steps: Iterable[int]) -> None:
    """Make ``folder`` a run complete to step ``last``, as an interruption leaves it: the
    files of ``steps`` (those after ``last``) removed and the progress record set back."""
    for t in steps:
        for part in list(Path(folder).rglob(f"step-{t:05d}*")):
            if part.is_dir():
                shutil.rmtree(part)
            else:
                part.unlink()
    (Path(folder) / "progress.json").write_text(f'{{"last_complete_step": {last}}}')
