"""A harness for bad-input tests: run a command as a user would, then check that it failed
cleanly (exit code 2, one line naming the source and the field, no traceback) and that no file
that existed before it ran was changed or deleted.

A case is a ``Case``: the files it needs (written into a fresh folder that is also the working
directory), the command's arguments (``{tmp}`` is replaced by that folder) and the words the
error line must contain. Tests build their tables of cases and call ``check_case``.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from typer.testing import CliRunner

from perspectives.cli.app import app

runner = CliRunner()

# A small valid run config of fake (torch-free) models: bad configs are it with one change.
FAKE_CONFIG = {
    "name": "bad",
    "seed": 0,
    "steps": 2,
    "question_bank": "neutral",
    "groups": [
        {"name": "a", "count": 2, "backend": "fake", "model": "calm"},
        {"name": "b", "count": 2, "backend": "fake", "model": "loud"},
    ],
    "interaction": {"questions": 2},
    "evaluation": {"n_prompts": 3},
    "communication": {"type": "complete"},
}


@dataclass
class Case:
    """One bad input: ``args`` of the ``perspectives`` command, ``files`` to write first
    (``name -> str | bytes``), ``setup`` for what files cannot say (a run folder, a mode), and
    ``expect``: the (case-insensitive) words the error line must contain."""

    id: str
    args: list[str]
    expect: list[str] = field(default_factory=list)
    files: dict[str, str | bytes] = field(default_factory=dict)
    setup: Callable[[Path], None] | None = None
    code: int = 2
    # The command must also write nothing (a config refused before any work).
    writes_nothing: bool = False


def checksums(root: Path) -> dict[str, str]:
    """``relative path -> sha256`` of every file under ``root`` (the lock file aside), and
    ``relative path/ -> "folder"`` of every folder."""
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file() and p.name != ".lock":
            out[str(p.relative_to(root))] = hashlib.sha256(p.read_bytes()).hexdigest()
        elif p.is_dir():
            out[f"{p.relative_to(root)}/"] = "folder"
    return out


def invoke(args: list[str], cwd: Path):
    """Run the CLI in process with ``cwd`` as the working directory."""
    old = Path.cwd()
    os.chdir(cwd)
    try:
        return runner.invoke(app, args, catch_exceptions=True)
    finally:
        os.chdir(old)


def check_case(case: Case, tmp: Path) -> str:
    """Run ``case`` in ``tmp`` and assert a clean failure; returns the error line."""
    for name, content in case.files.items():
        path = tmp / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
    if case.setup is not None:
        case.setup(tmp)
    before = checksums(tmp)
    args = [a.replace("{tmp}", str(tmp)) for a in case.args]
    result = invoke(args, tmp)
    output = result.output
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        import traceback

        tb = "".join(traceback.format_exception(result.exception))
        raise AssertionError(f"{case.id}: raised instead of a clean error:\n{tb}\n{output}")
    assert "Traceback" not in output, f"{case.id}: traceback printed:\n{output}"
    assert result.exit_code == case.code, (
        f"{case.id}: exit code {result.exit_code}, expected {case.code}:\n{output}"
    )
    lines = [ln for ln in output.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("error:") or ln.startswith("Error")]
    usage = any(ln.startswith("Usage:") for ln in lines)
    if not usage:
        assert len(errors) == 1, f"{case.id}: expected one error line:\n{output}"
    text = " ".join(lines).lower()
    for word in case.expect:
        word = word.replace("{tmp}", str(tmp)).lower()
        assert word in text, f"{case.id}: {word!r} not in the error:\n{output}"
    after = checksums(tmp)
    changed = sorted(k for k, v in before.items() if after.get(k) != v)
    assert not changed, f"{case.id}: changed or deleted input files: {changed}"
    if case.writes_nothing:
        new = sorted(set(after) - set(before))
        assert not new, f"{case.id}: wrote files before refusing: {new}"
    return errors[0] if errors else output
