"""The perspective space: classical MDS of the models' surrogate data kernels.

Each point (a model, or a model at a time step) is described by its response embeddings
``A_i`` of shape ``(m_prompts, p)``. The perspective space is the classical (Torgerson) MDS of
the Frobenius distances ``M_ij = ||A_i - A_j||_F``. For Euclidean distances this equals PCA of
the centred, flattened ``A_i`` (same coordinates up to sign), which is what we compute: exactly
(an eigendecomposition of the Gram matrix) for moderate sizes, by a randomized SVD that never
copies the input for large ones.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import numpy as np
import pandas as pd
from scipy import linalg
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.extmath import svd_flip
from sklearn.utils.validation import check_is_fitted

from ..errors import InputError
from .dimension import n_candidates, select_dimension

# Above this many points the exact solver's n x n Gram matrix and eigendecomposition cost more
# than the randomized solver.
_EXACT_MAX_POINTS = 3000
# Rows per chunk when scanning a large input, to keep temporaries small.
_CHUNK_ROWS = 1024


def _point_matrix(X: np.ndarray, source: str = "X") -> np.ndarray:
    """Flatten ``(n, m, p)`` or ``(n, m, r, p)`` (replicates averaged) to ``(n, m*p)``.

    A 2-d ``(n, features)`` array is taken as already flat. No copy is made when the input is
    contiguous and needs no averaging.
    """
    X = np.asarray(X)
    if X.dtype.kind not in "fiu":
        raise InputError("embeddings must be numeric", source=source, value=str(X.dtype))
    if X.dtype.kind != "f":
        X = X.astype(np.float64)
    if X.ndim == 4:
        X = X.mean(axis=2, dtype=np.float64).astype(X.dtype, copy=False)
    if X.ndim not in (2, 3):
        raise InputError(
            "expected an array of shape (n_points, m_prompts, p) or "
            "(n_points, m_prompts, r_replicates, p)",
            source=source,
            value=X.shape,
        )
    return X.reshape(X.shape[0], -1)


def _check_finite(X2: np.ndarray, source: str) -> None:
    """Raise InputError naming the first point with a NaN or infinite value (chunked scan)."""
    for start in range(0, X2.shape[0], _CHUNK_ROWS):
        block = X2[start : start + _CHUNK_ROWS]
        bad = ~np.isfinite(block).all(axis=1)
        if bad.any():
            i = start + int(np.flatnonzero(bad)[0])
            value = "NaN" if np.isnan(X2[i]).any() else "inf"
            raise InputError(
                f"embeddings of point {i} contain {value}; every embedding must be finite",
                source=source,
                value=value,
            )


def _randomized_svd(
    X: np.ndarray,
    mean: np.ndarray,
    k: int,
    n_oversamples: int,
    n_iter: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Top-``k`` SVD of ``X - mean`` (Halko, Martinsson & Tropp 2011) without forming it.

    Centring is applied implicitly to every product, so memory beyond ``X`` is
    ``O((n + D) * (k + n_oversamples))``.
    """
    n, d = X.shape
    ell = min(k + n_oversamples, n, d)
    dtype = X.dtype
    mean = mean.astype(dtype)

    def right(V: np.ndarray) -> np.ndarray:  # (X - 1 mean^T) V
        return X @ V - (mean @ V)[None, :]

    def left(U: np.ndarray) -> np.ndarray:  # (X - 1 mean^T)^T U
        return X.T @ U - np.outer(mean, U.sum(axis=0))

    Q = right(rng.standard_normal((d, ell)).astype(dtype))
    for _ in range(n_iter):
        Q, _ = linalg.qr(Q, mode="economic", overwrite_a=True)
        Z, _ = linalg.qr(left(Q), mode="economic", overwrite_a=True)
        Q = right(Z)
    Q, _ = linalg.qr(Q, mode="economic", overwrite_a=True)
    B = left(Q).T  # (ell, d)
    Ub, s, Vt = linalg.svd(B.astype(np.float64), full_matrices=False)
    U = Q.astype(np.float64) @ Ub
    return U[:, :k], s[:k], Vt[:k]


