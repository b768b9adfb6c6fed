"""Control charts, change points and two-sample tests against hand-computed values, and the
monitor of a run folder."""

from __future__ import annotations

import math
import re
import shutil

import numpy as np
import pandas as pd
import pytest
from interrupted import rewind
from typer.testing import CliRunner

from perspectives.analysis import (
    adaptive_chart,
    alarms,
    change_points,
    class_difference,
    cusum_chart,
    energy_test,
    ewma_chart,
    fixed_chart,
    model_change,
    run_chart,
)
from perspectives.analysis.changepoints import _best_split_gain, noise_scale
from perspectives.cli import app
from perspectives.errors import InputError

REF = [1.0, -1.0, 1.0, -1.0]  # mean 0, sd sqrt(4/3)
SD = math.sqrt(4 / 3)


def test_fixed_chart_limits_from_the_reference_period_by_hand():
    chart = fixed_chart([0, 1, 2, 1, 0, 10, 2], reference=5)
    sd = math.sqrt(0.7)
    assert chart["center"].iloc[0] == pytest.approx(0.8)
    assert chart["upper"].iloc[5] == pytest.approx(0.8 + 3 * sd)
    assert chart["lower"].iloc[5] == pytest.approx(0.8 - 3 * sd)
    assert chart["alarm"].tolist() == [False] * 5 + [True, False]
    a = alarms(chart)
    assert a["t"].tolist() == [5] and a["direction"].tolist() == ["up"]


def test_adaptive_chart_uses_the_trailing_window_by_hand():
    chart = adaptive_chart([1, 2, 3, 2, 10, 2], window=3)
    assert np.isnan(chart["upper"].iloc[2])  # still burning in
    assert chart["center"].iloc[3] == pytest.approx(2.0)
    assert chart["upper"].iloc[3] == pytest.approx(5.0)  # mean 2 + 3 * sd 1
    assert chart["upper"].iloc[4] == pytest.approx(7 / 3 + 3 * math.sqrt(1 / 3))
    assert chart["alarm"].tolist() == [False, False, False, False, True, False]


def test_a_flat_series_that_differs_only_by_rounding_raises_no_alarm():
    # A static adversary's position: the same number, up to its last digit, at every step.
    # The band has no width there, and the last digit was taken for a change.
    x = np.full(8, -0.7000510966722451)
    x[3], x[6] = np.nextafter(x[3], 0), np.nextafter(x[6], -1)
    for chart in (
        adaptive_chart(x, window=2),
        fixed_chart(x, reference=2),
        ewma_chart(x, reference=2),
        cusum_chart(x, reference=2),
    ):
        assert not chart["alarm"].any(), chart
    x[5] += 1e-6  # a change the series' own flatness makes visible is still one
    assert adaptive_chart(x, window=2)["alarm"].iloc[5]


def test_a_slow_ramp_evades_the_adaptive_chart_but_not_the_fixed_one():
    rng = np.random.default_rng(0)
    x = rng.normal(0, 1, 200)
    x[100:] += np.linspace(0, 8, 100)  # 0.08 sigma per step
    adaptive = adaptive_chart(x, window=30, burn_in=50)
    fixed = fixed_chart(x, reference=50)
    # The band follows the drift: a stray alarm or so, where the fixed chart rings throughout.
    assert adaptive["alarm"].iloc[100:].sum() <= 3
    assert fixed["alarm"].iloc[100:].sum() >= 50
    # A sudden step of the same size is caught by both at once.
    y = rng.normal(0, 1, 200)
    y[100:] += 8
    assert adaptive_chart(y, window=30, burn_in=50)["alarm"].iloc[100]
    assert fixed_chart(y, reference=50)["alarm"].iloc[100]


def test_ewma_statistic_and_its_exact_limits_by_hand():
    chart = ewma_chart([*REF, 4.0, 0.0], reference=4, lam=0.5)
    assert np.isnan(chart["statistic"].iloc[:4]).all()
    assert chart["statistic"].iloc[4] == pytest.approx(2.0)
    assert chart["statistic"].iloc[5] == pytest.approx(1.0)
    assert chart["upper"].iloc[4] == pytest.approx(3 * SD * math.sqrt(1 / 3 * (1 - 0.25)))
    assert chart["upper"].iloc[5] == pytest.approx(3 * SD * math.sqrt(1 / 3 * (1 - 0.0625)))
    assert chart["alarm"].tolist() == [False] * 4 + [True, False]


