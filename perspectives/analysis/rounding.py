"""What counts as zero: a difference within rounding of the numbers it comes from.

Identical models give distances of 1e-16, not 0, once means and norms are taken; dividing by
such a distance gives ratios of 1e15 that look like a result.
"""

from __future__ import annotations

import numpy as np

ROUNDING = 1e-9  # relative to the scale of the numbers compared


def negligible(value: float, scale: float) -> bool:
    """Whether ``value`` is zero within rounding of numbers of magnitude ``scale``."""
    return bool(abs(value) <= ROUNDING * abs(scale))


def scale_of(values) -> float:
    """The largest finite magnitude in ``values`` (0 for none)."""
    x = np.abs(np.asarray(values, dtype=float))
    x = x[np.isfinite(x)]
    return float(x.max(initial=0.0))
