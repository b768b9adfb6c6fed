"""Prompt sets: bundled ones and user files, with clear errors."""

from __future__ import annotations

import pandas as pd
import pytest

from perspectives.data.prompts import bundled_prompt_sets, load_prompts
from perspectives.errors import InputError


def test_bundled_sets_for_figure2():
    assert {"figure2_relevant", "figure2_orthogonal"} <= set(bundled_prompt_sets())
    rel = load_prompts("figure2_relevant")
    orth = load_prompts("figure2_orthogonal")
    assert len(rel) == len(orth) == 60
    assert not set(rel["prompt"]) & set(orth["prompt"])


def test_text_file_and_inline_list(tmp_path):
    path = tmp_path / "p.txt"
    path.write_text("First?\n\nSecond?\n")
    assert load_prompts(path)["prompt_id"].tolist() == ["p0001", "p0002"]
    assert load_prompts(["a?", "b?"])["prompt"].tolist() == ["a?", "b?"]


def test_duplicates_and_missing_column(tmp_path):
    path = tmp_path / "p.csv"
    pd.DataFrame({"prompt_id": ["a", "b"], "prompt": ["Same?", "Same?"]}).to_csv(path, index=False)
    with pytest.raises(InputError, match=r"p\.csv, field 'prompt': duplicate value in row 1"):
        load_prompts(path)
    pd.DataFrame({"text": ["x"]}).to_csv(path, index=False)
    with pytest.raises(InputError, match="missing column 'prompt'"):
        load_prompts(path)
