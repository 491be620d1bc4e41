"""Figures: grouped bar charts of accuracy per method and evaluating backbone, cross-model transfer
heatmaps, accuracy versus images per class, alignment versus transfer; distilled-set grids.

Figures are drawn on a bare :class:`matplotlib.figure.Figure` (Agg canvas), never through pyplot, so
no global backend state is touched and nothing needs a display."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from ..paths import atomic_target, atomic_write_bytes
from .aggregate import REFERENCE_METHOD, order_methods
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


def heatmap(grid: Grid, stem: Path, pdf: bool = True, label: str = "top-1 accuracy (%)") -> list[Path]:
    """``grid`` (rows: distilling backbone, columns: evaluating backbone) as an image with each cell's
    mean written in it (and the published value beneath, when the cell carries one); missing cells
    stay blank."""
    data = np.array([[np.nan if c.missing else c.mean for c in row] for row in grid.cells], dtype=float)
    n_rows, n_cols = data.shape if data.size else (len(grid.rows), len(grid.columns))
    fig = Figure(figsize=(1.6 + 1.15 * max(n_cols, 1), 1.2 + 0.75 * max(n_rows, 1)))
    ax = fig.add_subplot()
    finite = data[np.isfinite(data)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    if hi - lo < 1e-9:
        lo, hi = lo - 1.0, hi + 1.0
    image = ax.imshow(np.ma.masked_invalid(data), cmap="viridis", vmin=lo, vmax=hi, aspect="auto")
    mid = (lo + hi) / 2
    for i, row in enumerate(grid.cells):
        for j, cell in enumerate(row):
            if cell.missing:
                continue
            text = f"{cell.mean:.1f}"
            if cell.extra.get("paper") is not None:
                text += f"\n(paper {cell.extra['paper']:.1f})"
            ax.text(j, i, text, ha="center", va="center", fontsize=8,
                    color="black" if cell.mean > mid else "white")
    ax.set_xticks(np.arange(len(grid.columns)))
    ax.set_xticklabels(grid.columns, rotation=30, ha="right", fontsize=8)
    ax.set_yticks(np.arange(len(grid.rows)))
    ax.set_yticklabels(grid.rows, fontsize=8)
    ax.set_xlabel("evaluated with", fontsize=8)
    ax.set_ylabel("distilled with", fontsize=8)
    if grid.title:
        ax.set_title(grid.title, fontsize=9)
    fig.colorbar(image, ax=ax, label=label)
    fig.set_layout_engine("tight")
    return save_figure(fig, stem, pdf=pdf)


def ipc_curve(frame, stem: Path, title: str = "", pdf: bool = True) -> list[Path]:
    """Accuracy versus images per class: one panel per evaluating backbone, one line per method
    (mean with std error bars, log-scaled x); the full-data reference (``ipc == 0``) as a dashed line.
    ``frame``: aggregated same-model rows (method, eval_backbone, ipc, mean, std)."""
    backbones = sorted(frame["eval_backbone"].unique())
    fig = Figure(figsize=(0.6 + 3.4 * len(backbones), 3.2))
    axes = fig.subplots(1, len(backbones), squeeze=False)[0]
    methods = order_methods(frame["method"])
    colours = {m: f"C{i % 10}" for i, m in enumerate(methods)}
    for ax, bb in zip(axes, backbones, strict=True):
        part = frame[frame["eval_backbone"] == bb]
        for method in methods:
            rows = part[part["method"] == method].sort_values("ipc")
            if rows.empty:
                continue
            if method == REFERENCE_METHOD or (rows["ipc"] == 0).all():
                ax.axhline(float(rows["mean"].iloc[0]), ls="--", color=colours[method], lw=1, label=method)
                continue
            rows = rows[rows["ipc"] > 0]
            ax.errorbar(rows["ipc"], rows["mean"], yerr=rows["std"].fillna(0.0), marker="o", ms=3, capsize=2,
                        color=colours[method], label=method)
        ax.set_xscale("log")
        ipcs = sorted(int(v) for v in part["ipc"].unique() if v > 0)
        ax.set_xticks(ipcs)
        ax.set_xticklabels([str(v) for v in ipcs])
        ax.minorticks_off()
        ax.set_xlabel("images per class")
        ax.set_title(bb, fontsize=9)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("top-1 accuracy (%)")
    axes[-1].legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.set_layout_engine("tight")
    return save_figure(fig, stem, pdf=pdf)


def _short_names(names) -> dict[str, str]:
    """``clip_vitb16`` -> ``clip`` when the first ``_``-separated parts tell the names apart."""
    names = sorted(names)
    heads = {n: n.split("_")[0] or n for n in names}
    return heads if len(set(heads.values())) == len(names) else {n: n for n in names}


def alignment_scatter(points, stem: Path, *, title: str, ylabel: str, pdf: bool = True) -> list[Path]:
    """Alignment (x) against transfer (y), one labelled point per (distilling, evaluating) pair.
    ``points``: columns distill_backbone, eval_backbone, alignment, transfer."""
    fig = Figure(figsize=(5.2, 3.8))
    ax = fig.add_subplot()
    ax.scatter(points["alignment"], points["transfer"], s=22, color="C0")
    short = _short_names(set(points["distill_backbone"]) | set(points["eval_backbone"]))
    for rec in points.to_dict("records"):
        ax.annotate(f"{short[rec['distill_backbone']]}→{short[rec['eval_backbone']]}",
                    (rec["alignment"], rec["transfer"]), fontsize=6, xytext=(3, 3), textcoords="offset points")
    ax.set_xlabel("mutual k-NN alignment of (A, B)")
    ax.set_ylabel(ylabel, fontsize=8)
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    fig.set_layout_engine("tight")
    return save_figure(fig, stem, pdf=pdf)