def test_cusum_accumulates_in_sigma_units_by_hand():
    chart = cusum_chart([*REF, *([2 * SD] * 4), -10 * SD], reference=4)
    assert chart["statistic"].iloc[4:8].tolist() == pytest.approx([1.5, 3.0, 4.5, 6.0])
    assert chart["alarm"].tolist() == [False] * 7 + [True, True]
    assert chart["statistic"].iloc[8] < -5  # the downward sum takes over, signed


def test_charts_refuse_bad_input():
    with pytest.raises(InputError, match="reference"):
        fixed_chart([1, 2, 3], reference=5)
    with pytest.raises(InputError, match="missing or infinite"):
        fixed_chart([1, np.nan, 3, 4], reference=2)
    with pytest.raises(InputError, match="window"):
        adaptive_chart([1, 2, 3], window=1)
    with pytest.raises(InputError, match="lam"):
        ewma_chart(REF, reference=2, lam=0)
    with pytest.raises(InputError, match="chart"):
        run_chart(REF, "shewhart", reference=2)
    with pytest.raises(InputError, match="cusum chart"):
        run_chart(REF, "cusum", window=2)


def test_best_split_gain_is_the_drop_in_squared_error_by_hand():
    seg = np.array([[0.0], [0.0], [1.0], [1.0]])
    assert _best_split_gain(seg, 1) == pytest.approx(1.0)  # SSE 1 -> 0 at the middle
    seg = np.array([[0.0], [3.0], [0.0]])
    # Best split [0, 3 | 0] or [0 | 3, 0]: 6 - 4.5 = 1.5 either way.
    assert _best_split_gain(seg, 1) == pytest.approx(1.5)
    assert noise_scale(np.array([[0.0], [0.0], [0.0]])).tolist() == [1.0]


def test_change_points_find_a_step_and_not_noise():
    rng = np.random.default_rng(1)
    x = rng.normal(0, 1, 60)
    x[30:] += 3
    found = change_points(pd.Series(x, index=np.arange(60) * 2), n_permutations=199)
    assert len(found) == 1
    assert abs(found["index"].iloc[0] - 30) <= 1
    assert found["t"].iloc[0] == 2 * found["index"].iloc[0]  # the series' own steps
    assert found["shift"].iloc[0] == pytest.approx(3, abs=0.6)
    assert found["p_value"].iloc[0] <= 0.01
    quiet = change_points(rng.normal(0, 1, 60), n_permutations=199)
    assert (quiet["p_value"] > 0.01).all()
    # Multivariate: a shift in two of five dimensions.
    z = rng.normal(0, 1, (40, 5))
    z[25:, :2] += 2.5
    found = change_points(z, n_permutations=199)
    assert [abs(i - 25) <= 1 for i in found["index"]] == [True]
    assert change_points(x, n_permutations=99, seed=4).equals(
        change_points(x, n_permutations=99, seed=4)
    )


def test_energy_test_separates_shifted_samples_and_is_seeded():
    rng = np.random.default_rng(2)
    x = rng.normal(0, 1, (12, 3, 2))  # 12 "data kernels" of 3 prompts x 2
    y = rng.normal(1.5, 1, (12, 3, 2))
    shifted = energy_test(x, y, n_permutations=499)
    same = energy_test(x, rng.normal(0, 1, (12, 3, 2)), n_permutations=499)
    assert shifted.p_value <= 0.01 < same.p_value
    assert shifted.statistic > same.statistic
    assert energy_test(x, y, n_permutations=99, seed=5) == energy_test(
        x, y, n_permutations=99, seed=5
    )
    with pytest.raises(InputError, match="at least 4"):
        energy_test(x[:3], y)
    with pytest.raises(InputError, match="values"):
        energy_test(x, y[:, :2])


def _sampled_run(tiny_config, run_to_end, tmp_path):
    raw = tiny_config(
        "fake",
        steps=2,
        evaluation={
            "n_prompts": 4,
            "replicates": 6,
            "sampling": {"do_sample": True, "max_new_tokens": 6},
        },
    )
    return run_to_end(raw, tmp_path / "run")


