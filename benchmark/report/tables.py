"""Format-independent tables: an aggregated frame -> a :class:`Grid` of :class:`Entry` values.

A grid knows nothing about LaTeX or Markdown; :mod:`.latex` and :mod:`.markdown` render it. Layouts
(same-model table, cross-model transfer matrix; the paper's tables in :mod:`.paper`) are functions that
pick rows out of the aggregated frame and call :func:`build_grid`.

A grid with ``compare=True`` is rendered with three sub-columns per column: ours, the published value
(``cell.extra["paper"]``, optionally ``cell.extra["paper_std"]``) and the signed difference ours - paper;
see :func:`attach_paper`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import pandas as pd

from .aggregate import REFERENCE_METHOD, is_cross_model, is_reference, is_same_model, order_methods
from .naming import display_backbone, display_method

DECIMALS = 2


@dataclass(frozen=True)
class Entry:
    """One table entry (mean ± std over seeds). ``mean is None``: missing. ``extra`` holds labelled side
    values (e.g. ``{"paper": 84.9}``) that renderers may show beside ours."""

    mean: float | None = None
    std: float | None = None
    n: int = 0
    ci95: float | None = None
    bold: bool = False
    extra: dict = field(default_factory=dict)

    @property
    def missing(self) -> bool:
        return self.mean is None

    @property
    def has_std(self) -> bool:
        return self.n >= 2 and self.std is not None and not math.isnan(self.std)


@dataclass(frozen=True)
class Grid:
    """Rows x columns of cells, with labels. ``corner`` is the header of the row-label column."""

    rows: list[str]
    columns: list[str]
    cells: list[list[Entry]]
    corner: str = ""
    title: str = ""
    decimals: int = DECIMALS  # digits after the point for our values
    compare: bool = False  # render ours | paper | delta per column (see attach_paper)
    # How renderers show the labels (e.g. "LGM" for the key "lgm", see :func:`named`); None: as they are.
    row_names: tuple[str, ...] | None = None
    column_names: tuple[str, ...] | None = None

    @property
    def shown_rows(self) -> list[str]:
        return list(self.row_names) if self.row_names is not None else list(self.rows)

    @property
    def shown_columns(self) -> list[str]:
        return list(self.column_names) if self.column_names is not None else list(self.columns)

    def cell(self, row: str, column: str) -> Entry:
        return self.cells[self.rows.index(row)][self.columns.index(column)]



def _num(value) -> float | None:
    if value is None:
        return None
    value = float(value)
    return None if math.isnan(value) else value


def build_grid(
    agg: pd.DataFrame,
    row_key: str,
    col_key: str,
    *,
    row_order: Sequence[str] | None = None,
    col_order: Sequence[str] | None = None,
    bold: str | None = "max",
    exclude_from_best: Sequence[str] = (),
    corner: str = "",
    title: str = "",
) -> Grid:
    """Pivot ``agg`` (columns ``mean``, ``std``, ``n``, ``ci95`` plus the two keys) into a grid.

    ``row_key``/``col_key`` name the frame columns that label rows/columns; they must identify one row
    of ``agg`` each (a duplicate raises ``ValueError``). Orders default to sorted order. ``bold="max"``
    marks the highest mean of each column (ties at the displayed precision are all bold); rows whose
    label is in ``exclude_from_best`` are never bold. ``bold=None`` marks nothing."""
    if agg.duplicated([row_key, col_key]).any():
        dup = agg[agg.duplicated([row_key, col_key], keep=False)]
        raise ValueError(f"more than one aggregated row per ({row_key}, {col_key}):\n{dup}")
    rows = list(row_order) if row_order is not None else sorted(agg[row_key].unique())
    cols = list(col_order) if col_order is not None else sorted(agg[col_key].unique())
    lookup = {(r[row_key], r[col_key]): r for r in agg.to_dict("records")}
    cells = []
    for r in rows:
        line = []
        for c in cols:
            rec = lookup.get((r, c))
            if rec is None:
                line.append(Entry())
            else:
                line.append(Entry(mean=_num(rec["mean"]), std=_num(rec.get("std")), n=int(rec.get("n", 1)),
                                 ci95=_num(rec.get("ci95"))))
        cells.append(line)
    grid = Grid(rows=rows, columns=cols, cells=cells, corner=corner, title=title)
    if bold == "max":
        grid = bold_best(grid, exclude=exclude_from_best)
    elif bold is not None:
        raise ValueError(f"bold must be 'max' or None, not {bold!r}")
    return grid


def bold_best(grid: Grid, exclude: Sequence[str] = (), decimals: int = DECIMALS) -> Grid:
    """Mark the highest mean per column (compared at the displayed precision) as bold."""
    cells = [list(row) for row in grid.cells]
    for j in range(len(grid.columns)):
        candidates = [
            (round(cells[i][j].mean, decimals), i)
            for i, name in enumerate(grid.rows)
            if name not in exclude and not cells[i][j].missing
        ]
        if not candidates:
            continue
        best = max(v for v, _ in candidates)
        for v, i in candidates:
            if v == best:
                cells[i][j] = replace(cells[i][j], bold=True)
    return replace(grid, cells=cells)


def format_value(cell: Entry, pm: str, decimals: int = DECIMALS, missing: str = "--") -> str:
    """``"50.00 ± 1.00"`` (with ``pm`` as the plus-minus sign); the mean alone for a single seed."""
    if cell.missing:
        return missing
    text = f"{cell.mean:.{decimals}f}"
    if cell.has_std:
        text += f" {pm} {cell.std:.{decimals}f}"
    return text


def _published(value: float) -> str:
    """A published number at its own precision (at least one decimal, at most two): 84.9, 85.0, 84.25."""
    text = f"{value:.2f}"
    return text[:-1] if text.endswith("0") else text


def paper_value(cell: Entry) -> float | None:
    return _num(cell.extra.get("paper"))


def format_paper(cell: Entry, pm: str, missing: str = "--") -> str:
    """The published value of ``cell`` (``"84.9"``, or ``"84.9 ± 0.3"`` when the paper gives a std)."""
    value = paper_value(cell)
    if value is None:
        return missing
    std = _num(cell.extra.get("paper_std"))
    return _published(value) + (f" {pm} {_published(std)}" if std is not None else "")


def delta(cell: Entry) -> float | None:
    """Ours - paper, or None when either is missing."""
    value = paper_value(cell)
    return None if value is None or cell.missing else cell.mean - value


def format_delta(cell: Entry, decimals: int = DECIMALS, missing: str = "--") -> str:
    """The signed difference ours - paper: ``"+0.50"``, ``"-0.80"``."""
    d = delta(cell)
    return missing if d is None else f"{d:+.{decimals}f}"


def attach_paper(grid: Grid, lookup: Callable[[str, str], tuple[float, float | None] | None]) -> Grid:
    """Put the published value of every cell into ``cell.extra`` (``lookup(row, column)`` returns
    ``(top1, std or None)`` or None) and mark the grid for ours | paper | delta rendering."""
    cells = []
    for r, row in zip(grid.rows, grid.cells, strict=True):
        line = []
        for c, cell in zip(grid.columns, row, strict=True):
            found = lookup(r, c)
            extra = {k: v for k, v in cell.extra.items() if k not in ("paper", "paper_std")}
            if found is not None and _num(found[0]) is not None:
                extra["paper"] = float(found[0])
                if _num(found[1]) is not None:
                    extra["paper_std"] = float(found[1])
            line.append(replace(cell, extra=extra))
        cells.append(line)
    return replace(grid, cells=cells, compare=True)


def named(grid: Grid, rows: Callable[[str], str] | None = None,
          columns: Callable[[str], str] | None = None) -> Grid:
    """``grid`` with its labels shown through ``rows``/``columns`` (key -> shown name); the keys stay
    (``grid.cell(key, key)`` and paper lookups keep working)."""
    return replace(grid, row_names=None if rows is None else tuple(rows(r) for r in grid.rows),
                   column_names=None if columns is None else tuple(columns(c) for c in grid.columns))


# ----------------------------------------------------------------------------------------- layouts


def same_model_grid(rows: pd.DataFrame, title: str = "") -> Grid:
    """Methods x evaluating backbones, same-model cells only (distilled with the evaluating backbone,
    or with none); full_data last and never bold."""
    same = rows[is_same_model(rows)]
    grid = build_grid(
        same,
        "method",
        "eval_backbone",
        row_order=order_methods(same["method"]),
        bold="max",
        exclude_from_best=(REFERENCE_METHOD, *(m for m in set(same["method"]) if is_reference(m))),
        corner="Method",
        title=title,
    )
    return named(grid, display_method, display_backbone)


def cross_model_methods(rows: pd.DataFrame) -> list[str]:
    """Methods of ``rows`` that have at least one cross-model cell, in canonical order."""
    return order_methods(rows.loc[is_cross_model(rows), "method"])


def transfer_grid(rows: pd.DataFrame, method: str, title: str = "") -> Grid:
    """Distilling backbone x evaluating backbone for one method (the diagonal is same-model)."""
    sel = rows[(rows["method"] == method) & (rows["distill_backbone"] != "")]
    grid = build_grid(sel, "distill_backbone", "eval_backbone", bold="max", corner="Distilled with",
                      title=title)
    return named(grid, display_backbone, display_backbone)


TableBuilder = Callable[[pd.DataFrame], Grid]
