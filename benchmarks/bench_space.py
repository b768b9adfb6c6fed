"""Benchmark PerspectiveSpace against graspologic's ClassicalMDS, and alone at scale.

(a) n=1000 points of shape (m=100, p=384), the same input for both: fit time of graspologic's
    ``ClassicalMDS`` (run in its isolated venv through a subprocess, reading the input from a
    temporary ``.npy``) and of ours, the speed ratio (target >= 50x), and the largest relative
    difference of the coordinates up to the sign of each axis. float32 with n_components 2 and
    None; float64 with n_components 2 (graspologic's float64 fit takes minutes).
(b) Ours alone at n=20000, m=100, p=384 float32 (3.07 GB), in a fresh subprocess per fit:
    wall time of the fit (target < 60 s) and the peak RSS above the RSS right after the input
    exists (``ru_maxrss``), as a multiple of the input's bytes (target < 1.5x).

Only the fit is timed in each process (best of ``--repeats``), not imports or loading.
Writes ``benchmarks/results/space.json`` (with ``--quick``, a small smoke run, only prints
unless ``--out`` is given). Run with the project venv, after creating the reference venv (see
``benchmarks/make_golden_cmds.py``)::

    python benchmarks/bench_space.py [--quick]

This machine sets OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE, which slow a current OpenBLAS; for
representative numbers run with ``env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE``. The BLAS in
use is recorded in the results.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
REF_PYTHON = ROOT / "benchmarks" / ".venv-graspologic" / "bin" / "python"
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "space.json"
SPEED_TARGET = 50.0
TIME_TARGET_S = 60.0
MEMORY_TARGET = 1.5


# ------------------------------------------------------------------------------------ data
def fill_structured(
    out: np.ndarray, seed: int, n_clusters: int = 5, chunk_rows: int = 128
) -> np.ndarray:
    """Fill ``out`` (n, m, p) in place with clustered low-rank kernels plus noise, by chunks.

    Each point is its cluster's rank-2 centre, a rank-2 spread, and Gaussian noise; temporaries
    stay at ``chunk_rows`` points.
    """
    n, m, p = out.shape
    dtype = out.dtype
    rng = np.random.default_rng(seed)
    scales = np.linspace(4.0, 2.0, n_clusters)[:, None]
    centres = scales * np.stack(
        [(rng.standard_normal((m, 2)) @ rng.standard_normal((2, p))).ravel() for _ in scales]
    )
    centres = (centres / np.sqrt(2)).astype(dtype)
    spread_dirs = rng.standard_normal((2, m * p)).astype(dtype)
    flat = out.reshape(n, m * p)
    for start in range(0, n, chunk_rows):
        rows = min(chunk_rows, n - start)
        block = flat[start : start + rows]
        rng.standard_normal(out=block, dtype=dtype)
        block *= dtype.type(0.5)
        block += centres[rng.integers(0, n_clusters, size=rows)]
        block += (rng.standard_normal((rows, 2)) * [1.0, 0.5]).astype(dtype) @ spread_dirs
    return out


def relative_difference(ours: np.ndarray, ref: np.ndarray) -> float:
    """``max |ours - ref| / max |ref|`` after matching the sign of every column of ``ours``.

    Compares the leading columns the two have in common (see the dimensions reported).
    """
    k = min(ours.shape[1], ref.shape[1])
    ours, ref = ours[:, :k], ref[:, :k]
    signs = np.where(np.sum(ours * ref, axis=0) < 0, -1.0, 1.0)
    return float(np.abs(ours * signs - ref).max() / np.abs(ref).max())


def _rss_bytes() -> int:
    """Current resident set size of this process."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def _maxrss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _blas_info() -> list[dict[str, Any]]:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return []
    keys = ("internal_api", "version", "architecture", "num_threads", "threading_layer")
    return [{k: info.get(k) for k in keys} for info in threadpool_info()]


def _n_components_arg(value: str) -> int | None:
    return None if value == "None" else int(value)


# --------------------------------------------------------------------------------- workers
def reference_worker(args: argparse.Namespace) -> None:
    """Runs under the graspologic venv: time ClassicalMDS.fit_transform on ``args.input``."""
    import graspologic
    import scipy
    import sklearn
    from graspologic.embed import ClassicalMDS

    X = np.load(args.input)
    times, model, emb = [], None, None
    for _ in range(args.repeats):
        model = ClassicalMDS(n_components=args.n_components)
        t0 = time.perf_counter()
        emb = model.fit_transform(X)
        times.append(time.perf_counter() - t0)
    assert model is not None and emb is not None
    np.save(args.output, emb)
    info = {
        "times_s": times,
        "n_components_": int(model.n_components_),
        "versions": {
            "graspologic": graspologic.__version__,
            "numpy": np.__version__,
            "scipy": scipy.__version__,
            "sklearn": sklearn.__version__,
        },
        "blas": _blas_info(),
    }
    Path(args.output).with_suffix(".json").write_text(json.dumps(info))


