"""Shared prefixes: systems that are the same up to a step run those steps once.

Two conditions of a sweep often differ only from some step on: with and without a disruption
at t*, attacks every 2nd or every 5th step. Every random choice of a run comes from a
generator seeded by (seed, t), and a resumed run repeats an uninterrupted one exactly, so a
system can start from a copy of another's run folder at the last step they share
(``RunFolder.fork``) and continue alone. ``shared_steps`` finds that step from the configs.
"""

from __future__ import annotations

import json

import numpy as np

from ..errors import InputError
from ..simulation.config import RunConfig, build_policy
from ..simulation.databases import shared_database_steps
from ..simulation.policies import SystemState

_PROBES = 2


def _draw(policy, cfg: RunConfig, t: int, perspectives: dict) -> tuple:
    """The edges a policy draws at step ``t`` and the state it leaves the step's generator in
    (the interviews draw from it next): what the rest of the step depends on."""
    rng = np.random.default_rng([cfg.seed, t])  # as the engine seeds step t
    state = SystemState(t, cfg.active(t), cfg.classes(), perspectives, rng)
    try:
        edges = frozenset(policy.edges(state))
    except InputError:
        return ("error", id(perspectives))  # unlike any other draw: the systems may differ
    return edges, json.dumps(rng.bit_generator.state, sort_keys=True, default=str)


def shared_steps(a: RunConfig, b: RunConfig) -> int:
    """The last step through which runs of ``a`` and ``b`` are the same system, or -1.

    They are the same at step t when the configs agree on everything but their name,
    ``communication`` and their databases' edges, and at every step up to t their databases
    have the same edges doing the same things and both policies draw the same edges and
    leave the step's generator in the same state, whatever the models' perspectives are (so
    a policy that looks at them, e.g. nearest neighbours, ends the shared prefix: two probe
    states tell). ``a.steps`` if the two systems are the same throughout.
    """
    skip = {"name", "output", "notes", "communication", "databases"}
    if a.model_dump(exclude=skip) != b.model_dump(exclude=skip):
        return -1
    shared = shared_database_steps(a, b)
    if a.communication == b.communication or shared < 0:
        return shared
    policies = (build_policy(a.communication, a), build_policy(b.communication, b))
    rng = np.random.default_rng([a.seed, 23])
    names = a.models()
    probes = [{m: rng.normal(size=2) for m in names} for _ in range(_PROBES)]
    for t in range(1, a.steps + 1):
        draws = []
        for policy in policies:
            seen = {_draw(policy, a, t, p) for p in probes}
            if len(seen) != 1:
                return t - 1  # the edges depend on the state, which may differ from here
            draws.append(seen.pop())
        if draws[0] != draws[1]:
            return min(t - 1, shared)
    return shared
