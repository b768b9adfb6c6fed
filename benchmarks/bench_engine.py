"""Benchmark the simulation engine on the quickstart preset.

Runs the preset in a fresh run folder (embedded defaults) and reads the per-step timings the
engine records (answering, learning, evaluating, embedding, writing, setup, and the engine's
own remainder). Reports each step's split, the engine's share of the step time (target: under
5%; setup — building agents and fine-tuning initial models — is reported apart, as it happens
once per run and is cached across runs), and the whole run's wall time. Writes
``benchmarks/results/engine.json``.

    python benchmarks/bench_engine.py [--quick] [--keep DIR]

``--quick`` runs two steps. Initial models come from the cache when a previous run made
them; ``--cold`` clears the initial-model cache first, to time a first run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "engine.json"
ENGINE_SHARE_TARGET = 0.05
PHASES = ["setup", "answering", "learning", "evaluating", "embedding", "writing", "engine"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="two steps only")
    parser.add_argument("--cold", action="store_true", help="clear cached initial models first")
    parser.add_argument("--keep", type=Path, help="keep the run folder here")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--from-run", type=Path, help="report a finished run folder's timings")
    args = parser.parse_args()

    from perspectives.bundled import cache_dir
    from perspectives.experiments.presets import preset_text
    from perspectives.simulation.config import parse_run_config
    from perspectives.simulation.engine import Simulation
    from perspectives.simulation.rundir import read_parts

    raw = yaml.safe_load(preset_text("quickstart"))
    if args.quick:
        raw["steps"] = 2
    cfg = parse_run_config(raw, "quickstart")
    if args.cold:
        shutil.rmtree(cache_dir() / "initial", ignore_errors=True)
    if args.from_run:
        folder = args.from_run
        wall = None
    else:
        folder = args.keep or Path(tempfile.mkdtemp(prefix="bench-engine-"))
        if folder.exists() and any(folder.iterdir()):
            shutil.rmtree(folder)
        start = time.perf_counter()
        Simulation.create(cfg, folder).run()
        wall = time.perf_counter() - start

    events = read_parts(folder, "events")
    timing = events[events["kind"] == "timing"]
    steps = []
    for _, row in timing.iterrows():
        split = json.loads(row["detail"])
        split["t"] = int(row["t"])
        # The engine's own time: what no measured phase accounts for.
        split["engine"] = max(split["total"] - sum(split.get(p, 0.0) for p in PHASES[:-1]), 0.0)
        steps.append(split)
    phases = PHASES
    if wall is None:
        wall = sum(s["total"] for s in steps)
    print(f"quickstart: {len(cfg.models())} models, T = {cfg.steps}, wall time {wall:.1f} s")
    print(f"{'t':>3} " + " ".join(f"{p:>10}" for p in phases) + f" {'total':>8} {'engine%':>8}")
    work_total = engine_total = 0.0
    for s in steps:
        step_time = s["total"] - s.get("setup", 0.0)
        share = s["engine"] / step_time if step_time > 0 else 0.0
        work_total += step_time
        engine_total += s["engine"]
        print(
            f"{s['t']:>3} "
            + " ".join(f"{s.get(p, 0.0):>10.2f}" for p in phases)
            + f" {s['total']:>8.2f} {100 * share:>7.2f}%"
        )
    share = engine_total / work_total if work_total else 0.0
    verdict = "ok" if share < ENGINE_SHARE_TARGET else "MISSED"
    print(
        f"engine share of step time (setup excluded): {100 * share:.2f}% "
        f"(target < {100 * ENGINE_SHARE_TARGET:.0f}%) {verdict}"
    )
    result = {
        "preset": "quickstart",
        "quick": args.quick,
        "cold_cache": args.cold,
        "models": len(cfg.models()),
        "steps": cfg.steps,
        "wall_time_s": wall,
        "engine_share": share,
        "engine_share_target": ENGINE_SHARE_TARGET,
        "per_step": steps,
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform()},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    if not args.keep and not args.from_run:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
