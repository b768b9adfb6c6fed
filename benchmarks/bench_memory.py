"""Benchmark the ``memory`` update rule: one case-study step against full fine-tuning, and
retrieval latency as a memory grows.

1. **A CS2 step** (preset ``cs2-adversary`` at its cpu scale, condition ``targets-5-every-2``,
   on the bundled model): the same config run for one step with ``update.method: full`` and
   with ``memory``, each in a fresh cache folder. The engine's own timing of step 1 (answering,
   learning, evaluating) is compared; setup (the initial fine-tunes of ``full``, cut here to 8
   pairs x 1 epoch since a fine-tuned step costs the same whatever the initial weights; the
   memories' initial sample of 48 pairs for ``memory``, which sets their prompts' length) is
   reported apart, since it happens once per run.
2. **Prompt cost**: 24 greedy answers of the bundled model with k = 0, 2 and 5 retrieved
   items in the system message (a memory agent pays for its context on every answer).
3. **Retrieval** (measured last: see ``main``) at 1k, 10k and 100k items of 384 dimensions
   (the bundled embedder's): ``MemoryStore.search`` (exact: one matrix product, the time decay
   on every item, top k), for an interview's 8 questions and an evaluation's 24, against faiss
   ``IndexFlatIP`` (exact inner product, as the authors' simulator uses) when faiss-cpu is
   installed, measured in the same run.

Writes ``benchmarks/results/memory.json``. Keep the machine otherwise idle. Run with the project
venv::

    python benchmarks/bench_memory.py [--skip-step] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "memory.json"
SIZES = (1_000, 10_000, 100_000)
DIM = 384


def say(msg: str) -> None:
    print(msg, flush=True)


def _median_ms(fn, repeats: int) -> float:
    fn()  # warm
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def bench_retrieval(k: int = 5) -> list[dict]:
    import pandas as pd

    from perspectives.models.memory import MemoryStore

    try:
        import faiss
    except ImportError:
        faiss = None
    rng = np.random.default_rng(0)
    rows = []
    for n in SIZES:
        store = MemoryStore()
        vectors = rng.normal(size=(n, DIM)).astype(np.float32)
        items = pd.DataFrame(
            {
                "question": [f"q{i}" for i in range(n)],
                "answer": "a",
                "source": "s",
                "t": rng.integers(0, 50, n),
                "first_hand": False,
            }
        )
        start = time.perf_counter()
        store.add(items, vectors)
        add_s = time.perf_counter() - start
        index = None
        if faiss is not None:
            index = faiss.IndexFlatIP(DIM)
            index.add(store.vectors)
        for q in (8, 24):
            queries = rng.normal(size=(q, DIM)).astype(np.float32)
            repeats = 50 if n <= 10_000 else 10
            row = {
                "items": n,
                "queries": q,
                "k": k,
                "add_ms": round(1000 * add_s, 2),
                "numpy_ms": _median_ms(partial(store.search, queries, k), repeats),
                "numpy_decay_ms": _median_ms(
                    partial(store.search, queries, k, now=50, decay=0.1), repeats
                ),
            }
            if index is not None:
                unit = queries / np.linalg.norm(queries, axis=1, keepdims=True)
                row["faiss_ms"] = _median_ms(partial(index.search, unit, k), repeats)
                row["numpy_over_faiss"] = row["numpy_ms"] / row["faiss_ms"]
            rows.append({key: round(v, 3) if isinstance(v, float) else v for key, v in row.items()})
            say(
                f"  {n:>7} items, {q:>2} queries: "
                + ", ".join(f"{key} {row[key]:.2f}" for key in row if key.endswith("_ms"))
            )
    return rows


def bench_prompt_cost(n: int = 24, tokens: int = 48) -> list[dict]:
    """Seconds for the bundled model to answer ``n`` questions greedily with k = 0, 2 and 5
    retrieved items in the system message (what a memory agent's prompt costs)."""
    from perspectives.data.banks import load_bank
    from perspectives.models.hf import HFChatModel
    from perspectives.models.memory import render_memories
    from perspectives.models.spec import Sampling

    bank = load_bank("science_mathematics")
    questions, items = bank["question"].head(n).tolist(), bank.iloc[100:110]
    lm = HFChatModel("bundled")
    greedy = Sampling(do_sample=False, max_new_tokens=tokens)
    lm.chat([[{"role": "user", "content": "Hello?"}]], greedy)  # load and warm
    rows, plain = [], None
    for k in (0, 2, 5):
        context = render_memories(items.head(k))
        system = [{"role": "system", "content": context}] if k else []
        convs = [[*system, {"role": "user", "content": q}] for q in questions]
        start = time.perf_counter()
        lm.chat(convs, greedy)
        seconds = time.perf_counter() - start
        plain = plain or seconds
        rows.append(
            {
                "k": k,
                "context_tokens": lm.count_tokens(context) if k else 0,
                "answers": n,
                "seconds": round(seconds, 2),
                "over_plain": round(seconds / plain, 2),
            }
        )
        say(f"  k = {k}: {rows[-1]['context_tokens']} context tokens, {seconds:.1f} s")
    return rows


def bench_step(method: str) -> dict:
    from perspectives.experiments.presets import load_preset
    from perspectives.models.hf_agent import clear_backbones
    from perspectives.simulation.engine import Simulation

    preset = load_preset("cs2-adversary")
    condition = next(
        c["set"] for c in preset.sweep["conditions"] if c["name"] == "targets-5-every-2"
    )
    sets = {**condition, "steps": 1, "update.method": method}
    if method != "memory":
        # A fine-tuned step costs the same whatever the initial weights: the initial fine-tunes
        # (6 x 48 pairs x 3 epochs, minutes each in float32) are cut to 8 pairs x 1 epoch.
        for g in (0, 1):
            sets.update({f"groups.{g}.init.sample_size": 8, f"groups.{g}.init.epochs": 1})
    cfg = preset.config("cpu", sets)
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["PERSPECTIVES_CACHE"] = str(Path(tmp) / "cache")
        clear_backbones()
        start = time.perf_counter()
        sim = Simulation.create(cfg, Path(tmp) / "run")
        sim.run()
        wall = time.perf_counter() - start
        t0, t1 = sim.timings[0], sim.timings[1]
        out = {
            "method": method,
            "wall_s": round(wall, 2),
            "setup_s": round(t0.setup, 2),
            "step1": {
                k: round(getattr(t1, k), 2)
                for k in ("answering", "learning", "evaluating", "embedding", "writing", "total")
            },
        }
    clear_backbones()
    say(f"  {method}: setup {out['setup_s']:.1f} s, step 1 {out['step1']}")
    return out


def machine() -> dict:
    import torch

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cores": os.cpu_count(),
        "loadavg": list(os.getloadavg()),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--skip-step", action="store_true", help="Only the retrieval benchmark.")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: cores)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args()
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    result: dict = {"machine": machine()}
    # The step first: faiss brings an OpenMP runtime of its own whose idle threads spin beside
    # torch's and slow a fine-tune about 10x once it is loaded in the process.
    if not args.skip_step:
        say("one CS2 step (cpu scale, targets-5-every-2), engine timings:")
        full = bench_step("full")
        memory = bench_step("memory")
        result["step"] = {
            "full": full,
            "memory": memory,
            "step_speedup": round(full["step1"]["total"] / memory["step1"]["total"], 2),
            "run_speedup_incl_setup": round(full["wall_s"] / memory["wall_s"], 2),
        }
        say(
            f"memory step {result['step']['step_speedup']:.2f}x faster than full fine-tuning; "
            f"with setup {result['step']['run_speedup_incl_setup']:.2f}x"
        )
    say(f"prompt cost (bundled model, {os.cpu_count()} cores, 24 greedy answers of 48 tokens):")
    result["prompt_cost"] = bench_prompt_cost()
    say("retrieval (median ms per search):")
    result["retrieval"] = bench_retrieval()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    say(f"wrote {args.out}")


if __name__ == "__main__":
    sys.exit(main())
