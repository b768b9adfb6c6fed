"""The verdict table of the results page: each of the paper's claims, judged by a stated rule
on every table of its case study, with the strongest verdict and the conditions it holds under.

The verdicts read the page's own tables (the blocks ``perspectives results`` writes), not the
run folders: a block keeps its numbers when its runs are gone, and a block regenerated from its
runs changes the verdicts with it. Each rule is written next to its claim (``Claim.rule``) and
printed under the table, so a reader can check every word against the numbers.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from ..errors import InputError
from .page import block_body, read_blocks

CASE_STUDIES = ("cs1-disruption", "cs2-adversary", "cs3-polarization")

VERDICTS = ("reproduced", "in direction", "not reproduced")
VERDICTS_BLOCK = "verdicts"

_NUM = r"[-−]?\d+(?:\.\d+)?(?:[eE][-+−]?\d+)?"
# A numeric cell: "–" (none), a mean with its range over seeds, or a list of values.
_CELL = re.compile(rf"^(–|{_NUM}(?: \({_NUM}–{_NUM}\))?|{_NUM}(?:, {_NUM})*)$")
_TEXT_COLUMNS = ("condition",)
_SEPARATOR = re.compile(r"^:?-+:?$")  # a cell of a table's |---| row
# The cells that name a row: what Table.find looks rows up by (case study 2: targets x period).
_KEYS = (("condition",), ("targets", "attack every"))
# What ``reproduction._seeds_note`` writes under a table with runs still going or failed:
# their "at T" columns are at each run's last complete step, which is not the run's T.
UNFINISHED_NOTES = ("Not finished:", "Failed:")
# ... and under a table with runs whose answers collapsed (``COLLAPSED_SHARE`` or more of the
# models' answers at T shared word for word among them; or, in a table with the column, one
# answer that often): the rows of those conditions measure the collapse, not a perspective,
# and are not judged.
COLLAPSED_NOTE = "Collapsed by T"
COLLAPSED_SHARE = 0.5
_COLLAPSED = re.compile(rf"{COLLAPSED_NOTE} \([^)]*\): (.*?)\.(?:\s|$)")


@dataclass(frozen=True)
class Table:
    """One block's table: ``rows`` of header -> cell text, in page order."""

    name: str
    rows: list[dict[str, str]]
    finished: bool = True  # False when the block's note names runs not finished yet
    collapsed: tuple[str, ...] = ()  # conditions whose rows were left out (their runs collapsed)

    def find(self, **match: str) -> dict[str, str] | None:
        """The first row whose cells equal ``match`` (keys: headers, ``_`` for spaces)."""
        for row in self.rows:
            if all(row.get(k.replace("_", " ")) == v for k, v in match.items()):
                return row
        return None

    @property
    def seeds(self) -> int:
        return int(max((value(r, "runs") or 0 for r in self.rows), default=0))


def value(row: dict[str, str] | None, header: str) -> float | None:
    """The number in the first column whose header starts with ``header`` (the mean, for a
    cell like ``1.06 (1.01–1.10)``), or None if there is none."""
    if row is None:
        return None
    for key, cell in row.items():
        if key.startswith(header):
            m = re.match(_NUM, cell)
            return float(m.group(0).replace("−", "-")) if m else None
    return None


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().removeprefix("|").removesuffix("|").split("|")]