def test_model_change_from_evaluation_replicates(tiny_config, run_to_end, tmp_path):
    from perspectives.simulation.history import load_history

    run = _sampled_run(tiny_config, run_to_end, tmp_path)
    res = model_change(run, "a-1", 0, 2, n_permutations=199)
    assert res.n_x == res.n_y == 6
    assert 0 < res.p_value <= 1
    assert model_change(run, "a-1", 0, 2, n_permutations=199) == res  # seeded
    with pytest.raises(InputError, match="no evaluation"):
        model_change(run, "nobody", 0, 2)
    hist = load_history(run)
    assert hist is not None
    with pytest.raises(InputError, match="class 'a' has 2 model"):
        class_difference(hist.kernels, hist.points, 2, "a", "b")


def test_class_difference_on_kernels_of_two_classes():
    rng = np.random.default_rng(3)
    kernels = np.concatenate([rng.normal(0, 1, (5, 3, 4)), rng.normal(2, 1, (5, 3, 4))])
    points = pd.DataFrame({"t": 7, "model": [f"m{i}" for i in range(10)]})
    points["class"] = ["a"] * 5 + ["b"] * 5
    res = class_difference(kernels, points, 7, "a", "b", n_permutations=499)
    assert (res.n_x, res.n_y) == (5, 5)
    assert res.p_value < 0.02  # 5 against 5: the smallest exact p-value is 1/252
    same = class_difference(rng.normal(0, 1, (10, 3, 4)), points, 7, "a", "b")
    assert same.p_value > 0.05


def test_model_change_needs_replicates(tiny_config, run_to_end, tmp_path):
    run = run_to_end(tiny_config("fake", steps=1), tmp_path / "run")
    with pytest.raises(InputError, match="replicates"):
        model_change(run, "a-1", 0, 1)


def test_monitor_command_writes_alarms_of_a_run(tiny_config, run_to_end, tmp_path):
    run = run_to_end(tiny_config("fake", steps=8), tmp_path / "run")
    result = CliRunner().invoke(app, ["monitor", str(run), "--window", "3", "--alpha", "1"])
    assert result.exit_code == 0, result.output
    assert "alarm(s) (adaptive chart, k = 3)" in result.output
    events = pd.read_parquet(run / "analysis" / "alarms.parquet")
    assert set(events["kind"]) <= {"alarm", "change point"}
    # alpha 1 reports every change point found; the trajectory of learning models moves.
    assert (events["kind"] == "change point").any()
    assert events["t"].between(0, 8).all()
    again = CliRunner().invoke(app, ["monitor", str(run), "--chart", "cusum", "--reference", "9"])
    assert again.exit_code == 0
    assert "too few for a cusum chart" in again.output
    bad = CliRunner().invoke(app, ["monitor", str(run), "--chart", "bogus"])
    assert bad.exit_code != 0 and "chart" in bad.output and "Traceback" not in bad.output
    # A setting the chart does not use is refused, not ignored.
    for args, field in (
        (["--chart", "cusum", "--k", "2"], "'k'"),
        (["--chart", "fixed", "--window", "3"], "'window'"),
        (["--reference", "3"], "'reference'"),
    ):
        unused = CliRunner().invoke(app, ["monitor", str(run), *args])
        assert unused.exit_code == 2 and f"field {field}" in unused.output, unused.output
        assert "not used by the" in unused.output
    # Class names print as typed: ":a:" is not an emoji code. The adaptive chart's note
    # for a series too short for it says so.
    short = CliRunner().invoke(app, ["monitor", str(run), "--window", "50"])
    assert "z1:a: 9 snapshots, too few for an adaptive chart" in short.output, short.output


def test_an_infinite_step_is_left_out_of_its_chart_and_named(tiny_config, run_to_end, tmp_path):
    # A ratio to a zero start is infinite: the chart failed and took the report with it.
    from perspectives.reporting.monitor import monitor_run
    from perspectives.reporting.run_analysis import analyze_run

    result = analyze_run(run_to_end(tiny_config("fake", steps=8), tmp_path / "run"))
    result.dispersion.loc[result.dispersion["t"] == 4, "spread_kernel_rel"] = np.inf
    out = monitor_run(result)
    assert "spread: infinite at t = 4; those steps are left out of its chart" in out.notes
    spread = out.charts[out.charts["series"] == "spread"]
    assert 4 not in spread["t"].tolist() and len(spread) == 8


