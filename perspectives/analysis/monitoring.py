"""Control charts on a 1-d series of a run: did the system leave its usual range, and when?

Four charts, each a function of a series (values in step order) returning one row per step
with the chart's statistic, its limits and whether it raised an alarm there:

- ``fixed_chart``: limits mean ± k·σ of a reference period (the first ``reference`` steps);
- ``adaptive_chart``: limits mean ± k·σ of a trailing window of ``window`` steps, from step
  ``burn_in`` on (Duderstadt, Priebe & Helm's chart for multi-agent systems; a slow drift
  moves the band with it and is missed, by design);
- ``ewma_chart``: an exponentially weighted moving average with its exact time-varying limits;
- ``cusum_chart``: the two-sided tabular CUSUM (reference value ``slack``·σ, decision
  interval ``h``·σ).

The fixed, EWMA and CUSUM charts estimate the in-control mean and σ from the reference
period. CUSUM and EWMA are written here: no well-kept Python library offers them (statsmodels
has none; the packages that do are unmaintained).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..errors import InputError
from .rounding import ROUNDING, scale_of

CHARTS = ("fixed", "adaptive", "ewma", "cusum")
COLUMNS = ["t", "value", "statistic", "center", "lower", "upper", "alarm"]


def _series(values: pd.Series | Sequence[float] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(steps, values) of a series; a pandas Series keeps its index as the steps."""
    if isinstance(values, pd.Series):
        steps, x = values.index.to_numpy(), values.to_numpy(float)
    else:
        x = np.asarray(values, dtype=float)
        steps = np.arange(len(x))
    if x.ndim != 1:
        raise InputError("a chart needs a 1-d series", field="values", value=x.shape)
    if not np.all(np.isfinite(x)):
        bad = int(np.flatnonzero(~np.isfinite(x))[0])
        raise InputError("the series has a missing or infinite value", field="values", value=bad)
    return steps, x


def _reference(x: np.ndarray, reference: int) -> tuple[float, float]:
    """Mean and standard deviation (ddof 1) of the first ``reference`` values."""
    if not 2 <= reference <= len(x):
        raise InputError(
            f"the reference period needs 2 to {len(x)} steps (the series' length)",
            field="reference",
            value=reference,
        )
    ref = x[:reference]
    return float(ref.mean()), float(ref.std(ddof=1))


def _check_k(k: float) -> None:
    if not k > 0:
        raise InputError("must be positive", field="k", value=k)


def _frame(steps, x, stat, center, lower, upper, watched) -> pd.DataFrame:
    stat = np.asarray(stat, float)
    lower, upper = np.asarray(lower, float), np.asarray(upper, float)
    # A flat reference (σ = 0) makes any change an alarm; NaN limits (not yet watched) none.
    # A change below ROUNDING of the series' scale is not one: a model that never changes
    # gives values that differ in their last digit once a mean is taken.
    tol = ROUNDING * scale_of(x)
    with np.errstate(invalid="ignore"):
        alarm = watched & ((stat > upper + tol) | (stat < lower - tol))
    return pd.DataFrame(
        {
            "t": steps,
            "value": x,
            "statistic": stat,
            "center": np.broadcast_to(np.asarray(center, float), x.shape),
            "lower": lower,
            "upper": upper,
            "alarm": alarm,
        }
    )


def fixed_chart(values, reference: int, k: float = 3.0) -> pd.DataFrame:
    """Shewhart chart: limits mean ± k·σ of the first ``reference`` values, applied to the
    steps after them (no alarm inside the reference period). Returns one row per step
    (``COLUMNS``). Raises InputError for a series that is not 1-d and finite, a reference
    period shorter than 2 or longer than the series, or k <= 0."""
    steps, x = _series(values)
    _check_k(k)
    mu, sd = _reference(x, reference)
    watched = np.arange(len(x)) >= reference
    return _frame(
        steps, x, x, mu, np.full_like(x, mu - k * sd), np.full_like(x, mu + k * sd), watched
    )


def adaptive_chart(values, window: int, burn_in: int | None = None, k: float = 3.0) -> pd.DataFrame:
    """Adaptive band: at step i >= ``burn_in`` (default: ``window``), limits mean ± k·σ of the
    ``window`` values before it (fewer while fewer exist, at least 2). Returns one row per
    step (``COLUMNS``). Raises InputError for a window < 2, a burn-in < 2 or beyond the
    series, or k <= 0."""
    steps, x = _series(values)
    _check_k(k)
    if window < 2:
        raise InputError("must be at least 2", field="window", value=window)
    burn_in = window if burn_in is None else burn_in
    if not 2 <= burn_in <= len(x):
        raise InputError(
            f"needs 2 to {len(x)} steps (the series' length)", field="burn_in", value=burn_in
        )
    center = np.full_like(x, np.nan)
    lower, upper = center.copy(), center.copy()
    for i in range(burn_in, len(x)):
        past = x[max(0, i - window) : i]
        mu, sd = past.mean(), past.std(ddof=1)
        center[i], lower[i], upper[i] = mu, mu - k * sd, mu + k * sd
    watched = np.arange(len(x)) >= burn_in
    return _frame(steps, x, x, center, lower, upper, watched)


