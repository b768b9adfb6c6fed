"""Benchmark the README's main job as a new user runs it: ``perspectives run quickstart`` then
``perspectives report``, from an empty cache (the bundled model converted, the initial models
fine-tuned), in float32 (the path of CPUs without native bfloat16).

With ``--fresh-clone`` it times the README's whole first command as a newcomer types it: a
fresh clone of this repository's HEAD, ``bash scripts/setup.sh`` (a new virtual environment;
pip's own cache as it is), then the run and the report with that environment.

The run uses its default placement (``auto``); the baseline, measured in the same process
right after, is the same job with ``--placement local`` (one process). Both must give the
same tables. Also recorded: what the job shows — how far each class's mean travelled against
its within-class spread, and the two-class polarization at every step — so a change that
makes it faster but shows nothing is seen.

Writes ``benchmarks/results/main_job.json``.

    python benchmarks/bench_main_job.py [--dtype float32] [--no-baseline] [--fresh-clone]
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

# Run as a script, this folder is on sys.path: the placement benchmark's readers are shared.
from bench_placement import same_tables, timings

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "main_job.json"
TARGET_S = 600.0  # the target: the main job within 10 minutes on 2 cores


def timed(command: list[str], env: dict, cwd: Path | None = None) -> float:
    """Seconds ``command`` took; raises with its output when it fails."""
    start = time.perf_counter()
    done = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stdout}\n{done.stderr}")
    return time.perf_counter() - start


def fresh_clone(work: Path) -> tuple[Path, float]:
    """A clone of HEAD set up by ``scripts/setup.sh``: its folder and the setup's seconds."""
    clone = work / "clone"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    return clone, timed(["bash", "scripts/setup.sh"], env, cwd=clone)


def main_job(
    name: str, placement: list[str], dtype: str, work: Path, python: str = sys.executable
) -> dict:
    import pandas as pd

    out = work / name
    env = {**os.environ, "PERSPECTIVES_CACHE": str(work / f"cache-{name}")}
    cli = [python, "-m", "perspectives.cli"]
    run_s = timed([*cli, "run", "quickstart", "--out", str(out), "--dtype", dtype, *placement], env)
    report_s = timed([*cli, "report", str(out)], env)
    phases, record = timings(out)
    where = {k: record.get(k) for k in ("placement", "threads", "answer_dtype", "train_dtype")}
    movement = pd.read_parquet(out / "analysis" / "class_movement.parquet")
    polarization = pd.read_parquet(out / "analysis" / "polarization.parquet")
    return {
        "variant": name,
        "run_s": round(run_s, 1),
        "report_s": round(report_s, 1),
        "wall_s": round(run_s + report_s, 1),
        "phases_s": phases,
        "where": where,
        "class_movement_ratio": dict(
            zip(movement["class"], movement["ratio"].round(2), strict=True)
        ),
        "polarization_z1": polarization["polarization"].round(3).tolist(),
        "polarization_kernel": polarization["polarization_kernel"].round(3).tolist(),
        "folder": out,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dtype", default="float32", choices=["float32", "auto", "bfloat16"])
    parser.add_argument("--no-baseline", action="store_true", help="skip the one-process run")
    parser.add_argument(
        "--fresh-clone", action="store_true", help="time scripts/setup.sh on a fresh clone too"
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    import torch

    from perspectives.models.device import cpu_flags, use_bf16

    load = os.getloadavg()
    variants = {"default": []}
    if not args.no_baseline:
        variants["local"] = ["--placement", "local"]
    rows = []
    setup_s = None
    with tempfile.TemporaryDirectory() as tmp:
        python = sys.executable
        if args.fresh_clone:
            clone, setup_s = fresh_clone(Path(tmp))
            python = str(clone / ".venv" / "bin" / "python")
            print(f"   setup: {setup_s:6.1f} s (scripts/setup.sh on a fresh clone)")
        for name, placement in variants.items():
            row = main_job(name, placement, args.dtype, Path(tmp), python)
            rows.append(row)
            print(
                f"{name:>8}: run {row['run_s']:6.1f} s + report {row['report_s']:5.1f} s "
                f"({row['where'].get('placement') or 'local'}); moved "
                f"{row['class_movement_ratio']}; polarization {row['polarization_z1']}"
            )
        same = len(rows) < 2 or same_tables(rows[0]["folder"], rows[1]["folder"])
    for row in rows:
        row.pop("folder")
    result = {
        "what": ("scripts/setup.sh on a fresh clone + " if setup_s is not None else "")
        + "perspectives run quickstart + perspectives report, empty cache",
        "dtype": args.dtype,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "bf16_native": use_bf16(torch.device("cpu")),
        "cpu_flags": sorted(cpu_flags() & {"avx2", "avx512f", "avx512_bf16", "amx_tile"}),
        "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "machine": platform.machine(),
        "torch": torch.__version__,
        "loadavg_before": [round(x, 2) for x in load],
        "target_s": TARGET_S,
        "setup_s": None if setup_s is None else round(setup_s, 1),
        "rows": rows,
        "same_tables": same,
    }
    if setup_s is not None:
        # The first run also pays for compiling the modules it imports (setup.sh skips it).
        result["first_command_s"] = round(setup_s + rows[0]["wall_s"], 1)
        print(f"the first command: {result['first_command_s']:.1f} s")
    if len(rows) == 2:
        result["local_over_default"] = round(rows[1]["wall_s"] / rows[0]["wall_s"], 2)
        print(f"local / default: {result['local_over_default']}; same tables: {same}")
    total = result.get("first_command_s", rows[0]["wall_s"])
    print(f"default within {TARGET_S:.0f} s: {total <= TARGET_S}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
