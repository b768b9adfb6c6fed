"""Property-based tests of the run-config parser: any structurally valid config with one wrong
value, and any YAML at all, gives the package's own one-line error or a config that holds
exactly what was written (never a traceback, never a silently coerced or meaningless value)."""

from __future__ import annotations

import copy
import math

import pytest
import yaml
from badinput import FAKE_CONFIG
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from perspectives.errors import PerspectivesError
from perspectives.simulation.config import parse_run_config

BASE = {
    **FAKE_CONFIG,
    "steps": 3,
    "update": {"lr": 1e-4},
    "communication": {"type": "adversary", "adversary": "a-1", "targets": 1, "every": 2},
}

# Every leaf a user writes, with the kind of value it holds.
LEAVES = {
    "name": str,
    "seed": int,
    "steps": int,
    "question_bank": str,
    "groups.0.name": str,
    "groups.0.count": int,
    "groups.0.backend": str,
    "groups.0.learning": bool,
    "groups.0.join_at": int,
    "groups.1.leave_at": int,
    "groups.0.prompt_format": str,
    "interaction.questions": int,
    "interaction.mechanic": str,
    "evaluation.n_prompts": int,
    "evaluation.every": int,
    "evaluation.replicates": int,
    "update.lr": float,
    "update.epochs": int,
    "update.batch_size": int,
    "update.method": str,
    "communication.targets": int,
    "communication.every": int,
    "communication.offset": int,
    "communication.adversary": str,
}

WRONG = st.one_of(
    st.integers(-(10**12), 10**12),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.booleans(),
    st.none(),
    st.lists(st.integers(-3, 3), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)


def _set(raw: dict, dotted: str, value) -> None:
    keys = dotted.split(".")
    node = raw
    for key in keys[:-1]:
        node = node[int(key)] if isinstance(node, list) else node[key]
    node[keys[-1]] = value


def _get(obj, dotted: str):
    for key in dotted.split("."):
        obj = obj[int(key)] if key.isdigit() else getattr(obj, key)
    return obj


def _same(kind: type, given, held) -> bool:
    """Whether the config holds what was written, of the right kind (an int is a float;
    None is "not set" for an optional value)."""
    if given is None:
        return held is None
    if kind is float:
        ok = isinstance(given, int | float) and not isinstance(given, bool)
        return ok and math.isfinite(given) and held == given
    return type(given) is kind and held == given


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(leaf=st.sampled_from(sorted(LEAVES)), value=WRONG)
def test_one_wrong_value_is_refused_or_held_exactly(leaf, value):
    raw = copy.deepcopy(BASE)
    _set(raw, leaf, value)
    try:
        cfg = parse_run_config(raw, "cfg.yaml")
    except PerspectivesError as exc:
        text = str(exc)
        assert text.startswith("cfg.yaml") and "\n" not in text.strip()
        return
    assert _same(LEAVES[leaf], value, _get(cfg, leaf)), (leaf, value, _get(cfg, leaf))
    # What was accepted makes a system that can run: someone present at every step.
    assert all(cfg.active(t) for t in range(cfg.steps + 1))


YAML_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=8)),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=200, deadline=None)
@given(doc=YAML_VALUES)
def test_any_yaml_document_is_a_config_or_one_error(doc, tmp_path_factory):
    from perspectives.experiments.presets import load_preset

    path = tmp_path_factory.mktemp("cfg") / "cfg.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    try:
        load_preset(str(path)).config()
    except PerspectivesError as exc:
        assert "cfg.yaml" in str(exc)


@settings(max_examples=200, deadline=None)
@given(
    text=st.text(
        alphabet=st.sampled_from(list("abc:- \n\t[]{}'\"#&*!|>%@`,?0123456789.")), max_size=60
    )
)
def test_any_text_is_a_config_or_one_error(text, tmp_path_factory):
    from perspectives.experiments.presets import load_preset

    path = tmp_path_factory.mktemp("cfg") / "cfg.yaml"
    path.write_text(text, encoding="utf-8")
    try:
        load_preset(str(path)).config()
    except PerspectivesError as exc:
        assert "cfg.yaml" in str(exc)


def test_numbers_are_read_as_yaml_1_2_reads_them():
    """PyYAML (YAML 1.1) reads 010 as 8 and 1:30 as 90: a config says 10 and a string."""
    from perspectives.config import parse_yaml

    assert parse_yaml("[010, -007, 1_000, 0x10, 0o17, 1e-4, 12]", "x") == [
        10,
        -7,
        1000,
        16,
        15,
        1e-4,
        12,
    ]
    assert parse_yaml("[1:30, 0b10]", "x") == ["1:30", "0b10"]
    raw = yaml.safe_load(yaml.safe_dump(BASE))
    text = yaml.safe_dump(raw).replace("steps: 3", "steps: 010")
    assert parse_run_config(parse_yaml(text, "c.yaml"), "c.yaml").steps == 10
    with pytest.raises(PerspectivesError, match="steps"):
        parse_run_config(parse_yaml(text.replace("steps: 010", "steps: 1:30"), "c"), "c")


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.text(alphabet="0123456789oxXbe_:.+-", max_size=6),
            st.sampled_from(["08", "09", "0o7", "1e5", "1:30", "010", "true", "null", "~"]),
            st.text(max_size=8),
        ),
        max_size=5,
    )
)
def test_any_text_a_config_holds_is_written_and_read_back_as_text(texts):
    """A group named "08" written by a sweep (system.yaml) or a run (config.yaml) is read
    back as "08", by the config reader and by yaml.safe_load alike."""
    from perspectives.config import dump_yaml, parse_yaml

    data = {"names": texts, "count": 3, "lr": 1e-4}
    text = dump_yaml(data)
    assert parse_yaml(text, "x") == data
    assert yaml.safe_load(text) == data
