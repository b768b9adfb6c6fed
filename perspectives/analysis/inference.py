"""Tests on positions in the data-kernel perspective space: has a model changed between two
steps, do two classes occupy different regions, do two conditions differ?

Every test here is the two-sample energy-distance test (Székely & Rizzo) with a permutation
p-value, from ``hyppo`` (the Priebe group's testing library; ``pip install
'perspectives[inference]'``), on data kernels flattened so that Euclidean distance is the
Frobenius distance between data kernels. The samples:

- a model between steps t and t': its data kernel from each replicate of the evaluation
  (``evaluation.replicates`` answers per prompt, sampled) at t and at t';
- two classes at step t: the data kernels of their models (replicates averaged);
- two conditions: any per-system values (a statistic per seed, say).

A permutation p-value is exact under exchangeability: its size holds for any sample size
(``benchmarks/bench_inference.py`` measures it), but with n and m samples it cannot fall
below 1 / C(n + m, n) (4 against 4: 0.014). Each group needs at least 4 samples.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import BackendUnavailable, InputError
from ..simulation.history import evaluation_kernels
from ..simulation.rundir import RunFolder


@dataclass(frozen=True)
class TwoSampleResult:
    """A two-sample test's outcome: the energy statistic, its permutation p-value, the
    sample sizes and the number of permutations."""

    statistic: float
    p_value: float
    n_x: int
    n_y: int
    n_permutations: int

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def _hyppo_energy():
    try:
        from hyppo.ksample import Energy
    except ImportError:
        raise BackendUnavailable(
            "the tests need hyppo: pip install 'perspectives[inference]'"
        ) from None
    return Energy


# hyppo's k-sample tests refuse 3 or fewer samples a group (3 against 3 leaves 20
# arrangements: no p-value below 0.05).
MIN_SAMPLES = 4


def _samples(x, name: str) -> np.ndarray:
    a = np.asarray(x, dtype=float)
    if a.ndim == 1:
        a = a[:, None]
    a = a.reshape(len(a), -1)
    if len(a) < MIN_SAMPLES:
        raise InputError(
            f"a test needs at least {MIN_SAMPLES} samples per group", field=name, value=len(a)
        )
    if not np.all(np.isfinite(a)):
        raise InputError("holds a missing or infinite value", field=name)
    return a


def energy_test(x, y, *, n_permutations: int = 999, seed: int = 0) -> TwoSampleResult:
    """Do samples ``x`` (n, ...) and ``y`` (m, ...) come from one distribution? Each sample is
    flattened (a data kernel (prompts, p) becomes a vector). Returns a ``TwoSampleResult``;
    seeded, so the same call gives the same p-value. Raises InputError for fewer than 4
    samples in a group, shapes that differ, values that are not finite or fewer than 1
    permutation; BackendUnavailable without hyppo."""
    a, b = _samples(x, "x"), _samples(y, "y")
    if a.shape[1] != b.shape[1]:
        raise InputError(
            f"samples of x have {a.shape[1]} values, of y {b.shape[1]}", field="y", value=b.shape
        )
    if n_permutations < 1:
        raise InputError("must be at least 1", field="n_permutations", value=n_permutations)
    energy = _hyppo_energy()
    # auto=False: always the permutation test (hyppo would switch to a chi-square
    # approximation above 20 samples, whose size we have not checked).
    with warnings.catch_warnings():
        # hyppo warns below 1,000 permutations; the caller chose the number, and the
        # p-value's resolution (1 / (n_permutations + 1)) is theirs to weigh.
        warnings.filterwarnings("ignore", "The number of replications is low")
        stat, p = energy().test(a, b, reps=n_permutations, auto=False, random_state=seed)
    return TwoSampleResult(float(stat), float(p), len(a), len(b), n_permutations)


def replicate_kernels(
    run: str | os.PathLike | RunFolder, steps=None
) -> tuple[np.ndarray, pd.DataFrame]:
    """The data kernel of every (t, model, replicate) of a run's evaluations at ``steps``
    (default: all): an array (n, prompts, p) and a frame ``t, model, replicate`` (one row per
    kernel; ``attrs["prompts"]``: the prompts' ids, in the kernels' row order). Raises
    InputError if the run has no evaluation at those steps or a (t, model, replicate) lacks
    some prompts, CorruptStateError for a damaged file or one with more answers to a prompt
    than the others."""
    folder = run if isinstance(run, RunFolder) else RunFolder(run)
    wanted = None if steps is None else set(int(s) for s in steps)
    metas, blocks = [], []
    for answers, vectors in folder.evaluation_snapshots():
        if len(answers) == 0:
            continue
        if wanted is not None and int(answers["t"].iloc[0]) not in wanted:
            continue
        metas.append(answers)
        blocks.append(vectors)
    if not blocks:
        raise InputError(
            "no complete evaluation at these steps",
            source=str(folder.path),
            field="steps",
            value=steps,
        )
    ev = pd.concat(metas, ignore_index=True)
    vec = np.concatenate(blocks)
    prompts = sorted(ev["question_id"].unique())
    index, kernels = evaluation_kernels(ev, vec, ["t", "model", "replicate"], prompts, folder)
    index.attrs["prompts"] = prompts
    return kernels, index


def model_kernels(
    run: str | os.PathLike | RunFolder, steps=None
) -> tuple[np.ndarray, pd.DataFrame]:
    """The data kernel of every (t, model) of a run's evaluations at ``steps`` (default: all),
    its replicates averaged: an array (n, prompts, p) and a frame ``t, model`` (one row per
    kernel, sorted; ``attrs["prompts"]`` as ``replicate_kernels``). Raises InputError as
    ``replicate_kernels``."""
    kernels, index = replicate_kernels(run, steps)
    rows = index.groupby(["t", "model"], sort=True).indices
    keys = pd.DataFrame(list(rows), columns=["t", "model"])
    keys.attrs["prompts"] = index.attrs["prompts"]
    return np.stack([kernels[r].mean(axis=0) for r in rows.values()]), keys


def class_tests(
    kernels: np.ndarray,
    points: pd.DataFrame,
    a: str,
    b: str,
    *,
    n_permutations: int = 999,
    seed: int = 0,
) -> pd.DataFrame:
    """``class_difference`` of classes ``a`` and ``b`` at every step of ``points`` (columns
    t, model, class; one row per kernel) at which both have at least 4 models (classes
    join and leave): a frame ``t, statistic, p_value, n_a, n_b``, empty if there is no
    such step."""
    rows = []
    counts = points.groupby(["t", "class"]).size()
    for t in sorted(points["t"].unique()):
        if min(counts.get((t, a), 0), counts.get((t, b), 0)) < MIN_SAMPLES:
            continue
        res = class_difference(kernels, points, t, a, b, n_permutations=n_permutations, seed=seed)
        rows.append(
            {"t": int(t), "statistic": res.statistic, "p_value": res.p_value}
            | {"n_a": res.n_x, "n_b": res.n_y}
        )
    return pd.DataFrame(rows, columns=["t", "statistic", "p_value", "n_a", "n_b"])


def model_change(
    run: str | os.PathLike | RunFolder,
    model: str,
    t0: int,
    t1: int,
    *,
    n_permutations: int = 999,
    seed: int = 0,
) -> TwoSampleResult:
    """Has ``model`` changed between steps ``t0`` and ``t1``? Its replicate data kernels at
    the two steps, energy test. Raises InputError if the run has fewer than 4 replicates per
    prompt or no evaluation of ``model`` at one of the steps."""
    kernels, index = replicate_kernels(run, [t0, t1])
    groups = []
    for t in (t0, t1):
        rows = np.flatnonzero((index["t"] == t).to_numpy() & (index["model"] == model).to_numpy())
        if len(rows) == 0:
            raise InputError(f"no evaluation of {model!r} at step {t}", field="model", value=model)
        if len(rows) < MIN_SAMPLES:
            raise InputError(
                f"testing a model's change needs at least {MIN_SAMPLES} sampled evaluation "
                f"replicates (evaluation.replicates with sampling on); this run has {len(rows)}",
                field="evaluation.replicates",
                value=len(rows),
            )
        groups.append(kernels[rows])
    return energy_test(groups[0], groups[1], n_permutations=n_permutations, seed=seed)


def class_difference(
    kernels: np.ndarray,
    points: pd.DataFrame,
    t: int,
    a: str,
    b: str,
    *,
    n_permutations: int = 999,
    seed: int = 0,
) -> TwoSampleResult:
    """Do classes ``a`` and ``b`` occupy different regions at step ``t``? The data kernels of
    their models (``History.kernels`` with ``History.points``: columns t, model, class),
    energy test. Raises InputError if a class has fewer than 4 models at ``t``."""
    at = points["t"].to_numpy() == t
    groups = []
    for c in (a, b):
        rows = np.flatnonzero(at & (points["class"] == c).to_numpy())
        if len(rows) < MIN_SAMPLES:
            raise InputError(
                f"class {c!r} has {len(rows)} model(s) at step {t}; a test needs {MIN_SAMPLES}",
                field="class",
                value=c,
            )
        groups.append(kernels[rows])
    return energy_test(groups[0], groups[1], n_permutations=n_permutations, seed=seed)
