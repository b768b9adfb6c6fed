"""Collecting responses: every model of a collection answers every prompt."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from ..config import GenerationConfig, ModelSpec
from ..reporting.progress import progress_bar
from .hf import HFChatModel


def generate_responses(
    models: Sequence[ModelSpec],
    prompts: pd.DataFrame,
    generation: GenerationConfig | None = None,
    *,
    show_progress: bool = True,
) -> pd.DataFrame:
    """Ask every model every prompt (``generation.replicates`` times each).

    ``prompts`` has columns ``prompt_id`` and ``prompt``. Models that share weights share one
    loaded copy. Returns a responses table: ``model, prompt_id, prompt, replicate, response``
    plus one column per label of the model specs.
    """
    gen = generation or GenerationConfig()
    texts = prompts["prompt"].tolist()
    rows = []
    total = len(models) * len(texts) * gen.replicates
    with progress_bar("generating", total, show_progress) as advance:
        for spec in models:
            chat = HFChatModel(
                spec.model,
                system_prompt=spec.system_prompt,
                prompt_format=spec.prompt_format,  # type: ignore[arg-type]
                dtype=gen.dtype,
                batch_size=gen.batch_size,
                max_new_tokens=gen.max_new_tokens,
            )
            answers = chat.answer(
                texts,
                replicates=gen.replicates,
                do_sample=gen.do_sample,
                temperature=gen.temperature,
                top_p=gen.top_p,
                top_k=gen.top_k,
                seed=spec.seed,
                on_batch=advance,
            )
            for (pid, prompt), reps in zip(
                prompts[["prompt_id", "prompt"]].itertuples(index=False), answers, strict=True
            ):
                for r, text in enumerate(reps):
                    rows.append(
                        {
                            "model": spec.name,
                            "prompt_id": pid,
                            "prompt": prompt,
                            "replicate": r,
                            "response": text,
                            **spec.labels,
                        }
                    )
    return pd.DataFrame(rows)
