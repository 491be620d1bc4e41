"""Step 5, the page: ``index.html``, one self-contained static page of the report (its CSS and its small
script inline, images as files beside it, no network request), rendered from the Jinja template
``templates/index.html.j2``; and each of its tables as ``<stem>.csv``.

It shows what the other documents show, from the same :class:`~.records.Report`: the header of the
results directory (:mod:`.page_header`), per suite table the same-model grid (with the published numbers
where the paper has its cells) and its transfer matrices with their heatmaps, the image grids
(:mod:`.gallery`), the alignment tables and scatter, the paper-layout tables, the failed cells; every
row of a suite table opens the details of its cells (:mod:`.page_tables`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from .aggregate import method_sort_key
from .documents import write_text
from .naming import display_dataset, display_method, safe_name
from .page_header import Header
from .page_tables import Cell as PageCell
from .page_tables import CellDetails, CellIndex, Column, PageTable, Row, grid_frame, has_paper, page_table
from .records import Gallery, Report, SuiteSection, TableKey
from .tables import Grid

PAGE = "index.html"
TEMPLATE = "index.html.j2"


def _png(paths: Sequence[Path]) -> str | None:
    return next((p.name for p in paths if p.suffix == ".png"), None)


def _csv(out: Path, stem: str, frame: pd.DataFrame) -> Path:
    return write_text(out / f"{stem}.csv", frame.to_csv(index=False, float_format="%.6g"))


def _same_model_cells(index: CellIndex, key: TableKey, method: str, backbones: Sequence[str]) -> list[CellDetails]:
    """The cells behind one row of a same-model table: distilled with the evaluating backbone or with
    none, at the table's ipc (or 0, the full-data reference)."""
    found = []
    for b in backbones:
        for ipc in dict.fromkeys((key.ipc, 0)):
            for distill in dict.fromkeys((b, "")):
                found += index.find(key.suite, key.dataset, ipc, key.protocol, method, distill, b)
    return found


def _shown(grid: Grid, compared: Grid | None) -> Grid:
    return compared if compared is not None and has_paper(compared) else grid


def suite_block(sec: SuiteSection, index: CellIndex, out: Path, written: list[Path]) -> dict:
    key = sec.key
    grid = _shown(sec.table.grid, sec.compared)
    written.append(_csv(out, sec.table.stem, grid_frame(grid, "method", "eval_backbone")))
    lo, hi = sec.seeds
    seeds = f"{lo}" if lo == hi else f"{lo} to {hi}"
    note = (f"Top-1 accuracy (%), mean ± sample std (ddof 1) over seeds ({seeds} per cell), best per column in "
            f"bold ({display_method('full_data')} excluded: it is the reference).")
    if grid.compare:
        note += (" paper: the published number (± its population std where the paper gives one); Δ = ours − "
                 "paper, green where ours is higher.")
    table = page_table(grid, sec.table.stem, key.title, csv=f"{sec.table.stem}.csv", note=note,
                       details=lambda m: _same_model_cells(index, key, m, grid.columns))
    transfers = []
    for tr in sec.transfers:
        tgrid = _shown(tr.table.grid, tr.shown)
        written.append(_csv(out, tr.table.stem, grid_frame(tgrid, "distill_backbone", "eval_backbone")))
        details = (lambda d, m=tr.method, g=tgrid: [c for e in g.columns for c in index.find(
            key.suite, key.dataset, key.ipc, key.protocol, m, d, e)])
        transfers.append({
            "title": f"Cross-model transfer: {display_method(tr.method)}",
            "heatmap": _png(tr.figures),
            "table": page_table(tgrid, tr.table.stem, tgrid.title, csv=f"{tr.table.stem}.csv", details=details,
                                note="Rows: distilled with; columns: evaluated with; top-1 (%)."),
        })
    return {"id": f"suite-{sec.table.stem}", "title": key.title, "table": table, "bars": _png(sec.figures),
            "transfers": transfers}


def points_table(points: pd.DataFrame, table_id: str, title: str, relative: bool) -> PageTable:
    """The points of an alignment scatter: one row per (distilling, evaluating) pair."""
    from .naming import display_backbone

    columns = [Column("distilled with", numeric=False), Column("evaluated with", numeric=False),
               Column("alignment"), Column("top-1 (%)"), Column("same-model top-1 (%)"),
               Column("transfer (%)" if relative else "transfer, top-1 (%)")]
    rows = []
    for rec in points.to_dict("records"):
        cells = [PageCell(display_backbone(rec["distill_backbone"]), display_backbone(rec["distill_backbone"])),
                 PageCell(display_backbone(rec["eval_backbone"]), display_backbone(rec["eval_backbone"]))]
        for col, digits in (("alignment", 3), ("top1", 2), ("same_model_top1", 2), ("transfer", 2)):
            value = rec.get(col)
            ok = value is not None and value == value
            cells.append(PageCell(f"{value:.{digits}f}" if ok else "—", repr(float(value)) if ok else ""))
        rows.append(Row(cells))
    return PageTable(table_id, title, columns, rows)


