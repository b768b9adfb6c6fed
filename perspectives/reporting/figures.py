"""Figures of a system's dynamics (PNG, matplotlib), after the paper's Figures 3-6.

Every function takes analysis tables (see ``perspectives.analysis``) and writes one PNG
atomically. ``marks`` are steps drawn as vertical dashed lines (e.g. a disruption at t*).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from ..store import atomic_path  # noqa: E402

PALETTE = plt.get_cmap("tab10").colors


def _save(fig, path: str | os.PathLike) -> None:
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=130, format="png")
    plt.close(fig)


def _marks(ax, marks: Sequence[int]) -> None:
    for i, m in enumerate(marks):
        ax.axvline(m, color="0.3", ls="--", lw=1, label="disruption" if i == 0 else None)


def trajectories_png(
    table: pd.DataFrame,
    path: str | os.PathLike,
    axis: str = "z1",
    marks: Sequence[int] = (),
    databases: pd.DataFrame | None = None,
) -> None:
    """Each model's perspective ``axis`` over time (thin), class means (bold), and each
    database placed in the space (``t, database, z..``; black, dashed)."""
    fig, ax = plt.subplots(figsize=(8, 4.6))
    classes = sorted(table["class"].astype(str).unique())
    colors = {c: PALETTE[i % len(PALETTE)] for i, c in enumerate(classes)}
    for _, g in table.sort_values("t").groupby("model"):
        ax.plot(g["t"], g[axis], color=colors[str(g["class"].iloc[0])], alpha=0.45, lw=1)
    for c, g in table.groupby(table["class"].astype(str)):
        mean = g.groupby("t")[axis].mean()
        ax.plot(mean.index, mean.to_numpy(), color=colors[c], lw=3, label=c or "models")
    if databases is not None:
        for i, (name, g) in enumerate(databases.sort_values("t").groupby("database")):
            ls = ("--", ":", "-.")[i % 3]
            ax.plot(g["t"], g[axis], color="black", lw=2, ls=ls, label=f"database {name}")
    _marks(ax, marks)
    ax.set_xlabel("time step t")
    ax.set_ylabel(f"perspective ({axis})")
    ax.grid(alpha=0.3)
    ax.legend(title="class (bold: mean)", frameon=False)
    _save(fig, path)


def isomirror_png(
    runs: Mapping[str, pd.DataFrame], path: str | os.PathLike, marks: Sequence[int] = ()
) -> None:
    """psi(t) per run (label -> table with ``t, psi_frobenius, psi_spectral``): solid the
    jointly embedded variant, dashed the spectral one."""
    fig, ax = plt.subplots(figsize=(8, 4.2))
    for i, (label, iso) in enumerate(runs.items()):
        color = PALETTE[i % len(PALETTE)]
        name = f"{label}: " if label else ""
        ax.plot(iso["t"], iso["psi_frobenius"], color=color, lw=2, label=f"{name}Frobenius")
        ax.plot(iso["t"], iso["psi_spectral"], color=color, lw=1.2, ls=":", label=f"{name}spectral")
    _marks(ax, marks)
    ax.set_xlabel("time step t")
    ax.set_ylabel("iso-mirror ψ(t)")
    ax.grid(alpha=0.3)
    ax.legend(frameon=False, fontsize=8)
    _save(fig, path)


def clusters_png(
    runs: Mapping[str, pd.DataFrame], path: str | os.PathLike, marks: Sequence[int] = ()
) -> None:
    """Number of clusters (top) and ARI(t, t-1) (bottom) per run (label -> clusters table)."""
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 5.2), sharex=True)
    for i, (label, c) in enumerate(runs.items()):
        color = PALETTE[i % len(PALETTE)]
        top.step(c["t"], c["n_clusters"], where="mid", color=color, lw=2, label=label or None)
        bottom.plot(c["t"], c["ari_prev"], color=color, lw=2, marker="o", ms=3)
    for ax in (top, bottom):
        _marks(ax, marks)
        ax.grid(alpha=0.3)
    top.set_ylabel("number of clusters")
    top.yaxis.get_major_locator().set_params(integer=True)
    bottom.set_ylabel("ARI(t, t−1)")
    bottom.set_ylim(-0.1, 1.05)
    bottom.set_xlabel("time step t")
    if any(runs):
        top.legend(frameon=False, fontsize=8)
    _save(fig, path)


_PERIOD = re.compile(r"every-(\d+)")


def polarization_panels(conditions: Sequence[str]) -> dict[str, list[str]]:
    """Group conditions into panels: by attack period when the names carry ``every-K``
    (conditions without one, e.g. 0 targets, appear in every panel), else one panel."""
    periods = sorted({int(m.group(1)) for c in conditions if (m := _PERIOD.search(c))})
    if not periods:
        return {"": list(conditions)}
    panels = {}
    for k in periods:
        panels[f"attack every {k} steps"] = [
            c for c in conditions if (m := _PERIOD.search(c)) is None or int(m.group(1)) == k
        ]
    return panels


def polarization_png(
    runs: Mapping[str, Sequence[pd.DataFrame]],
    path: str | os.PathLike,
    kind: str | None = None,
    column: str = "polarization",
) -> None:
    """Polarization over time per condition (condition -> one table per seed): the mean over
    seeds (line) and the range (band). ``column``: which measure, ``polarization`` (on
    ``z1``), ``polarization_all`` (whole space) or ``polarization_kernel`` (data kernels)."""
    panels = polarization_panels(list(runs))
    fig, axes = plt.subplots(
        1, len(panels), figsize=(4.2 * len(panels) + 1.5, 4), sharey=True, squeeze=False
    )
    colors = {c: PALETTE[i % len(PALETTE)] for i, c in enumerate(runs)}
    for ax, (title, conds) in zip(axes[0], panels.items(), strict=True):
        for c in conds:
            wide = pd.concat([f.set_index("t")[column] for f in runs[c]], axis=1).sort_index()
            mean = wide.mean(axis=1)
            label = _PERIOD.sub("", c).strip("-") if title else c
            n = wide.shape[1]
            ax.plot(mean.index, mean.to_numpy(), color=colors[c], lw=2, label=f"{label} (n={n})")
            if n > 1:
                ax.fill_between(
                    wide.index,
                    np.nanmin(wide.to_numpy(), axis=1),
                    np.nanmax(wide.to_numpy(), axis=1),
                    color=colors[c],
                    alpha=0.18,
                    lw=0,
                )
        ax.axhline(1.0, color="0.5", lw=0.8)
        ax.set_title(title)
        ax.set_xlabel("time step t")
        ax.grid(alpha=0.3)
        ax.legend(frameon=False, fontsize=8)
    measure = {"polarization_all": "whole space", "polarization_kernel": "data kernels"}
    detail = ", ".join(x for x in (kind, measure.get(column)) if x)
    axes[0][0].set_ylabel(f"polarization ({detail})" if detail else "polarization")
    _save(fig, path)
