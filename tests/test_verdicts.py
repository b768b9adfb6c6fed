"""The verdict table of the results page, judged on the page's own tables."""

from __future__ import annotations

import re

import pytest

from perspectives.errors import InputError
from perspectives.experiments.reproduction import regenerate
from perspectives.experiments.verdicts import conditions, parse_tables, value, verdict_table

CS2_HEAD = (
    "| targets | attack every | runs | at T | mean, t ≥ 1 | whole space, at T | "
    "data kernels, at T | data kernels, mean t ≥ 1 |\n|---|---|---|---|---|---|---|---|"
)
CS3_HEAD = (
    "| condition | runs | polarization at T | mean polarization, t ≥ 1 | per seed at T | "
    "whole space, at T | data kernels, at T |\n|---|---|---|---|---|---|---|"
)

CS2_PRESET = f"""
<!-- BEGIN cs2-adversary -->
{CS2_HEAD}
| 0 | – | 2 | 1.06 (1.01–1.10) | 1.04 | 1.06 | 1.04 | 1.01 |
| 1 | 2 | 2 | 1.06 | 1.05 | 1.07 | 1.04 | 1.02 |
| 2 | 2 | 2 | 1.04 | 1.04 | 1.04 | 1.01 | 1.00 |
| 2 | 5 | 2 | 1.02 | 1.03 | 1.02 | 1.00 | 1.01 |
| 5 | 2 | 2 | 1.02 | 1.02 | 1.02 | 1.00 | 0.99 |
| 5 | 5 | 2 | 1.05 | 1.03 | 1.05 | 1.03 | 1.00 |

Polarization: a note that is not a table row.
<!-- END cs2-adversary -->
"""

CS2_CAPTURED = f"""
<!-- BEGIN cs2-adversary-q100-lr1e-4 -->
{CS2_HEAD}
| 0 | – | 1 | 1.40 | 1.30 | 1.20 | 1.10 | 1.05 |
| 2 | 2 | 1 | 0.45 | 0.60 | 0.50 | 0.70 | 0.80 |
| 5 | 2 | 1 | 0.20 | 0.40 | 0.30 | 0.50 | 0.60 |
<!-- END cs2-adversary-q100-lr1e-4 -->
"""

CS3 = f"""
<!-- BEGIN cs3-polarization -->
{CS3_HEAD}
| intra-class | 2 | 1.20 (1.15–1.25) | 1.32 | 1.25, 1.15 | 1.14 | 0.98 |
| unrestricted | 2 | 0.67 (0.50–0.83) | 1.01 | 0.83, 0.50 | 0.65 | 0.82 |
<!-- END cs3-polarization -->

<!-- BEGIN cs3-polarization upto=12 -->
{CS3_HEAD}
| intra-class | 2 | 99.0 | 1.09 | 0.96, 1.02 | 99.0 | 0.97 |
| unrestricted | 2 | 0.01 | 0.95 | 0.79, 0.71 | 0.01 | 0.01 |
<!-- END cs3-polarization -->
"""


def _row(text: str, label: str) -> list[str]:
    line = next(ln for ln in text.splitlines() if ln.startswith(f"| {label} |"))
    return [c.strip() for c in line.strip("|").split("|")]


def test_tables_are_read_as_rows_and_means_and_comparisons_are_left_out():
    tables = parse_tables(CS2_PRESET + CS3 + "<!-- BEGIN verdicts -->\n<!-- END verdicts -->")
    assert [t.name for t in tables] == ["cs2-adversary", "cs3-polarization"]  # no upto block
    cs2 = tables[0]
    assert len(cs2.rows) == 6 and cs2.seeds == 2
    assert value(cs2.find(targets="0", attack_every="–"), "at T") == 1.06  # mean of the range
    assert value(cs2.find(targets="5", attack_every="2"), "data kernels, at T") == 1.0
    assert value(cs2.find(targets="9"), "at T") is None


