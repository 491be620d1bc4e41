"""Step 4, figures, drawn with seaborn in one theme (:data:`THEME`, colour-blind-safe palette): bar
charts with the std over seeds as error bars (from the per-seed rows), annotated transfer heatmaps,
accuracy versus images per class, alignment versus transfer. Every figure is written as PNG and PDF
(temp file + rename).

This module imports matplotlib and seaborn (the Agg backend unless pyplot was already set up); the
report imports it only when it draws, so the table modules stay light. Figures are bare
:class:`matplotlib.figure.Figure` objects, never pyplot's global state, and the theme is applied only
while a figure is made (:func:`themed`), so nothing leaks into the caller's matplotlib settings.
"""

from __future__ import annotations

import io
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import matplotlib

if "matplotlib.pyplot" not in sys.modules:  # seaborn imports pyplot: no display, no GUI backend
    matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from ..paths import atomic_write_bytes  # noqa: E402
from .aggregate import REFERENCE_METHOD, base_method, method_sort_key  # noqa: E402
from .naming import display_backbone, display_method  # noqa: E402
from .records import Report  # noqa: E402
from .tables import Grid  # noqa: E402

#: The one theme of every figure.
THEME = {"style": "whitegrid", "context": "paper", "palette": "colorblind"}
ACCURACY = "top-1 accuracy (%)"
METHOD, BACKBONE = "Method", "Evaluated with"
# Fixed metadata so the same data gives the same bytes.
PNG_META = {"Software": None}
PDF_META = {"Creator": None, "Producer": None, "CreationDate": None}
DPI = 150


@contextmanager
def themed() -> Iterator[None]:
    """:data:`THEME` while the block runs; matplotlib's settings are restored afterwards."""
    with matplotlib.rc_context():
        sns.set_theme(**THEME)
        yield


def save_figure(fig: Figure, stem: Path, pdf: bool = True) -> list[Path]:
    """Write ``stem.png`` (and ``stem.pdf``) atomically."""
    out = []
    for ext, meta in (("png", PNG_META), ("pdf", PDF_META)) if pdf else (("png", PNG_META),):
        buf = io.BytesIO()
        fig.savefig(buf, format=ext, dpi=DPI, metadata=meta, bbox_inches="tight")
        path = stem.with_name(f"{stem.name}.{ext}")
        atomic_write_bytes(path, buf.getvalue())
        out.append(path)
    return out


def _named(rows: pd.DataFrame) -> pd.DataFrame:
    return rows.assign(**{METHOD: rows["method"].map(display_method),
                          BACKBONE: rows["eval_backbone"].map(display_backbone)})


def bar_chart_figure(seed_rows: pd.DataFrame, methods: Sequence[str], backbones: Sequence[str],
                     title: str = "") -> Figure:
    """One group of bars per method, one bar per evaluating backbone: the mean over the per-seed rows
    with their sample std (ddof 1) as error bars (none for one seed)."""
    data = _named(seed_rows)
    order = [display_method(m) for m in methods]
    hues = [display_backbone(b) for b in backbones]
    fig = Figure(figsize=(max(4.0, 1.2 + 0.9 * len(order) * max(1, len(hues)) ** 0.5), 3.4))
    ax = fig.add_subplot()
    sns.barplot(data=data, x=METHOD, y="top1", hue=BACKBONE, order=order, hue_order=hues, errorbar="sd",
                capsize=0.15, err_kws={"linewidth": 1.0}, ax=ax)
    ax.set_xlabel("")
    ax.set_ylabel(ACCURACY)
    ax.tick_params(axis="x", labelrotation=30)
    for label in ax.get_xticklabels():
        label.set_horizontalalignment("right")
    if title:
        ax.set_title(title)
    if ax.get_legend() is not None:
        sns.move_legend(ax, "upper left", bbox_to_anchor=(1.0, 1.0), title=BACKBONE, frameon=False)
    return fig


def bar_chart(seed_rows: pd.DataFrame, methods: Sequence[str], backbones: Sequence[str], stem: Path, *,
              title: str = "", pdf: bool = True) -> list[Path]:
    with themed():
        return save_figure(bar_chart_figure(seed_rows, methods, backbones, title), stem, pdf=pdf)


def heatmap_labels(grid: Grid) -> np.ndarray:
    """Each cell's text: the mean as the table prints it, and the published value beneath when the
    cell carries one; "" where the cell is missing."""
    def text(cell) -> str:
        if cell.missing:
            return ""
        paper = cell.extra.get("paper")
        return f"{cell.mean:.{grid.decimals}f}" + ("" if paper is None else f"\n(paper {paper:.1f})")

    return np.array([[text(c) for c in row] for row in grid.cells], dtype=object).reshape(
        len(grid.rows), len(grid.columns))


def heatmap_figure(grid: Grid, label: str = ACCURACY) -> Figure:
    """``grid`` (rows: distilling backbone, columns: evaluating backbone) as an annotated heatmap;
    missing cells stay blank."""
    data = pd.DataFrame([[np.nan if c.missing else c.mean for c in row] for row in grid.cells],
                        index=grid.shown_rows, columns=grid.shown_columns, dtype=float)
    finite = data.to_numpy()[np.isfinite(data.to_numpy())]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    if hi - lo < 1e-9:
        lo, hi = lo - 1.0, hi + 1.0
    n_rows, n_cols = data.shape
    fig = Figure(figsize=(2.0 + 1.3 * max(n_cols, 1), 1.4 + 0.8 * max(n_rows, 1)))
    ax = fig.add_subplot()
    sns.heatmap(data, annot=heatmap_labels(grid), fmt="", mask=data.isna(), cmap="viridis", vmin=lo, vmax=hi,
                linewidths=0.5, annot_kws={"fontsize": 8}, cbar_kws={"label": label}, ax=ax)
    ax.grid(False)  # the theme's grid would cross the blank (missing) cells
    ax.set_xlabel("evaluated with")
    ax.set_ylabel("distilled with")
    ax.tick_params(axis="x", labelrotation=30)
    ax.tick_params(axis="y", labelrotation=0)
    if grid.title:
        ax.set_title(grid.title)
    return fig


