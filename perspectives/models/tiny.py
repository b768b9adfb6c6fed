"""A tiny randomly initialised chat model with the bundled tokenizer: fast stand-in for tests,
benchmarks and quick checks of the transformers path (it answers gibberish, deterministically)."""

from __future__ import annotations

import os
from pathlib import Path


def write_tiny_model(folder: str | os.PathLike, seed: int = 0) -> Path:
    """Write a 2-layer Llama (hidden size 64) with the bundled SmolLM2 tokenizer to ``folder``,
    its weights drawn with ``seed``; returns the folder (usable as any ``model=``)."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from ..bundled import bundled_model_path

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
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    folder = Path(folder)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
