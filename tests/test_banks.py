"""Question banks: the bundled ones meet the paper's filter; files are validated."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from perspectives.data.banks import bundled_banks, load_bank, sample_pairs
from perspectives.data.datasets import is_single_question, is_single_sentence
from perspectives.errors import InputError


@pytest.mark.parametrize(
    ("name", "minimum"), [("society_culture", 400), ("science_mathematics", 400), ("neutral", 100)]
)
def test_bundled_banks_follow_the_papers_filter(name, minimum):
    assert name in bundled_banks()
    bank = load_bank(name)
    assert len(bank) >= minimum
    assert bank["answer"].str.len().max() < 200
    assert bank["answer"].map(is_single_sentence).all()
    assert bank["question"].map(is_single_question).all()
    assert bank["question_id"].str.match(r"^[a-z]{2}-\d{4}$").all()


def test_banks_do_not_overlap():
    questions = [set(load_bank(n)["question"]) for n in bundled_banks()]
    assert sum(map(len, questions)) == len(set().union(*questions))
    norm = [re.sub(r"\W+", " ", q.lower()) for qs in questions for q in qs]
    assert len(norm) == len(set(norm))


def test_bank_file_errors(tmp_path):
    path = tmp_path / "bank.csv"
    pd.DataFrame({"question": ["a?", "b?"]}).to_csv(path, index=False)
    with pytest.raises(InputError, match=r"bank\.csv, field 'answer': missing required column"):
        load_bank(path)
    pd.DataFrame({"question": ["a?", "a?"], "answer": ["x.", "y."]}).to_csv(path, index=False)
    with pytest.raises(InputError, match="field 'question': duplicate value in row 1"):
        load_bank(path)


def test_a_union_of_files_without_ids_keeps_every_question(tmp_path):
    # Both were numbered q00001.. and the union refused its own ids as duplicates.
    pd.DataFrame({"question": ["A?", "B?"], "answer": ["a", "b"]}).to_csv(
        tmp_path / "1.csv", index=False
    )
    pd.DataFrame({"question": ["C?"], "answer": ["c"]}).to_csv(tmp_path / "2.csv", index=False)
    bank = load_bank([str(tmp_path / "1.csv"), "neutral", str(tmp_path / "2.csv")])
    neutral = load_bank("neutral")
    assert len(bank) == 3 + len(neutral)
    assert bank["question_id"].iloc[:2].tolist() == ["b1-q00001", "b1-q00002"]
    assert bank["question_id"].iloc[-1] == "b2-q00001"
    assert bank["question_id"].iloc[2:-1].tolist() == neutral["question_id"].tolist()
    # One such file keeps its ids, alone or beside banks with ids (as older runs have them).
    assert load_bank(str(tmp_path / "1.csv"))["question_id"].tolist() == ["q00001", "q00002"]
    mixed = load_bank([str(tmp_path / "1.csv"), "neutral"])
    assert mixed["question_id"].iloc[:2].tolist() == ["q00001", "q00002"]


def test_sample_pairs_is_seeded():
    bank = load_bank("neutral")
    a = sample_pairs(bank, 20, np.random.default_rng(3))
    b = sample_pairs(bank, 20, np.random.default_rng(3))
    assert a == b and len(set(a)) == 20