def parse_tables(text: str, source: str = "page") -> list[Table]:
    """The table of every case study's block on the page, except comparisons (``upto=``)
    and the verdict block itself; a block whose note names runs not finished or failed is
    read with ``finished=False``. Raises InputError naming the block, row and column of a
    row whose cells do not match the header, of a cell that is not a number, of a table
    without its ``|---|`` separator row, or of a second row for the same condition."""
    tables = []
    for block in read_blocks(text, source):
        if block.upto is not None or not block.name.startswith(CASE_STUDIES):
            continue
        body = block_body(text, block)
        lines = [ln for ln in body.split("\n") if ln.strip().startswith("|")]
        if not lines:
            continue
        _check_separator(lines, f"{source}, block {block.name}")
        if len(lines) < 3:
            continue  # a header without rows: nothing to judge
        header, rows = _cells(lines[0]), []
        for i, line in enumerate(lines[2:], start=1):
            cells = _cells(line)
            where = f"{source}, block {block.name}, row {i}"
            if len(cells) != len(header):
                raise InputError(
                    f"{len(cells)} cells, and the header has {len(header)}", source=where
                )
            for h, cell in zip(header, cells, strict=True):
                if h not in _TEXT_COLUMNS and not _CELL.match(cell):
                    raise InputError("not a number", source=where, field=h, value=cell)
            rows.append(dict(zip(header, cells, strict=True)))
        _check_unique(rows, header, f"{source}, block {block.name}")
        finished = not any(note in body for note in UNFINISHED_NOTES)
        # A row is left out when the note names its condition, or when its most common
        # answer (a seed's, the top of the range over seeds) is half or more of the answers.
        named = collapsed_conditions(body)
        collapsed = {
            condition_of(r)
            for r in rows
            if condition_of(r) in named
            or (highest(r, "most common answer at T") or 0) >= COLLAPSED_SHARE
        }
        kept = [r for r in rows if condition_of(r) not in collapsed]
        tables.append(Table(block.name, kept, finished, tuple(sorted(collapsed))))
    return tables


def collapsed_conditions(body: str) -> set[str]:
    """The conditions a block's note names as collapsed (``COLLAPSED_NOTE``), as
    ``condition_of`` names their rows."""
    m = _COLLAPSED.search(body)
    if not m:
        return set()
    return {_row_name(c) for c in re.findall(r"(\S+) seed -?\d+ \(", m.group(1))}


def condition_of(row: dict[str, str]) -> str:
    """A row's condition: its ``condition`` cell, or case study 2's ``targets-N[-every-K]``."""
    if "condition" in row:
        return row["condition"]
    targets, every = row.get("targets", ""), row.get("attack every", "–")
    return f"targets-{targets}" + ("" if every == "–" else f"-every-{every}")


def _row_name(condition: str) -> str:
    """The name of the row a condition's runs are in: case study 2's table has one row for
    no target, whatever its condition's attack period."""
    return re.sub(r"^targets-0-every-\d+$", "targets-0", condition)


def highest(row: dict[str, str], header: str) -> float | None:
    """The largest number in the first column whose header starts with ``header`` (the top
    of a range ``0.46 (0.02–0.90)``, the largest of a list), or None."""
    for key, cell in row.items():
        if key.startswith(header):
            found = [float(x.replace("−", "-")) for x in re.findall(_NUM, cell)]
            return max(found) if found else None
    return None


def _check_separator(lines: list[str], where: str) -> None:
    """Raise InputError unless the table's second line is its ``|---|`` separator: read as a
    separator, a first data row would be dropped without a word."""
    cells = _cells(lines[1]) if len(lines) > 1 else []
    if not cells or not all(_SEPARATOR.match(c) for c in cells):
        raise InputError(
            "the line under the table's header is not its separator row (|---|---|...), "
            "so the rows cannot be told from it",
            source=where,
            value=lines[1].strip() if len(lines) > 1 else lines[0].strip(),
        )


def _check_unique(rows: list[dict[str, str]], header: list[str], where: str) -> None:
    """Raise InputError naming the row if two rows have the same key cells (``Table.find``
    reads the first only, so the other would be ignored without a word)."""
    keys = next((k for k in _KEYS if all(h in header for h in k)), None)
    if keys is None:
        return
    seen: dict[tuple[str, ...], int] = {}
    for i, row in enumerate(rows, start=1):
        key = tuple(row[k] for k in keys)
        if key in seen:
            raise InputError(
                f"the same {' and '.join(keys)} as row {seen[key]}: one row per condition",
                source=f"{where}, row {i}",
                value=" | ".join(key),
            )
        seen[key] = i


@dataclass(frozen=True)
class Judgement:
    verdict: str  # one of VERDICTS
    evidence: str


