"""Damaged and edited run folders: every file kind of a finished run truncated, filled with
garbage, deleted (a Parquet part missing a column, embeddings of the wrong length) gives
`analyze`, `report` and `run --resume` a correct result or one clear line naming the file,
and changes nothing. Then: a resume that validates before it deletes, a config edited after
the run started, missing checkpoints, the weights a resume leaked, an interrupted initial
fine-tune's work folder, model folders that cannot load, and runs where every group leaves.

The runs are of fake (torch-free) models embedded by the hashing embedder: milliseconds."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from badinput import Case, check_case, checksums, invoke

from perspectives.errors import ConfigError, CorruptStateError
from perspectives.simulation.config import RunConfig, parse_run_config
from perspectives.simulation.engine import Simulation
from perspectives.simulation.rundir import RunFolder, read_parts
from perspectives.space.embed import get_embedder

STEPS = 3
KINDS = {
    "responses": "tables/responses/step-00001.parquet",
    "edges": "tables/edges/step-00001.parquet",
    "events": "tables/events/step-00001.parquet",
    "embeddings": "embeddings/step-00001.npy",
    "checkpoint": f"checkpoints/step-{STEPS:05d}/a-1/agent.json",
    "agents": "agents/a-1/agent.json",
    "progress": "progress.json",
    "config": "config.yaml",
    "run": "run.json",
}
# A column each table cannot do without.
NEEDED = {"responses": "text", "edges": "dst", "events": "kind"}
COMMANDS = {
    "analyze": ["analyze", "run"],
    "report": ["report", "run"],
    "resume": ["run", "--resume", "run"],
}


def _damages(kind: str) -> list[str]:
    """Every file is truncated, filled with garbage and deleted; a table part also loses a
    column, and embeddings a row."""
    extra = {"embeddings": ["rows"], **{table: ["column"] for table in NEEDED}}
    # A run's records can also be folders (a copy gone wrong, a mistyped mkdir).
    extra |= {record: ["folder"] for record in ("progress", "config", "run")}
    return ["truncate", "garbage", "delete", *extra.get(kind, [])]


def damage(run: Path, kind: str, how: str) -> None:
    """Damage the file of ``kind`` in ``run`` the way ``how`` says."""
    path = run / KINDS[kind]
    if how == "truncate":
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif how == "garbage":
        path.write_bytes(b"\x89garbage\x00\xff\xfe" * 40)
    elif how == "delete":
        # A checkpoint or live state is a folder per agent: it goes as a whole.
        target = path.parent if kind in ("checkpoint", "agents") else path
        shutil.rmtree(target) if target.is_dir() else target.unlink()
    elif how == "column":
        pd.read_parquet(path).drop(columns=NEEDED[kind]).to_parquet(path, index=False)
    elif how == "rows":
        np.save(path, np.load(path)[:-1])
    elif how == "folder":
        path.unlink()
        path.mkdir()
    else:  # pragma: no cover - a typo in the table
        raise ValueError(how)


def _ok(kind: str, how: str, command: str) -> bool:
    """Whether the command must succeed: the analyses do not read the agents' weights, the
    live state of fake agents is never read, and a finished run resumed has nothing to
    load (a finished sweep system keeps no weights). An interrupted run's checkpoint is
    checked in ``test_a_resume_checks_everything_before_it_removes_anything``."""
    return kind in ("agents", "checkpoint")


def _expected(kind: str, how: str, command: str) -> list[str]:
    if kind == "checkpoint" and how == "delete":
        return [f"checkpoints/step-{STEPS:05d}", "a-1"]
    return [KINDS[kind]]


MATRIX = [
    pytest.param(kind, how, command, id=f"{kind}-{how}-{command}")
    for kind in KINDS
    for how in _damages(kind)
    for command in COMMANDS
]


@pytest.fixture(scope="module")
def finished(tmp_path_factory, tiny_config_module) -> Path:
    """A finished 3-step run of fake models (with a stand-in live state for ``agents/``)."""
    out = tmp_path_factory.mktemp("finished") / "run"
    cfg = parse_run_config(tiny_config_module("fake", steps=STEPS), "test")
    Simulation.create(cfg, out, embedder=get_embedder("hashing")).run()
    # Fake agents keep no live state: a copy of a saved agent stands in for it.
    (out / "agents" / "a-1").mkdir(parents=True)
    shutil.copy(out / KINDS["checkpoint"], out / KINDS["agents"])
    (out / ".lock").unlink(missing_ok=True)
    return out


@pytest.fixture(scope="module")
def tiny_config_module():
    from conftest import _tiny_config

    return _tiny_config


def _copy(src: Path, tmp: Path) -> Path:
    shutil.copytree(src, tmp / "run")
    return tmp / "run"


@pytest.mark.parametrize(("kind", "how", "command"), MATRIX)
def test_a_damaged_run_folder_is_named_and_left_as_it_is(finished, tmp_path, kind, how, command):
    case = Case(
        f"{kind}-{how}-{command}",
        COMMANDS[command],
        expect=_expected(kind, how, command),
        setup=lambda tmp: damage(_copy(finished, tmp), kind, how),
    )
    if not _ok(kind, how, command):
        line = check_case(case, tmp_path)
        assert "\n" not in line.strip()
        return
    case.setup(tmp_path)
    before = checksums(tmp_path)
    result = invoke(case.args, tmp_path)
    assert result.exit_code == 0, result.output
    after = checksums(tmp_path)
    changed = [k for k, v in before.items() if after.get(k) != v]
    assert not changed
    if command != "resume":
        summary = json.loads((tmp_path / "run" / "analysis" / "summary.json").read_text())
        assert summary["steps_present"] == [0, 1, 2, 3] and summary["complete"]


@pytest.mark.parametrize(
    ("progress", "words"),
    [
        ('{"last_complete_step": 9}', ["after the run's last step (3)", "progress.json"]),
        ('{"last_complete_step": true}', ["not a step number", "progress.json"]),
        ("[3]", ["damaged progress record", "progress.json"]),
        # Behind the parts: steps 2 and 3 are complete, and step 2 could be a leftover, but
        # step 3 cannot. A resume deleted them, an analysis called them missing.
        ('{"last_complete_step": 1}', ["progress.json", "behind the folder", "steps up to 3"]),
        ('{"last_complete_step": -1}', ["progress.json", "behind the folder", "step-00003"]),
    ],
)
def test_a_progress_record_that_cannot_be_is_refused(finished, tmp_path, progress, words):
    def setup(tmp: Path) -> None:
        (_copy(finished, tmp) / "progress.json").write_text(progress)

    for command in COMMANDS.values():
        check_case(Case(progress, command, words, setup=setup), tmp_path)
        shutil.rmtree(tmp_path / "run")


def _edit_seed(run: Path) -> None:
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    cfg["seed"] += 1
    (run / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))


@pytest.mark.parametrize("command", list(COMMANDS))
def test_a_config_edited_after_the_run_started_is_refused(finished, tmp_path, command):
    case = Case(
        f"edited-{command}",
        COMMANDS[command],
        ["config.yaml", "edited after the run started"],
        setup=lambda tmp: _edit_seed(_copy(finished, tmp)),
    )
    check_case(case, tmp_path)


def _damage_hash(run: Path) -> None:
    info = json.loads((run / "run.json").read_text())
    info["config_sha256"] = "0" * 64
    (run / "run.json").write_text(json.dumps(info))


@pytest.mark.parametrize("command", list(COMMANDS))
def test_a_damaged_config_hash_is_not_called_an_edited_config(finished, tmp_path, command):
    case = Case(
        f"hash-{command}",
        COMMANDS[command],
        ["config.yaml", "differ from the hash run.json records", "run.json damaged"],
        setup=lambda tmp: _damage_hash(_copy(finished, tmp)),
    )
    check_case(case, tmp_path)


# ------------------------------------------------------------- resume of an interrupted run
@pytest.fixture(scope="module")
def interrupted(tmp_path_factory, tiny_config_module) -> tuple[Path, Path]:
    """(an interrupted run, the same run finished): the interrupted one was complete up to
    step 1 and holds leftovers of step 2 (as a kill in step 2's commit leaves them)."""
    root = tmp_path_factory.mktemp("interrupted")
    cfg = parse_run_config(tiny_config_module("fake", steps=STEPS), "test")
    straight = root / "straight"
    Simulation.create(cfg, straight, embedder=get_embedder("hashing")).run()
    out = root / "run"
    Simulation.create(
        cfg, out, embedder=get_embedder("hashing"), keep_checkpoints=frozenset({1})
    ).run()
    (out / "progress.json").write_text(json.dumps({"last_complete_step": 1}))
    # Step 3 is not begun before step 2 is committed.
    for part in [*out.glob("tables/*/step-00003.parquet"), out / "embeddings/step-00003.npy"]:
        part.unlink(missing_ok=True)
    shutil.rmtree(out / "checkpoints" / "step-00003")
    (out / ".lock").unlink(missing_ok=True)
    return out, straight


def _resume(run: Path) -> None:
    Simulation.resume(run, embedder=get_embedder("hashing")).run()


def test_an_interrupted_run_resumes_to_the_tables_of_an_uninterrupted_one(interrupted, tmp_path):
    src, straight = interrupted
    run = _copy(src, tmp_path)
    _resume(run)
    for table in ("responses", "edges"):
        pd.testing.assert_frame_equal(read_parts(run, table), read_parts(straight, table))
    assert RunFolder(run).last_complete_step() == STEPS


@pytest.mark.parametrize(
    ("target", "how", "words"),
    [
        ("tables/responses/step-00000.parquet", "truncate", ["not a readable parquet file"]),
        ("tables/edges/step-00001.parquet", "garbage", ["not a readable parquet file"]),
        ("tables/events/step-00001.parquet", "delete", ["missing", "step 1"]),
        ("embeddings/step-00001.npy", "truncate", ["not a readable .npy file"]),
        ("checkpoints/step-00001/b-2/agent.json", "garbage", ["corrupt agent.json"]),
        ("checkpoints/step-00001/b-2", "delete", ["lacks the agents ['b-2']"]),
        ("checkpoints", "delete", ["missing", "checkpoint of step 1"]),
        ("progress.json", "delete", ["missing", "of complete steps"]),
        ("progress.json", "garbage", ["damaged progress record"]),
        ("config.yaml", "delete", ["missing"]),
        ("run.json", "truncate", ["not valid json"]),
    ],
)
def test_a_resume_checks_everything_before_it_removes_anything(
    interrupted, tmp_path, target, how, words
):
    """Leftovers of step 2 would be removed by a resume: not while anything up to the last
    complete step is damaged or missing (the folder is reported, not "repaired")."""
    run = _copy(interrupted[0], tmp_path)
    path = run / target
    if how == "delete":
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    elif how == "truncate":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    else:
        path.write_bytes(b"\x89garbage\x00\xff" * 20)
    before = checksums(run)
    with pytest.raises((CorruptStateError, ConfigError)) as info:
        _resume(run)
    message = str(info.value).lower()
    assert "\n" not in message
    for word in [target.split("/")[0], *words]:
        assert word.lower() in message, message
    assert checksums(run) == before


def test_a_finished_run_resumed_by_the_cli_without_its_checkpoints_is_complete(finished, tmp_path):
    run = _copy(finished, tmp_path)
    shutil.rmtree(run / "checkpoints")  # as a sweep leaves a finished system
    result = invoke(COMMANDS["resume"], tmp_path)
    assert result.exit_code == 0, result.output
    assert f"the run is already complete (t = 0..{STEPS})" in " ".join(result.output.split())


def test_a_part_of_another_step_is_refused(finished, tmp_path):
    def setup(tmp: Path) -> None:
        run = _copy(finished, tmp)
        shutil.copy(run / KINDS["edges"], run / "tables/edges/step-00002.parquet")

    check_case(
        Case(
            "moved-part", COMMANDS["analyze"], ["step-00002.parquet", "another step"], setup=setup
        ),
        tmp_path,
    )


def test_embeddings_of_another_width_are_refused(finished, tmp_path):
    def setup(tmp: Path) -> None:
        path = _copy(finished, tmp) / "embeddings/step-00002.npy"
        np.save(path, np.load(path)[:, :-1])

    check_case(
        Case("width", COMMANDS["analyze"], ["step-00002.npy", "dimensional"], setup=setup),
        tmp_path,
    )


# ------------------------------------------------------------- damaged values in a table part
def _set_values(run: Path, column: str, value: object, rows: slice) -> None:
    """Set ``column`` of the rows ``rows`` of step 1's responses part of ``run`` to ``value``
    (as a tool other than the engine could write the part)."""
    path = run / KINDS["responses"]
    frame = pd.read_parquet(path)
    values = frame[column].astype(object).to_numpy(copy=True)
    values[rows] = value
    frame[column] = pd.Series(list(values), dtype=object)
    frame.to_parquet(path, index=False)


@pytest.mark.parametrize(
    ("column", "value", "rows", "words"),
    [
        ("text", None, slice(None), ["no text", "row 0"]),  # was an IndexError
        ("text", None, slice(2, 3), ["1 of", "no text", "row 2"]),  # was left out silently
        ("question_id", None, slice(0, 1), ["no text", "row 0", "question_id=None"]),
        ("model", 7, slice(None), ["no text", "row 0", "model=7"]),  # integers: ArrowTypeError
        ("replicate", None, slice(1, 2), ["no integer", "row 1"]),
        # The last row is an interview's (one evaluation answer less would leave the
        # embeddings a row too many).
        ("phase", "interviews", slice(-1, None), ["1 of", "none of", "'interviews'"]),
    ],
    ids=["text-null", "text-partly-null", "question-id-null", "model-int", "replicate", "phase"],
)
def test_a_responses_part_of_wrong_values_is_named(finished, tmp_path, column, value, rows, words):
    def setup(tmp: Path) -> None:
        _set_values(_copy(finished, tmp), column, value, rows)

    expect = [KINDS["responses"], f"field '{column}'", *words]
    for command in ("analyze", "report"):
        check_case(Case(f"{column}-{command}", COMMANDS[command], expect, setup=setup), tmp_path)
        shutil.rmtree(tmp_path / "run")


@pytest.mark.parametrize(
    ("rename", "words"),
    [
        ({"a-1": "intruder"}, ["t = 1 of a model the run's config does not have", "intruder"]),
        ("all-a-1", ["answer(s) of 'a-1' at t = 1 to question", "where the others have 1"]),
    ],
    ids=["unknown-model", "one-model-for-all"],
)
def test_evaluation_answers_of_other_models_are_named(finished, tmp_path, rename, words):
    """Rows of a model the run does not have, or every row given to one model, are damage:
    not a class of their own, and not averaged into one point."""

    def setup(tmp: Path) -> None:
        path = _copy(finished, tmp) / KINDS["responses"]
        frame = pd.read_parquet(path)
        evals = frame["phase"] == "eval"
        if rename == "all-a-1":
            frame.loc[evals, "model"] = "a-1"
        else:
            frame.loc[evals, "model"] = frame.loc[evals, "model"].replace(rename)
        frame.attrs.clear()  # as a tool writing a new part would (no digest to check)
        frame.to_parquet(path, index=False)

    expect = ["tables/responses", *words]
    for command in ("analyze", "report"):
        check_case(Case(f"{rename}-{command}", COMMANDS[command], expect, setup=setup), tmp_path)
        shutil.rmtree(tmp_path / "run")


@pytest.mark.parametrize("edit", ["shuffle", "swap-texts", "relabel"])
def test_evaluation_rows_reordered_or_edited_after_the_run_are_named(finished, tmp_path, edit):
    """Embeddings are paired with evaluation answers by position: rows sorted, or texts or
    models changed, by a tool after the run would silently pair them with other answers.
    The part's digest of its evaluation rows names it instead."""

    def setup(tmp: Path) -> None:
        path = _copy(finished, tmp) / KINDS["responses"]
        frame = pd.read_parquet(path)
        evals = frame.index[frame["phase"] == "eval"]
        if edit == "shuffle":
            frame = frame.sample(frac=1, random_state=0)
        elif edit == "swap-texts":
            a, b = evals[0], evals[-1]
            frame.loc[[a, b], "text"] = frame.loc[[b, a], "text"].to_numpy()
        else:
            frame.loc[evals, "model"] = frame.loc[evals, "model"].replace({"a-1": "intruder"})
        frame.to_parquet(path, index=False)

    expect = [KINDS["responses"], "not the ones, or not in the order", "embeddings"]
    for command in ("analyze", "report"):
        check_case(Case(f"{edit}-{command}", COMMANDS[command], expect, setup=setup), tmp_path)
        shutil.rmtree(tmp_path / "run")
    # The engine writes the digest; a run read as it was written is not refused.
    assert RunFolder(finished).read_part("responses", 1).attrs["eval_digest"]


def test_an_edge_without_its_source_is_named(finished, tmp_path):
    run = _copy(finished, tmp_path)
    path = run / KINDS["edges"]
    frame = pd.read_parquet(path)
    frame["src"] = frame["src"].astype(object)
    frame.loc[0, "src"] = None
    frame.to_parquet(path, index=False)
    with pytest.raises(CorruptStateError, match=r"field 'src': 1 of \d+ row\(s\) hold no text"):
        RunFolder(run).read_parts("edges")


def test_a_run_folder_whose_path_is_not_utf8_is_named_so(finished, tmp_path):
    """The files are sound; the Parquet reader only takes UTF-8 paths."""
    shutil.copytree(finished, tmp_path / os.fsdecode(b"run\xff"))
    result = invoke(["analyze", os.fsdecode(b"run\xff")], tmp_path)
    assert result.exit_code == 2, result.output
    said = " ".join(result.output.split())
    assert "run\\xff" in said and "not valid UTF-8, which the Parquet reader needs" in said


def test_answers_without_text_are_refused_by_the_measure_itself():
    """A table of answers from elsewhere than a run folder: no text is no answer to count."""
    from perspectives.analysis import answer_diversity
    from perspectives.errors import InputError

    answers = pd.DataFrame({"t": [0, 0, 1], "text": ["yes", None, "no"]})
    with pytest.raises(InputError, match=r"field 'text': 1 of 3 answers have no text.*row 1"):
        answer_diversity(answers)


@pytest.mark.parametrize("detail", [None, "[1, 2]", '"cpu"', '{"device": ["cpu"]}', "{oops"])
def test_an_unreadable_timing_record_is_left_out_of_the_compute_paths(finished, tmp_path, detail):
    """A timing record is informative: the analysis goes on without it, and says so."""
    run = _copy(finished, tmp_path)
    path = run / KINDS["events"]
    events = pd.read_parquet(path)
    events["detail"] = events["detail"].astype(object)
    events.loc[events["kind"] == "timing", "detail"] = detail
    events.to_parquet(path, index=False)
    result = invoke(COMMANDS["analyze"], tmp_path)
    assert result.exit_code == 0, result.output
    output = " ".join(result.output.split())
    assert f"warning: run/{KINDS['events']}" in output and "(t = 1)" in output, output
    summary = json.loads((run / "analysis" / "summary.json").read_text())
    assert sorted(t for path in summary["compute"] for t in path["steps"]) == [0, 2, 3]


# ------------------------------------------------------------------------- unwritable output
@pytest.mark.parametrize(
    ("refused", "words"),
    [
        ("mkdir", ["run/analysis", "cannot make this folder", "permission denied"]),
        ("replace", ["run/analysis/summary.json", "cannot write", "permission denied"]),
    ],
)
def test_an_analysis_that_cannot_be_written_is_one_line(
    finished, tmp_path, monkeypatch, refused, words
):
    """As a read-only run folder, or a summary.json that cannot be replaced, refuse it (the
    tests may run as root, whom permissions do not stop)."""
    mkdir, replace = Path.mkdir, os.replace

    def no_mkdir(self, *args, **kwargs):
        if self.name == "analysis":
            raise PermissionError(13, "Permission denied", str(self))
        return mkdir(self, *args, **kwargs)

    def no_replace(src, dst, *args, **kwargs):
        if Path(dst).name == "summary.json":
            raise PermissionError(13, "Permission denied", str(dst))
        return replace(src, dst, *args, **kwargs)

    def setup(tmp: Path) -> None:
        run = _copy(finished, tmp)
        if refused == "mkdir":
            monkeypatch.setattr(Path, "mkdir", no_mkdir)
        else:  # an analysis written before, to be replaced
            (run / "analysis").mkdir()
            (run / "analysis" / "summary.json").write_text("{}")
            monkeypatch.setattr(os, "replace", no_replace)

    check_case(Case(refused, COMMANDS["analyze"], words, setup=setup), tmp_path)
    leftovers = [p.name for p in (tmp_path / "run").rglob(".*.tmp")]
    assert not leftovers


# ------------------------------------------------------------------ where every group leaves
@pytest.mark.parametrize(
    "leave",
    [(1, 1), (2, 2), (1, 3), (2, 3)],
    ids=["all-at-1", "all-at-2", "a-at-1", "a-at-2"],
)
def test_a_run_where_groups_leave_is_analysed(tmp_path, tiny_config, leave):
    raw = tiny_config("fake", steps=STEPS)
    for group, at in zip(raw["groups"], leave, strict=True):
        group["leave_at"] = at
    out = tmp_path / "run"
    # Configs are now refused when a step has nobody; run folders made before are analysed.
    Simulation.create(RunConfig.model_validate(raw), out, embedder=get_embedder("hashing")).run()
    # One writes the report too; the analyses are the same.
    result = invoke(["report" if leave == (2, 2) else "analyze", "run"], tmp_path)
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "analysis" / "summary.json").read_text())
    assert summary["steps_present"] == list(range(max(leave)))
    assert summary["complete"] and "incomplete run" not in result.output
    movement = pd.read_parquet(out / "analysis" / "class_movement.parquet").set_index("class")
    assert sorted(summary["class_movement"]) == sorted(movement.index)
    assert (movement["first"] == 0).all()
    if leave == (1, 1):  # one snapshot only: nobody moved
        assert (movement["displacement"] == 0).all()


