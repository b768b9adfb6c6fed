"""The paper's data loaders: every filter rule on small written fixtures, topics, seeded
sampling, clear errors (missing columns, unknown topics, no network, no ``datasets``), and the
Appendix-A prompt format."""

from __future__ import annotations

import sys
import types

import pandas as pd
import pytest

from perspectives.data.datasets import (
    END_MARK,
    INSTRUCTION_MARK,
    RESPONSE_MARK,
    YAHOO_TOPICS,
    format_appendix_a,
    is_single_question,
    is_single_sentence,
    load_dolly,
    load_yahoo_answers,
)
from perspectives.errors import InputError

# (id, topic, title, best answer, why) -- each row exercises one rule of the Appendix-B filter.
YAHOO_ROWS = [
    (101, 0, "Why do people tip?", "Because it is customary.", "passes"),
    (102, 0, "Is it rude?", "Yes. It is very rude.", "two sentences"),
    (103, 0, "Why? And how?", "Nobody knows.", "two questions in the title"),
    (104, 0, "What is love?", "Love is " + "very " * 40 + "nice.", "200+ characters"),
    (105, 0, "Who wrote it?", "", "empty answer"),
    (106, 1, "What is pi?", "About 3.14159!", "passes (decimal point is no boundary)"),
    (107, 2, "Is sleep good?", "  Yes, very good.  ", "passes (stripped)"),
    (108, 0, "No question mark here", "Fine.", "no question in the title"),
    (109, 0, "What time is it?", "Noon.\\nMaybe later.", "two sentences over a literal \\n"),
    (110, 0, "Should I go?", 'He said "go." Then he left', "boundary after a closing quote"),
    (111, 0, "How long?", "A" * 198 + ".", "passes (199 characters)"),
    (112, 0, "How long exactly?", "B" * 199 + ".", "200 characters"),
    (113, 5, "Who won?", "The home team won!", "passes"),
    (114, 0, "Really?!", "Yes!!", "passes (end punctuation runs)"),
]
PASSING = ["ya-101", "ya-106", "ya-107", "ya-111", "ya-113", "ya-114"]


def yahoo_frame(rows=YAHOO_ROWS) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "id": [r[0] for r in rows],
            "topic": [r[1] for r in rows],
            "question_title": [r[2] for r in rows],
            "question_content": ["details"] * len(rows),
            "best_answer": [r[3] for r in rows],
        }
    )


def write(frame: pd.DataFrame, path) -> None:
    suffix = path.suffix
    if suffix == ".csv":
        frame.to_csv(path, index=False)
    elif suffix == ".parquet":
        frame.to_parquet(path)
    else:
        frame.to_json(path, orient="records", lines=True)


@pytest.fixture(params=[".csv", ".parquet", ".jsonl"])
def yahoo_file(request, tmp_path):
    path = tmp_path / f"yahoo{request.param}"
    write(yahoo_frame(), path)
    return path


# --------------------------------------------------------------------------- Yahoo! Answers


def test_filter_keeps_exactly_the_passing_rows(yahoo_file):
    df = load_yahoo_answers(yahoo_file)
    assert list(df.columns) == ["question_id", "topic", "question", "answer"]
    assert list(df["question_id"]) == PASSING
    row = df.set_index("question_id").loc["ya-107"]
    assert (row["topic"], row["question"], row["answer"]) == (
        "Health",
        "Is sleep good?",
        "Yes, very good.",
    )
    assert df.set_index("question_id").loc["ya-106", "topic"] == "Science & Mathematics"


def test_without_filter_every_row_is_kept(yahoo_file):
    df = load_yahoo_answers(yahoo_file, apply_filter=False)
    assert list(df["question_id"]) == [f"ya-{r[0]}" for r in YAHOO_ROWS]
    assert df.set_index("question_id").loc["ya-105", "answer"] == ""  # empty, not NaN
    assert all(isinstance(v, str) for v in df.to_numpy().ravel())