@dataclass(frozen=True)
class Claim:
    study: str  # the case study's preset name
    label: str  # e.g. "CS2.3"
    text: str  # what the paper reports
    rule: str  # how the verdict is decided, in words
    judge: Callable[[Table], Judgement | None]  # None: this table cannot tell


def _grade(strong: bool, direction: bool) -> str:
    return VERDICTS[0] if strong else VERDICTS[1] if direction else VERDICTS[2]


def _f(x: float | None) -> str:
    return "–" if x is None else f"{x:.2f}"


# ---------------------------------------------------------------- case study 1


def _cs1(table: Table) -> tuple[dict | None, dict | None]:
    return table.find(condition="disruption"), table.find(condition="no-disruption")


def _cs1_sinks(table: Table) -> Judgement | None:
    dis, _ = _cs1(table)
    local, before, after = (
        value(dis, "locality"),
        value(dis, "iso-mirror step, t ≤"),
        value(dis, "iso-mirror step, t ≥"),
    )
    if None in (local, before, after):
        return None
    gather, settle = local < 0.95, after < before
    return Judgement(
        _grade(gather and settle, gather or settle),
        f"with the disruption: locality T ÷ t* {_f(local)}, ψ step {_f(before)} → {_f(after)}",
    )


def _cs1_clusters(table: Table) -> Judgement | None:
    rows = _cs1(table)
    changes = [value(r, "count changes") for r in rows]
    if None in changes:
        return None
    stable = [c <= 0.2 for c in changes]
    counts = [value(r, "clusters at T") for r in rows]
    # One cluster in both systems is a settled population, not the paper's sinks to count.
    single = all(c is not None and c <= 1 for c in counts)
    clusters = " and ".join("?" if c is None else _f(c) for c in counts)
    return Judgement(
        _grade(all(stable) and not single, any(stable)),
        f"count changes after t*: {_f(changes[0])} with, {_f(changes[1])} without the "
        f"disruption; clusters at T: {clusters}",
    )


def _cs1_ari(table: Table) -> Judgement | None:
    dis, no = _cs1(table)
    a = [value(r, h) for r in (dis, no) for h in ("mean ARI, t >", "mean ARI, t <")]
    if None in a:
        return None
    after, before = a[0] - a[2], a[1] - a[3]
    # One cluster at every step after t* labels every model alike, and two such labelings
    # have an ARI of 1 by definition: stable, but not the paper's stable local sinks.
    clusters, changes = value(dis, "clusters at T"), value(dis, "count changes")
    single = clusters is not None and clusters <= 1 and changes in (None, 0)
    evidence = (
        f"ARI after t* {_f(a[0])} with, {_f(a[2])} without; before t* (one system) "
        f"{_f(a[1])} and {_f(a[3])}"
    )
    return Judgement(
        _grade(after > 0 and after > 2 * abs(before) and not single, after > 0),
        evidence + ("; with: one cluster at every step after t*" if single else ""),
    )


def _cs1_isomirror(table: Table) -> Judgement | None:
    dis, no = _cs1(table)
    before, after = value(dis, "iso-mirror step, t ≤"), value(dis, "iso-mirror step, t ≥")
    other = value(no, "iso-mirror step, t ≥")
    if None in (before, after, other):
        return None
    return Judgement(
        _grade(after <= 0.25 * other and after <= 0.5 * before, after < other and after < before),
        f"ψ step after t*: {_f(after)} with (before: {_f(before)}), {_f(other)} without",
    )


# ---------------------------------------------------------------- case study 2


def _within(row: dict | None, header: str, low: float | None, high: float) -> bool:
    """Whether the row's number under ``header`` lies in [low, high] (False if it has none;
    0.0, full capture, is a number like any other)."""
    x = value(row, header)
    return x is not None and (low is None or x >= low) and x <= high


def _cs2(table: Table, targets: int, every: int | None = 2) -> dict | None:
    return table.find(targets=str(targets), attack_every="–" if targets == 0 else str(every))


def _cs2_pair(row: dict | None) -> tuple[float | None, float | None]:
    return value(row, "at T"), value(row, "data kernels, at T")


