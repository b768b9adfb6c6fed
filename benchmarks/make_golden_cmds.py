"""Write the golden reference file ``tests/data/golden_cmds.npz`` from graspologic's ClassicalMDS.

graspologic (the paper's implementation) pins ``numpy<2``, so it lives in its own venv and is
never a dependency of the project. For several seeded, structured inputs ``X`` of shape
``(n, m, p)`` (a few clusters of low-rank kernels, a low-rank within-cluster spread, and
noise; n = 15, 60, 200, 500) this script fits ``ClassicalMDS`` twice, with
``n_components=None`` (graspologic's elbow choice) and with ``n_components=3``, and stores the
inputs, coordinates, chosen dimensions and elbows, plus the graspologic and numpy versions.
It also stores graspologic's ``select_dimension`` elbows for a few hand-made spectra.
``tests/test_space_parity.py`` checks ``PerspectiveSpace`` against it.

Run (from the repository root)::

    python3 -m venv benchmarks/.venv-graspologic
    benchmarks/.venv-graspologic/bin/pip install graspologic
    benchmarks/.venv-graspologic/bin/python benchmarks/make_golden_cmds.py
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

# (name, n, m, p, n_clusters, seed)
CASES: list[tuple[str, int, int, int, int, int]] = [
    ("n15", 15, 5, 8, 3, 101),
    ("n60", 60, 6, 10, 4, 202),
    ("n200", 200, 10, 16, 4, 303),
    ("n500", 500, 8, 12, 5, 404),
]
FIXED_COMPONENTS = 3
# Spectra (sorted descending) for graspologic's select_dimension alone: a two-value tail and a
# wide dynamic range, where computing the split variances from running sums loses precision.
ELBOW_SPECTRA: list[list[float]] = [
    [1.1, 0.2],
    [9.0, 8.5, 1.1, 0.2],
    [1e8, 3e-3, 1e-3],
    [5e4, 4e4, 1e4, 20.0, 10.0, 5.0, 0.0, 0.0, 0.0],
]
DEFAULT_OUT = Path(__file__).resolve().parents[1] / "tests" / "data" / "golden_cmds.npz"


def structured_points(
    n: int, m: int, p: int, n_clusters: int, rng: np.random.Generator
) -> np.ndarray:
    """``n`` kernels ``(m, p)``: cluster centres of rank 2, a rank-2 spread, and noise."""
    labels = rng.integers(0, n_clusters, size=n)
    labels[:n_clusters] = np.arange(n_clusters)  # every cluster is used
    scales = np.linspace(4.0, 2.0, n_clusters)
    centres = np.stack(
        [s * rng.standard_normal((m, 2)) @ rng.standard_normal((2, p)) / np.sqrt(2) for s in scales]
    )
    spread_dirs = rng.standard_normal((2, m, p))
    spread = rng.standard_normal((n, 2)) * np.array([1.0, 0.5])
    noise = 0.1 * rng.standard_normal((n, m, p))
    return centres[labels] + np.einsum("nk,kmp->nmp", spread, spread_dirs) + noise


def main() -> None:
    """Fit graspologic's ClassicalMDS on every case and save the golden file."""
    import graspologic
    from graspologic.embed import ClassicalMDS, select_dimension

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()

    data: dict[str, np.ndarray] = {
        "graspologic_version": np.array(graspologic.__version__),
        "numpy_version": np.array(np.__version__),
        "cases": np.array([c[0] for c in CASES]),
        "fixed_components": np.array(FIXED_COMPONENTS),
    }
    for name, n, m, p, n_clusters, seed in CASES:
        X = structured_points(n, m, p, n_clusters, np.random.default_rng(seed))
        auto = ClassicalMDS(n_components=None)
        emb_auto = auto.fit_transform(X)
        fixed = ClassicalMDS(n_components=FIXED_COMPONENTS)
        emb_fixed = fixed.fit_transform(X)
        data[f"{name}/X"] = X
        data[f"{name}/embedding_auto"] = emb_auto
        data[f"{name}/n_components_auto"] = np.array(auto.n_components_)
        data[f"{name}/embedding_fixed"] = emb_fixed
        # The elbows ClassicalMDS found: select_dimension on its double-centred matrix.
        D2 = auto.dissimilarity_matrix_**2
        B = -0.5 * (D2 - D2.mean(0) - D2.mean(1)[:, None] + D2.mean())
        elbows, _ = select_dimension(B, n_elbows=auto.n_elbows)
        data[f"{name}/elbows_auto"] = np.array(elbows)
        print(f"{name}: n={n} m={m} p={p} elbows={elbows} n_components={auto.n_components_}")
    for i, spectrum in enumerate(ELBOW_SPECTRA):
        values = np.array(spectrum)
        data[f"spectrum{i}/values"] = values
        data[f"spectrum{i}/elbows"] = np.array(select_dimension(values, n_elbows=2)[0])
    data["n_spectra"] = np.array(len(ELBOW_SPECTRA))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, **data)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
