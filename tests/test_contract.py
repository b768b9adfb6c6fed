"""The agent contract, its registries and the fake backend (torch-free)."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from perspectives import Agent, AgentSpec, LanguageModel, load_agent, make_agent
from perspectives.errors import ConfigError, CorruptStateError
from perspectives.models import Sampling, UpdateConfig, backends, make_model, update_rules
from perspectives.models.fake import FakeAgent, FakeModel


def fake(name="a", model="calm", **kw) -> FakeAgent:
    return make_agent(AgentSpec(name, model, backend="fake", **kw))


def test_fake_agents_satisfy_the_contract_and_answer_deterministically():
    agent = fake()
    assert isinstance(agent, Agent) and isinstance(agent, FakeAgent)
    assert isinstance(make_model("fake", "calm"), LanguageModel)
    first = agent.answer(["Why is the sky blue?", "What is art?"])
    assert first == agent.answer(["Why is the sky blue?", "What is art?"])
    assert len(first) == 2 and all(isinstance(a, str) and a for a in first)
    sampled = Sampling(do_sample=True)
    reps = agent.answer(["What is art?"], sampled, seed=1, replicates=3)
    assert len(reps) == 1 and len(reps[0]) == 3 and len(set(reps[0])) > 1
    assert reps == agent.answer(["What is art?"], sampled, seed=1, replicates=3)
    assert reps != agent.answer(["What is art?"], sampled, seed=2, replicates=3)


def test_fake_answers_move_toward_what_the_agent_learned():
    agent = fake(model="calm")
    question = "How should we live?"
    before = agent.answer([question])[0].split()
    version = agent.version
    agent.learn([(question, "storm storm thunder storm")] * 4)
    assert agent.version != version
    after = agent.answer([question])[0].split()
    learned = {"storm", "thunder"}
    assert not learned & set(before)
    assert sum(w in learned for w in after) > len(after) / 2


def test_save_and_load_through_the_registry_keep_the_state(tmp_path):
    agent = fake(update=UpdateConfig(epochs=2))
    agent.learn([("Q?", "alpha beta")])
    folder = agent.save(tmp_path / "a")
    again = load_agent(folder)
    assert type(again) is FakeAgent
    assert again.memory == ["alpha", "beta", "alpha", "beta"] and again.n_updates == 1
    assert again.answer(["Q?"]) == agent.answer(["Q?"])
    assert again.version != agent.version  # a reload is a new object


def test_registries_refuse_unknown_names_and_damaged_folders(tmp_path):
    with pytest.raises(ConfigError, match=r"field 'backend': unknown model backend.*'fake', 'hf'"):
        make_model("nope", "x")
    with pytest.raises(ValueError, match="unknown update rule"):
        UpdateConfig(method="nope")
    # In a config the check's own message is used, with the value said once.
    from perspectives.config import validate_model

    with pytest.raises(ConfigError) as err:
        validate_model(UpdateConfig, {"method": "nope"}, "cfg.yaml")
    # (other tests may register more rules: the list is not fixed)
    assert re.fullmatch(
        r"cfg\.yaml, field 'method': unknown update rule; one of \[[^]]*'full'[^]]*\] "
        r"\(value: 'nope'\)",
        str(err.value),
    )
    assert {"full", "lora"} <= set(update_rules.names()) and "hf" in backends
    with pytest.raises(CorruptStateError, match="no agent.json"):
        load_agent(tmp_path)
    (tmp_path / "agent.json").write_text("{not json")
    with pytest.raises(CorruptStateError, match="corrupt agent.json"):
        load_agent(tmp_path)
    (tmp_path / "agent.json").write_text('{"update": {"method": "nope"}}')
    with pytest.raises(CorruptStateError, match="unknown update rule 'nope'"):
        load_agent(tmp_path)
    (tmp_path / "agent.json").write_text('{"backend": "fake", "update": {"method": "full"}}')
    with pytest.raises(CorruptStateError, match="corrupt agent.json"):
        load_agent(tmp_path)


def test_a_static_backend_without_an_agent_class_cannot_fine_tune():
    from perspectives.models.registry import Backend

    backends.register("static-test", Backend(FakeModel))
    try:
        with pytest.raises(ConfigError, match="cannot be fine-tuned"):
            make_agent(AgentSpec("a", "x", backend="static-test"))
    finally:
        backends._entries.pop("static-test")


def test_the_fake_backend_and_the_registries_never_import_torch():
    code = (
        "import sys; from perspectives import AgentSpec, make_agent;"
        "a = make_agent(AgentSpec('a', backend='fake')); a.learn([('q?', 'x')]); a.answer(['q?']);"
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_the_hf_agent_class_satisfies_the_contract():
    from perspectives.models.hf_agent import HFAgent

    for member in ("answer", "learn", "save", "load", "version", "from_spec"):
        assert hasattr(HFAgent, member), member
    assert backends.get("hf").agent_class() is HFAgent


def test_registry_docstring_examples_run():
    import doctest

    import perspectives.models.registry as registry

    result = doctest.testmod(registry)
    assert result.attempted > 0 and result.failed == 0