def test_conditions_are_read_from_the_block_name():
    assert conditions("cs2-adversary", "cs2-adversary") == "the preset"
    assert conditions("cs2-adversary-lr1e-4-T48", "cs2-adversary") == "lr 1e-4, T = 48"
    assert (
        conditions("cs2-adversary-q100-lr1e-5", "cs2-adversary")
        == "100 questions per interview, lr 1e-5"
    )
    assert (
        conditions("cs2-adversary-q100-n400-lr1e-4", "cs2-adversary")
        == "100 questions per interview, 400 initial pairs a model, lr 1e-4"
    )
    assert conditions("cs3-polarization-memory", "cs3-polarization") == "memory update"
    assert conditions("cs3-polarization-intertwined", "cs3-polarization") == (
        "classes starting intertwined (8 initial pairs a model)"
    )
    assert conditions("cs1-disruption-lr1e-4-rerun", "cs1-disruption") == "lr 1e-4, rerun"
    assert conditions("cs3-polarization-odd", "cs3-polarization") == "odd"


def test_each_claim_gets_its_rules_verdict_and_the_strongest_table_wins():
    text = verdict_table(CS2_PRESET + CS3)
    # The preset: polarization rises a little without targets; attacks only slow it.
    assert _row(text, "CS2.1")[2:5] == [
        "**in direction**",
        "0 targets at T: 1.06 on z1, 1.04 between the data kernels",
        "the preset (2 seeds)",
    ]
    assert _row(text, "CS2.2")[2] == "**not reproduced**"  # 1 target = no target
    assert _row(text, "CS2.3")[2] == "**in direction**"
    # Every 2nd vs every 5th step: 5 targets 1.02 -> 1.03 (slower), 2 targets 1.04 -> 1.03.
    assert _row(text, "CS2.5")[2] == "**in direction**"
    # CS3: the comparison block (upto=12, absurd numbers) is not evidence.
    assert _row(text, "CS3.1")[2:4] == [
        "**in direction**",
        "intra-class at T: 1.20 on z1, 1.14 in the whole space, 0.98 between the data "
        "kernels; above unrestricted on 3 of 3",
    ]
    assert "below on 3 of 3" in _row(text, "CS3.2")[3]
    assert _row(text, "CS1.1")[2] == "not tested"  # no CS1 table on the page
    # An ablation where the system is captured: it becomes the best evidence, and the
    # preset's weaker verdict is listed beside it.
    text = verdict_table(CS2_PRESET + CS2_CAPTURED)
    row = _row(text, "CS2.4")
    assert row[2] == "**reproduced**"
    assert row[4] == "100 questions per interview, lr 1e-4 (1 seed)"
    assert row[5] == "the preset (2 seeds): in direction"
    assert _row(text, "CS2.3")[2] == "**reproduced**"  # 0.45 <= 0.5
    assert _row(text, "CS2.1")[2] == "**reproduced**"  # 1.40 and 1.10
    # CS2.5 needs two attack periods: only the preset has them.
    assert _row(text, "CS2.5")[4] == "the preset (2 seeds)"


@pytest.mark.parametrize(
    "note",
    [
        "Runs per condition: targets-0 1. Not finished: targets-5-every-2 seed 0 (complete to "
        "t = 5 of 24; the columns at T are at t = 5).",
        "Runs per condition: targets-0 1. Failed: targets-2-every-2 seed 0.",
    ],
)
def test_a_table_whose_runs_are_not_finished_is_not_judged_until_they_are(note):
    # Its "at T" is some earlier step: capture half-way must not read as capture at T.
    unfinished = CS2_CAPTURED.replace("<!-- END", f"\n{note}\n<!-- END")
    (table,) = [t for t in parse_tables(unfinished) if t.name.endswith("q100-lr1e-4")]
    assert not table.finished
    text = verdict_table(CS2_PRESET + unfinished)
    assert _row(text, "CS2.4")[2:5] == [
        "**in direction**",
        "5 targets every 2nd step at T: 1.02 on z1, 1.00 between the data kernels; "
        "0 targets: 1.06, 1.04",
        "the preset (2 seeds)",
    ]
    assert "100 questions" not in text
    assert "Not judged, as some of their runs are not finished or failed: " in text
    assert "failed: cs2-adversary-q100-lr1e-4 (the note under each table" in text
    # Finished, the same numbers are judged.
    assert _row(verdict_table(CS2_PRESET + CS2_CAPTURED), "CS2.4")[2] == "**reproduced**"
    assert "Not judged" not in verdict_table(CS2_PRESET + CS2_CAPTURED)


