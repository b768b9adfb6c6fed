"""Benchmark the per-step cluster count (Gaussian mixtures, k by BIC) of a run analysis.

Clustering is nearly all of ``perspectives analyze``'s time. The baseline is the plain search:
every k in 1..min(9, n - 1) and every covariance type, with the libraries' default threads.
Ours skips the k that can never be chosen (each component needs 3 points) and fits on one
thread. Both run on the same perspectives tables (synthetic: n models drifting over T steps in
d dimensions, from a seeded generator; or ``--table`` a run's ``analysis/perspectives.parquet``),
optionally with ``--busy N`` processes spinning on the cores as during a sweep. Reports the
wall time of each, the ratio, and whether the cluster counts and labels are the same.

    python benchmarks/bench_analysis.py [--busy 2] [--table PATH]

Writes ``benchmarks/results/analysis.json``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture

from perspectives.analysis import clusters_over_time, z_columns
from perspectives.analysis.clusters import COVARIANCE_TYPES, _min_size

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "analysis.json"


def baseline_counts(table: pd.DataFrame, seed: int = 0) -> list[tuple[int, np.ndarray]]:
    """The plain search at every step: (k, labels), the same rule as ours without the cap."""
    cols = z_columns(table)
    out = []
    for _, snap in table.sort_values(["t", "model"]).groupby("t", sort=True):
        x = snap[cols].to_numpy(float)
        best = None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            for k in range(1, min(9, len(x) - 1) + 1):
                for cov in COVARIANCE_TYPES:
                    gm = GaussianMixture(
                        k, covariance_type=cov, n_init=3, random_state=seed, reg_covar=1e-6
                    ).fit(x)
                    labels = gm.predict(x)
                    smallest = np.bincount(labels, minlength=k).min()
                    if k > 1 and smallest < _min_size(cov, x.shape[1]):
                        continue
                    bic = float(gm.bic(x))
                    if best is None or bic < best[0] - 1e-9:
                        best = (bic, labels)
        out.append(np.unique(best[1], return_inverse=True)[1])
    return [(int(lab.max() + 1), lab) for lab in out]


def synthetic(n: int, steps: int, d: int, seed: int) -> pd.DataFrame:
    """n models drifting together, with noise, in d dimensions, over ``steps`` steps."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, d))
    rows = []
    for t in range(steps):
        z = z + 0.1 + 0.3 * rng.normal(size=(n, d))
        for i in range(n):
            coords = {f"z{j + 1}": z[i, j] for j in range(d)}
            rows.append({"t": t, "model": f"m{i}", "class": "c", **coords})
    return pd.DataFrame(rows)


def _spin(stop) -> None:
    while not stop.is_set():
        sum(i * i for i in range(10_000))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--table", type=Path, help="a run's analysis/perspectives.parquet")
    parser.add_argument("--busy", type=int, default=0, help="processes keeping the cores busy")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    tables = {
        "10 models x 21 steps, d=3": synthetic(10, 21, 3, 0),
        "25 models x 21 steps, d=3": synthetic(25, 21, 3, 1),
    }
    if args.table:
        tables[f"run table {args.table.parent.parent.name}"] = pd.read_parquet(args.table)
    stop = mp.Event()
    spinners = [mp.Process(target=_spin, args=(stop,)) for _ in range(args.busy)]
    for p in spinners:
        p.start()
    results = {}
    try:
        for name, table in tables.items():
            t0 = time.perf_counter()
            base = baseline_counts(table)
            t1 = time.perf_counter()
            ours, labels = clusters_over_time(table)
            t2 = time.perf_counter()
            same = [k for k, _ in base] == ours["n_clusters"].tolist() and all(
                np.array_equal(lab, g["cluster"].to_numpy())
                for (_, lab), (_, g) in zip(base, labels.groupby("t", sort=True), strict=True)
            )
            results[name] = {
                "baseline_s": round(t1 - t0, 3),
                "ours_s": round(t2 - t1, 3),
                "speedup": round((t1 - t0) / (t2 - t1), 1),
                "same_clusters": bool(same),
            }
            print(
                f"{name}: baseline {t1 - t0:.2f} s, ours {t2 - t1:.2f} s, "
                f"{(t1 - t0) / (t2 - t1):.1f}x, same clusters: {same}",
                flush=True,
            )
    finally:
        stop.set()
        for p in spinners:
            p.join()
    record = {
        "busy_processes": args.busy,
        "cpus": len(os.sched_getaffinity(0)),
        "platform": platform.platform(),
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
