"""Communication structures: who may influence whom at each step.

A system is a graph G(t) = (V(t), E(t)); an edge ``(src, dst)`` means ``src`` influences
``dst`` (in the interview mechanic, ``dst`` may interview ``src`` and learn from its answers).
A communication structure is a *policy*: ``E(t) = policy.edges(state)``, where the state holds
the step, the active models, their classes, their perspectives as of the previous step, and a
seeded random generator. Policies combine: switch at a step (a disruption), alternate every k
steps (a "vulnerable" state), union.

The case studies' reduction (one database per model, so models connect directly) is what the
edges describe; a database shared by several models is a vertex of its own (``Database``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from ..errors import InputError

Edge = tuple[str, str]


@dataclass
class SystemState:
    """What a policy may look at when drawing E(t).

    ``t``: the step (1..T; edges of step t are used for the interviews of step t).
    ``models``: the active models. ``classes``: model -> class label.
    ``perspectives``: model -> its point in perspective space as of step t - 1 (1-d or more),
    or None before any is known. ``rng``: a seeded generator for random structures.
    """

    t: int
    models: Sequence[str]
    classes: Mapping[str, str] = field(default_factory=dict)
    perspectives: Mapping[str, np.ndarray] | None = None
    rng: np.random.Generator = field(default_factory=lambda: np.random.default_rng(0))


class Policy(Protocol):
    """A communication structure: the edge set of a step from the system's state.

    What the engine and the analyses need to know of a policy, as attributes (every policy
    here gets them from ``PolicyBase``): ``needs_perspectives`` (it looks at the models'
    perspectives, so the engine computes them before drawing), ``adversaries`` (models that
    attack the others), ``change_points`` (steps where the structure switches).
    """

    needs_perspectives: bool
    adversaries: tuple[str, ...]
    change_points: tuple[int, ...]

    def edges(self, state: SystemState) -> set[Edge]: ...


class PolicyBase:
    """Defaults of the policy attributes, combined over a policy's ``parts()``."""

    def parts(self) -> Sequence[Policy]:
        """The policies this one combines (none for a simple policy)."""
        return ()

    @property
    def needs_perspectives(self) -> bool:
        return any(p.needs_perspectives for p in self.parts())

    @property
    def adversaries(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(a for p in self.parts() for a in p.adversaries))

    @property
    def change_points(self) -> tuple[int, ...]:
        return tuple(sorted({c for p in self.parts() for c in p.change_points}))


def _pairs(sources: Iterable[str], targets: Iterable[str]) -> set[Edge]:
    targets = list(targets)
    return {(s, d) for s in sources for d in targets if s != d}


@dataclass
class Complete(PolicyBase):
    """Every active model may influence every other (the paper's "fully connected")."""

    def edges(self, state: SystemState) -> set[Edge]:
        return _pairs(state.models, state.models)


@dataclass
class IntraClass(PolicyBase):
    """Edges only between models of the same class (the paper's "intra-class only")."""

    def edges(self, state: SystemState) -> set[Edge]:
        return {
            (s, d)
            for s, d in _pairs(state.models, state.models)
            if state.classes.get(s) == state.classes.get(d)
        }


@dataclass
class Adjacency(PolicyBase):
    """A fixed edge list ``[(src, dst), ...]``, restricted to the active models."""

    edge_list: Sequence[Edge]

    @classmethod
    def from_networkx(cls, graph) -> Adjacency:
        """From a networkx graph (a directed graph's edges as they are; an undirected edge
        both ways)."""
        edges = list(graph.edges())
        if not graph.is_directed():
            edges += [(d, s) for s, d in edges]
        return cls([(str(s), str(d)) for s, d in edges])

    def edges(self, state: SystemState) -> set[Edge]:
        active = set(state.models)
        return {(s, d) for s, d in self.edge_list if s in active and d in active and s != d}


@dataclass
class ErdosRenyi(PolicyBase):
    """Each directed edge present with probability ``p``, redrawn every step."""

    p: float

    def edges(self, state: SystemState) -> set[Edge]:
        candidates = sorted(_pairs(state.models, state.models))
        keep = state.rng.random(len(candidates)) < self.p
        return {e for e, k in zip(candidates, keep, strict=True) if k}


