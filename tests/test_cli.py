"""The command line as a user runs it: compare from a file or a YAML; clear errors."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from perspectives.cli.app import app

runner = CliRunner()

ANSWERS = {
    "sunny": [
        "What a wonderful day it will be!",
        "Everything will turn out great.",
        "I am sure it will be lovely.",
        "The best is yet to come!",
    ],
    "gloomy": [
        "It will probably go badly.",
        "Expect the worst, as always.",
        "Nothing good will come of it.",
        "It is going to be a disaster.",
    ],
}


def responses_frame():
    rows = []
    for cls, answers in ANSWERS.items():
        for k in range(3):
            for j, text in enumerate(answers):
                rows.append(
                    {
                        "model": f"{cls}-{k}",
                        "prompt_id": f"q{j}",
                        "class": cls,
                        "response": text if k == 0 else f"{text} (take {k})",
                    }
                )
    return pd.DataFrame(rows)


@pytest.fixture()
def cache_env(tmp_path, monkeypatch):
    monkeypatch.setenv("PERSPECTIVES_CACHE", str(tmp_path / "cache"))


def test_compare_from_a_responses_file(tmp_path, cache_env):
    src = tmp_path / "responses.parquet"
    responses_frame().to_parquet(src)
    out = tmp_path / "run"
    result = runner.invoke(
        app, ["compare", str(src), "--out", str(out), "-q", "--n-components", "2"]
    )
    assert result.exit_code == 0, result.output
    table = pd.read_parquet(out / "perspectives.parquet")
    assert list(table.columns) == ["model", "class", "z1", "z2"]
    assert len(table) == 6
    csv = pd.read_csv(out / "perspectives.csv")
    np.testing.assert_allclose(csv[["z1", "z2"]], table[["z1", "z2"]])
    D = np.load(out / "distances.npy")
    assert D.shape == (6, 6) and np.allclose(D, D.T)
    # the two moods sit apart: within-class distances are smaller than between-class ones
    cls = table["class"].to_numpy()
    same = cls[:, None] == cls[None, :]
    assert D[same & ~np.eye(6, dtype=bool)].mean() < D[~same].mean()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["separation"]["loo_1nn_accuracy"] == 1.0
    assert (out / "space.png").read_bytes()[:4] == b"\x89PNG"
    html = (out / "space.html").read_text()
    assert "plotly" in html and '<script src="http' not in html  # library embedded


def test_compare_reports_bad_input_in_one_line(tmp_path, cache_env):
    src = tmp_path / "responses.csv"
    responses_frame().drop(columns="prompt_id").to_csv(src, index=False)
    result = runner.invoke(app, ["compare", str(src), "--out", str(tmp_path / "run")])
    assert result.exit_code == 2
    assert "responses.csv" in result.output and "prompt_id" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "run").exists()


def test_compare_color_by_unknown_column(tmp_path, cache_env):
    src = tmp_path / "responses.csv"
    responses_frame().to_csv(src, index=False)
    result = runner.invoke(
        app, ["compare", str(src), "-q", "--color-by", "mood", "--out", str(tmp_path / "run")]
    )
    assert result.exit_code == 2
    assert "'--color-by'" in result.output and "mood" in result.output


def test_compare_from_yaml_generates_with_a_model(tmp_path, tiny_model_dir, cache_env):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("Will it rain?\nName a fruit.\nHow are you?\n")
    cfg = {
        "prompts": "prompts.txt",
        "generation": {"max_new_tokens": 6, "do_sample": True, "dtype": "float32"},
        "models": [
            {
                "name": f"m{i}",
                "model": str(tiny_model_dir),
                "seed": i,
                "system_prompt": f"You are model {i}.",
                "labels": {"group": i % 2},
            }
            for i in range(4)
        ],
    }
    path = tmp_path / "models.yaml"
    path.write_text(yaml.safe_dump(cfg))
    out = tmp_path / "run"
    result = runner.invoke(app, ["compare", str(path), "--out", str(out), "-q"])
    assert result.exit_code == 0, result.output
    responses = pd.read_parquet(out / "responses.parquet")
    assert len(responses) == 12 and set(responses["model"]) == {"m0", "m1", "m2", "m3"}
    assert len(pd.read_parquet(out / "perspectives.parquet")) == 4


def test_yaml_errors_name_the_key(tmp_path):
    path = tmp_path / "models.yaml"
    path.write_text(
        yaml.safe_dump({"prompts": ["hi"], "models": [{"name": "a", "temp": 1}, {"name": "b"}]})
    )
    result = runner.invoke(app, ["compare", str(path)])
    assert result.exit_code == 2
    assert "models.yaml" in result.output and "models.0.temp" in result.output


def test_help_explains_commands():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "compare" in result.output and "figure2" in result.output


def test_the_ray_panel_names_the_extra_to_install():
    # Help text is rich markup: an unescaped "[ray]" read as a tag and vanished.
    result = runner.invoke(app, ["run", "--help"], env={"COLUMNS": "120"}, terminal_width=120)
    assert result.exit_code == 0
    assert "pip install 'perspectives[ray]'" in result.output


def test_a_commands_help_reads_as_paragraphs_on_an_80_column_terminal():
    # The docstring's line breaks fall after "data-kernel" and before "--control"; kept,
    # each source line wrapped in two on 80 columns and sentences broke mid-phrase.
    result = runner.invoke(app, ["monitor", "--help"], env={"COLUMNS": "80"}, terminal_width=80)
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    assert "the data-kernel spread, each class's mean z1" in text
    lines = [ln.strip() for ln in result.output.splitlines()]
    start = lines.index("Watch a run: control-chart alarms and change points.")
    paragraph = lines[start + 2 : lines.index("", start + 2)]
    # Filled lines: every line but the last of the paragraph is more than half the width.
    assert len(paragraph) >= 3 and all(len(ln) > 40 for ln in paragraph[:-1])


@pytest.mark.parametrize("command", ["run", "compare", "init", "monitor", "report", "results"])
def test_every_options_help_has_room_on_an_80_column_terminal(command):
    # A two-name flag (--x/--no-x) once took a column of its own and left run's help text
    # 20 characters a line, one or two words each.
    result = runner.invoke(app, [command, "--help"], env={"COLUMNS": "80"}, terminal_width=80)
    assert result.exit_code == 0
    starts = [
        re.search(r"<[^>]*>(?:\s+\[[^]]*\])?\s+(\S)", ln)
        for ln in result.output.splitlines()
        if re.match(r"│ +--", ln)
    ]
    columns = [m.start(1) for m in starts if m]
    assert columns and max(columns) <= 50, (command, max(columns))


def test_presets_keep_each_items_indent_when_its_text_wraps():
    result = runner.invoke(app, ["presets"], env={"COLUMNS": "80"}, terminal_width=80)
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert lines[0].startswith("cs1-disruption: Case study 1")
    # After each preset's first line: scale notes and the sweep at 2, reductions at 4.
    for line in lines:
        if line.startswith(" ") and line.strip():
            assert line.startswith("  "), line
    scale = next(i for i, ln in enumerate(lines) if ln.startswith("  --scale paper"))
    assert lines[scale + 1].startswith("  ") and not lines[scale + 1].startswith("  --")
    reduction = next(i for i, ln in enumerate(lines) if ln.startswith("    - question bank"))
    assert lines[reduction + 1].startswith("    ") and lines[reduction + 1][4] != "-"


def test_distance_labels_name_each_point_once_whatever_its_time():
    from perspectives.space.compare import _point_names

    numeric = pd.DataFrame({"model": ["m0", "m0"], "time": [0, 3]})
    text = pd.DataFrame({"model": ["m0", "m0"], "time": ["t1", "after"]})
    assert _point_names(numeric) == ["m0@t0", "m0@t3"]
    assert _point_names(text) == ["m0@t1", "m0@after"]
    assert _point_names(pd.DataFrame({"model": ["a", "b"]})) == ["a", "b"]


def test_sigterm_stops_any_command_as_ctrl_c_does(tmp_path, monkeypatch, tiny_config, run_to_end):
    """A scheduler's or ``kill``'s SIGTERM ends every command the way Ctrl-C does (one line,
    exit 130), not only ``run``; the handler is the previous one again afterwards."""
    import os
    import signal

    import perspectives.reporting.run_analysis as run_analysis

    run = run_to_end(tiny_config("fake", steps=1), tmp_path / "run")

    def killed(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)
        raise AssertionError("SIGTERM did not stop the command")

    monkeypatch.setattr(run_analysis, "analyze_run", killed)
    before = signal.getsignal(signal.SIGTERM)
    result = runner.invoke(app, ["analyze", str(run)])
    assert result.exit_code == 130, result.output
    assert "interrupted" in result.output and "Traceback" not in result.output
    assert signal.getsignal(signal.SIGTERM) is before
