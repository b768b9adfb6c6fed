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
from numbers import Integral
from typing import Literal

import numpy as np
import pandas as pd
from scipy import linalg
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils import Tags
from sklearn.utils._param_validation import Interval, StrOptions, make_constraint
from sklearn.utils.extmath import svd_flip
from sklearn.utils.validation import check_array, check_is_fitted

from ..errors import InputError
from .dimension import n_candidates, select_dimension

# Above this many points the exact solver's n x n Gram matrix and eigendecomposition cost more
# than the randomized solver.
_EXACT_MAX_POINTS = 3000
# Rows per chunk when scanning a large input, to keep temporaries small.
_CHUNK_ROWS = 1024

_BOOLEAN = type(make_constraint("boolean"))


def _as_array(X: object, dtype: object, source: str = "X") -> np.ndarray:
    """``check_array`` without its finiteness scan (ours names the point) or shape rules.

    Rejects sparse input (TypeError) and complex input, and converts object arrays of numbers.
    No copy is made when ``X`` already has an accepted dtype. ValueErrors become InputError.
    """
    try:
        return check_array(
            X,
            dtype=dtype,
            ensure_2d=False,
            allow_nd=True,
            ensure_min_samples=0,
            ensure_all_finite=False,
            input_name=source,
        )
    except InputError:
        raise
    except ValueError as exc:
        raise InputError(str(exc), source=source) from exc


def _point_matrix(X: object, source: str = "X") -> tuple[np.ndarray, tuple[int, ...]]:
    """Flatten ``(n, m, p)`` or ``(n, m, r, p)`` (replicates averaged) to ``(n, m*p)``.

    A 2-d ``(n, features)`` array is taken as already flat. Returns the flat array and the shape
    of one point (replicates averaged). Integers become float64; no copy is made when the input
    is a contiguous float array that needs no averaging.
    """
    X = _as_array(X, [np.float64, np.float32], source)
    if X.ndim == 4:
        X = X.mean(axis=2, dtype=np.float64).astype(X.dtype, copy=False)
    if X.ndim not in (2, 3):
        hint = " Reshape your data with X.reshape(1, -1) if it is one point." if X.ndim == 1 else ""
        raise InputError(
            "expected an array of shape (n_points, features), (n_points, m_prompts, p) or "
            f"(n_points, m_prompts, r_replicates, p), got a {X.ndim}-d array.{hint}",
            source=source,
            value=X.shape,
        )
    if 0 in X.shape[1:]:
        raise InputError(
            f"found 0 features per point (shape={X.shape}) while a minimum of 1 is required",
            source=source,
            value=X.shape,
        )
    return X.reshape(X.shape[0], -1), X.shape[1:]


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


