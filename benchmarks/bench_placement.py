"""Benchmark the main job's run with its models in this process and in two processes.

Runs ``perspectives run quickstart`` (the README's main job, on the embedded defaults) as a
user would, from an empty cache of initial models each time, with ``--placement local`` (one
process, torch's threads on every core) and ``--placement processes --actors 2`` (two
processes, the cores shared among them), with ``--dtype float32`` (the path of CPUs without
native bfloat16) unless ``--dtype`` says otherwise. Records each variant's wall time, its
per-phase seconds (from the run folder's timing events) and whether the two give the same
tables. Writes ``benchmarks/results/placement.json``; the ratio is local / processes (above
1: the processes are faster).

    python benchmarks/bench_placement.py [--dtype float32] [--repeats 1]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "placement.json"
VARIANTS = {
    "local": ["--placement", "local"],
    "processes x2": ["--placement", "processes", "--actors", "2"],
}


def run_variant(name: str, dtype: str, work: Path) -> dict:
    """One run of the quickstart in a fresh folder and cache; its wall time and phases."""
    out = work / name.replace(" ", "-")
    env = {**os.environ, "PERSPECTIVES_CACHE": str(work / f"cache-{out.name}")}
    cmd = [sys.executable, "-m", "perspectives.cli", "run", "quickstart", "--out", str(out)]
    cmd += ["--dtype", dtype, *VARIANTS[name]]
    start = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, capture_output=True, text=True)
    wall = time.perf_counter() - start
    phases, _ = timings(out)
    return {"variant": name, "wall_s": round(wall, 2), "phases_s": phases, "folder": out}


def timings(out: Path) -> tuple[dict[str, float], dict]:
    """A run's seconds per phase summed over its steps, and its last step's timing record
    (where and how it computed: placement, threads, dtypes)."""
    from perspectives.simulation.rundir import read_parts

    events = read_parts(out, "events")
    phases: dict[str, float] = {}
    record: dict = {}
    for detail in events.loc[events["kind"] == "timing", "detail"]:
        record = json.loads(detail)
        for key, value in record.items():
            if isinstance(value, float) and key != "threads":
                phases[key] = round(phases.get(key, 0.0) + value, 2)
    return phases, record


def same_tables(a: Path, b: Path) -> bool:
    from perspectives.simulation.rundir import read_parts

    return all(read_parts(a, t).equals(read_parts(b, t)) for t in ("responses", "edges"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dtype", default="float32", choices=["float32", "auto", "bfloat16"])
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    import torch

    load = os.getloadavg()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for repeat in range(args.repeats):
            work = Path(tmp) / f"r{repeat}"
            got = {name: run_variant(name, args.dtype, work) for name in VARIANTS}
            same = same_tables(got["local"]["folder"], got["processes x2"]["folder"])
            for row in got.values():
                row.pop("folder")
                rows.append({**row, "repeat": repeat, "same_tables_as_local": same})
                print(f"{row['variant']:>13}: {row['wall_s']:7.1f} s  {row['phases_s']}")
    local = [r["wall_s"] for r in rows if r["variant"] == "local"]
    procs = [r["wall_s"] for r in rows if r["variant"] == "processes x2"]
    ratio = round(min(local) / min(procs), 2)
    print(f"local / processes x2 (best of {args.repeats}): {ratio}")
    result = {
        "what": "the quickstart run (perspectives run quickstart), fresh cache, by placement",
        "dtype": args.dtype,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "machine": platform.machine(),
        "torch": torch.__version__,
        "loadavg_before": load,
        "rows": rows,
        "local_over_processes": ratio,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
