"""Responses tables: reading every format, and one clear error per kind of bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from perspectives.errors import InputError
from perspectives.space.responses import data_kernels, read_table, validate_responses


def table(n_models=3, n_prompts=4, replicates=1, **labels):
    rows = []
    for i in range(n_models):
        for j in range(n_prompts):
            for r in range(replicates):
                rows.append(
                    {
                        "model": f"m{i}",
                        "prompt_id": f"q{j}",
                        "replicate": r,
                        "response": f"answer {i} {j} {r}",
                        **{k: v[i] for k, v in labels.items()},
                    }
                )
    return pd.DataFrame(rows)


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_every_format_round_trips(tmp_path, suffix):
    df = table(cls=["a", "b", "a"])
    df["prompt_id"] = ["001", "002", "003", "004"] * 3  # ids that look like numbers stay text
    path = tmp_path / f"r{suffix}"
    {
        ".csv": lambda: df.to_csv(path, index=False),
        ".jsonl": lambda: df.to_json(path, orient="records", lines=True),
        ".parquet": lambda: df.to_parquet(path),
    }[suffix]()
    back = validate_responses(read_table(path), str(path))
    assert back["prompt_id"].iloc[0] == "001"
    assert list(back["cls"]) == list(df["cls"])


def test_missing_column_names_file_and_column(tmp_path):
    path = tmp_path / "r.csv"
    table().drop(columns="response").to_csv(path, index=False)
    with pytest.raises(InputError, match=r"r\.csv.*field 'response'"):
        validate_responses(read_table(path), str(path))


def test_incomplete_model_is_an_error_or_dropped():
    df = table().iloc[:-1]  # m2 lacks q3
    with pytest.raises(InputError, match=r"point 'm2' lacks 1 prompt.*q3"):
        validate_responses(df, "r.csv")
    warnings = []
    clean = validate_responses(df, "r.csv", drop_incomplete=True, warn=warnings.append)
    assert sorted(clean["model"].unique()) == ["m0", "m1"]
    assert "dropped 1 incomplete" in warnings[0]


def test_empty_and_non_text_responses():
    df = table()
    df.loc[5, "response"] = "   "
    with pytest.raises(InputError, match=r"empty response in row 5 \(model 'm1', prompt 'q1'\)"):
        validate_responses(df, "r.csv")
    assert len(validate_responses(df, "r.csv", allow_empty=True)) == len(df)
    df["response"] = df["response"].astype(object)
    df.loc[5, "response"] = 3.5
    with pytest.raises(InputError, match=r"non-text response in row 5 .*value: 3.5"):
        validate_responses(df, "r.csv")


def test_missing_response_in_csv(tmp_path):
    df = table()
    df.loc[7, "response"] = None
    path = tmp_path / "r.csv"
    df.to_csv(path, index=False)
    with pytest.raises(InputError, match=r"r\.csv, field 'response': missing response in row 7"):
        validate_responses(read_table(path), str(path))


def test_numeric_looking_answers_stay_text(tmp_path):
    df = table()
    df["response"] = [str(i) for i in range(len(df))]
    path = tmp_path / "r.csv"
    df.to_csv(path, index=False)
    assert validate_responses(read_table(path), str(path))["response"].iloc[3] == "3"


def test_a_prompt_id_naming_two_prompts_is_refused():
    # Answers are aligned by prompt_id: m1 answering the questions in the other order gave
    # identical models a distance.
    df = pd.DataFrame(
        {
            "model": ["a", "a", "b", "b"],
            "prompt_id": [1, 2, 1, 2],
            "prompt": ["Is the sky blue?", "Is grass red?", "Is grass red?", None],
            "response": ["yes", "no", "no", "yes"],
        }
    )
    with pytest.raises(InputError, match=r"prompt_id '1' names more than one prompt"):
        validate_responses(df, "r.csv")
    df.loc[2, "prompt"] = "Is the sky blue? "  # spaces, or a missing text, contradict nothing
    df.loc[1, "prompt"] = ""
    assert len(validate_responses(df, "r.csv")) == 4


def test_prompt_ids_with_digits_int_does_not_read_are_sorted_as_text():
    # "²" is a digit to str.isdigit, not to int(): the natural sort of the ids failed.
    df = pd.DataFrame(
        {"model": ["a", "a", "b", "b"], "prompt_id": ["q2", "q²"] * 2, "response": list("wxyz")}
    )
    k = data_kernels(validate_responses(df, "r.csv"), lambda texts: np.ones((len(texts), 3)))
    assert k.prompt_ids == ["q2", "q²"] and k.kernels.shape == (2, 2, 3)


def test_duplicate_rows():
    df = pd.concat([table(), table().iloc[[2]]], ignore_index=True)
    with pytest.raises(InputError, match=r"duplicate rows for \(model='m0', prompt_id='q2'") as e:
        validate_responses(df, "r.csv")
    assert "replicate=0)" in str(e.value)  # as the file says it, not np.int64(0)


def test_single_model_and_varying_label():
    with pytest.raises(InputError, match="at least 2 points"):
        validate_responses(table(n_models=1), "r.csv")
    df = table(cls=["a", "b", "c"])
    df.loc[1, "cls"] = "z"
    with pytest.raises(InputError, match=r"field 'cls': label varies within point 'm0'"):
        validate_responses(df, "r.csv")


def test_unreadable_and_unknown_files(tmp_path):
    bad = tmp_path / "r.parquet"
    bad.write_bytes(b"not parquet")
    bad.with_suffix(".txt").write_text("x")
    with pytest.raises(InputError, match=r"r\.parquet: cannot read"):
        read_table(bad)
    with pytest.raises(InputError, match="unknown file type"):
        read_table(bad.with_suffix(".txt"))
    with pytest.raises(InputError, match="file not found"):
        read_table(tmp_path / "nope.csv")


def test_kernels_average_replicates_and_keep_time_points():
    df = table(n_models=2, n_prompts=3, replicates=2)
    df = pd.concat([df.assign(time=0), df.assign(time=1)], ignore_index=True)
    vocab = {}

    def embed(texts):
        out = []
        for t in texts:
            vocab.setdefault(t, len(vocab))
            out.append([float(vocab[t]), 1.0])
        return np.array(out)

    k = data_kernels(validate_responses(df, "r"), embed)
    assert k.kernels.shape == (4, 3, 2)  # 2 models x 2 times, 3 prompts, p = 2
    assert list(k.points.columns) == ["model", "time"]
    a0 = vocab["answer 0 0 0"]
    a1 = vocab["answer 0 0 1"]
    assert k.kernels[0, 0, 0] == pytest.approx((a0 + a1) / 2)


def test_nan_embedding_is_reported():
    df = validate_responses(table(), "r")
    with pytest.raises(InputError, match="NaN or infinite"):
        data_kernels(df, lambda texts: np.full((len(texts), 3), np.nan))


def test_a_comma_ending_each_line_is_no_column_and_no_index(tmp_path):
    """Spreadsheets often end lines with a comma: no `Unnamed: 4` label column appears, and
    a header without that comma does not turn the models into an index (shifting every
    column one to the left)."""
    df = table(group=["a", "a", "b"])
    lines = df.to_csv(index=False).splitlines()
    path = tmp_path / "r.csv"
    for header in (lines[0] + ",", lines[0]):
        path.write_text("\n".join([header, *(ln + "," for ln in lines[1:])]) + "\n")
        read = validate_responses(read_table(path), str(path))
        assert list(read.columns) == list(df.columns)
        assert read["model"].tolist() == df["model"].tolist()
        assert read["group"].tolist() == df["group"].tolist()
    # A comma inside an unquoted answer gives a row more values than the header: refused,
    # not read with its answer cut at the comma.
    cut = [*lines[:3], lines[3].replace("answer", "yes, answer"), *lines[4:]]
    path.write_text("\n".join(cut) + "\n")
    with pytest.raises(InputError, match=r"r\.csv: line 4 has 6 values where the header names 5"):
        read_table(path)


def test_a_column_with_values_but_no_name_is_no_label(tmp_path):
    df = table()
    path = tmp_path / "r.csv"
    df.to_csv(path)  # pandas' default writes the index as a first, unnamed column
    with pytest.raises(InputError, match=r"field 'Unnamed: 0': .* index=False"):
        validate_responses(read_table(path), str(path))
    # Readers of their own columns (a bank, a prompt set) are not stopped by it.
    from perspectives.data.prompts import load_prompts

    prompts = tmp_path / "p.csv"
    pd.DataFrame({"prompt_id": ["a", "b"], "prompt": ["Why?", "How?"]}).to_csv(prompts)
    assert load_prompts(str(prompts))["prompt"].tolist() == ["Why?", "How?"]