def _describe(constraint: object) -> list[str]:
    """The values a constraint allows, in words, for an error message."""
    if isinstance(constraint, Interval) and constraint.type is Integral:
        if constraint.right is None and constraint.closed in ("left", "both"):
            if constraint.left in (0, 1):
                return ["a positive integer" if constraint.left == 1 else "a non-negative integer"]
    if isinstance(constraint, StrOptions):
        return [repr(option) for option in sorted(constraint.options)]
    if isinstance(constraint, _BOOLEAN):
        return ["True", "False"]
    return [str(constraint)]


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

    The points' coordinates are those of classical (Torgerson) MDS of the Frobenius distances
    between their data kernels, computed as PCA of the centred, flattened kernels.

    Parameters
    ----------
    n_components : int or None, default=None
        Dimension ``d`` of the space. ``None`` chooses it by the Zhu–Ghodsi elbow of the
        spectrum (the ``n_elbows``-th elbow), as graspologic's ``ClassicalMDS`` does.
    n_elbows : int, default=2
        Which elbow to take when ``n_components`` is None.
    dissimilarity : {"euclidean", "precomputed"}, default="euclidean"
        ``"euclidean"``: ``X`` holds response embeddings, shape ``(n, m, p)``,
        ``(n, m, r, p)`` (replicates are averaged) or ``(n, features)``.
        ``"precomputed"``: ``X`` is an ``(n, n)`` matrix of distances between points.
    svd_solver : {"auto", "exact", "randomized"}, default="auto"
        ``"exact"`` eigendecomposes the ``n x n`` Gram matrix (or the ``features x features``
        covariance when that is smaller); ``"randomized"`` never copies the input and computes
        only the ``n_components`` leading directions (with ``n_components=None``, the
        ``ceil(log2 n)`` among which the elbow is sought); ``"auto"`` takes exact up to 3,000
        points.
    n_iter : int or None, default=None
        Power iterations of the randomized solver; ``None``: 7 for few components, else 4.
    compute_distances : bool or "auto", default="auto"
        Store the ``(n, n)`` Frobenius distance matrix as ``distances_``. ``"auto"``: only with
        the exact solver, where it comes for free.
    random_state : int or None, default=0
        Seed of the randomized solver (``None``: fresh entropy, not reproducible).

    Attributes
    ----------
    embedding_ : ndarray of shape (n, d)
        The points' coordinates. Signs are fixed: the largest-magnitude coordinate of every
        axis is positive.
    n_components_ : int
        The dimension used.
    explained_variance_ : ndarray of shape (d,)
        Variance along each axis (squared singular values / (n - 1)).
    explained_variance_ratio_ : ndarray of shape (d,)
        Share of the total variance along each axis.
    singular_values_ : ndarray of shape (d,)
        Singular values of the centred data (square roots of the eigenvalues of the
        double-centred squared-distance matrix).
    eigenvalues_ : ndarray of shape (n_eig,)
        The leading eigenvalues of the double-centred matrix that were computed (the elbow is
        taken on the first ``ceil(log2 n)`` of them).
    elbows_ : list of int
        The elbows of that spectrum (empty when ``n_components`` is given).
    distances_ : ndarray of shape (n, n)
        Frobenius distances between points; only when computed (see ``compute_distances``).
    mean_ : ndarray of shape (features,)
        The mean flattened kernel (not for precomputed input).
    components_ : ndarray of shape (d, features)
        Principal axes (not for precomputed input).
    n_features_in_ : int
        Features of a flattened kernel (``m * p``), or ``n`` for precomputed input.
    labels_ : DataFrame
        Point labels passed to ``fit``, or a ``point`` column numbering the points.

    See Also
    --------
    perspectives.space.dimension.select_dimension : the elbow rule used for
        ``n_components=None``.

    Examples
    --------
    Twelve points in three groups, each with 4 prompts embedded in 3 dimensions:

    >>> import numpy as np
    >>> from perspectives.space import PerspectiveSpace
    >>> rng = np.random.default_rng(0)
    >>> centers = 3 * rng.standard_normal((3, 4, 3))
    >>> X = np.concatenate([c + 0.3 * rng.standard_normal((4, 4, 3)) for c in centers])
    >>> X.shape
    (12, 4, 3)
    >>> space = PerspectiveSpace(n_elbows=1).fit(X)
    >>> space.n_components_, space.elbows_
    (2, [2])
    >>> space.embedding_.shape
    (12, 2)
    >>> space.explained_variance_ratio_.round(2)
    array([0.56, 0.43])

    New points are placed without refitting; a training point lands on its coordinates:

    >>> bool(np.allclose(space.transform(X[:3]), space.embedding_[:3]))
    True
    >>> space.to_frame().columns.tolist()
    ['point', 'z1', 'z2']
    """

    _parameter_constraints: dict[str, list] = {
        "n_components": [Interval(Integral, 1, None, closed="left"), None],
        "n_elbows": [Interval(Integral, 1, None, closed="left")],
        "dissimilarity": [StrOptions({"euclidean", "precomputed"})],
        "svd_solver": [StrOptions({"auto", "exact", "randomized"})],
        "n_iter": [Interval(Integral, 0, None, closed="left"), None],
        "compute_distances": ["boolean", StrOptions({"auto"})],
        "random_state": [Interval(Integral, 0, None, closed="left"), None],
    }

    def __init__(
        self,
        n_components: int | None = None,
        *,
        n_elbows: int = 2,
        dissimilarity: Literal["euclidean", "precomputed"] = "euclidean",
        svd_solver: Literal["auto", "exact", "randomized"] = "auto",
        n_iter: int | None = None,
        compute_distances: bool | Literal["auto"] = "auto",
        random_state: int | None = 0,
    ) -> None:
        self.n_components = n_components
        self.n_elbows = n_elbows
        self.dissimilarity = dissimilarity
        self.svd_solver = svd_solver
        self.n_iter = n_iter
        self.compute_distances = compute_distances
        self.random_state = random_state

    def __sklearn_tags__(self) -> Tags:
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = True
        tags.input_tags.pairwise = self.dissimilarity == "precomputed"
        return tags

    # ------------------------------------------------------------------ fitting
    def _validate_params(self) -> None:
        """Check every parameter against ``_parameter_constraints``.

        Raises
        ------
        InputError
            Naming the first parameter (``field``) whose value no constraint allows.
        """
        params = self.get_params(deep=False)
        for name, allowed in self._parameter_constraints.items():
            constraints = [make_constraint(c) for c in allowed]
            value = params[name]
            if not any(c.is_satisfied_by(value) for c in constraints):
                shown = [text for c in constraints if not c.hidden for text in _describe(c)]
                allowed_text = ", ".join(shown[:-1]) + " or " + shown[-1] if shown[1:] else shown[0]
                raise InputError(f"must be {allowed_text}", field=name, value=value)

    def fit(self, X: object, y: object = None, labels: object = None) -> PerspectiveSpace:
        """Fit the space to the points in ``X``.

        Parameters
        ----------
        X : array-like of shape (n, m, p), (n, m, r, p), (n, features) or (n, n)
            Response embeddings of ``n`` points (``r`` replicates are averaged), or, with
            ``dissimilarity="precomputed"``, the distances between the points.
        y : None
            Ignored; present for scikit-learn's API.
        labels : DataFrame, mapping of columns, sequence or None, default=None
            One row per point, e.g. ``model``, ``time``, ``class``; returned with the
            coordinates by ``to_frame``.

        Returns
        -------
        self : PerspectiveSpace
            The fitted estimator.

        Raises
        ------
        InputError
            For an invalid parameter, fewer than 2 points, NaN/inf values, a bad shape, a
            precomputed matrix that is not a symmetric non-negative square, labels with the
            wrong number of rows, or an ``n_components`` larger than the data allow.
        TypeError
            For sparse input.
        """
        self._validate_params()
        if self.dissimilarity == "precomputed":
            self._fit_precomputed(X)
        else:
            self._fit_embeddings(X)
        self.labels_ = self._labels_frame(labels, self.embedding_.shape[0])
        return self

    def fit_transform(self, X: object, y: object = None, labels: object = None) -> np.ndarray:
        """Fit the space to ``X`` and return the points' coordinates.

        Parameters
        ----------
        X : array-like of shape (n, m, p), (n, m, r, p), (n, features) or (n, n)
            As for ``fit``.
        y : None
            Ignored.
        labels : DataFrame, mapping of columns, sequence or None, default=None
            As for ``fit``.

        Returns
        -------
        embedding : ndarray of shape (n, d)
            ``embedding_``.
        """
        return self.fit(X, labels=labels).embedding_

    def _check_n_points(self, n: int) -> None:
        if n < 2:
            raise InputError(
                f"a perspective space needs at least 2 points, got n_samples={n}",
                field="n_points",
                value=n,
            )

    def _check_n_components(self, max_possible: int) -> None:
        k = self.n_components
        if k is not None and k > max_possible:
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

    def _fit_embeddings(self, X: object) -> None:
        X2, self._kernel_shape = _point_matrix(X)
        n, d = X2.shape
        self._check_n_points(n)
        _check_finite(X2, "X")
        self._check_n_components(min(n - 1, d))

        mean = X2.mean(axis=0, dtype=np.float64)
        total_ss = 0.0
        for start in range(0, n, _CHUNK_ROWS):
            block = X2[start : start + _CHUNK_ROWS]
            total_ss += float(np.einsum("ij,ij->i", block, block, dtype=np.float64).sum())
        total_ss -= n * float(mean @ mean)

        solver = self.svd_solver
        if solver == "auto":
            solver = "exact" if n <= _EXACT_MAX_POINTS else "randomized"
        self.elbows_ = []
        if solver == "randomized":
            fit_solver = self._fit_randomized
        elif n <= d:
            fit_solver = self._fit_exact_gram
        else:
            fit_solver = self._fit_exact_covariance
        U, s, Vt, distances = fit_solver(X2, mean)
        k = s.size

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

    def _want_distances(self, solver: str) -> bool:
        if isinstance(self.compute_distances, str):  # "auto"
            return solver == "exact"
        return bool(self.compute_distances)

    def _fit_exact_gram(self, X2: np.ndarray, mean: np.ndarray) -> tuple:
        """Exact solver for ``n <= features``: eigendecomposition of the ``n x n`` Gram matrix.

        Returns ``(U, s, Vt, distances)`` for the chosen ``k``; sets ``eigenvalues_``.
        """
        n, d = X2.shape
        Xc = X2.astype(np.float64)  # a copy: the caller's array is never modified
        Xc -= mean
        G = Xc @ Xc.T
        kk = min(n, self.n_components or n_candidates(n))
        evals, evecs = linalg.eigh(G, subset_by_index=[n - kk, n - 1])
        evals, evecs = evals[::-1], evecs[:, ::-1]
        k = self._choose_k(evals, n)
        s = np.sqrt(np.maximum(evals[:k], 0.0))
        U = evecs[:, :k]
        with np.errstate(divide="ignore", invalid="ignore"):
            Vt = np.where(s[:, None] > 0, (U.T @ Xc) / s[:, None], 0.0)
        distances = None
        if self._want_distances("exact"):
            sq = np.diag(G)
            d2 = np.maximum(sq[:, None] + sq[None, :] - 2.0 * G, 0.0)
            np.fill_diagonal(d2, 0.0)
            distances = np.sqrt(d2)
        self.eigenvalues_ = evals[: min(n, d)].copy()
        return U, s, Vt, distances

    def _fit_exact_covariance(self, X2: np.ndarray, mean: np.ndarray) -> tuple:
        """Exact solver for ``n > features``: eigendecomposition of the scatter matrix.

        Returns ``(U, s, Vt, distances)`` for the chosen ``k``; sets ``eigenvalues_``.
        """
        n, d = X2.shape
        Xc = X2.astype(np.float64)  # a copy: the caller's array is never modified
        Xc -= mean
        C = Xc.T @ Xc
        evals, evecs = linalg.eigh(C)
        evals, evecs = evals[::-1], evecs[:, ::-1]
        k = self._choose_k(evals, n)
        s = np.sqrt(np.maximum(evals[:k], 0.0))
        Vt = evecs[:, :k].T
        with np.errstate(divide="ignore", invalid="ignore"):
            U = np.where(s[None, :] > 0, (Xc @ Vt.T) / s[None, :], 0.0)
        distances = None
        if self._want_distances("exact"):
            sq = np.einsum("ij,ij->i", Xc, Xc)
            d2 = np.maximum(sq[:, None] + sq[None, :] - 2.0 * (Xc @ Xc.T), 0.0)
            np.fill_diagonal(d2, 0.0)
            distances = np.sqrt(d2)
        self.eigenvalues_ = evals[: min(n, d)].copy()
        return U, s, Vt, distances

    def _fit_randomized(self, X2: np.ndarray, mean: np.ndarray) -> tuple:
        """Randomized solver: the leading directions only, never copying ``X2``.

        Returns ``(U, s, Vt, distances)`` for the chosen ``k``; sets ``eigenvalues_``.
        """
        n, d = X2.shape
        rng = np.random.default_rng(self.random_state)
        k_max = self.n_components or min(n_candidates(n), min(n - 1, d))
        n_iter = self.n_iter if self.n_iter is not None else (7 if k_max < 0.1 * min(n, d) else 4)
        U, s, Vt = _randomized_svd(X2, mean, k_max, 10, n_iter, rng)
        self.eigenvalues_ = s**2
        k = self._choose_k(self.eigenvalues_, n)
        distances = self._pairwise_distances(X2) if self._want_distances("randomized") else None
        return U[:, :k], s[:k], Vt[:k], distances

    @staticmethod
    def _pairwise_distances(X2: np.ndarray) -> np.ndarray:
        from sklearn.metrics import pairwise_distances

        return pairwise_distances(X2.astype(np.float64, copy=False))

    def _fit_precomputed(self, D: object) -> None:
        D = _as_array(D, np.float64)
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
    def transform(self, X: object) -> np.ndarray:
        """Place new points in the fitted space without refitting.

        For embedding input, ``X`` has the training kernels' shape per point; it is centred
        with ``mean_`` and projected on ``components_``. For precomputed input, ``X`` holds the
        distances of the new points to the training points and is placed by the Trosset–Priebe
        out-of-sample formula. A training point maps to its fitted coordinates.

        Parameters
        ----------
        X : array-like of shape (n_new, m, p), (n_new, m, r, p), (n_new, features) \
