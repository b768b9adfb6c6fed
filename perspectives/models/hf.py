"""Answering prompts with a transformers causal language model (local path, hub id or bundled)."""

from __future__ import annotations

import functools
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from ..bundled import BUNDLED_MODEL, bundled_model_path, hub_offline
from ..errors import BackendUnavailable, InputError
from .contract import Conversation
from .device import current_device, current_precision, use_bf16
from .formats import check_format, render_conversation, render_prompt, stop_token_ids
from .sources import check_hf_source
from .spec import Sampling, check_conversations, check_prompts


def resolve_model_path(model: str) -> str:
    """Turn ``"bundled"``, a local folder or a hub id into what ``from_pretrained`` takes.

    Raises InputError for a path that is no model folder, BackendUnavailable when a hub id
    is not available locally and the hub is unreachable (see ``sources.check_hf_source``).
    """
    if model == BUNDLED_MODEL:
        return str(bundled_model_path())
    check_hf_source(model)
    path = Path(model).expanduser()
    return str(path) if path.exists() else model


def _resolve_dtype(dtype: str, device: torch.device | None = None) -> torch.dtype:
    """The answering dtype: ``"auto"`` follows the chosen precision (``device.use_bf16``):
    bfloat16 where it applies, else float32 on a CPU or with precision float32, else float16
    on a GPU."""
    if dtype == "auto":
        device = device or current_device()
        if use_bf16(device):
            return torch.bfloat16
        portable = device.type == "cpu" or current_precision() == "float32"
        return torch.float32 if portable else torch.float16
    table = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
    if dtype not in table:
        raise InputError("must be auto, float32, bfloat16 or float16", field="dtype", value=dtype)
    return table[dtype]


def load_causal_lm(model: str, dtype: str = "auto"):
    """Load (once per process and device) a causal LM and its tokenizer for generation, on
    the current device (see ``models.device``).

    Returns ``(model, tokenizer)``; the tokenizer pads on the left and has a pad token.
    Raises InputError with a readable message when the model cannot be found.
    """
    if dtype == "auto":  # cached by what "auto" means now (device and chosen precision)
        dtype = str(_resolve_dtype(dtype)).removeprefix("torch.")
    return _load_causal_lm(model, dtype, str(current_device()))


load_causal_lm.cache_clear = lambda: _load_causal_lm.cache_clear()  # type: ignore[attr-defined]


# The files a transformers tokenizer is read from (one suffices).
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json")


def load_pretrained(path: str, model: str, load_model: Callable[[str], Any]) -> tuple[Any, Any]:
    """The tokenizer of ``path`` and ``load_model(path)``, for ``model`` as the user gave it.

    Raises BackendUnavailable naming the folder (or hub id) and which half failed: a folder
    without a tokenizer, weights cut short or not a model, a hub id not found."""
    from safetensors import SafetensorError
    from transformers import AutoTokenizer

    where = {"source": path, "field": "model"} if Path(path).exists() else {"field": "model"}
    value = None if Path(path).exists() else model
    # Each library reports a damaged file its own way (OSError, ValueError from the
    # tokenizers, SafetensorError, a KeyError for a missing tensor, RuntimeError for a shape).
    damaged = (OSError, ValueError, KeyError, RuntimeError, SafetensorError)
    folder = Path(path)
    if folder.is_dir() and not any((folder / f).exists() for f in TOKENIZER_FILES):
        raise BackendUnavailable(
            f"holds no tokenizer (none of {', '.join(TOKENIZER_FILES)})", **where
        )
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
    except damaged as exc:
        raise BackendUnavailable(
            f"cannot load the tokenizer ({_reason(exc)})", value=value, **where
        ) from None
    try:
        lm = load_model(path)
    except damaged as exc:
        raise BackendUnavailable(
            f"cannot load the weights ({_reason(exc)})", value=value, **where
        ) from None
    return tokenizer, lm


def _reason(exc: BaseException) -> str:
    """The error's class and the first line of its message; offline, why a hub id fails."""
    lines = str(exc).strip().splitlines()
    text = f"{exc.__class__.__name__}: {lines[0].rstrip(' :')}" if lines else exc.__class__.__name__
    return f"not found locally and no network access; {text}" if hub_offline() else text


@functools.lru_cache(maxsize=4)
def _load_causal_lm(model: str, dtype: str, device_name: str):
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    path = resolve_model_path(model)
    device = torch.device(device_name)
    hf_logging.disable_progress_bar()
    try:
        tokenizer, lm = load_pretrained(
            path,
            model,
            lambda p: AutoModelForCausalLM.from_pretrained(p, dtype=_resolve_dtype(dtype, device)),
        )
    finally:
        hf_logging.enable_progress_bar()
    lm.to(device)
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    lm.eval()
    return lm, tokenizer


def _batch_seed(seed: int, batch_key: str) -> int:
    return zlib.crc32(f"{seed}:{batch_key}".encode()) & 0x7FFFFFFF


