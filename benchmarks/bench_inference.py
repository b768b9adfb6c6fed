"""Control charts, change points and the energy test on synthetic series with known answers.

- False alarms: Gaussian series without a change; the run length to the first alarm after
  the reference period or burn-in (ARL0, capped at ``--cap`` steps) per chart, against the
  theory for known parameters (Shewhart k = 3: 1 / (2·Φ(−3)) = 370.4; CUSUM slack 0.5,
  h 5: about 465; EWMA λ 0.2, k 3: about 500 (Montgomery's table of the asymptotic
  limits; the exact limits used here alarm a little earlier)).
- Detection: a step of 3σ, and a slow ramp (0.02σ per step) from t0 = 150, with the
  reference or burn-in of 100 steps (the authors' burn-in) and an adaptive window of 50:
  the share of series with an alarm within 100 steps of t0, and the median delay.
- Change points: a 3σ step at 150 of 300 (location error, p-value) and no change (the
  share with a change point at p <= 0.05).
- The energy test's size: ``--nulls`` replications of two samples of 6 data kernels from
  one distribution (shuffled apart), the rejection rate at α = 0.05 (target: within ±2
  percentage points); its power against a shift.

Writes ``benchmarks/results/inference.json``.

    python benchmarks/bench_inference.py [--reps 200] [--nulls 1000]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from scipy.stats import norm

from perspectives.analysis import (
    adaptive_chart,
    change_points,
    cusum_chart,
    energy_test,
    ewma_chart,
    fixed_chart,
)

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "inference.json"
REF, WINDOW, T0 = 100, 50, 150
THEORY_ARL0 = {"fixed": 1 / (2 * norm.sf(3)), "cusum": 465.0, "ewma": 500.0, "adaptive": None}


def chart(name: str, x: np.ndarray):
    if name == "fixed":
        return fixed_chart(x, reference=REF)
    if name == "adaptive":
        return adaptive_chart(x, window=WINDOW, burn_in=REF)
    if name == "ewma":
        return ewma_chart(x, reference=REF, lam=0.2)
    return cusum_chart(x, reference=REF)


def first_alarm_after(alarm: np.ndarray, start: int) -> int | None:
    hit = np.flatnonzero(alarm[start:])
    return None if len(hit) == 0 else int(hit[0])


def arl0(name: str, reps: int, cap: int, rng: np.random.Generator) -> dict:
    lengths = []
    for _ in range(reps):
        x = rng.normal(0, 1, REF + cap)
        run = first_alarm_after(chart(name, x)["alarm"].to_numpy(), REF)
        lengths.append(cap if run is None else run + 1)
    lengths = np.array(lengths)
    return {
        "arl0_mean": round(float(lengths.mean()), 1),
        "arl0_median": float(np.median(lengths)),
        "censored_share": round(float(np.mean(lengths >= cap)), 3),
        "theory_known_parameters": None
        if THEORY_ARL0[name] is None
        else round(THEORY_ARL0[name], 1),
    }


def detection(name: str, kind: str, reps: int, rng: np.random.Generator) -> dict:
    delays = []
    for _ in range(reps):
        x = rng.normal(0, 1, T0 + 100)
        x[T0:] += 3.0 if kind == "step" else 0.02 * np.arange(1, 101)
        # An alarm before t0 is a false one: count the first at or after t0.
        delay = first_alarm_after(chart(name, x)["alarm"].to_numpy(), T0)
        delays.append(delay)
    found = [d for d in delays if d is not None]
    return {
        "detected_within_100": round(len(found) / reps, 3),
        "median_delay": float(np.median(found)) if found else None,
    }


def change_point_study(reps: int, rng: np.random.Generator) -> dict:
    errors, pvals, false = [], [], 0
    for _ in range(reps):
        x = rng.normal(0, 1, 300)
        x[150:] += 3.0
        found = change_points(x, n_permutations=199, seed=int(rng.integers(2**31)))
        if len(found):
            best = found.iloc[int(np.argmin(np.abs(found["index"] - 150)))]
            errors.append(abs(int(best["index"]) - 150))
            pvals.append(float(best["p_value"]))
        quiet = change_points(rng.normal(0, 1, 300), n_permutations=199, seed=1)
        false += bool((quiet["p_value"] <= 0.05).any())
    return {
        "step_found_share": round(len(errors) / reps, 3),
        "step_location_error_median": float(np.median(errors)) if errors else None,
        "step_p_value_max": max(pvals) if pvals else None,
        "no_change_false_share": round(false / reps, 3),
    }


def test_size(nulls: int, rng: np.random.Generator, alpha: float = 0.05) -> dict:
    rejected, powered = 0, 0
    for i in range(nulls):
        pool = rng.normal(0, 1, (12, 4, 8))  # 12 replicate data kernels, 4 prompts x 8
        pool = pool[rng.permutation(12)]
        rejected += energy_test(pool[:6], pool[6:], n_permutations=199, seed=i).p_value <= alpha
        if i < nulls // 5:
            other = rng.normal(0.5, 1, (6, 4, 8))
            powered += energy_test(pool[:6], other, n_permutations=199, seed=i).p_value <= alpha
    rate = rejected / nulls
    return {
        "alpha": alpha,
        "nulls": nulls,
        "rejection_rate": round(rate, 4),
        "within_2pp": abs(rate - alpha) <= 0.02,
        "power_shift_0.5sd": round(powered / max(1, nulls // 5), 3),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=200)
    ap.add_argument("--cap", type=int, default=3000)
    ap.add_argument("--nulls", type=int, default=1000)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    start = time.perf_counter()
    charts = {}
    for name in ("fixed", "adaptive", "ewma", "cusum"):
        charts[name] = {
            "no_change": arl0(name, args.reps, args.cap, rng),
            "step_3sd": detection(name, "step", args.reps, rng),
            "ramp_0.02sd_per_step": detection(name, "ramp", args.reps, rng),
        }
        print(name, json.dumps(charts[name]), flush=True)
    cps = change_point_study(max(20, args.reps // 4), rng)
    print("change points", json.dumps(cps), flush=True)
    size = test_size(args.nulls, rng)
    print("energy test", json.dumps(size), flush=True)
    result = {
        "what": "control charts (reference/burn-in 100, adaptive window 50, k 3), change "
        "points (PELT + permutation) and the energy test on synthetic Gaussian data",
        "reps": args.reps,
        "cap": args.cap,
        "charts": charts,
        "change_points": cps,
        "energy_test": size,
        "seconds": round(time.perf_counter() - start, 1),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
