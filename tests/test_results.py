from __future__ import annotations

from datetime import datetime, timezone

import pyarrow.parquet as pq
import pytest

from benchmark.results import COLUMNS, SCHEMA, read_results, scan_results, write_cell
from tests.toys import write_rows

REQUIRED = {
    "suite", "dataset", "method", "distill_backbone", "eval_backbone", "ipc", "method_seed", "probe_seed",
    "protocol", "top1", "top5", "n_train", "distill_seconds", "distill_peak_mem_bytes", "eval_seconds",
    "eval_peak_mem_bytes", "device", "status", "error", "config_hash", "git_sha", "versions",
    "distill_weight_sha256", "eval_weight_sha256", "train_fingerprint", "test_fingerprint", "started_at",
    "finished_at",
}


def row(**kw):
    base = {"suite": "s", "dataset": "d", "method": "m", "distill_backbone": "", "eval_backbone": "b", "ipc": 1,
            "method_seed": 0, "probe_seed": 3407, "protocol": "fast", "top1": 50.0, "top5": 90.0, "status": "ok",
            "started_at": datetime(2026, 1, 1, tzinfo=timezone.utc)}
    return {**base, **kw}


def test_schema_has_the_design_columns() -> None:
    assert set(COLUMNS) >= REQUIRED


def test_write_then_read_round_trip(tmp_path) -> None:
    write_rows(tmp_path, "a", [row(), row(probe_seed=3408, top1=52.0)])
    write_rows(tmp_path, "b", [row(method="n")])
    frame = read_results(tmp_path)
    assert list(frame.columns) == COLUMNS
    assert sorted(frame.top1) == [50.0, 50.0, 52.0]
    assert pq.read_schema(tmp_path / "cells" / "s" / "a.parquet").field("ipc").type == SCHEMA.field("ipc").type
    assert not list(tmp_path.rglob(".*.tmp*"))  # nothing half-written left behind


def test_unreadable_cell_file_is_skipped_and_listed(tmp_path) -> None:
    write_rows(tmp_path, "a", [row()])
    (tmp_path / "cells" / "s" / "broken.parquet").write_bytes(b"PAR1 truncated")
    scan = scan_results(tmp_path)
    assert len(scan.frame) == 1 and len(read_results(tmp_path)) == 1
    assert [s.path.name for s in scan.skipped] == ["broken.parquet"] and scan.skipped[0].broken


def test_bad_types_are_rejected(tmp_path) -> None:
    with pytest.raises(Exception):  # noqa: B017 - pyarrow raises several types for a bad cast
        write_cell(tmp_path / "x.parquet", [row(ipc="one")])
    assert not (tmp_path / "x.parquet").exists()
