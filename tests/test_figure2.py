"""The main job end to end on the bundled model, embedder and prompt sets (reduced size)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from perspectives.data.prompts import load_prompts
from perspectives.experiments.figure2 import figure2_config, figure2_models, run_figure2
from perspectives.models import device
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
    # The effect checked below is weak at 8 prompts and was calibrated on the float32 path;
    # on the bfloat16 path the sampled answers differ (results repeat per dtype path).
    monkeypatch.setattr(device, "_precision", "float32")
    out = tmp_path / "fig2"
    embedder = get_embedder(cache=tmp_path / "embeddings.sqlite")  # embed afresh
    result = run_figure2(out, max_prompts=8, embedder=embedder, show_progress=False)
    cfg = figure2_config()
    specs = figure2_models(cfg)
    names = [s.name for s in specs]
    class_of = {s.name: s.labels["class"] for s in specs}
    assert sorted(p.name for p in out.iterdir()) == [
        "figure2.html",
        "figure2.png",
        "orthogonal",
        "relevant",
        "separation.json",
    ]
    sep = json.loads((out / "separation.json").read_text())
    assert sep == json.loads(json.dumps(result.separation))
    assert set(sep) == set(result.comparisons) == {"relevant", "orthogonal"}
    texts = set()
    distances = {}
    for name in ("relevant", "orthogonal"):
        folder = out / name
        assert sorted(p.name for p in folder.iterdir()) == [
            "distances.csv",
            "distances.npy",
            "perspectives.csv",
            "perspectives.parquet",
            "responses.parquet",
            "space.html",
            "space.png",
            "summary.json",
        ]
        d = sep[name]["n_components"]
        assert d >= 2 and sep[name]["n_prompts"] == 8
        assert set(sep[name]) == {"2d", f"{d}d (elbow)", "n_components", "n_prompts"}
        for space in ("2d", f"{d}d (elbow)"):
            assert sep[name][space]["chance"] == pytest.approx(1 / 3)
        # One point per model, in the order of the models, with its class and d coordinates.
        table = pd.read_parquet(folder / "perspectives.parquet")
        assert table.columns.tolist() == ["model", "class"] + [f"z{i + 1}" for i in range(d)]
        assert table["model"].tolist() == names
        assert table["class"].tolist() == [class_of[m] for m in names]
        assert table["class"].value_counts().to_dict() == {
            "optimist": 5,
            "pessimist": 5,
            "scientist": 5,
        }
        assert table[[f"z{i + 1}" for i in range(d)]].notna().all().all()
        pd.testing.assert_frame_equal(
            pd.read_csv(folder / "perspectives.csv"), table, check_dtype=False
        )
        # Every model answered each of the first 8 prompts of the set once.
        prompt_ids = load_prompts(cfg["prompt_sets"][name]).head(8)["prompt_id"].tolist()
        responses = pd.read_parquet(folder / "responses.parquet")
        assert len(responses) == 15 * 8
        assert responses.groupby("model").size().to_dict() == dict.fromkeys(names, 8)
        assert all(
            sorted(g["prompt_id"]) == sorted(prompt_ids) for _, g in responses.groupby("model")
        )
        assert (responses["class"] == responses["model"].map(class_of)).all()
        assert (responses["replicate"] == 0).all()
        assert (responses["response"].str.strip() != "").all()
        texts |= set(responses["response"])
        # The distances between the 15 models: a labelled, symmetric matrix.
        D = np.load(folder / "distances.npy")
        assert D.shape == (15, 15)
        np.testing.assert_allclose(D, D.T)
        assert (np.diag(D) == 0).all() and (D[~np.eye(15, dtype=bool)] > 0).all()
        labelled = pd.read_csv(folder / "distances.csv")
        assert labelled["point"].tolist() == names and labelled.columns.tolist() == [
            "point",
            *names,
        ]
        np.testing.assert_allclose(labelled[names].to_numpy(), D)
        distances[name] = D
        summary = json.loads((folder / "summary.json").read_text())
        assert summary["n_points"] == 15 and summary["n_prompts"] == 8
        assert summary["n_responses"] == 120 and summary["embedding_dim"] == 384
        assert summary["n_components"] == d and summary["color_by"] == "class"
        assert summary["separation"] == sep[name][f"{d}d (elbow)"]
    # Each distinct answer was embedded once, none read from the (new) cache.
    assert embedder.hits == 0 and embedder.misses == len(texts)
    assert (out / "figure2.png").stat().st_size > 10_000
    html = (out / "figure2.html").read_text()
    assert "plotly" in html and "relevant prompts" in html and "orthogonal prompts" in html
    assert all(m in html for m in names)  # every model is a point to hover over

    # Figure 2's effect at this scale (8 prompts a set; the full sets make it clear, see the
    # README): the class prompts matter more on the relevant prompts, where the models'
    # answers are further apart and the classes separate better than on the orthogonal ones.
    labels = table["class"].to_numpy()

    def nearest_same_class(D):
        return float((labels[(D + np.diag([np.inf] * 15)).argmin(axis=1)] == labels).mean())

    off = ~np.eye(15, dtype=bool)
    assert distances["relevant"][off].mean() > 1.1 * distances["orthogonal"][off].mean()
    assert nearest_same_class(distances["relevant"]) > nearest_same_class(distances["orthogonal"])
    rel, orth = sep["relevant"]["2d"], sep["orthogonal"]["2d"]
    assert rel["loo_1nn_accuracy"] > max(orth["loo_1nn_accuracy"], rel["chance"])
    assert rel["silhouette"] > orth["silhouette"]
