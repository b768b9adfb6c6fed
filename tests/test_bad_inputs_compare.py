"""Bad inputs to `perspectives compare`, its responses / prompt / YAML files, and the question
banks (through `perspectives init --bank`): each one clean error line that names the file and
the column or field, exit code 2, no traceback, and no file that existed before changed.

Every case fails before any model or the bundled embedder loads; the few that must embed to
reach the check (an output over an input) use the torch-free ``hashing`` embedder.
"""

from __future__ import annotations

import io
import json
import os
import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from badinput import Case, check_case, invoke

from perspectives.errors import InputError

# --------------------------------------------------------------------------- file builders

RESPONSE_ROWS = [
    {"model": f"m{i}", "prompt_id": f"q{j}", "response": f"answer {i} {j}", "class": "ab"[i % 2]}
    for i in range(3)
    for j in range(2)
]


def rows(**changes) -> list[dict]:
    """RESPONSE_ROWS with ``{row}__{column}=value`` changes (``None`` drops the key)."""
    out = [dict(r) for r in RESPONSE_ROWS]
    for key, value in changes.items():
        row, _, column = key.partition("__")
        out[int(row.removeprefix("r"))][column] = value
    return out


def csv_text(records: list[dict], drop: tuple[str, ...] = ()) -> str:
    return pd.DataFrame(records).drop(columns=list(drop)).to_csv(index=False)


def jsonl_text(records: list[dict]) -> str:
    return "".join(json.dumps(r) + "\n" for r in records)


def parquet_bytes(frame: pd.DataFrame) -> bytes:
    buf = io.BytesIO()
    frame.to_parquet(buf, index=False)
    return buf.getvalue()


GOOD_CSV = csv_text(RESPONSE_ROWS)
GOOD_PARQUET = parquet_bytes(pd.DataFrame(RESPONSE_ROWS))
LATIN1 = "model,prompt_id,response\nm0,q0,caf\xe9\nm1,q0,na\xefve\n".encode("latin-1")


def compare(source: str, *extra: str) -> list[str]:
    return ["compare", source, "--out", "run", "-q", *extra]


def hashing(source: str, *extra: str) -> list[str]:
    return ["compare", source, "-q", "--embedder", "hashing", *extra]


def model_yaml(**over) -> str:
    """A compare YAML of three fake models (torch-free) on two inline prompts."""
    cfg = {
        "prompts": ["Will it rain?", "Name a colour."],
        "generation": {"max_new_tokens": 6},
        "models": [
            {"name": f"f{i}", "backend": "fake", "model": "fake", "labels": {"class": "ab"[i % 2]}}
            for i in range(3)
        ],
    }
    for key, value in over.items():
        node = cfg
        parts = key.split(".")
        for part in parts[:-1]:
            node = node[int(part)] if isinstance(node, list) else node[part]
        last = parts[-1]
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value
    return yaml.safe_dump(cfg, sort_keys=False)


def label(i: int, labels: dict) -> dict:
    return {f"models.{i}.labels": labels}


# --------------------------------------------------------------------------- responses files