def test_monitor_follows_a_run_as_its_steps_land(tiny_config, tmp_path):
    import threading
    import time

    from perspectives.simulation.config import parse_run_config
    from perspectives.simulation.engine import Simulation
    from perspectives.space.embed import get_embedder

    cfg = parse_run_config(tiny_config("fake", steps=8), "test")
    sim = Simulation.create(
        cfg,
        tmp_path / "run",
        embedder=get_embedder("hashing"),
        on_phase=lambda t, phase: time.sleep(0.05),  # a slow system, watched while it runs
    )
    # The monitor needs one complete step to start from.
    runner = threading.Thread(target=sim.run)
    runner.start()
    try:
        result = CliRunner().invoke(
            app, ["monitor", str(tmp_path / "run"), "--follow", "--interval", "0.1"]
        )
    finally:
        runner.join()
    assert result.exit_code == 0, result.output
    seen = [int(line.split()[1]) for line in result.output.splitlines() if "complete" in line]
    assert seen[-1] == 8 and len(seen) >= 3 and seen == sorted(seen)
    assert (tmp_path / "run" / "analysis" / "alarms.parquet").exists()


def test_following_a_run_no_process_runs_says_so_and_waits(tiny_config, tmp_path, monkeypatch):
    import time

    from perspectives.simulation.config import parse_run_config
    from perspectives.simulation.engine import Simulation
    from perspectives.space.embed import get_embedder

    cfg = parse_run_config(tiny_config("fake", steps=3), "test")
    sim = Simulation.create(cfg, tmp_path / "run", embedder=get_embedder("hashing"))
    sleep = time.sleep

    def resume_while_waiting(seconds: float) -> None:  # the run goes on while it is watched
        if sim.last_complete_step() < 0:
            sim.run()
        sleep(min(seconds, 0.01))

    monkeypatch.setattr(time, "sleep", resume_while_waiting)
    result = CliRunner().invoke(
        app, ["monitor", str(tmp_path / "run"), "--follow", "--interval", "0.1"]
    )
    assert result.exit_code == 0, result.output
    said = " ".join(result.output.split())
    assert "no process is running this run now: waiting for its steps all the same" in said
    assert "step 3 of 3 complete" in said
    alone = CliRunner().invoke(app, ["monitor", str(tmp_path / "run"), "--interval", "1"])
    assert alone.exit_code == 2 and "--interval is the pause between looks" in alone.output


def test_departure_is_the_start_of_the_final_stretch_of_rejections():
    from perspectives.reporting.control import departure

    p = pd.Series([1.0, 0.01, 0.2, 0.01, 0.03], index=[0, 2, 4, 6, 8])
    assert departure(p, 0.05) == 6
    assert departure(p, 0.005) is None  # the last step does not reject
    assert departure(p, 0.5) == 2
    assert departure(pd.Series([0.01, 0.02]), 0.05) == 0
    assert departure(pd.Series([], dtype=float), 0.05) is None


def _adversary_config(tiny_config, targets: int) -> dict:
    """Five fake learners and a fake adversary that reaches ``targets`` of them every 2nd step."""
    return tiny_config(
        "fake",
        steps=6,
        groups=[
            {"name": "model", "count": 5, "backend": "fake", "model": "calm"},
            {
                "name": "adversary",
                "count": 1,
                "backend": "fake",
                "model": "loud",
                "learning": False,
            },
        ],
        communication={
            "type": "adversary",
            "adversary": "adversary",
            "targets": targets,
            "every": 2,
            "offset": 1,
        },
    )


@pytest.fixture
def attacked_and_control(tiny_config, run_to_end, tmp_path):
    attacked = run_to_end(_adversary_config(tiny_config, 5), tmp_path / "attacked")
    control = run_to_end(_adversary_config(tiny_config, 0), tmp_path / "control")
    return attacked, control


