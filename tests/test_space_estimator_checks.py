"""PerspectiveSpace against scikit-learn's estimator checks, and the module's doctests."""

from __future__ import annotations

import doctest

import numpy as np
import pytest
from sklearn.exceptions import NotFittedError
from sklearn.utils.estimator_checks import parametrize_with_checks

import perspectives.space.dimension
import perspectives.space.estimator
from perspectives.errors import InputError
from perspectives.space.estimator import PerspectiveSpace

# Every check passes, so no ``expected_failed_checks``. The precomputed variant is not checked
# here: the checks feed pairwise estimators a linear kernel (not a distance matrix) unless the
# parameter is called ``metric``; tests/test_space.py covers it.
ESTIMATORS = [
    PerspectiveSpace(),
    PerspectiveSpace(svd_solver="randomized"),
    PerspectiveSpace(n_components=1, svd_solver="exact"),
]


@parametrize_with_checks(ESTIMATORS)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)


@pytest.mark.parametrize("module", [perspectives.space.estimator, perspectives.space.dimension])
def test_doctests(module):
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS)
    assert result.failed == 0
    assert result.attempted > 0


def test_kernel_arrays_equal_their_flattened_form():
    rng = np.random.default_rng(0)
    X3 = rng.standard_normal((15, 4, 3))
    X4 = X3[:, :, None, :] + np.array([-1.0, 1.0])[None, None, :, None]
    flat = X3.reshape(15, -1)
    ref = PerspectiveSpace(n_components=2).fit(flat)
    for X in (X3, X4):
        space = PerspectiveSpace(n_components=2).fit(X)
        np.testing.assert_allclose(space.embedding_, ref.embedding_, atol=1e-12)
        assert space.n_features_in_ == 12
        np.testing.assert_allclose(space.transform(X[:2]), ref.transform(flat[:2]), atol=1e-12)


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"n_elbows": 0}, "n_elbows"),
        ({"dissimilarity": "cosine"}, "dissimilarity"),
        ({"svd_solver": "arpack"}, "svd_solver"),
        ({"n_iter": -1}, "n_iter"),
        ({"compute_distances": "yes"}, "compute_distances"),
        ({"random_state": -1}, "random_state"),
        ({"n_components": 1.5}, "n_components"),
    ],
)
def test_invalid_parameters_name_the_field(params, field):
    X = np.random.default_rng(0).standard_normal((6, 3, 2))
    with pytest.raises(InputError, match="must be") as info:
        PerspectiveSpace(**params).fit(X)
    assert info.value.field == field


def test_transform_before_fit_is_not_fitted_error():
    with pytest.raises(NotFittedError):
        PerspectiveSpace().transform(np.zeros((2, 3)))
