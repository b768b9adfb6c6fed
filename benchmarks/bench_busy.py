"""Benchmark one initial fine-tune on an idle and on a busy machine, by thread settings.

An initial fine-tune of the quickstart (the bundled model, 32 pairs, 3 epochs, lr 5e-5,
batch 8, float32) is timed in a fresh process per setting: torch's default thread count or a
chosen one, and OpenMP's default wait policy or ``OMP_WAIT_POLICY=PASSIVE``; each alone and
beside a busy process (a Python loop spinning on one core, as another job would). The ratio
busy / idle of a setting says how gracefully it degrades (target: at most 2.5x when one of
two cores is taken). Writes ``benchmarks/results/busy.json``.

    python benchmarks/bench_busy.py [--pairs 32] [--epochs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "busy.json"

# name -> what the fine-tuning process's environment sets.
SETTINGS = {
    # An empty value keeps perspectives' own PASSIVE default out and leaves OpenMP's own.
    "default": {"OMP_WAIT_POLICY": ""},
    "passive": {"OMP_WAIT_POLICY": "PASSIVE"},
    "1-thread": {"OMP_NUM_THREADS": "1"},
}


def child(pairs: int, epochs: int) -> None:
    """Fine-tune once in this process; print the seconds as JSON."""
    import torch

    from perspectives.data.banks import load_bank
    from perspectives.models.device import set_precision
    from perspectives.models.hf_agent import HFAgent

    set_precision("float32")
    bank = load_bank("society_culture").head(pairs)
    data = list(zip(bank["question"], bank["answer"], strict=True))
    agent = HFAgent(
        "bench",
        "bundled",
        update={"epochs": epochs, "lr": 5e-5, "batch_size": 8, "mixed_precision": "no"},
    )
    start = time.perf_counter()
    agent.learn(data, seed=0)
    seconds = time.perf_counter() - start
    print(json.dumps({"seconds": seconds, "threads": torch.get_num_threads()}))


def measure(setting: str, busy: bool, pairs: int, epochs: int) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    env.update(SETTINGS[setting])
    spinner = None
    if busy:
        spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        time.sleep(1.0)
    try:
        cmd = [sys.executable, __file__, "--child", "--pairs", str(pairs), "--epochs", str(epochs)]
        out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    finally:
        if spinner is not None:
            spinner.kill()
            spinner.wait()
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--settings", default=",".join(SETTINGS))
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.pairs, args.epochs)
        return

    import torch

    rows = []
    # Warm the file cache and the converted bundled model once, outside the timings.
    measure("default", False, 8, 1)
    for setting in args.settings.split(","):
        idle = measure(setting, False, args.pairs, args.epochs)
        busy = measure(setting, True, args.pairs, args.epochs)
        row = {
            "setting": setting,
            "env": SETTINGS[setting],
            "threads": idle["threads"],
            "idle_s": round(idle["seconds"], 2),
            "busy_s": round(busy["seconds"], 2),
            "busy_over_idle": round(busy["seconds"] / idle["seconds"], 2),
        }
        rows.append(row)
        print(
            f"{setting:>10}: {row['threads']} thread(s)  idle {row['idle_s']:7.1f} s  "
            f"busy {row['busy_s']:7.1f} s  busy/idle {row['busy_over_idle']:.2f}x",
            flush=True,
        )
    base = rows[0]["idle_s"]
    for row in rows:
        row["idle_vs_default_idle"] = round(row["idle_s"] / base, 2)
        row["busy_vs_default_idle"] = round(row["busy_s"] / base, 2)
    cpu = (
        next(
            (
                ln.split(":", 1)[1].strip()
                for ln in Path("/proc/cpuinfo").read_text().splitlines()
                if ln.startswith("model name")
            ),
            platform.processor(),
        )
        if Path("/proc/cpuinfo").exists()
        else platform.processor()
    )
    result = {
        "what": "one initial fine-tune (bundled model, float32), alone and beside a busy core",
        "pairs": args.pairs,
        "epochs": args.epochs,
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "capability": torch.backends.cpu.get_cpu_capability(),
        "target_busy_over_idle": 2.5,
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
