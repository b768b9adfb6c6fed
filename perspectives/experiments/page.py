"""The generated blocks of a results page: ``<!-- BEGIN name -->`` ... ``<!-- END name -->``.

A block's name is the folder of its sweep under the runs folder (``cs2-adversary-lr1e-4``);
``<!-- BEGIN name upto=N -->`` marks a block analysed up to step N only. The markers are read
strictly, line by line: a damaged marker must stop the rewrite with the line it is on, not
drop a table from the page without a word. Markers inside fenced code (```` ``` ```` or
``~~~``) are text, not blocks: a page may show the syntax.

Lines are split on "\\n" only (a trailing "\\r" is one of a CRLF line's ending), so form feeds,
U+2028 and the like stay as they are, and every byte outside a rewritten block is kept.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import InputError

_NAME = r"[A-Za-z0-9][A-Za-z0-9._-]*"
_BEGIN = re.compile(rf"^<!-- BEGIN (?P<name>{_NAME})(?: upto=(?P<upto>0|[1-9]\d*))? -->$")
_END = re.compile(rf"^<!-- END (?P<name>{_NAME}) -->$")
_MARKER = re.compile(r"<!--\s*(BEGIN|END)\b")
# A code fence: 3 or more backticks or tildes, indented at most 3 spaces (CommonMark), perhaps
# quoted. Deeper, ``` is text of an indented code block, and taking it for a fence would hide
# the markers after it without a word; a marker in a fence we miss is at worst parsed, loudly.
_FENCE = re.compile(r"^(?:[ ]{0,3}>)*[ ]{0,3}(?P<fence>`{3,}|~{3,})(?P<rest>.*)$")


@dataclass(frozen=True)
class Block:
    """One generated block: its ``name``, ``upto`` step (or None), and the indices of its
    marker lines in the page's lines (``split_lines``)."""

    name: str
    upto: int | None
    begin: int
    end: int

    @property
    def label(self) -> str:
        return self.name if self.upto is None else f"{self.name} upto={self.upto}"


def split_lines(text: str) -> list[str]:
    """The page's lines, split on "\\n" only; CRLF lines keep their "\\r", so that
    ``"\\n".join`` gives the page back byte for byte."""
    return text.split("\n")


def _fence_lines(lines: list[str], source: str) -> set[int]:
    """The indices of the lines inside fenced code, fences included. Raises InputError if a
    fence left open to the end of the page hides a block marker."""
    inside: set[int] = set()
    open_: tuple[str, int] | None = None  # the fence's characters and its line
    for i, raw in enumerate(lines):
        m = _FENCE.match(raw.removesuffix("\r"))
        if open_ is None:
            # A backtick fence's info string has no backtick (CommonMark): else inline code.
            if m and not (m["fence"][0] == "`" and "`" in m["rest"]):
                open_ = (m["fence"], i)
        elif m and m["fence"][0] == open_[0][0] and len(m["fence"]) >= len(open_[0]):
            if not m["rest"].strip():
                inside.update(range(open_[1], i + 1))
                open_ = None
    if open_ is not None:
        hidden = [i for i in range(open_[1] + 1, len(lines)) if _MARKER.search(lines[i])]
        if hidden:
            raise InputError(
                f"a code fence opened on line {open_[1] + 1} is never closed, and hides the "
                f"block marker on line {hidden[0] + 1}",
                source=source,
                value=lines[open_[1]].strip(),
            )
    return inside


def read_blocks(text: str, source: str = "page") -> list[Block]:
    """The page's blocks, in order. Raises InputError naming ``source`` and the line for a
    marker that is malformed, unmatched or nested, or a name that is not a plain folder
    name."""
    lines = split_lines(text)
    code = _fence_lines(lines, source)
    blocks: list[Block] = []
    open_: tuple[str, int | None, int] | None = None
    for i, raw in enumerate(lines):
        line = raw.strip()
        if i in code or not _MARKER.search(line):
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
    """The lines between a block's markers, joined by "\\n" (a CRLF line's "\\r" dropped)."""
    body = split_lines(text)[block.begin + 1 : block.end]
    return "\n".join(line.removesuffix("\r") for line in body)


def _line_ending(text: str) -> str:
    """The page's line ending: CRLF if most of its lines end so, else LF."""
    return "\r\n" if 2 * text.count("\r\n") > text.count("\n") else "\n"


def replace_block(
    text: str, name: str, content: str, upto: int | None = None, source: str = "page"
) -> str:
    """The page with the body of every block ``name`` (``upto``) replaced by ``content``,
    written with the page's line ending; every other byte is kept. Raises InputError if the
    page has no such block (or its markers are damaged)."""
    blocks = [b for b in read_blocks(text, source) if b.name == name and b.upto == upto]
    if not blocks:
        label = name if upto is None else f"{name} upto={upto}"
        raise InputError(f"no block {label!r} on the page", source=source)
    cr = "\r" if _line_ending(text) == "\r\n" else ""
    content = content.rstrip("\r\n")
    body = [ln.removesuffix("\r") + cr for ln in content.split("\n")] if content else []
    lines = split_lines(text)
    for b in reversed(blocks):
        lines[b.begin + 1 : b.end] = body
    return "\n".join(lines)
