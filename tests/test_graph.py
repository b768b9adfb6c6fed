"""Communication structures, with explicit expected edge sets for the paper's three cases."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest

from perspectives.errors import InputError
from perspectives.simulation.policies import (
    Adjacency,
    Complete,
    Database,
    ErdosRenyi,
    IntraClass,
    Isolate,
    NearestNeighbor,
    Periodic,
    Switch,
    SystemState,
    Union,
    Vulnerable,
    choose_targets,
    in_neighbours,
)


def state(t, models, **kw):
    return SystemState(t=t, models=models, **kw)


def all_pairs(models):
    return {(s, d) for s in models for d in models if s != d}


def test_cs1_complete_then_nearest_neighbour_from_t_star():
    models = ["a", "b", "c", "d"]
    # a hand-made perspective configuration (as of t - 1): a,b close; c,d close; d nearer c
    z = {"a": np.array([0.0]), "b": np.array([1.0]), "c": np.array([5.0]), "d": np.array([7.0])}
    policy = Switch(Complete(), NearestNeighbor(), at=21)
    assert policy.edges(state(20, models, perspectives=z)) == all_pairs(models)
    expected = {("b", "a"), ("a", "b"), ("d", "c"), ("c", "d")}
    assert policy.edges(state(21, models, perspectives=z)) == expected
    z2 = {
        "a": np.array([0.0, 0.0]),
        "b": np.array([3.0, 0.0]),
        "c": np.array([0.0, 2.0]),
        "d": np.array([3.0, 2.5]),
    }
    assert policy.edges(state(30, models, perspectives=z2)) == {
        ("c", "a"),
        ("d", "b"),
        ("a", "c"),
        ("b", "d"),
    }


NON_ADV = ["m1", "m2", "m3", "m4", "m5"]
ADV = "adv"


def cs2_policy(targets, every):
    return Periodic(base=Isolate([ADV]), alternate=Vulnerable(ADV, targets), every=every)


@pytest.mark.parametrize("n_targets", [0, 1, 2, 5])
@pytest.mark.parametrize("every", [2, 5, 10])
def test_cs2_base_and_vulnerable_states(n_targets, every):
    models = [*NON_ADV, ADV]
    targets = NON_ADV[:n_targets]
    others = [m for m in NON_ADV if m not in targets]
    policy = cs2_policy(targets, every)
    base = all_pairs(NON_ADV)  # non-adversaries fully connected, adversary isolated
    vulnerable = (
        {(ADV, t) for t in targets} | {(t, o) for t in targets for o in others} | all_pairs(others)
    )
    for t in range(1, 21):
        expected = vulnerable if t % every == 0 else base
        assert policy.edges(state(t, models)) == expected, t
    if n_targets:
        e = policy.edges(state(every, models))
        assert in_neighbours(e, targets[0]) == [ADV]  # targets hear only the adversary
        assert in_neighbours(e, ADV) == []


def test_cs2_explicit_two_targets():
    e = cs2_policy(["m1", "m2"], 2).edges(state(2, [*NON_ADV, ADV]))
    assert e == {
        ("adv", "m1"),
        ("adv", "m2"),
        ("m1", "m3"),
        ("m1", "m4"),
        ("m1", "m5"),
        ("m2", "m3"),
        ("m2", "m4"),
        ("m2", "m5"),
        ("m3", "m4"),
        ("m3", "m5"),
        ("m4", "m3"),
        ("m4", "m5"),
        ("m5", "m3"),
        ("m5", "m4"),
    }


def test_cs3_complete_and_intra_class_only():
    models = ["a1", "a2", "b1", "b2"]
    classes = {"a1": "A", "a2": "A", "b1": "B", "b2": "B"}
    s = state(1, models, classes=classes)
    assert Complete().edges(s) == all_pairs(models)
    assert IntraClass().edges(s) == {("a1", "a2"), ("a2", "a1"), ("b1", "b2"), ("b2", "b1")}


def test_adjacency_networkx_union_and_databases():
    g = nx.Graph([("a", "b")])
    assert Adjacency.from_networkx(g).edges(state(1, ["a", "b", "c"])) == {("a", "b"), ("b", "a")}
    dg = nx.DiGraph([("a", "c")])
    u = Union([Adjacency.from_networkx(dg), Adjacency([("c", "b"), ("x", "b")])])
    assert u.edges(state(1, ["a", "b", "c"])) == {("a", "c"), ("c", "b")}  # x is not active
    shared = Database("forum", writers=["a", "b"], readers=["b", "c"])
    assert shared.edges(state(1, ["a", "b", "c"])) == {("a", "b"), ("a", "c"), ("b", "c")}


def test_erdos_renyi_is_seeded_and_redrawn():
    models = [f"m{i}" for i in range(6)]
    p = ErdosRenyi(0.5)
    a = p.edges(state(1, models, rng=np.random.default_rng(1)))
    b = p.edges(state(1, models, rng=np.random.default_rng(1)))
    rng = np.random.default_rng(1)
    c1, c2 = p.edges(state(1, models, rng=rng)), p.edges(state(2, models, rng=rng))
    assert a == b and c1 == a and c1 != c2
    assert 5 < len(a) < 25


def test_leaving_models_lose_their_edges_and_targets_are_seeded():
    assert Complete().edges(state(1, ["a", "b"])) == {("a", "b"), ("b", "a")}
    assert choose_targets(NON_ADV, 2, np.random.default_rng(0)) == choose_targets(
        NON_ADV, 2, np.random.default_rng(0)
    )
    with pytest.raises(InputError, match="cannot choose 6 targets"):
        choose_targets(NON_ADV, 6, np.random.default_rng(0))
    with pytest.raises(InputError, match="needs the perspectives"):
        NearestNeighbor().edges(state(1, ["a", "b"]))


def test_interview_mechanic_picks_in_neighbours_and_skips():
    from perspectives.simulation.mechanics import MECHANICS

    edges = {("b", "a"), ("c", "a"), ("a", "b")}
    rng = np.random.default_rng(0)
    interviews, skipped = MECHANICS["interview"](edges, ["a", "b", "c"], 50, 5, rng)
    assert skipped == ["c"]
    by = {iv.asker: iv for iv in interviews}
    assert by["a"].source in {"b", "c"} and by["b"].source == "a"
    assert len(set(by["a"].questions)) == 5 and max(by["a"].questions) < 50
