"""Analyses of a perspectives table (columns ``t, model, class, z1..zd``): the system's
trajectory (iso-mirror), polarization, clusters and their stability, dispersion, per-class
trajectories; on the answers themselves, their diversity; and monitoring and inference:
control charts, change points and two-sample tests in the data-kernel space."""

from .changepoints import change_points
from .clusters import clusters_over_time, count_clusters
from .dispersion import dispersion
from .diversity import answer_diversity, collapse_note
from .inference import (
    TwoSampleResult,
    class_difference,
    class_tests,
    energy_test,
    model_change,
    model_kernels,
)
from .isomirror import iso_mirror, mirror_distances, separate_embeddings, state_matrices
from .monitoring import adaptive_chart, alarms, cusum_chart, ewma_chart, fixed_chart, run_chart
from .polarization import adversarial_polarization, class_polarization
from .trajectories import class_movement, class_trajectories, model_trajectories, z_columns

__all__ = [
    "TwoSampleResult",
    "adaptive_chart",
    "adversarial_polarization",
    "alarms",
    "change_points",
    "class_difference",
    "class_tests",
    "cusum_chart",
    "energy_test",
    "ewma_chart",
    "fixed_chart",
    "model_change",
    "model_kernels",
    "run_chart",
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
