"""Collecting responses: every model of a collection answers every prompt (any backend)."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from ..reporting.progress import progress_bar
from .registry import make_model
from .spec import GenerationConfig, ModelSpec


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
            lm = make_model(
                spec.backend,
                spec.model,
                system_prompt=spec.system_prompt,
                prompt_format=spec.prompt_format,
                dtype=gen.dtype,
                batch_size=gen.batch_size,
            )
            answers = lm.answer(
                texts,
                gen.decoding(),
                replicates=gen.replicates,
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