class PerspectiveSpace(TransformerMixin, BaseEstimator):
    """Classical MDS of surrogate data kernels, fitted like a scikit-learn transformer.

    Parameters
    ----------
    n_components : int or None
        Dimension ``d`` of the space. ``None`` chooses it by the Zhu–Ghodsi elbow of the
        spectrum (the ``n_elbows``-th elbow), as graspologic's ``ClassicalMDS`` does.
    n_elbows : int
        Which elbow to take when ``n_components`` is None.
    dissimilarity : "euclidean" or "precomputed"
        ``"euclidean"``: ``X`` holds response embeddings, shape ``(n, m, p)``,
        ``(n, m, r, p)`` (replicates are averaged) or ``(n, features)``.
        ``"precomputed"``: ``X`` is an ``(n, n)`` matrix of distances between points.
    svd_solver : "auto", "exact" or "randomized"
        ``"exact"`` eigendecomposes the ``n x n`` Gram matrix; ``"randomized"`` never copies the
        input and computes only the ``n_components`` leading directions (with
        ``n_components=None``, the ``ceil(log2 n)`` among which the elbow is sought); ``"auto"``
        takes exact up to 3,000 points.
    n_iter : int or None
        Power iterations of the randomized solver (default: 4, or 7 for few components).
    compute_distances : bool or "auto"
        Store the ``(n, n)`` Frobenius distance matrix as ``distances_``. ``"auto"``: only with
        the exact solver, where it comes for free.
    random_state : int
        Seed of the randomized solver.

    Attributes
    ----------
    embedding_ : (n, d) array, the points' coordinates (signs fixed: the largest-magnitude
        coordinate of every axis is positive).
    n_components_ : int, the dimension used.
    explained_variance_ : (d,) variance along each axis (squared singular values / (n - 1)).
    explained_variance_ratio_ : (d,) share of the total variance.
    singular_values_ : (d,) singular values of the centred data (square roots of the
        eigenvalues of the double-centred squared-distance matrix).
    eigenvalues_ : (n_eig,) the leading eigenvalues of the double-centred matrix that were
        computed (the elbow is taken on the first ``ceil(log2 n)`` of them).
    elbows_ : list of int, the elbows of that spectrum.
    distances_ : (n, n) Frobenius distances between points, when computed.
    mean_ : (features,) the mean flattened kernel (not for precomputed input).
    components_ : (d, features) principal axes (not for precomputed input).
    labels_ : DataFrame of point labels passed to ``fit`` (or a ``point`` index).
    """

    def __init__(
        self,
        n_components: int | None = None,
        *,
        n_elbows: int = 2,
        dissimilarity: Literal["euclidean", "precomputed"] = "euclidean",
        svd_solver: Literal["auto", "exact", "randomized"] = "auto",
        n_iter: int | None = None,
        compute_distances: bool | Literal["auto"] = "auto",
        random_state: int = 0,
    ) -> None:
        self.n_components = n_components
        self.n_elbows = n_elbows
        self.dissimilarity = dissimilarity
        self.svd_solver = svd_solver
        self.n_iter = n_iter
        self.compute_distances = compute_distances
        self.random_state = random_state

    # ------------------------------------------------------------------ fitting
    def fit(self, X: np.ndarray, y: object = None, labels: object = None) -> PerspectiveSpace:
        """Fit the space to ``X`` (see the class docstring for shapes).

        ``labels``: a DataFrame (or mapping of equal-length columns) with one row per point,
        e.g. ``model``, ``time``, ``class``; returned with the coordinates by ``to_frame``.

        Raises InputError for fewer than 2 points, NaN/inf values, a bad shape, or an
        ``n_components`` larger than the data allow.
        """
        if self.dissimilarity not in ("euclidean", "precomputed"):
            raise InputError(
                "must be 'euclidean' or 'precomputed'",
                field="dissimilarity",
                value=self.dissimilarity,
            )
        if self.dissimilarity == "precomputed":
            self._fit_precomputed(X)
        else:
            self._fit_embeddings(X)
        self.labels_ = self._labels_frame(labels, self.embedding_.shape[0])
        return self

    def fit_transform(self, X: np.ndarray, y: object = None, labels: object = None) -> np.ndarray:
        """Fit and return ``embedding_``, shape ``(n, d)``."""
        return self.fit(X, labels=labels).embedding_

    def _check_n_points(self, n: int) -> None:
        if n < 2:
            raise InputError(
                f"a perspective space needs at least 2 points, got {n}",
                field="n_points",
                value=n,
            )

    def _check_n_components(self, max_possible: int) -> None:
        k = self.n_components
        if k is None:
            return
        if not isinstance(k, int | np.integer) or k < 1:
            raise InputError("must be a positive integer or None", field="n_components", value=k)
        if k > max_possible:
            raise InputError(
                f"is larger than possible: at most {max_possible} components for this input",
                field="n_components",
                value=k,
            )

    def _choose_k(self, eigenvalues: np.ndarray, n_total: int) -> int:
        if self.n_components is not None:
            return int(self.n_components)
        # Like graspologic: the elbow among the ceil(log2 n) leading values of the spectrum of
        # the n x n double-centred matrix (zeros beyond the computed ones belong to it too).
        m = n_candidates(n_total)
        spectrum = np.zeros(m)
        top = np.sort(np.abs(eigenvalues))[::-1][:m]
        spectrum[: top.size] = top
        self.elbows_ = select_dimension(spectrum, n_elbows=self.n_elbows)
        return max(1, min(self.elbows_[-1], int(np.sum(eigenvalues > 0))))

    def _fit_embeddings(self, X: np.ndarray) -> None:
        X2 = _point_matrix(X)
        n, d = X2.shape
        self._check_n_points(n)
        _check_finite(X2, "X")
        self._kernel_shape = tuple(np.shape(X)[1:2]) + tuple(np.shape(X)[-1:])
        max_possible = min(n - 1, d)
        self._check_n_components(max_possible)

        mean = X2.mean(axis=0, dtype=np.float64)
        total_ss = 0.0
        for start in range(0, n, _CHUNK_ROWS):
            block = X2[start : start + _CHUNK_ROWS]
            total_ss += float(np.einsum("ij,ij->i", block, block, dtype=np.float64).sum())
        total_ss -= n * float(mean @ mean)

        solver = self.svd_solver
        if solver == "auto":
            solver = "exact" if n <= _EXACT_MAX_POINTS else "randomized"
        if solver not in ("exact", "randomized"):
            raise InputError(
                "must be 'auto', 'exact' or 'randomized'", field="svd_solver", value=solver
            )
        self.elbows_ = []
        distances = None
        if solver == "exact":
            Xc = X2.astype(np.float64)  # a copy: the caller's array is never modified
            Xc -= mean
            if n <= d:
                G = Xc @ Xc.T
                kk = min(n, self.n_components or n_candidates(n))
                evals, evecs = linalg.eigh(G, subset_by_index=[n - kk, n - 1])
                evals, evecs = evals[::-1], evecs[:, ::-1]
                k = self._choose_k(evals, n)
                s = np.sqrt(np.maximum(evals[:k], 0.0))
                U = evecs[:, :k]
                with np.errstate(divide="ignore", invalid="ignore"):
                    Vt = np.where(s[:, None] > 0, (U.T @ Xc) / s[:, None], 0.0)
                want = self.compute_distances
                if want is True or want == "auto":
                    sq = np.diag(G)
                    d2 = np.maximum(sq[:, None] + sq[None, :] - 2.0 * G, 0.0)
                    np.fill_diagonal(d2, 0.0)
                    distances = np.sqrt(d2)
            else:
                C = Xc.T @ Xc
                evals, evecs = linalg.eigh(C)
                evals, evecs = evals[::-1], evecs[:, ::-1]
                k = self._choose_k(evals, n)
                s = np.sqrt(np.maximum(evals[:k], 0.0))
                Vt = evecs[:, :k].T
                with np.errstate(divide="ignore", invalid="ignore"):
                    U = np.where(s[None, :] > 0, (Xc @ Vt.T) / s[None, :], 0.0)
                if self.compute_distances in (True, "auto"):
                    sq = np.einsum("ij,ij->i", Xc, Xc)
                    d2 = np.maximum(sq[:, None] + sq[None, :] - 2.0 * (Xc @ Xc.T), 0.0)
                    np.fill_diagonal(d2, 0.0)
                    distances = np.sqrt(d2)
            self.eigenvalues_ = evals[: min(n, d)].copy()
        else:
            rng = np.random.default_rng(self.random_state)
            k_max = self.n_components or min(n_candidates(n), max_possible)
            n_iter = (
                self.n_iter if self.n_iter is not None else (7 if k_max < 0.1 * min(n, d) else 4)
            )
            U, s, Vt = _randomized_svd(X2, mean, k_max, 10, n_iter, rng)
            self.eigenvalues_ = s**2
            k = self._choose_k(self.eigenvalues_, n)
            U, s, Vt = U[:, :k], s[:k], Vt[:k]
            if self.compute_distances is True:
                distances = self._pairwise_distances(X2)

        U, Vt = svd_flip(U, Vt, u_based_decision=True)
        self.n_components_ = int(k)
        self.singular_values_ = s
        self.embedding_ = U * s
        self.components_ = Vt
        self.mean_ = mean
        self.explained_variance_ = s**2 / (n - 1)
        self.explained_variance_ratio_ = s**2 / total_ss if total_ss > 0 else np.zeros_like(s)
        if distances is not None:
            self.distances_ = distances
        self.n_features_in_ = d

    @staticmethod
    def _pairwise_distances(X2: np.ndarray) -> np.ndarray:
        from sklearn.metrics import pairwise_distances

        return pairwise_distances(X2.astype(np.float64, copy=False))

    def _fit_precomputed(self, D: np.ndarray) -> None:
        D = np.asarray(D, dtype=np.float64)
        if D.ndim != 2 or D.shape[0] != D.shape[1]:
            raise InputError(
                "a precomputed dissimilarity must be a square (n, n) matrix",
                source="X",
                value=D.shape,
            )
        n = D.shape[0]
        self._check_n_points(n)
        _check_finite(D, "X")
        if not np.allclose(D, D.T, rtol=1e-8, atol=1e-10 * max(1.0, np.abs(D).max())):
            raise InputError("a precomputed dissimilarity must be symmetric", source="X")
        if (D < 0).any():
            raise InputError("distances must be non-negative", source="X", value=float(D.min()))
        self._check_n_components(n - 1)
        D2 = D**2
        self._sq_rowmean = D2.mean(axis=1)
        self._sq_mean = float(D2.mean())
        B = -0.5 * (D2 - self._sq_rowmean[:, None] - self._sq_rowmean[None, :] + self._sq_mean)
        evals, evecs = linalg.eigh(B)
        evals, evecs = evals[::-1], evecs[:, ::-1]
        self.elbows_ = []
        self.eigenvalues_ = evals.copy()
        k = self._choose_k(evals, n)
        lam = np.maximum(evals[:k], 0.0)
        U, _ = svd_flip(evecs[:, :k], np.zeros((k, 1)), u_based_decision=True)
        s = np.sqrt(lam)
        self.n_components_ = int(k)
        self.singular_values_ = s
        self.embedding_ = U * s
        self.explained_variance_ = lam / (n - 1)
        positive = evals[evals > 0].sum()
        self.explained_variance_ratio_ = lam / positive if positive > 0 else np.zeros_like(lam)
        self.distances_ = D
        self.n_features_in_ = n

    # ---------------------------------------------------------------- transform
    def transform(self, X: np.ndarray) -> np.ndarray:
        """Place new points in the fitted space without refitting; returns ``(n_new, d)``.

        For embedding input: ``X`` has the training kernels' shape per point; it is centred with
        ``mean_`` and projected on ``components_``. For precomputed input: ``X`` is the
        ``(n_new, n_train)`` matrix of distances to the training points, placed by the
        Trosset–Priebe out-of-sample formula. A training point maps to its fitted coordinates.
        """
        check_is_fitted(self, "embedding_")
        if self.dissimilarity == "precomputed":
            d = np.atleast_2d(np.asarray(X, dtype=np.float64))
            n_train = self.embedding_.shape[0]
            if d.shape[1] != n_train:
                raise InputError(
                    f"out-of-sample distances must have one column per training point ({n_train})",
                    source="X",
                    value=d.shape,
                )
            _check_finite(d, "X")
            d2 = d**2
            b = -0.5 * (
                d2 - self._sq_rowmean[None, :] - d2.mean(axis=1, keepdims=True) + self._sq_mean
            )
            lam = self.singular_values_**2
            with np.errstate(divide="ignore", invalid="ignore"):
                return np.where(lam > 0, (b @ self.embedding_) / lam, 0.0)
        X2 = _point_matrix(X)
        if X2.shape[1] != self.n_features_in_:
            raise InputError(
                f"new points must have the training kernels' shape {self._kernel_shape}",
                source="X",
                value=np.shape(X)[1:],
            )
        _check_finite(X2, "X")
        out = np.empty((X2.shape[0], self.n_components_))
        for start in range(0, X2.shape[0], _CHUNK_ROWS):
            block = X2[start : start + _CHUNK_ROWS].astype(np.float64, copy=False)
            out[start : start + _CHUNK_ROWS] = (block - self.mean_) @ self.components_.T
        return out

    # ------------------------------------------------------------------ results
    @staticmethod
    def _labels_frame(labels: object, n: int) -> pd.DataFrame:
        if labels is None:
            return pd.DataFrame({"point": np.arange(n)})
        if isinstance(labels, pd.DataFrame):
            frame = labels.reset_index(drop=True)
        elif isinstance(labels, Mapping):
            frame = pd.DataFrame(dict(labels))
        else:
            frame = pd.DataFrame({"label": list(labels)})  # type: ignore[call-overload]
        if len(frame) != n:
            raise InputError(
                f"labels must have one row per point ({n})", field="labels", value=len(frame)
            )
        return frame

    def to_frame(
        self, coordinates: np.ndarray | None = None, labels: object = None
    ) -> pd.DataFrame:
        """A tidy table: label columns, then ``z1..zd``.

        Without arguments, the fitted points with ``labels_``; else the given coordinates
        (e.g. from ``transform``) with the given labels.
        """
        check_is_fitted(self, "embedding_")
        Z = self.embedding_ if coordinates is None else np.asarray(coordinates)
        frame = self.labels_ if coordinates is None else self._labels_frame(labels, Z.shape[0])
        coords = pd.DataFrame(Z, columns=[f"z{i + 1}" for i in range(Z.shape[1])])
        return pd.concat([frame.reset_index(drop=True), coords], axis=1)
