"""Benchmark fine-tuning and answering on an idle and on a busy machine, by thread settings.

Two workloads of the bundled model in float32, each timed in a fresh process per setting:
``fine-tune`` (a fine-tune on ``--pairs`` pairs for ``--epochs`` epochs, lr 5e-5, batch 8)
and ``answer`` (greedy answers to 16 questions, 32 new tokens, the median of 3 calls; many
small operations, where how OpenMP's threads wait matters most). Settings: OpenMP's own
defaults, ``OMP_WAIT_POLICY=PASSIVE``, a short spin (``GOMP_SPINCOUNT``), perspectives' own
default (none set: what ``import perspectives`` chooses) and one thread;
each alone and beside a busy process (a Python loop spinning on one core, as another job
would). busy / idle says how gracefully a setting degrades (target: at most 2.5x when one of
two cores is taken); idle / default idle what it costs on an idle machine. Writes
``benchmarks/results/busy.json``.

    python benchmarks/bench_busy.py [--pairs 16] [--epochs 1]
"""

from __future__ import annotations

import argparse
import importlib
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
# An empty value is read as unset by OpenMP and keeps perspectives' own default out.
OPENMP_DEFAULT = {"OMP_WAIT_POLICY": "", "GOMP_SPINCOUNT": ""}
SETTINGS = {
    "openmp-default": OPENMP_DEFAULT,
    "passive": {**OPENMP_DEFAULT, "OMP_WAIT_POLICY": "PASSIVE"},
    "spin-300": {**OPENMP_DEFAULT, "GOMP_SPINCOUNT": "300"},
    "perspectives-default": {},
    "1-thread": {"OMP_NUM_THREADS": "1"},
}
WORKLOADS = ("fine-tune", "answer")
# Busy on one core until this benchmark's process goes, however it ends (even killed).
SPIN = "import os\nparent = os.getppid()\nwhile os.getppid() == parent: pass"


def child(workload: str, pairs: int, epochs: int) -> None:
    """Run one workload in this process; print the seconds as JSON."""
    # perspectives first, so that its OpenMP default is set before torch loads OpenMP.
    importlib.import_module("perspectives")
    import torch

    from perspectives.data.banks import load_bank
    from perspectives.models.device import set_precision
    from perspectives.models.hf_agent import HFAgent

    set_precision("float32")
    bank = load_bank("society_culture")
    agent = HFAgent(
        "bench",
        "bundled",
        update={"epochs": epochs, "lr": 5e-5, "batch_size": 8, "mixed_precision": "no"},
    )
    if workload == "fine-tune":
        data = list(zip(bank["question"][:pairs], bank["answer"][:pairs], strict=True))
        start = time.perf_counter()
        agent.learn(data, seed=0)
        seconds = time.perf_counter() - start
    else:
        from perspectives.models.spec import Sampling

        questions = bank["question"].tolist()[:16]
        greedy = Sampling(do_sample=False, max_new_tokens=32)
        agent.answer(questions[:2], greedy)  # load and warm up outside the timing
        times = []
        for _ in range(3):
            start = time.perf_counter()
            agent.answer(questions, greedy)
            times.append(time.perf_counter() - start)
        seconds = sorted(times)[1]
    print(json.dumps({"seconds": seconds, "threads": torch.get_num_threads()}))


def measure(workload: str, setting: str, busy: bool, pairs: int, epochs: int) -> dict:
    drop = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(SETTINGS[setting])
    spinner = None
    if busy:
        spinner = subprocess.Popen([sys.executable, "-c", SPIN])
        time.sleep(1.0)
    try:
        cmd = [sys.executable, __file__, "--child", workload]
        cmd += ["--pairs", str(pairs), "--epochs", str(epochs)]
        out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    finally:
        if spinner is not None:
            spinner.kill()
            spinner.wait()
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--settings", default=",".join(SETTINGS))
    parser.add_argument("--workloads", default=",".join(WORKLOADS))
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--child", choices=WORKLOADS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.pairs, args.epochs)
        return

    import torch

    rows = []
    # Warm the file cache and the converted bundled model once, outside the timings.
    measure("fine-tune", "openmp-default", False, 8, 1)
    for workload in args.workloads.split(","):
        base = None
        for setting in args.settings.split(","):
            idle = measure(workload, setting, False, args.pairs, args.epochs)
            busy = measure(workload, setting, True, args.pairs, args.epochs)
            base = base or idle["seconds"]
            row = {
                "workload": workload,
                "setting": setting,
                "env": SETTINGS[setting],
                "threads": idle["threads"],
                "idle_s": round(idle["seconds"], 2),
                "busy_s": round(busy["seconds"], 2),
                "busy_over_idle": round(busy["seconds"] / idle["seconds"], 2),
                "idle_vs_default_idle": round(idle["seconds"] / base, 2),
                "busy_vs_default_idle": round(busy["seconds"] / base, 2),
            }
            rows.append(row)
            print(
                f"{workload:>9} {setting:>20}: {row['threads']} thread(s)  "
                f"idle {row['idle_s']:6.2f} s  busy {row['busy_s']:6.2f} s  "
                f"busy/idle {row['busy_over_idle']:.2f}x  idle/default idle "
                f"{row['idle_vs_default_idle']:.2f}x",
                flush=True,
            )
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
        "what": "fine-tuning and answering (bundled model, float32), alone and beside a busy core",
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