def ewma_chart(values, reference: int, lam: float = 0.2, k: float = 3.0) -> pd.DataFrame:
    """EWMA chart, watching the steps after the reference period: z_i = λ·x_i + (1 − λ)·z_{i−1}
    from z = μ, with limits μ ± k·σ·sqrt(λ/(2 − λ)·(1 − (1 − λ)^{2i})), i = 1, 2, … the
    watched steps (μ, σ of the first ``reference`` values; the statistic is NaN before).
    Raises InputError for λ outside (0, 1] or as the other charts."""
    steps, x = _series(values)
    _check_k(k)
    if not 0 < lam <= 1:
        raise InputError("must be in (0, 1]", field="lam", value=lam)
    mu, sd = _reference(x, reference)
    z = np.full_like(x, np.nan)
    prev = mu
    for i in range(reference, len(x)):
        prev = lam * x[i] + (1 - lam) * prev
        z[i] = prev
    i = np.arange(len(x)) - reference + 1
    half = k * sd * np.sqrt(lam / (2 - lam) * (1 - (1 - lam) ** (2 * np.maximum(i, 0))))
    watched = i >= 1
    lower = np.where(watched, mu - half, np.nan)
    upper = np.where(watched, mu + half, np.nan)
    return _frame(steps, x, z, mu, lower, upper, watched)


def cusum_chart(values, reference: int, slack: float = 0.5, h: float = 5.0) -> pd.DataFrame:
    """Two-sided tabular CUSUM in units of the reference σ, watching the steps after the
    reference period: C⁺_i = max(0, C⁺_{i−1} + (x_i − μ)/σ − slack), C⁻ likewise downward,
    both from 0; an alarm where either exceeds ``h``. ``statistic`` is the larger of the two,
    signed by its side (C⁻ negative; NaN in the reference period); the limits are ±h. The
    defaults (slack 0.5, h 5) give an in-control run length of about 465 steps for a
    Gaussian series with known μ, σ. Raises InputError for slack < 0, h <= 0 or as the
    other charts."""
    steps, x = _series(values)
    if slack < 0:
        raise InputError("must be 0 or more", field="slack", value=slack)
    if not h > 0:
        raise InputError("must be positive", field="h", value=h)
    mu, sd = _reference(x, reference)
    with np.errstate(divide="ignore", invalid="ignore"):
        # A flat reference: any departure is infinitely many σ away.
        flat = np.abs(x - mu) <= ROUNDING * scale_of(x)  # a change in the last digit is none
        u = (x - mu) / sd if sd > 0 else np.where(flat, 0.0, np.sign(x - mu) * np.inf)
    hi = lo = 0.0
    stat = np.full_like(x, np.nan)
    for i in range(reference, len(x)):
        hi = max(0.0, hi + u[i] - slack)
        lo = max(0.0, lo - u[i] - slack)
        stat[i] = hi if hi >= lo else -lo
    watched = np.arange(len(x)) >= reference
    lower = np.where(watched, -h, np.nan)
    upper = np.where(watched, h, np.nan)
    return _frame(steps, x, stat, 0.0, lower, upper, watched)


def run_chart(values, chart: str, **params) -> pd.DataFrame:
    """The chart named ``chart`` (one of ``CHARTS``) with its parameters. Raises InputError
    for another name or a parameter the chart does not take."""
    charts = {
        "fixed": fixed_chart,
        "adaptive": adaptive_chart,
        "ewma": ewma_chart,
        "cusum": cusum_chart,
    }
    if chart not in charts:
        raise InputError(f"one of {CHARTS}", field="chart", value=chart)
    try:
        return charts[chart](values, **params)
    except TypeError as exc:
        raise InputError(f"{chart} chart: {exc}", field="chart") from None


def alarms(chart: pd.DataFrame) -> pd.DataFrame:
    """The steps where ``chart`` raised an alarm, with the side (``"up"``/``"down"``)."""
    out = chart[chart["alarm"]].copy()
    out["direction"] = np.where(out["statistic"] > out["upper"], "up", "down")
    return out.reset_index(drop=True)


def first_alarm(chart: pd.DataFrame, after=None):
    """The first step with an alarm (at or after step ``after``), or None."""
    hit = chart[chart["alarm"]]
    if after is not None:
        hit = hit[hit["t"] >= after]
    return None if hit.empty else hit["t"].iloc[0]