@torch.inference_mode()
def generate_texts(
    lm,
    tokenizer,
    rendered: Sequence[str],
    *,
    sampling: Sampling,
    stop_ids: Sequence[int],
    replicates: int = 1,
    batch_size: int = 64,
    seed: int = 0,
    on_batch: Callable[[int], None] | None = None,
) -> list[list[str]]:
    """Continue every rendered prompt ``replicates`` times; returns ``out[prompt][replicate]``.

    Batches are left-padded and sorted by length (little padding; batched greedy output equals
    one-at-a-time output). Sampling is seeded per batch from ``seed``, so the same call gives
    the same answers. ``on_batch(k)`` is called after each batch of ``k`` answers.
    """
    if replicates < 1:
        raise InputError("must be at least 1", field="replicates", value=replicates)
    jobs = [(i, r) for i in range(len(rendered)) for r in range(replicates)]
    lengths = [len(tokenizer(rendered[i], add_special_tokens=False).input_ids) for i, _ in jobs]
    order = sorted(range(len(jobs)), key=lambda j: (lengths[j], jobs[j]))
    out: list[list[str]] = [[""] * replicates for _ in rendered]
    eos = set(stop_ids)
    ids = getattr(lm.generation_config, "eos_token_id", None)
    if ids is not None:
        eos |= set(ids if isinstance(ids, list) else [ids])
    padding_side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    try:
        for start in range(0, len(order), batch_size):
            chunk = [jobs[j] for j in order[start : start + batch_size]]
            batch = tokenizer(
                [rendered[i] for i, _ in chunk],
                return_tensors="pt",
                padding=True,
                add_special_tokens=False,
            ).to(lm.device)
            kwargs: dict = {"do_sample": sampling.do_sample}
            if sampling.do_sample:
                torch.manual_seed(_batch_seed(seed, f"{chunk[0]}-{len(chunk)}"))
                kwargs.update(
                    temperature=sampling.temperature, top_p=sampling.top_p, top_k=sampling.top_k
                )
            else:
                kwargs.update(temperature=None, top_p=None, top_k=None)
            generated = lm.generate(
                **batch,
                max_new_tokens=sampling.max_new_tokens,
                pad_token_id=tokenizer.pad_token_id,
                eos_token_id=sorted(eos),
                **kwargs,
            )
            new_tokens = generated[:, batch["input_ids"].shape[1] :]
            texts = tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
            for (i, r), text in zip(chunk, texts, strict=True):
                out[i][r] = text.strip()
            if on_batch is not None:
                on_batch(len(chunk))
    finally:
        tokenizer.padding_side = padding_side
    return out


class HFChatModel:
    """A transformers causal LM that answers prompts, optionally under a system prompt.

    Parameters
    ----------
    model : ``"bundled"`` (SmolLM2-135M-Instruct), a local folder or a hub id.
    system_prompt : prepended as the chat's system message (``prompt_format="chat"``).
    prompt_format : ``"chat"`` (the tokenizer's chat template), ``"appendix-a"`` (the paper's
        format for base models) or ``"plain"`` (the prompt as is).
    dtype : ``"auto"`` (bfloat16 where the CPU supports it natively, else float32), or a name.
    batch_size : prompts per forward pass.
    max_new_tokens : answer length cap, in tokens.
    """

    def __init__(
        self,
        model: str = BUNDLED_MODEL,
        *,
        system_prompt: str | None = None,
        prompt_format: str = "chat",
        dtype: str = "auto",
        batch_size: int = 64,
        max_new_tokens: int = 48,
    ) -> None:
        self.model = model
        self.system_prompt = system_prompt
        self.prompt_format = check_format(prompt_format)
        self.dtype = dtype
        self.batch_size = batch_size
        self.max_new_tokens = max_new_tokens

    def _render(self, tokenizer, prompt: str) -> str:
        return render_prompt(tokenizer, prompt, self.system_prompt, self.prompt_format)

    def answer(
        self,
        prompts: Sequence[str],
        sampling: Sampling | None = None,
        *,
        seed: int = 0,
        replicates: int = 1,
        on_batch: Callable[[int], None] | None = None,
    ) -> list[list[str]]:
        """Answer every prompt ``replicates`` times; returns ``answers[prompt][replicate]``.

        ``sampling`` defaults to greedy decoding of ``max_new_tokens`` tokens (replicates are
        then identical); see ``generate_texts``. Raises InputError for an empty prompt or a
        model that cannot be found.
        """
        check_prompts(prompts)
        lm, tokenizer = load_causal_lm(self.model, self.dtype)
        rendered = [self._render(tokenizer, p) for p in prompts]
        return self._generate(lm, tokenizer, rendered, sampling, seed, replicates, on_batch)

    def chat(
        self,
        conversations: Sequence[Conversation],
        sampling: Sampling | None = None,
        *,
        seed: int = 0,
        replicates: int = 1,
        on_batch: Callable[[int], None] | None = None,
    ) -> list[list[str]]:
        """Answer each conversation's last turn (see ``answer``); the model's own system
        prompt is not added. Raises InputError for a conversation that does not end with a
        non-empty user turn."""
        check_conversations(conversations)
        lm, tokenizer = load_causal_lm(self.model, self.dtype)
        rendered = [render_conversation(tokenizer, c, self.prompt_format) for c in conversations]
        return self._generate(lm, tokenizer, rendered, sampling, seed, replicates, on_batch)

    def _generate(self, lm, tokenizer, rendered, sampling, seed, replicates, on_batch):
        if sampling is None:
            sampling = Sampling(do_sample=False, max_new_tokens=self.max_new_tokens)
        return generate_texts(
            lm,
            tokenizer,
            rendered,
            sampling=sampling,
            stop_ids=stop_token_ids(tokenizer, self.prompt_format),
            replicates=replicates,
            batch_size=self.batch_size,
            seed=seed,
            on_batch=on_batch,
        )

    @property
    def context_tokens(self) -> int:
        """The model's context length (prompt + answer), in tokens."""
        lm, _ = load_causal_lm(self.model, self.dtype)
        return int(getattr(lm.config, "max_position_embeddings", 2048) or 2048)

    def count_tokens(self, text: str) -> int:
        """Tokens ``text`` takes for this model's tokenizer."""
        _, tokenizer = load_causal_lm(self.model, self.dtype)
        return len(tokenizer(text, add_special_tokens=False).input_ids)