def _cs2_no_target(table: Table) -> Judgement | None:
    z, k = _cs2_pair(_cs2(table, 0))
    if None in (z, k):
        return None
    return Judgement(
        _grade(z >= 1.25 and k > 1, z > 1 and k > 1),
        f"0 targets at T: {_f(z)} on z1, {_f(k)} between the data kernels",
    )


def _cs2_pulled(targets: int, strong: Callable[[dict], bool]) -> Callable:
    def judge(table: Table) -> Judgement | None:
        row, base = _cs2(table, targets), _cs2(table, 0)
        (z, k), (z0, k0) = _cs2_pair(row), _cs2_pair(base)
        if None in (z, k, z0, k0):
            return None
        direction = z < z0 and k < k0
        fewer = _cs2_pair(_cs2(table, 2))[0] if targets == 5 else None
        if fewer is not None:
            direction = direction and z <= fewer
        return Judgement(
            _grade(strong(row) and direction, direction),
            f"{targets} target{'s' if targets > 1 else ''} every 2nd step at T: {_f(z)} on "
            f"z1, {_f(k)} between the data kernels; 0 targets: {_f(z0)}, {_f(k0)}",
        )

    return judge


def _cs2_periods(table: Table) -> Judgement | None:
    orders, shown = [], []
    for n in sorted({int(r["targets"]) for r in table.rows if r.get("targets", "").isdecimal()}):
        rows = [
            (int(r["attack every"]), value(r, "mean, t ≥ 1"))
            for r in table.rows
            if r.get("targets") == str(n) and r.get("attack every", "–").isdecimal()
        ]
        rows = sorted((k, m) for k, m in rows if m is not None)
        if n == 0 or len(rows) < 2:
            continue
        means = [m for _, m in rows]
        orders.append(all(b >= a for a, b in zip(means, means[1:], strict=False)))
        shown.append(f"{n}: " + ", ".join(f"{_f(m)} (every {k})" for k, m in rows))
    if not orders:
        return None
    return Judgement(
        _grade(all(orders), any(orders)),
        "mean over t ≥ 1 per targets: " + "; ".join(shown),
    )


# ---------------------------------------------------------------- case study 3

_CS3_MEASURES = ("polarization at T", "whole space, at T", "data kernels, at T")


def _cs3_pairs(a: dict[str, str] | None, b: dict[str, str] | None) -> list[tuple[float, float]]:
    """(a's, b's) number on each measure both rows have."""
    pairs = [(value(a, m), value(b, m)) for m in _CS3_MEASURES]
    return [(x, y) for x, y in pairs if x is not None and y is not None]


def _cs3_intra(table: Table) -> Judgement | None:
    row, free = table.find(condition="intra-class"), table.find(condition="unrestricted")
    z, whole = value(row, _CS3_MEASURES[0]), value(row, _CS3_MEASURES[1])
    if None in (z, whole):
        return None
    evidence = (
        f"intra-class at T: {_f(z)} on z1, {_f(whole)} in the whole space, "
        f"{_f(value(row, _CS3_MEASURES[2]))} between the data kernels"
    )
    # The claim is that intra-class communication polarizes: a rise that unrestricted
    # communication matches or beats (a ratio over a near-zero starting gap on z1, say) is
    # not its effect. The contrast is counted as CS3.2 counts it, on two of three measures.
    pairs = _cs3_pairs(row, free)
    above = sum(a > b for a, b in pairs)
    contrast = len(pairs) < 2 or above >= 2
    if len(pairs) >= 2:
        evidence += f"; above unrestricted on {above} of {len(pairs)}"
    return Judgement(
        _grade(z >= 10 and whole > 1 and contrast, z > 1 and whole > 1 and contrast), evidence
    )


