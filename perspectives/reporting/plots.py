"""Figures of perspective spaces: static PNG (matplotlib) and interactive, self-contained HTML
(plotly, with the library embedded so the page opens offline)."""

from __future__ import annotations

import os
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import plotly.graph_objects as go  # noqa: E402
from matplotlib.colors import to_hex  # noqa: E402
from plotly.subplots import make_subplots  # noqa: E402

from ..store import atomic_path, write_text  # noqa: E402

_PALETTE = plt.get_cmap("tab10").colors


def _xy(frame: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    y = frame["z2"] if "z2" in frame.columns else pd.Series(0.0, index=frame.index)
    return frame["z1"], y


MISSING_LABEL = "(no label)"


def _groups(frame: pd.DataFrame, color_by: str | None) -> list[tuple[str, pd.DataFrame]]:
    """One ``(name, rows)`` group per value of ``color_by``: every point in exactly one group
    (points without a label form the last group), numbers in numeric order."""
    if color_by is None or color_by not in frame.columns:
        return [("points", frame)]
    values = frame[color_by]
    # Group by position, not by value: groupby would drop missing labels (points vanish
    # from the plot) and cannot sort a column that mixes numbers and text.
    order: dict[object, list[int]] = {}
    for i, v in enumerate(values.tolist()):
        key = None if _missing(v) else v
        try:
            hash(key)
        except TypeError:
            key = str(key)
        order.setdefault(key, []).append(i)
    keys = sorted((k for k in order if k is not None), key=_sort_key)
    if None in order:
        keys.append(None)
    return [(MISSING_LABEL if k is None else str(k), frame.iloc[order[k]]) for k in keys]


def _missing(value: object) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):  # a list or array is not "missing"
        return False


def _sort_key(value: object) -> tuple:
    if isinstance(value, bool):
        return (1, int(value), "")
    if isinstance(value, int | float):
        return (0, float(value), "")
    return (2, 0.0, str(value))


def _draw(ax, frame: pd.DataFrame, color_by: str | None, title: str) -> None:
    for i, (name, g) in enumerate(_groups(frame, color_by)):
        x, y = _xy(g)
        ax.scatter(
            x,
            y,
            s=46,
            color=_PALETTE[i % len(_PALETTE)],
            label=name,
            edgecolor="white",
            linewidth=0.6,
        )
    ax.set_title(title)
    ax.set_xlabel("perspective 1")
    ax.set_ylabel("perspective 2" if "z2" in frame.columns else "")
    ax.grid(alpha=0.3)
    if color_by is not None and color_by in frame.columns:
        ax.legend(title=color_by, frameon=False, fontsize=8)


def scatter_png(
    panels: Sequence[tuple[str, pd.DataFrame]],
    path: str | os.PathLike,
    color_by: str | None = None,
    suptitle: str | None = None,
) -> None:
    """Write one 2-D scatter per ``(title, perspectives table)`` panel, side by side, as PNG."""
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4.6), squeeze=False)
    for ax, (title, frame) in zip(axes[0], panels, strict=True):
        _draw(ax, frame, color_by, title)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=130, format="png")
    plt.close(fig)


def scatter_html(
    panels: Sequence[tuple[str, pd.DataFrame]],
    path: str | os.PathLike,
    color_by: str | None = None,
    hover: Sequence[str] = ("model",),
    title: str | None = None,
) -> None:
    """Write an interactive page with one scatter per panel; plotly.js is embedded inline."""
    fig = make_subplots(rows=1, cols=len(panels), subplot_titles=[t for t, _ in panels])
    seen: set[str] = set()
    for col, (_, frame) in enumerate(panels, start=1):
        for i, (name, g) in enumerate(_groups(frame, color_by)):
            x, y = _xy(g)
            cols = [c for c in hover if c in g.columns]
            text = g[cols].astype(str).agg(" · ".join, axis=1) if cols else None
            fig.add_trace(
                go.Scatter(
                    x=x,
                    y=y,
                    mode="markers",
                    name=name,
                    legendgroup=name,
                    showlegend=name not in seen,
                    text=text,
                    hovertemplate="%{text}<br>z1=%{x:.3f}<br>z2=%{y:.3f}<extra>"
                    + name
                    + "</extra>",
                    marker={"size": 10, "color": to_hex(_PALETTE[i % len(_PALETTE)])},
                ),
                row=1,
                col=col,
            )
            seen.add(name)
        fig.update_xaxes(title_text="perspective 1", row=1, col=col)
        fig.update_yaxes(title_text="perspective 2", row=1, col=col)
    fig.update_layout(
        title=title,
        template="plotly_white",
        legend_title_text=color_by or "",
        width=520 * len(panels) + 120,
        height=520,
    )
    write_text(path, fig.to_html(include_plotlyjs=True, full_html=True))
