"""How well labelled classes separate in a perspective space."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import silhouette_score
from sklearn.model_selection import LeaveOneOut, cross_val_score
from sklearn.neighbors import KNeighborsClassifier


def class_separation(Z: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Leave-one-out 1-nearest-neighbour accuracy and silhouette of ``labels`` in ``Z``.

    ``Z``: ``(n, d)`` coordinates; ``labels``: ``(n,)`` class of each point. Chance level of
    the accuracy is the share of the largest class. Returns ``{"loo_1nn_accuracy",
    "silhouette", "chance"}``; needs at least two classes and two points per class.
    """
    Z = np.asarray(Z, dtype=np.float64)
    y = np.asarray(labels)
    classes, counts = np.unique(y, return_counts=True)
    if len(classes) < 2 or counts.min() < 2:
        raise ValueError("class separation needs at least two classes with two points each")
    acc = cross_val_score(KNeighborsClassifier(n_neighbors=1), Z, y, cv=LeaveOneOut()).mean()
    return {
        "loo_1nn_accuracy": float(acc),
        "silhouette": float(silhouette_score(Z, y)),
        "chance": float(counts.max() / counts.sum()),
    }
