"""perspectives: track the perspectives of interacting language models.

The main entry points:

- :class:`~perspectives.space.PerspectiveSpace` — classical MDS of surrogate data kernels,
  a scikit-learn style estimator (``fit`` / ``transform``).
- :func:`~perspectives.embed.get_embedder` — the bundled all-MiniLM-L6-v2, any
  sentence-transformers model, or an OpenAI-compatible endpoint, with a disk cache.
- :class:`~perspectives.agents.hf.HFChatModel` — answers prompts with a transformers model.
- :func:`~perspectives.compare.compare_responses` — responses table -> perspective space.
"""

from .errors import InputError, PerspectivesError
from .space.compare import Comparison, compare_responses, write_comparison
from .space.embed import get_embedder
from .space.estimator import PerspectiveSpace

__version__ = "0.1.0"

__all__ = [
    "Comparison",
    "InputError",
    "PerspectiveSpace",
    "PerspectivesError",
    "compare_responses",
    "get_embedder",
    "write_comparison",
]
