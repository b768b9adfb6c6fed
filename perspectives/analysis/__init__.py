"""Analyses of a perspectives table (columns ``t, model, class, z1..zd``): the system's
trajectory (iso-mirror), polarization, clusters and their stability, dispersion, per-class
trajectories; and, on the answers themselves, their diversity."""

from .clusters import clusters_over_time, count_clusters
from .dispersion import dispersion
from .diversity import answer_diversity, collapse_note
from .isomirror import iso_mirror, mirror_distances, separate_embeddings, state_matrices
from .polarization import adversarial_polarization, class_polarization
from .trajectories import class_movement, class_trajectories, model_trajectories, z_columns

__all__ = [
    "adversarial_polarization",
    "answer_diversity",
    "class_movement",
    "class_polarization",
    "class_trajectories",
    "clusters_over_time",
    "collapse_note",
    "count_clusters",
    "dispersion",
    "iso_mirror",
    "mirror_distances",
    "model_trajectories",
    "separate_embeddings",
    "state_matrices",
    "z_columns",
]