def test_rows_of_runs_whose_answers_collapsed_are_not_judged():
    # The note `perspectives results` writes under the table of a sweep whose no-target
    # population collapsed into templates: that row measures the collapse.
    from types import SimpleNamespace

    from perspectives.experiments.reproduction import _seeds_note
    from perspectives.reporting.run_analysis import SweepAnalysis

    def run(seed, shared):
        return SimpleNamespace(
            summary={"seed": seed, "shared_last": shared}, steps=[0], missing_steps=[]
        )

    sweep = SweepAnalysis(
        ".", {}, {"targets-0": [run(0, 0.71)], "targets-5-every-2": [run(0, 0.19)]}, [], []
    )
    note = _seeds_note(sweep)
    assert "Collapsed by T (at T, 50% or more" in note
    assert note.endswith("targets-0 seed 0 (shared 0.71).")
    collapsed = CS2_CAPTURED.replace("<!-- END", f"\n{note}\n<!-- END")
    (table,) = [t for t in parse_tables(collapsed) if t.name.endswith("q100-lr1e-4")]
    assert table.collapsed == ("targets-0",) and table.finished
    assert [r["targets"] for r in table.rows] == ["2", "5"]
    text = verdict_table(CS2_PRESET + collapsed)
    # Without its no-target row the table judges none of CS2.1, CS2.3 and CS2.4.
    assert "100 questions" not in text
    assert _row(text, "CS2.4")[2] == "**in direction**"
    assert (
        "Not judged, as their runs' answers collapsed (the note under each table, or its most "
        "common answer, says how far): cs2-adversary-q100-lr1e-4 (targets-0)." in text
    )
    # A table with the most common answer's share: 0.90 of the answers one text is a collapse.
    head = CS1_HEAD.replace(" |\n|---", " | most common answer at T |\n|---|---")
    cs1 = _cs1("cs1-disruption-lr1e-4", ("3", "1"), ("0.00", "0.71")).replace(CS1_HEAD, head)
    cs1 = cs1.replace("| 0.99 |\n", "| 0.99 | 0.01 |\n").replace("| 1.03 |\n", "| 1.03 | 0.90 |\n")
    (table,) = parse_tables(cs1)
    assert table.collapsed == ("no-disruption",) and [r["condition"] for r in table.rows] == [
        "disruption"
    ]
    # Over two seeds the mean may hide one that collapsed: the top of the range counts.
    (table,) = parse_tables(cs1.replace("| 0.90 |", "| 0.46 (0.02–0.90) |"))
    assert table.collapsed == ("no-disruption",)
    # A run with one answer to everything is named too, and a no-target condition with an
    # attack period in its name is the table's no-target row.
    sweep = SweepAnalysis(".", {}, {"targets-0-every-5": [run(1, 0.1)]}, [], [])
    sweep.runs["targets-0-every-5"][0].summary["top_share_last"] = 0.9
    note = _seeds_note(sweep)
    assert note.endswith("targets-0-every-5 seed 1 (one text 0.90).")
    (table,) = [
        t
        for t in parse_tables(CS2_CAPTURED.replace("<!-- END", f"\n{note}\n<!-- END"))
        if t.name.endswith("q100-lr1e-4")
    ]
    assert table.collapsed == ("targets-0",)


CS1_HEAD = (
    "| condition | runs | clusters at T | count changes, t > 5 | mean ARI, t < 5 | "
    "mean ARI, t > 5 | iso-mirror step, t ≤ 5 | iso-mirror step, t ≥ 5 | spread at T | "
    "locality, T ÷ t = 5 |\n|---|---|---|---|---|---|---|---|---|---|"
)


def _cs1(name: str, clusters: tuple[str, str], changes: tuple[str, str]) -> str:
    return f"""
<!-- BEGIN {name} -->
{CS1_HEAD}
| disruption | 1 | {clusters[0]} | {changes[0]} | 0.75 | 1.00 | 0.10 | 0.07 | 1.19 | 0.99 |
| no-disruption | 1 | {clusters[1]} | {changes[1]} | 0.75 | 1.00 | 0.12 | 0.06 | 1.18 | 1.03 |
<!-- END {name} -->
"""


def test_one_cluster_throughout_is_a_settled_count_but_not_the_papers_sinks():
    text = verdict_table(_cs1("cs1-disruption-memory", ("1.00", "1.00"), ("0.00", "0.00")))
    assert _row(text, "CS1.2")[2:4] == [
        "**in direction**",
        "count changes after t*: 0.00 with, 0.00 without the disruption; clusters at T: "
        "1.00 and 1.00",
    ]
    text = verdict_table(_cs1("cs1-disruption-memory", ("3.00", "1.00"), ("0.00", "0.14")))
    assert _row(text, "CS1.2")[2] == "**reproduced**"
    text = verdict_table(_cs1("cs1-disruption-memory", ("3.00", "2.00"), ("0.50", "0.43")))
    assert _row(text, "CS1.2")[2] == "**not reproduced**"


