"""Answering prompts with a transformers causal language model (local path, hub id or bundled)."""

from __future__ import annotations

import functools
import os
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal

import torch

from ..bundled import BUNDLED_MODEL, bundled_model_path
from ..errors import InputError

PromptFormat = Literal["chat", "plain"]


def resolve_model_path(model: str) -> str:
    """Turn ``"bundled"``, a local folder or a hub id into what ``from_pretrained`` takes.

    Raises InputError when a hub id is not available locally and the hub is unreachable.
    """
    if model == BUNDLED_MODEL:
        return str(bundled_model_path())
    path = Path(model).expanduser()
    if path.exists():
        if not (path / "config.json").exists():
            raise InputError(
                "not a transformers model folder (no config.json)", source=str(path), field="model"
            )
        return str(path)
    if hub_offline() and not _in_hub_cache(model):
        raise InputError(
            "not found locally and no network access (HF_HUB_OFFLINE=1): give a local folder, "
            "'bundled', or a hub id already in the local cache",
            field="model",
            value=model,
        )
    return model


def hub_offline() -> bool:
    """Whether the Hugging Face hub must not be contacted (``HF_HUB_OFFLINE`` set)."""
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")


def _in_hub_cache(repo_id: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    try:
        return isinstance(try_to_load_from_cache(repo_id, "config.json"), str)
    except Exception:  # noqa: BLE001 - an invalid repo id is simply not cached
        return False


def bf16_supported() -> bool:
    """Whether this CPU runs bfloat16 matmuls natively (AVX512-BF16 or AMX)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def _resolve_dtype(dtype: str) -> torch.dtype:
    if dtype == "auto":
        return torch.bfloat16 if bf16_supported() else torch.float32
    table = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
    if dtype not in table:
        raise InputError("must be auto, float32, bfloat16 or float16", field="dtype", value=dtype)
    return table[dtype]


@functools.lru_cache(maxsize=4)
def load_causal_lm(model: str, dtype: str = "auto"):
    """Load (once per process) a causal LM and its tokenizer for generation.

    Returns ``(model, tokenizer)``; the tokenizer pads on the left and has a pad token.
    Raises InputError with a readable message when the model cannot be found.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    path = resolve_model_path(model)
    hf_logging.disable_progress_bar()
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
        lm = AutoModelForCausalLM.from_pretrained(path, dtype=_resolve_dtype(dtype))
    except OSError as exc:
        reason = "not found locally and no network access" if hub_offline() else "not found"
        raise InputError(
            f"{reason}: {exc.__class__.__name__}", field="model", value=model
        ) from None
    finally:
        hf_logging.enable_progress_bar()
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    lm.eval()
    return lm, tokenizer


def _batch_seed(seed: int, batch_key: str) -> int:
    return zlib.crc32(f"{seed}:{batch_key}".encode()) & 0x7FFFFFFF


class HFChatModel:
    """A transformers causal LM that answers prompts, optionally under a system prompt.

    Parameters
    ----------
    model : ``"bundled"`` (SmolLM2-135M-Instruct), a local folder or a hub id.
    system_prompt : prepended as the chat's system message (``prompt_format="chat"``).
    prompt_format : ``"chat"`` uses the tokenizer's chat template; ``"plain"`` feeds the
        prompt text as is (base models).
    dtype : ``"auto"`` (bfloat16 where the CPU supports it natively, else float32), or a name.
    batch_size : prompts per forward pass; left padding keeps batched output equal to batch-1.
    max_new_tokens : answer length cap, in tokens.
    """

    def __init__(
        self,
        model: str = BUNDLED_MODEL,
        *,
        system_prompt: str | None = None,
        prompt_format: PromptFormat = "chat",
        dtype: str = "auto",
        batch_size: int = 64,
        max_new_tokens: int = 48,
    ) -> None:
        self.model = model
        self.system_prompt = system_prompt
        self.prompt_format = prompt_format
        self.dtype = dtype
        self.batch_size = batch_size
        self.max_new_tokens = max_new_tokens

    def _render(self, tokenizer, prompt: str) -> str:
        if self.prompt_format == "plain" or tokenizer.chat_template is None:
            return prompt
        messages = []
        if self.system_prompt:
            messages.append({"role": "system", "content": self.system_prompt})
        messages.append({"role": "user", "content": prompt})
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    @torch.inference_mode()
    def answer(
        self,
        prompts: Sequence[str],
        *,
        replicates: int = 1,
        do_sample: bool = False,
        temperature: float = 0.7,
        top_p: float = 0.9,
        top_k: int = 50,
        seed: int = 0,
        on_batch: Callable[[int], None] | None = None,
    ) -> list[list[str]]:
        """Answer every prompt ``replicates`` times; returns ``answers[prompt][replicate]``.

        Greedy decoding by default (replicates are then identical); with ``do_sample`` the
        answers are drawn with temperature, top-p and top-k, seeded per batch from ``seed`` so
        the same call gives the same answers. ``on_batch(k)`` is called after each batch with
        the number of answers it produced (for progress bars).
        """
        if replicates < 1:
            raise InputError("must be at least 1", field="replicates", value=replicates)
        for i, p in enumerate(prompts):
            if not isinstance(p, str) or not p.strip():
                raise InputError(
                    "every prompt must be non-empty text", field=f"prompts[{i}]", value=p
                )
        lm, tokenizer = load_causal_lm(self.model, self.dtype)
        rendered = [self._render(tokenizer, p) for p in prompts]
        jobs = [(i, r) for i in range(len(prompts)) for r in range(replicates)]
        lengths = [len(tokenizer(rendered[i], add_special_tokens=False).input_ids) for i, _ in jobs]
        # Sort by length so batches carry little padding; answers are put back in order.
        order = sorted(range(len(jobs)), key=lambda j: (lengths[j], jobs[j]))
        out: list[list[str]] = [[""] * replicates for _ in prompts]
        eos = [tokenizer.eos_token_id]
        if getattr(lm.generation_config, "eos_token_id", None) is not None:
            ids = lm.generation_config.eos_token_id
            eos = sorted(set(eos) | set(ids if isinstance(ids, list) else [ids]))
        for start in range(0, len(order), self.batch_size):
            chunk = [jobs[j] for j in order[start : start + self.batch_size]]
            batch = tokenizer(
                [rendered[i] for i, _ in chunk],
                return_tensors="pt",
                padding=True,
                add_special_tokens=False,
            )
            kwargs: dict = {"do_sample": do_sample, "max_new_tokens": self.max_new_tokens}
            if do_sample:
                torch.manual_seed(_batch_seed(seed, f"{chunk[0]}-{len(chunk)}"))
                kwargs.update(temperature=temperature, top_p=top_p, top_k=top_k)
            else:
                kwargs.update(temperature=None, top_p=None, top_k=None)
            generated = lm.generate(
                **batch, pad_token_id=tokenizer.pad_token_id, eos_token_id=eos, **kwargs
            )
            new_tokens = generated[:, batch["input_ids"].shape[1] :]
            texts = tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
            for (i, r), text in zip(chunk, texts, strict=True):
                out[i][r] = text.strip()
            if on_batch is not None:
                on_batch(len(chunk))
        return out