def _cs3_unrestricted(table: Table) -> Judgement | None:
    free, intra = table.find(condition="unrestricted"), table.find(condition="intra-class")
    pairs = _cs3_pairs(free, intra)
    if len(pairs) < 2:
        return None
    z, k = value(free, _CS3_MEASURES[0]), value(free, _CS3_MEASURES[2])
    below = sum(a < b for a, b in pairs)
    return Judgement(
        _grade(z is not None and k is not None and z <= 0.25 and k <= 0.5, below >= 2),
        f"unrestricted at T: {', '.join(_f(a) for a, _ in pairs)} against intra-class "
        f"{', '.join(_f(b) for _, b in pairs)} (z1, whole space, data kernels); below on "
        f"{below} of {len(pairs)}",
    )


CLAIMS: tuple[Claim, ...] = (
    Claim(
        "cs1-disruption",
        "CS1.1",
        "the models explore, then settle in model sinks",
        "reproduced: with the disruption the locality falls after t* (T ÷ t* below 0.95) and "
        "the iso-mirror moves less after t* than before; in direction: one of the two",
        _cs1_sinks,
    ),
    Claim(
        "cs1-disruption",
        "CS1.2",
        "the number of clusters stabilises in both systems",
        "reproduced: the count changes at no more than 1 in 5 steps after t* in both "
        "systems, and is above 1 at T in at least one; in direction: it changes that rarely "
        "in one of them",
        _cs1_clusters,
    ),
    Claim(
        "cs1-disruption",
        "CS1.3",
        "after t* the ARI between consecutive clusterings is higher with the disruption",
        "reproduced: higher after t*, by more than twice the difference before t* (where the "
        "two conditions are one system, so that difference is the measure's noise), and not "
        "from one cluster at every step after t* (an ARI of 1 by definition); in direction: "
        "higher after t*",
        _cs1_ari,
    ),
    Claim(
        "cs1-disruption",
        "CS1.4",
        "the iso-mirror is flat after the disruption and keeps moving without it",
        "reproduced: with the disruption ψ moves at most a quarter as much per step after t* "
        "as without it, and at most half as much as before t*; in direction: less than both",
        _cs1_isomirror,
    ),
    Claim(
        "cs2-adversary",
        "CS2.1",
        "with no target, polarization increases",
        "reproduced: at T at least 1.25 on z1 and above 1 between the data kernels; in "
        "direction: above 1 on both",
        _cs2_no_target,
    ),
    Claim(
        "cs2-adversary",
        "CS2.2",
        "with one target attacked every 2nd step, polarization stays about stable",
        "reproduced: at T within 0.1 of 1 on z1, and below no target on both measures; in "
        "direction: below no target on both measures",
        _cs2_pulled(1, lambda row: _within(row, "at T", 0.9, 1.1)),
    ),
    Claim(
        "cs2-adversary",
        "CS2.3",
        "with two targets, polarization drifts towards 0",
        "reproduced: at T at most 0.5 on z1, and below no target on both measures; in "
        "direction: below no target on z1 and between the data kernels",
        _cs2_pulled(2, lambda row: _within(row, "at T", None, 0.5)),
    ),
    Claim(
        "cs2-adversary",
        "CS2.4",
        "with five targets, polarization quickly approaches 0",
        "reproduced: at T at most 0.25 on z1 and at most 0.5 on average over t ≥ 1, and in "
        "direction; in direction: below no target on both measures and not above two targets",
        _cs2_pulled(
            5,
            lambda row: _within(row, "at T", None, 0.25) and _within(row, "mean, t ≥", None, 0.5),
        ),
    ),
    Claim(
        "cs2-adversary",
        "CS2.5",
        "rarer attacks (every 5th, 10th step) pull the system in more slowly",
        "reproduced: for every number of targets the mean polarization over t ≥ 1 does not "
        "fall as the attack period grows; in direction: for at least one number of targets",
        _cs2_periods,
    ),
    Claim(
        "cs3-polarization",
        "CS3.1",
        "intra-class communication polarizes the classes (15× on average)",
        "reproduced: at T at least 10 on z1 and above 1 in the whole space, and above "
        "unrestricted on at least two of the three measures (where the table has both); in "
        "direction: above 1 on both, with the same contrast",
        _cs3_intra,
    ),
    Claim(
        "cs3-polarization",
        "CS3.2",
        "unrestricted communication ends with polarization near 0",
        "reproduced: at T at most 0.25 on z1 and at most 0.5 between the data kernels; in "
        "direction: below intra-class on at least two of the three measures",
        _cs3_unrestricted,
    ),
)


