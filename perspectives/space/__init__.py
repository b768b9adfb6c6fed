"""The perspective space: from models' responses to points whose distances compare them.

Data kernels from responses (``responses``), embedders (``embed``), the MDS estimator
(``PerspectiveSpace``), its dimension (``select_dimension``), class separation
(``separation``) and comparing collections of models (``compare``). Only the estimator and
the dimension rule are imported here; import ``embed`` and ``compare`` from their modules.
"""

from .dimension import select_dimension
from .estimator import PerspectiveSpace

__all__ = ["PerspectiveSpace", "select_dimension"]