def test_a_run_whose_classes_never_meet_has_no_polarization(tmp_path, tiny_config):
    raw = tiny_config("fake", steps=STEPS)
    raw["groups"][0]["leave_at"] = 1
    raw["groups"][1]["join_at"] = 2
    out = tmp_path / "run"
    # Configs are now refused when a step has nobody; run folders made before are analysed.
    Simulation.create(RunConfig.model_validate(raw), out, embedder=get_embedder("hashing")).run()
    result = invoke(["analyze", "run"], tmp_path)
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "analysis" / "summary.json").read_text())
    assert summary["polarization_kind"] is None and summary["steps_present"] == [0, 2, 3]


# --------------------------------------------------------------------- weights and caches
def test_link_or_copy_onto_the_same_file_leaves_no_link(tmp_path):
    from perspectives.store import link_or_copy

    src = tmp_path / "a.bin"
    src.write_bytes(b"weights")
    dst = link_or_copy(src, tmp_path / "b.bin")
    link_or_copy(src, dst)  # dst is already a hard link of src
    link_or_copy(dst, tmp_path / "b.bin")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.bin", "b.bin"]
    assert os.path.samefile(src, dst) and dst.read_bytes() == b"weights"


@pytest.mark.usefixtures("isolated_cache")
def test_a_resumed_run_of_real_agents_leaks_no_weights(tiny_model_dir, tmp_path, tiny_config):
    raw = tiny_config(tiny_model_dir, steps=1)
    del raw["groups"][0]["init"]
    cfg = parse_run_config(raw, "test")
    out = tmp_path / "run"
    Simulation.create(cfg, out, embedder=get_embedder("hashing")).run()
    # The agents' live state is the very file of the last checkpoint: taking it again
    # renamed a hard link onto itself, which leaves the temporary link behind.
    Simulation.resume(out, embedder=get_embedder("hashing")).run()
    assert list((out / "agents").rglob("*.safetensors"))
    assert not list(out.rglob("*.link"))