CSV_CASES = [
    Case(
        "csv-no-response-column",
        compare("r.csv"),
        ["r.csv", "response", "missing"],
        {"r.csv": csv_text(RESPONSE_ROWS, drop=("response",))},
    ),
    Case(
        "csv-no-model-column",
        compare("r.csv"),
        ["r.csv", "model", "missing"],
        {"r.csv": csv_text(RESPONSE_ROWS, drop=("model",))},
    ),
    Case(
        "csv-no-prompt-id-column",
        compare("r.csv"),
        ["r.csv", "prompt_id"],
        {"r.csv": csv_text(RESPONSE_ROWS, drop=("prompt_id",))},
    ),
    Case("csv-empty-file", compare("r.csv"), ["r.csv", "empty"], {"r.csv": ""}),
    Case("csv-only-whitespace", compare("r.csv"), ["r.csv", "empty"], {"r.csv": "\n  \n"}),
    Case(
        "csv-header-only",
        compare("r.csv"),
        ["r.csv", "no rows"],
        {"r.csv": "model,prompt_id,response\n"},
    ),
    Case("csv-not-utf8", compare("r.csv"), ["r.csv", "utf-8", "line 2"], {"r.csv": LATIN1}),
    Case(
        "csv-ragged-row",
        compare("r.csv"),
        ["r.csv", "csv"],
        {"r.csv": GOOD_CSV + "m9,q0,extra,a,surplus,more\n"},
    ),
    Case(
        "csv-repeated-header",
        compare("r.csv"),
        ["r.csv", "model", "repeats"],
        {"r.csv": "model,prompt_id,response,model\nm0,q0,a,m1\n"},
    ),
    Case(
        "csv-missing-answer-cell",
        compare("r.csv"),
        ["r.csv", "response", "row 3"],
        {"r.csv": csv_text(rows(r3__response=None))},
    ),
    Case(
        "csv-blank-answer",
        compare("r.csv"),
        ["r.csv", "response", "empty"],
        {"r.csv": csv_text(rows(r2__response="   "))},
    ),
    Case(
        "csv-missing-model-cell",
        compare("r.csv"),
        ["r.csv", "model", "row 4"],
        {"r.csv": csv_text(rows(r4__model=None))},
    ),
    Case(
        "csv-blank-model",
        compare("r.csv"),
        ["r.csv", "model", "empty"],
        {"r.csv": csv_text(rows(r1__model="  "))},
    ),
    Case(
        "csv-replicate-abc",
        compare("r.csv"),
        ["r.csv", "replicate", "abc"],
        {
            "r.csv": csv_text(
                [{**r, "replicate": "abc" if i == 2 else 0} for i, r in enumerate(RESPONSE_ROWS)]
            )
        },
    ),
    Case(
        "csv-replicate-negative",
        compare("r.csv"),
        ["r.csv", "replicate", "-1"],
        {
            "r.csv": csv_text(
                [{**r, "replicate": -1 if i == 0 else 0} for i, r in enumerate(RESPONSE_ROWS)]
            )
        },
    ),
    Case(
        "csv-replicate-fraction",
        compare("r.csv"),
        ["r.csv", "replicate", "1.5"],
        {
            "r.csv": csv_text(
                [{**r, "replicate": 1.5 if i == 5 else 0} for i, r in enumerate(RESPONSE_ROWS)]
            )
        },
    ),
    Case(
        "csv-replicate-empty-cell",
        compare("r.csv"),
        ["r.csv", "replicate", "row 1"],
        {
            "r.csv": csv_text(
                [{**r, "replicate": None if i == 1 else 0} for i, r in enumerate(RESPONSE_ROWS)]
            )
        },
    ),
    Case(
        "csv-duplicate-rows",
        compare("r.csv"),
        ["r.csv", "duplicate", "m0"],
        {"r.csv": csv_text([*RESPONSE_ROWS, RESPONSE_ROWS[0]])},
    ),
    Case(
        "csv-label-z1",
        compare("r.csv"),
        ["r.csv", "z1", "reserved"],
        {"r.csv": csv_text([{**r, "z1": 1} for r in RESPONSE_ROWS])},
    ),
    Case(
        "csv-label-z12",
        compare("r.csv"),
        ["r.csv", "z12", "reserved"],
        {"r.csv": csv_text([{**r, "z12": "x"} for r in RESPONSE_ROWS])},
    ),
    Case(
        "csv-label-varies",
        compare("r.csv"),
        ["r.csv", "class", "varies"],
        {"r.csv": csv_text(rows(r1__class="zz"))},
    ),
    Case(
        "csv-one-model",
        compare("r.csv"),
        ["r.csv", "model", "at least 2"],
        {"r.csv": csv_text([r for r in RESPONSE_ROWS if r["model"] == "m0"])},
    ),
    Case(
        "csv-incomplete-model",
        compare("r.csv"),
        ["r.csv", "prompt_id", "lacks"],
        {"r.csv": csv_text(RESPONSE_ROWS[:-1])},
    ),
    Case(
        "csv-time-empty-cell",
        compare("r.csv"),
        ["r.csv", "time", "row 2"],
        {
            "r.csv": csv_text(
                [{**r, "time": None if i == 2 else 0} for i, r in enumerate(RESPONSE_ROWS)]
            )
        },
    ),
]

