"""The report's flow: gather -> aggregate and tabulate -> figures -> documents and the page (see the
package doc)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import pandas as pd

from .documents import write_alignment_points, write_documents, write_tables
from .gather import gather
from .sections import tabulate

log = logging.getLogger(__name__)
Warn = Callable[[str], None]


def _log_warning(message: str) -> None:
    log.warning("%s", message)


def build_report(results: Path, out: Path, *, pdf: bool = True, paper: Path | None = None,
                 rows: pd.DataFrame | None = None, notes: Sequence[str] = (),
                 warn: Warn = _log_warning, stale: pd.DataFrame | None = None, html: bool = False,
                 html_only: bool = False) -> list[Path]:
    """Render every table, figure, the summary and the page for the results under ``results`` into
    ``out``.

    ``paper``: the published numbers (CSV) to put beside ours; by default :func:`.paper.find_paper_csv`
    (``<results>/paper_results.csv``, else the packaged copy). ``rows``: the result rows to report
    (default: every valid cell file's, :func:`benchmark.results.read_results`; ``python -m benchmark
    report`` passes those of the current suite definitions, see :mod:`.stale`). ``notes``: lines for
    the summary's totals and the page's header; ``stale``: the stale rows (left out, or among ``rows``
    labelled by config), which the page counts per suite (None: not judged); ``warn``: where warnings
    go (sets not shown). ``pdf=False``: PNG figures only. ``html=True`` (as ``python -m benchmark
    report`` asks): also the page, ``index.html`` with the CSV of each of its tables and its images
    under ``images/``; ``html_only``: only the page and the PNG figures it shows.
    Returns the written paths, sorted. Raises ``ValueError`` when there are no result rows or ``paper``
    is not a readable CSV."""
    gathered = gather(results, rows=rows, paper=paper)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    report = tabulate(gathered)
    pdf = pdf and not html_only
    written = [] if html_only else write_tables(report, out)

    from .distilled import copy_method_grids, distilled_grids  # matplotlib and seaborn: only when drawing
    from .figures import draw

    written += draw(report, out, pdf=pdf)
    if not html_only:
        report.grids = distilled_grids(gathered.rows, gathered.root, out, warn, pdf=pdf)
        written += [p for g in report.grids for p in g.figures]
        report.method_grids = copy_method_grids(gathered.rows, gathered.root, out, warn)
        written += report.method_grids
        written += write_documents(report, out, notes)
    if html or html_only:
        written += write_html(report, out, notes, stale, warn, points=html_only)
    return sorted(set(written))


def write_html(report, out: Path, notes: Sequence[str], stale: pd.DataFrame | None, warn: Warn,
               points: bool) -> list[Path]:
    """The page and what only it shows: the gallery images (and, with ``points``, the alignment points
    the other documents write otherwise)."""
    from .gallery import galleries
    from .page import write_page
    from .page_header import page_header

    report.galleries = galleries(report.gathered.rows, report.gathered.root, out, warn)
    written = [p for g in report.galleries for p in g.files]
    if points:
        written += write_alignment_points(report, out)
    header = page_header(report.gathered.root, report.gathered.rows, stale, list(notes))
    return written + write_page(report, out, header)