def test_an_ari_of_one_from_one_cluster_throughout_is_not_the_papers_stable_sinks():
    # The CS1 lr 1e-4 run repeated: the disrupted system is one cluster at every step
    # after t*, so its ARI is 1 by definition, while the other system's count moves.
    rerun = _cs1("cs1-disruption-lr1e-4-rerun", ("1.00", "2.00"), ("0.00", "0.71"))
    rerun = rerun.replace("| 0.75 | 1.00 | 0.12 |", "| 0.75 | -0.01 | 0.12 |")
    row = _row(verdict_table(rerun), "CS1.3")
    assert row[2] == "**in direction**"
    assert row[3] == (
        "ARI after t* 1.00 with, -0.01 without; before t* (one system) 0.75 and 0.75; "
        "with: one cluster at every step after t*"
    )
    # Three clusters at T with the same ARIs: stable sinks, the paper's claim.
    row = _row(verdict_table(rerun.replace("| 1 | 1.00 | 0.00 |", "| 1 | 3.00 | 0.00 |")), "CS1.3")
    assert row[2] == "**reproduced**" and "one cluster" not in row[3]


def test_intra_class_polarization_that_unrestricted_beats_is_not_its_effect():
    # Case study 3 under the memory update: the classes start on top of each other on z1,
    # so both conditions' ratios there are large, and unrestricted communication's larger.
    memory = f"""
<!-- BEGIN cs3-polarization-memory -->
{CS3_HEAD}
| intra-class | 1 | 10.44 | 6.50 | 10.44 | 1.44 | 0.93 |
| unrestricted | 1 | 54.02 | 38.12 | 54.02 | 2.58 | 1.21 |
<!-- END cs3-polarization-memory -->
"""
    row = _row(verdict_table(memory), "CS3.1")
    assert row[2] == "**not reproduced**"
    assert row[3].endswith("; above unrestricted on 0 of 3")
    # Above unrestricted on two of three (not on z1) still counts as the contrast.
    row = _row(verdict_table(memory.replace("| 2.58 | 1.21 |", "| 0.60 | 0.67 |")), "CS3.1")
    assert row[2] == "**reproduced**" and row[3].endswith("above unrestricted on 2 of 3")
    # The memory table is judged beside the preset's: the preset's verdict stands.
    row = _row(verdict_table(CS3 + memory), "CS3.1")
    assert row[2] == "**in direction**"
    assert row[5] == "memory update (1 seed): not reproduced"


def test_results_judges_the_verdicts_from_the_page_even_without_runs(tmp_path):
    doc = tmp_path / "results.md"
    doc.write_text("# page\n\n<!-- BEGIN verdicts -->\nstale text\n<!-- END verdicts -->\n" + CS3)
    (tmp_path / "runs").mkdir()
    with pytest.warns(UserWarning, match="only the verdicts were judged anew"):
        assert regenerate(tmp_path / "runs", doc) == ["verdicts"]
    text = doc.read_text()
    assert "stale text" not in text and "| CS3.2 | unrestricted communication" in text
    assert "- CS2.4: reproduced: at T at most 0.25 on z1" in text  # the rules are printed


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        # A lost END would otherwise drop the block's table from the verdicts without a word.
        (lambda t: t.replace("<!-- END cs3-polarization -->\n", "", 1), "opened on line 2"),
        (lambda t: t.replace("-->\n|", "--> \n|", 1), None),  # trailing space: still read
        (lambda t: t.replace("<!-- BEGIN cs3-polarization -->", "<!-- BEGIN ../x -->"), "line 2"),
        (lambda t: t + "<!-- BEGIN verdicts -->\n", "has no matching <!-- END verdicts -->"),
        (lambda t: t.replace("| 1.14 | 0.98 |", "| 0.98 |", 1), "row 1: 6 cells"),
        (lambda t: t.replace("| 1.14 | 0.98 |", "| abc | 0.98 |", 1), "field 'whole space, at T'"),
        # Without its |---| line the first row would be taken for it, and lost.
        (
            lambda t: t.replace("|\n|---|---|---|---|---|---|---|\n", "|\n", 1),
            "page.md, block cs3-polarization: the line under the table's header is not its "
            "separator row",
        ),
        (
            lambda t: t.replace("|---|---|---|---|---|---|---|", "|---|---|x|---|---|---|---|", 1),
            "block cs3-polarization: the line under",
        ),
        # Table.find reads the first row of a condition: a second one would be ignored.
        (
            lambda t: t.replace("| unrestricted |", "| intra-class |", 1),
            "page.md, block cs3-polarization, row 2: the same condition as row 1",
        ),
    ],
)
def test_a_damaged_page_is_refused_with_the_line_or_cell(damage, message):
    page = damage(CS3)
    if message is None:
        assert "CS3.1 | intra-class" in verdict_table(page, "page.md")
        return
    with pytest.raises(InputError, match=re.escape(message)) as err:
        verdict_table(page, "page.md")
    assert "page.md" in str(err.value)