or (n_new, n)
            New points' embeddings, or (precomputed) their distances to the ``n`` training
            points; a 1-d row of distances is taken as one point.

        Returns
        -------
        coordinates : ndarray of shape (n_new, d)
            The new points' coordinates.

        Raises
        ------
        sklearn.exceptions.NotFittedError
            If the estimator is not fitted.
        InputError
            For a shape that does not match the training data, or NaN/inf values.
        """
        check_is_fitted(self, "embedding_")
        if self.dissimilarity == "precomputed":
            d = np.atleast_2d(_as_array(X, np.float64))
            n_train = self.embedding_.shape[0]
            if d.ndim != 2 or d.shape[1] != n_train:
                raise InputError(
                    f"X has {d.shape[-1]} features, but PerspectiveSpace is expecting "
                    f"{n_train} features as input: out-of-sample distances must have one "
                    "column per training point",
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
        X2, kernel_shape = _point_matrix(X)
        if X2.shape[1] != self.n_features_in_:
            raise InputError(
                f"X has {X2.shape[1]} features, but PerspectiveSpace is expecting "
                f"{self.n_features_in_} features as input: new points must have the training "
                f"kernels' shape {self._kernel_shape}",
                source="X",
                value=kernel_shape,
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
        """A tidy table: label columns, then the coordinates ``z1..zd``.

        Parameters
        ----------
        coordinates : ndarray of shape (n_new, d) or None, default=None
            Coordinates to tabulate, e.g. from ``transform``; ``None``: the fitted points.
        labels : DataFrame, mapping of columns, sequence or None, default=None
            Labels of ``coordinates`` (one row per point); ignored when ``coordinates`` is
            None, where ``labels_`` is used.

        Returns
        -------
        table : DataFrame
            The label columns followed by ``z1``, ..., ``zd``.

        Raises
        ------
        sklearn.exceptions.NotFittedError
            If the estimator is not fitted.
        InputError
            If ``labels`` do not have one row per point.
        """
        check_is_fitted(self, "embedding_")
        Z = self.embedding_ if coordinates is None else np.asarray(coordinates)
        frame = self.labels_ if coordinates is None else self._labels_frame(labels, Z.shape[0])
        coords = pd.DataFrame(Z, columns=[f"z{i + 1}" for i in range(Z.shape[1])])
        return pd.concat([frame.reset_index(drop=True), coords], axis=1)
