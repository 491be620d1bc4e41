"""The results table: one Parquet file per finished cell, written atomically; together one tidy table.

A cell's file, ``<results>/cells/<suite>/<cell_id>.parquet``, holds one row per probe seed. Resuming
means: a cell whose file holds its ok rows is skipped. Reading concatenates the cell files of that
layout only (a backup copy elsewhere must not count twice), each checked first: a file that is not
Parquet, has other columns or types than :data:`SCHEMA`, holds another cell's rows, or whose rows no
longer match the checksum written with them is skipped and listed with the reason (:func:`scan_results`).

The checksum (:data:`ROWS_SHA256_KEY` in the Parquet schema metadata) is the sha256 of the rows' values
as canonical JSON, so an edited value (a changed ``top1``, a flipped bit that leaves the file valid
Parquet) makes the cell broken: ``run`` sets it aside as ``*.bad`` and runs it again, ``report`` exits 1.
Files written before the checksum existed have none; they are read as before (nothing to check them
against), and the next write of the cell adds one.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from .paths import atomic_write_bytes

# Column -> pyarrow type. Every row carries its provenance (code, weights, data, settings).
SCHEMA = pa.schema([
    # what was run
    ("suite", pa.string()),
    ("dataset", pa.string()),
    ("method", pa.string()),
    ("distill_backbone", pa.string()),  # "" when the method uses no backbone (random_real, full_data)
    ("eval_backbone", pa.string()),
    ("ipc", pa.int64()),  # 0: not per class (full data)
    ("method_seed", pa.int64()),
    ("probe_seed", pa.int64()),
    ("protocol", pa.string()),
    # what came out
    ("top1", pa.float64()),  # percent
    ("top5", pa.float64()),
    ("worst_group_top1", pa.float64()),  # NaN unless the test split has groups
    ("n_train", pa.int64()),
    # what it cost
    ("distill_seconds", pa.float64()),  # wall time of making the set (as recorded when it was made)
    ("distill_gpu_seconds", pa.float64()),  # CUDA-event time; NaN on CPU
    ("distill_peak_mem_bytes", pa.int64()),  # CUDA allocator peak, or process max RSS on CPU
    # probe time (docs/evaluation.md, "What is timed"): a cell's seeds share one prepare (features,
    # selection), then each seed fits its own head; the eval_* columns are this seed's share
    ("eval_seconds", pa.float64()),  # probe_prepare_seconds / seeds in the cell + probe_fit_seconds
    ("eval_gpu_seconds", pa.float64()),  # the same share of CUDA-event time; NaN on CPU
    ("eval_peak_mem_bytes", pa.int64()),  # the larger peak of the prepare and of this seed's fit
    ("probe_prepare_seconds", pa.float64()),  # wall time of the cell's prepare (the same on each row)
    ("probe_fit_seconds", pa.float64()),  # wall time of this seed's fit (head training and scoring)
    ("probe_wall_seconds", pa.float64()),  # wall time of the cell's whole probe: prepare and every fit
    ("device", pa.string()),
    # the machine, and whether the GPU waited on decoding (docs/first-gpu-day.md)
    ("gpu_name", pa.string()),  # "" on a CPU
    ("cuda_version", pa.string()),  # the CUDA torch was built with; "" on a CPU
    ("driver_version", pa.string()),  # the NVIDIA driver (nvidia-smi); "" on a CPU or when unknown
    ("decode_workers", pa.int64()),  # image decode worker processes of the run
    ("distill_data_wait_seconds", pa.float64()),  # seconds making the set waited for real images; NaN: none
    ("probe_data_wait_seconds", pa.float64()),  # seconds the probe waited for decoded images; NaN: none
    ("status", pa.string()),  # "ok" | "error"
    ("error", pa.string()),
    # provenance
    ("cell_id", pa.string()),
    ("config_hash", pa.string()),
    ("method_config", pa.string()),  # JSON
    ("probe_config", pa.string()),  # JSON
    ("probe_extra", pa.string()),  # JSON: chosen lr, validation accuracy, ...
    ("artifact", pa.string()),  # path of the synthetic set artifact directory
    ("distill_weight_id", pa.string()),
    ("distill_weight_sha256", pa.string()),
    ("eval_weight_id", pa.string()),
    ("eval_weight_sha256", pa.string()),
    ("eval_input_size", pa.int64()),
    # JSON of the backbones' identities (weights, input size, mean/std, interpolation, architecture with
    # options such as DINOv2's pos_embed): what decides their features; "" for no distilling backbone
    ("distill_backbone_identity", pa.string()),
    ("eval_backbone_identity", pa.string()),
    ("train_fingerprint", pa.string()),
    ("test_fingerprint", pa.string()),
    ("dataset_revision", pa.string()),  # the Hub revision the rows were read at ("": not pinned, or local)
    ("test_realigned_from", pa.string()),  # JSON: the test split's own class order when realigned by name
    # a rehearsal (run --limit / --set, benchmark.rehearsal): images per class ("2") or the fraction of each
    # class ("0.05") both splits were cut to, and the --set overrides as JSON; "" for a plain run
    ("limit", pa.string()),
    ("overrides", pa.string()),
    ("git_sha", pa.string()),
    ("versions", pa.string()),  # JSON: lgm-bench, python, torch, timm, open_clip, datasets
    ("started_at", pa.timestamp("us", tz="UTC")),
    ("finished_at", pa.timestamp("us", tz="UTC")),
])

COLUMNS = [f.name for f in SCHEMA]
STATUSES = ("ok", "error")
CELLS_DIR = "cells"

log = logging.getLogger(__name__)


def to_table(rows: list[dict]) -> pa.Table:
    """Rows -> a table of exactly SCHEMA; absent values become null (error rows lack most results)."""
    frame = pd.DataFrame(rows, columns=COLUMNS)
    for f in SCHEMA:
        if pa.types.is_timestamp(f.type):
            frame[f.name] = pd.to_datetime(frame[f.name], utc=True)
        elif pa.types.is_integer(f.type):
            frame[f.name] = frame[f.name].astype("Int64")
        elif pa.types.is_string(f.type):
            frame[f.name] = frame[f.name].astype(object).where(frame[f.name].notna(), None)
    return pa.Table.from_pandas(frame, schema=SCHEMA, preserve_index=False)


ROWS_SHA256_KEY = b"lgm_bench.rows_sha256"


def rows_sha256(table: pa.Table) -> str:
    """sha256 of a table's values, column by column in its order, as canonical JSON (floats exactly, NaN
    and nulls as such, timestamps in ISO form): the same for the table written and the table read back."""
    digest = hashlib.sha256()
    for name in table.column_names:
        values = table.column(name).to_pylist()
        digest.update(json.dumps([name, values], separators=(",", ":"), default=str).encode())
    return digest.hexdigest()


def write_cell(path: Path, rows: list[dict]) -> None:
    """Write a cell's rows to ``path`` atomically (temp file + rename), with their checksum."""
    table = to_table(rows)
    metadata = {**(table.schema.metadata or {}), ROWS_SHA256_KEY: rows_sha256(table).encode()}
    buf = io.BytesIO()
    pq.write_table(table.replace_schema_metadata(metadata), buf)
    atomic_write_bytes(path, buf.getvalue())


