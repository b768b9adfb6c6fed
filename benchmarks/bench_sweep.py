"""Benchmark running a sweep's systems side by side (``--jobs``) against one at a time.

Runs the same small sweep — the cs2-adversary preset at CPU scale, its first CONDITIONS
conditions, one seed, STEPS steps — with ``--jobs 1`` (the baseline) and with ``--jobs J``,
each into a fresh folder, and reports the wall times and their ratio. A warm-up system is run
first, so both measured sweeps find the initial models in the cache. Also checks that both
sweeps wrote the same responses. Writes ``benchmarks/results/sweep.json``.

    python benchmarks/bench_sweep.py [--jobs 2] [--conditions 4] [--steps 1]

Run it on an otherwise idle machine: the ratio is what the cores give, nothing else.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "sweep.json"


def run_sweep(config: Path, out: Path, jobs: int) -> float:
    cmd = [sys.executable, "-m", "perspectives.cli.app", "run", str(config), "--sweep"]
    cmd += ["--out", str(out), "--jobs", str(jobs)]
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=2, help="systems at a time (default 2)")
    parser.add_argument("--conditions", type=int, default=4, help="conditions of the sweep")
    parser.add_argument("--steps", type=int, default=1, help="steps of each system")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()

    from perspectives.experiments.presets import load_preset
    from perspectives.simulation.rundir import read_parts

    preset = load_preset("cs2-adversary")
    raw = preset.raw_config("cpu", {"steps": args.steps})
    raw.pop("scales", None)
    raw.pop("default_scale", None)
    raw["sweep"] = {"seeds": [0], "conditions": preset.sweep["conditions"][: args.conditions]}
    work = Path(tempfile.mkdtemp(prefix="bench-sweep-"))
    try:
        config = work / "sweep.yaml"
        config.write_text(yaml.safe_dump(raw, sort_keys=False))
        warm = dict(raw, sweep={"seeds": [0], "conditions": raw["sweep"]["conditions"][:1]})
        (work / "warm.yaml").write_text(yaml.safe_dump(warm, sort_keys=False))
        print("warm-up (initial models into the cache) ...", flush=True)
        run_sweep(work / "warm.yaml", work / "warm", 1)

        times = {}
        for jobs in (1, args.jobs):
            print(f"--jobs {jobs}: {args.conditions} systems x {args.steps + 1} snapshots ...")
            times[jobs] = run_sweep(config, work / f"jobs-{jobs}", jobs)
            print(f"  wall time {times[jobs]:.1f} s", flush=True)
        speedup = times[1] / times[args.jobs]
        same = all(
            read_parts(work / "jobs-1" / c["name"] / "seed-0", "responses").equals(
                read_parts(work / f"jobs-{args.jobs}" / c["name"] / "seed-0", "responses")
            )
            for c in raw["sweep"]["conditions"]
        )
        print(f"speed-up of --jobs {args.jobs} over --jobs 1: {speedup:.2f}x")
        print(f"same responses both ways: {same}")
        result = {
            "preset": "cs2-adversary (cpu scale)",
            "conditions": args.conditions,
            "steps": args.steps,
            "jobs": args.jobs,
            "wall_time_s": {str(k): v for k, v in times.items()},
            "speedup": speedup,
            "same_responses": same,
            "machine": {
                "cpu_count": os.cpu_count(),
                "cores_usable": len(os.sched_getaffinity(0)),
                "platform": platform.platform(),
            },
        }
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.out}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
