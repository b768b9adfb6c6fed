"""Benchmark sweeps that run shared steps once (the default) against ``--no-share-steps``.

Two parts:

1. The plan: for each case study's sweep (CPU scale, and with the paper's T), how many of
   its snapshots (steps 0..T of every system) are shared with an earlier system and so not
   run again. Exact; no model runs.
2. A timed sweep: the cs2-adversary preset at CPU scale, its conditions with 2 targets
   (an attack every 2nd, 5th and 10th step), one seed, STEPS steps, one system at a time,
   run with ``--no-share-steps`` (the baseline) and with shared steps, each into a fresh
   folder after a warm-up that puts the initial models in the cache. Reports both wall times,
   their ratio, and whether both wrote the same responses.

Writes ``benchmarks/results/share.json``.

    python benchmarks/bench_share.py [--steps 6] [--plan-only]
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
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "share.json"
CASE_STUDIES = ("cs1-disruption", "cs2-adversary", "cs3-polarization")


def paper_t(preset) -> dict:
    """Overrides that give the CPU scale the paper's T (and t*, for case study 1)."""
    sets = {"steps": preset.raw["steps"]}
    if "at" in preset.raw.get("communication", {}):
        sets["communication.at"] = preset.raw["communication"]["at"]
    return sets


def plan_counts() -> dict:
    from perspectives.experiments.presets import load_preset
    from perspectives.experiments.sweep import plan_sweep

    out = {}
    for name in CASE_STUDIES:
        preset = load_preset(name)
        for label, sets in (("cpu", {}), ("cpu, paper T", paper_t(preset))):
            systems = plan_sweep(preset, Path("unused"), "cpu", sets=sets)
            total = sum(s.cfg.steps + 1 for s in systems)
            saved = sum(s.fork_step + 1 for s in systems if s.source is not None)
            out[f"{name} ({label})"] = {
                "systems": len(systems),
                "snapshots": total,
                "not_run_again": saved,
                "fraction_saved": saved / total,
            }
            print(
                f"{name:18s} {label:13s} {saved:4d} of {total:4d} snapshots shared "
                f"({saved / total:.0%})"
            )
    return out


def run_sweep(config: Path, out: Path, *extra: str) -> float:
    cmd = [sys.executable, "-m", "perspectives.cli.app", "run", str(config), "--sweep"]
    cmd += ["--out", str(out), *extra]
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def timed(steps: int) -> dict:
    from perspectives.experiments.presets import load_preset
    from perspectives.simulation.rundir import read_parts

    preset = load_preset("cs2-adversary")
    raw = preset.raw_config("cpu", {"steps": steps})
    raw.pop("scales", None)
    raw.pop("default_scale", None)
    conditions = [c for c in preset.sweep["conditions"] if c["name"].startswith("targets-2-")]
    raw["sweep"] = {"seeds": [0], "conditions": conditions}
    work = Path(tempfile.mkdtemp(prefix="bench-share-"))
    try:
        config = work / "sweep.yaml"
        config.write_text(yaml.safe_dump(raw, sort_keys=False))
        warm = dict(raw, steps=0, sweep={"seeds": [0], "conditions": conditions[:1]})
        (work / "warm.yaml").write_text(yaml.safe_dump(warm, sort_keys=False))
        print("warm-up (initial models into the cache) ...", flush=True)
        run_sweep(work / "warm.yaml", work / "warm")
        times = {}
        for label, extra in (("independent", ("--no-share-steps",)), ("shared", ())):
            print(f"{label}: {len(conditions)} systems x {steps + 1} snapshots ...", flush=True)
            times[label] = run_sweep(config, work / label, *extra)
            print(f"  wall time {times[label]:.1f} s", flush=True)
        same = all(
            read_parts(work / "independent" / c["name"] / "seed-0", "responses").equals(
                read_parts(work / "shared" / c["name"] / "seed-0", "responses")
            )
            for c in conditions
        )
        ratio = times["independent"] / times["shared"]
        print(f"speed-up of shared steps: {ratio:.2f}x; same responses both ways: {same}")
        return {
            "preset": "cs2-adversary (cpu scale), targets 2, every 2/5/10, seed 0",
            "steps": steps,
            "wall_time_s": times,
            "speedup": ratio,
            "same_responses": same,
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=6, help="steps of each timed system")
    parser.add_argument("--plan-only", action="store_true", help="skip the timed sweeps")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    result = {"plan": plan_counts()}
    if not args.plan_only:
        result["timed"] = timed(args.steps)
    result["machine"] = {
        "cpu_count": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)),
        "load_average_1min": os.getloadavg()[0],
        "platform": platform.platform(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