def test_a_run_against_its_control_departs_where_the_attack_starts(attacked_and_control):
    from perspectives.reporting.control import compare_to_control

    attacked, control = attacked_and_control
    cmp = compare_to_control(attacked, control, n_permutations=199)
    table = cmp.steps.set_index("t")
    assert cmp.learners == [f"model-{i}" for i in range(1, 6)] and cmp.fixed == ["adversary-1"]
    assert cmp.exposures == [1, 3, 5]  # every 2nd step from 1, as configured
    assert cmp.graph_changes == [1, 3, 5] and cmp.onset == 1  # the vulnerable steps' graphs
    assert table["graph_differs"].tolist() == [False, True, False, True, False, True, False]
    # Same seed, same start: nothing differs before the first attack.
    assert table.loc[0, "distance"] == 0 and table.loc[0, "p_value"] == 1
    # The attacked learners are closer to the adversary than the control's at every step.
    assert (table.loc[1:, "pull:adversary-1"] < 0).all()
    assert (table.loc[1:, "pull_rel:adversary-1"] < -0.1).all()
    # 5 against 5 learners: the smallest p-value is about 2/252.
    assert (table.loc[1:, "p_value"] < 0.05).all()
    assert cmp.departure == 1 and cmp.delay == 0
    # The fake learners all start alike: no spread to measure the distance in.
    assert table["distance_rel"].isna().all() and "start identical" in cmp.notes[0]
    # A run against itself never departs.
    same = compare_to_control(attacked, attacked, n_permutations=99)
    assert (same.steps["distance"] == 0).all() and same.departure is None
    assert same.exposures == [] and same.delay is None
    assert same.graph_changes == [] and same.onset is None


def _disruption_config(tiny_config, at: int | None) -> dict:
    """Three calm and two loud fake learners on a complete graph; from step ``at`` (None:
    never) each may only interview its nearest neighbour, as in case study 1."""
    communication = (
        {"type": "complete"}
        if at is None
        else {
            "type": "switch",
            "at": at,
            "before": {"type": "complete"},
            "after": {"type": "nearest_neighbor"},
        }
    )
    return tiny_config(
        "fake",
        steps=6,
        groups=[
            {"name": "calm", "count": 3, "backend": "fake", "model": "calm"},
            {"name": "loud", "count": 2, "backend": "fake", "model": "loud"},
        ],
        communication=communication,
    )


def test_a_disruption_of_the_graph_is_the_onset_when_no_adversary_is_exposed(
    tiny_config, run_to_end, tmp_path
):
    from perspectives.reporting.control import compare_to_control, summary_line

    disrupted = run_to_end(_disruption_config(tiny_config, 3), tmp_path / "disrupted")
    control = run_to_end(_disruption_config(tiny_config, None), tmp_path / "control")
    cmp = compare_to_control(disrupted, control, n_permutations=199)
    table = cmp.steps.set_index("t")
    assert cmp.fixed == [] and cmp.exposures == []
    # The same system up to t* = 3: same graphs and answers; nearest neighbours from then on.
    assert cmp.graph_changes == [3, 4, 5, 6] and cmp.onset == 3
    assert (table.loc[:2, "distance"] == 0).all() and not table.loc[:2, "graph_differs"].any()
    assert table.loc[3:, "graph_differs"].all() and (table.loc[3:, "distance"] > 0).all()
    # Five fake learners a side: the runs differ, the test cannot tell at every step.
    assert cmp.departure is None and cmp.delay is None
    assert "graph first differs from the control's at t=3" in summary_line(cmp)
    from perspectives.reporting.report import control_chart

    fig = control_chart(cmp.steps)
    marks = [s for s in fig.layout.shapes if s.line.dash == "dot"]
    assert [s.x0 for s in marks] == [3]  # one line at the onset, not one per changed step
    assert any(a.text == "graph differs from here" for a in fig.layout.annotations)


