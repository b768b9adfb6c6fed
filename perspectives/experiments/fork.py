"""Shared prefixes: systems that are the same up to a step run those steps once.

Two conditions of a sweep often differ only from some step on: with and without a disruption
at t*, attacks every 2nd or every 5th step. Every random choice of a run comes from a
generator seeded by (seed, t), and a resumed run repeats an uninterrupted one exactly, so a
system can start from a copy of another's run folder at the last step they share
(``fork_run``) and continue alone. ``shared_steps`` finds that step from the configs.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import yaml

from ..errors import InputError
from ..simulation.config import RunConfig, build_policy
from ..simulation.engine import last_complete_step
from ..simulation.policies import SystemState
from ..store import link_or_copy, write_json, write_text

# Run-folder parts that hold one file per step (see ``simulation.engine``), and the agents' checkpoints.
STEP_PARTS = ("tables/responses", "tables/edges", "tables/events", "embeddings")
_PROBES = 2


def _part(t: int) -> str:
    return f"step-{t:05d}"


def _step_of(path: Path) -> int:
    return int(path.name.split("-")[1].split(".")[0])


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

    They are the same at step t when the configs agree on everything but their name and
    ``communication``, and at every step up to t both policies draw the same edges and leave
    the step's generator in the same state, whatever the models' perspectives are (so a
    policy that looks at them, e.g. nearest neighbours, ends the shared prefix: two probe
    states tell). ``a.steps`` if the two systems are the same throughout.
    """
    skip = {"name", "output", "notes", "communication"}
    if a.model_dump(exclude=skip) != b.model_dump(exclude=skip):
        return -1
    if a.communication == b.communication:
        return a.steps
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
            return t - 1
    return a.steps


def can_fork(source: str | os.PathLike, step: int) -> bool:
    """Whether ``source`` holds step ``step`` complete, with its agents' checkpoint."""
    source = Path(source)
    return last_complete_step(source) >= step and (source / "checkpoints" / _part(step)).is_dir()


def fork_run(source: str | os.PathLike, step: int, cfg: RunConfig, dest: str | os.PathLike) -> Path:
    """Make ``dest`` a run folder of ``cfg`` whose steps 0..``step`` are those of the run in
    ``source`` (linked, or copied across file systems); running ``cfg`` in ``dest`` then
    continues from ``step + 1``. The caller vouches that the two are the same system up to
    ``step`` (``shared_steps``).

    Raises InputError if ``source`` does not hold that step with its checkpoint (a finished
    sweep system keeps none), or ``dest`` is already a run.
    """
    source, dest = Path(source), Path(dest)
    if not can_fork(source, step):
        raise InputError(f"holds no complete step {step} with its checkpoint", source=str(source))
    if (dest / "run.json").exists():
        raise InputError("already a run folder", source=str(dest))
    # Leftovers of an interrupted fork go; progress.json, written last, commits the new one.
    (dest / "progress.json").unlink(missing_ok=True)
    for sub in (*STEP_PARTS, "checkpoints", "agents"):
        shutil.rmtree(dest / sub, ignore_errors=True)
    for sub in STEP_PARTS:
        for p in sorted((source / sub).glob("step-*")):
            if _step_of(p) <= step:
                (dest / sub).mkdir(parents=True, exist_ok=True)
                link_or_copy(p, dest / sub / p.name)
    part = _part(step)
    shutil.copytree(
        source / "checkpoints" / part, dest / "checkpoints" / part, copy_function=link_or_copy
    )
    write_text(dest / "config.yaml", yaml.safe_dump(cfg.model_dump(), sort_keys=False))
    write_json(dest / "progress.json", {"last_complete_step": step})
    write_json(
        dest / "run.json",
        {
            "fingerprint": cfg.fingerprint(),
            "name": cfg.name,
            "steps": cfg.steps,
            "forked_from": {"run": os.path.relpath(source, dest), "step": step},
        },
    )
    return dest
