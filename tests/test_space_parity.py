"""Parity of PerspectiveSpace with graspologic's ClassicalMDS (the paper's implementation).

The reference outputs are in ``tests/data/golden_cmds.npz``, written by
``benchmarks/make_golden_cmds.py`` in an isolated venv (graspologic pins numpy<2 and is not a
dependency). Coordinates must agree to 1e-6 relative, up to the sign of each axis.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from perspectives.space.dimension import select_dimension
from perspectives.space.estimator import PerspectiveSpace

GOLDEN_PATH = Path(__file__).parent / "data" / "golden_cmds.npz"
RTOL = 1e-6


def _load() -> dict[str, np.ndarray]:
    with np.load(GOLDEN_PATH) as f:
        return {key: f[key] for key in f.files}


GOLDEN = _load()
CASES = [str(c) for c in GOLDEN["cases"]]
SPECTRA = list(range(int(GOLDEN["n_spectra"])))


def relative_difference(ours: np.ndarray, ref: np.ndarray) -> float:
    """``max |ours - ref| / max |ref|`` after matching the sign of every column of ``ours``."""
    assert ours.shape == ref.shape, f"shapes differ: {ours.shape} vs {ref.shape}"
    signs = np.where(np.sum(ours * ref, axis=0) < 0, -1.0, 1.0)
    return float(np.abs(ours * signs - ref).max() / np.abs(ref).max())


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("solver", ["exact", "randomized"])
def test_fixed_components_match_graspologic(case: str, solver: str) -> None:
    k = int(GOLDEN["fixed_components"])
    space = PerspectiveSpace(k, svd_solver=solver).fit(GOLDEN[f"{case}/X"])
    assert space.n_components_ == k
    assert relative_difference(space.embedding_, GOLDEN[f"{case}/embedding_fixed"]) < RTOL


@pytest.mark.parametrize("case", CASES)
def test_elbow_dimension_matches_graspologic(case: str) -> None:
    space = PerspectiveSpace(None, svd_solver="exact").fit(GOLDEN[f"{case}/X"])
    expected = int(GOLDEN[f"{case}/n_components_auto"])
    assert space.n_components_ == expected, (
        f"elbows {space.elbows_}, graspologic's {GOLDEN[f'{case}/elbows_auto'].tolist()}"
    )
    assert space.elbows_ == GOLDEN[f"{case}/elbows_auto"].tolist()
    assert relative_difference(space.embedding_, GOLDEN[f"{case}/embedding_auto"]) < RTOL


@pytest.mark.parametrize("case", CASES)
def test_elbow_coordinates_match_graspologic(case: str) -> None:
    """At graspologic's elbow-chosen dimension the coordinates agree (whatever our elbow)."""
    k = int(GOLDEN[f"{case}/n_components_auto"])
    space = PerspectiveSpace(k, svd_solver="exact").fit(GOLDEN[f"{case}/X"])
    assert relative_difference(space.embedding_, GOLDEN[f"{case}/embedding_auto"]) < RTOL


@pytest.mark.parametrize("index", SPECTRA)
def test_select_dimension_matches_graspologic(index: int) -> None:
    values = GOLDEN[f"spectrum{index}/values"]
    assert select_dimension(values, n_elbows=2) == GOLDEN[f"spectrum{index}/elbows"].tolist()
