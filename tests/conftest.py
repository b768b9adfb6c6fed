"""Shared fixtures: a tiny 2-layer chat model with the bundled tokenizer, written once."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A randomly initialised 2-layer Llama with the bundled SmolLM2 tokenizer (fast to run)."""
    from perspectives.models.tiny import write_tiny_model

    return write_tiny_model(tmp_path_factory.mktemp("tiny-model"))


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


def _tiny_config(model_dir, **over) -> dict:
    """The raw config of a tiny run: groups a (2, fine-tuned first) and b (2) of the model in
    ``model_dir`` (``"fake"``: the fake backend), 3 steps, complete graph; ``over`` replaces
    top-level keys."""
    cfg = {
        "name": "tiny",
        "seed": 3,
        "steps": 3,
        "question_bank": "neutral",
        "groups": [
            {
                "name": "a",
                "count": 2,
                "model": str(model_dir),
                "init": {"bank": "neutral", "sample_size": 4, "epochs": 1, "lr": 1e-3},
            },
            {"name": "b", "count": 2, "model": str(model_dir)},
        ],
        "interaction": {"questions": 3, "sampling": {"max_new_tokens": 6}},
        "update": {"lr": 1e-3, "batch_size": 4, "mixed_precision": "no"},
        "evaluation": {"n_prompts": 4, "sampling": {"do_sample": False, "max_new_tokens": 6}},
        "communication": {"type": "complete"},
    }
    if str(model_dir) == "fake":
        # The same system of torch-free fake models: for the engine's logic, in milliseconds.
        for group, persona in zip(cfg["groups"], ("calm", "loud"), strict=True):
            group.update(backend="fake", model=persona)
    cfg.update(over)
    return cfg


def _run_to_end(raw: dict, out: Path) -> Path:
    """Run the raw config ``raw`` in a new run folder ``out`` to its last step; returns ``out``.
    A system of fake models is embedded by the hashing embedder (no neural network at all)."""
    from perspectives.simulation.config import parse_run_config
    from perspectives.simulation.engine import Simulation
    from perspectives.space.embed import get_embedder

    cfg = parse_run_config(raw, "test")
    fake = all(g.backend == "fake" for g in cfg.groups)
    Simulation.create(cfg, out, embedder=get_embedder("hashing") if fake else None).run()
    return out


@pytest.fixture
def tiny_config():
    """``tiny_config(model_dir, **over)``: the raw config of a tiny 4-model run."""
    return _tiny_config


@pytest.fixture
def run_to_end():
    """``run_to_end(raw, out)``: run a raw config to its last step in ``out``."""
    return _run_to_end


@pytest.fixture(scope="session")
def llama_server(tmp_path_factory):
    """A real llama.cpp server (llama-cpp-python) on 127.0.0.1 serving the bundled GGUF as
    ``smollm2``, shared by the session's tests. Skips where it is not installed, except in CI."""
    from api_server import LlamaServer, require_llama_cpp

    require_llama_cpp()
    server = LlamaServer(tmp_path_factory.mktemp("llama-server")).start()
    yield server
    server.stop()


@pytest.fixture
def two_classes(tiny_config):
    """``two_classes(model_dir="fake", **over)``: the tiny run config of two classes that differ
    from t = 0 (of fake models unless ``model_dir`` names a model)."""

    def make(model_dir="fake", **over):
        raw = tiny_config(model_dir, **over)
        # A strong initial fine-tuning, so the two classes differ from t = 0 on.
        raw["groups"][0]["init"].update(epochs=4, lr=1e-2)
        return raw

    return make


@pytest.fixture
def sweep_yaml(two_classes, tmp_path):
    """``sweep_yaml(conditions, model_dir="fake")``: a 2-step sweep of ``conditions`` x seeds
    0, 1, written to ``tmp_path / "sweep.yaml"``; returns its path."""

    def write(conditions, model_dir="fake"):
        raw = two_classes(model_dir, steps=2)
        raw["sweep"] = {"seeds": [0, 1], "conditions": conditions}
        path = tmp_path / "sweep.yaml"
        path.write_text(yaml.safe_dump(raw))
        return path

    return write