#: Images shown smaller than their tiles are drawn with hard pixel edges (Fashion-MNIST's 28 px).
PIXELATED_BELOW = 96


def gallery_groups(galleries: Sequence[Gallery], kind: str) -> list[dict]:
    """The galleries of one ``kind`` by (dataset, ipc, method seed): one grid each, a row group per
    method (canonical order), so the eye compares the methods' images class by class."""
    groups: dict[tuple, list[Gallery]] = {}
    for g in galleries:
        if g.kind == kind:
            groups.setdefault((g.dataset, g.ipc, g.seed), []).append(g)
    out = []
    for (dataset, ipc, seed), members in sorted(groups.items()):
        members.sort(key=lambda g: method_sort_key(g.method))
        names = max((g.class_names for g in members), key=len)
        where = f"{display_dataset(dataset)}, {ipc} image(s) per class, method seed {seed}"
        out.append({
            "id": f"{kind}-{safe_name(dataset)}-ipc{ipc}-seed{seed}",
            "title": f"{display_method(members[0].method)}: {where}" if len(members) == 1 else where,
            "class_names": names,
            "methods": [{"name": display_method(g.method), "rows": g.rows} for g in members],
            "px": max(g.side for g in members) < PIXELATED_BELOW,
            "lazy": sum(len(g.files) for g in members) > Gallery.LAZY_AFTER,
        })
    return out


def page_context(report: Report, out: Path, header: Header, written: list[Path]) -> dict:
    index = CellIndex(report.gathered.rows, report.gathered.root)
    suites = [suite_block(sec, index, out, written) for sec in report.sections]
    alignment = []
    for a in report.alignment:
        written.append(_csv(out, a.table.stem, grid_frame(a.table.grid, "backbone_a", "backbone_b")))
        alignment.append(page_table(a.table.grid, a.table.stem, f"Mutual k-NN alignment: {display_dataset(a.dataset)}",
                                    csv=f"{a.table.stem}.csv"))
    scatter = [{"title": fig.title, "sentence": fig.result.sentence(), "image": _png(fig.figures),
                "csv": f"{fig.result.stem}.csv",
                "table": points_table(fig.result.points, fig.result.stem, fig.title, fig.result.relative)}
               for fig in report.transfer]
    paper = []
    for t in report.paper:
        written.append(_csv(out, t.stem, grid_frame(t.grid, "row", "column")))
        paper.append(page_table(t.grid, t.stem, t.title, csv=f"{t.stem}.csv",
                                note="All suites pooled; ours: mean ± population std (ddof 0) over seeds."))
    shown_cells = int(report.gathered.rows["cell_id"].nunique())
    return {
        "header": header,
        "cells": shown_cells,
        "rows": len(report.gathered.rows),
        "suites": suites,
        "curves": [{"title": c.title, "image": _png(c.figures)} for c in report.curves if _png(c.figures)],
        "distilled": gallery_groups(report.galleries, "distilled"),
        "selected": gallery_groups(report.galleries, "selected"),
        "alignment": alignment,
        "scatter": scatter,
        "paper": paper,
        "paper_source": str(report.gathered.paper.path or ""),
        "failed": index.failed(),
    }


def _environment():
    import jinja2

    env = jinja2.Environment(loader=jinja2.PackageLoader("benchmark.report", "templates"),
                             autoescape=jinja2.select_autoescape(("html", "j2")), trim_blocks=True,
                             lstrip_blocks=True, undefined=jinja2.StrictUndefined)
    env.filters["anchor"] = safe_name
    return env


def render_page(context: dict) -> str:
    return _environment().get_template(TEMPLATE).render(**context)


def write_page(report: Report, out: Path, header: Header) -> list[Path]:
    """``index.html`` and the CSV of each of its tables into ``out`` (the figures and the gallery images
    it shows are written by their own steps); returns the paths written."""
    written: list[Path] = []
    context = page_context(report, Path(out), header, written)
    written.append(write_text(Path(out) / PAGE, render_page(context)))
    return written
