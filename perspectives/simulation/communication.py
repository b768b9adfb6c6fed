"""The communication config, typed: one pydantic model per policy kind, each with ``build``.

A ``communication`` mapping in a run config is validated against the model its ``type`` names
(a discriminated union), so an unknown kind or key is a field-level error before any work.
``build(ctx)`` turns it into a policy (``simulation.policies``), checking the names it refers
to against the run's models, groups and classes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Literal

import numpy as np
from pydantic import Field, StrictInt

from ..config import Strict
from ..errors import ConfigError
from . import policies as P


@dataclass
class BuildContext:
    """What building a policy may look at: the run's models, their groups and classes, T and
    the seed (the adversary's targets are drawn once from it), and the config's label."""

    models: Sequence[str]
    groups: dict[str, list[str]]  # group name or class label -> its models
    steps: int
    seed: int
    label: str = "config"

    def refs(self, names: Sequence[str], path: str) -> list[str]:
        """Model names for ``names`` (each a model, group or class); ConfigError otherwise."""
        out: list[str] = []
        for name in names:
            if name in self.models:
                out.append(name)
            elif name in self.groups:
                out += self.groups[name]
            else:
                raise ConfigError(
                    "names no model, group or class of this config",
                    source=self.label,
                    field=path,
                    value=name,
                )
        return out


def check_period(every: int, offset: int, ctx: BuildContext, path: str) -> None:
    """A periodic switch must fire: ``offset`` below ``every`` and some step t in 1..T with
    t % every == offset. Raises ConfigError naming the field."""
    if offset >= every:
        raise ConfigError(
            f"must be within 0..{every - 1} (the steps t with t % every == offset)",
            source=ctx.label,
            field=f"{path}.offset",
            value=offset,
        )
    first = offset if offset >= 1 else every
    if first > ctx.steps:
        raise ConfigError(
            f"the first switch would be at step {first}, after the last ({ctx.steps})",
            source=ctx.label,
            field=f"{path}.every",
            value=every,
        )


class _Spec(Strict):
    def build(self, ctx: BuildContext, path: str = "communication") -> P.Policy:
        raise NotImplementedError


class CompleteSpec(_Spec):
    """Every active model may influence every other."""

    type: Literal["complete"] = "complete"

    def build(self, ctx: BuildContext, path: str = "communication") -> P.Policy:
        return P.Complete()


class IntraClassSpec(_Spec):
    """Edges only within a class."""

    type: Literal["intra_class"] = "intra_class"

    def build(self, ctx: BuildContext, path: str = "communication") -> P.Policy:
        return P.IntraClass()


class NearestNeighborSpec(_Spec):
    """Each model hears only its nearest neighbour in perspective space (as of t - 1)."""

    type: Literal["nearest_neighbor"] = "nearest_neighbor"

    def build(self, ctx: BuildContext, path: str = "communication") -> P.Policy:
        return P.NearestNeighbor()


class ErdosRenyiSpec(_Spec):
    """Each directed edge with probability ``p``, redrawn every step."""

    type: Literal["erdos_renyi"] = "erdos_renyi"
    p: float = Field(ge=0, le=1)

    def build(self, ctx: BuildContext, path: str = "communication") -> P.Policy:
        return P.ErdosRenyi(self.p)


class AdjacencySpec(_Spec):
    """A fixed edge list ``[[src, dst], ...]``; a group or class stands for each of its
    models (``[a, b]``: every model of a to every model of b, no model to itself)."""

    type: Literal["adjacency"] = "adjacency"
    edges: list[Annotated[list[str], Field(min_length=2, max_length=2)]]

    def build(self, ctx: BuildContext, path: str = "communication") -> P.Policy:
        pairs: list[tuple[str, str]] = []
        for i, (s, d) in enumerate(self.edges):
            field = f"{path}.edges.{i}"
            if s == d and s in ctx.models:
                # The engine never lets a model interview itself: the edge would do nothing.
                raise ConfigError(
                    "an edge from a model to itself", source=ctx.label, field=field, value=s
                )
            srcs, dsts = ctx.refs([s], field), ctx.refs([d], field)
            pairs += [(a, b) for a in srcs for b in dsts if a != b]
        return P.Adjacency(pairs)


class SwitchSpec(_Spec):
    """``before`` until step ``at``, ``after`` from it on (the paper's disruption)."""

    type: Literal["switch"] = "switch"
    at: StrictInt
    before: CommunicationSpec
    after: CommunicationSpec

    def build(self, ctx: BuildContext, path: str = "communication") -> P.Policy:
        if not 1 <= self.at <= ctx.steps:
            raise ConfigError(
                f"must be within 1..{ctx.steps}",
                source=ctx.label,
                field=f"{path}.at",
                value=self.at,
            )
        return P.Switch(
            self.before.build(ctx, f"{path}.before"),
            self.after.build(ctx, f"{path}.after"),
            self.at,
        )


class PeriodicSpec(_Spec):
    """``alternate`` at every ``every``-th step (t % every == offset), ``base`` otherwise."""

    type: Literal["periodic"] = "periodic"
    every: StrictInt = Field(ge=1)
    base: CommunicationSpec
    alternate: CommunicationSpec
    offset: StrictInt = Field(0, ge=0)

    def build(self, ctx: BuildContext, path: str = "communication") -> P.Policy:
        check_period(self.every, self.offset, ctx, path)
        return P.Periodic(
            self.base.build(ctx, f"{path}.base"),
            self.alternate.build(ctx, f"{path}.alternate"),
            self.every,
            self.offset,
        )


class UnionSpec(_Spec):
    """Edges of any of ``of``."""

    type: Literal["union"] = "union"
    of: list[CommunicationSpec] = Field(min_length=1)

    def build(self, ctx: BuildContext, path: str = "communication") -> P.Policy:
        return P.Union([s.build(ctx, f"{path}.of[{i}]") for i, s in enumerate(self.of)])


class IsolateSpec(_Spec):
    """``models`` have no edges; ``inner`` among the others."""

    type: Literal["isolate"] = "isolate"
    models: list[str]
    inner: CommunicationSpec = Field(default_factory=CompleteSpec)

    def build(self, ctx: BuildContext, path: str = "communication") -> P.Policy:
        return P.Isolate(
            ctx.refs(self.models, f"{path}.models"), self.inner.build(ctx, f"{path}.inner")
        )


class AdversarySpec(_Spec):
    """The paper's case study 2: the adversary is isolated, and every ``every``-th step is
    vulnerable with ``targets`` targets drawn once (seeded) from the other models."""

    type: Literal["adversary"] = "adversary"
    adversary: str
    targets: StrictInt = Field(ge=0)
    every: StrictInt = Field(ge=1)
    offset: StrictInt = Field(0, ge=0)

    def build(self, ctx: BuildContext, path: str = "communication") -> P.Policy:
        check_period(self.every, self.offset, ctx, path)
        adversary = ctx.refs([self.adversary], f"{path}.adversary")[0]
        others = [m for m in ctx.models if m != adversary]
        if self.targets > len(others):
            raise ConfigError(
                f"at most {len(others)} targets",
                source=ctx.label,
                field=f"{path}.targets",
                value=self.targets,
            )
        targets = P.choose_targets(others, self.targets, np.random.default_rng([ctx.seed, 7]))
        return P.Periodic(
            P.Isolate([adversary]), P.Vulnerable(adversary, targets), self.every, self.offset
        )


class DatabaseSpec(_Spec):
    """A shorthand for a database shared by ``writers`` and ``readers`` as edges alone: every
    reader may interview every writer. A database with items of its own, read and write edges
    over time and a place in the perspective space is a run's ``databases:`` entry
    (``simulation.databases``)."""

    type: Literal["database"] = "database"
    writers: list[str]
    readers: list[str]
    name: str = "database"

    def build(self, ctx: BuildContext, path: str = "communication") -> P.Policy:
        return P.Database(
            self.name,
            ctx.refs(self.writers, f"{path}.writers"),
            ctx.refs(self.readers, f"{path}.readers"),
        )


CommunicationSpec = Annotated[
    CompleteSpec
    | IntraClassSpec
    | NearestNeighborSpec
    | ErdosRenyiSpec
    | AdjacencySpec
    | SwitchSpec
    | PeriodicSpec
    | UnionSpec
    | IsolateSpec
    | AdversarySpec
    | DatabaseSpec,
    Field(discriminator="type"),
]
POLICY_KINDS = (
    "complete",
    "intra_class",
    "nearest_neighbor",
    "erdos_renyi",
    "adjacency",
    "switch",
    "periodic",
    "union",
    "isolate",
    "adversary",
    "database",
)

for _cls in (SwitchSpec, PeriodicSpec, UnionSpec, IsolateSpec):
    _cls.model_rebuild()