class InvalidCellFile(ValueError):
    """A cell file that cannot be trusted; the message says why."""


@dataclass(frozen=True)
class SkippedFile:
    """A file under ``cells/`` that was not read. ``broken``: it sits where a cell file belongs but is
    unreadable or invalid (``report`` exits 1 on those); otherwise it is outside the layout."""

    path: Path
    reason: str
    broken: bool = True

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


@dataclass
class ResultsScan:
    """The rows of every valid cell file, and the files skipped with their reasons."""

    frame: pd.DataFrame
    skipped: list[SkippedFile] = field(default_factory=list)

    @property
    def broken(self) -> list[SkippedFile]:
        return [s for s in self.skipped if s.broken]


def _type_name(t: pa.DataType) -> str:
    return {"large_string": "string"}.get(str(t), str(t))


# Columns added after the first release: files written before them are still read (the columns come
# back empty); such cells are stale by their config hash or, for the probe timing columns, still current
# (and, for limit and overrides, rows of a plain run).
LATER_COLUMNS = ("distill_backbone_identity", "eval_backbone_identity", "dataset_revision", "test_realigned_from",
                 "probe_prepare_seconds", "probe_fit_seconds", "probe_wall_seconds",
                 "gpu_name", "cuda_version", "driver_version", "decode_workers", "distill_data_wait_seconds",
                 "probe_data_wait_seconds", "limit", "overrides")


def _check_schema(schema: pa.Schema) -> None:
    names = set(schema.names)
    missing = [c for c in COLUMNS if c not in names and c not in LATER_COLUMNS]
    extra = [c for c in schema.names if c not in COLUMNS]
    if missing or extra:
        parts = ([f"missing columns {', '.join(missing)}"] if missing else []) + (
            [f"unexpected columns {', '.join(extra)}"] if extra else [])
        raise InvalidCellFile(f"not a cell file of this benchmark: {'; '.join(parts)}")
    # Exact types: a number stored as text would be cast silently by pandas, and is a sign of a file
    # written by something else.
    wrong = [f"{f.name} is {_type_name(f.type)}, expected {_type_name(SCHEMA.field(f.name).type)}"
             for f in schema if f.type != SCHEMA.field(f.name).type and not pa.types.is_null(f.type)]
    if wrong:
        raise InvalidCellFile("wrong column types: " + "; ".join(wrong))


