"""The main job end to end on the bundled model, embedder and prompt sets (reduced size)."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from perspectives.experiments.figure2 import figure2_config, figure2_models, run_figure2
from perspectives.space.embed import get_embedder


def test_models_are_three_classes_of_five_with_distinct_seeds():
    specs = figure2_models(figure2_config())
    assert len(specs) == 15
    assert sorted({s.labels["class"] for s in specs}) == ["optimist", "pessimist", "scientist"]
    assert len({s.seed for s in specs}) == 15
    assert len({s.system_prompt for s in specs}) == 3


@pytest.mark.slow
def test_figure2_end_to_end(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    out = tmp_path / "fig2"
    embedder = get_embedder(cache=tmp_path / "embeddings.sqlite")  # embed afresh
    result = run_figure2(out, max_prompts=8, embedder=embedder, show_progress=False)
    assert embedder.hits == 0 and embedder.misses > 0
    for name in ("relevant", "orthogonal"):
        table = pd.read_parquet(out / name / "perspectives.parquet")
        assert len(table) == 15 and {"model", "class", "z1", "z2"} <= set(table.columns)
        responses = pd.read_parquet(out / name / "responses.parquet")
        assert len(responses) == 15 * 8
    assert (out / "figure2.png").stat().st_size > 10_000
    assert "plotly" in (out / "figure2.html").read_text()
    sep = json.loads((out / "separation.json").read_text())
    assert sep == json.loads(json.dumps(result.separation))
    # Separation numbers are computed for both spaces. (The relevant-vs-orthogonal contrast
    # itself needs the full prompt sets: `perspectives figure2` reports it; see the README.)
    for name in ("relevant", "orthogonal"):
        assert 0.0 <= sep[name]["2d"]["loo_1nn_accuracy"] <= 1.0
        assert -1.0 <= sep[name]["2d"]["silhouette"] <= 1.0
        assert sep[name]["n_prompts"] == 8