def test_a_control_must_match_the_run(attacked_and_control, tiny_config, run_to_end, tmp_path):
    from perspectives.reporting.control import compare_to_control

    attacked, control = attacked_and_control
    with pytest.raises(InputError, match="alpha"):
        compare_to_control(attacked, control, alpha=0)
    with pytest.raises(InputError, match="not a run folder"):
        compare_to_control(attacked, tmp_path)
    other = _adversary_config(tiny_config, 0)
    other["evaluation"] = {**other["evaluation"], "n_prompts": 3}
    with pytest.raises(InputError, match="other prompts") as err:
        compare_to_control(attacked, run_to_end(other, tmp_path / "other"))
    assert re.search(
        r"\(3 against \d+: \d only in the control, e\.g\. 'nt-\d+'; \d only in the run",
        str(err.value),
    )
    small = run_to_end(tiny_config("fake", steps=2), tmp_path / "small")
    with pytest.raises(InputError, match="share 0 learning model"):
        compare_to_control(attacked, small)
    # The same system embedded by another embedder cannot be compared.
    from perspectives.simulation.config import parse_run_config
    from perspectives.simulation.engine import Simulation
    from perspectives.space.embed import HashingEmbedder

    cfg = parse_run_config(_adversary_config(tiny_config, 0), "test")
    wide = Simulation.create(cfg, tmp_path / "wide", embedder=HashingEmbedder(64))
    wide.run()
    with pytest.raises(InputError, match="embedded in 64 dimensions"):
        compare_to_control(attacked, tmp_path / "wide")
    # A control still running is compared on the steps both have, and says so.
    running = tmp_path / "running"
    shutil.copytree(control, running)
    rewind(running, 3, (4, 5, 6))
    partial = compare_to_control(attacked, running)
    assert partial.steps["t"].tolist() == [0, 1, 2, 3]
    assert "the run's steps t = 4..6 have no counterpart in the other: not compared" in (
        partial.notes
    )
    # Another system as the control departs before the attack: named as such.
    loud = _adversary_config(tiny_config, 0)
    loud["groups"][0]["model"] = "loud"
    odd = compare_to_control(attacked, run_to_end(loud, tmp_path / "loud"))
    assert odd.onset == 1 and bool(odd.steps["reject"].iloc[0])
    assert any("differ at t=0, before the intervention at t=1" in n for n in odd.notes)
    assert not any(
        "before the intervention" in n for n in compare_to_control(attacked, control).notes
    )
    # A control created but not run yet: named, not a traceback.
    Simulation.create(cfg, tmp_path / "unrun", embedder=HashingEmbedder())
    with pytest.raises(InputError, match="unrun.*no complete evaluation"):
        compare_to_control(attacked, tmp_path / "unrun")
    # A damaged control is named, as `analyze` names it, not blended into the test: one
    # model's answers relabelled as another's (the test ran on four learners, silently), and
    # a NaN in the embeddings (an error without a file).
    from perspectives.errors import CorruptStateError
    from perspectives.simulation.rundir import RunFolder

    relabelled = tmp_path / "relabelled"
    shutil.copytree(control, relabelled)
    part = RunFolder(relabelled).table_file("responses", 3)
    rows = pd.read_parquet(part)
    rows.loc[(rows["model"] == "model-2") & (rows["phase"] == "eval"), "model"] = "model-1"
    rows.to_parquet(part)  # the part's digest of its evaluation rows no longer matches
    with pytest.raises(CorruptStateError, match=r"step-00003.parquet: its evaluation answers"):
        compare_to_control(attacked, relabelled)
    rows.attrs.clear()  # as a tool writing a new part would: then the rows themselves tell
    rows.to_parquet(part)
    with pytest.raises(CorruptStateError, match="of 'model-1' at t = 3 .* where the others have 1"):
        compare_to_control(attacked, relabelled)
    shutil.rmtree(relabelled)
    shutil.copytree(control, relabelled)
    vectors_file = RunFolder(relabelled).embeddings_file(3)
    vectors = np.load(vectors_file)
    vectors[0, 0] = np.nan
    np.save(vectors_file, vectors)
    with pytest.raises(CorruptStateError, match=r"step-00003\.npy.*not finite"):
        compare_to_control(attacked, relabelled)


