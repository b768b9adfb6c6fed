"""A finished run continued to more steps: the same tables as the longer run made from the
start, and refusals, before anything changes, where it could not go on the same way."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from perspectives.cli.app import app
from perspectives.errors import ConfigError, CorruptStateError, InputError
from perspectives.simulation.config import parse_run_config
from perspectives.simulation.engine import Simulation
from perspectives.simulation.rundir import RunFolder, read_parts
from perspectives.space.embed import get_embedder

runner = CliRunner()

pytestmark = pytest.mark.usefixtures("isolated_cache")


def _same_tables(a, b, steps: int) -> None:
    for table in ("responses", "edges"):
        pd.testing.assert_frame_equal(read_parts(a, table), read_parts(b, table))
    for t in range(steps + 1):
        name = f"step-{t:05d}.npy"
        np.testing.assert_array_equal(
            np.load(a / "embeddings" / name), np.load(b / "embeddings" / name)
        )


def _sim(raw: dict, out) -> Simulation:
    return Simulation.create(parse_run_config(raw, "test"), out, embedder=get_embedder("hashing"))


def test_a_finished_run_continued_is_the_longer_run(tmp_path, tiny_config, run_to_end):
    short = run_to_end(tiny_config("fake", steps=2), tmp_path / "run")
    run_json = json.loads((short / "run.json").read_text())
    sim = _sim(tiny_config("fake", steps=4), short)
    assert sim.extended_from == 2 and sim.cfg.steps == 4
    sim.run()
    fresh = run_to_end(tiny_config("fake", steps=4), tmp_path / "fresh")
    _same_tables(short, fresh, 4)
    info = json.loads((short / "run.json").read_text())
    assert (
        info["steps"] == 4
        and info["fingerprint"] == json.loads((fresh / "run.json").read_text())["fingerprint"]
    )
    assert info["extended"] == [
        {
            "steps": 2,
            "fingerprint": run_json["fingerprint"],
            "config_sha256": run_json["config_sha256"],
        }
    ]
    assert yaml.safe_load((short / "config.yaml").read_text())["steps"] == 4
    # The same longer config again is that run, complete: nothing is extended twice.
    again = _sim(tiny_config("fake", steps=4), short)
    assert again.extended_from is None
    assert len(json.loads((short / "run.json").read_text())["extended"]) == 1


def test_the_command_line_says_it_continues_the_run(tmp_path, two_classes):
    out = tmp_path / "run"
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(two_classes(steps=1)))
    first = runner.invoke(app, ["run", str(path), "--out", str(out)])
    assert first.exit_code == 0, first.output
    longer = runner.invoke(app, ["run", str(path), "--out", str(out), "--set", "steps=2"])
    assert longer.exit_code == 0, longer.output
    assert "continuing the run from 1 to 2 steps" in " ".join(longer.output.split())
    assert RunFolder(out).last_complete_step() == 2
    # --resume with the config given continues it too.
    more = runner.invoke(app, ["run", str(path), "--resume", str(out), "--set", "steps=3"])
    assert more.exit_code == 0, more.output
    assert RunFolder(out).last_complete_step() == 3


def test_what_cannot_be_continued_is_refused_before_anything_changes(
    tmp_path, tiny_config, run_to_end
):
    out = run_to_end(tiny_config("fake", steps=2), tmp_path / "run")
    kept = {p.name: p.read_bytes() for p in (out / "run.json", out / "config.yaml")}
    # Fewer steps: a run goes on, never back.
    with pytest.raises(ConfigError, match=r"different config \(2 steps; a run goes on, never"):
        _sim(tiny_config("fake", steps=1), out)
    # More steps of another config.
    with pytest.raises(ConfigError, match=r"different config$"):
        _sim(tiny_config("fake", steps=4, seed=9), out)
    # A finished sweep system's weights are gone: nothing to continue from.
    shutil.rmtree(out / "checkpoints")
    with pytest.raises(InputError, match=r"weights after its last step \(2\) were removed"):
        _sim(tiny_config("fake", steps=4), out)
    assert {p.name: p.read_bytes() for p in (out / "run.json", out / "config.yaml")} == kept
    # A damaged folder is reported when the longer run starts, before it is extended.
    whole = run_to_end(tiny_config("fake", steps=2), tmp_path / "damaged")
    kept = {p.name: p.read_bytes() for p in (whole / "run.json", whole / "config.yaml")}
    (whole / "tables" / "edges" / "step-00001.parquet").write_bytes(b"not parquet")
    longer = _sim(tiny_config("fake", steps=4), whole)
    with pytest.raises(CorruptStateError, match="step-00001.parquet"):
        longer.run()
    assert {p.name: p.read_bytes() for p in (whole / "run.json", whole / "config.yaml")} == kept
    # A last step evaluated only because it was the last: the longer run never made it.
    every = {"n_prompts": 4, "every": 2, "sampling": {"do_sample": False, "max_new_tokens": 6}}
    odd = run_to_end(tiny_config("fake", steps=3, evaluation=every), tmp_path / "odd")
    with pytest.raises(InputError, match=r"last step \(3\) was evaluated only because"):
        _sim(tiny_config("fake", steps=4, evaluation=every), odd)
    even = run_to_end(tiny_config("fake", steps=2, evaluation=every), tmp_path / "even")
    _sim(tiny_config("fake", steps=4, evaluation=every), even).run()
    fresh = run_to_end(tiny_config("fake", steps=4, evaluation=every), tmp_path / "fresh")
    pd.testing.assert_frame_equal(read_parts(even, "responses"), read_parts(fresh, "responses"))


def test_an_extension_interrupted_between_its_two_files_is_read_and_finished(
    tmp_path, tiny_config, run_to_end, monkeypatch
):
    import perspectives.simulation.rundir as rundir

    out = run_to_end(tiny_config("fake", steps=2), tmp_path / "run")
    real = rundir.write_text

    def crash(path, text):
        if path.name == "config.yaml":
            raise KeyboardInterrupt  # stopped after run.json, before config.yaml
        real(path, text)

    monkeypatch.setattr(rundir, "write_text", crash)
    with pytest.raises(KeyboardInterrupt):
        _sim(tiny_config("fake", steps=4), out).run()
    monkeypatch.setattr(rundir, "write_text", real)
    assert yaml.safe_load((out / "config.yaml").read_text())["steps"] == 2
    # The old file stands for the config run.json names, not for an edit.
    assert RunFolder(out).read_config().steps == 4
    assert RunFolder(out).last_complete_step() == 2
    # Running it again (here without the config) finishes the file and the run.
    sim = Simulation.resume(out, embedder=get_embedder("hashing"))
    assert sim.extended_from is None and sim.cfg.steps == 4
    sim.run()
    assert yaml.safe_load((out / "config.yaml").read_text())["steps"] == 4
    _same_tables(out, run_to_end(tiny_config("fake", steps=4), tmp_path / "fresh"), 4)
    # An edit that is not the extension's old file is still an edit.
    raw = yaml.safe_load((out / "config.yaml").read_text())
    (out / "config.yaml").write_text(yaml.safe_dump({**raw, "steps": 5}, sort_keys=False))
    with pytest.raises(CorruptStateError, match="edited after the run started"):
        RunFolder(out).read_config()


def test_a_sweep_continues_to_more_steps_only_with_its_weights_kept(tmp_path, sweep_yaml):
    path = sweep_yaml([{"name": "complete", "set": {}}])
    kept, dropped, fresh = tmp_path / "kept", tmp_path / "dropped", tmp_path / "fresh"
    for out, extra in ((kept, ["--keep-weights"]), (dropped, [])):
        result = runner.invoke(app, ["run", str(path), "--sweep", "--out", str(out), *extra])
        assert result.exit_code == 0, result.output
    longer = ["--set", "steps=3"]
    refused = runner.invoke(app, ["run", str(path), "--sweep", "--out", str(dropped), *longer])
    assert refused.exit_code == 2, refused.output
    said = " ".join(refused.output.split())
    assert "cannot continue to 3 steps" in said and "--keep-weights" in said
    assert RunFolder(dropped / "complete" / "seed-0").read_config().steps == 2
    # One seed continued alone would leave the grid with two horizons.
    one = runner.invoke(
        app, ["run", str(path), "--sweep", "--out", str(kept), "--seeds", "1", *longer]
    )
    assert one.exit_code == 2 and "complete/seed-0: run from another config" in one.output
    assert RunFolder(kept / "complete" / "seed-1").read_config().steps == 2
    result = runner.invoke(app, ["run", str(path), "--sweep", "--out", str(kept), *longer])
    assert result.exit_code == 0, result.output
    assert "complete seed 1: to be continued from 2 to 3 steps" in result.output
    made = runner.invoke(app, ["run", str(path), "--sweep", "--out", str(fresh), *longer])
    assert made.exit_code == 0, made.output
    for seed in (0, 1):
        a, b = (p / "complete" / f"seed-{seed}" for p in (kept, fresh))
        _same_tables(a, b, 3)
    assert all(
        s["status"] == "done" for s in json.loads((kept / "sweep.json").read_text())["systems"]
    )