def test_numbers_are_read_whole_and_a_crlf_page_stays_crlf(tmp_path):
    row = {"at T": "1e3", "b": "−5.0 (−6–−4)"}
    assert value(row, "at T") == 1000.0 and value(row, "b") == -5.0
    doc = tmp_path / "results.md"
    doc.write_bytes(
        ("<!-- BEGIN verdicts -->\n<!-- END verdicts -->\n" + CS3).replace("\n", "\r\n").encode()
    )
    (tmp_path / "runs").mkdir()
    with pytest.warns(UserWarning):
        regenerate(tmp_path / "runs", doc)
    data = doc.read_bytes()
    assert b"| CS3.1 |" in data and data.count(b"\n") == data.count(b"\r\n")


def test_a_sweep_with_no_complete_step_leaves_its_block_as_it_is(tmp_path):
    import json

    # A sweep started again in the folder of one the page reports: its numbers must stay.
    sweep = tmp_path / "runs" / "cs3-polarization"
    (sweep / "intra-class" / "seed-0").mkdir(parents=True)
    record = {
        "preset": "cs3-polarization",
        "conditions": ["intra-class"],
        "systems": [
            {
                "condition": "intra-class",
                "seed": 0,
                "folder": "intra-class/seed-0",
                "status": "pending",
            }
        ],
    }
    (sweep / "sweep.json").write_text(json.dumps(record))
    doc = tmp_path / "results.md"
    doc.write_text("<!-- BEGIN verdicts -->\n<!-- END verdicts -->\n" + CS3)
    with pytest.warns(UserWarning, match="no step of any run is complete yet; block 'cs3-pol"):
        assert regenerate(tmp_path / "runs", doc) == ["verdicts"]
    text = doc.read_text()
    assert text.endswith(CS3) and "No step of any run is complete yet" not in text
    assert "| CS3.1 | intra-class communication" in text  # judged on the kept table
    page = tmp_path / "no-verdicts.md"
    page.write_text(CS3)
    unchanged = "the page is unchanged: no block's sweep could be read (cs3-polarization)"
    with pytest.raises(InputError, match=re.escape(unchanged)):
        with pytest.warns(UserWarning):
            regenerate(tmp_path / "runs", page)
    assert page.read_text() == CS3


def test_a_table_without_its_separator_or_with_a_row_twice_is_refused():
    no_separator = CS2_CAPTURED.replace("|\n|---|---|---|---|---|---|---|---|\n", "|\n")
    with pytest.raises(InputError, match="block cs2-adversary-q100-lr1e-4: the line under"):
        parse_tables(no_separator, "page.md")
    # Alignment colons are a separator still; only the rows' text is read.
    aligned = CS2_CAPTURED.replace("|---|---|---|", "|:---|---:|:-:|", 1)
    (table,) = parse_tables(aligned)
    assert [(r["targets"], value(r, "at T")) for r in table.rows] == [
        ("0", 1.4),
        ("2", 0.45),
        ("5", 0.2),
    ]
    # Case study 2's rows are named by targets and attack period together.
    twice = CS2_PRESET.replace("| 5 | 5 | 2 | 1.05 |", "| 2 | 2 | 2 | 0.10 |")
    with pytest.raises(InputError) as err:
        parse_tables(twice, "page.md")
    assert str(err.value) == (
        "page.md, block cs2-adversary, row 6: the same targets and attack every as row 3: one "
        "row per condition (value: '2 | 2')"
    )