@pytest.mark.parametrize(
    ("topics", "expected"),
    [
        (["society & culture"], ["ya-101", "ya-111", "ya-114"]),
        (["Society & Culture", 5], ["ya-101", "ya-111", "ya-113", "ya-114"]),
        ([1, "HEALTH"], ["ya-106", "ya-107"]),
        ("Sports", ["ya-113"]),  # a lone name, not a list of letters
        ([9], []),
    ],
)
def test_topics_by_name_and_int(tmp_path, topics, expected):
    path = tmp_path / "y.parquet"
    write(yahoo_frame(), path)
    assert list(load_yahoo_answers(path, topics=topics)["question_id"]) == expected


@pytest.mark.parametrize("bad", ["Sport", 10, -1, True, "0.5"])
def test_unknown_topic_lists_the_valid_ones(tmp_path, bad):
    path = tmp_path / "y.csv"
    write(yahoo_frame(), path)
    with pytest.raises(InputError, match=r"field 'topics': unknown topic.*Politics & Government"):
        load_yahoo_answers(path, topics=[bad])


def test_topic_value_outside_the_labels_is_an_error(tmp_path):
    frame = yahoo_frame()
    frame.loc[3, "topic"] = 12
    path = tmp_path / "y.csv"
    write(frame, path)
    with pytest.raises(InputError, match=r"y\.csv, field 'topic': topic in row 3.*value: '?12"):
        load_yahoo_answers(path)


def many_passing_rows(n=40) -> list[tuple]:
    return [(1000 + i, i % 10, f"Question {i}?", f"Answer {i}.", "passes") for i in range(n)]


def test_limit_is_a_seeded_sample_in_source_order(tmp_path):
    path = tmp_path / "many.csv"
    write(yahoo_frame(many_passing_rows()), path)
    full = list(load_yahoo_answers(path)["question_id"])
    a = list(load_yahoo_answers(path, limit=10, seed=0)["question_id"])
    again = list(load_yahoo_answers(path, limit=10, seed=0)["question_id"])
    other = list(load_yahoo_answers(path, limit=10, seed=1)["question_id"])
    assert a == again
    assert a != other
    assert len(a) == len(set(a)) == 10
    assert set(a) <= set(full)
    assert a == [q for q in full if q in set(a)]  # sampled rows keep the file's order
    assert len(load_yahoo_answers(path, limit=40)) == 40  # the whole table is a valid sample


def test_limit_counts_rows_after_filtering(tmp_path):
    path = tmp_path / "y.jsonl"
    write(yahoo_frame(), path)
    assert len(load_yahoo_answers(path, limit=6)) == 6
    with pytest.raises(InputError, match=r"field 'limit': only 6 row\(s\) remain.*limit=7"):
        load_yahoo_answers(path, limit=7)
    with pytest.raises(InputError, match=r"only 2 row\(s\).*'Health'.*limit=3"):
        load_yahoo_answers(path, topics=[1, 2], limit=3)


@pytest.mark.parametrize("bad", [0, -3, 2.5])
def test_limit_must_be_a_positive_integer(tmp_path, bad):
    path = tmp_path / "y.csv"
    write(yahoo_frame(), path)
    with pytest.raises(InputError, match="field 'limit': must be a positive integer"):
        load_yahoo_answers(path, limit=bad)


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
@pytest.mark.parametrize("column", ["best_answer", "question_title", "topic", "id"])
def test_missing_column_names_file_and_column(tmp_path, suffix, column):
    path = tmp_path / f"yahoo{suffix}"
    write(yahoo_frame().drop(columns=column), path)
    with pytest.raises(InputError, match=rf"yahoo\{suffix}, field '{column}': missing required"):
        load_yahoo_answers(path)


def test_question_content_is_not_needed(tmp_path):
    path = tmp_path / "titles-only.parquet"
    write(yahoo_frame().drop(columns="question_content"), path)
    assert list(load_yahoo_answers(path)["question_id"]) == PASSING


