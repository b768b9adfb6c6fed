"""The layout a newcomer reads: docs examples that run, module docstrings, the command list,
and the stages that must not load a model library."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "perspectives"


def _examples() -> list[str]:
    text = (ROOT / "docs" / "architecture.md").read_text()
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def test_architecture_examples_run(tmp_path, monkeypatch):
    monkeypatch.setenv("PERSPECTIVES_CACHE", str(tmp_path / "cache"))
    examples = _examples()
    assert len(examples) == 3  # a backend, an update rule, a policy and a mechanic
    for i, code in enumerate(examples):
        exec(compile(code, f"architecture.md example {i + 1}", "exec"), {"tmp": tmp_path})


def test_every_module_says_its_one_job():
    missing = []
    for path in sorted(PACKAGE.rglob("*.py")):
        source = path.read_text()
        if path.name != "__main__.py" and not re.match(r'\s*(#.*\n)*\s*"""\S', source):
            missing.append(str(path.relative_to(ROOT)))
    assert missing == []


def test_readme_layout_names_every_subpackage():
    readme = (ROOT / "README.md").read_text()
    layout = readme[readme.index("## Layout") :]
    subpackages = sorted(p.parent.name for p in PACKAGE.glob("*/__init__.py"))
    assert subpackages == [
        "analysis",
        "cli",
        "cluster",
        "data",
        "experiments",
        "models",
        "reporting",
        "simulation",
        "space",
    ]
    for name in subpackages:
        assert re.search(rf"^\s+{name}/\s+\S", layout, flags=re.M), name


def test_help_lists_every_command_with_one_line():
    out = subprocess.run(
        [sys.executable, "-m", "perspectives", "--help"], capture_output=True, text=True, check=True
    ).stdout
    commands = [
        "compare",
        "figure2",
        "init",
        "instruct-tune",
        "run",
        "presets",
        "analyze",
        "monitor",
        "report",
        "results",
    ]
    panel = out[out.index("Commands") :]
    rows = [line for line in panel.splitlines() if re.match(r"│ [a-z]", line)]
    assert [r.split()[1] for r in rows] == commands
    wrapped = [line for line in panel.splitlines() if re.match(r"│\s{10,}\S", line)]
    assert wrapped == []  # every description fits its one line


@pytest.mark.parametrize(
    "module",
    [
        "perspectives",
        "perspectives.reporting.run_analysis",
        "perspectives.reporting.report",
        "perspectives.experiments.reproduction",
        "perspectives.experiments.presets",
        "perspectives.simulation.history",
        "perspectives.simulation.engine",
    ],
)
def test_reading_stages_do_not_import_torch(module):
    code = f"import sys, {module}; print('torch' in sys.modules, 'transformers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_analyze_and_report_commands_do_not_import_torch(tmp_path, monkeypatch):
    """A whole fake-agent run, analysed and reported through the CLI's functions, in a fresh
    interpreter that must never load torch."""
    code = f"""
import sys, os
os.environ["PERSPECTIVES_CACHE"] = {str(tmp_path / "cache")!r}
from perspectives import RunConfig, Simulation, get_embedder
cfg = RunConfig.model_validate({{
    "steps": 2, "question_bank": "neutral", "interaction": {{"questions": 2}},
    "groups": [{{"name": "a", "count": 2, "backend": "fake", "model": "calm"}},
               {{"name": "b", "count": 2, "backend": "fake", "model": "loud"}}],
    "evaluation": {{"n_prompts": 4}}}})
Simulation.create(cfg, {str(tmp_path / "run")!r}, embedder=get_embedder("hashing")).run()
from typer.testing import CliRunner
from perspectives.cli import app
for args in (["analyze", {str(tmp_path / "run")!r}], ["report", {str(tmp_path / "run")!r}],
             ["monitor", {str(tmp_path / "run")!r}], ["presets"]):
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
print('torch' in sys.modules, 'transformers' in sys.modules)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split()[-2:] == ["False", "False"]


def test_simulation_docstring_example_runs():
    import doctest

    import perspectives.simulation.engine as engine

    result = doctest.testmod(engine, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