def test_monitor_against_a_control_writes_it_and_the_report_shows_it(
    attacked_and_control, tiny_config, run_to_end, tmp_path
):
    from perspectives.reporting.report import run_report
    from perspectives.reporting.run_analysis import analyze_run

    attacked, control = attacked_and_control
    result = CliRunner().invoke(app, ["monitor", str(attacked), "--control", str(control)])
    assert result.exit_code == 0, result.output
    assert "t=3  distance" in result.output and "toward adversary-1 +" in result.output
    assert "departed from the control at t=1" in result.output
    assert "first exposure at t=1, a delay of 0 step(s)" in result.output
    table = pd.read_parquet(attacked / "analysis" / "control.parquet")
    assert table["t"].tolist() == list(range(7)) and table["exposed"].sum() == 3
    events = pd.read_parquet(attacked / "analysis" / "alarms.parquet")
    dep = events[events["kind"] == "departure"]
    assert dep["t"].tolist() == [1] and dep["p_value"].iloc[0] < 0.05
    page = run_report(analyze_run(attacked)).read_text()
    assert "Against the control" in page and str(control) in page
    assert "Compared up to" not in page
    # A comparison written when the run had fewer steps says so.
    table[table["t"] <= 4].to_parquet(attacked / "analysis" / "control.parquet")
    page = run_report(analyze_run(attacked)).read_text()
    assert (
        "Compared up to t = 4; the run has steps to t = 6: run <code>perspectives monitor" in page
    )
    # ... and when the control is what stops it, says that instead.
    rewind(control, 4, (5, 6))
    page = run_report(analyze_run(attacked)).read_text()
    assert "the run has steps to t = 6: the control is complete to t = 4 only" in page
    # A damaged comparison file costs its section, not the page.
    (attacked / "analysis" / "control.parquet").write_text("not parquet")
    page = run_report(analyze_run(attacked)).read_text()
    assert "cannot be read" in page and "Control charts" in page
    missing = CliRunner().invoke(app, ["monitor", str(attacked), "--control", "nowhere"])
    assert missing.exit_code != 0 and "nowhere" in missing.output
    assert "Traceback" not in missing.output
    # The run as its own control, or one too small for the test: refused before the
    # analysis (which is what takes a monitor its time), so analysis/ is left as it was.
    small = _adversary_config(tiny_config, 0)
    small["groups"][0]["count"] = 1
    small = run_to_end(small, tmp_path / "small")
    before = {p.name: p.stat().st_mtime_ns for p in (attacked / "analysis").iterdir()}
    for other, said in ((attacked, "is the run itself"), (small, "share 1 learning")):
        result = CliRunner().invoke(app, ["monitor", str(attacked), "--control", str(other)])
        assert result.exit_code != 0 and said in result.output, result.output
        assert "Traceback" not in result.output
    after = {p.name: p.stat().st_mtime_ns for p in (attacked / "analysis").iterdir()}
    assert after == before


def test_class_tests_at_every_step_by_hand():
    from perspectives.analysis import class_difference, class_tests

    rng = np.random.default_rng(4)
    kernels = np.concatenate([rng.normal(0, 1, (8, 3, 2)), rng.normal(3, 1, (8, 3, 2))])
    points = pd.DataFrame({"t": [0] * 8 + [5] * 8, "model": [f"m{i % 8}" for i in range(16)]})
    points["class"] = (["a"] * 4 + ["b"] * 4) * 2
    tests = class_tests(kernels, points, "a", "b", n_permutations=199)
    assert tests["t"].tolist() == [0, 5] and (tests[["n_a", "n_b"]] == 4).all().all()
    # Step 0: both classes from one distribution; step 5: all of them shifted alike.
    one = class_difference(kernels, points, 5, "a", "b", n_permutations=199)
    assert tests["p_value"].iloc[1] == one.p_value
    assert tests["p_value"].gt(0.05).all()
    points["class"] = ["a"] * 4 + ["b"] * 4 + ["a"] * 4 + ["b"] * 4
    kernels[12:] += 5  # class b moves away at step 5
    tests = class_tests(kernels, points, "a", "b", n_permutations=199)
    assert tests["p_value"].iloc[0] > 0.05 and tests["p_value"].iloc[1] < 0.05
    # A step at which a class has fewer than 4 models (it left) is not tested.
    late = pd.DataFrame({"t": 9, "model": ["m0", "m1", "m2", "m3", "m4", "m5"]})
    late["class"] = ["a"] * 4 + ["b"] * 2
    more = np.concatenate([kernels, rng.normal(0, 1, (6, 3, 2))])
    tests = class_tests(more, pd.concat([points, late], ignore_index=True), "a", "b")
    assert tests["t"].tolist() == [0, 5]


