"""The generated blocks of a results page: ``<!-- BEGIN name -->`` ... ``<!-- END name -->``.

A block's name is the folder of its sweep under the runs folder (``cs2-adversary-lr1e-4``);
``<!-- BEGIN name upto=N -->`` marks a block analysed up to step N only. The markers are read
strictly, line by line: a damaged marker must stop the rewrite with the line it is on, not
drop a table from the page without a word.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import InputError

_NAME = r"[A-Za-z0-9][A-Za-z0-9._-]*"
_BEGIN = re.compile(rf"^<!-- BEGIN (?P<name>{_NAME})(?: upto=(?P<upto>0|[1-9]\d*))? -->$")
_END = re.compile(rf"^<!-- END (?P<name>{_NAME}) -->$")
_MARKER = re.compile(r"<!--\s*(BEGIN|END)\b")


@dataclass(frozen=True)
class Block:
    """One generated block: its ``name``, ``upto`` step (or None), and the indices of its
    marker lines in the page's lines."""

    name: str
    upto: int | None
    begin: int
    end: int

    @property
    def label(self) -> str:
        return self.name if self.upto is None else f"{self.name} upto={self.upto}"


def read_blocks(text: str, source: str = "page") -> list[Block]:
    """The page's blocks, in order. Raises InputError naming ``source`` and the line for a
    marker that is malformed, unmatched or nested, or a name that is not a plain folder
    name."""
    lines = text.splitlines()
    blocks: list[Block] = []
    open_: tuple[str, int | None, int] | None = None
    for i, raw in enumerate(lines):
        line = raw.strip()
        if not _MARKER.search(line):
            continue
        where = f"{source}, line {i + 1}"
        begin, end = _BEGIN.match(line), _END.match(line)
        if begin is None and end is None:
            raise InputError(
                "a malformed block marker (expected <!-- BEGIN name --> or <!-- BEGIN name "
                "upto=N -->, and <!-- END name -->, where name is a plain folder name)",
                source=where,
                value=line,
            )
        if begin is not None:
            if open_ is not None:
                raise InputError(
                    f"a block begins inside block {open_[0]!r} (opened on line {open_[2] + 1}), "
                    "which has no <!-- END --> before it",
                    source=where,
                    value=line,
                )
            upto = int(begin["upto"]) if begin["upto"] is not None else None
            open_ = (begin["name"], upto, i)
            continue
        if open_ is None or end["name"] != open_[0]:
            expected = f"<!-- END {open_[0]} -->" if open_ is not None else "a block to end"
            raise InputError(f"an END marker where {expected} was expected", source=where)
        blocks.append(Block(open_[0], open_[1], open_[2], i))
        open_ = None
    if open_ is not None:
        raise InputError(
            f"<!-- BEGIN {open_[0]} --> has no matching <!-- END {open_[0]} -->",
            source=f"{source}, line {open_[2] + 1}",
        )
    return blocks


def block_body(text: str, block: Block) -> str:
    """The lines between a block's markers."""
    return "\n".join(text.splitlines()[block.begin + 1 : block.end])


def replace_block(
    text: str, name: str, content: str, upto: int | None = None, source: str = "page"
) -> str:
    """The page with the body of every block ``name`` (``upto``) replaced by ``content``.
    Raises InputError if the page has no such block (or its markers are damaged)."""
    blocks = [b for b in read_blocks(text, source) if b.name == name and b.upto == upto]
    if not blocks:
        label = name if upto is None else f"{name} upto={upto}"
        raise InputError(f"no block {label!r} on the page", source=source)
    newline = "\r\n" if "\r\n" in text else "\n"  # keep the page's line endings
    lines = text.splitlines()
    for b in reversed(blocks):
        lines[b.begin + 1 : b.end] = content.rstrip("\n").splitlines()
    return newline.join(lines) + (newline if text.endswith(("\n", "\r")) else "")
