"""Steps 2 and 3, aggregate and tabulate: gathered rows -> a :class:`~.records.Report` of tables (and
the data each figure will show). Nothing is written or drawn here."""

from __future__ import annotations

import math

import pandas as pd

from .aggregate import aggregate, is_same_model, ok_rows, table_keys, table_rows
from .alignment import AlignmentValues, alignment_caption, alignment_grid, alignment_transfer, alignment_values
from .latex import escape as latex_escape
from .naming import display_dataset, display_method, safe_name
from .paper import distilled_keys, paper_key, paper_tables, pooled_aggregate
from .records import (
    AlignmentFigure,
    AlignmentSection,
    Curve,
    Gathered,
    Report,
    SuiteSection,
    Table,
    TableKey,
    TransferSection,
)
from .tables import Grid, attach_paper, cross_model_methods, paper_value, same_model_grid, transfer_grid


def table_stem(key: tuple) -> str:
    suite, dataset, ipc, protocol = key
    return f"{safe_name(suite)}_{safe_name(dataset)}_ipc{int(ipc)}_{safe_name(protocol)}"


def _seed_rows(ok: pd.DataFrame, key: TableKey) -> pd.DataFrame:
    """The ok per-seed same-model rows of one table (its ipc and the full-data reference's 0)."""
    sel = (ok["suite"] == key.suite) & (ok["dataset"] == key.dataset) & (ok["protocol"] == key.protocol)
    sel &= (ok["ipc"] == key.ipc) | (ok["ipc"] == 0)
    part = ok[sel & ok["top1"].notna()]
    return part[is_same_model(part)].reset_index(drop=True)


def suite_section(agg: pd.DataFrame, ok: pd.DataFrame, key: TableKey, gathered: Gathered) -> SuiteSection:
    rows = table_rows(agg, key)
    stem = table_stem(key)
    grid = same_model_grid(rows, title=key.title)
    suite, ipc, protocol = (latex_escape(str(k)) for k in (key.suite, key.ipc, key.protocol))
    dataset = latex_escape(display_dataset(key.dataset))
    caption = (f"Top-1 accuracy (\\%) on {dataset}, {ipc} image(s) per class, protocol {protocol} "
               f"(suite {suite}); mean $\\pm$ sample std (ddof 1) over seeds.")
    same = [c.n for row in grid.cells for c in row if not c.missing]
    section = SuiteSection(key, Table(stem, grid, caption), (min(same, default=0), max(same, default=0)),
                           _seed_rows(ok, key), compared=compared_grid(grid, key, gathered))
    for method in cross_model_methods(rows):
        tstem = f"{stem}_{safe_name(method)}_transfer"
        tgrid = transfer_grid(rows, method, title=f"{key.title} / {display_method(method)}")
        tcap = (f"Cross-model transfer of {latex_escape(display_method(method))} on {dataset}, {ipc} image(s) "
                "per class: rows distill with, columns evaluate with; top-1 (\\%).")
        shown = attach_paper(tgrid, lambda d, e, m=method: gathered.paper.get(key.dataset, m, d, e, key.ipc,
                                                                              table="2"))
        section.transfers.append(TransferSection(method, Table(tstem, tgrid, tcap), shown))
    return section


def compared_grid(grid: Grid, key: TableKey, gathered: Gathered) -> Grid | None:
    """The same-model ``grid`` with the published numbers beside ours (the paper's own layout for the
    dataset first, :meth:`.paper.PaperNumbers.same_model_tables`); None when the paper has none of its
    cells."""
    table = gathered.paper.same_model_tables().get(paper_key(key.dataset))
    shown = attach_paper(grid, lambda m, b: gathered.paper.get(key.dataset, m, b, b, key.ipc, table=table))
    return shown if any(paper_value(c) is not None for row in shown.cells for c in row) else None


def curves(agg: pd.DataFrame, ok: pd.DataFrame) -> list[Curve]:
    """Accuracy versus ipc per (suite, dataset, protocol) with more than one ipc of same-model cells."""
    same = agg[is_same_model(agg)]
    made = []
    for (suite, dataset, protocol), part in same.groupby(["suite", "dataset", "protocol"], sort=True):
        if part.loc[part["ipc"] > 0, "ipc"].nunique() < 2:
            continue
        sel = (ok["suite"] == suite) & (ok["dataset"] == dataset) & (ok["protocol"] == protocol)
        seeds = ok[sel & ok["top1"].notna()]
        made.append(Curve(title=f"{suite} / {display_dataset(dataset)} / {protocol}: accuracy versus images per class",
                          stem=f"{safe_name(suite)}_{safe_name(dataset)}_{safe_name(protocol)}_ipc_curve",
                          seed_rows=seeds[is_same_model(seeds)].reset_index(drop=True)))
    return made


def alignment_sections(gathered: Gathered, report: Report) -> None:
    """The alignment tables, and alignment against transfer for every dataset/ipc/protocol with both."""
    if gathered.alignment.empty:
        return
    measured = alignment_values(gathered.alignment)
    for dataset, av in measured.items():
        stem = f"alignment_{safe_name(dataset)}"
        report.alignment.append(AlignmentSection(dataset, Table(stem, alignment_grid(av), alignment_caption(av))))
    pooled = pooled_aggregate(gathered.rows)
    for dataset in sorted(set(measured) & set(pooled["dataset"])):
        here = pooled[pooled["dataset"] == dataset]
        for protocol in sorted(here["protocol"].unique()):
            for ipc in sorted(set(here.loc[here["protocol"] == protocol, "ipc"]) - {0}):
                sel = here[(here["protocol"] == protocol) & (here["ipc"] == ipc)]
                for method in distilled_keys(sel["method"]):
                    alignment_figure(sel, measured[dataset], gathered, dataset, int(ipc), protocol, method, report)


def alignment_figure(sel: pd.DataFrame, av: AlignmentValues, gathered: Gathered, dataset: str, ipc: int,
                     protocol: str, method: str, report: Report) -> None:
    """Alignment against the transfer of ``method`` (an LGM key) for one dataset/ipc/protocol."""
    at = alignment_transfer(sel, av, gathered.paper, dataset, ipc, protocol, method=method)
    if at is None:
        return
    rho = "n/a" if math.isnan(at.rho) else f"{at.rho:.2f}"
    title = (f"{display_dataset(dataset)}, ipc {int(ipc)}, {protocol}, {display_method(method)}: Spearman ρ = {rho} "
             f"(n = {len(at.points)})")
    ylabel = "transfer relative to same-model (%)" if at.relative else "top-1, distilled with A, probed with B (%)"
    report.transfer.append(AlignmentFigure(at, title, ylabel))


def tabulate(gathered: Gathered) -> Report:
    """Aggregate the gathered rows and lay out every table."""
    agg = aggregate(gathered.rows)
    ok = ok_rows(gathered.rows)
    report = Report(gathered, agg)
    report.sections = [suite_section(agg, ok, TableKey(*key), gathered) for key in table_keys(agg)]
    report.curves = curves(agg, ok)
    report.paper = paper_tables(gathered.rows, gathered.paper)
    alignment_sections(gathered, report)
    return report
