"""The results table: one Parquet file per finished cell, written atomically; together one tidy table.

A cell's file holds one row per probe seed. Resuming means: a cell whose file exists with status "ok"
is skipped. Reading concatenates every cell file under a results directory.
"""

from __future__ import annotations

import io
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
    ("eval_seconds", pa.float64()),  # wall time of this probe seed
    ("eval_gpu_seconds", pa.float64()),
    ("eval_peak_mem_bytes", pa.int64()),
    ("device", pa.string()),
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
    ("git_sha", pa.string()),
    ("versions", pa.string()),  # JSON: lgm-bench, python, torch, timm, open_clip, datasets
    ("started_at", pa.timestamp("us", tz="UTC")),
    ("finished_at", pa.timestamp("us", tz="UTC")),
])

COLUMNS = [f.name for f in SCHEMA]


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


def write_cell(path: Path, rows: list[dict]) -> None:
    """Write a cell's rows to ``path`` atomically (temp file + rename)."""
    buf = io.BytesIO()
    pq.write_table(to_table(rows), buf)
    atomic_write_bytes(path, buf.getvalue())


def read_cell(path: Path) -> pd.DataFrame | None:
    """A cell's rows, or None if the file is missing or unreadable (then the cell is run again)."""
    try:
        return pq.read_table(path).to_pandas()
    except (OSError, pa.ArrowInvalid):
        return None


def read_results(root: Path) -> pd.DataFrame:
    """Every row under ``root`` (recursively), as one frame with the SCHEMA columns."""
    root = Path(root)
    files = sorted(p for p in root.rglob("*.parquet")
                   if not p.name.startswith(".") and "alignment" not in p.relative_to(root).parts)
    frames = [f for f in (read_cell(p) for p in files) if f is not None]
    if not frames:
        return to_table([]).to_pandas()
    return pd.concat(frames, ignore_index=True)
