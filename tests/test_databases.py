"""Databases as vertices: config, reads and writes over time, the run folder, resume, analysis."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from interrupted import run_until_interrupted, tables

from perspectives.errors import ConfigError, CorruptStateError
from perspectives.simulation.config import parse_run_config
from perspectives.simulation.engine import Simulation
from perspectives.simulation.history import load_history
from perspectives.simulation.rundir import RunFolder, read_parts
from perspectives.space.embed import get_embedder

DB_TABLES = ("responses", "edges", "db_items", "db_access")


@pytest.fixture(autouse=True)
def _fresh_greedy_answers():
    from perspectives.models.memory import clear_greedy_answers

    clear_greedy_answers()
    yield
    clear_greedy_answers()


def forum_config(tiny_config, **db) -> dict:
    """Two fake groups of remembering models that do not talk to each other: a forum they
    read and post to is their only channel."""
    raw = tiny_config("fake", update={"method": "memory", "memory_k": 3}, steps=4)
    raw["communication"] = {"type": "isolate", "models": ["a", "b"]}
    forum = {
        "name": "forum",
        "initial": {"bank": "neutral", "sample_size": 3},
        "read": [{"models": "all"}],
        "write": [{"models": "all", "what": "posts", "posts": 2}],
    }
    raw["databases"] = [{**forum, **db}]
    return raw


def run(raw, folder):
    sim = Simulation.create(parse_run_config(raw, "t"), folder, embedder=get_embedder("hashing"))
    sim.run()
    return sim


def test_a_forum_holds_its_initial_items_and_every_post(tmp_path, tiny_config):
    sim = run(forum_config(tiny_config), tmp_path / "r")
    items = read_parts(tmp_path / "r", "db_items")
    # 3 initial items at t = 0, then 4 models x 2 posts a step.
    assert items.groupby("t").size().to_dict() == {0: 3, 1: 8, 2: 8, 3: 8, 4: 8}
    first = items[items.t == 0]
    assert set(first.source) == {"forum"} and first.first_hand.all()
    posts = items[items.t > 0]
    assert posts.first_hand.all() and posts.groupby("source").size().to_dict() == {
        m: 8 for m in ("a-1", "a-2", "b-1", "b-2")
    }
    assert len(sim.stores["forum"]) == 35
    # Models heard nothing first-hand: their own memories hold only their initial samples.
    assert set(sim.agents["a-1"].memory.items.t) == {0} and not len(sim.agents["b-1"].memory)
    access = read_parts(tmp_path / "r", "db_access")
    assert access[access.t == 0].access.eq("read").all()  # nothing is written at t = 0
    assert len(access[access.t == 1]) == 8


def test_reading_the_forum_changes_what_models_say(tmp_path, tiny_config):
    with_forum = run(forum_config(tiny_config), tmp_path / "on")
    raw = forum_config(tiny_config, read=[])
    without = run(raw, tmp_path / "off")
    a = read_parts(with_forum.folder, "responses")
    b = read_parts(without.folder, "responses")
    a, b = (x[(x.phase == "eval") & (x.model == "b-1")].text.tolist() for x in (a, b))
    assert a != b  # the forum's items are in b-1's prompts (it has no memory of its own)
    # Without readers the forum still fills with posts and is still placed in the space.
    assert len(without.stores["forum"]) == 35


def test_read_access_granted_and_taken_away_mid_run(tmp_path, tiny_config):
    raw = forum_config(tiny_config, read=[{"models": ["b"], "since": 2, "until": 4}])
    sim = run(raw, tmp_path / "r")
    access = read_parts(tmp_path / "r", "db_access")
    reads = access[access.access == "read"]
    assert reads.groupby("t").model.apply(sorted).to_dict() == {
        2: ["b-1", "b-2"],
        3: ["b-1", "b-2"],
    }
    assert sim.agents["b-1"].shared == [] and sim.agents["a-1"].shared == []
    # While b reads, its answers follow the forum; before and after it answers from nothing.
    ev = read_parts(tmp_path / "r", "responses")
    ev = ev[(ev.phase == "eval") & (ev.model == "b-1")].groupby("t").text.apply(list)
    assert ev[0] == ev[1] == ev[4] and ev[2] != ev[1]
    from perspectives.reporting.run_analysis import disruption_steps

    assert disruption_steps(sim.cfg) == [2, 4]


def test_interview_answers_and_heard_pairs_are_written(tmp_path, tiny_config):
    raw = forum_config(
        tiny_config,
        initial=None,
        read=[],
        write=[
            {"models": ["a-1"], "what": "answers"},
            {"models": ["b-1"], "what": "interviews"},
        ],
    )
    raw["communication"] = {"type": "complete"}
    run(raw, tmp_path / "r")
    items = read_parts(tmp_path / "r", "db_items")
    resp = read_parts(tmp_path / "r", "responses")
    heard = resp[resp.phase == "interview"]
    said = heard[heard.model == "a-1"]
    by_a = items[items.source == "a-1"]
    assert len(by_a) == len(said) and by_a.first_hand.all()
    assert sorted(by_a.answer) == sorted(said.text)
    by_b = items[items.source == "b-1"]
    assert len(by_b) == len(heard[heard.asker == "b-1"]) == 3 * 4
    assert not by_b.first_hand.any()


def test_fine_tuned_models_learn_from_a_database_they_read_for_training(tmp_path, tiny_config):
    raw = tiny_config("fake", steps=2)
    raw["databases"] = [
        {
            "name": "library",
            "initial": {"bank": "neutral", "sample_size": 6},
            "read": [{"models": ["b"], "use": "training", "sample": 4}],
        }
    ]
    run(raw, tmp_path / "r")
    events = read_parts(tmp_path / "r", "events")
    learned = events[(events.kind == "learn") & (events.detail == "library")]
    assert sorted(learned.model) == ["b-1", "b-1", "b-2", "b-2"]


def test_a_resumed_run_with_a_database_repeats_an_uninterrupted_one(tmp_path, tiny_config):
    raw = forum_config(tiny_config)
    hashing = get_embedder("hashing")
    run(raw, tmp_path / "s")
    from perspectives.models.memory import clear_greedy_answers

    clear_greedy_answers()
    run_until_interrupted(raw, tmp_path / "c", hashing, at=3)
    clear_greedy_answers()
    Simulation.resume(tmp_path / "c", embedder=hashing).run()
    a, b = tables(tmp_path / "c", DB_TABLES), tables(tmp_path / "s", DB_TABLES)
    for name in DB_TABLES:
        pd.testing.assert_frame_equal(a[name], b[name])


def test_a_checkpoint_without_its_database_is_named(tmp_path, tiny_config):
    import shutil

    raw = forum_config(tiny_config)
    run_until_interrupted(raw, tmp_path / "c", get_embedder("hashing"), at=2)
    shutil.rmtree(RunFolder(tmp_path / "c").checkpoint(1) / "databases" / "forum")
    with pytest.raises(CorruptStateError, match="lacks the database 'forum'"):
        Simulation.resume(tmp_path / "c", embedder=get_embedder("hashing")).run()


def test_a_database_is_placed_in_the_models_space(tmp_path, tiny_config):
    """The forum's probe is group a's model retrieving from the forum: a model of group a
    with no memory of its own reads only the forum, and answers as the probe does."""
    raw = forum_config(tiny_config, k=3)  # as many items as the models retrieve
    raw["groups"][0].pop("init")
    run(raw, tmp_path / "r")
    hist = load_history(tmp_path / "r")
    assert set(hist.perspectives.model) == {"a-1", "a-2", "b-1", "b-2"}  # no database point
    db = hist.databases
    assert list(db.t) == [0, 1, 2, 3, 4] and set(db.database) == {"forum"}
    zcols = [c for c in db.columns if c.startswith("z")]
    a1 = hist.perspectives[hist.perspectives.model == "a-1"].set_index("t")[zcols]
    # a-1 is the probe's model and, with no memory of its own, retrieves only the forum.
    np.testing.assert_allclose(db.set_index("t")[zcols].to_numpy(), a1.to_numpy(), atol=1e-9)
    from perspectives.reporting.run_analysis import analyze_run, write_run_analysis

    result = analyze_run(tmp_path / "r")
    assert result.summary["databases"]["forum"]["distance_to_nearest"] < 1e-9
    assert result.summary["models"] == 4
    out = write_run_analysis(result)
    assert len(pd.read_parquet(out / "databases.parquet")) == 5
    from typer.testing import CliRunner

    from perspectives.cli.app import app

    said = CliRunner().invoke(app, ["analyze", str(tmp_path / "r")])
    assert said.exit_code == 0 and "database forum at t = 4" in " ".join(said.output.split())


@pytest.mark.parametrize(
    "db, field, message",
    [
        ({"name": "a"}, "databases.0.name", "already the name"),
        (
            {"name": "forum", "initial": {"bank": "neutral", "sample_size": 10_000}},
            "databases.0.initial.sample_size",
            "larger than the bank",
        ),
        ({"name": "forum", "initial": {"bank": "nope"}}, "databases.0.initial.bank", "bank"),
        ({"name": "forum", "read": [{"models": ["zz"]}]}, "databases.0.read.0.models", "names no"),
        (
            {"name": "forum", "read": [{"since": 5, "until": 5}]},
            "databases.0.read.0.since",
            "after the last step",
        ),
        (
            {"name": "forum", "write": [{"since": 2, "until": 2}]},
            "databases.0.write.0.until",
            "must come after since",
        ),
        (
            {"name": "forum", "write": [{"until": 1}]},
            "databases.0.write.0.until",
            "models write from step 1 on",
        ),
        ({"name": "forum", "read": [{"models": []}]}, "databases.0.read.0.models", "nobody"),
        (
            {"name": "forum", "write": [{"what": "posts", "posts": 5000}]},
            "databases.0.write.0.posts",
            "more posts",
        ),
        (
            {"name": "forum", "read": [{"models": "a"}]},
            "databases.0.read.0.models",
            "needs a model of the 'memory' update",
        ),
        (
            {"name": "forum", "probe": {"backend": "nope"}},
            "databases.0.probe.backend",
            "unknown model backend",
        ),
        (
            # the tiny run answers in 6 tokens: 122 of 128 left, too few for any item
            {
                "name": "forum",
                "probe": {
                    "backend": "openai",
                    "model": "m",
                    "api": {"url": "http://127.0.0.1:9/v1", "context_tokens": 128},
                },
            },
            "evaluation.sampling.max_new_tokens",
            "leaves 122 of the 128 tokens of databases.0.probe.api.context_tokens",
        ),
    ],
)
def test_bad_database_configs_name_the_field(tiny_config, db, field, message):
    raw = tiny_config("fake", steps=4)
    raw["databases"] = [db]
    with pytest.raises(ConfigError, match=message) as err:
        parse_run_config(raw, "run.yaml")
    assert err.value.field == field and err.value.source == "run.yaml"


def test_unknown_keys_and_wrong_kinds_are_refused(tiny_config):
    raw = tiny_config("fake", steps=4)
    for db, field in (
        ({"name": "forum", "reed": []}, "databases.0.reed"),
        ({"name": "forum", "read": [{"use": "sniffing"}]}, "databases.0.read.0.use"),
        ({"name": "forum", "write": [{"what": "lies"}]}, "databases.0.write.0.what"),
        ({"name": "for um"}, "databases.0.name"),
    ):
        raw["databases"] = [db]
        with pytest.raises(ConfigError) as err:
            parse_run_config(raw, "run.yaml")
        assert err.value.field == field


def test_a_config_without_databases_keeps_its_fingerprint(tiny_config):
    raw = tiny_config("fake")
    plain = parse_run_config(raw, "t").fingerprint()
    assert parse_run_config({**raw, "databases": []}, "t").fingerprint() == plain
    with_db = parse_run_config({**raw, "databases": [{"name": "d"}]}, "t")
    assert with_db.fingerprint() != plain


def test_a_forum_of_transformers_models(tmp_path, tiny_model_dir, tiny_config, isolated_cache):
    """The tiny 2-layer model behind the memory rule, posting to and reading a forum, and
    placed in the space by a probe of the same network."""
    raw = tiny_config(tiny_model_dir, update={"method": "memory", "memory_k": 2}, steps=2)
    raw["communication"] = {"type": "isolate", "models": ["a", "b"]}
    raw["databases"] = [
        {
            "name": "forum",
            "read": [{"models": "all"}],
            "write": [{"models": ["b"], "what": "posts", "posts": 2}],
            "k": 2,
        }
    ]
    sim = Simulation.create(
        parse_run_config(raw, "t"), tmp_path / "r", embedder=get_embedder("hashing")
    )
    sim.run()
    items = read_parts(tmp_path / "r", "db_items")
    assert items.groupby("t").size().to_dict() == {1: 4, 2: 4}
    assert set(items.source) == {"b-1", "b-2"}
    hist = load_history(tmp_path / "r")
    assert list(hist.databases.t) == [0, 1, 2]
    # The probe shares the models' network: they answer in one call.
    assert sim.probes["forum"].joint_key == sim.agents["b-1"].joint_key
    # The answering dtype is recorded for remembering models of a transformers network too.
    import json

    events = read_parts(tmp_path / "r", "events")
    timing = [json.loads(d) for d in events[events.kind == "timing"].detail]
    assert {x["answer_dtype"] for x in timing} <= {"float32", "bfloat16"}


def test_conditions_that_differ_from_a_step_on_share_the_steps_before(tmp_path, tiny_config):
    """Read access taken away at step 3: the same system as the open forum through step 2,
    so a sweep forks it from there, and the fork's tables are a straight run's."""
    from perspectives.experiments.fork import shared_steps

    open_raw = forum_config(tiny_config)
    closed_raw = forum_config(tiny_config, read=[{"models": "all", "until": 3}])
    trained_raw = forum_config(tiny_config, read=[{"models": "all", "use": "training"}])
    opened, closed, trained = (
        parse_run_config(r, "t") for r in (open_raw, closed_raw, trained_raw)
    )
    assert shared_steps(opened, closed) == 2 and shared_steps(opened, trained) == -1
    assert shared_steps(opened, parse_run_config(open_raw, "t")) == 4
    hashing = get_embedder("hashing")
    Simulation.create(opened, tmp_path / "open", embedder=hashing, keep_checkpoints={2}).run()
    RunFolder(tmp_path / "open").fork(2, closed, tmp_path / "fork")
    Simulation.resume(tmp_path / "fork", embedder=hashing).run()
    run(closed_raw, tmp_path / "straight")
    a, b = tables(tmp_path / "fork", DB_TABLES), tables(tmp_path / "straight", DB_TABLES)
    for name in DB_TABLES:
        pd.testing.assert_frame_equal(a[name], b[name])


def test_the_shared_forum_preset_and_its_sweep():
    from perspectives.experiments.fork import shared_steps
    from perspectives.experiments.presets import load_preset

    preset = load_preset("shared-forum")
    cfgs = {c["name"]: preset.config(sets=c["set"]) for c in preset.sweep["conditions"]}
    assert list(cfgs) == ["forum", "closed", "absorbed", "no-forum"]
    forum = cfgs["forum"]
    assert forum.update.method == "memory" and [d.name for d in forum.databases] == ["forum"]
    assert not any(g.learning for g in forum.groups)  # the forum is the only channel
    # Closed at step 4: the open forum's system through step 3, run once by a sweep.
    assert shared_steps(forum, cfgs["closed"]) == 3
    assert shared_steps(forum, cfgs["absorbed"]) == shared_steps(forum, cfgs["no-forum"]) == -1