def test_monitor_tests_a_two_class_run_step_by_step(tiny_config, run_to_end, tmp_path):
    raw = tiny_config("fake", steps=2)
    for group in raw["groups"]:
        group["count"] = 4
    raw["communication"] = {"type": "intra_class"}
    run = run_to_end(raw, tmp_path / "run")
    result = CliRunner().invoke(app, ["monitor", str(run)])
    assert result.exit_code == 0, result.output
    assert "classes a vs b (energy test, 4 against 4 models): p = " in result.output
    tests = pd.read_parquet(run / "analysis" / "class_tests.parquet")
    assert tests["t"].tolist() == [0, 1, 2] and set(tests["class_a"]) == {"a"}
    # Two personas that hear only their own class stay apart: 4 against 4 at its floor.
    assert (tests["p_value"] < 0.05).all()
    # Two models a class are too few to test, and the monitor says so.
    small = run_to_end(tiny_config("fake", steps=1), tmp_path / "small")
    result = CliRunner().invoke(app, ["monitor", str(small)])
    assert "classes not tested (a 2, b 2 models): a test needs 4 a class" in result.output


def test_monitor_a_sweep_against_its_control_condition(tiny_config, run_to_end, tmp_path):
    import json

    sweep = tmp_path / "sweep"
    systems = []
    for condition, targets in (("targets-0", 0), ("targets-5", 5), ("targets-2", 2)):
        folder = f"{condition}/seed-0"
        if condition != "targets-2":  # a system not run yet
            run_to_end(_adversary_config(tiny_config, targets), sweep / folder)
        status = "pending" if condition == "targets-2" else "done"
        # The runs' own seed (3): a record naming another is refused as another run.
        systems.append({"condition": condition, "seed": 3, "folder": folder, "status": status})
    record = {"conditions": ["targets-0", "targets-5", "targets-2"], "systems": systems}
    (sweep / "sweep.json").write_text(json.dumps(record))
    result = CliRunner().invoke(app, ["monitor", str(sweep), "--control", "targets-0"])
    assert result.exit_code == 0, result.output
    assert "departed" in result.output and "targets-5" in result.output
    assert "targets-2 seed 3: no complete step yet" in result.output
    table = pd.read_parquet(sweep / "analysis" / "control.parquet")
    assert table["condition"].tolist() == ["targets-5"] and table["departure"].tolist() == [1]
    assert table["closer_at_T:adversary-1"].iloc[0] > 0.1 and set(table["control"]) == {"targets-0"}
    assert (sweep / "targets-5" / "seed-0" / "analysis" / "control.parquet").exists()
    for args, words in (
        ([], "give --control CONDITION"),
        (["--control", "targets-9"], "not a condition of this sweep"),
        (["--control", "targets-0", "--follow", "--k", "2"], "--follow, --k: for a run folder"),
        (["--control", "targets-0", "--chart", "cusum"], "--chart: for a run folder"),
        (["--control", "targets-0", "--interval", "1"], "--interval: for a run folder"),
        (["--control", "targets-0", "--chart", "adaptive"], "--chart: for a run folder"),
    ):
        bad = CliRunner().invoke(app, ["monitor", str(sweep), *args])
        assert bad.exit_code == 2 and words in bad.output, bad.output
        assert "Traceback" not in bad.output


def test_a_control_comparison_follows_models_that_join(tiny_config, run_to_end, tmp_path):
    from perspectives.reporting.control import compare_to_control

    def raw(targets: int) -> dict:
        cfg = _adversary_config(tiny_config, targets)
        cfg["groups"][0]["count"] = 3
        cfg["groups"].insert(
            1, {"name": "late", "count": 2, "backend": "fake", "model": "calm", "join_at": 2}
        )
        return cfg

    attacked = run_to_end(raw(2), tmp_path / "attacked")
    control = run_to_end(raw(0), tmp_path / "control")
    cmp = compare_to_control(attacked, control, n_permutations=99)
    # Steps 0 and 1 have 3 learners in both runs, too few to test; from 2 on, 5.
    assert cmp.steps["t"].tolist() == [2, 3, 4, 5, 6]
    assert (cmp.steps["n_models"] == 5).all()
    assert any("left out: 0, 1" in n for n in cmp.notes)
    assert cmp.exposures == [1, 3, 5]  # the attack at t = 1 is counted, though not tested