def heatmap(grid: Grid, stem: Path, pdf: bool = True, label: str = ACCURACY) -> list[Path]:
    with themed():
        return save_figure(heatmap_figure(grid, label), stem, pdf=pdf)


def ipc_curve_figure(seed_rows: pd.DataFrame, title: str = "") -> Figure:
    """Accuracy versus images per class: one panel per evaluating backbone, one line per method (mean
    with the std over seeds as a band, log-scaled x); the full-data reference as a dashed line."""
    data = _named(seed_rows)
    backbones = sorted(data["eval_backbone"].unique())
    methods = [display_method(m) for m in sorted(set(data["method"]), key=method_sort_key)]
    palette = dict(zip(methods, sns.color_palette(THEME["palette"], len(methods)), strict=True))
    fig = Figure(figsize=(0.8 + 3.6 * len(backbones), 3.4))
    axes = fig.subplots(1, len(backbones), squeeze=False, sharey=True)[0]
    for ax, bb in zip(axes, backbones, strict=True):
        part = data[data["eval_backbone"] == bb]
        reference = part["method"].map(base_method).eq(REFERENCE_METHOD) | part["ipc"].eq(0)
        curves = part[~reference]
        if not curves.empty:
            sns.lineplot(data=curves, x="ipc", y="top1", hue=METHOD, hue_order=[m for m in methods
                                                                                if m in set(curves[METHOD])],
                         palette=palette, errorbar="sd", marker="o", ax=ax)
        for name, rows in part[reference].groupby(METHOD, sort=True):
            ax.axhline(float(rows["top1"].mean()), ls="--", lw=1, color=palette[name], label=name)
        ax.set_xscale("log")
        ipcs = sorted(int(v) for v in part["ipc"].unique() if v > 0)
        ax.set_xticks(ipcs, [str(v) for v in ipcs])
        ax.minorticks_off()
        ax.set_xlabel("images per class")
        ax.set_ylabel(ACCURACY)
        ax.set_title(display_backbone(bb))
        if ax.get_legend() is not None:
            ax.get_legend().remove()
    handles, labels = axes[-1].get_legend_handles_labels()
    if handles:
        axes[-1].legend(handles, labels, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    if title:
        fig.suptitle(title)
    return fig


def ipc_curve(seed_rows: pd.DataFrame, stem: Path, title: str = "", pdf: bool = True) -> list[Path]:
    with themed():
        return save_figure(ipc_curve_figure(seed_rows, title), stem, pdf=pdf)


def _short_names(names) -> dict[str, str]:
    """Each backbone by the first word of its display name (``CLIP``) when those tell them apart."""
    names = sorted(names)
    heads = {n: display_backbone(n).split(" ")[0] or n for n in names}
    return heads if len(set(heads.values())) == len(names) else {n: display_backbone(n) for n in names}


def alignment_scatter_figure(points: pd.DataFrame, *, title: str, ylabel: str) -> Figure:
    """Alignment (x) against transfer (y), one labelled point per (distilling, evaluating) pair, with
    the least-squares line. ``points``: columns distill_backbone, eval_backbone, alignment, transfer."""
    fig = Figure(figsize=(5.4, 4.0))
    ax = fig.add_subplot()
    sns.regplot(data=points, x="alignment", y="transfer", ci=None, scatter_kws={"s": 24}, line_kws={"lw": 1},
                ax=ax)
    short = _short_names(set(points["distill_backbone"]) | set(points["eval_backbone"]))
    for rec in points.to_dict("records"):
        ax.annotate(f"{short[rec['distill_backbone']]}→{short[rec['eval_backbone']]}",
                    (rec["alignment"], rec["transfer"]), fontsize=6, xytext=(3, 3), textcoords="offset points")
    ax.set_xlabel("mutual k-NN alignment of (A, B)")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    return fig


def alignment_scatter(points: pd.DataFrame, stem: Path, *, title: str, ylabel: str,
                      pdf: bool = True) -> list[Path]:
    with themed():
        return save_figure(alignment_scatter_figure(points, title=title, ylabel=ylabel), stem, pdf=pdf)


def draw(report: Report, out: Path, pdf: bool = True) -> list[Path]:
    """Every figure of ``report`` into ``out``; each record gets the paths of its figures."""
    written: list[Path] = []
    for sec in report.sections:
        grid = sec.table.grid
        if not sec.seed_rows.empty:
            sec.figures = bar_chart(sec.seed_rows, grid.rows, grid.columns, out / sec.table.stem,
                                    title=sec.key.title, pdf=pdf)
        for tr in sec.transfers:
            tr.figures = heatmap(tr.shown, out / f"{tr.table.stem}_heatmap", pdf=pdf)
            written += tr.figures
        written += sec.figures
    for curve in report.curves:
        curve.figures = ipc_curve(curve.seed_rows, out / curve.stem, title=curve.title, pdf=pdf)
        written += curve.figures
    for fig in report.transfer:
        fig.figures = alignment_scatter(fig.result.points, out / fig.result.stem, title=fig.title,
                                        ylabel=fig.ylabel, pdf=pdf)
        written += fig.figures
    return written
