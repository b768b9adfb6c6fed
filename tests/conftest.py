"""Shared fixtures: a tiny 2-layer chat model with the bundled tokenizer, written once."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A randomly initialised 2-layer Llama with the bundled SmolLM2 tokenizer (fast to run)."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from perspectives.bundled import bundled_model_path

    tokenizer = AutoTokenizer.from_pretrained(bundled_model_path())
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    folder = tmp_path_factory.mktemp("tiny-model")
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def bundled_embedder():
    """The bundled all-MiniLM-L6-v2, uncached (tests that need a cache make their own)."""
    from perspectives.space.embed import SentenceTransformerEmbedder

    return SentenceTransformerEmbedder("bundled")


@pytest.fixture
def isolated_cache(tmp_path, monkeypatch):
    """A cache folder of the test's own and no shared backbones before or after it."""
    from perspectives.models.hf_agent import clear_backbones

    monkeypatch.setenv("PERSPECTIVES_CACHE", str(tmp_path / "cache"))
    clear_backbones()
    yield tmp_path / "cache"
    clear_backbones()