def test_an_interrupted_initial_fine_tune_leaves_no_work_folder(tmp_path, monkeypatch):
    from perspectives.models.initial import InitialModel, cache_key, initial_agent

    monkeypatch.setenv("PERSPECTIVES_CACHE", str(tmp_path / "cache"))
    spec = InitialModel("m", [("Why?", "because it rains")], model="calm", backend="fake")
    root = tmp_path / "cache" / "initial"
    key = cache_key(spec)
    # What a process killed mid-fine-tune leaves: its work folder and a half-written entry.
    for stale in (f".work-{key}-999999", f".{key}.abc123.tmp"):
        (root / stale).mkdir(parents=True)
        (root / stale / "model.safetensors").write_bytes(b"half")
    agent, cached = initial_agent(spec)
    assert not cached and agent.n_updates == 1
    assert sorted(p.name for p in root.iterdir()) == [key]


@pytest.mark.usefixtures("isolated_cache")
@pytest.mark.parametrize("broken", ["no-tokenizer", "truncated-weights"])
def test_a_model_folder_that_cannot_load_is_one_clear_error(
    tiny_model_dir, tmp_path, tiny_config, broken
):
    def setup(tmp: Path) -> None:
        model = tmp / "model"
        shutil.copytree(tiny_model_dir, model)
        if broken == "no-tokenizer":
            for name in ("tokenizer.json", "tokenizer_config.json"):
                (model / name).unlink(missing_ok=True)
        else:
            weights = model / "model.safetensors"
            weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
        raw = tiny_config(model, steps=1)
        del raw["groups"][0]["init"]
        (tmp / "cfg.yaml").write_text(yaml.safe_dump(raw))

    words = {"no-tokenizer": "holds no tokenizer", "truncated-weights": "cannot load the weights"}
    check_case(
        Case(
            broken, ["run", "cfg.yaml", "--out", "out"], ["{tmp}/model", words[broken]], setup=setup
        ),
        tmp_path,
    )


def test_a_new_run_is_not_written_over_a_run_that_lost_its_record(finished, tmp_path):
    """Without run.json, `run CONFIG --out RUN` would write its config over the folder's and
    continue the steps there as another system."""

    def setup(tmp: Path) -> None:
        run = _copy(finished, tmp)
        (run / "run.json").unlink()
        cfg = yaml.safe_load((run / "config.yaml").read_text())
        cfg["seed"] += 1
        (tmp / "other.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))

    case = Case("lost-record", ["run", "other.yaml", "--out", "run"], ["run/run.json"], setup=setup)
    check_case(case, tmp_path)


def test_too_many_components_names_the_run(finished, tmp_path):
    """In a sweep of many runs, the space's own error would not say which run it is."""

    def setup(tmp: Path) -> None:
        shutil.copytree(finished, tmp / "the-one-run")

    args = ["analyze", "the-one-run", "--n-components", "999"]
    expect = ["error: the-one-run, field 'n_components'", "at most", "points of this run"]
    check_case(Case("components", args, expect, setup=setup), tmp_path)