@dataclass
class NearestNeighbor(PolicyBase):
    """Each model may only be influenced by its nearest neighbour in perspective space as of
    the previous step (the paper's "local" structure after a disruption). Ties go to the first
    model in the active order."""

    @property
    def needs_perspectives(self) -> bool:
        return True

    def edges(self, state: SystemState) -> set[Edge]:
        if state.perspectives is None:
            raise InputError(
                "nearest-neighbour communication needs the perspectives of the previous step",
                field="communication",
            )
        models = list(state.models)
        Z = np.stack([np.atleast_1d(np.asarray(state.perspectives[m], float)) for m in models])
        D = np.linalg.norm(Z[:, None, :] - Z[None, :, :], axis=-1)
        np.fill_diagonal(D, np.inf)
        return {(models[int(np.argmin(D[i]))], m) for i, m in enumerate(models) if len(models) > 1}


@dataclass
class Isolate(PolicyBase):
    """``inner`` among all models but ``isolated``, which has no edges at all (e.g. the
    adversary in the paper's base state)."""

    isolated: Sequence[str]
    inner: Policy = field(default_factory=Complete)

    def parts(self) -> Sequence[Policy]:
        return (self.inner,)

    def edges(self, state: SystemState) -> set[Edge]:
        rest = [m for m in state.models if m not in set(self.isolated)]
        return self.inner.edges(_with_models(state, rest))


@dataclass
class Vulnerable(PolicyBase):
    """The paper's vulnerable state: the adversary influences every target; targets and the
    adversary have no other in-edges; targets influence the non-targets; the non-targets are
    fully connected among themselves."""

    adversary: str
    targets: Sequence[str]

    @property
    def adversaries(self) -> tuple[str, ...]:
        return (self.adversary,)

    def edges(self, state: SystemState) -> set[Edge]:
        active = list(state.models)
        if self.adversary not in active:
            return Isolate([self.adversary]).edges(state)
        targets = [m for m in self.targets if m in active]
        others = [m for m in active if m != self.adversary and m not in targets]
        return _pairs([self.adversary], targets) | _pairs(targets, others) | _pairs(others, others)


@dataclass
class Switch(PolicyBase):
    """``before`` for t < ``at``, ``after`` from ``at`` on (the paper's disruption)."""

    before: Policy
    after: Policy
    at: int

    def parts(self) -> Sequence[Policy]:
        return (self.before, self.after)

    @property
    def change_points(self) -> tuple[int, ...]:
        return tuple(sorted({self.at, *super().change_points}))

    def edges(self, state: SystemState) -> set[Edge]:
        return (self.before if state.t < self.at else self.after).edges(state)


@dataclass
class Periodic(PolicyBase):
    """``alternate`` at every ``every``-th step (t % every == offset), ``base`` otherwise."""

    base: Policy
    alternate: Policy
    every: int
    offset: int = 0

    def parts(self) -> Sequence[Policy]:
        return (self.base, self.alternate)

    def edges(self, state: SystemState) -> set[Edge]:
        hit = self.every > 0 and state.t % self.every == self.offset % self.every
        return (self.alternate if hit else self.base).edges(state)


@dataclass
class Union(PolicyBase):
    """Edges present in any of ``policies``."""

    policies: Sequence[Policy]

    def parts(self) -> Sequence[Policy]:
        return tuple(self.policies)

    def edges(self, state: SystemState) -> set[Edge]:
        out: set[Edge] = set()
        for p in self.policies:
            out |= p.edges(state)
        return out


@dataclass
class Database(PolicyBase):
    """A database vertex: models with write access add to it; models with read access learn
    from it. Shared by several models, it links all its writers to all its readers."""

    name: str
    writers: Sequence[str]
    readers: Sequence[str]

    def edges(self, state: SystemState) -> set[Edge]:
        active = set(state.models)
        return _pairs(
            [w for w in self.writers if w in active], [r for r in self.readers if r in active]
        )


def in_neighbours(edges: Iterable[Edge], model: str) -> list[str]:
    """Sorted sources of the edges into ``model`` (whom ``model`` may interview)."""
    return sorted(s for s, d in edges if d == model)


def _with_models(state: SystemState, models: Sequence[str]) -> SystemState:
    return SystemState(state.t, list(models), state.classes, state.perspectives, state.rng)


def choose_targets(candidates: Sequence[str], n: int, rng: np.random.Generator) -> list[str]:
    """``n`` targets drawn once, without replacement, from ``candidates`` (seeded)."""
    if n > len(candidates):
        raise InputError(
            f"cannot choose {n} targets among {len(candidates)} models", field="targets", value=n
        )
    return sorted(rng.choice(list(candidates), size=n, replace=False).tolist())
