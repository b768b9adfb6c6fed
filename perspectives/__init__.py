"""perspectives: track the perspectives of interacting language models.

The pipeline, one subpackage a stage::

    config -> simulation -> run folder -> perspective space -> analyses -> report
    (simulation.config)  (simulation.engine)  (simulation.rundir)  (space)  (analysis)  (reporting)

The public API:

- ``PerspectiveSpace``: classical MDS of surrogate data kernels (scikit-learn style).
- ``get_embedder``, ``compare_responses``: responses of a collection of models -> a space.
- ``RunConfig``, ``Simulation``, ``RunFolder``, ``load_history``: simulate a system of
  interacting models, read its run folder, and place its history in one space.
- ``Agent``, ``LanguageModel``, ``AgentSpec``, ``make_agent``, ``load_agent``,
  ``backends``, ``update_rules``: the agent contract and its registries.
- ``perspectives.analysis``: iso-mirror, polarization, clusters, dispersion, trajectories,
  answer diversity.

Importing the package loads no model library: torch is imported only when an agent of a
transformers backend is made.
"""

import os as _os

# OpenMP threads that spin while they wait take a busy machine's cores from the work: beside
# a process busy on one of two cores, answering took 4.2x its idle time with OpenMP's default
# policy and 1.3x with PASSIVE, a fine-tune 1.8x and 1.1x; idle, PASSIVE costs up to 1.4x
# when answering (benchmarks/bench_busy.py). Set before torch loads OpenMP; a user's own
# setting wins.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from .analysis import (
    adversarial_polarization,
    answer_diversity,
    class_polarization,
    class_trajectories,
    clusters_over_time,
    dispersion,
    iso_mirror,
    model_trajectories,
)
from .errors import (
    BackendUnavailable,
    ConfigError,
    CorruptStateError,
    InputError,
    PerspectivesError,
    RunFolderBusy,
)
from .models.contract import Agent, AgentSpec, LanguageModel
from .models.registry import backends, load_agent, make_agent, update_rules
from .models.spec import Sampling
from .simulation.config import RunConfig, load_run_config
from .simulation.engine import Simulation
from .simulation.history import History, load_history
from .simulation.rundir import RunFolder, read_parts
from .space.compare import Comparison, compare_responses, write_comparison
from .space.embed import get_embedder
from .space.estimator import PerspectiveSpace

__version__ = "0.1.0"

__all__ = [
    "Agent",
    "AgentSpec",
    "BackendUnavailable",
    "Comparison",
    "ConfigError",
    "CorruptStateError",
    "History",
    "InputError",
    "LanguageModel",
    "PerspectiveSpace",
    "PerspectivesError",
    "RunConfig",
    "RunFolder",
    "RunFolderBusy",
    "Sampling",
    "Simulation",
    "adversarial_polarization",
    "answer_diversity",
    "backends",
    "class_polarization",
    "class_trajectories",
    "clusters_over_time",
    "compare_responses",
    "dispersion",
    "get_embedder",
    "iso_mirror",
    "load_agent",
    "load_history",
    "load_run_config",
    "make_agent",
    "model_trajectories",
    "read_parts",
    "update_rules",
    "write_comparison",
]
