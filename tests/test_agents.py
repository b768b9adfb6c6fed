"""Agents that answer and learn: loss falls, save/load, full and LoRA, seeds, bad input."""

from __future__ import annotations

import json
import re
import shutil
import warnings

import pytest
import torch
from safetensors.torch import save_file

from perspectives.data.datasets import format_appendix_a
from perspectives.errors import BackendUnavailable, CorruptStateError, InputError, PerspectivesError
from perspectives.models.formats import (
    END_MARK,
    INSTRUCTION_MARK,
    RESPONSE_MARK,
    add_format_tokens,
    encode_pair,
    render_conversation,
)
from perspectives.models.hf_agent import HFAgent, clear_backbones

PAIRS = [
    ("What is the best season?", "Autumn is the best season of all."),
    ("Which colour do you like?", "I like the colour green the most."),
    ("Where should I travel?", "You should travel to the mountains."),
    ("What should I eat tonight?", "Eat a warm bowl of soup tonight."),
]
QUESTIONS = [q for q, _ in PAIRS]


@pytest.fixture(autouse=True)
def _fresh_backbones():
    clear_backbones()
    yield
    clear_backbones()


def make_agent(tiny_model_dir, tmp_path, name="a", **kw):
    update = {"epochs": 1, "lr": 1e-3, "batch_size": 2, "mixed_precision": "no", **kw}
    return HFAgent(
        name,
        str(tiny_model_dir),
        update=update,
        dtype="float32",
        state_dir=tmp_path / f"state-{name}",
        seed=0,
    )


def test_full_fine_tuning_loss_falls_and_answers_change(tiny_model_dir, tmp_path):
    agent = make_agent(tiny_model_dir, tmp_path, lr=3e-3, epochs=8)
    before = agent.answer(QUESTIONS)
    stats = agent.learn(PAIRS, seed=0)
    assert stats.epoch_losses[-1] < 0.7 * stats.epoch_losses[0]
    assert stats.n_answer_tokens > 0 and stats.forward_s > 0 and stats.optimizer_s > 0
    assert agent.answer(QUESTIONS) != before
    assert agent.n_updates == 1


@pytest.mark.slow
@pytest.mark.parametrize(("method", "lr"), [("full", 1e-4), ("lora", 1e-3)])
def test_bundled_model_learns_full_and_lora(tmp_path, method, lr):
    """On the real (pretrained) bundled model both update methods fit the pairs."""
    agent = HFAgent(
        "real",
        "bundled",
        update={"method": method, "lr": lr, "epochs": 4, "batch_size": 4},
        state_dir=tmp_path / "s",
    )
    stats = agent.learn(PAIRS, seed=0)
    assert stats.epoch_losses[-1] < 0.6 * stats.epoch_losses[0]


@pytest.mark.parametrize("method", ["full", "lora"])
def test_save_then_load_gives_identical_answers(tiny_model_dir, tmp_path, method):
    agent = make_agent(
        tiny_model_dir, tmp_path, method=method, lr=1e-2 if method == "lora" else 1e-3
    )
    agent.learn(PAIRS, seed=1)
    expected = agent.answer(QUESTIONS)
    agent.save(tmp_path / "saved")
    clear_backbones()
    loaded = HFAgent.load(tmp_path / "saved", state_dir=tmp_path / "state-loaded")
    assert loaded.n_updates == 1
    assert loaded.answer(QUESTIONS) == expected


def test_agents_sharing_a_backbone_keep_their_own_weights(tiny_model_dir, tmp_path):
    a = make_agent(tiny_model_dir, tmp_path, "a")
    b = make_agent(tiny_model_dir, tmp_path, "b")
    base = b.answer(QUESTIONS)
    a.learn(PAIRS, seed=0)
    learned = a.answer(QUESTIONS)
    assert b.answer(QUESTIONS) == base  # b still answers with the base weights
    assert a.answer(QUESTIONS) == learned
    assert a.backbone is b.backbone


def test_lora_agents_share_one_base(tiny_model_dir, tmp_path):
    a = make_agent(tiny_model_dir, tmp_path, "a", method="lora", lr=1e-2)
    b = make_agent(tiny_model_dir, tmp_path, "b", method="lora", lr=1e-2)
    before_b = b.answer(QUESTIONS)
    a.learn(PAIRS)
    assert b.answer(QUESTIONS) == before_b
    assert a.backbone.peft_model is b.backbone.peft_model


def weights(agent):
    return {k: v.clone() for k, v in agent.backbone.train_model.state_dict().items()}


def test_same_seed_same_weights_and_answers(tiny_model_dir, tmp_path):
    runs = []
    for i in range(2):
        clear_backbones()
        agent = make_agent(tiny_model_dir, tmp_path / str(i))
        agent.learn(PAIRS, seed=7)
        runs.append((weights(agent), agent.answer(QUESTIONS)))
    (w0, a0), (w1, a1) = runs
    assert a0 == a1
    assert all(torch.equal(w0[k], w1[k]) for k in w0)
    clear_backbones()
    other = make_agent(tiny_model_dir, tmp_path / "other")
    other.learn(PAIRS, seed=8)  # another data order: other weights
    assert not all(torch.equal(w0[k], v) for k, v in weights(other).items())


