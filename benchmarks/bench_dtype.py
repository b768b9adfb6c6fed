"""Benchmark the two dtype paths on this CPU, and whether ``--dtype auto`` takes the faster.

On the bundled model (SmolLM2-135M-Instruct), for float32 and for bfloat16 (the precision
setting, ``perspectives.models.device.set_precision``): answers/s of ``HFAgent.answer``
(greedy, 48 new tokens, batch 64, the figure-2 prompts) and the wall time of one update (the
paper's: 50 pairs, 1 epoch, batch 8, full fine-tuning). float32 is the baseline measured in
the same run; the ratio says how much faster (> 1) or slower (< 1) bfloat16 is here. ``auto``
must pick bfloat16 only where the CPU runs it natively (AVX512-BF16 or AMX on x86): on an
AVX512 core without them oneDNN still offers bfloat16, converting around each matmul.

Writes ``benchmarks/results/dtype-<cpu class>.json`` (class: amx, avx512-bf16, avx512, avx2
or other), so machines of each class keep their own figures. Keep the machine otherwise idle.
Run with the project venv::

    python benchmarks/bench_dtype.py [--threads N] [--questions 64] [--repeats 2]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# Run as a script, this folder is on sys.path: the agents benchmark's helpers are shared.
from bench_agents import cycled, machine_info, make_agent, question_pairs, say, timed_answers

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
PATHS = ("float32", "bfloat16")


def cpu_flags() -> set[str]:
    """The CPU's instruction-set flags as the kernel lists them (empty where unreadable)."""
    try:
        with open("/proc/cpuinfo") as f:
            return {w for line in f if line.startswith("flags") for w in line.split()}
    except OSError:
        return set()


def cpu_class(flags: set[str]) -> str:
    if "amx_tile" in flags:
        return "amx"
    if "avx512_bf16" in flags:
        return "avx512-bf16"
    if "avx512f" in flags:
        return "avx512"
    if "avx2" in flags:
        return "avx2"
    return "other"


def one_path(precision: str, args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    """Answering and one update of a fresh agent computing in ``precision``."""
    from perspectives.models.device import set_precision
    from perspectives.models.hf_agent import clear_backbones

    set_precision(precision)
    clear_backbones()  # a backbone keeps the dtype it was built in
    pairs = question_pairs()
    questions = cycled([q for q, _ in pairs], args.questions)
    agent = make_agent(f"dtype-{precision}", "full", tmp / precision)
    agent.answer(questions[:8])  # warm-up: first-call allocations and kernel selection
    answer_s = []
    for r in range(args.repeats):
        say(f"{precision}: answering {len(questions)} questions ({r + 1}/{args.repeats}) ...")
        seconds, answers = timed_answers(agent, questions)
        answer_s.append(seconds)
    say(f"{precision}: one update on {args.pairs} pairs ...")
    t0 = time.perf_counter()
    stats = agent.learn(cycled(pairs, args.pairs))
    update_s = time.perf_counter() - t0
    shutil.rmtree(agent.state_dir, ignore_errors=True)
    clear_backbones()
    return {
        "answers_per_s": len(questions) / min(answer_s),
        "answer_s": answer_s,
        "update_s": update_s,
        "update_train_s": stats.total_s,
        "update_loss": stats.epoch_losses[0],
        "first_answer": answers[0],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    parser.add_argument("--questions", type=int, default=64)
    parser.add_argument("--pairs", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=2, help="answering repeats (best kept)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    import torch

    from perspectives.models.device import bf16_supported, set_precision

    if args.threads:
        torch.set_num_threads(args.threads)
    flags = cpu_flags()
    with tempfile.TemporaryDirectory(prefix="bench-dtype-") as tmp:
        paths = {p: one_path(p, args, Path(tmp)) for p in PATHS}
    set_precision("auto")
    auto = "bfloat16" if bf16_supported(torch.device("cpu")) else "float32"
    base, bf16 = paths["float32"], paths["bfloat16"]
    answer_ratio = bf16["answers_per_s"] / base["answers_per_s"]
    update_ratio = base["update_s"] / bf16["update_s"]
    faster = "bfloat16" if answer_ratio * update_ratio > 1 else "float32"
    result = {
        "machine": {
            **machine_info(),
            "cpu_class": cpu_class(flags),
            "flags": sorted(flags & {"avx2", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16"}),
            "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        },
        "settings": vars(args) | {"out": None},
        "paths": paths,
        "bfloat16_speed_vs_float32": {"answering": answer_ratio, "update": update_ratio},
        "auto_takes": auto,
        "faster_path": faster,
        "auto_takes_the_faster_path": auto == faster,
    }
    out = args.out or RESULTS / f"dtype-{cpu_class(flags)}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nCPU class {cpu_class(flags)} ({torch.get_num_threads()} threads):")
    for p in PATHS:
        r = paths[p]
        print(f"  {p:9s} {r['answers_per_s']:6.2f} answers/s   update {r['update_s']:6.1f} s")
    print(
        f"  bfloat16 vs float32: answering {answer_ratio:.2f}x, update {update_ratio:.2f}x "
        f"(> 1: bfloat16 faster)\n  auto takes {auto}; the faster path is {faster}\n"
        f"written to {out}"
    )


if __name__ == "__main__":
    main()