def big_worker(args: argparse.Namespace) -> None:
    """Fresh process: build the large input, then time one fit and measure its peak RSS."""
    sys.path.insert(0, str(ROOT))
    from perspectives.space.estimator import PerspectiveSpace

    space = PerspectiveSpace(args.n_components, svd_solver=args.solver)
    X = np.empty((args.n, args.m, args.p), dtype=np.float32)
    t0 = time.perf_counter()
    fill_structured(X, seed=args.seed)
    generate_s = time.perf_counter() - t0
    baseline, maxrss_before = _rss_bytes(), _maxrss_bytes()
    t0 = time.perf_counter()
    space.fit(X)
    fit_s = time.perf_counter() - t0
    maxrss_after = _maxrss_bytes()
    peak_extra = maxrss_after - baseline
    print(
        json.dumps(
            {
                "n": args.n,
                "m": args.m,
                "p": args.p,
                "dtype": "float32",
                "n_components": args.n_components,
                "solver": args.solver,
                "n_components_": int(space.n_components_),
                "input_bytes": int(X.nbytes),
                "generate_s": generate_s,
                "fit_s": fit_s,
                "rss_baseline_bytes": baseline,
                "maxrss_before_fit_bytes": maxrss_before,
                "maxrss_after_fit_bytes": maxrss_after,
                "peak_extra_bytes": peak_extra,
                "peak_extra_over_input": peak_extra / X.nbytes,
            }
        )
    )


# ------------------------------------------------------------------------------ benchmarks
def run_reference(
    ref_python: Path, X_path: Path, n_components: int | None, repeats: int, tmp: Path
) -> tuple[dict[str, Any], np.ndarray]:
    """Time graspologic in its venv on the saved input; return its info and coordinates."""
    out = tmp / f"ref_{X_path.stem}_{n_components}.npy"
    cmd = [str(ref_python), __file__, "--reference-worker", "--input", str(X_path)]
    cmd += ["--output", str(out), "--n-components", str(n_components), "--repeats", str(repeats)]
    subprocess.run(cmd, check=True)
    info = json.loads(out.with_suffix(".json").read_text())
    return info, np.load(out)


def time_ours(
    X: np.ndarray, n_components: int | None, solver: str, repeats: int
) -> tuple[list[float], Any]:
    """Best-of-``repeats`` fit times of PerspectiveSpace and the last fitted model."""
    from perspectives.space.estimator import PerspectiveSpace

    times, space = [], None
    for _ in range(repeats):
        space = PerspectiveSpace(n_components, svd_solver=solver)  # type: ignore[arg-type]
        t0 = time.perf_counter()
        space.fit(X)
        times.append(time.perf_counter() - t0)
    return times, space


def bench_parity(args: argparse.Namespace, tmp: Path) -> list[dict[str, Any]]:
    """Part (a): graspologic vs ours on the same input."""
    n, m, p = (200, 20, 64) if args.quick else (1000, 100, 384)
    configs: list[tuple[str, int | None, int]] = [
        ("float32", 2, args.ref_repeats),
        ("float32", None, args.ref_repeats),
        ("float64", 2, 1 if not args.quick else args.ref_repeats),
    ]
    rows = []
    inputs: dict[str, tuple[Path, np.ndarray]] = {}
    for dtype_name, k, ref_repeats in configs:
        if dtype_name not in inputs:
            X = fill_structured(np.empty((n, m, p), dtype=dtype_name), seed=1)
            path = tmp / f"X_{dtype_name}.npy"
            np.save(path, X)
            inputs[dtype_name] = (path, X)
        path, X = inputs[dtype_name]
        print(f"(a) {dtype_name} n_components={k}: graspologic ...", flush=True)
        ref_info, ref_emb = run_reference(args.ref_python, path, k, ref_repeats, tmp)
        for solver in ("auto", "randomized"):
            print(f"(a) {dtype_name} n_components={k}: ours ({solver}) ...", flush=True)
            times, space = time_ours(X, k, solver, args.repeats)
            ref_best, ours_best = min(ref_info["times_s"]), min(times)
            rows.append(
                {
                    "n": n,
                    "m": m,
                    "p": p,
                    "dtype": dtype_name,
                    "n_components": k,
                    "solver": solver,
                    "graspologic_times_s": ref_info["times_s"],
                    "ours_times_s": times,
                    "graspologic_best_s": ref_best,
                    "ours_best_s": ours_best,
                    "speed_ratio": ref_best / ours_best,
                    "graspologic_n_components_": ref_info["n_components_"],
                    "ours_n_components_": int(space.n_components_),
                    "ours_elbows_": [int(e) for e in space.elbows_],
                    "same_dimension": ref_info["n_components_"] == space.n_components_,
                    # over the leading columns both have
                    "max_relative_difference": relative_difference(space.embedding_, ref_emb),
                }
            )
        args.reference_info = ref_info
    return rows


