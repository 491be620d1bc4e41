"""The records the report's steps hand each other: gather -> aggregate/tables -> figures -> documents.

Each is a small dataclass; a figure step fills in the paths it wrote (``figures``), the document step
reads them. Nothing here draws or renders."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import pandas as pd

from .alignment import AlignmentTransfer
from .naming import display_dataset
from .paper import PaperNumbers, PaperTable
from .tables import Grid


class TableKey(NamedTuple):
    """What one per-suite table is about."""

    suite: str
    dataset: str
    ipc: int
    protocol: str

    @property
    def title(self) -> str:
        return f"{self.suite} / {display_dataset(self.dataset)} / ipc {int(self.ipc)} / {self.protocol}"


@dataclass
class Gathered:
    """What the report starts from: the result rows (methods already keyed by :mod:`.labels`), the
    published numbers and the alignment rows."""

    root: Path
    rows: pd.DataFrame
    paper: PaperNumbers
    alignment: pd.DataFrame


@dataclass(frozen=True)
class Table:
    """One table to write as ``<stem>.tex`` and ``<stem>.md`` (and into ``tables.tex``)."""

    stem: str
    grid: Grid
    caption: str  # LaTeX


@dataclass
class TransferSection:
    """One method's cross-model transfer matrix within a suite table."""

    method: str
    table: Table
    shown: Grid  # the matrix with the published numbers attached, for the heatmap
    figures: list[Path] = field(default_factory=list)


@dataclass
class SuiteSection:
    """One (suite, dataset, ipc, protocol): its same-model table and transfer matrices."""

    key: TableKey
    table: Table
    seeds: tuple[int, int]  # fewest and most seeds of a same-model cell
    seed_rows: pd.DataFrame  # the ok per-seed rows behind the same-model cells (for error bars)
    transfers: list[TransferSection] = field(default_factory=list)
    figures: list[Path] = field(default_factory=list)
    # the same-model table with the published numbers attached where the paper has a cell (the page
    # shows ours | paper | difference); None when the paper has none of its cells
    compared: Grid | None = None


@dataclass
class Curve:
    """Accuracy versus images per class of one (suite, dataset, protocol), from its per-seed rows."""

    title: str
    stem: str
    seed_rows: pd.DataFrame
    figures: list[Path] = field(default_factory=list)


@dataclass
class AlignmentSection:
    dataset: str
    table: Table


@dataclass
class AlignmentFigure:
    """Alignment against transfer for one (dataset, ipc, protocol)."""

    result: AlignmentTransfer
    title: str
    ylabel: str
    figures: list[Path] = field(default_factory=list)


@dataclass
class DistilledGrid:
    """The distilled images of one (dataset, method, ipc, method seed), one row group per distilling
    backbone; ``figures``: the pages written."""

    stem: str
    title: str
    figures: list[Path] = field(default_factory=list)


@dataclass
class GalleryRow:
    """One row of a gallery: a distilling backbone (and image index when ipc > 1), one image per class
    (``None`` where the set has no image of that class); paths relative to the page."""

    label: str
    images: list[str | None]


@dataclass
class Gallery:
    """The images of one stored set group (dataset, method, ipc, method seed) for the page: classes
    across, one row per distilling backbone. ``kind``: ``distilled`` (images the method made) or
    ``selected`` (real training images the method picked)."""

    stem: str
    title: str
    kind: str
    method: str
    dataset: str
    ipc: int
    seed: int
    class_names: list[str]
    rows: list[GalleryRow] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)  # the image files written
    side: int = 0  # the largest side of its images, in pixels

    #: Galleries with more images than this load them as they scroll into view (ImageNet-1k: thousands).
    LAZY_AFTER = 400

    @property
    def lazy(self) -> bool:
        return len(self.files) > self.LAZY_AFTER


@dataclass
class Report:
    """Everything the documents show."""

    gathered: Gathered
    aggregated: pd.DataFrame
    sections: list[SuiteSection] = field(default_factory=list)
    curves: list[Curve] = field(default_factory=list)
    paper: list[PaperTable] = field(default_factory=list)
    alignment: list[AlignmentSection] = field(default_factory=list)
    transfer: list[AlignmentFigure] = field(default_factory=list)
    grids: list[DistilledGrid] = field(default_factory=list)
    method_grids: list[Path] = field(default_factory=list)  # the grid.png each method drew, copied
    galleries: list[Gallery] = field(default_factory=list)  # the page's image grids
