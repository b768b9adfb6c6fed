"""Progress bars for long work (generation, embedding), quiet when asked to be."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


@contextlib.contextmanager
def progress_bar(
    description: str, total: int, show: bool = True
) -> Iterator[Callable[[int], None]]:
    """Yield ``advance(k)``, which moves a bar of ``total`` steps by ``k`` (no-op if not shown)."""
    if not show:
        yield lambda k: None
        return
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, transient=False) as bar:
        task = bar.add_task(description, total=total)
        yield lambda k: bar.advance(task, k)
