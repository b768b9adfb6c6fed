"""Benchmark Ray against this machine's own executors: a sweep, and one system's models.

1. **A sweep of small systems** (SYSTEMS systems of 4 tiny 2-layer models, STEPS steps, the
   bundled embedder) run by the command line with ``--jobs 2`` (the baseline: local
   processes) and with ``--executor ray`` on a 2-CPU Ray cluster started beforehand with
   ``ray start --head`` (as a user would have it running). Ray's overhead is its wall time
   over the baseline's (target: at most 5%). The cluster's start is timed apart. A warm-up
   system fills the initial-model cache first, so neither pays it.
2. **One system's models in Ray actors** (``--placement ray``): a 10-model tiny system, its
   steps in this process (2 threads) and with its models in 2 actors of 1 CPU each; the
   overhead per step, and the bytes the calls move per step (arguments and results).

Writes ``benchmarks/results/scale.json``. Keep the machine otherwise idle. Run with the
project venv (the dev extra brings Ray)::

    python benchmarks/bench_scale.py [--systems 8] [--steps 4]
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
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "scale.json"
sys.path.insert(0, str(ROOT / "tests"))
BIN = Path(sys.executable).parent


def say(msg: str) -> None:
    print(msg, flush=True)


def sweep_config(model_dir: Path, steps: int, systems: int) -> dict:
    from conftest import _tiny_config

    raw = _tiny_config(model_dir, steps=steps)
    kinds = ["complete", "intra_class"]
    conditions = [
        {
            "name": f"c{i}",
            "set": {"communication": {"type": kinds[i % 2]}, "update.lr": 1e-3 * (i + 1)},
        }
        for i in range(systems // 2)
    ]
    raw["sweep"] = {"seeds": [0, 1], "conditions": conditions}
    return raw


def cli_sweep(config: Path, out: Path, *extra: str) -> float:
    cmd = [sys.executable, "-m", "perspectives.cli.app", "run", str(config), "--sweep"]
    cmd += ["--out", str(out), "--no-share-steps", *extra]
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def step_times(folder: Path) -> list[float]:
    from perspectives.simulation.rundir import read_parts

    events = read_parts(folder, "events")
    timing = events[(events["kind"] == "timing") & (events["t"] > 0)]
    return [json.loads(d)["total"] for d in timing["detail"]]


def steps_seconds(sweep: Path) -> float:
    """The seconds every system of a sweep spent in its steps (t = 0 included)."""
    from perspectives.simulation.rundir import read_parts

    total = 0.0
    for progress in sweep.glob("*/seed-*/progress.json"):
        events = read_parts(progress.parent, "events")
        timing = events[events["kind"] == "timing"]
        total += sum(json.loads(d)["total"] for d in timing["detail"])
    return total


def placement(model_dir: Path, work: Path, address: str, steps: int) -> dict:
    import torch
    from conftest import _tiny_config

    from perspectives.cluster import RayPlacement, connect
    from perspectives.simulation.config import parse_run_config
    from perspectives.simulation.engine import Simulation
    from perspectives.simulation.rundir import read_parts

    raw = _tiny_config(model_dir, steps=steps)
    for g in raw["groups"]:
        g["count"] = 5
    cfg = parse_run_config(raw, "bench")
    torch.set_num_threads(2)
    here = work / "here"
    Simulation.create(cfg, here).run()
    connect(address)
    placed = RayPlacement(cfg, work / "actors", actors=2, cpus_per_actor=1)
    Simulation.create(cfg, work / "actors", placement=placed).run()
    same = all(
        read_parts(here, t).equals(read_parts(work / "actors", t)) for t in ("responses", "edges")
    )
    a, b = step_times(here), step_times(work / "actors")
    per_step_a, per_step_b = sum(a) / len(a), sum(b) / len(b)
    return {
        "models": len(cfg.models()),
        "steps": steps,
        "in_process_step_s": round(per_step_a, 3),
        "two_actors_step_s": round(per_step_b, 3),
        "overhead_per_step_s": round(per_step_b - per_step_a, 3),
        "ratio": round(per_step_b / per_step_a, 3),
        "bytes_sent_per_step": round(placed.sent / (steps + 1)),
        "bytes_received_per_step": round(placed.received / (steps + 1)),
        "same_tables": same,
        "note": "bytes per step include the setup's calls spread over the T + 1 snapshots; "
        "in this process 2 torch threads, the actors 1 each (2 threads between them)",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--systems", type=int, default=8, help="systems of the sweep (even)")
    parser.add_argument("--steps", type=int, default=4, help="steps of each system")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()

    from perspectives.models.tiny import write_tiny_model

    work = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    os.environ["PERSPECTIVES_CACHE"] = str(work / "cache")
    try:
        model = write_tiny_model(work / "tiny")
        config = work / "sweep.yaml"
        config.write_text(yaml.safe_dump(sweep_config(model, args.steps, args.systems)))
        say("warm-up: one system fills the initial-model cache")
        cli_sweep(config, work / "warm", "--seeds", "0", "--conditions", "c0")

        say("starting a 2-CPU Ray cluster (ray start --head)")
        start = time.perf_counter()
        subprocess.run(
            [
                str(BIN / "ray"),
                "start",
                "--head",
                "--num-cpus",
                "2",
                "--include-dashboard",
                "false",
                "--disable-usage-stats",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        cluster_start = time.perf_counter() - start

        rounds = []
        for r in range(2):  # alternating, so a busy moment affects both alike
            local = cli_sweep(config, work / f"local-{r}", "--jobs", "2")
            on_ray = cli_sweep(config, work / f"ray-{r}", "--executor", "ray", "--address", "auto")
            say(f"round {r}: local --jobs 2 {local:.1f} s, --executor ray {on_ray:.1f} s")
            rounds.append(
                {
                    "local_s": round(local, 2),
                    "ray_s": round(on_ray, 2),
                    # Outside the systems' own steps: process or worker start, imports, the
                    # embedder's load, scheduling; the steps' seconds over the 2 cores.
                    "local_outside_steps": round(
                        1 - steps_seconds(work / f"local-{r}") / 2 / local, 3
                    ),
                    "ray_outside_steps": round(
                        1 - steps_seconds(work / f"ray-{r}") / 2 / on_ray, 3
                    ),
                }
            )
        local = min(x["local_s"] for x in rounds)
        on_ray = min(x["ray_s"] for x in rounds)
        from perspectives.simulation.rundir import read_parts

        same = all(
            read_parts(work / "local-0" / f"c{i}" / f"seed-{s}", "responses").equals(
                read_parts(work / "ray-0" / f"c{i}" / f"seed-{s}", "responses")
            )
            for i in range(args.systems // 2)
            for s in (0, 1)
        )
        say("one system's models: in this process vs 2 actors")
        placed = placement(model, work / "placement", "auto", args.steps)
    finally:
        subprocess.run([str(BIN / "ray"), "stop", "--force"], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)

    result = {
        "what": "a sweep of small systems on local processes vs Ray tasks; one system's models "
        "in this process vs in Ray actors",
        "sweep": {
            "systems": args.systems,
            "models_per_system": 4,
            "steps": args.steps,
            "rounds": rounds,
            "local_jobs2_s": local,
            "ray_s": on_ray,
            "ray_overhead": round(on_ray / local - 1, 4),
            "ray_cluster_start_s": round(cluster_start, 2),
            "same_responses": same,
        },
        "placement": placed,
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "ray": __import__("ray").__version__,
        },
        "command": "python benchmarks/bench_scale.py "
        f"--systems {args.systems} --steps {args.steps}",
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    s = result["sweep"]
    say(
        f"sweep of {args.systems}: local {local:.1f} s, ray {on_ray:.1f} s "
        f"(overhead {100 * s['ray_overhead']:+.1f}%); cluster start {cluster_start:.1f} s"
    )
    say(
        f"placement: {placed['in_process_step_s']} s/step here, {placed['two_actors_step_s']} "
        f"s/step in 2 actors; {placed['bytes_sent_per_step']} B sent and "
        f"{placed['bytes_received_per_step']} B received per step -> {args.out}"
    )


if __name__ == "__main__":
    main()
