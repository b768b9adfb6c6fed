"""PerspectiveSpace: CMDS equivalence, out-of-sample placement, solvers, errors."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.distance import cdist

from perspectives.errors import InputError
from perspectives.space.dimension import select_dimension
from perspectives.space.estimator import PerspectiveSpace


def clustered(n_per=20, k=3, m=12, p=10, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((k, m, p)) * 3
    X = np.concatenate([c + rng.standard_normal((n_per, m, p)) for c in centers])
    labels = np.repeat(np.arange(k), n_per)
    return X.astype(dtype), labels


def cmds_reference(D, k):
    """Textbook Torgerson CMDS on a distance matrix."""
    n = D.shape[0]
    J = np.eye(n) - 1.0 / n
    B = -0.5 * J @ (D**2) @ J
    w, V = np.linalg.eigh(B)
    w, V = w[::-1][:k], V[:, ::-1][:, :k]
    return V * np.sqrt(w)


def match_signs(A, B):
    return A * np.sign(np.sum(A * B, axis=0))


def test_pca_form_equals_distance_cmds():
    X, _ = clustered()
    D = cdist(X.reshape(len(X), -1), X.reshape(len(X), -1))
    Z = PerspectiveSpace(n_components=4).fit_transform(X)
    ref = cmds_reference(D, 4)
    assert np.abs(match_signs(ref, Z) - Z).max() < 1e-9 * np.abs(Z).max()
    space = PerspectiveSpace(n_components=4).fit(X)
    np.testing.assert_allclose(space.distances_, D, atol=1e-9)


def test_transform_of_training_points_returns_fitted_coordinates():
    X, _ = clustered()
    space = PerspectiveSpace(n_components=3).fit(X)
    np.testing.assert_allclose(space.transform(X), space.embedding_, atol=1e-9)


def test_out_of_sample_agrees_with_trosset_priebe():
    X, _ = clustered(seed=1)
    train, held = X[:-5], X[-5:]
    flat = train.reshape(len(train), -1)
    space = PerspectiveSpace(n_components=3).fit(train)
    y_pca = space.transform(held)
    # The Trosset–Priebe formula written out on distances only.
    D2 = cdist(flat, flat, "sqeuclidean")
    d2 = cdist(held.reshape(len(held), -1), flat, "sqeuclidean")
    b = -0.5 * (d2 - D2.mean(axis=1)[None, :] - d2.mean(axis=1, keepdims=True) + D2.mean())
    Z = space.embedding_
    y_tp = (b @ Z) / (space.singular_values_**2)
    np.testing.assert_allclose(y_pca, y_tp, atol=1e-8)
    # and the precomputed-distance estimator gives the same placement
    pre = PerspectiveSpace(n_components=3, dissimilarity="precomputed").fit(np.sqrt(D2))
    y_pre = pre.transform(np.sqrt(d2))
    np.testing.assert_allclose(np.abs(y_pre), np.abs(y_pca), atol=1e-8)
    np.testing.assert_allclose(match_signs(y_pre, y_pca), y_pca, atol=1e-8)


def test_randomized_solver_matches_exact_on_leading_components():
    X, _ = clustered(n_per=40, seed=2, dtype=np.float32)
    exact = PerspectiveSpace(n_components=2, svd_solver="exact").fit_transform(X)
    rand = PerspectiveSpace(n_components=2, svd_solver="randomized").fit_transform(X)
    assert np.abs(rand - exact).max() < 1e-4 * np.abs(exact).max()


def test_replicates_are_averaged():
    X, _ = clustered()
    rng = np.random.default_rng(3)
    noise = rng.standard_normal((X.shape[0], X.shape[1], 4, X.shape[2]))
    noise -= noise.mean(axis=2, keepdims=True)
    X4 = X[:, :, None, :] + noise
    a = PerspectiveSpace(n_components=2).fit_transform(X4)
    b = PerspectiveSpace(n_components=2).fit_transform(X)
    np.testing.assert_allclose(a, b, atol=1e-9)


def test_signs_are_deterministic_and_fixed():
    X, _ = clustered()
    a = PerspectiveSpace(n_components=3).fit_transform(X)
    b = PerspectiveSpace(n_components=3).fit_transform(X[::-1].copy())[::-1]
    np.testing.assert_allclose(a, b, atol=1e-9)
    idx = np.abs(a).argmax(axis=0)
    assert (a[idx, np.arange(3)] > 0).all()


def test_elbow_finds_the_number_of_clusters_signal():
    X, _ = clustered(n_per=30, k=3, m=20, p=16)
    space = PerspectiveSpace(n_elbows=1).fit(X)
    assert space.n_components_ == 2  # three clusters span two dimensions
    assert space.elbows_[0] == 2


def test_select_dimension_on_a_step_spectrum():
    values = np.r_[np.full(3, 10.0), np.full(20, 1.0)] + np.linspace(0, 0.01, 23)
    assert select_dimension(values, n_elbows=1) == [3]


def test_tidy_table_carries_labels():
    X, labels = clustered(n_per=3)
    space = PerspectiveSpace(n_components=2).fit(
        X, labels={"model": [f"m{i}" for i in range(9)], "class": labels}
    )
    table = space.to_frame()
    assert list(table.columns) == ["model", "class", "z1", "z2"]
    assert table["model"].iloc[4] == "m4"
    np.testing.assert_allclose(table[["z1", "z2"]].to_numpy(), space.embedding_)


def test_explained_variance_ratio_sums_to_one_with_all_components():
    X, _ = clustered(n_per=4)
    space = PerspectiveSpace(n_components=11).fit(X)
    assert space.explained_variance_ratio_.sum() == pytest.approx(1.0, abs=1e-9)


@pytest.mark.parametrize(
    ("kwargs", "X", "match"),
    [
        ({}, np.zeros((1, 3, 4)), "at least 2 points"),
        ({"n_components": 20}, clustered(n_per=3)[0], "larger than possible"),
        ({"n_components": 0}, clustered(n_per=3)[0], "positive integer"),
        ({}, np.zeros((5,)), "expected an array of shape"),
    ],
)
def test_bad_input_is_a_clear_error(kwargs, X, match):
    with pytest.raises(InputError, match=match):
        PerspectiveSpace(**kwargs).fit(X)


def test_nan_embedding_names_the_point():
    X, _ = clustered(n_per=3)
    X[4, 2, 1] = np.nan
    with pytest.raises(InputError, match="point 4 contain NaN"):
        PerspectiveSpace().fit(X)
    X[4, 2, 1] = np.inf
    with pytest.raises(InputError, match="point 4 contain inf"):
        PerspectiveSpace().fit(X)


def test_precomputed_must_be_symmetric():
    D = np.abs(np.random.default_rng(0).standard_normal((5, 5)))
    with pytest.raises(InputError, match="symmetric"):
        PerspectiveSpace(dissimilarity="precomputed").fit(D)


def test_transform_checks_shape():
    X, _ = clustered(n_per=3)
    space = PerspectiveSpace(n_components=2).fit(X)
    with pytest.raises(InputError, match="training kernels' shape"):
        space.transform(np.zeros((1, 5, 5)))
