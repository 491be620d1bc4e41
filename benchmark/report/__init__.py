"""The report: result rows -> LaTeX/Markdown tables, seaborn figures, a Markdown summary and a web page.

``build_report(results, out)`` runs the flow, one module per step, small records
(:mod:`.records`) between them:

1. gather (:mod:`.gather`): the rows of every valid cell file, each method keyed by what ran
   (:mod:`.labels`: ``LGM [embedded]``, ``<NAME> [external]``, stale ``[cfg <hash>]``), the published
   numbers (:mod:`.paper`, packaged ``benchmark/assets/paper_results.csv``) and the alignment rows;
2. aggregate and tabulate (:mod:`.aggregate`, :mod:`.sections`, :mod:`.tables`, :mod:`.paper`,
   :mod:`.alignment`): per (suite, dataset, ipc, protocol) a same-model table (mean ± sample std over seeds,
   best per column in bold) and per method with cross-model cells a transfer matrix; the paper's
   Table 1/2/3/4/5/8 layouts (ours | paper | Δ, all suites pooled, ± the population std); the mutual
   k-NN alignment tables and alignment against transfer;
3. figures (:mod:`.figures`, :mod:`.distilled`; matplotlib and seaborn are imported only here): bar
   charts, heatmaps, accuracy versus ipc, alignment scatter, and the distilled images as the paper
   shows them, each as PNG and PDF;
4. documents (:mod:`.documents`): ``<stem>.tex``/``.md`` per table, ``aggregated.csv``,
   ``tables.tex`` (standalone LaTeX) and ``summary.md``;
5. the page (:mod:`.page`, with ``build_report(html=True)`` as ``python -m benchmark report`` asks):
   ``index.html`` from a Jinja template, self-contained, with the CSV of each of its tables, the header
   (:mod:`.page_header`), sortable tables with each row's cells (:mod:`.page_tables`) and the images of
   every stored set (:mod:`.gallery`).

Tables and figures show registered display names (:mod:`.naming`); file names keep the keys.
"""

from __future__ import annotations

from .aggregate import (
    CANONICAL_METHODS,
    GROUP_KEYS,
    REFERENCE_METHOD,
    aggregate,
    failed_cells,
    method_sort_key,
    order_methods,
)
from .build import build_report
from .latex import render_latex
from .markdown import render_markdown
from .naming import safe_name
from .paper import PaperNumbers, PaperTable, find_paper_csv, packaged_paper_results, paper_tables
from .tables import Entry, Grid, attach_paper, build_grid, same_model_grid, transfer_grid

__all__ = [
    "CANONICAL_METHODS", "GROUP_KEYS", "REFERENCE_METHOD", "Entry", "Grid", "PaperNumbers", "PaperTable",
    "aggregate", "attach_paper", "build_grid", "build_report", "failed_cells", "find_paper_csv",
    "method_sort_key", "order_methods", "packaged_paper_results", "paper_tables", "render_latex",
    "render_markdown", "safe_name", "same_model_grid", "transfer_grid",
]
