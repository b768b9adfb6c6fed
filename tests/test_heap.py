"""Freed memory goes back to the operating system after learning and answering."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from perspectives.models import heap
from perspectives.models.hf_agent import HFAgent, clear_backbones

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


def test_learning_and_answering_trim_the_heap(tiny_model_dir, tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(heap, "_malloc_trim", lambda: lambda pad: calls.append(pad))
    clear_backbones()
    agent = HFAgent(
        "a",
        str(tiny_model_dir),
        update={"epochs": 1, "lr": 1e-3, "batch_size": 2, "mixed_precision": "no"},
        dtype="float32",
        state_dir=tmp_path / "state",
    )
    agent.learn(PAIRS, seed=0)
    assert calls == [0]  # once, after the pass, not per batch
    agent.answer(["What is snow?", "What is ice?"])
    assert calls == [0, 0]
    clear_backbones()