def bench_large(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Part (b): ours alone on a large float32 input, one fresh process per fit."""
    n, m, p = (4000, 20, 64) if args.quick else (20000, 100, 384)
    rows = []
    for k in (None, 2):
        print(f"(b) n={n} float32 n_components={k}: ours ...", flush=True)
        cmd = [sys.executable, __file__, "--big-worker", "--n", str(n), "--m", str(m)]
        cmd += ["--p", str(p), "--n-components", str(k), "--solver", "auto"]
        done = subprocess.run(cmd, check=True, capture_output=True, text=True)
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    return rows


def machine_info() -> dict[str, Any]:
    import scipy
    import sklearn

    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            model = next(line.split(":", 1)[1].strip() for line in f if "model name" in line)
    except (OSError, StopIteration):
        pass
    return {
        "cpu_count": os.cpu_count(),
        "cpu_model": model,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "sklearn": sklearn.__version__,
        "blas": _blas_info(),
        "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE"),
        "OPENBLAS_L2_SIZE": os.environ.get("OPENBLAS_L2_SIZE"),
        "total_memory_gb": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30,
    }


def print_tables(parity: list[dict[str, Any]], large: list[dict[str, Any]], quick: bool) -> None:
    """Readable summary with the targets."""

    def mark(ok: bool) -> str:
        return "" if quick else ("  ok" if ok else "  MISSED")

    if parity:
        r0 = parity[0]
        print(
            f"\n(a) graspologic ClassicalMDS vs PerspectiveSpace, n={r0['n']}, "
            f"m={r0['m']}, p={r0['p']} (target ratio >= {SPEED_TARGET:.0f}x)"
        )
        print(
            f"{'dtype':8} {'k':>4} {'solver':10} {'grasp s':>9} {'ours s':>8} "
            f"{'ratio':>8} {'dims g/o':>9} {'max rel diff':>13}"
        )
        for r in parity:
            dims = f"{r['graspologic_n_components_']}/{r['ours_n_components_']}"
            dims += "" if r["same_dimension"] else "!"
            print(
                f"{r['dtype']:8} {r['n_components']!s:>4} {r['solver']:10} "
                f"{r['graspologic_best_s']:9.2f} {r['ours_best_s']:8.3f} "
                f"{r['speed_ratio']:7.1f}x {dims:>9} {r['max_relative_difference']:13.2e}"
                f"{mark(r['speed_ratio'] >= SPEED_TARGET)}"
            )
        print(
            "max rel diff: max |ours - graspologic| / max |graspologic| over the leading axes "
            "both have, up to sign;\n'!': the elbow chose different dimensions; "
            "'auto' is the exact solver at this n."
        )
    if large:
        r0 = large[0]
        print(
            f"\n(b) PerspectiveSpace alone, n={r0['n']}, m={r0['m']}, p={r0['p']} float32, "
            f"input {r0['input_bytes'] / 1e9:.2f} GB (targets < {TIME_TARGET_S:.0f} s, "
            f"< {MEMORY_TARGET}x input)"
        )
        print(
            f"{'k':>4} {'solver':8} {'dims':>5} {'fit s':>8} {'peak extra GB':>14} {'x input':>8}"
        )
        for r in large:
            ok = r["fit_s"] < TIME_TARGET_S and r["peak_extra_over_input"] < MEMORY_TARGET
            print(
                f"{r['n_components']!s:>4} {r['solver']:8} {r['n_components_']:5d} "
                f"{r['fit_s']:8.2f} {r['peak_extra_bytes'] / 1e9:14.3f} "
                f"{r['peak_extra_over_input']:7.3f}x{mark(ok)}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small smoke run")
    parser.add_argument("--out", type=Path, default=None, help=f"JSON (default {DEFAULT_OUT})")
    parser.add_argument("--ref-python", type=Path, default=REF_PYTHON)
    parser.add_argument("--repeats", type=int, default=3, help="repeats of our fits")
    parser.add_argument("--ref-repeats", type=int, default=2, help="graspologic float32 repeats")
    parser.add_argument("--skip-parity", action="store_true")
    parser.add_argument("--skip-large", action="store_true")
    # Worker modes (internal).
    parser.add_argument("--reference-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--big-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--input", help=argparse.SUPPRESS)
    parser.add_argument("--output", help=argparse.SUPPRESS)
    parser.add_argument("--n-components", type=_n_components_arg, help=argparse.SUPPRESS)
    parser.add_argument("--solver", default="auto", help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--m", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--p", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=2, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.reference_worker:
        reference_worker(args)
        return
    if args.big_worker:
        big_worker(args)
        return

    sys.path.insert(0, str(ROOT))
    args.reference_info = {}
    with tempfile.TemporaryDirectory(prefix="bench_space_") as tmp:
        parity = [] if args.skip_parity else bench_parity(args, Path(tmp))
    large = [] if args.skip_large else bench_large(args)
    print_tables(parity, large, args.quick)

    results = {
        "quick": args.quick,
        "targets": {
            "speed_ratio_min": SPEED_TARGET,
            "large_fit_s_max": TIME_TARGET_S,
            "large_peak_extra_over_input_max": MEMORY_TARGET,
        },
        "machine": machine_info(),
        "reference": {k: args.reference_info.get(k) for k in ("versions", "blas")},
        "parity": parity,
        "large": large,
    }
    out = args.out if args.out is not None else (None if args.quick else DEFAULT_OUT)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=2) + "\n")
        print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
