"""Figures: grouped bar charts of accuracy per method and evaluating backbone; distilled-set grids.

Figures are drawn on a bare :class:`matplotlib.figure.Figure` (Agg canvas), never through pyplot, so
no global backend state is touched and nothing needs a display."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from ..paths import atomic_target, atomic_write_bytes
from .tables import Grid

# Fixed metadata so the same data gives the same bytes.
_PNG_META = {"Software": None}
_PDF_META = {"Creator": None, "Producer": None, "CreationDate": None}


def save_figure(fig: Figure, stem: Path, pdf: bool = True) -> list[Path]:
    """Write ``stem.png`` (and ``stem.pdf``) atomically."""
    out = []
    for ext, meta in (("png", _PNG_META), ("pdf", _PDF_META)) if pdf else (("png", _PNG_META),):
        buf = io.BytesIO()
        fig.savefig(buf, format=ext, dpi=120, metadata=meta)
        path = stem.with_name(f"{stem.name}.{ext}")
        atomic_write_bytes(path, buf.getvalue())
        out.append(path)
    return out


def bar_chart(grid: Grid, stem: Path, ylabel: str = "top-1 accuracy (%)", pdf: bool = True) -> list[Path]:
    """One group of bars per row of ``grid`` (method), one bar per column (evaluating backbone), with
    the std over seeds as error bars. Missing cells leave a gap."""
    n_rows, n_cols = len(grid.rows), len(grid.columns)
    width = 0.8 / max(n_cols, 1)
    fig = Figure(figsize=(max(4.0, 1.0 + 0.9 * n_rows * max(1, n_cols) ** 0.5), 3.2))
    ax = fig.add_subplot()
    x = np.arange(n_rows)
    for j, col in enumerate(grid.columns):
        means = np.array([np.nan if row[j].missing else row[j].mean for row in grid.cells], dtype=float)
        errs = np.array([row[j].std if row[j].has_std else 0.0 for row in grid.cells], dtype=float)
        ax.bar(x - 0.4 + width * (j + 0.5), np.nan_to_num(means), width, yerr=errs, capsize=2, label=col)
    ax.set_xticks(x)
    ax.set_xticklabels(grid.rows, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel(ylabel)
    if grid.title:
        ax.set_title(grid.title, fontsize=9)
    if n_cols:
        ax.legend(fontsize=7, title="eval backbone", title_fontsize=7)
    ax.grid(axis="y", alpha=0.3)
    fig.set_layout_engine("tight")
    return save_figure(fig, stem, pdf=pdf)


def copy_file(src: Path, dst: Path) -> Path:
    """Copy atomically (temp file beside ``dst``, then rename)."""
    tmp = atomic_target(dst)
    shutil.copyfile(src, tmp)
    tmp.replace(dst)
    return dst
