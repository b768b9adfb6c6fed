"""Answering prompts with a causal LM: batching, seeding, replicates, chat rendering."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from perspectives.errors import BackendUnavailable, InputError
from perspectives.models.generate import generate_responses
from perspectives.models.hf import HFChatModel, load_causal_lm
from perspectives.models.spec import GenerationConfig, ModelSpec, Sampling

PROMPTS = ["Will it rain tomorrow?", "Name a colour.", "What is two plus two, in words please?"]


def test_batched_greedy_equals_one_at_a_time(tiny_model_dir):
    batched = HFChatModel(str(tiny_model_dir), batch_size=8, max_new_tokens=8, dtype="float32")
    single = HFChatModel(str(tiny_model_dir), batch_size=1, max_new_tokens=8, dtype="float32")
    assert batched.answer(PROMPTS) == single.answer(PROMPTS)


def test_sampling_is_seeded_and_replicates_differ(tiny_model_dir):
    chat = HFChatModel(str(tiny_model_dir), max_new_tokens=8, dtype="float32")
    sampled = Sampling(do_sample=True, max_new_tokens=8)
    a = chat.answer(PROMPTS, sampled, seed=1, replicates=3)
    b = chat.answer(PROMPTS, sampled, seed=1, replicates=3)
    c = chat.answer(PROMPTS, sampled, seed=2, replicates=3)
    assert a == b
    assert a != c
    assert all(len(reps) == 3 for reps in a)
    assert len({r for reps in a for r in reps}) > 3  # replicates are distinct draws


def test_system_prompt_is_rendered_with_the_chat_template(tiny_model_dir):
    _, tokenizer = load_causal_lm(str(tiny_model_dir), "float32")
    chat = HFChatModel(str(tiny_model_dir), system_prompt="You are a pessimist.")
    text = chat._render(tokenizer, "Hello?")
    assert "<|im_start|>system\nYou are a pessimist.<|im_end|>" in text
    assert text.endswith("<|im_start|>assistant\n")
    plain = HFChatModel(str(tiny_model_dir), prompt_format="plain")._render(tokenizer, "Hello?")
    assert plain == "Hello?"


def test_generate_responses_table(tiny_model_dir):
    import pandas as pd

    prompts = pd.DataFrame({"prompt_id": ["a", "b"], "prompt": PROMPTS[:2]})
    specs = [
        ModelSpec(name=f"m{i}", model=str(tiny_model_dir), seed=i, labels={"class": "x"})
        for i in range(2)
    ]
    gen = GenerationConfig(max_new_tokens=6, replicates=2, dtype="float32")
    table = generate_responses(specs, prompts, gen, show_progress=False)
    assert len(table) == 2 * 2 * 2
    assert set(table.columns) >= {"model", "prompt_id", "prompt", "replicate", "response", "class"}
    assert table.groupby("model").size().tolist() == [4, 4]


def test_bad_prompts_and_missing_model(tiny_model_dir, tmp_path):
    with pytest.raises(InputError, match=r"prompts\[1\]"):
        HFChatModel(str(tiny_model_dir)).answer(["ok", "  "])
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no config.json"):
        HFChatModel(str(tmp_path / "empty")).answer(["hi"])


def test_unknown_hub_id_offline_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    load_causal_lm.cache_clear()
    with pytest.raises(BackendUnavailable, match="not found locally and no network access"):
        HFChatModel("no-such-org/no-such-model").answer(["hi"])


@pytest.mark.slow
def test_bundled_model_converts_and_answers_offline_in_a_fresh_process(tmp_path):
    """From a fresh cache and with the hub switched off, as on a new machine."""
    code = (
        "from perspectives.models.hf import HFChatModel;"
        "[[a]] = HFChatModel('bundled', max_new_tokens=16).answer("
        "['What is the capital of France?']);"
        "print(a)"
    )
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HF_HOME": str(tmp_path / "empty-hf-home"),
        "PERSPECTIVES_CACHE": str(tmp_path / "cache"),
    }
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=600
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "Paris" in out.stdout
    [weights] = (tmp_path / "cache" / "models").glob("*/model.safetensors")
    # The conversion (transformers' GGUF reader, sped up by reading the file once) keeps the
    # GGUF's weights exactly: checked against the gguf package's own de-quantization.
    import gguf
    import numpy as np
    from safetensors.torch import load_file

    from perspectives.bundled import bundled_gguf

    converted = load_file(weights)
    tensors = {t.name: t for t in gguf.GGUFReader(bundled_gguf()).tensors}
    for gguf_name, name in (
        ("token_embd.weight", "model.embed_tokens.weight"),
        ("blk.0.ffn_down.weight", "model.layers.0.mlp.down_proj.weight"),
        ("blk.29.ffn_gate.weight", "model.layers.29.mlp.gate_proj.weight"),
        ("output_norm.weight", "model.norm.weight"),
    ):
        tensor = tensors[gguf_name]
        direct = gguf.dequantize(tensor.data, tensor.tensor_type)
        np.testing.assert_array_equal(converted[name].numpy(), direct)