JSONL_CASES = [
    Case(
        "jsonl-answer-list",
        compare("r.jsonl"),
        ["r.jsonl", "response", "non-text"],
        {"r.jsonl": jsonl_text(rows(r0__response=["a", "b"]))},
    ),
    Case(
        "jsonl-answer-true",
        compare("r.jsonl"),
        ["r.jsonl", "response", "true"],
        {"r.jsonl": jsonl_text(rows(r1__response=True))},
    ),
    Case(
        "jsonl-answer-number",
        compare("r.jsonl"),
        ["r.jsonl", "response", "42"],
        {"r.jsonl": jsonl_text(rows(r2__response=42))},
    ),
    Case(
        "jsonl-answer-object",
        compare("r.jsonl"),
        ["r.jsonl", "response", "non-text"],
        {"r.jsonl": jsonl_text(rows(r3__response={"text": "hi"}))},
    ),
    Case(
        "jsonl-answer-null",
        compare("r.jsonl"),
        ["r.jsonl", "response", "missing"],
        {"r.jsonl": jsonl_text(rows(r4__response=None))},
    ),
    Case(
        "jsonl-model-null",
        compare("r.jsonl"),
        ["r.jsonl", "model", "row 0"],
        {"r.jsonl": jsonl_text(rows(r0__model=None))},
    ),
    Case(
        "jsonl-model-fraction",
        compare("r.jsonl"),
        ["r.jsonl", "model", "1.5"],
        {"r.jsonl": jsonl_text(rows(r3__model=1.5))},
    ),
    Case(
        "jsonl-model-bool",
        compare("r.jsonl"),
        ["r.jsonl", "model", "bool"],
        {"r.jsonl": jsonl_text(rows(r3__model=False))},
    ),
    Case(
        "jsonl-model-mixed-kinds",
        compare("r.jsonl"),
        ["r.jsonl", "model", "mixes"],
        {"r.jsonl": jsonl_text(rows(r0__model=7, r1__model=7))},
    ),
    Case(
        "jsonl-prompt-id-list",
        compare("r.jsonl"),
        ["r.jsonl", "prompt_id", "row 1"],
        {"r.jsonl": jsonl_text(rows(r1__prompt_id=["q1"]))},
    ),
    Case(
        "jsonl-replicate-abc",
        compare("r.jsonl"),
        ["r.jsonl", "replicate", "abc"],
        {
            "r.jsonl": jsonl_text(
                [{**r, "replicate": "abc" if i == 4 else 0} for i, r in enumerate(RESPONSE_ROWS)]
            )
        },
    ),
    Case(
        "jsonl-replicate-true",
        compare("r.jsonl"),
        ["r.jsonl", "replicate", "true"],
        {"r.jsonl": jsonl_text([{**r, "replicate": True} for r in RESPONSE_ROWS])},
    ),
    Case(
        "jsonl-invalid-line",
        compare("r.jsonl"),
        ["r.jsonl", "line 3", "json"],
        {"r.jsonl": jsonl_text(RESPONSE_ROWS[:2]) + '{"model": "m1", \n'},
    ),
    Case(
        "jsonl-line-not-object",
        compare("r.jsonl"),
        ["r.jsonl", "line 1", "object"],
        {"r.jsonl": '["m0", "q0", "answer"]\n'},
    ),
    Case(
        "jsonl-repeated-key",
        compare("r.jsonl"),
        ["r.jsonl", "response", "repeats"],
        {"r.jsonl": '{"model": "m0", "prompt_id": "q0", "response": "a", "response": "b"}\n'},
    ),
    Case(
        "jsonl-not-utf8",
        compare("r.jsonl"),
        ["r.jsonl", "utf-8"],
        {"r.jsonl": '{"model": "m0", "response": "caf\xe9"}\n'.encode("latin-1")},
    ),
    Case("jsonl-empty", compare("r.jsonl"), ["r.jsonl", "empty"], {"r.jsonl": b""}),
    Case("jsonl-blank-lines-only", compare("r.jsonl"), ["r.jsonl", "empty"], {"r.jsonl": "\n\n\n"}),
    Case(
        "jsonl-label-list",
        compare("r.jsonl"),
        ["r.jsonl", "class", "row 2"],
        {"r.jsonl": jsonl_text(rows(r2__class=["a"]))},
    ),
    Case(
        "jsonl-label-mixed",
        compare("r.jsonl"),
        ["r.jsonl", "class", "mixes"],
        {
            "r.jsonl": jsonl_text(
                [{**r, "class": 1 if r["model"] == "m1" else "a"} for r in RESPONSE_ROWS]
            )
        },
    ),
    Case(
        "jsonl-time-null",
        compare("r.jsonl"),
        ["r.jsonl", "time", "missing"],
        {
            "r.jsonl": jsonl_text(
                [{**r, "time": None if i == 3 else 1} for i, r in enumerate(RESPONSE_ROWS)]
            )
        },
    ),
    Case(
        "jsonl-time-list",
        compare("r.jsonl"),
        ["r.jsonl", "time", "row 0"],
        {"r.jsonl": jsonl_text([{**r, "time": [0]} for r in RESPONSE_ROWS])},
    ),
    Case(
        "jsonl-prompt-not-text",
        compare("r.jsonl"),
        ["r.jsonl", "prompt", "row 0"],
        {"r.jsonl": jsonl_text([{**r, "prompt": 5} for r in RESPONSE_ROWS])},
    ),
    Case(
        "jsonl-label-z1",
        compare("r.jsonl"),
        ["r.jsonl", "z1"],
        {"r.jsonl": jsonl_text([{**r, "z1": 0.5} for r in RESPONSE_ROWS])},
    ),
    Case(
        "jsonl-no-response-key",
        compare("r.jsonl"),
        ["r.jsonl", "response", "missing"],
        {
            "r.jsonl": jsonl_text(
                [{k: v for k, v in r.items() if k != "response"} for r in RESPONSE_ROWS]
            )
        },
    ),
]

