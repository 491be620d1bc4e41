"""The report's flow: gather -> aggregate and tabulate -> figures -> documents (see the package doc)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import pandas as pd

from .documents import write_documents, write_tables
from .gather import gather
from .sections import tabulate

log = logging.getLogger(__name__)
Warn = Callable[[str], None]


def _log_warning(message: str) -> None:
    log.warning("%s", message)


def build_report(results: Path, out: Path, *, pdf: bool = True, paper: Path | None = None,
                 rows: pd.DataFrame | None = None, notes: Sequence[str] = (),
                 warn: Warn = _log_warning) -> list[Path]:
    """Render every table, figure and the summary for the results under ``results`` into ``out``.

    ``paper``: the published numbers (CSV) to put beside ours; by default :func:`.paper.find_paper_csv`
    (``<results>/paper_results.csv``, else the packaged copy). ``rows``: the result rows to report
    (default: every valid cell file's, :func:`benchmark.results.read_results`; ``python -m benchmark
    report`` passes those of the current suite definitions, see :mod:`.stale`). ``notes``: lines for
    the summary's totals; ``warn``: where warnings go (sets not shown). ``pdf=False``: PNG figures only.
    Returns the written paths, sorted. Raises ``ValueError`` when there are no result rows or ``paper``
    is not a readable CSV."""
    gathered = gather(results, rows=rows, paper=paper)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    report = tabulate(gathered)
    written = write_tables(report, out)

    from .distilled import copy_method_grids, distilled_grids  # matplotlib and seaborn: only when drawing
    from .figures import draw

    written += draw(report, out, pdf=pdf)
    report.grids = distilled_grids(gathered.rows, gathered.root, out, warn, pdf=pdf)
    written += [p for g in report.grids for p in g.figures]
    report.method_grids = copy_method_grids(gathered.rows, gathered.root, out, warn)
    written += report.method_grids
    written += write_documents(report, out, notes)
    return sorted(written)
