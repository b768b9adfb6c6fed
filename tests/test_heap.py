"""Freed memory goes back to the operating system after learning and answering."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from perspectives.models import heap
from perspectives.models.hf_agent import HFAgent, clear_backbones
from perspectives.simulation.hosting import ask_agents, learn_all

PAIRS = [("What is a river?", "Water that flows to the sea."), ("What is rain?", "Water falling.")]

# Many pieces of a few hundred kB, as a backward pass frees them, below one that stays: the
# heap cannot shrink from its top, so only a trim returns the freed pages.
FRAGMENTED = textwrap.dedent(
    """
    import torch
    from perspectives.models.heap import trim_heap

    def rss_mb():
        return int(open("/proc/self/statm").read().split()[1]) * 4096 / 2**20

    pieces = [torch.ones(100_000) for _ in range(2000)]  # 400 kB each, 800 MB
    pinned = torch.ones(100_000)
    del pieces
    before = rss_mb()
    trimmed = trim_heap()
    print(trimmed, before, rss_mb())
    """
)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's heap")
def test_a_trim_returns_freed_pieces_that_the_heap_kept():
    out = subprocess.run([sys.executable, "-c", FRAGMENTED], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    trimmed, before, after = out.stdout.split()
    if trimmed == "False":
        pytest.skip("this C library has no malloc_trim")
    # The heap kept the freed 800 MB; the trim gives back nearly all of it.
    assert float(before) - float(after) > 600, (before, after)


def test_a_phase_of_learning_or_answering_trims_the_heap_once(
    tiny_model_dir, tmp_path, monkeypatch
):
    calls = []
    monkeypatch.setattr(heap, "_malloc_trim", lambda: lambda pad: calls.append(pad))
    clear_backbones()
    update = {"epochs": 1, "lr": 1e-3, "batch_size": 2, "mixed_precision": "no"}
    agents = {
        n: HFAgent(n, str(tiny_model_dir), update=update, dtype="float32", state_dir=tmp_path / n)
        for n in ("a", "b")
    }
    # Each agent's pass alone does not trim: the next pass reuses what it freed.
    agents["a"].learn(PAIRS, seed=0)
    agents["a"].answer(["What is snow?"])
    assert calls == []
    learn_all(agents, [("a", PAIRS, 0, 1, "b"), ("b", PAIRS, 1, 1, "a")])
    assert calls == [0]  # once, after both
    ask_agents(agents, {"a": (["What is snow?"], 0), "b": (["What is ice?"], 1)}, None)
    assert calls == [0, 0]
    clear_backbones()
