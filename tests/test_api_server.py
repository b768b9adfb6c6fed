"""Models behind a real OpenAI-compatible server: llama-cpp-python's server on 127.0.0.1,
serving the bundled SmolLM2 GGUF, started by the tests themselves (required in CI)."""

from __future__ import annotations

import threading

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from perspectives.cli.app import app
from perspectives.errors import BackendUnavailable
from perspectives.models.api import OpenAIChatModel
from perspectives.models.spec import Sampling
from perspectives.simulation.config import parse_run_config
from perspectives.simulation.engine import Simulation
from perspectives.simulation.rundir import RunFolder, read_parts
from perspectives.space.embed import get_embedder

pytestmark = pytest.mark.slow
runner = CliRunner()
# Questions whose answers any instruction-tuned model names with one word.
KNOWN = {
    "What is the capital of France?": ("paris",),
    "What color is the sky on a clear day?": ("blue",),
    "How many days are in a week?": ("seven", "7"),
    "What is the largest ocean on Earth?": ("pacific",),
}


def right(answers: list[str], questions: list[str]) -> int:
    """How many of ``answers`` name their question's known answer."""
    return sum(
        any(w in a.lower() for w in KNOWN[q]) for q, a in zip(questions, answers, strict=True)
    )


def test_the_server_answers_like_the_local_model(llama_server, tmp_path):
    from perspectives.models.hf import HFChatModel

    questions = list(KNOWN)
    greedy = Sampling(do_sample=False, max_new_tokens=24)
    api = OpenAIChatModel(
        "smollm2", api={"url": llama_server.url}, cache_path=tmp_path / "c.sqlite"
    )
    served = [r[0] for r in api.answer(questions, greedy)]
    local = [r[0] for r in HFChatModel("bundled").answer(questions, greedy)]
    # A 4-bit 135M model's greedy answer can flip with the CPU's kernels (on an AMX CPU the
    # server runs without repacking, and "Paris" became "L'Étoile, la Cité, ..."): most, not
    # all, of the facts must come back right.
    assert right(served, questions) >= 3, served
    assert right(local, questions) >= 3, local
    assert api.requests == len(questions)
    # Sampled replicates differ from each other. (The server takes the seed, but its prompt
    # cache makes a repeat only nearly the same: the response cache is what repeats a run.)
    sampled = Sampling(temperature=1.0, max_new_tokens=16)
    fresh = OpenAIChatModel("smollm2", api={"url": llama_server.url, "cache": False})
    assert len(set(fresh.answer(questions[:1], sampled, replicates=3, seed=1)[0])) > 1


def test_compare_mixes_a_local_and_a_served_model(llama_server, tmp_path, monkeypatch):
    monkeypatch.setenv("PERSPECTIVES_CACHE", str(tmp_path / "cache"))
    models = {
        "prompts": list(KNOWN) + ["Why do leaves fall in autumn?"],
        "generation": {"do_sample": False, "max_new_tokens": 24},
        "models": [
            {"name": "local", "model": "bundled", "labels": {"where": "here"}},
            {
                "name": "served",
                "backend": "openai",
                "model": "smollm2",
                "api": {"url": llama_server.url},
                "labels": {"where": "server"},
            },
        ],
    }
    (tmp_path / "models.yaml").write_text(yaml.safe_dump(models))
    result = runner.invoke(
        app, ["compare", str(tmp_path / "models.yaml"), "--out", str(tmp_path / "cmp")]
    )
    assert result.exit_code == 0, result.output
    resp = pd.read_parquet(tmp_path / "cmp" / "responses.parquet")
    assert sorted(resp["model"].unique()) == ["local", "served"]
    assert resp["response"].str.len().gt(0).all()
    served = resp[resp.model == "served"].set_index("prompt")["response"]
    assert right([served[q] for q in KNOWN], list(KNOWN)) >= 3, served


def _api_run(url: str, steps: int = 2) -> dict:
    """Two groups of served models that learn by remembering, with different personas."""
    api = {"url": url, "max_retries": 1, "timeout": 60, "concurrency": 2}
    group = {"backend": "openai", "model": "smollm2", "api": api, "count": 2}
    return {
        "name": "served",
        "seed": 1,
        "steps": steps,
        "question_bank": "neutral",
        "groups": [
            {**group, "name": "sea", "system_prompt": "You love the sea and mention it."},
            {**group, "name": "hills", "system_prompt": "You love mountains and mention them."},
        ],
        "interaction": {"questions": 2, "sampling": {"do_sample": False, "max_new_tokens": 12}},
        "update": {"method": "memory", "memory_k": 2},
        "evaluation": {"n_prompts": 3, "sampling": {"do_sample": False, "max_new_tokens": 12}},
    }


def test_a_run_of_served_models_with_memory_survives_the_server_dying(tmp_path, monkeypatch):
    """The server is killed mid-step: the run stops at its last complete step with a one-line
    error naming the URL; resumed after a restart, it equals a run that was never cut."""
    from api_server import LlamaServer, require_llama_cpp

    require_llama_cpp()
    server = LlamaServer(tmp_path).start()
    hashing = get_embedder("hashing")
    try:
        cfg = parse_run_config(_api_run(server.url), "served")
        monkeypatch.setenv("PERSPECTIVES_CACHE", str(tmp_path / "cache-straight"))
        Simulation.create(cfg, tmp_path / "straight", embedder=hashing).run()

        from perspectives.models.memory import clear_greedy_answers

        clear_greedy_answers()  # as a new process: nothing reused from the straight run
        monkeypatch.setenv("PERSPECTIVES_CACHE", str(tmp_path / "cache-cut"))
        cut = Simulation.create(cfg, tmp_path / "cut", embedder=hashing)
        failure: list[BaseException] = []

        def go():
            try:
                cut.run()
            except BaseException as exc:  # noqa: BLE001 - handed to the test
                failure.append(exc)

        original = cut._answer

        def answer_without_server(step):
            if step.t == 2:  # mid-step: the edges are drawn, the interviews planned
                server.stop(kill=True)
            original(step)

        cut._answer = answer_without_server
        worker = threading.Thread(target=go)
        worker.start()
        folder = RunFolder(tmp_path / "cut")
        worker.join(300)
        assert failure and isinstance(failure[0], BackendUnavailable), failure
        message = str(failure[0])
        assert server.url in message and "\n" not in message
        assert folder.last_complete_step() == 1

        server.start()  # the same port
        Simulation.resume(tmp_path / "cut", embedder=hashing).run()
    finally:
        server.stop()
    for table in ("responses", "edges"):
        pd.testing.assert_frame_equal(
            read_parts(tmp_path / "cut", table), read_parts(tmp_path / "straight", table)
        )
    resp = read_parts(tmp_path / "cut", "responses")
    assert resp["text"].str.len().gt(0).mean() > 0.9
    # What the models heard is in their memories, and it changed what they say.
    evals = resp[resp.phase == "eval"].pivot_table(
        index=["model", "question_id"], columns="t", values="text", aggfunc="first"
    )
    assert (evals[0] != evals[2]).any()
