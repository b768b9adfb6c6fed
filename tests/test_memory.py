"""The ``memory`` update rule: the retrieval database, the agent, and memory agents in runs."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
from interrupted import run_until_interrupted, tables

from perspectives.errors import ConfigError, InputError
from perspectives.models.contract import AgentSpec
from perspectives.models.memory import MemoryAgent, MemoryStore
from perspectives.models.registry import load_agent, make_agent
from perspectives.models.update import UpdateConfig
from perspectives.simulation.config import parse_run_config
from perspectives.simulation.engine import Simulation
from perspectives.simulation.rundir import RunFolder
from perspectives.space.embed import get_embedder


@pytest.fixture(autouse=True)
def _fresh_greedy_answers():
    """Each test starts as a new process would: no greedy answers to reuse."""
    from perspectives.models.memory import clear_greedy_answers

    clear_greedy_answers()
    yield
    clear_greedy_answers()


def items(*rows):
    return pd.DataFrame(
        [dict(question=q, answer=a, source=s, t=t, first_hand=False) for q, a, s, t in rows]
    )


def test_search_ranks_by_cosine_times_decay_newest_first_on_ties():
    store = MemoryStore()
    store.add(
        items(("q0", "a", "x", 0), ("q1", "b", "x", 1), ("q2", "c", "y", 2), ("q3", "d", "y", 3)),
        # q0 and q3 point the same way; q1 at 60 degrees; q2 opposite.
        np.array([[1, 0], [0.5, np.sqrt(3) / 2], [-1, 0], [2, 0]], dtype=np.float32),
    )
    idx, scores = store.search(np.array([[1.0, 0.0]]), k=3)
    assert idx.tolist() == [[3, 0, 1]]  # q0 and q3 tie at 1.0: the newer first
    np.testing.assert_allclose(scores, [[1.0, 1.0, 0.5]], atol=1e-6)
    # Decay 0.5 per step at now = 3: q3 1.0, q1 0.5·e^-1 = 0.184, q0 e^-1.5 = 0.223.
    idx, scores = store.search(np.array([[1.0, 0.0]]), k=3, now=3, decay=0.5)
    assert idx.tolist() == [[3, 0, 1]]
    np.testing.assert_allclose(scores, [[1.0, np.exp(-1.5), 0.5 * np.exp(-1.0)]], atol=1e-6)
    # More than it holds: all of them; an empty store: nothing.
    assert store.search(np.array([[0.0, 1.0]]), k=10)[0].shape == (1, 4)
    assert MemoryStore().search(np.ones((2, 2)), k=3)[0].shape == (2, 0)


def test_search_matches_a_brute_force_ranking_on_random_data():
    rng = np.random.default_rng(0)
    store = MemoryStore()
    n = 500
    store.add(
        items(*[(f"q{i}", "a", "s", int(rng.integers(10))) for i in range(n)]),
        rng.normal(size=(n, 16)),
    )
    queries = rng.normal(size=(7, 16))
    idx, scores = store.search(queries, k=5, now=10, decay=0.1)
    unit = store.vectors
    full = (queries / np.linalg.norm(queries, axis=1, keepdims=True)) @ unit.T
    full *= np.exp(-0.1 * (10 - store.items["t"].to_numpy()))[None, :]
    np.testing.assert_allclose(scores, -np.sort(-full, axis=1)[:, :5], atol=1e-5)


def agent(**kw) -> MemoryAgent:
    spec = AgentSpec(
        "m1",
        "calm",
        backend="fake",
        update=UpdateConfig(
            method="memory",
            memory_k=kw.pop("k", 2),
            memory_format=kw.pop("memory_format", "system"),
        ),
        **kw,
    )
    a = make_agent(spec)
    a.embedder = get_embedder("hashing")
    return a


def test_learning_stores_items_and_answers_use_them():
    a = agent()
    before = a.answer(["How do birds fly?"])
    v0 = a.version
    a.learn([("How do birds fly?", "wings wings wings feathers")], t=4, source="b-1")
    assert a.version != v0 and a.clock == 4
    row = a.memory.items.iloc[0]
    assert (row.question, row.source, row.t, bool(row.first_hand)) == (
        "How do birds fly?",
        "b-1",
        4,
        False,
    )
    conv = a.conversations(["How do birds fly?"], 10)[0]
    assert conv[0]["role"] == "system" and "A: wings wings wings feathers" in conv[0]["content"]
    after = a.answer(["How do birds fly?"])
    assert after != before and ("wings" in after[0] or "feathers" in after[0])
    # The k most similar only.
    a.learn([("What is rain?", "water"), ("Why is the sea salty?", "salt")], source="b-2")
    assert a.clock == 5 and len(a.memory) == 3
    assert a.conversations(["What is rain?"], 10)[0][0]["content"].count("Q: ") == 2


def test_retrieved_items_can_be_earlier_turns_of_the_chat_most_relevant_last():
    a = agent(memory_format="turns", system_prompt="Be brief.")
    a.learn([("What is rain?", "water"), ("Why is the sea salty?", "salt")], t=1, source="b")
    conv = a.conversations(["Why is the sea salty, really?"], 10)[0]
    assert [m["role"] for m in conv] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert conv[0]["content"] == "Be brief."  # the system prompt alone: no "Q: … A: …" list
    assert conv[3:] == [
        {"role": "user", "content": "Why is the sea salty?"},
        {"role": "assistant", "content": "salt"},
        {"role": "user", "content": "Why is the sea salty, really?"},
    ]
    assert not any("A: " in m["content"] for m in conv)
    # The default lists the same memory in the system message: two messages.
    b = agent(system_prompt="Be brief.")
    b.learn([("What is rain?", "water"), ("Why is the sea salty?", "salt")], t=1, source="b")
    assert len(b.conversations(["Why is the sea salty, really?"], 10)[0]) == 2
    with pytest.raises(ValueError, match="memory_format"):
        UpdateConfig(method="memory", memory_format="prompt")


def test_a_read_database_is_searched_with_the_own_memory_and_followed_as_it_grows():
    a = agent(k=1)
    a.learn([("How do birds fly?", "wings")], t=1, source="b")
    forum = MemoryStore()
    forum.add(items(("What is rain?", "water from clouds", "f", 1)), a._embed(["What is rain?"]))
    a.shared = [forum]
    union = a._union_of([a.memory, forum])
    assert a._union_of([a.memory, forum]) is union  # nothing grew: built once
    assert "water from clouds" in a.conversations(["What is rain?"], 10)[0][0]["content"]
    assert "wings" in a.conversations(["How do birds fly?"], 10)[0][0]["content"]
    forum.add(items(("Why is the sea salty?", "salt", "f", 2)), a._embed(["Why is the sea salty?"]))
    assert a._union_of([a.memory, forum]) is not union and len(a._union_of([a.memory, forum])) == 3
    assert "A: salt" in a.conversations(["Why is the sea salty?"], 10)[0][0]["content"]


def test_save_and_load_give_the_same_agent(tmp_path):
    a = agent(system_prompt="You are calm.")
    a.learn([("What is rain?", "water from clouds"), ("What is snow?", "frozen rain")], t=1)
    a.save(tmp_path / "a")
    b = load_agent(tmp_path / "a")
    b.embedder = get_embedder("hashing")
    assert isinstance(b, MemoryAgent) and b.clock == 1 and b.n_updates == 1
    pd.testing.assert_frame_equal(a.memory.items, b.memory.items)
    np.testing.assert_array_equal(a.memory.vectors, b.memory.vectors)
    qs = ["What is rain?", "What is hail?"]
    assert a.answer(qs) == b.answer(qs)


def test_a_damaged_memory_is_a_corrupt_state_error(tmp_path):
    from perspectives.errors import CorruptStateError

    a = agent()
    a.learn([("What is rain?", "water")])
    a.save(tmp_path / "a")
    (tmp_path / "a" / "memory-vectors.npy").write_bytes(b"junk")
    with pytest.raises(CorruptStateError, match="corrupt memory"):
        load_agent(tmp_path / "a")


def _saved_agent(tmp_path):
    a = agent()
    a.learn([("What is rain?", "water"), ("What is snow?", "ice")], t=1, source="b")
    a.save(tmp_path / "a")
    return tmp_path / "a"


def _damage_items(folder, column, values):
    frame = pd.read_parquet(folder / "memory.parquet")
    frame[column] = values
    frame.to_parquet(folder / "memory.parquet")


@pytest.mark.parametrize(
    "column, values, message",
    [
        # each was read as something else: "False" as True, a null as the text "nan",
        # a null step or a text step as a traceback from pandas
        ("first_hand", ["False", "False"], "first_hand of item 0 is 'False'"),
        ("question", [None, "What is snow?"], "question of item 0 is missing"),
        ("t", [1.0, float("nan")], "t of item 1 is missing"),
        ("t", ["1", "x"], "t of item 1 is 'x'"),
        ("t", [1.5, 1.0], "t of item 0 is 1.5"),
        ("t", [1.0, 1e30], "t of item 1 is 1e"),  # cast to int64 it wrapped to a negative step
        ("t", [True, True], "t of item 0 is True"),
        ("t", pd.array([1, None], dtype="Int64"), "t of item 1 is missing"),
        ("first_hand", pd.array([False, None], dtype="boolean"), "first_hand of item 1"),
        ("first_hand", [0, 1], "first_hand of item 0 is 0"),
    ],
)
def test_a_memory_with_values_save_cannot_write_is_refused_naming_column_and_item(
    tmp_path, column, values, message
):
    from perspectives.errors import CorruptStateError

    folder = _saved_agent(tmp_path)
    _damage_items(folder, column, values)
    with pytest.raises(CorruptStateError, match=message) as err:
        load_agent(folder)
    assert "memory.parquet" in str(err.value)


def test_a_memory_whose_items_file_is_gone_is_refused_not_read_as_empty(tmp_path):
    from perspectives.errors import CorruptStateError

    folder = _saved_agent(tmp_path)
    (folder / "memory.parquet").unlink()
    with pytest.raises(CorruptStateError, match="no memory.parquet"):
        load_agent(folder)
    empty = agent()
    empty.save(tmp_path / "empty")  # an empty memory is saved as a file too
    assert len(load_agent(tmp_path / "empty").memory) == 0


def test_what_load_would_refuse_is_not_saved():
    # A NaN embedding or a source that is no text were saved, and every later checkpoint
    # could not be read.
    store = MemoryStore()
    with pytest.raises(InputError, match="holding NaN or inf"):
        store.add(items(("Q?", "A.", "b", 1)), np.array([[np.nan, 1.0]]))
    with pytest.raises(InputError, match=r"not an array of \(2,\)"):
        store.add(items(("Q?", "A.", "b", 1)), np.array([0.6, 0.8]))  # one text's vector
    assert len(store) == 0
    with pytest.raises(InputError, match="source"):
        agent().remember([("Q?", "A.")], t=1, source=None, first_hand=False)


def test_vectors_that_are_not_finite_or_of_another_width_are_named(tmp_path):
    from perspectives.errors import CorruptStateError

    folder = _saved_agent(tmp_path)
    vectors = np.load(folder / "memory-vectors.npy")
    nan = vectors.copy()
    nan[1, 0] = np.nan
    np.save(folder / "memory-vectors.npy", nan)
    with pytest.raises(CorruptStateError, match="vector of item 1 is not finite"):
        load_agent(folder)
    np.save(folder / "memory-vectors.npy", vectors[:, :2])
    b = load_agent(folder)
    b.embedder = get_embedder("hashing")
    with pytest.raises(InputError, match=f"in {vectors.shape[1]} dimensions for a memory of 2"):
        b.answer(["What is rain?"])


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("clock", 2.9, "clock is 2.9, not a count"),
        ("n_updates", -3, "n_updates is -3, not a count"),
        ("embedder", 7, "embedder is 7, not a name"),
        ("update", {"method": ["memory"]}, "unknown update rule"),
    ],
)
def test_a_damaged_agent_json_is_refused(tmp_path, key, value, message):
    import json

    from perspectives.errors import CorruptStateError

    folder = _saved_agent(tmp_path)
    meta = json.loads((folder / "agent.json").read_text())
    meta[key] = value
    (folder / "agent.json").write_text(json.dumps(meta))
    with pytest.raises(CorruptStateError, match=message):
        load_agent(folder)


def test_an_agent_json_that_is_a_folder_is_refused(tmp_path):
    from perspectives.errors import CorruptStateError

    folder = _saved_agent(tmp_path)
    (folder / "agent.json").unlink()
    (folder / "agent.json").mkdir()
    with pytest.raises(CorruptStateError, match="cannot read agent.json"):
        load_agent(folder)


def test_items_that_overflow_the_context_are_left_out_with_one_warning(monkeypatch):
    a = agent(k=5)
    long = " ".join(["word"] * 700)
    a.learn([(f"Question {i}?", long) for i in range(5)])
    with pytest.warns(UserWarning, match=r"left out to fit the context of 2048 tokens"):
        conv = a.conversations(["Question 1?"], 48)[0]
    assert conv[0]["content"].count("Q: ") == 2  # 2 × ~700 fit in 2000, 3 do not
    monkeypatch.setattr(type(a.lm), "context_tokens", 100)
    with pytest.raises(ConfigError, match="too short for retrieved memories"):
        a.answer(["Question 1?"])
    monkeypatch.setattr(type(a.lm), "context_tokens", 512)
    with pytest.raises(ConfigError, match="leaves 12 of the backend's 512 tokens"):
        a.conversations(["Question 1?"], 500)


def test_bad_pairs_are_refused():
    a = agent()
    with pytest.raises(InputError, match="at least one"):
        a.learn([])
    with pytest.raises(InputError, match="two texts"):
        a.learn([("q", 3)])


def _memory_config(tiny_config, **over):
    raw = tiny_config("fake", update={"method": "memory", "memory_k": 3}, steps=3)
    raw.update(over)
    return raw


def test_a_memory_run_starts_from_its_initial_sample_and_resumes_exactly(tmp_path, tiny_config):
    raw = _memory_config(tiny_config)
    hashing = get_embedder("hashing")
    straight = Simulation.create(parse_run_config(raw, "t"), tmp_path / "s", embedder=hashing)
    straight.run()
    # Group a's init sample is in its memory at t = 0, first-hand; b starts empty.
    a1 = straight.agents["a-1"]
    first = a1.memory.items[a1.memory.items.t == 0]
    assert len(first) == 4 and first.first_hand.all() and set(first.source) == {"a-1"}
    assert not straight.agents["b-1"].memory.items.first_hand.any()
    heard = a1.memory.items[a1.memory.items.t > 0]
    assert set(heard.t) <= {1, 2, 3} and set(heard.source) <= {"a-2", "b-1", "b-2"}

    run_until_interrupted(raw, tmp_path / "c", hashing, at=2)
    assert RunFolder(tmp_path / "c").last_complete_step() == 1
    Simulation.resume(tmp_path / "c", embedder=hashing).run()
    a, b = tables(tmp_path / "c"), tables(tmp_path / "s")
    pd.testing.assert_frame_equal(a["responses"], b["responses"])
    pd.testing.assert_frame_equal(a["edges"], b["edges"])


def test_groups_can_mix_update_rules(tmp_path, tiny_config):
    raw = tiny_config("fake", steps=2)
    raw["groups"][1]["update"] = {"method": "memory"}
    hashing = get_embedder("hashing")
    sim = Simulation.create(parse_run_config(raw, "t"), tmp_path / "r", embedder=hashing)
    sim.run()
    assert type(sim.agents["a-1"]).__name__ == "FakeAgent"
    assert isinstance(sim.agents["b-1"], MemoryAgent) and len(sim.agents["b-1"].memory) > 0
    # And it resumes with the same rules.
    again = Simulation.resume(tmp_path / "r", embedder=hashing)
    again._load_checkpoint(2)
    assert isinstance(again.agents["b-1"], MemoryAgent)


def test_a_backend_that_cannot_fine_tune_needs_the_memory_rule(tiny_config):
    raw = tiny_config("fake")
    raw["groups"][1] = {
        "name": "b",
        "backend": "openai",
        "model": "m",
        "api": {"url": "http://h/v1"},
    }
    with pytest.raises(ConfigError, match=r"groups.1.backend.*cannot be fine-tuned"):
        parse_run_config(raw, "t")
    raw["groups"][1]["update"] = {"method": "memory"}
    parse_run_config(raw, "t")
    raw["groups"][1]["api"]["context_tokens"] = 128
    with pytest.raises(ConfigError, match=r"groups.1.api.context_tokens.*too short"):
        parse_run_config(raw, "t")
    # An answer that takes nearly all of the context would leave every item out.
    raw["groups"][1]["api"]["context_tokens"] = 512
    raw.setdefault("evaluation", {})["sampling"] = {"do_sample": False, "max_new_tokens": 400}
    with pytest.raises(
        ConfigError, match=r"evaluation.sampling.max_new_tokens.*leaves 112 of the 512 tokens"
    ):
        parse_run_config(raw, "t")
    raw["evaluation"]["sampling"]["max_new_tokens"] = 384
    parse_run_config(raw, "t")
    raw["groups"][1]["api"]["context_tokens"] = 4096
    raw["groups"][1]["prompt_format"] = "plain"
    with pytest.raises(ConfigError, match="chat messages"):
        parse_run_config(raw, "t")


# The quickstart preset as it was before it was made smaller (its run folders must resume).
OLD_QUICKSTART = {
    "name": "quickstart",
    "seed": 0,
    "steps": 3,
    "question_bank": "society_culture",
    "groups": [
        {
            "name": name,
            "count": 3,
            "init": {"bank": bank, "sample_size": 16, "epochs": 2, "lr": 1.0e-4},
        }
        for name, bank in (("society", "society_culture"), ("science", "science_mathematics"))
    ],
    "interaction": {"questions": 8, "sampling": {"max_new_tokens": 32}},
    "update": {"method": "full", "epochs": 1, "lr": 1.0e-4, "batch_size": 8},
    "evaluation": {
        "prompts": "bank",
        "n_prompts": 16,
        "every": 1,
        "sampling": {"do_sample": False, "max_new_tokens": 32},
    },
    "communication": {"type": "complete"},
}


def test_older_configs_keep_their_fingerprints(monkeypatch):
    """New fields at their defaults leave a config's fingerprint (and so its run folder's
    resume) and the initial models' cache keys (on one compute path; the key is pinned as
    of cache version 2) as they were."""
    import torch

    from perspectives.experiments.presets import load_preset
    from perspectives.models import device
    from perspectives.models.initial import InitialModel, cache_key

    monkeypatch.setattr(device, "_chosen", torch.device("cpu"))
    monkeypatch.setattr(device, "_precision", "float32")

    assert load_preset("cs2-adversary").config().fingerprint() == "08dfce07cf32efe0"
    assert parse_run_config(OLD_QUICKSTART, "t").fingerprint() == "93eaf3b45b33906c"
    spec = InitialModel(
        name="x",
        pairs=[("q?", "a.")],
        model="bundled",
        update={"method": "full", "epochs": 3, "lr": 5e-5, "batch_size": 8},
        seed=1,
    )
    assert cache_key(spec) == "764890fe1fc8118f744d2edf"
    raw = copy.deepcopy(OLD_QUICKSTART)
    raw["update"]["method"] = "memory"
    default_k = parse_run_config(raw, "t").fingerprint()
    raw["update"]["memory_k"] = 7
    assert parse_run_config(raw, "t").fingerprint() != default_k


def test_update_and_api_url_options_set_every_group():
    from perspectives.cli.app import _run_config

    cfg = _run_config("cs2-adversary", "cpu", None, None, update="memory")
    assert cfg.update.method == "memory" and cfg.name == "cs2-adversary-memory"
    cfg = _run_config(
        "quickstart", None, "smollm2", None, api_url="http://127.0.0.1:8080/v1", api_key_env="K"
    )
    assert cfg.update.method == "memory" and cfg.name == "quickstart-memory"
    for g in cfg.groups:
        assert g.backend == "openai" and g.model == "smollm2"
        assert g.api.url == "http://127.0.0.1:8080/v1" and g.api.api_key_env == "K"
    with pytest.raises(InputError, match="--model"):
        _run_config("quickstart", None, None, None, api_url="http://127.0.0.1:8080/v1")
    with pytest.raises(ConfigError, match="unknown update rule"):
        _run_config("quickstart", None, None, None, update="forget")


def test_agents_that_share_a_network_answer_in_one_call(tmp_path, tiny_config, monkeypatch):
    from perspectives.models.fake import FakeModel
    from perspectives.models.memory import answer_jointly

    a, b = agent(system_prompt="calm"), agent(system_prompt="loud")
    a.learn([("What is rain?", "water water")])
    qs = [["What is rain?", "What is snow?"], ["What is hail?"]]
    greedy = a.sampling
    joint = answer_jointly([a, b], qs, greedy)
    assert joint == [a.answer(qs[0]), b.answer(qs[1])]
    calls = []
    chat = FakeModel.chat

    def spy(self, conversations, *args, **kw):
        calls.append(len(conversations))
        return chat(self, conversations, *args, **kw)

    monkeypatch.setattr(FakeModel, "chat", spy)
    raw = _memory_config(tiny_config, steps=1)
    Simulation.create(
        parse_run_config(raw, "t"), tmp_path / "r", embedder=get_embedder("hashing")
    ).run()
    # The groups' personas are their fake models: one call per group of 2 for the evaluation
    # at t = 0 (group a's two memories differ: 2 x 4 conversations; group b's two models are
    # alike and empty: 4), then at most one per group for the interviews and for the
    # evaluation at t = 1 (which asks only the conversations whose memories changed).
    assert calls[:2] == [8, 4] and all(c <= 8 for c in calls) and len(calls) <= 6
    # Greedy answers to an unchanged conversation are reused: no second call.
    calls.clear()
    first = answer_jointly([a, b], qs, greedy)
    assert answer_jointly([a, b], qs, greedy) == first and len(calls) <= 1


def test_a_memory_run_of_a_transformers_model_resumes_exactly(
    tmp_path, tiny_model_dir, tiny_config, isolated_cache
):
    """The tiny 2-layer model behind the memory rule: the greedy answers one process reuses
    are the ones a resumed process generates afresh."""
    from perspectives.models.memory import clear_greedy_answers

    raw = tiny_config(tiny_model_dir, update={"method": "memory", "memory_k": 2}, steps=3)
    hashing = get_embedder("hashing")
    clear_greedy_answers()
    Simulation.create(parse_run_config(raw, "t"), tmp_path / "s", embedder=hashing).run()
    clear_greedy_answers()
    run_until_interrupted(raw, tmp_path / "c", hashing, at=2)
    clear_greedy_answers()  # as a new process
    Simulation.resume(tmp_path / "c", embedder=hashing).run()
    a, b = tables(tmp_path / "c"), tables(tmp_path / "s")
    pd.testing.assert_frame_equal(a["responses"], b["responses"])
    # The random tiny model answers greedily with an end token at once (empty evaluation
    # texts); its sampled interview answers are text, and were answered jointly across resume.
    heard = a["responses"][a["responses"].phase == "interview"]
    assert len(heard) == 3 * 4 * 3 and heard["text"].str.len().gt(0).mean() > 0.5