def test_bad_pairs_and_truncation(tiny_model_dir, tmp_path):
    agent = make_agent(tiny_model_dir, tmp_path, max_length=24)
    with pytest.raises(InputError, match="at least one"):
        agent.learn([])
    with pytest.raises(InputError, match=r"pairs\[1\]"):
        agent.learn([PAIRS[0], ("question?", 42)])
    long_pairs = [(q, a * 10) for q, a in PAIRS]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        stats = agent.learn(long_pairs)
        agent.learn(long_pairs)
    assert stats.n_truncated == 4
    assert len([w for w in caught if "truncated" in str(w.message)]) == 1  # warned once


@pytest.fixture(scope="module")
def saved_agent(tiny_model_dir, tmp_path_factory):
    """A full fine-tuning agent after one update, saved once; each case damages a copy."""
    clear_backbones()
    tmp = tmp_path_factory.mktemp("saved-agent")
    agent = make_agent(tiny_model_dir, tmp)
    agent.learn(PAIRS)
    agent.save(tmp / "saved")
    clear_backbones()
    return tmp / "saved"


def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _edit_agent_json(folder, change):
    cfg = json.loads((folder / "agent.json").read_text())
    change(cfg)
    (folder / "agent.json").write_text(json.dumps(cfg))


# (how the saved folder is damaged, which file the error names, the message it gives)
DAMAGE = {
    "zero-byte weights": (
        lambda d: (d / "model.safetensors").write_bytes(b""),
        ".",
        r"corrupt weights: SafetensorError: ",
    ),
    "weights without tensors": (
        lambda d: save_file({}, str(d / "model.safetensors")),
        ".",
        r"the weights file holds no tensors",
    ),
    "truncated weights": (
        lambda d: _truncate(d / "model.safetensors"),
        ".",
        r"corrupt weights: SafetensorError: ",
    ),
    "garbage weights": (
        lambda d: (d / "model.safetensors").write_bytes(b"garbage"),
        ".",
        r"corrupt weights: SafetensorError: ",
    ),
    "missing weights after an update": (
        lambda d: (d / "model.safetensors").unlink(),
        ".",
        r"the agent has 1 update\(s\) but its weights file is missing",
    ),
    "missing agent.json": (
        lambda d: (d / "agent.json").unlink(),
        ".",
        r"not an agent folder \(no agent.json\)",
    ),
    "agent.json not JSON": (
        lambda d: (d / "agent.json").write_text("{not json"),
        "agent.json",
        r"corrupt agent.json: Expecting property name",
    ),
    "agent.json not an object": (
        lambda d: (d / "agent.json").write_text("[1, 2]"),
        "agent.json",
        r"corrupt agent.json: ",
    ),
    "agent.json without n_updates": (
        lambda d: _edit_agent_json(d, lambda cfg: cfg.pop("n_updates")),
        "agent.json",
        r"corrupt agent.json: 'n_updates'",
    ),
    "agent.json with a bad n_updates": (
        lambda d: _edit_agent_json(d, lambda cfg: cfg.update(n_updates="many")),
        "agent.json",
        r"corrupt agent.json: invalid literal for int",
    ),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_corrupt_or_missing_checkpoint(saved_agent, tmp_path, damage):
    """Loading a damaged folder raises one CorruptStateError (a PerspectivesError) that names
    the folder (or its agent.json) and says what is wrong, never another exception or a
    half-loaded agent."""
    folder = tmp_path / "copy"
    shutil.copytree(saved_agent, folder)
    # The undamaged copy loads, with its update.
    assert HFAgent.load(folder, state_dir=tmp_path / "state-ok").n_updates == 1
    clear_backbones()
    corrupt, where, message = DAMAGE[damage]
    corrupt(folder)
    with pytest.raises(CorruptStateError) as err:
        HFAgent.load(folder, state_dir=tmp_path / "state-bad")
    assert isinstance(err.value, PerspectivesError)
    source = str(folder) if where == "." else str(folder / where)
    assert err.value.source == source
    assert str(err.value).startswith(f"{source}: ")
    assert re.match(message, err.value.message), err.value.message
    assert err.value.__cause__ is None  # one clear error, not a chained traceback


def test_missing_weights_before_any_update_load_the_base_model(tiny_model_dir, tmp_path):
    """Only an agent that has learned needs its weights file: one saved before any update
    has none and loads as the base model."""
    agent = make_agent(tiny_model_dir, tmp_path)
    base = agent.answer(QUESTIONS)
    agent.save(tmp_path / "fresh")
    assert not (tmp_path / "fresh" / "model.safetensors").exists()
    clear_backbones()
    loaded = HFAgent.load(tmp_path / "fresh", state_dir=tmp_path / "state-loaded")
    assert loaded.n_updates == 0
    assert loaded.answer(QUESTIONS) == base


def test_appendix_a_format_round_trips(tiny_model_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    assert add_format_tokens(tok, None, "appendix-a")
    for mark in (INSTRUCTION_MARK, RESPONSE_MARK, END_MARK):
        assert len(tok(mark, add_special_tokens=False).input_ids) == 1
    ids, n_prompt, truncated = encode_pair(
        tok, "Why is the sky blue?", "Because of scattering.", None, "appendix-a", 256
    )
    assert not truncated
    text = tok.decode(ids)
    assert text == format_appendix_a("Why is the sky blue?", "Because of scattering.")
    assert tok.decode(ids[:n_prompt]) == format_appendix_a("Why is the sky blue?")


def test_earlier_turns_render_in_each_prompt_format(tiny_model_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    add_format_tokens(tok, None, "appendix-a")
    conv = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "What is rain?"},
        {"role": "assistant", "content": "Water from clouds."},
        {"role": "user", "content": "Why is the sky blue?"},
    ]
    assert render_conversation(tok, conv, "appendix-a") == (
        f"{INSTRUCTION_MARK} What is rain?\n{RESPONSE_MARK} Water from clouds.\n{END_MARK}\n"
        f"{INSTRUCTION_MARK} Be brief.\n\nWhy is the sky blue?\n{RESPONSE_MARK} "
    )
    # A system message alone renders as before the turns existed: the instruction's preamble.
    assert render_conversation(tok, [conv[0], conv[3]], "appendix-a") == (
        f"{INSTRUCTION_MARK} Be brief.\n\nWhy is the sky blue?\n{RESPONSE_MARK} "
    )
    chat = render_conversation(tok, conv, "chat")
    assert chat.index("Water from clouds.") < chat.index("Why is the sky blue?")
    assert chat.count("<|im_start|>assistant") == 2 and chat.endswith("<|im_start|>assistant\n")


def test_appendix_a_agent_learns_to_stop(tiny_model_dir, tmp_path):
    agent = HFAgent(
        "base",
        str(tiny_model_dir),
        prompt_format="appendix-a",
        dtype="float32",
        update={"lr": 3e-3, "epochs": 8, "batch_size": 4, "mixed_precision": "no"},
        state_dir=tmp_path / "s",
    )
    agent.sampling.max_new_tokens = 16
    agent.learn(PAIRS[:2])
    answers = agent.answer(QUESTIONS[:2])
    assert answers[0].startswith("Autumn")


def test_unknown_model_offline_is_one_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    agent = HFAgent("x", "no-such-org/no-such-model", state_dir=tmp_path / "s")
    with pytest.raises(BackendUnavailable, match="not found locally and no network access"):
        agent.answer(["Hello?"])


def test_lora_answering_copy_merges_each_agents_adapter(tiny_model_dir, tmp_path):
    """LoRA agents answer with a bfloat16 copy holding W + scale·B·A: its logits equal the
    peft network's (float32) to bf16 rounding, switching agents re-merges, and the base is
    untouched."""
    update = {"method": "lora", "epochs": 2, "lr": 5e-2, "batch_size": 2}
    agents = [
        HFAgent(
            f"l{i}",
            str(tiny_model_dir),
            update=update,
            dtype="bfloat16",
            seed=i,
            state_dir=tmp_path / f"l{i}",
        )
        for i in range(2)
    ]
    for i, agent in enumerate(agents):
        agent.learn(PAIRS[i:] + PAIRS[:i], seed=i)
    bb = agents[0].backbone
    ids = bb.tokenizer(QUESTIONS[0], return_tensors="pt").input_ids
    logits = []
    for agent in agents:
        merged, autocast = agent._answering_model()
        assert merged is bb.infer_model and not autocast
        assert merged.dtype == torch.bfloat16
        with torch.no_grad():
            got = merged(ids).logits.float()
            pm = agent._lora_model()
            want = pm(input_ids=ids).logits
        scale = want.abs().max()
        assert (got - want).abs().max() < 0.05 * scale
        logits.append(got)
    assert (logits[0] - logits[1]).abs().max() > 0.05 * logits[0].abs().max()
    # Switching back re-merges agent 0 exactly as before.
    merged, _ = agents[0]._answering_model()
    with torch.no_grad():
        assert torch.equal(merged(ids).logits.float(), logits[0])
    # The float32 base under the adapters is unchanged by merging.
    with agents[0]._lora_model().disable_adapter(), torch.no_grad():
        base_logits = bb.peft_model(input_ids=ids).logits
    from transformers import AutoModelForCausalLM

    plain = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    with torch.no_grad():
        assert torch.allclose(plain(ids).logits, base_logits, atol=1e-5)


def test_stale_backbone_scratch_is_removed(tmp_path, monkeypatch):
    from perspectives.models import hf_agent as agent_mod

    monkeypatch.setenv("PERSPECTIVES_CACHE", str(tmp_path / "cache"))
    root = agent_mod._scratch_root()
    dead = root / "backbone-999999999-abc"
    mine = root / f"backbone-{agent_mod.os.getpid()}-abc"
    for folder in (dead, mine):
        folder.mkdir()
        (folder / "base.safetensors").write_bytes(b"x")
    assert agent_mod.remove_stale_scratch() == 1
    assert not dead.exists() and mine.exists()
