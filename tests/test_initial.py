"""Initial perspectives (cached fine-tuning), `perspectives init` and `instruct-tune`."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from perspectives.cli.app import app
from perspectives.data.banks import load_bank
from perspectives.errors import InputError
from perspectives.models.hf_agent import HFAgent
from perspectives.models.initial import InitialModel, cache_key, initial_agent, population_specs

runner = CliRunner()
TINY_UPDATE = {"epochs": 2, "lr": 1e-3, "batch_size": 4, "mixed_precision": "no"}


@pytest.fixture()
def bank_file(tmp_path):
    rows = [
        {"question": f"What about topic number {i}?", "answer": f"Topic {i} is fine."}
        for i in range(30)
    ]
    path = tmp_path / "bank.jsonl"
    pd.DataFrame(rows).to_json(path, orient="records", lines=True)
    return path


pytestmark = pytest.mark.usefixtures("isolated_cache")


def test_population_samples_are_seeded_and_distinct(bank_file):
    bank = load_bank(bank_file)
    a = population_specs(bank, 3, 10, seed=1)
    b = population_specs(bank, 3, 10, seed=1)
    assert [s.pairs for s in a] == [s.pairs for s in b]
    assert a[0].pairs != a[1].pairs and len(set(a[0].pairs)) == 10
    with pytest.raises(InputError, match="cannot draw 31 pairs from a bank of 30"):
        population_specs(bank, 1, 31)


def test_initial_model_is_cached_by_content(bank_file, tiny_model_dir, tmp_path):
    bank = load_bank(bank_file)
    [spec] = population_specs(bank, 1, 8, model=str(tiny_model_dir), update=TINY_UPDATE)
    agent, cached = initial_agent(spec)
    assert not cached and agent.n_updates == 1
    answers = agent.answer(["What about topic number 3?"])
    again, cached = initial_agent(spec)
    assert cached
    assert again.answer(["What about topic number 3?"]) == answers
    changed = InitialModel(**{**spec.__dict__, "update": {**TINY_UPDATE, "lr": 2e-3}})
    assert cache_key(changed) != cache_key(spec)
    leftovers = [p.name for p in (tmp_path / "cache" / "initial").iterdir()]
    assert leftovers == [cache_key(spec)]


def test_a_model_fine_tuned_on_one_compute_path_is_not_served_to_another(
    bank_file, tiny_model_dir, tmp_path, monkeypatch
):
    """A float32 run must not start from a model fine-tuned under bfloat16 autocast: it would
    differ from the same run on a float32 machine."""
    import torch

    from perspectives.models import device

    monkeypatch.setattr(device, "_chosen", torch.device("cpu"))
    update = {**TINY_UPDATE, "mixed_precision": "auto"}  # follows the chosen precision
    [spec] = population_specs(load_bank(bank_file), 1, 8, model=str(tiny_model_dir), update=update)
    made = {}
    for precision in ("bfloat16", "float32", "bfloat16"):
        monkeypatch.setattr(device, "_precision", precision)
        agent, cached = initial_agent(spec)
        assert cached == (precision in made)
        made[precision] = cache_key(spec)
    assert made["bfloat16"] != made["float32"]
    entries = sorted(p.name for p in (tmp_path / "cache" / "initial").iterdir())
    assert entries == sorted(made.values())
    # bfloat16 on a CPU depends on the thread count too; float32 did not.
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(threads + 1)
        assert cache_key(spec) != made["bfloat16"]
        monkeypatch.setattr(device, "_precision", "float32")
        assert cache_key(spec) == made["float32"]
    finally:
        torch.set_num_threads(threads)


def test_interrupted_fine_tuning_leaves_no_entry(bank_file, tiny_model_dir, tmp_path, monkeypatch):
    [spec] = population_specs(
        load_bank(bank_file), 1, 8, model=str(tiny_model_dir), update=TINY_UPDATE
    )

    def interrupted(self, pairs, seed=0):
        raise KeyboardInterrupt

    monkeypatch.setattr(HFAgent, "learn", interrupted)
    with pytest.raises(KeyboardInterrupt):
        initial_agent(spec)
    root = tmp_path / "cache" / "initial"
    assert not root.exists() or list(root.iterdir()) == []


def test_a_model_another_process_is_making_is_waited_for_or_left_for_later(bank_file):
    from perspectives.bundled import cache_lock
    from perspectives.store import file_lock

    [spec] = population_specs(load_bank(bank_file), 1, 8, model="calm", backend="fake")
    # flock: a second open file description conflicts, as another process's would.
    with file_lock(cache_lock(f"initial-{cache_key(spec)}")):
        with pytest.raises(BlockingIOError):
            initial_agent(spec, wait=False)
    agent, cached = initial_agent(spec, wait=False)
    assert not cached and agent.n_updates == 1


def test_a_run_makes_first_the_initial_models_no_other_process_is_making(
    tmp_path, tiny_config, monkeypatch
):
    """Systems side by side need the same initial models: each makes the free ones first,
    then waits for the rest; the run is the same system as one made in order."""
    import perspectives.models.initial as initial
    from perspectives.simulation.config import parse_run_config
    from perspectives.simulation.engine import Simulation
    from perspectives.simulation.rundir import read_parts
    from perspectives.space.embed import get_embedder

    def run(out):
        cfg = parse_run_config(tiny_config("fake", steps=1), "t")
        sim = Simulation.create(cfg, out, embedder=get_embedder("hashing"))
        sim.run()
        return sim

    run(tmp_path / "plain")
    real_lock, calls = initial.file_lock, []

    def busy_first(path, *, wait=True):
        calls.append((path.name, wait))
        if len(calls) == 1:
            raise BlockingIOError("another process holds it")
        return real_lock(path, wait=wait)

    monkeypatch.setenv("PERSPECTIVES_CACHE", str(tmp_path / "cache-2"))
    monkeypatch.setattr(initial, "file_lock", busy_first)
    agents = run(tmp_path / "busy").agents
    first = calls[0][0]
    assert [c[1] for c in calls] == [False, False, True] and calls[2][0] == first
    assert list(agents) == ["a-1", "a-2", "b-1", "b-2"]
    for table in ("responses", "edges"):
        pd.testing.assert_frame_equal(
            read_parts(tmp_path / "plain", table), read_parts(tmp_path / "busy", table)
        )


def test_init_command_twice_uses_the_cache(bank_file, tiny_model_dir):
    args = [
        "init",
        "--bank",
        str(bank_file),
        "--n-models",
        "2",
        "--sample-size",
        "6",
        "--base",
        str(tiny_model_dir),
        "--epochs",
        "1",
        "--lr",
        "1e-3",
    ]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    assert first.output.count("│ no") == 2
    second = runner.invoke(app, args)
    assert second.output.count("│ yes") == 2


def test_instruct_tune_on_a_dolly_fixture(tiny_model_dir, tmp_path):
    rows = [
        {
            "instruction": "Name a fruit.",
            "context": "",
            "response": "An apple.",
            "category": "open_qa",
        },
        {
            "instruction": "Give a colour.",
            "context": "",
            "response": "Blue.",
            "category": "brainstorming",
        },
        {
            "instruction": "Summarize this.",
            "context": "text",
            "response": "Short.",
            "category": "summarization",
        },
        {
            "instruction": "Write a long answer.",
            "context": "",
            "response": "x" * 150,
            "category": "general_qa",
        },
    ]
    data = tmp_path / "dolly.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    out = tmp_path / "tuned"
    result = runner.invoke(
        app,
        [
            "instruct-tune",
            "--base",
            str(tiny_model_dir),
            "--data",
            str(data),
            "--out",
            str(out),
            "--epochs",
            "3",
            "--lr",
            "3e-3",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "2 pairs, 3 epochs" in result.output  # the paper's filter kept two
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(out)
    assert "### Instruction:" in tok.get_vocab()
    tuned = HFAgent(
        "tuned", str(out), prompt_format="appendix-a", dtype="float32", state_dir=tmp_path / "s"
    )
    assert isinstance(tuned.answer(["Name a fruit."])[0], str)
    # A model folder from an earlier tuning may be replaced; its mode is a plain folder's.
    args = ["instruct-tune", "--base", str(tiny_model_dir), "--data", str(data), "--out", str(out)]
    result = runner.invoke(app, [*args, "--epochs", "1"])
    assert result.exit_code == 0, result.output
    assert "2 pairs, 1 epochs" in result.output
    (tmp_path / "plain").mkdir()
    assert out.stat().st_mode & 0o777 == (tmp_path / "plain").stat().st_mode & 0o777
