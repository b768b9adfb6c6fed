"""The typed communication config: field-level errors, and what policies tell the engine."""

from __future__ import annotations

import pytest

from perspectives.errors import ConfigError
from perspectives.simulation.config import build_policy, parse_run_config


def config(communication) -> dict:
    return {
        "steps": 10,
        "question_bank": "neutral",
        "interaction": {"questions": 2},
        "groups": [
            {"name": "adv", "backend": "fake"},
            {"name": "pop", "count": 3, "backend": "fake"},
        ],
        "communication": communication,
    }


@pytest.mark.parametrize(
    ("communication", "match"),
    [
        ({"type": "ring"}, r"field 'communication': unknown type; one of \['complete'"),
        ({"p": 0.5}, r"field 'communication': needs a 'type'"),
        ({"type": "erdos_renyi", "p": 2}, r"field 'communication.p': Input should be less"),
        ({"type": "complete", "x": 1}, r"field 'communication.x': Extra inputs are not permitted"),
        (
            {
                "type": "switch",
                "at": 3,
                "before": {"type": "complete"},
                "after": {"type": "isolate"},
            },
            r"field 'communication.after.models': Field required",
        ),
        (
            {"type": "union", "of": [{"type": "complete"}, {"type": "isolate", "models": ["x"]}]},
            r"field 'communication.of\[1\].models': names no model.*'x'",
        ),
        (
            {
                "type": "switch",
                "at": 11,
                "before": {"type": "complete"},
                "after": {"type": "complete"},
            },
            r"field 'communication.at': must be within 1..10",
        ),
        (
            {"type": "adversary", "adversary": "adv", "targets": 4, "every": 2},
            r"field 'communication.targets': at most 3 targets",
        ),
        (
            {"type": "adversary", "adversary": "adv", "targets": 1, "every": 0},
            r"'communication.every'",
        ),
        (
            {"type": "adjacency", "edges": [["adv-1"]]},
            r"field 'communication.edges.0': List should have at least 2 items",
        ),
    ],
)
def test_a_bad_policy_is_a_field_level_config_error(communication, match):
    with pytest.raises(ConfigError, match=match):
        parse_run_config(config(communication), "run.yaml")


def test_policies_say_what_the_engine_needs():
    cfg = parse_run_config(
        config(
            {
                "type": "switch",
                "at": 4,
                "before": {"type": "adversary", "adversary": "adv", "targets": 2, "every": 3},
                "after": {"type": "nearest_neighbor"},
            }
        ),
        "x",
    )
    policy = build_policy(cfg.communication, cfg)
    assert policy.needs_perspectives
    assert policy.adversaries == ("adv-1",)
    assert policy.change_points == (4,)
    plain = build_policy({"type": "complete"}, cfg)
    assert (plain.needs_perspectives, plain.adversaries, plain.change_points) == (False, (), ())
    # A typed spec round-trips through the resolved config as written.
    again = parse_run_config(cfg.model_dump(), "dump")
    assert again.communication == cfg.communication and again.fingerprint() == cfg.fingerprint()
