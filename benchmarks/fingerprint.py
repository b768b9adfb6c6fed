"""Golden fingerprints of two small runs: proof that a refactor did not change behaviour.

Runs, through the command line only (so the same script works across internal moves):

- ``tiny``: a 2-step system of four models (two with an initial fine-tune) on a randomly
  initialised 2-layer model with the bundled tokenizer;
- ``quickstart``: the bundled quickstart preset's t = 0..1 on the bundled model.

and prints a SHA-256 of each run's responses and edges tables (every part, in step order; the
events table holds timings and is left out). Same code, same machine: same hashes. Results go
to ``benchmarks/results/fingerprint.json``.

    python benchmarks/fingerprint.py [--only tiny|quickstart] [--label before|after]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd
import yaml

from perspectives.models.tiny import write_tiny_model

RESULTS = Path(__file__).parent / "results" / "fingerprint.json"


def tiny_config(model: Path) -> dict:
    return {
        "name": "fingerprint-tiny",
        "seed": 3,
        "steps": 2,
        "question_bank": "neutral",
        "groups": [
            {
                "name": "a",
                "count": 2,
                "model": str(model),
                "init": {"bank": "neutral", "sample_size": 4, "epochs": 1, "lr": 1e-3},
            },
            {"name": "b", "count": 2, "model": str(model)},
        ],
        "interaction": {"questions": 3, "sampling": {"max_new_tokens": 6}},
        "update": {"lr": 1e-3, "batch_size": 4, "mixed_precision": "no"},
        "evaluation": {"n_prompts": 4, "sampling": {"do_sample": False, "max_new_tokens": 6}},
        "communication": {"type": "complete"},
    }


def table_hash(run: Path) -> dict:
    out = {}
    for table in ("responses", "edges"):
        parts = sorted((run / "tables" / table).glob("step-*.parquet"))
        df = pd.concat([pd.read_parquet(p) for p in parts], ignore_index=True)
        digest = hashlib.sha256(pd.util.hash_pandas_object(df, index=False).values.tobytes())
        out[table] = {"rows": len(df), "sha256": digest.hexdigest()}
    return out


def run_cli(args: list[str], env_cache: Path) -> None:
    import os

    env = {**os.environ, "PERSPECTIVES_CACHE": str(env_cache)}
    cmd = [sys.executable, "-m", "perspectives.cli", *args]
    subprocess.run(cmd, check=True, env=env)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", choices=["tiny", "quickstart"])
    ap.add_argument("--label", default="current")
    args = ap.parse_args()
    found = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        cache = tmp / "cache"
        if args.only in (None, "tiny"):
            model = write_tiny_model(tmp / "tiny-model")
            cfg = tmp / "tiny.yaml"
            cfg.write_text(yaml.safe_dump(tiny_config(model)))
            run_cli(["run", str(cfg), "--out", str(tmp / "tiny")], cache)
            found["tiny"] = table_hash(tmp / "tiny")
        if args.only in (None, "quickstart"):
            run_cli(["run", "quickstart", "--set", "steps=1", "--out", str(tmp / "qs")], cache)
            found["quickstart"] = table_hash(tmp / "qs")
    print(json.dumps(found, indent=2))
    record = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    record.setdefault(args.label, {}).update(found)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
