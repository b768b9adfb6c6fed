"""The main job on embedded defaults: the paper's Figure 2, relevant vs orthogonal prompts."""

from __future__ import annotations

import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import pandas as pd
import yaml

from ..data.prompts import load_prompts
from ..models.generate import generate_responses
from ..models.spec import GenerationConfig, ModelSpec
from ..reporting.plots import scatter_html, scatter_png
from ..space.compare import Comparison, compare_responses, separation_by, write_comparison
from ..space.embed import CachedEmbedder, Embedder, get_embedder
from ..store import write_json

CLASS_LABEL = "class"


@dataclass
class Figure2Result:
    """Both comparisons and their class-separation numbers (2-d and elbow-chosen spaces)."""

    comparisons: dict[str, Comparison]
    separation: dict[str, dict]
    out_dir: Path


def figure2_config() -> dict:
    """The bundled Figure-2 setup (classes and system prompts, prompt sets, generation)."""
    text = (resources.files("perspectives") / "data" / "figure2.yaml").read_text(encoding="utf-8")
    return yaml.safe_load(text)


def figure2_models(cfg: dict) -> list[ModelSpec]:
    """One model per (class, replicate), each with its own sampling seed."""
    specs = []
    for ci, (cls, system_prompt) in enumerate(cfg["classes"].items()):
        for k in range(int(cfg["models_per_class"])):
            specs.append(
                ModelSpec(
                    name=f"{cls}-{k + 1}",
                    system_prompt=system_prompt,
                    seed=ci * 1000 + k,
                    labels={CLASS_LABEL: cls},
                )
            )
    return specs


def run_figure2(
    out_dir: str | os.PathLike = "figure2",
    *,
    max_prompts: int | None = None,
    embedder: Embedder | CachedEmbedder | None = None,
    show_progress: bool = True,
) -> Figure2Result:
    """Generate, embed and compare on both prompt sets; write the run folder.

    ``out_dir`` receives ``relevant/`` and ``orthogonal/`` comparison folders, a side-by-side
    ``figure2.png`` and ``figure2.html``, and ``separation.json``.
    """
    cfg = figure2_config()
    out = Path(out_dir)
    models = figure2_models(cfg)
    generation = GenerationConfig(**cfg["generation"])
    emb = embedder if embedder is not None else get_embedder()
    comparisons: dict[str, Comparison] = {}
    separation: dict[str, dict] = {}
    for name, prompt_set in cfg["prompt_sets"].items():
        prompts = load_prompts(prompt_set)
        if max_prompts is not None:
            prompts = prompts.head(max_prompts)
        responses = generate_responses(models, prompts, generation, show_progress=show_progress)
        comp = compare_responses(
            responses,
            embedder=emb,
            source=f"{name} responses",
            allow_empty=True,
            show_progress=show_progress,
        )
        write_comparison(
            comp, out / name, color_by=CLASS_LABEL, responses=responses, title=f"{name} prompts"
        )
        comparisons[name] = comp
        separation[name] = {
            "2d": separation_by(comp, CLASS_LABEL, dims=2),
            f"{comp.space.n_components_}d (elbow)": separation_by(comp, CLASS_LABEL),
            "n_components": comp.space.n_components_,
            "n_prompts": len(prompts),
        }
    panels = [(f"{name} prompts", comp.perspectives) for name, comp in comparisons.items()]
    scatter_png(
        panels,
        out / "figure2.png",
        color_by=CLASS_LABEL,
        suptitle="Perspective spaces of 15 models in 3 classes",
    )
    scatter_html(
        panels,
        out / "figure2.html",
        color_by=CLASS_LABEL,
        hover=["model", CLASS_LABEL],
        title="Perspective spaces of 15 models in 3 classes (Figure 2)",
    )
    write_json(out / "separation.json", separation)
    return Figure2Result(comparisons, separation, out)


def separation_table(result: Figure2Result) -> pd.DataFrame:
    """A row per prompt set: LOO 1-NN accuracy and silhouette in the 2-d and elbow spaces."""
    rows = []
    for name, sep in result.separation.items():
        row = {"prompts": name, "m": sep["n_prompts"], "d": sep["n_components"]}
        for key, val in sep.items():
            if isinstance(val, dict):
                tag = "2d" if key == "2d" else "elbow"
                row[f"1-NN {tag}"] = val["loo_1nn_accuracy"]
                row[f"silh. {tag}"] = val["silhouette"]
        rows.append(row)
    return pd.DataFrame(rows)
