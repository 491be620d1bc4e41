"""The page's tables: a :class:`~.tables.Grid` as rows of display text with the value each column sorts
by, and per cell of the results the details a row opens (settings, provenance, cost, the Parquet file).

Like :mod:`.latex` and :mod:`.markdown`, this only lays out what a grid holds (the same entries, the
same formatting helpers); the Jinja template (``templates/index.html.j2``) turns it into HTML.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ..results import CELLS_DIR
from .aggregate import GROUP_KEYS
from .naming import display_backbone, display_dataset, display_method
from .paper import finite_float
from .tables import Entry, Grid, delta, format_delta, format_paper, format_value, paper_value

MISSING = "—"
#: |ours - paper| thresholds (points) of the difference colours: faint below the first, strong from the last.
DELTA_STEPS = (1.0, 3.0)


@dataclass
class Column:
    label: str
    numeric: bool = True


@dataclass
class Cell:
    text: str
    sort: str = ""  # what the column sorts by ("" sorts last)
    bold: bool = False
    css: str = ""


@dataclass
class CellDetails:
    """What one cell of the results records, for the details row that opens under a table row."""

    cell_id: str
    title: str
    status: str
    error: str
    facts: list[tuple[str, str]]
    seeds: list[tuple[str, str, str]]  # probe seed, top-1, status
    settings: list[tuple[str, str]]  # label, JSON one key a line


@dataclass
class Row:
    cells: list[Cell]
    details: list[CellDetails] = field(default_factory=list)


@dataclass
class PageTable:
    """One sortable table of the page; ``groups``: a header row above the columns (label, span), for
    grids shown as ours | paper | difference; ``csv``: the file with its numbers, beside the page."""

    id: str
    title: str
    columns: list[Column]
    rows: list[Row]
    groups: list[tuple[str, int]] | None = None
    csv: str | None = None
    note: str = ""


def delta_class(d: float | None) -> str:
    """The CSS class of a difference ours - paper: its sign and how large (:data:`DELTA_STEPS`)."""
    if d is None:
        return ""
    size = sum(abs(d) >= step for step in DELTA_STEPS) + 1
    return f"delta {'pos' if d >= 0 else 'neg'}{size}"


def _sort(value: float | None) -> str:
    return "" if value is None else repr(float(value))


def _ours(cell: Entry, decimals: int) -> Cell:
    return Cell(format_value(cell, pm="±", decimals=decimals, missing=MISSING), _sort(cell.mean),
                bold=cell.bold and not cell.missing)


def has_paper(grid: Grid) -> bool:
    return any(paper_value(c) is not None for row in grid.cells for c in row)


def page_table(grid: Grid, table_id: str, title: str = "", *,
               details: Callable[[str], list[CellDetails]] | None = None, csv: str | None = None,
               note: str = "") -> PageTable:
    """``grid`` as a page table: a column per grid column, or ours | paper | Δ per column for a
    comparison grid; ``details(row key)``: the cells a row opens (none without)."""
    columns = [Column(grid.corner or "", numeric=False)]
    groups = None
    if grid.compare:
        groups = [("", 1)] + [(name, 3) for name in grid.shown_columns]
        for _ in grid.columns:
            columns += [Column("ours"), Column("paper"), Column("Δ")]
    else:
        columns += [Column(name) for name in grid.shown_columns]
    rows = []
    for key, name, line in zip(grid.rows, grid.shown_rows, grid.cells, strict=True):
        cells = [Cell(name, name)]
        for cell in line:
            cells.append(_ours(cell, grid.decimals))
            if grid.compare:
                d = delta(cell)
                cells.append(Cell(format_paper(cell, pm="±", missing=MISSING), _sort(paper_value(cell))))
                cells.append(Cell(format_delta(cell, decimals=grid.decimals, missing=MISSING), _sort(d),
                                  css=delta_class(d)))
        rows.append(Row(cells, details(key) if details is not None else []))
    return PageTable(table_id, title or grid.title, columns, rows, groups, csv, note)


def grid_frame(grid: Grid, row_label: str, column_label: str) -> pd.DataFrame:
    """The numbers of ``grid``, one line per entry (for its CSV): keys, shown names, mean, sample std,
    n, 95% half-width, bold, and for a comparison grid the published value and ours - paper."""
    recs = []
    for key, name, line in zip(grid.rows, grid.shown_rows, grid.cells, strict=True):
        for ckey, cname, cell in zip(grid.columns, grid.shown_columns, line, strict=True):
            rec = {row_label: key, f"{row_label}_name": name, column_label: ckey, f"{column_label}_name": cname,
                   "mean": cell.mean, "std": cell.std if cell.has_std else None, "n": cell.n, "ci95": cell.ci95,
                   "bold": cell.bold}
            if grid.compare:
                rec.update(paper=paper_value(cell), paper_std=cell.extra.get("paper_std"), delta=delta(cell))
            recs.append(rec)
    return pd.DataFrame(recs)


# ------------------------------------------------------------------------------------------- details


def _json(text) -> str:
    """A settings object one key a line (its values compact: ``"crop_scale": [0.08, 1.0]``)."""
    if not isinstance(text, str) or not text:
        return ""
    try:
        value = json.loads(text)
    except ValueError:
        return text
    if not isinstance(value, dict) or not value:
        return json.dumps(value)
    lines = [f"  {json.dumps(k)}: {json.dumps(v, sort_keys=True)}" for k, v in sorted(value.items())]
    return "{\n" + ",\n".join(lines) + "\n}"


def _seconds(value) -> str:
    value = finite_float(value)
    return "n/a" if value is None else f"{value:.2f} s"


def _gpu_seconds(values: Sequence) -> str:
    found = [v for v in map(finite_float, values) if v is not None]
    return f"{sum(found):.2f} s" if found else "n/a (no CUDA)"


def _bytes(values: Sequence) -> str:
    found = [v for v in map(finite_float, values) if v is not None]
    return "n/a" if not found else f"{max(found) / 2**30:.2f} GiB"


def _text(value) -> str:
    """``value`` as shown; "" for a missing one (None, NaN, NaT)."""
    return "" if value is None or (not isinstance(value, (str, list, dict)) and pd.isna(value)) else str(value)


def cell_details(rows: Sequence[dict], root: Path) -> CellDetails:
    """The details of one cell from its rows (records, one per probe seed; failed ones hold the error)."""
    first = rows[0]
    bad = [r for r in rows if r["status"] != "ok"]
    config = next((r for r in rows if r["status"] == "ok"), first)
    error = next((_text(r["error"]) for r in bad if _text(r["error"]).strip()), "")
    distill = _text(first["distill_backbone"])
    title = (f"{display_method(first['method'])}, {display_dataset(first['dataset'])}, evaluated with "
             f"{display_backbone(first['eval_backbone'])}"
             + (f", distilled with {display_backbone(distill)}" if distill else "")
             + f", ipc {int(first['ipc'])}, method seed {int(first['method_seed'])}")
    facts = [
        ("cell", _text(first["cell_id"])),
        ("suite / protocol", f"{first['suite']} / {first['protocol']}"),
        ("config hash", _text(first["config_hash"])),
        ("weights, evaluating", f"sha256 {_text(first['eval_weight_sha256'])} ({_text(first['eval_weight_id'])})"),
    ]
    if distill:
        facts.append(("weights, distilling",
                      f"sha256 {_text(first['distill_weight_sha256'])} ({_text(first['distill_weight_id'])})"))
    revision = _text(first["dataset_revision"])
    finished = [r["finished_at"] for r in rows if _text(r["finished_at"])]
    facts += [
        ("dataset fingerprint", f"train {_text(first['train_fingerprint'])}, test {_text(first['test_fingerprint'])}"
         + (f", revision {revision}" if revision else "")),
        ("making the set", f"{_seconds(first['distill_seconds'])} wall, {_gpu_seconds([first['distill_gpu_seconds']])}"
         f" GPU, peak memory {_bytes([first['distill_peak_mem_bytes']])}"),
        ("probing", f"{_seconds(first['probe_wall_seconds'])} wall (all seeds), "
         f"{_gpu_seconds([r['eval_gpu_seconds'] for r in rows])} GPU, peak memory "
         f"{_bytes([r['eval_peak_mem_bytes'] for r in rows])}"),
        ("device / commit", f"{_text(first['device'])} / {_text(first['git_sha'])}"),
        ("finished", str(max(finished)) if finished else "not recorded"),
        ("Parquet file", str(Path(root) / CELLS_DIR / str(first["suite"]) / f"{first['cell_id']}.parquet")),
    ]
    if _text(first["artifact"]):
        facts.append(("stored set", _text(first["artifact"])))
    seeds = [(str(r["probe_seed"]), "" if finite_float(r["top1"]) is None else f"{float(r['top1']):.2f}",
              str(r["status"])) for r in sorted(rows, key=lambda r: finite_float(r["probe_seed"]) or 0)]
    settings = [(label, text) for label, text in (("method settings", _json(config["method_config"])),
                                                  ("probe settings", _json(config["probe_config"])))
                if text]
    status = "ok" if not bad else f"failed ({len(bad)} of {len(rows)} rows)"
    return CellDetails(str(first["cell_id"]), title, status, error, facts, seeds, settings)


class CellIndex:
    """The cells of the report's rows by their aggregation keys (:data:`.aggregate.GROUP_KEYS`), each
    cell's details made once, when a table first asks for it."""

    def __init__(self, rows: pd.DataFrame, root: Path) -> None:
        self.root = Path(root)
        frame = rows[rows["cell_id"].notna()]
        keys = frame[GROUP_KEYS].astype("string").fillna("").itertuples(index=False, name=None)
        self._by_key: dict[tuple, list[str]] = {}
        self._rows: dict[str, list[dict]] = {}
        for key, rec in zip(keys, frame.to_dict("records"), strict=True):
            cell = str(rec["cell_id"])
            cells = self._by_key.setdefault(key, [])
            if cell not in cells:
                cells.append(cell)
            self._rows.setdefault(cell, []).append(rec)
        for cells in self._by_key.values():
            cells.sort()
        self._made: dict[str, CellDetails] = {}

    def details(self, cell_id: str) -> CellDetails:
        if cell_id not in self._made:
            self._made[cell_id] = cell_details(self._rows[cell_id], self.root)
        return self._made[cell_id]

    def find(self, suite, dataset, ipc, protocol, method, distill, evaluate) -> list[CellDetails]:
        key = tuple(str(v) for v in (suite, dataset, ipc, protocol, method, distill, evaluate))
        return [self.details(c) for c in self._by_key.get(key, [])]

    def failed(self) -> list[CellDetails]:
        """Every cell with a failed row, in the order of their ids."""
        failed = sorted(c for c, rows in self._rows.items() if any(r["status"] != "ok" for r in rows))
        return [self.details(c) for c in failed]
