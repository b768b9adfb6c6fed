"""Collecting responses: every model of a collection answers every prompt (any backend)."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from ..errors import InputError
from ..reporting.progress import progress_bar
from ..space.responses import require_columns
from .registry import make_model
from .spec import RESERVED_LABELS, GenerationConfig, ModelSpec


def generate_responses(
    models: Sequence[ModelSpec],
    prompts: pd.DataFrame,
    generation: GenerationConfig | None = None,
    *,
    show_progress: bool = True,
) -> pd.DataFrame:
    """Ask every model every prompt (``generation.replicates`` times each).

    ``prompts`` has columns ``prompt_id`` and ``prompt`` (as ``load_prompts`` returns it).
    Models that share weights share one loaded copy. Returns a responses table: ``model,
    prompt_id, prompt, replicate, response`` plus one column per label of the model specs; its
    ``attrs["inputs"]`` lists the prompt file it came from (so no output replaces it).

    Raises InputError, before any model is loaded, for a prompt table without those columns or
    with no rows, a label named like a column of the table, or no models.
    """
    gen = generation or GenerationConfig()
    if not models:
        raise InputError("no models to ask", field="models")
    source = prompts.attrs.get("source", "prompts")
    require_columns(prompts, ("prompt_id", "prompt"), source)
    if prompts.empty:
        raise InputError("no prompts", source=source)
    for i, spec in enumerate(models):
        # ModelSpec refuses these; a spec built with model_construct is not validated.
        clash = sorted(set(spec.labels) & set(RESERVED_LABELS))
        if clash:
            raise InputError(
                "a label may not be named like a column of the responses table",
                field=f"models.{i}.labels.{clash[0]}",
            )
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
                api=spec.api,
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
    out = pd.DataFrame(rows)
    if prompts.attrs.get("source"):
        out.attrs["inputs"] = [prompts.attrs["source"]]
    return out
