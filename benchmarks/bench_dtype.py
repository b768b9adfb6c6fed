"""Benchmark the two dtype paths on this CPU, and whether ``--dtype auto`` takes the faster.

On the bundled model (SmolLM2-135M-Instruct), on the CPU, for float32 and for bfloat16 (the
precision setting, ``perspectives.models.device.set_precision``): answers/s of
``HFAgent.answer`` (greedy, 48 new tokens, batch 64, the figure-2 prompts) and the wall time of
one update (the paper's: 50 pairs, 1 epoch, batch 8, full fine-tuning), each the best of
``--repeats`` rounds that alternate which path goes first. float32 is the baseline measured in
the same run; a ratio says how much faster (> 1) or slower (< 1) bfloat16 is here. ``auto``
must pick bfloat16 only where the CPU runs it natively (AVX512-BF16 or AMX on x86): on an
AVX512 core without them oneDNN still offers bfloat16, converting around each matmul. A path
is called faster only when it wins both answering and updating.

Writes ``benchmarks/results/dtype-<cpu class>.json`` (class: amx, avx512-bf16, avx512, avx2
or other), so machines of each class keep their own figures. Keep the machine otherwise idle
(the load average is recorded). Run with the project venv::

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
from bench_agents import (
    _exit_on_sigterm,
    _loadavg,
    cycled,
    machine_info,
    make_agent,
    question_pairs,
    say,
    timed_answers,
)

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
PATHS = ("float32", "bfloat16")


def positive(text: str) -> int:
    """An argument that must be a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {value}")
    return value


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


def one_round(precision: str, args: argparse.Namespace, tmp: Path, r: int) -> dict[str, Any]:
    """Answering and one update of a fresh agent computing in ``precision``."""
    from perspectives.models.device import set_precision
    from perspectives.models.hf_agent import clear_backbones

    set_precision(precision)
    clear_backbones()  # a backbone keeps the dtype it was built in
    pairs = question_pairs()
    questions = cycled([q for q, _ in pairs], args.questions)
    agent = make_agent(f"dtype-{precision}-{r}", "full", tmp / f"{precision}-{r}")
    agent.answer(questions[:8])  # warm-up: first-call allocations and kernel selection
    say(f"{precision} (round {r + 1}/{args.repeats}): {len(questions)} answers ...")
    answer_s, answers = timed_answers(agent, questions)
    say(f"{precision} (round {r + 1}/{args.repeats}): one update on {args.pairs} pairs ...")
    t0 = time.perf_counter()
    stats = agent.learn(cycled(pairs, args.pairs))
    update_s = time.perf_counter() - t0
    shutil.rmtree(agent.state_dir, ignore_errors=True)
    clear_backbones()
    return {
        "answer_s": answer_s,
        "update_s": update_s,
        "update_loss": stats.epoch_losses[0],
        "first_answer": answers[0],
    }


def best(rounds: list[dict[str, Any]], questions: int) -> dict[str, Any]:
    return {
        "answers_per_s": questions / min(r["answer_s"] for r in rounds),
        "update_s": min(r["update_s"] for r in rounds),
        "rounds": rounds,
    }


def main() -> None:
    _exit_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=positive, default=None, help="torch threads (all)")
    parser.add_argument("--questions", type=positive, default=64)
    parser.add_argument("--pairs", type=positive, default=50)
    parser.add_argument("--repeats", type=positive, default=2, help="rounds per path (best kept)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    import torch

    from perspectives.models.device import bf16_supported, cpu_flags, set_device, set_precision

    if args.threads:
        torch.set_num_threads(args.threads)
    set_device("cpu")  # the CPU's paths, even where a GPU is present
    load = {"start": _loadavg()}
    if load["start"] and load["start"][0] > 0.5:
        say(f"warning: load average {load['start']} (is the machine idle?)")
    rounds: dict[str, list] = {p: [] for p in PATHS}
    with tempfile.TemporaryDirectory(prefix="bench-dtype-") as tmp:
        for r in range(args.repeats):
            for p in PATHS if r % 2 == 0 else PATHS[::-1]:
                rounds[p].append(one_round(p, args, Path(tmp), r))
    load["end"] = _loadavg()
    set_precision("auto")
    auto = "bfloat16" if bf16_supported(torch.device("cpu")) else "float32"
    paths = {p: best(rounds[p], args.questions) for p in PATHS}
    base, bf16 = paths["float32"], paths["bfloat16"]
    ratios = {
        "answering": bf16["answers_per_s"] / base["answers_per_s"],
        "update": base["update_s"] / bf16["update_s"],
    }
    faster = (
        "bfloat16"
        if min(ratios.values()) > 1
        else "float32"
        if max(ratios.values()) < 1
        else "neither (each wins one)"
    )
    cls = cpu_class(cpu_flags())
    result = {
        "machine": {
            **machine_info(),
            "cpu_class": cls,
            "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        },
        "settings": {k: v for k, v in vars(args).items() if k != "out"},
        "loadavg": load,
        "paths": paths,
        "bfloat16_speed_vs_float32": ratios,
        "auto_takes": auto,
        "faster_path": faster,
        "auto_takes_the_faster_path": auto == faster,
    }
    out = args.out or RESULTS / f"dtype-{cls}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nCPU class {cls} ({torch.get_num_threads()} threads), best of {args.repeats}:")
    for p in PATHS:
        r = paths[p]
        print(f"  {p:9s} {r['answers_per_s']:6.2f} answers/s   update {r['update_s']:6.1f} s")
    print(
        f"  bfloat16 vs float32: answering {ratios['answering']:.2f}x, update "
        f"{ratios['update']:.2f}x (> 1: bfloat16 faster)\n  auto takes {auto}; the faster "
        f"path is {faster}\nwritten to {out}"
    )


if __name__ == "__main__":
    main()
