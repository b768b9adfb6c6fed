"""Analyses against hand-computed values on small synthetic perspective tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from perspectives.analysis import (
    adversarial_polarization,
    answer_diversity,
    class_movement,
    class_polarization,
    class_trajectories,
    clusters_over_time,
    collapse_note,
    count_clusters,
    dispersion,
    iso_mirror,
    mirror_distances,
    separate_embeddings,
    state_matrices,
)
from perspectives.errors import InputError


def table_from_states(states: np.ndarray, classes: list[str] | None = None) -> pd.DataFrame:
    """A perspectives table from (T, n, d) states."""
    T, n, d = states.shape
    rows = []
    for t in range(T):
        for i in range(n):
            row = {"t": t, "model": f"m{i}", "class": classes[i] if classes else "c"}
            row.update({f"z{j + 1}": states[t, i, j] for j in range(d)})
            rows.append(row)
    return pd.DataFrame(rows)


def moving_then_still(T: int = 10, stop: int = 5, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    z0 = rng.normal(size=(4, 2))
    v = rng.normal(size=(4, 2))
    return np.stack([z0 + min(t, stop) * v for t in range(T)])


def test_iso_mirror_of_linear_motion_then_rest_is_monotone_then_flat():
    states = moving_then_still()
    out = iso_mirror(table_from_states(states))
    psi = out["psi"].to_numpy()
    steps = np.diff(psi[:6])
    assert (steps > 0).all()  # moving: strictly increasing, and psi(0) <= 0
    assert np.allclose(steps, steps[0], rtol=1e-6)  # at a constant rate (a straight path)
    assert np.allclose(psi[5:], psi[5], atol=1e-9)  # still: flat
    assert psi[0] <= 0
    assert out.attrs["variant"] == "frobenius" and out.attrs["n_neighbors"] >= 1


def test_frobenius_distances_between_states_by_hand():
    states = moving_then_still()
    D = mirror_distances(states)
    speed = np.linalg.norm(states[1] - states[0])
    assert D[0, 3] == pytest.approx(3 * speed)
    assert D[5, 9] == pytest.approx(0.0)
    assert D[2, 7] == pytest.approx(3 * speed)


def test_spectral_variant_ignores_a_rotation_of_each_step():
    """Separately fitted spaces differ by an orthogonal map per step: the original variant
    aligns them away; the Frobenius variant would not."""
    states = moving_then_still()
    rng = np.random.default_rng(3)
    rotated = np.stack([z @ np.linalg.qr(rng.normal(size=(2, 2)))[0] for z in states])
    plain = mirror_distances(states, "spectral")
    turned = mirror_distances(rotated, "spectral")
    assert np.allclose(plain, turned, atol=1e-9)
    assert not np.allclose(mirror_distances(rotated), mirror_distances(states))
    psi = iso_mirror(table_from_states(rotated), "spectral")["psi"].to_numpy()
    assert (np.diff(psi[:6]) > 0).all() and np.allclose(psi[5:], psi[5], atol=1e-9)


def test_iso_mirror_edge_cases_and_errors():
    one = table_from_states(moving_then_still(T=1))
    assert iso_mirror(one)["psi"].tolist() == [0.0]
    two = iso_mirror(table_from_states(moving_then_still(T=2)))["psi"].to_numpy()
    assert two[0] < 0 < two[1] and two[1] == pytest.approx(-two[0])
    with pytest.raises(InputError, match="variant"):
        iso_mirror(one, "cosine")
    # A model that leaves is dropped from the system state; one present nowhere throughout fails.
    table = table_from_states(moving_then_still(T=4))
    partial = table[~((table["model"] == "m0") & (table["t"] == 3))]
    _, _, models = state_matrices(partial)
    assert models == ["m1", "m2", "m3"]
    lonely = pd.DataFrame({"t": [0, 1], "model": ["a", "b"], "z1": [0.0, 1.0]})
    with pytest.raises(InputError, match="every step"):
        iso_mirror(lonely)


def test_class_polarization_of_two_classes_moving_apart():
    # Class A at 1 + 0.5 t, class B at -1 - 0.5 t: distance 2 + t, polarization (2 + t) / 2.
    T = 6
    states = np.zeros((T, 4, 1))
    for t in range(T):
        states[t, :2, 0] = 1 + 0.5 * t + np.array([0.1, -0.1])
        states[t, 2:, 0] = -1 - 0.5 * t + np.array([0.2, -0.2])
    table = table_from_states(states, ["A", "A", "B", "B"])
    out = class_polarization(table)
    assert np.allclose(out["distance"], 2 + np.arange(T))
    assert np.allclose(out["polarization"], (2 + np.arange(T)) / 2)
    with pytest.raises(InputError, match="no such class"):
        class_polarization(table, ("A", "C"))
    three = table.assign(**{"class": ["A", "B", "C", "C"] * T})
    with pytest.raises(InputError, match="exactly two"):
        class_polarization(three)


def test_classes_that_start_as_one_have_no_polarization_ratio_not_one_of_1e15():
    # Identical models whose coordinates differ by rounding (0.1 + 0.2 against 0.3) at t = 0:
    # every later distance divided by that read 1e15.
    states = np.full((3, 4, 1), 0.3)
    states[0, :2, 0] = 0.1 + 0.2
    states[1:, :2, 0] = 1.0  # then class A moves away
    table = table_from_states(states, ["A", "A", "B", "B"])
    with pytest.warns(UserWarning, match="distance at the first step is 0"):
        out = class_polarization(table)
    assert 0 < out["distance"].iloc[0] < 1e-15 and out["polarization"].isna().all()
    spread = dispersion(table)
    assert 0 < spread["spread"].iloc[0] < 1e-15
    assert spread[["spread_rel", "nn_distance_rel"]].isna().all().all()
    assert np.isnan(spread["locality"].iloc[0]) and spread["locality"].iloc[1] == 0.0


def test_polarization_in_the_whole_space_sees_what_z1_does_not():
    # The classes keep their z1 gap of 2 but move apart along z2 by t each: the 1-d
    # polarization stays 1, the whole-space distance is sqrt(4 + (2t)^2).
    T = 5
    states = np.zeros((T, 4, 2))
    for t in range(T):
        states[t, :2] = [1.0, t]
        states[t, 2:] = [-1.0, -t]
    table = table_from_states(states, ["A", "A", "B", "B"])
    assert np.allclose(class_polarization(table)["polarization"], 1.0)
    full = class_polarization(table, axis="all")
    expected = np.sqrt(4 + (2 * np.arange(T)) ** 2)
    assert np.allclose(full["distance"], expected)
    assert np.allclose(full["polarization"], expected / 2)
    assert full.equals(class_polarization(table, axis=["z1", "z2"]))
    adv = adversarial_polarization(table, "B", axis="all")
    assert np.allclose(adv["distance"], expected)
    with pytest.raises(InputError, match="missing column"):
        class_polarization(table, axis="z9")
    with pytest.raises(InputError, match="at least one column"):
        class_polarization(table, axis=[])


def test_adversarial_polarization_falls_as_the_others_are_pulled_in():
    # The adversary stays at 0; the others' mean goes 4, 3, 2, 1, 0.
    T = 5
    states = np.zeros((T, 4, 1))
    for t in range(T):
        states[t, :3, 0] = (4 - t) + np.array([-1.0, 0.0, 1.0])
    table = table_from_states(states, ["s", "s", "s", "adv"])
    by_model = adversarial_polarization(table, "m3")
    by_class = adversarial_polarization(table, "adv")
    assert np.allclose(by_model["polarization"], (4 - np.arange(T)) / 4)
    assert by_model.equals(by_class)
    with pytest.raises(InputError, match="names no model"):
        adversarial_polarization(table, "nobody")
    with pytest.warns(UserWarning, match="undefined"):
        flat = adversarial_polarization(table.assign(z1=0.0), "m3")
    assert flat["polarization"].isna().all()


def blobs(centres, per=5, spread=0.05, seed=0):
    rng = np.random.default_rng(seed)
    return np.concatenate([c + spread * rng.normal(size=(per, 2)) for c in centres])


def test_count_clusters_finds_well_separated_groups():
    x = blobs([(0, 0), (10, 0), (0, 10)])
    k, labels, _ = count_clusters(x, seed=0)
    assert k == 3
    assert len(set(labels[:5])) == len(set(labels[5:10])) == len(set(labels[10:])) == 1
    assert count_clusters(blobs([(0, 0)], per=10))[0] == 1
    assert count_clusters(np.zeros((1, 2)))[0] == 1
    with pytest.raises(InputError):
        count_clusters(np.array([[np.nan, 0.0], [1.0, 1.0]]))


def test_clusters_over_time_and_ari_between_steps():
    x0 = blobs([(0, 0), (10, 0), (0, 10)])
    x1 = x0.copy()  # the same partition: ARI 1
    x2 = x0.copy()
    x2[[0, 5, 10]] = x2[[5, 10, 0]]  # one model of each cluster moves to the next cluster
    states = np.stack([x0, x1, x2])
    clusters, labels = clusters_over_time(table_from_states(states))
    assert clusters["n_clusters"].tolist() == [3, 3, 3]
    assert np.isnan(clusters["ari_prev"][0])
    assert clusters["ari_prev"][1] == pytest.approx(1.0)
    # Hand value: contingency of 3 groups of 5 where one member of each moved on.
    from sklearn.metrics import adjusted_rand_score

    truth = [0] * 5 + [1] * 5 + [2] * 5
    moved = list(truth)
    moved[0], moved[5], moved[10] = 1, 2, 0
    assert clusters["ari_prev"][2] == pytest.approx(adjusted_rand_score(truth, moved))
    assert clusters["ari_prev"][2] < 0.7
    assert set(labels.columns) == {"t", "model", "cluster"} and len(labels) == 45


def test_class_trajectories_means_and_spreads():
    states = np.array([[[1.0], [3.0], [10.0]], [[2.0], [4.0], [20.0]]])
    out = class_trajectories(table_from_states(states, ["A", "A", "B"]))
    a = out[out["class"] == "A"]
    assert a["mean"].tolist() == [2.0, 3.0] and a["std"].tolist() == [1.0, 1.0]
    assert out[out["class"] == "B"]["n"].tolist() == [1, 1]


def test_class_movement_displacement_against_spread():
    # Class A: two models at x = 0 and 2 (spread 1), mean moves from (1, 0) to (4, 4): 5.
    # Class B: one model that never moves (spread 0, ratio undefined).
    states = np.array(
        [
            [[0.0, 0.0], [2.0, 0.0], [9.0, 9.0]],
            [[3.0, 4.0], [5.0, 4.0], [9.0, 9.0]],
        ]
    )
    out = class_movement(table_from_states(states, ["A", "A", "B"])).set_index("class")
    assert out.loc["A", "displacement"] == pytest.approx(5.0)
    assert out.loc["A", "spread"] == pytest.approx(1.0)
    assert out.loc["A", "ratio"] == pytest.approx(5.0)
    assert (out.loc["A", "first"], out.loc["A", "last"], out.loc["A", "n"]) == (0, 1, 2)
    assert out.loc["B", "displacement"] == 0.0 and np.isnan(out.loc["B", "ratio"])


def test_class_movement_spread_averages_over_steps_and_uses_every_axis():
    # Spread 1 at t = 0 (along z1) and 3 at t = 1 (along z2): the mean spread is 2.
    states = np.array([[[-1.0, 0.0], [1.0, 0.0]], [[0.0, -3.0], [0.0, 3.0]]])
    out = class_movement(table_from_states(states, ["A", "A"]))
    assert out["spread"].iloc[0] == pytest.approx(2.0)
    assert out["displacement"].iloc[0] == pytest.approx(0.0)


def test_separate_embeddings_fit_each_step_alone():
    rng = np.random.default_rng(0)
    kernels = rng.normal(size=(8, 5, 3))
    points = pd.DataFrame({"t": [0] * 4 + [1] * 4, "model": [f"m{i}" for i in range(4)] * 2})
    out = separate_embeddings(kernels, points, 2)
    assert out.groupby("t").size().tolist() == [4, 4]
    # Within a step, distances in the space equal the kernels' Frobenius distances when d is
    # the full rank of that step (3 points after centring span at most 3 dims).
    full = separate_embeddings(kernels, points, 3)
    z = full[full["t"] == 0][["z1", "z2", "z3"]].to_numpy()
    k = kernels[:4].reshape(4, -1)
    assert np.linalg.norm(z[0] - z[1]) == pytest.approx(np.linalg.norm(k[0] - k[1]))


def test_dispersion_by_hand_local_sinks_against_converging_as_a_whole():
    # Three models on a line at 0, 1, 3; then two of them form a sink (0, 0.1) while the third
    # stays apart; then the whole population shrinks by half around its mean.
    start = np.array([[0.0], [1.0], [3.0]])
    sink = np.array([[0.0], [0.1], [3.0]])
    shrunk = start.mean() + 0.5 * (start - start.mean())
    out = dispersion(table_from_states(np.stack([start, sink, shrunk])))
    # t = 0: mean 4/3, distances 4/3, 1/3, 5/3 -> spread 10/9; nearest 1, 1, 2 -> 4/3.
    assert out["spread"].iloc[0] == pytest.approx(10 / 9)
    assert out["nn_distance"].iloc[0] == pytest.approx(4 / 3)
    assert out["locality"].iloc[0] == pytest.approx(1.2)
    # t = 1: mean 31/30; spread (31 + 28 + 59) / 90; nearest 0.1, 0.1, 2.9.
    assert out["spread"].iloc[1] == pytest.approx(118 / 90)
    assert out["nn_distance"].iloc[1] == pytest.approx(3.1 / 3)
    assert out["locality"].iloc[1] < 0.8 < out["spread_rel"].iloc[1]  # a sink, not convergence
    # t = 2: everything halves, so locality does not change.
    assert out["spread_rel"].iloc[2] == pytest.approx(0.5)
    assert out["nn_distance_rel"].iloc[2] == pytest.approx(0.5)
    assert out["locality"].iloc[2] == pytest.approx(1.2)
    with pytest.raises(InputError, match="at least two models"):
        dispersion(table_from_states(start[None, :1]))


def test_answer_diversity_by_hand_a_population_collapsing_onto_one_answer():
    # t = 0: four different answers; t = 1: three of four alike (spaces around do not count);
    # t = 2: two pairs, a tie broken by sorted order.
    answers = pd.DataFrame(
        {
            "t": [0] * 4 + [1] * 4 + [2] * 4,
            "text": ["a", "b", "c", "d", "echo", " echo", "echo ", "d", "y", "x", "y", "x"],
        }
    )
    out = answer_diversity(answers)
    assert out["t"].tolist() == [0, 1, 2]
    assert out["answers"].tolist() == [4, 4, 4]
    assert out["distinct"].tolist() == pytest.approx([1.0, 0.5, 0.5])
    assert out["top_share"].tolist() == pytest.approx([0.25, 0.75, 0.5])
    assert out["top_answer"].tolist()[1:] == ["echo", "x"]
    with pytest.raises(InputError, match="missing column"):
        answer_diversity(answers.rename(columns={"text": "answer"}))
    with pytest.raises(InputError, match="no answers"):
        answer_diversity(answers.iloc[:0])


def test_shared_is_the_share_of_answers_another_model_gave_to_the_same_question():
    # t = 0: m1 and m2 agree on q1 (2 of 6 answers); m3's "yes" answers another question,
    # and its two replicates of "no" on q2 are one model, so neither counts.
    # t = 1: all three give one template to both questions.
    answers = pd.DataFrame(
        {
            "t": [0] * 6 + [1] * 6,
            "model": ["m1", "m2", "m3", "m3", "m3", "m1"] + ["m1", "m2", "m3"] * 2,
            "question_id": ["q1", "q1", "q2", "q2", "q3", "q3"] + ["q1"] * 3 + ["q2"] * 3,
            "text": ["yes", "yes ", "no", "no", "yes", "maybe"] + ["X is X."] * 6,
        }
    )
    out = answer_diversity(answers)
    assert out["shared"].tolist() == pytest.approx([2 / 6, 1.0])
    assert "shared" not in answer_diversity(answers.drop(columns="model"))
    # With m3 a source (an adversary), m1 repeating its "yes" to q3: of the others' three
    # answers at t = 0 that one is adopted and the two "yes" to q1 are shared; at t = 1 all
    # four of theirs are m3's answers too.
    answers.loc[5, "text"] = "yes"
    out = answer_diversity(answers, sources=["m3"])
    assert out["shared"].tolist() == pytest.approx([2 / 3, 0.0])
    assert out["adopted"].tolist() == pytest.approx([1 / 3, 1.0])
    late = answer_diversity(answers[(answers["model"] != "m3") | (answers["t"] == 1)], ["m3"])
    assert np.isnan(late["adopted"].iloc[0]) and late["adopted"].iloc[1] == 1.0


def test_collapse_note_names_the_answer_a_population_repeats():
    answers = pd.DataFrame(
        {"t": [0] * 4 + [1] * 4, "text": ["a", "b", "c", "d", "b", "echo", "echo", "echo"]}
    )
    out = answer_diversity(answers)
    assert collapse_note(out) == "at t = 1, 75% of the evaluation answers are one text: 'echo'"
    assert collapse_note(out, share=0.8) is None
    assert collapse_note(out.iloc[:1]) is None  # t = 0: four different answers
    blank = answer_diversity(pd.DataFrame({"t": [3, 3], "text": ["", " "]}))
    assert collapse_note(blank).endswith("one text: the empty answer")
    # With the questions known: the echo answers questions q1..q3 of four; two models that
    # agree on the one question they were asked have reached a consensus, not a collapse.
    asked = answers.assign(question_id=["q1", "q2", "q3", "q4"] * 2)
    out = answer_diversity(asked)
    assert out["questions"].tolist() == [4, 4] and out["top_questions"].tolist() == [1, 3]
    assert collapse_note(out) == (
        "at t = 1, 75% of the evaluation answers (to 3 of 4 questions) are one text: 'echo'"
    )
    agree = pd.DataFrame({"t": [0, 0], "question_id": ["q1", "q1"], "text": ["yes", "yes"]})
    assert collapse_note(answer_diversity(agree)) is None


def test_the_report_warns_of_a_collapsed_population_and_escapes_the_answer():
    from types import SimpleNamespace

    from perspectives.reporting.report import _warnings_html

    diversity = answer_diversity(pd.DataFrame({"t": [5] * 3, "text": ["<b>&"] * 2 + ["ok"]}))
    run = SimpleNamespace(diversity=diversity, missing_steps=[6, 7], steps=[0, 5])
    notes = _warnings_html(run)
    assert "Collapsed: at t = 5, 67% of the evaluation answers are one text" in notes
    assert "&lt;b&gt;&amp;" in notes and "<b>" not in notes
    assert "2 snapshot(s) missing (t = 6..7)" in notes
    assert _warnings_html(SimpleNamespace(diversity=None, missing_steps=[], steps=[0])) == ""


def test_the_cli_prints_an_answer_with_brackets_as_it_is():
    from types import SimpleNamespace

    from perspectives.cli.app import _say_warnings, console

    text = "[/] see [citation needed]"
    diversity = answer_diversity(pd.DataFrame({"t": [2, 2], "text": [text, text]}))
    run = SimpleNamespace(
        diversity=diversity, missing_steps=[], steps=[0, 2], run_dir="runs/[a]", summary={}
    )
    with console.capture() as out:
        _say_warnings(run)
    assert "runs/[a]: at t = 2, 100% of the evaluation answers are one text" in out.get()
    assert "[/] see [citation needed]" in " ".join(out.get().split())


def test_the_cli_warns_when_steps_ran_on_two_dtype_paths():
    """A run resumed on another kind of machine: its greedy answers changed path mid-run."""
    from types import SimpleNamespace

    from perspectives.cli.app import _say_warnings, console

    paths = [
        {"device": "cpu", "answer_dtype": "bfloat16", "train_dtype": "bfloat16", "steps": [0, 1]},
        {"device": "cpu", "answer_dtype": "float32", "train_dtype": "float32", "steps": [2]},
    ]
    run = SimpleNamespace(
        diversity=None, missing_steps=[], steps=[0, 2], run_dir="r", summary={"compute": paths}
    )
    with console.capture() as out:
        _say_warnings(run)
    text = " ".join(out.get().split())
    assert "computed in more than one way" in text and "float32, training float32 (t = 2)" in text
    assert "cpu: answering bfloat16" in text  # paths recorded without their threads
    # The same dtypes with another thread count: another path, named by its threads.
    paths[1] = {**paths[0], "threads": 2, "steps": [0]}
    paths[0] = {**paths[0], "threads": 1, "steps": list(range(1, 25))}
    with console.capture() as out:
        _say_warnings(run)
    text = " ".join(out.get().split())
    assert "cpu 1 thread: answering bfloat16" in text and "cpu 2 threads: answering" in text
    assert "(t = 1..24)" in text  # a run of steps, not 24 numbers
    assert "same OMP_NUM_THREADS" in text
    with console.capture() as out:
        _say_warnings(SimpleNamespace(**{**run.__dict__, "summary": {"compute": paths[:1]}}))
    assert out.get() == ""


def test_an_interrupted_analysis_leaves_the_previous_one_whole(tmp_path, tiny_config, run_to_end):
    """Ctrl-C while ``analyze`` wrote its files left tables of the new analysis beside the
    old summary and figures; now the folder holds one analysis or the other."""
    from typer.testing import CliRunner

    import perspectives.reporting.figures as figures
    from perspectives.cli.app import app

    run = run_to_end(tiny_config("fake", steps=2), tmp_path / "run")
    runner = CliRunner()
    assert runner.invoke(app, ["analyze", str(run)]).exit_code == 0
    analysis = run / "analysis"
    before = {p.name: p.read_bytes() for p in analysis.iterdir()}
    other = ["analyze", str(run), "--n-components", "1"]  # another space: other files

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(figures, "isomirror_png", interrupted)
        result = runner.invoke(app, other)
    assert result.exit_code == 130, result.output
    assert {p.name: p.read_bytes() for p in analysis.iterdir()} == before
    assert runner.invoke(app, other).exit_code == 0
    after = {p.name: p.read_bytes() for p in analysis.iterdir()}
    assert after.keys() == before.keys() and after["summary.json"] != before["summary.json"]