def test_missing_file_and_unknown_type(tmp_path):
    with pytest.raises(InputError, match="nope.csv: file not found"):
        load_yahoo_answers(str(tmp_path / "nope.csv"))
    odd = tmp_path / "yahoo.tsv"
    odd.write_text("id\ttopic\n")
    with pytest.raises(InputError, match="unknown file type"):
        load_yahoo_answers(str(odd))


def test_text_that_looks_like_numbers_stays_text(tmp_path):
    rows = [(7, 3, "Code?", "007", "passes"), (8, 3, "Year?", "1984", "passes")]
    for suffix in (".csv", ".jsonl"):
        path = tmp_path / f"n{suffix}"
        write(yahoo_frame(rows), path)
        df = load_yahoo_answers(path)
        assert list(df["answer"]) == ["007", "1984"]
        assert list(df["question_id"]) == ["ya-7", "ya-8"]


@pytest.mark.parametrize(
    ("text", "single"),
    [
        ("Yes.", True),
        ("  Yes  ", True),
        ("About 3.14 units!", True),
        ("Really?!", True),
        ("Wait...", True),
        ("Yes. No.", False),
        ("Yes!\nNo", False),
        ("Yes.\\nNo", False),  # literal backslash-n, as in the Yahoo! Answers dump
        ('"Go." Then he left', False),
        ("Well... maybe", False),  # an ellipsis mid-text counts as a boundary
        ("", False),
        ("   ", False),
    ],
)
def test_is_single_sentence(text, single):
    assert is_single_sentence(text) is single


@pytest.mark.parametrize(
    ("title", "single"),
    [("Why?", True), ("Why?!", True), ("Why? How?", False), ("Why??", False), ("Why", False)],
)
def test_is_single_question(title, single):
    assert is_single_question(title) is single


def test_topic_names_match_the_hub_labels():
    assert YAHOO_TOPICS[0] == "Society & Culture"
    assert YAHOO_TOPICS[4] == "Computers & Internet"
    assert YAHOO_TOPICS[9] == "Politics & Government"
    assert len(YAHOO_TOPICS) == 10


# --------------------------------------------------------------------------- Dolly

DOLLY_ROWS = [
    ("Name a fruit.", "", "Apple", "open_qa", True),
    ("Ideas for a party?", "", "Games, music and cake.", "brainstorming", True),
    ("Is tea healthy?", "", "In moderation, yes.", "general_qa", True),
    ("Write a line of verse.", "", "The moon sleeps on the sea.", "creative_writing", True),
    ("Who wrote it?", "Some passage.", "Jane.", "closed_qa", False),
    ("Classify these.", "", "Fruit, fruit, vegetable.", "classification", False),
    ("Summarise this.", "A long text.", "Short.", "summarization", False),
    ("Extract the year.", "In 1999.", "1999", "information_extraction", False),
    ("Long answer?", "", "x" * 99 + ".", "open_qa", False),  # 100 characters
    ("Almost long?", "", "y" * 98 + ".", "open_qa", True),  # 99 characters
    ("Empty answer?", "", "   ", "general_qa", False),
]


def dolly_frame() -> pd.DataFrame:
    return pd.DataFrame(
        [r[:4] for r in DOLLY_ROWS], columns=["instruction", "context", "response", "category"]
    )


@pytest.mark.parametrize("suffix", [".jsonl", ".csv", ".parquet"])
def test_dolly_filter(tmp_path, suffix):
    path = tmp_path / f"dolly{suffix}"
    write(dolly_frame(), path)
    df = load_dolly(path)
    assert list(df.columns) == ["instruction", "context", "response", "category"]
    assert list(df["instruction"]) == [r[0] for r in DOLLY_ROWS if r[4]]
    assert list(df["context"]) == [""] * len(df)  # empty contexts are "", not NaN
    assert len(load_dolly(path, apply_filter=False)) == len(DOLLY_ROWS)


