"""Property-based tests of the responses reader and validator: random, structurally valid but
wrong values (wrong types, NaN, empty strings, mixed kinds, odd column names, random bytes)
only ever raise the package's InputError, and what is accepted is exactly what was given
(never a stringified list, boolean or number)."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from perspectives.errors import InputError
from perspectives.space.responses import read_table, validate_responses

SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

texts = st.text(min_size=0, max_size=8)
scalars = st.one_of(
    texts,
    st.integers(-3, 3),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.none(),
)
values = st.one_of(scalars, st.lists(st.integers(0, 2), max_size=2), st.dictionaries(texts, texts))


@st.composite
def frames(draw) -> pd.DataFrame:
    """A complete table (2-3 models x 1-3 prompts, a label per model) in which some cells of
    some columns are replaced by random values of any kind."""
    n_models, n_prompts = draw(st.integers(2, 3)), draw(st.integers(1, 3))
    good = {"model": [], "prompt_id": [], "response": [], "replicate": [], "cls": []}
    for i in range(n_models):
        for j in range(n_prompts):
            good["model"].append(f"m{i}" if i % 2 else i)  # text and integer ids
            good["prompt_id"].append(f"q{j}")
            good["response"].append(f"answer {i} {j}")
            good["replicate"].append(0)
            good["cls"].append("ab"[i % 2])
    if draw(st.booleans()):  # integer model ids throughout
        good["model"] = [int(str(v).lstrip("m")) for v in good["model"]]
    else:
        good["model"] = [f"m{v}" if isinstance(v, int) else v for v in good["model"]]
    n = len(good["model"])
    data = {}
    for name in ("model", "prompt_id", "response", "replicate", "cls"):
        if name in ("replicate", "cls") and not draw(st.booleans()):
            continue
        column = list(good[name])
        if draw(st.booleans()):
            spoil = draw(st.lists(st.booleans(), min_size=n, max_size=n))
            noise = draw(st.lists(values, min_size=n, max_size=n))
            column = [x if s else v for v, x, s in zip(column, noise, spoil, strict=True)]
        data[name] = column
    return pd.DataFrame({k: pd.Series(v, dtype=object) for k, v in data.items()})


def _is_int(v: object) -> bool:
    return isinstance(v, int | np.integer) and not isinstance(v, bool | np.bool_)


def _missing(v: object) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def _check_accepted(given_frame: pd.DataFrame, out: pd.DataFrame) -> None:
    """What the validator accepted is exactly what was given, of the right kinds."""
    assert len(out) == len(given_frame)
    for v_in, v_out in zip(given_frame["response"], out["response"], strict=True):
        assert isinstance(v_in, str) and v_in.strip() and v_out == v_in
    for col in ("model", "prompt_id"):
        kinds = {type(v) for v in given_frame[col]}
        assert kinds <= {str} or kinds <= {int}, (col, kinds)
        assert list(out[col]) == [str(v) for v in given_frame[col]]
        assert all(str(v).strip() for v in given_frame[col])
    if "replicate" in given_frame.columns:
        for v_in, v_out in zip(given_frame["replicate"], out["replicate"], strict=True):
            assert (_is_int(v_in) or (isinstance(v_in, str) and v_in.strip().isdigit())) and (
                int(v_in) == v_out >= 0
            )
    if "cls" in given_frame.columns:
        present = [v for v in given_frame["cls"] if not _missing(v)]
        assert all(isinstance(v, str | int | float | bool) for v in present)
        kinds = {
            "text" if isinstance(v, str) else "bool" if isinstance(v, bool) else "number"
            for v in present
        }
        assert len(kinds) <= 1
        assert all(
            (a is b) or a == b or (_missing(a) and _missing(b))
            for a, b in zip(given_frame["cls"], out["cls"], strict=True)
        )


@SETTINGS
@given(frames())
def test_validator_raises_only_input_error_and_accepts_only_what_is_right(frame):
    try:
        out = validate_responses(frame, "t.jsonl")
    except InputError as exc:
        assert str(exc).startswith("t.jsonl")
        return
    _check_accepted(frame, out)


@SETTINGS
@given(frames())
def test_jsonl_files_keep_json_types(tmp_path_factory, frame):
    records = frame.to_dict(orient="records")
    try:
        text = "".join(json.dumps(r) + "\n" for r in records)
    except (TypeError, ValueError):
        assume(False)
    path = tmp_path_factory.mktemp("p") / "r.jsonl"
    path.write_text(text, encoding="utf-8")
    try:
        out = validate_responses(read_table(path), str(path))
    except InputError as exc:
        assert str(path) in str(exc)
        return
    # Compare with the values as JSON gives them back (NaN, Infinity round-trip).
    back = pd.DataFrame(
        {
            k: pd.Series([json.loads(json.dumps(r))[k] for r in records], dtype=object)
            for k in frame.columns
        }
    )
    _check_accepted(back, out)


@SETTINGS
@given(frames(), st.sampled_from([".csv", ".parquet"]))
def test_csv_and_parquet_files_never_crash(tmp_path_factory, frame, suffix):
    path = tmp_path_factory.mktemp("p") / f"r{suffix}"
    try:
        if suffix == ".csv":
            frame.to_csv(path, index=False)
        else:
            frame.to_parquet(path, index=False)
    except Exception:  # noqa: BLE001 - pyarrow cannot store some mixed columns: not our case
        assume(False)
    try:
        out = validate_responses(read_table(path), str(path))
    except InputError as exc:
        assert str(path) in str(exc)
        return
    assert out["response"].map(lambda v: isinstance(v, str) and v.strip() != "").all()
    if suffix == ".parquet":  # Parquet keeps types: an accepted answer was text already
        assert list(out["response"]) == list(frame["response"])


column_names = st.one_of(
    st.sampled_from(["", " ", "z1", "z07", "model.1", "Model", "time", "prompt", "nan", "None"]),
    st.text(min_size=0, max_size=6),
)


@SETTINGS
@given(st.lists(column_names, min_size=1, max_size=4), st.data())
def test_odd_column_names_never_crash(tmp_path_factory, extra, data):
    rows = [
        {"model": f"m{i}", "prompt_id": f"q{j}", "response": f"a {i} {j}"}
        for i in range(2)
        for j in range(2)
    ]
    for name in extra:
        value = data.draw(scalars)
        for r in rows:
            r[name] = value
    path = tmp_path_factory.mktemp("p") / "r.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    try:
        out = validate_responses(read_table(path), str(path))
    except InputError as exc:
        assert str(path) in str(exc)
        return
    assert list(out["response"]) == [r["response"] for r in rows]
    assert not any(c.strip() == "" or c in ("z1", "z07") for c in out.columns)


@SETTINGS
@given(st.binary(max_size=300), st.sampled_from([".csv", ".jsonl", ".parquet"]))
def test_random_bytes_are_an_input_error_or_a_table(tmp_path_factory, raw, suffix):
    path = tmp_path_factory.mktemp("p") / f"r{suffix}"
    path.write_bytes(raw)
    try:
        frame = read_table(path)
    except InputError as exc:
        assert str(path) in str(exc)
        return
    try:
        validate_responses(frame, str(path))
    except InputError:
        pass


@pytest.mark.parametrize("value", [["a"], True, 42, 1.5, {"t": "x"}, None, float("nan")])
def test_no_non_text_answer_is_ever_stringified(tmp_path, value):
    rows = [
        {"model": f"m{i}", "prompt_id": "q0", "response": value if i == 1 else "fine"}
        for i in range(2)
    ]
    path = tmp_path / "r.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(InputError, match=r"r\.jsonl, field 'response'.* row 1"):
        validate_responses(read_table(path), str(path))
    frame = pd.DataFrame({k: pd.Series([r[k] for r in rows], dtype=object) for k in rows[0]})
    with pytest.raises(InputError, match=r"frame, field 'response'.* row 1"):
        validate_responses(frame, "frame")