def conditions(name: str, study: str) -> str:
    """What a block's sweep changed from the preset, read from its name (``lr1e-4``: the
    learning rate, ``T48``: the steps, ``q100``: questions per interview, ``n400``: initial
    pairs a model, ``memory``: the update rule, ``intertwined``: case study 3's classes from
    near-identical starts, ``rerun``: the same command run again, by a later build or on
    another CPU)."""
    rest = name[len(study) :]
    said = []
    for pattern, words in (
        (r"-memory", "memory update"),
        (r"-intertwined", "classes starting intertwined (8 initial pairs a model)"),
        (r"-q(\d+)", "{} questions per interview"),
        (r"-n(\d+)", "{} initial pairs a model"),
        (r"-lr(\d+(?:\.\d+)?e-\d+)", "lr {}"),
        (r"-T(\d+)", "T = {}"),
        (r"-rerun", "rerun"),
    ):
        m = re.search(pattern, rest)
        if m:
            said.append(words.format(*m.groups()))
            rest = rest.replace(m.group(0), "")
    if rest.strip("-"):
        said.append(rest.strip("-"))
    return ", ".join(said) or "the preset"


def verdict_table(text: str, source: str = "page") -> str:
    """The markdown of the verdict block, judged on the page ``text``'s tables (see
    ``parse_tables`` for the errors raised)."""
    tables = parse_tables(text, source)
    unfinished = [t.name for t in tables if not t.finished]
    tables = [t for t in tables if t.finished]
    lines = [
        "| claim | the paper | verdict | best evidence | holds under | the other tables |",
        "|---|---|---|---|---|---|",
    ]
    for claim in CLAIMS:
        judged = []
        for table in tables:
            if not table.name.startswith(claim.study):
                continue
            j = claim.judge(table)
            if j is not None:
                seeds = f"{table.seeds} seed{'s' if table.seeds != 1 else ''}"
                where = f"{conditions(table.name, claim.study)} ({seeds})"
                judged.append((VERDICTS.index(j.verdict), -table.seeds, where, j))
        if not judged:
            lines.append(
                f"| {claim.label} | {claim.text} | not tested | no table on this page measures "
                "it yet | – | – |"
            )
            continue
        judged.sort(key=lambda x: (x[0], x[1]))
        best = judged[0]
        holds = [w for rank, _, w, _ in judged if rank == best[0]]
        others = [f"{w}: {j.verdict}" for rank, _, w, j in judged if rank != best[0]]
        lines.append(
            f"| {claim.label} | {claim.text} | **{best[3].verdict}** | {best[3].evidence} | "
            f"{'; '.join(holds)} | {'; '.join(others) or '–'} |"
        )
    rules = "\n".join(f"- {c.label}: {c.rule}." for c in CLAIMS)
    collapsed = [f"{t.name} ({', '.join(t.collapsed)})" for t in tables if t.collapsed]
    if collapsed:
        # Templates repeated word for word move a population as far as a perspective would:
        # a claim judged on them would read the collapse as the paper's effect.
        lines.append(
            f"\nNot judged, as their runs' answers collapsed (the note under each table, or "
            f"its most common answer, says how far): {'; '.join(collapsed)}."
        )
    if unfinished:
        # An unfinished run's "at T" is an earlier step: judging it would read, say, capture
        # half-way as capture at T, and the verdict would change as the run goes on.
        lines.append(
            f"\nNot judged, as some of their runs are not finished or failed: "
            f"{', '.join(unfinished)} (the note under each table names them; a failed run "
            "that is continued to T brings its table back)."
        )
    return (
        "\n".join(lines)
        + "\n\nEach verdict is the strongest one any table of the case study on this page "
        "gives (reproduced, then in direction, then not reproduced; among equals, the table "
        "with more seeds). The numbers are the tables' means over seeds. The rules:\n\n" + rules
    )