def test_dolly_missing_column(tmp_path):
    path = tmp_path / "dolly.jsonl"
    write(dolly_frame().drop(columns="category"), path)
    with pytest.raises(InputError, match=r"dolly\.jsonl, field 'category': missing required"):
        load_dolly(path)


# --------------------------------------------------------------------------- Appendix-A format


def test_format_appendix_a_exact_strings():
    assert (INSTRUCTION_MARK, RESPONSE_MARK, END_MARK) == (
        "### Instruction:",
        "### Response:",
        "### End",
    )
    assert (
        format_appendix_a("Name a fruit.", "Apple")
        == "### Instruction: Name a fruit.\n### Response: Apple\n### End"
    )
    assert format_appendix_a("Name a fruit.") == "### Instruction: Name a fruit.\n### Response: "
    assert format_appendix_a("Q", "") == "### Instruction: Q\n### Response: \n### End"


# --------------------------------------------------------------------------- hub ids


def fake_datasets(monkeypatch, load_dataset) -> None:
    module = types.ModuleType("datasets")
    module.load_dataset = load_dataset
    monkeypatch.setitem(sys.modules, "datasets", module)


def assert_clean(exc: BaseException) -> None:
    """No hub stack trace chained under the InputError."""
    assert exc.__cause__ is None and exc.__suppress_context__


def test_hub_id_without_datasets_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "datasets", None)  # makes `import datasets` fail
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for load in (load_yahoo_answers, load_dolly):
        with pytest.raises(InputError, match="pip install datasets.*local .csv") as info:
            load()
        assert_clean(info.value)
        assert "HF_HUB_OFFLINE" in str(info.value)


def test_offline_hub_id_is_no_network_access(monkeypatch):
    def load_dataset(path, split):
        raise ConnectionError(f"Couldn't reach '{path}' on the Hub (offline mode is enabled)")

    fake_datasets(monkeypatch, load_dataset)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(InputError, match="not found locally and no network access") as info:
        load_yahoo_answers("someone/not-cached")
    assert "someone/not-cached" in str(info.value)
    assert_clean(info.value)


def test_unreachable_hub_without_offline_flag_is_no_network_access(monkeypatch):
    class HubTimeout(OSError):
        pass

    def load_dataset(path, split):
        try:
            raise TimeoutError("timed out")
        except TimeoutError as exc:
            raise HubTimeout("request failed") from exc

    fake_datasets(monkeypatch, load_dataset)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    with pytest.raises(InputError, match="no network access"):
        load_dolly("someone/dolly")


def test_other_hub_failures_are_one_clear_message(monkeypatch):
    def load_dataset(path, split):
        raise FileNotFoundError(f"Dataset '{path}' doesn't exist on the Hub")

    fake_datasets(monkeypatch, load_dataset)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    with pytest.raises(InputError, match="cannot load the hub dataset.*doesn't exist") as info:
        load_yahoo_answers("someone/typo")
    assert "no network" not in str(info.value)
    assert_clean(info.value)


def test_hub_id_loads_the_split_through_datasets(monkeypatch):
    calls = []

    class Split:
        def to_pandas(self):
            return yahoo_frame()

    def load_dataset(path, split):
        calls.append((path, split))
        return Split()

    fake_datasets(monkeypatch, load_dataset)
    df = load_yahoo_answers(split="test", topics=["Health"])
    assert calls == [("community-datasets/yahoo_answers_topics", "test")]
    assert list(df["question_id"]) == ["ya-107"]


def test_real_datasets_offline(monkeypatch):
    """With the real package (when installed), an uncached id offline is a clear InputError."""
    pytest.importorskip("datasets")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    # Both libraries read the flag at import time; set their copies too.
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True, raising=False)
    monkeypatch.setattr("datasets.config.HF_HUB_OFFLINE", True, raising=False)
    with pytest.raises(InputError, match="not found locally and no network access"):
        load_yahoo_answers("perspectives-tests/definitely-not-cached")