PARQUET_CASES = [
    Case(
        "parquet-garbage",
        compare("r.parquet"),
        ["r.parquet", "parquet"],
        {"r.parquet": b"PAR1 this is not parquet at all PAR1"},
    ),
    Case("parquet-empty-file", compare("r.parquet"), ["r.parquet", "empty"], {"r.parquet": b""}),
    Case(
        "parquet-truncated",
        compare("r.parquet"),
        ["r.parquet", "parquet"],
        {"r.parquet": GOOD_PARQUET[: len(GOOD_PARQUET) // 2]},
    ),
    Case(
        "parquet-answer-int",
        compare("r.parquet"),
        ["r.parquet", "response", "non-text"],
        {"r.parquet": parquet_bytes(pd.DataFrame(rows()).assign(response=range(6)))},
    ),
    Case(
        "parquet-answer-list",
        compare("r.parquet"),
        ["r.parquet", "response", "non-text"],
        {"r.parquet": parquet_bytes(pd.DataFrame(rows()).assign(response=[["x"]] * 6))},
    ),
    Case(
        "parquet-answer-bool",
        compare("r.parquet"),
        ["r.parquet", "response", "true"],
        {"r.parquet": parquet_bytes(pd.DataFrame(rows()).assign(response=[True] * 6))},
    ),
    Case(
        "parquet-answer-bytes",
        compare("r.parquet"),
        ["r.parquet", "response", "non-text"],
        {"r.parquet": parquet_bytes(pd.DataFrame(rows()).assign(response=[b"x"] * 6))},
    ),
    Case(
        "parquet-model-nan",
        compare("r.parquet"),
        ["r.parquet", "model", "row 2"],
        {
            "r.parquet": parquet_bytes(
                pd.DataFrame(rows()).assign(model=["m0", "m0", None, "m1", "m2", "m2"])
            )
        },
    ),
    Case(
        "parquet-replicate-fraction",
        compare("r.parquet"),
        ["r.parquet", "replicate", "0.5"],
        {"r.parquet": parquet_bytes(pd.DataFrame(rows()).assign(replicate=0.5))},
    ),
    Case(
        "parquet-no-model-column",
        compare("r.parquet"),
        ["r.parquet", "model"],
        {"r.parquet": parquet_bytes(pd.DataFrame(rows()).drop(columns="model"))},
    ),
    Case(
        "parquet-no-rows",
        compare("r.parquet"),
        ["r.parquet", "no rows"],
        {"r.parquet": parquet_bytes(pd.DataFrame(rows()).iloc[:0])},
    ),
    Case(
        "parquet-label-z3",
        compare("r.parquet"),
        ["r.parquet", "z3"],
        {"r.parquet": parquet_bytes(pd.DataFrame(rows()).assign(z3="x"))},
    ),
    Case(
        "parquet-time-nan",
        compare("r.parquet"),
        ["r.parquet", "time", "row 0"],
        {"r.parquet": parquet_bytes(pd.DataFrame(rows()).assign(time=np.nan))},
    ),
]

OTHER_FILE_CASES = [
    Case("unknown-suffix", compare("r.txt"), ["r.txt", "unknown file type"], {"r.txt": GOOD_CSV}),
    Case("xlsx-suffix", compare("r.xlsx"), ["r.xlsx", "unknown file type"], {"r.xlsx": b"PK"}),
    Case("missing-file", compare("nope.csv"), ["nope.csv", "not found"]),
    Case(
        "source-is-folder",
        compare("d.csv"),
        ["d.csv", "folder"],
        setup=lambda tmp: (tmp / "d.csv").mkdir(),
    ),
]

# --------------------------------------------------------------------------- options


def _dir_named(name: str):
    def setup(tmp: Path) -> None:
        (tmp / "run" / name).mkdir(parents=True)
        (tmp / "run" / name / "keep.txt").write_text("mine")

    return setup


OPTION_CASES = [
    Case(
        "n-components-zero",
        compare("r.csv", "--n-components", "0"),
        ["n_components", "0"],
        {"r.csv": GOOD_CSV},
    ),
    Case(
        "n-components-negative",
        compare("r.csv", "--n-components", "-1"),
        ["n_components", "-1"],
        {"r.csv": GOOD_CSV},
    ),
    Case(
        "n-components-too-many",
        compare("r.csv", "--n-components", "5"),
        ["r.csv", "n_components", "at most 2"],
        {"r.csv": GOOD_CSV},
    ),
    Case(
        "color-by-unknown",
        compare("r.csv", "--color-by", "nosuch"),
        ["r.csv", "--color-by", "nosuch"],
        {"r.csv": GOOD_CSV},
    ),
    Case(
        "color-by-not-a-label",
        hashing("r.csv", "--out", "run", "--color-by", "replicate"),
        ["r.csv", "--color-by", "replicate"],
        {"r.csv": csv_text([{**r, "replicate": 0} for r in RESPONSE_ROWS])},
    ),
    Case(
        "embedder-nonsense",
        compare("r.csv", "--embedder", "nonsense"),
        ["embedder", "nonsense"],
        {"r.csv": GOOD_CSV},
    ),
    Case(
        "embedder-missing-folder",
        compare("r.csv", "--embedder", "./no/such/model"),
        ["embedder", "./no/such/model"],
        {"r.csv": GOOD_CSV},
    ),
    Case(
        "embedder-is-a-file",
        compare("r.csv", "--embedder", "r.csv"),
        ["embedder", "r.csv", "file"],
        {"r.csv": GOOD_CSV},
    ),
    Case(
        "embedder-empty-folder",
        compare("r.csv", "--embedder", "emb"),
        ["embedder", "emb", "folder"],
        {"r.csv": GOOD_CSV, "emb/readme.txt": "empty"},
    ),
    Case("embedder-blank", compare("r.csv", "--embedder", " "), ["embedder"], {"r.csv": GOOD_CSV}),
    Case(
        "embedding-url-not-http",
        compare("r.csv", "--embedding-url", "localhost:8000"),
        ["embedding_url", "localhost:8000"],
        {"r.csv": GOOD_CSV},
    ),
    Case(
        "out-is-a-file",
        hashing("r.csv", "--out", "out.txt"),
        ["out.txt", "--out", "file"],
        {"r.csv": GOOD_CSV, "out.txt": "not a folder"},
    ),
    Case(
        "out-below-a-file",
        hashing("r.csv", "--out", "f.txt/run"),
        ["f.txt", "--out"],
        {"r.csv": GOOD_CSV, "f.txt": "a file"},
    ),
    Case(
        "out-over-input-csv",
        hashing("perspectives.csv", "--out", "."),
        ["perspectives.csv", "--out", "overwrite"],
        {"perspectives.csv": GOOD_CSV},
    ),
    Case(
        "out-over-input-parquet",
        hashing("perspectives.parquet", "--out", "{tmp}"),
        ["perspectives.parquet", "--out", "overwrite"],
        {"perspectives.parquet": GOOD_PARQUET},
    ),
    Case(
        "out-over-input-subfolder",
        hashing("data/perspectives.csv", "--out", "data/"),
        ["perspectives.csv", "--out", "overwrite"],
        {"data/perspectives.csv": GOOD_CSV},
    ),
    Case(
        "out-in-a-run-folder",
        hashing("r.csv", "--out", "myrun/analysis"),
        ["myrun", "--out", "run or sweep folder", "analysis/"],
        {"r.csv": GOOD_CSV, "myrun/run.json": "{}", "myrun/analysis/summary.json": "{}"},
    ),
    Case(
        "out-is-a-sweep-folder",
        hashing("r.csv", "--out", "sweep"),
        ["sweep", "--out", "run or sweep folder"],
        {"r.csv": GOOD_CSV, "sweep/sweep.json": "{}"},
    ),
    Case(
        "out-output-is-a-folder",
        hashing("r.csv", "--out", "run"),
        ["run", "--out", "space.png"],
        {"r.csv": GOOD_CSV},
        setup=_dir_named("space.png"),
    ),
]

# --------------------------------------------------------------------------- compare YAMLs


def yaml_case(id: str, expect: list[str], text: str | bytes, *extra: str, **files) -> Case:
    return Case(id, compare("m.yaml", *extra), ["m.yaml", *expect], {"m.yaml": text, **files})


YAML_CASES = [
    yaml_case("yaml-not-utf8", ["utf-8"], "prompts: [caf\xe9]\n".encode("latin-1")),
    yaml_case("yaml-empty", ["mapping"], ""),
    yaml_case("yaml-bad-syntax", ["yaml"], "prompts: [a, b\nmodels: {"),
    yaml_case("yaml-top-level-list", ["mapping"], "- a\n- b\n"),
    yaml_case("yaml-no-prompts", ["prompts"], model_yaml().replace("prompts:", "promts:")),
    yaml_case(
        "yaml-one-model",
        ["models"],
        yaml.safe_dump({"prompts": ["a?"], "models": [{"name": "x", "backend": "fake"}]}),
    ),
    yaml_case("yaml-unknown-key", ["colour"], model_yaml(colour="red")),
    yaml_case(
        "yaml-max-new-tokens-huge",
        ["generation.max_new_tokens", "8192"],
        model_yaml(**{"generation.max_new_tokens": 100_000_000}),
    ),
    yaml_case(
        "yaml-max-new-tokens-zero",
        ["generation.max_new_tokens"],
        model_yaml(**{"generation.max_new_tokens": 0}),
    ),
    yaml_case(
        "yaml-max-new-tokens-bool",
        ["generation.max_new_tokens", "boolean"],
        model_yaml(**{"generation.max_new_tokens": True}),
    ),
    yaml_case(
        "yaml-max-new-tokens-text",
        ["generation.max_new_tokens", "text"],
        model_yaml(**{"generation.max_new_tokens": "48"}),
    ),
    yaml_case(
        "yaml-temperature-zero",
        ["generation.temperature"],
        model_yaml(**{"generation.temperature": 0}),
    ),
    yaml_case(
        "yaml-temperature-negative",
        ["generation.temperature"],
        model_yaml(**{"generation.temperature": -1.0}),
    ),
    yaml_case(
        "yaml-temperature-inf",
        ["generation.temperature", "finite"],
        model_yaml(**{"generation.temperature": float("inf")}),
    ),
    yaml_case(
        "yaml-temperature-nan",
        ["generation.temperature"],
        model_yaml(**{"generation.temperature": float("nan")}),
    ),
    yaml_case(
        "yaml-top-p-above-one", ["generation.top_p"], model_yaml(**{"generation.top_p": 1.5})
    ),
    yaml_case("yaml-top-k-negative", ["generation.top_k"], model_yaml(**{"generation.top_k": -1})),
    yaml_case(
        "yaml-replicates-zero",
        ["generation.replicates"],
        model_yaml(**{"generation.replicates": 0}),
    ),
    yaml_case(
        "yaml-replicates-huge",
        ["generation.replicates"],
        model_yaml(**{"generation.replicates": 10**9}),
    ),
    yaml_case(
        "yaml-batch-size-zero",
        ["generation.batch_size"],
        model_yaml(**{"generation.batch_size": 0}),
    ),
    yaml_case(
        "yaml-dtype-unknown",
        ["generation.dtype", "banana"],
        model_yaml(**{"generation.dtype": "banana"}),
    ),
    yaml_case(
        "yaml-do-sample-maybe",
        ["generation.do_sample"],
        model_yaml(**{"generation.do_sample": "maybe"}),
    ),
    yaml_case(
        "yaml-label-model",
        ["models.0.labels", "model", "reserved"],
        model_yaml(**label(0, {"model": "x"})),
    ),
    yaml_case(
        "yaml-label-response",
        ["models.1.labels", "response", "reserved"],
        model_yaml(**label(1, {"response": "x"})),
    ),
    yaml_case(
        "yaml-label-z1", ["models.2.labels", "z1", "reserved"], model_yaml(**label(2, {"z1": 0.5}))
    ),
    yaml_case("yaml-label-time", ["models.0.labels", "time"], model_yaml(**label(0, {"time": 3}))),
    yaml_case(
        "yaml-label-nan",
        ["models.0.labels", "finite"],
        model_yaml(**label(0, {"class": float("nan")})),
    ),
    yaml_case(
        "yaml-label-list",
        ["models.0.labels", "class", "list"],
        model_yaml(**label(0, {"class": ["a"]})),
    ),
    yaml_case(
        "yaml-labels-differ", ["models", "same labels"], model_yaml(**label(1, {"clas": "b"}))
    ),
    yaml_case(
        "yaml-label-kinds-differ",
        ["models", "class", "one kind"],
        model_yaml(**label(2, {"class": 3})),
    ),
    yaml_case(
        "yaml-duplicate-names", ["models", "unique", "f0"], model_yaml(**{"models.1.name": "f0"})
    ),
    yaml_case("yaml-blank-name", ["models.0.name"], model_yaml(**{"models.0.name": "  "})),
    yaml_case(
        "yaml-unknown-backend",
        ["models.0.backend", "vllm"],
        model_yaml(**{"models.0.backend": "vllm"}),
    ),
    yaml_case(
        "yaml-model-folder-missing",
        ["models.1.model", "no such model folder"],
        model_yaml(**{"models.1.backend": "hf", "models.1.model": "./no/such/model"}),
    ),
    yaml_case(
        "yaml-prompt-format",
        ["models.0.prompt_format"],
        model_yaml(**{"models.0.prompt_format": "alpaca"}),
    ),
    yaml_case("yaml-seed-text", ["models.0.seed", "text"], model_yaml(**{"models.0.seed": "abc"})),
    yaml_case("yaml-prompts-empty-list", ["prompts", "empty"], model_yaml(prompts=[])),
    yaml_case("yaml-prompts-blank", ["prompts", "prompt 1"], model_yaml(prompts=["a?", " "])),
    yaml_case("yaml-prompts-repeated", ["prompts", "repeats"], model_yaml(prompts=["a?", "a?"])),
    yaml_case("yaml-prompts-not-text", ["prompts"], model_yaml(prompts=[1, 2])),
    yaml_case(
        "yaml-prompts-unknown-name",
        ["prompts", "figure2_relevent"],
        model_yaml(prompts="figure2_relevent"),
    ),
    Case(
        "yaml-is-a-folder",
        compare("m.yaml"),
        ["m.yaml", "folder"],
        setup=lambda tmp: (tmp / "m.yaml").mkdir(),
    ),
    Case("yaml-missing", compare("m.yaml"), ["m.yaml", "not found"]),
]

# Prompt files named by a compare YAML (or --prompts): read by data.prompts.load_prompts.
PROMPT_FILE_CASES = [
    yaml_case("prompts-txt-missing", [], model_yaml(prompts="nope.txt")),
    Case(
        "prompts-txt-not-utf8",
        compare("m.yaml"),
        ["p.txt", "utf-8"],
        {"m.yaml": model_yaml(prompts="p.txt"), "p.txt": "caf\xe9?\n".encode("latin-1")},
    ),
    Case(
        "prompts-txt-empty",
        compare("m.yaml"),
        ["p.txt", "no prompts"],
        {"m.yaml": model_yaml(prompts="p.txt"), "p.txt": "\n\n"},
    ),
    Case(
        "prompts-csv-no-prompt-column",
        compare("m.yaml"),
        ["p.csv", "prompt"],
        {"m.yaml": model_yaml(prompts="p.csv"), "p.csv": "text\nhello?\n"},
    ),
    Case(
        "prompts-csv-duplicates",
        compare("m.yaml"),
        ["p.csv", "prompt", "duplicate"],
        {"m.yaml": model_yaml(prompts="p.csv"), "p.csv": "prompt\nSame?\nSame?\n"},
    ),
    Case(
        "prompts-csv-duplicate-ids",
        compare("m.yaml"),
        ["p.csv", "prompt_id", "duplicate"],
        {"m.yaml": model_yaml(prompts="p.csv"), "p.csv": "prompt_id,prompt\na,One?\na,Two?\n"},
    ),
    Case(
        "prompts-csv-blank-prompt",
        compare("m.yaml"),
        ["p.csv", "prompt", "row 1"],
        {"m.yaml": model_yaml(prompts="p.csv"), "p.csv": 'prompt_id,prompt\na,One?\nb," "\n'},
    ),
    Case(
        "prompts-csv-header-only",
        compare("m.yaml"),
        ["p.csv", "no prompts"],
        {"m.yaml": model_yaml(prompts="p.csv"), "p.csv": "prompt_id,prompt\n"},
    ),
    Case(
        "prompts-jsonl-number",
        compare("m.yaml"),
        ["p.jsonl", "prompt", "row 1"],
        {"m.yaml": model_yaml(prompts="p.jsonl"), "p.jsonl": '{"prompt": "One?"}\n{"prompt": 2}\n'},
    ),
    Case(
        "prompts-jsonl-id-null",
        compare("m.yaml"),
        ["p.jsonl", "prompt_id", "row 0"],
        {
            "m.yaml": model_yaml(prompts="p.jsonl"),
            "p.jsonl": '{"prompt_id": null, "prompt": "One?"}\n',
        },
    ),
    Case(
        "prompts-parquet-garbage",
        compare("m.yaml"),
        ["p.parquet", "parquet"],
        {"m.yaml": model_yaml(prompts="p.parquet"), "p.parquet": b"garbage"},
    ),
    Case(
        "prompts-option-missing",
        compare("m.yaml", "--prompts", "other.csv"),
        ["other.csv", "not found"],
        {"m.yaml": model_yaml()},
    ),
    Case(
        "prompts-file-is-output",
        hashing("m.yaml", "--out", "."),
        ["perspectives.csv", "--out", "overwrite"],
        {
            "m.yaml": model_yaml(prompts="perspectives.csv"),
            "perspectives.csv": "prompt\nWill it rain?\nName a colour.\n",
        },
    ),
]

# --------------------------------------------------------------------------- question banks


def bank(source: str) -> list[str]:
    return ["init", "--bank", source, "--n-models", "1", "--sample-size", "1"]


BANK_CSV = "question,answer\nWhat is rain?,Water from clouds.\nWhat is snow?,Frozen rain.\n"

BANK_CASES = [
    Case(
        "bank-no-answer-column",
        bank("b.csv"),
        ["b.csv", "answer", "missing"],
        {"b.csv": "question\nWhat is rain?\n"},
    ),
    Case(
        "bank-not-utf8",
        bank("b.csv"),
        ["b.csv", "utf-8"],
        {"b.csv": "question,answer\nCaf\xe9?,Yes.\n".encode("latin-1")},
    ),
    Case("bank-empty-file", bank("b.csv"), ["b.csv", "empty"], {"b.csv": ""}),
    Case(
        "bank-header-only", bank("b.csv"), ["b.csv", "no questions"], {"b.csv": "question,answer\n"}
    ),
    Case(
        "bank-duplicate-question",
        bank("b.csv"),
        ["b.csv", "question", "duplicate"],
        {"b.csv": BANK_CSV + "What is rain?,Something else.\n"},
    ),
    Case(
        "bank-duplicate-id",
        bank("b.csv"),
        ["b.csv", "question_id", "duplicate"],
        {"b.csv": "question_id,question,answer\n1,A?,a.\n1,B?,b.\n"},
    ),
    Case(
        "bank-blank-answer",
        bank("b.csv"),
        ["b.csv", "answer", "row 1"],
        {"b.csv": 'question,answer\nA?,a.\nB?," "\n'},
    ),
    Case(
        "bank-missing-answer-cell",
        bank("b.csv"),
        ["b.csv", "answer", "row 0"],
        {"b.csv": "question,answer\nA?,\nB?,b.\n"},
    ),
    Case(
        "bank-jsonl-answer-number",
        bank("b.jsonl"),
        ["b.jsonl", "answer", "42"],
        {"b.jsonl": '{"question": "A?", "answer": 42}\n'},
    ),
    Case(
        "bank-jsonl-answer-list",
        bank("b.jsonl"),
        ["b.jsonl", "answer", "non-text"],
        {"b.jsonl": '{"question": "A?", "answer": ["a"]}\n'},
    ),
    Case(
        "bank-jsonl-question-null",
        bank("b.jsonl"),
        ["b.jsonl", "question", "row 1"],
        {"b.jsonl": '{"question": "A?", "answer": "a."}\n{"question": null, "answer": "b."}\n'},
    ),
    Case(
        "bank-jsonl-question-bool",
        bank("b.jsonl"),
        ["b.jsonl", "question", "true"],
        {"b.jsonl": '{"question": true, "answer": "a."}\n'},
    ),
    Case(
        "bank-jsonl-id-fraction",
        bank("b.jsonl"),
        ["b.jsonl", "question_id", "1.5"],
        {"b.jsonl": '{"question_id": 1.5, "question": "A?", "answer": "a."}\n'},
    ),
    Case(
        "bank-jsonl-bad-line",
        bank("b.jsonl"),
        ["b.jsonl", "line 2"],
        {"b.jsonl": '{"question": "A?", "answer": "a."}\n{"question": \n'},
    ),
    Case(
        "bank-parquet-garbage",
        bank("b.parquet"),
        ["b.parquet", "parquet"],
        {"b.parquet": b"not a parquet file"},
    ),
    Case(
        "bank-parquet-answer-int",
        bank("b.parquet"),
        ["b.parquet", "answer", "non-text"],
        {"b.parquet": parquet_bytes(pd.DataFrame({"question": ["A?", "B?"], "answer": [1, 2]}))},
    ),
    Case("bank-unknown-name", bank("society_cultur"), ["bank", "society_cultur"]),
    Case("bank-missing-file", bank("nope.csv"), ["nope.csv", "not found"]),
    Case(
        "bank-folder", bank("b.csv"), ["b.csv", "folder"], setup=lambda tmp: (tmp / "b.csv").mkdir()
    ),
]

CASES = [
    *CSV_CASES,
    *JSONL_CASES,
    *PARQUET_CASES,
    *OTHER_FILE_CASES,
    *OPTION_CASES,
    *YAML_CASES,
    *PROMPT_FILE_CASES,
    *BANK_CASES,
]


@pytest.fixture(autouse=True)
def _offline(monkeypatch, tmp_path_factory):
    """No hub access and a cache of the test's own: a bad name fails at once, offline."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("PERSPECTIVES_CACHE", str(tmp_path_factory.mktemp("cache")))


def test_cases_are_distinct_and_enough():
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids))
    assert len(CASES) >= 60


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_bad_input(case: Case, tmp_path: Path) -> None:
    check_case(case, tmp_path)


# --------------------------------------------------------------------------- beyond the table


def test_a_rerun_into_its_own_folder_is_fine(tmp_path):
    (tmp_path / "r.csv").write_text(GOOD_CSV)
    for _ in range(2):
        result = invoke(hashing("r.csv", "--out", "run"), tmp_path)
        assert result.exit_code == 0, result.output
    assert (tmp_path / "r.csv").read_text() == GOOD_CSV
    table = pd.read_csv(tmp_path / "run" / "perspectives.csv")
    assert list(table.columns[:2]) == ["model", "class"]


def test_integer_ids_in_jsonl_are_accepted(tmp_path):
    records = [
        {**r, "model": int(r["model"][1:]), "prompt_id": int(r["prompt_id"][1:])}
        for r in RESPONSE_ROWS
    ]
    (tmp_path / "r.jsonl").write_text(jsonl_text(records))
    result = invoke(hashing("r.jsonl", "--out", "run"), tmp_path)
    assert result.exit_code == 0, result.output
    assert pd.read_csv(tmp_path / "run" / "perspectives.csv")["model"].tolist() == [0, 1, 2]


def test_a_write_the_system_refuses_is_one_line(tmp_path, monkeypatch):
    import perspectives.space.compare as compare_module

    def refuse(path, frame):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(compare_module, "write_parquet", refuse)
    (tmp_path / "r.csv").write_text(GOOD_CSV)
    result = invoke(hashing("r.csv", "--out", "run"), tmp_path)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = [ln for ln in result.output.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and "run" in lines[0] and "Permission denied" in lines[0]


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_output_folder(tmp_path):
    (tmp_path / "r.csv").write_text(GOOD_CSV)
    (tmp_path / "ro").mkdir()
    (tmp_path / "ro").chmod(0o500)
    try:
        check_case(
            Case("read-only-out", hashing("r.csv", "--out", "ro"), ["ro", "--out", "writ"]),
            tmp_path,
        )
    finally:
        (tmp_path / "ro").chmod(0o700)


# --------------------------------------------------------------------------- embedding cache

TEXTS = ["alpha beta", "gamma delta", "epsilon", "alpha beta"]


def _cached(path: Path):
    from perspectives.space.embed import CachedEmbedder, HashingEmbedder

    return CachedEmbedder(HashingEmbedder(), path)


def _truth() -> np.ndarray:
    from perspectives.space.embed import HashingEmbedder

    return HashingEmbedder().embed(TEXTS)


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda p: p.write_bytes(b"this is not a database" * 100), id="garbage"),
        pytest.param(lambda p: p.write_bytes(p.read_bytes()[:1500]), id="truncated"),
        pytest.param(lambda p: p.write_bytes(p.read_bytes()[:100]), id="header-only"),
        pytest.param(lambda p: p.write_bytes(b""), id="empty"),
        pytest.param(
            lambda p: p.write_bytes(p.read_bytes()[:4096] + os.urandom(8192)), id="random-pages"
        ),
    ],
)
def test_a_damaged_cache_file_is_recomputed(tmp_path, damage, caplog):
    path = tmp_path / "embeddings.sqlite"
    _cached(path).embed(TEXTS)
    damage(path)
    again = _cached(path)
    np.testing.assert_array_equal(again.embed(TEXTS), _truth())
    np.testing.assert_array_equal(_cached(path).embed(TEXTS), _truth())  # and a new one works


def _rewrite_rows(path: Path, sql: str, params: tuple = ()) -> None:
    con = sqlite3.connect(path)
    with con:
        con.execute(sql, params)
    con.close()


@pytest.mark.parametrize(
    ("sql", "params"),
    [
        ("UPDATE emb SET vec = substr(vec, 1, 100)", ()),  # truncated blobs, dim unchanged
        ("UPDATE emb SET dim = 7", ()),  # a dim that disagrees with the blob
        ("UPDATE emb SET vec = 'text', dim = 1", ()),  # not bytes
        ("UPDATE emb SET vec = ?, dim = 3", (np.ones(3, np.float32).tobytes(),)),  # other size
        ("UPDATE emb SET vec = ?", (np.full(256, np.nan, np.float32).tobytes(),)),  # NaN
    ],
    ids=["short-blob", "wrong-dim", "text-blob", "other-length", "nan"],
)
def test_damaged_cache_rows_are_recomputed(tmp_path, sql, params):
    path = tmp_path / "embeddings.sqlite"
    _cached(path).embed(TEXTS)
    _rewrite_rows(path, sql, params)
    np.testing.assert_array_equal(_cached(path).embed(TEXTS), _truth())


def test_one_row_of_another_length_is_recomputed(tmp_path):
    path = tmp_path / "embeddings.sqlite"
    cache = _cached(path)
    cache.embed(TEXTS)
    key = cache._key(TEXTS[1])
    _rewrite_rows(
        path,
        "UPDATE emb SET vec = ?, dim = 3 WHERE key = ?",
        (np.ones(3, np.float32).tobytes(), key),
    )
    np.testing.assert_array_equal(_cached(path).embed(TEXTS), _truth())
    np.testing.assert_array_equal(_cached(path).embed(TEXTS[:2]), _truth()[:2])


def test_an_unusable_cache_place_is_bypassed(tmp_path):
    (tmp_path / "as-folder.sqlite").mkdir()
    np.testing.assert_array_equal(_cached(tmp_path / "as-folder.sqlite").embed(TEXTS), _truth())
    (tmp_path / "file").write_text("x")
    np.testing.assert_array_equal(_cached(tmp_path / "file" / "e.sqlite").embed(TEXTS), _truth())


def test_a_comparison_may_go_into_a_new_folder_of_a_sweep(tmp_path):
    """Only a run's or sweep's own folder and its analysis/ hold files a comparison would
    replace: a folder made for comparisons inside a sweep is fine."""
    from perspectives.space.compare import check_output_dir

    (tmp_path / "sweep").mkdir()
    (tmp_path / "sweep" / "sweep.json").write_text("{}")
    out = tmp_path / "sweep" / "comparisons" / "first"
    assert check_output_dir(out) == out
    with pytest.raises(InputError, match="run or sweep folder"):
        check_output_dir(tmp_path / "sweep" / "analysis")