def _check_rows(frame: pd.DataFrame, path: Path) -> None:
    if frame.empty:
        raise InvalidCellFile("holds no rows")
    ids = sorted(set(frame["cell_id"].fillna("")))
    if ids != [path.stem]:
        raise InvalidCellFile(f"its rows are cell {', '.join(map(repr, ids))}, not {path.stem!r} as the file "
                              "name says (a copy of another cell's file?); remove it")
    suites = sorted(set(frame["suite"].fillna("")))
    if suites != [path.parent.name]:
        raise InvalidCellFile(f"its rows are of suite {', '.join(map(repr, suites))}, not "
                              f"{path.parent.name!r} (a copy of another suite's cells?); move it out of "
                              f"{CELLS_DIR}/")
    bad_status = sorted(set(frame["status"].fillna("")) - set(STATUSES))
    if bad_status:
        raise InvalidCellFile(f"unknown status {', '.join(map(repr, bad_status))} (ok or error)")
    if frame["probe_seed"].duplicated().any():
        raise InvalidCellFile("a probe seed appears twice")
    if frame.loc[frame["status"] == "ok", "top1"].isna().any():
        raise InvalidCellFile("an ok row has no top1")


def _first_sentence(err: Exception) -> str:
    # Arrow repeats the path ("Could not open Parquet input source '<path>': ...") and adds advice.
    text = str(err).strip()
    if text.startswith("Could not open Parquet input source") and "': " in text:
        text = text.split("': ", 1)[1]
    return text.split(". ")[0].rstrip(".")


def read_rows(path: Path) -> pd.DataFrame:
    """The rows of a file written by :func:`write_cell`, with every :data:`SCHEMA` column, after
    checking its schema (names and exact types) and its rows' checksum (when it has one). Raises
    :class:`InvalidCellFile`."""
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException) as err:
        raise InvalidCellFile(f"unreadable (truncated or not Parquet): {_first_sentence(err)}") from None
    _check_schema(table.schema)
    stored = (table.schema.metadata or {}).get(ROWS_SHA256_KEY)
    if stored is not None and stored.decode(errors="replace") != rows_sha256(table):
        raise InvalidCellFile("its rows do not match the checksum written with them (edited or damaged since); "
                              "the cell runs again")
    frame = table.select([c for c in COLUMNS if c in table.schema.names]).to_pandas()
    for column in LATER_COLUMNS:
        if column not in frame:
            frame[column] = None
    return frame[COLUMNS]


def check_cell_file(path: Path) -> pd.DataFrame:
    """The rows of the cell file ``path``, after checking its schema (names and exact types), its rows'
    checksum (when it has one) and that every row is the cell (``cell_id``, ``suite``) the path names.
    Raises :class:`InvalidCellFile`."""
    path = Path(path)
    frame = read_rows(path)
    _check_rows(frame, path)
    return frame


def read_cell(path: Path) -> pd.DataFrame | None:
    """A cell's rows, or None if the file is missing, unreadable or invalid (then the cell runs again)."""
    try:
        return check_cell_file(path)
    except InvalidCellFile:
        return None


def set_aside(path: Path) -> Path:
    """Rename a cell file that failed its checks to ``<name>.bad`` (``<name>.1.bad``, ... when earlier
    ones exist), so it is kept for a look but never read again."""
    path = Path(path)
    target, n = path.with_name(f"{path.name}.bad"), 0
    while target.exists():
        n += 1
        target = path.with_name(f"{path.name}.{n}.bad")
    os.replace(path, target)
    return target


def cell_files(root: Path) -> tuple[list[Path], list[SkippedFile]]:
    """The cell files ``<root>/cells/<suite>/*.parquet``, and the other Parquet files under ``cells/``
    (nested copies), which are not read. Hidden names are writes in flight and are left alone."""
    cells = Path(root) / CELLS_DIR
    if not cells.is_dir():
        return [], []
    files, others = [], []
    for path in sorted(cells.rglob("*.parquet")):
        parts = path.relative_to(cells).parts
        if any(p.startswith(".") for p in parts):
            continue
        if len(parts) == 2:
            files.append(path)
        else:
            others.append(SkippedFile(path, f"not read: cell files are {CELLS_DIR}/<suite>/<cell_id>.parquet "
                                            "(a nested copy?)", broken=False))
    return files, others


def empty_frame() -> pd.DataFrame:
    return to_table([]).to_pandas()


def scan_results(root: Path) -> ResultsScan:
    """Every valid cell file's rows under ``root`` as one frame with the SCHEMA columns, and the files
    skipped, each with its reason."""
    files, skipped = cell_files(root)
    frames = []
    for path in files:
        try:
            frames.append(check_cell_file(path))
        except InvalidCellFile as err:
            skipped.append(SkippedFile(path, str(err)))
    frame = pd.concat(frames, ignore_index=True) if frames else empty_frame()
    return ResultsScan(frame, sorted(skipped, key=lambda s: str(s.path)))


def read_results(root: Path) -> pd.DataFrame:
    """The rows of every valid cell file under ``root`` (see :func:`scan_results`; skipped files are
    logged as warnings)."""
    scan = scan_results(root)
    for skipped in scan.skipped:
        log.warning("skipped %s", skipped)
    return scan.frame
