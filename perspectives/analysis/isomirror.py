"""The iso-mirror (Athreya et al., 2022): a 1-d summary of how a whole system moves.

The system state at step t is the matrix Z(t) (n models x d) of all models' perspectives.
Distances between steps, classical MDS of that T x T matrix (the "mirror", dimension by the
elbow), then Isomap to one dimension with the fewest neighbours that keep the neighbourhood
graph connected; the sign is fixed so that psi at the first step is <= 0.

Two variants of the distance between steps:

- ``"frobenius"``: ||Z(s) - Z(t)||_F in a jointly fitted space (no alignment needed);
- ``"spectral"`` (the original): ||Z(s) W - Z(t)||_2 after the orthogonal Procrustes
  alignment W, for spaces fitted separately at each step (see ``separate_embeddings``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.linalg import orthogonal_procrustes
from scipy.sparse.csgraph import connected_components
from sklearn.manifold import Isomap
from sklearn.neighbors import kneighbors_graph

from ..errors import InputError
from ..space.estimator import PerspectiveSpace
from .trajectories import _require, z_columns

VARIANTS = ("frobenius", "spectral")


def state_matrices(
    table: pd.DataFrame, columns: list[str] | None = None
) -> tuple[np.ndarray, list, list[str]]:
    """Stack Z(t) for every step: (T, n, d), the steps and the models (sorted).

    Only models present at every step are kept (a system state compares the same models).
    Raises InputError when no model is present throughout.
    """
    _require(table, ("t", "model"))
    cols = columns or z_columns(table)
    steps = sorted(table["t"].unique())
    counts = table.groupby("model")["t"].nunique()
    models = sorted(counts[counts == len(steps)].index)
    if not models:
        raise InputError("no model is present at every step", field="model")
    sub = table[table["model"].isin(models)].set_index(["t", "model"]).sort_index()
    z = sub[cols].to_numpy(float).reshape(len(steps), len(models), len(cols))
    return z, steps, models


def mirror_distances(states: np.ndarray, variant: str = "frobenius") -> np.ndarray:
    """The (T, T) distances between system states ``states`` (T, n, d)."""
    if variant not in VARIANTS:
        raise InputError(f"one of {VARIANTS}", field="variant", value=variant)
    T = len(states)
    D = np.zeros((T, T))
    for s in range(T):
        for t in range(s + 1, T):
            if variant == "frobenius":
                d = np.linalg.norm(states[s] - states[t])
            else:
                W, _ = orthogonal_procrustes(states[s], states[t])
                d = np.linalg.norm(states[s] @ W - states[t], ord=2)
            D[s, t] = D[t, s] = d
    return D


def _connected_neighbours(points: np.ndarray) -> int:
    """The smallest k whose (symmetrised) k-nearest-neighbour graph is connected."""
    n = len(points)
    for k in range(1, n):
        graph = kneighbors_graph(points, k, mode="connectivity")
        if connected_components(graph, directed=False)[0] == 1:
            return k
    return n - 1


def iso_mirror(
    table: pd.DataFrame,
    variant: str = "frobenius",
    *,
    n_components: int | None = None,
    columns: list[str] | None = None,
) -> pd.DataFrame:
    """psi(t) for every step of ``table`` (columns ``t, model, z1..zd``).

    Returns columns ``t, psi``; ``attrs`` holds the mirror dimension and the neighbour count.
    Use a jointly fitted table with ``"frobenius"`` and a ``separate_embeddings`` table with
    ``"spectral"``. Raises InputError for an unknown variant or no model present throughout.
    """
    states, steps, models = state_matrices(table, columns)
    D = mirror_distances(states, variant)
    T = len(steps)
    if T == 1:
        psi, dim, k = np.zeros(1), 0, 0
    elif T == 2 or not np.any(D > 0):
        psi, dim, k = np.array([-D[0, 1] / 2, D[0, 1] / 2]) if T == 2 else np.zeros(T), 1, 1
    else:
        mirror = PerspectiveSpace(n_components=n_components, dissimilarity="precomputed")
        points = mirror.fit_transform(D)
        dim = mirror.n_components_
        k = _connected_neighbours(points)
        iso = Isomap(n_neighbors=k, n_components=1, eigen_solver="dense")
        psi = iso.fit_transform(points)[:, 0]
    if psi[0] > 0:
        psi = -psi
    out = pd.DataFrame({"t": steps, "psi": psi})
    out.attrs.update(
        {"variant": variant, "mirror_dim": int(dim), "n_neighbors": int(k), "models": models}
    )
    return out


def separate_embeddings(
    kernels: np.ndarray, points: pd.DataFrame, n_components: int
) -> pd.DataFrame:
    """Perspectives fitted separately at each step (the original iso-mirror's input).

    ``kernels`` (N, m, p) data kernels and ``points`` (N rows: ``t, model`` and any labels)
    as in a run's history; every step is embedded on its own into ``n_components`` dims.
    Returns ``t, model, ..., z1..zd``.
    """
    frames = []
    for _, idx in points.groupby("t", sort=True).indices.items():
        sub = points.iloc[idx].reset_index(drop=True)
        d = min(n_components, len(idx) - 1)
        if d < 1:
            raise InputError("a step with fewer than two models", field="t", value=sub["t"][0])
        space = PerspectiveSpace(n_components=d).fit(kernels[idx], labels=sub)
        frames.append(space.to_frame())
    return pd.concat(frames, ignore_index=True)
