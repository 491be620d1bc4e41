"""Step 1, gather: the result rows, the published numbers and the alignment rows of a results
directory, with every method keyed by what ran (:mod:`.labels`)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..results import COLUMNS, read_results
from .labels import label_methods
from .paper import PaperNumbers, find_paper_csv
from .records import Gathered

NO_RESULTS = (
    "no result rows under {root}; run `python -m benchmark run` first (or point at the results directory)"
)


def result_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows in :data:`COLUMNS` order; rows without a method (hand-made frames) are dropped."""
    frame = frame[frame["method"].notna()] if "method" in frame else frame.iloc[0:0]
    return frame.reindex(columns=COLUMNS).reset_index(drop=True)


def paper_numbers(root: Path, paper: Path | None) -> PaperNumbers:
    path = Path(paper) if paper is not None else find_paper_csv(root)
    return PaperNumbers.empty() if path is None else PaperNumbers.load(path)


def gather(results: Path, rows: pd.DataFrame | None = None, paper: Path | None = None) -> Gathered:
    """Read (or take ``rows``), label, and load the published numbers and alignment tables. Raises
    ``ValueError`` when there are no result rows or ``paper`` is not a readable CSV."""
    from ..mutual_knn import read_alignment  # torch: only when a report is made

    root = Path(results)
    frame = result_rows(read_results(root) if rows is None else rows)
    if frame.empty:
        raise ValueError(NO_RESULTS.format(root=root))
    numbers = paper_numbers(root, paper)
    return Gathered(root=root, rows=label_methods(frame), paper=numbers, alignment=read_alignment(root))
