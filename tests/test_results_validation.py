"""Result files are checked before they are trusted (issue 10, items 3 and 5/7, report side).

``read_results`` reads ``cells/<suite>/*.parquet`` only, checks each file's schema and that its rows
are the cell its name says, and lists what it skipped; ``report`` warns and exits 1 on a broken cell
file; ``run`` moves a broken cell file aside and runs the cell again."""

from __future__ import annotations

import os
import shutil
from datetime import datetime, timezone

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from benchmark.cli import main
from benchmark.features import FeatureCache
from benchmark.registry import BACKBONES, DATASETS
from benchmark.results import COLUMNS, SkippedFile, read_cell, read_results, scan_results, to_table, write_cell
from benchmark.runner import Runner, cell_path, is_done
from benchmark.suites import Suite
from tests.toys import ToyBackbone, ToyDataset

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def row(cell_id: str, suite: str = "s", **kw) -> dict:
    base = {"suite": suite, "dataset": "d", "method": "m", "distill_backbone": "", "eval_backbone": "b",
            "ipc": 1, "method_seed": 0, "probe_seed": 3407, "protocol": "fast", "top1": 50.0, "top5": 90.0,
            "status": "ok", "error": "", "artifact": "", "cell_id": cell_id, "config_hash": "c" * 16,
            "started_at": T0, "finished_at": T0}
    return {**base, **kw}


def write(root, cell_id: str, suite: str = "s", n: int = 2, **kw):
    path = root / "cells" / suite / f"{cell_id}.parquet"
    fields = {"method": cell_id, **kw}
    write_cell(path, [row(cell_id, suite, probe_seed=3407 + i, **fields) for i in range(n)])
    return path


def results_with_two_cells(tmp_path):
    root = tmp_path / "results"
    write(root, "a")
    write(root, "b", top1=70.0)
    return root


def reasons(skipped: list[SkippedFile]) -> dict[str, str]:
    return {s.path.name: s.reason for s in skipped}


# -- what read_results reads --------------------------------------------------------------------------

def test_backup_copies_outside_the_layout_are_not_read(tmp_path) -> None:
    root = results_with_two_cells(tmp_path)
    shutil.copytree(root / "cells", root / "backup" / "cells")
    shutil.copytree(root / "cells" / "s", root / "cells" / "s" / "old")
    shutil.copy(root / "cells" / "s" / "a.parquet", root / "a.parquet")
    scan = scan_results(root)
    assert len(scan.frame) == 4 and sorted(scan.frame.cell_id.unique()) == ["a", "b"]
    nested = [s for s in scan.skipped if "old" in s.path.parts]
    assert len(nested) == 2 and not any(s.broken for s in nested)  # reported, but not "broken"
    assert len(read_results(root)) == 4


def test_truncated_cell_file_is_reported(tmp_path) -> None:
    root = results_with_two_cells(tmp_path)
    path = root / "cells" / "s" / "a.parquet"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    scan = scan_results(root)
    assert set(scan.frame.cell_id) == {"b"}
    (skipped,) = scan.skipped
    assert skipped.broken and skipped.path == path and "unreadable" in skipped.reason


def test_wrong_columns_are_invalid(tmp_path) -> None:
    root = results_with_two_cells(tmp_path)
    pq.write_table(pa.table({"cell_id": ["a"], "top1": [1.0]}), root / "cells" / "s" / "a.parquet")
    why = reasons(scan_results(root).skipped)["a.parquet"]
    assert "missing columns" in why and "suite" in why


def test_numbers_stored_as_strings_are_invalid(tmp_path) -> None:
    root = results_with_two_cells(tmp_path)
    table = to_table([row("a")])
    table = table.set_column(COLUMNS.index("top1"), "top1", pa.array(["50.0"]))
    pq.write_table(table, root / "cells" / "s" / "a.parquet")
    why = reasons(scan_results(root).skipped)["a.parquet"]
    assert "top1" in why and "string" in why and "double" in why


def test_another_cells_file_under_this_name_is_invalid(tmp_path) -> None:
    root = results_with_two_cells(tmp_path)
    shutil.copy(root / "cells" / "s" / "b.parquet", root / "cells" / "s" / "a.parquet")
    scan = scan_results(root)
    assert list(scan.frame.cell_id.unique()) == ["b"] and len(scan.frame) == 2
    assert "'b'" in reasons(scan.skipped)["a.parquet"]


def test_a_cell_file_under_another_suite_is_invalid(tmp_path) -> None:
    root = results_with_two_cells(tmp_path)
    shutil.copytree(root / "cells" / "s", root / "cells" / "s_backup")
    scan = scan_results(root)
    assert len(scan.frame) == 4
    assert len(scan.skipped) == 2 and all("suite 's'" in s.reason for s in scan.skipped)


# -- report: warnings, exit 1, --allow-broken, --out checks, files outside the results ---------------

def report(tmp_path, root, *extra: str, out: str = "out") -> int:
    """``--all``: the hand-made rows belong to no registered suite, so they are all stale."""
    return main(["report", "--results", str(root), "--out", str(tmp_path / out), "--all", *extra])


def test_report_warns_and_exits_1_on_a_broken_cell_file(tmp_path, capsys) -> None:
    root = results_with_two_cells(tmp_path)
    path = root / "cells" / "s" / "a.parquet"
    path.write_bytes(b"PAR1 truncated")
    assert report(tmp_path, root) == 1
    err = capsys.readouterr().err
    assert str(path) in err and "unreadable" in err and "--allow-broken" in err
    assert not (tmp_path / "out").exists()  # nothing written, not even the output directory

    assert report(tmp_path, root, "--allow-broken") == 0
    assert str(path) in capsys.readouterr().err
    assert (tmp_path / "out" / "summary.md").exists()


def test_report_out_naming_a_file_is_a_usage_error(tmp_path, capsys) -> None:
    root = results_with_two_cells(tmp_path)
    (tmp_path / "out").write_text("keep me")
    assert report(tmp_path, root) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--out" in err and "is a file" in err
    assert (tmp_path / "out").read_text() == "keep me"


def test_report_out_in_a_read_only_directory_is_a_usage_error(tmp_path, capsys, monkeypatch) -> None:
    root = results_with_two_cells(tmp_path)
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    root_user = os.geteuid() == 0
    if root_user:  # root writes anywhere: answer as the file system would for anyone else
        import tempfile

        real = tempfile.mkstemp

        def mkstemp(*args, dir=None, **kwargs):
            if str(dir).startswith(str(locked)):
                raise PermissionError(13, "Permission denied")
            return real(*args, dir=dir, **kwargs)

        monkeypatch.setattr("benchmark.checks.tempfile.mkstemp", mkstemp)
    for out in ("locked", "locked/new/deeper"):
        assert report(tmp_path, root, out=out) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "not writable" in err and str(locked) in err
    assert root_user or list(locked.iterdir()) == []


def test_report_copies_only_grids_inside_the_results(tmp_path, capsys) -> None:
    root = tmp_path / "results"
    inside, outside = root / "artifacts" / "in", tmp_path / "elsewhere"
    for d in (inside, outside):
        d.mkdir(parents=True)
        (d / "grid.png").write_bytes(b"\x89PNG\r\n\x1a\n" + d.name.encode())
    linked = root / "artifacts" / "link"
    linked.symlink_to(outside, target_is_directory=True)
    for name, art in (("in", inside), ("out", outside), ("link", linked)):
        write(root, name, artifact=str(art), distill_backbone="bb", method="lgm", method_seed=len(name))
    assert report(tmp_path, root) == 0
    (grid,) = (tmp_path / "out").glob("*_grid.png")
    assert grid.read_bytes().endswith(b"in") and "seed2" in grid.name
    err = capsys.readouterr().err
    assert str(outside) in err and str(linked) in err and "outside" in err


# -- run: a broken cell file is moved aside and the cell runs again -------------------------------------

@pytest.fixture
def toy_runner(tmp_path):
    entries = [(DATASETS, "toy", ToyDataset()), (BACKBONES, "toy_a", ToyBackbone("toy_a", seed=0))]
    for registry, name, obj in entries:
        registry._load()
        registry._entries[name] = obj
    suite = Suite(name="t_valid", description="", datasets=["toy"], methods=["random_real"], backbones=["toy_a"],
                  seeds=1, protocol="fast", protocol_options={"fast": {"val_per_class": 2}})

    def run():
        return Runner(suite, tmp_path / "results", progress=False,
                      features=FeatureCache(tmp_path / "features", progress=False)).run()

    yield suite.cells()[0], run
    for registry, name, _ in entries:
        registry._entries.pop(name)


@pytest.mark.parametrize("damage", ["wrong columns", "another cell", "truncated"])
def test_run_moves_a_broken_cell_file_aside_and_runs_it_again(tmp_path, toy_runner, capsys, damage) -> None:
    cell, run = toy_runner
    results = tmp_path / "results"
    run()
    path = cell_path(results, cell)
    good = path.read_bytes()
    for _ in range(2):  # twice: the second .bad keeps the first
        if damage == "wrong columns":
            pq.write_table(pa.table({"x": [1]}), path)
        elif damage == "another cell":
            write_cell(path, [{**r, "cell_id": "someone_else"} for r in read_cell(path).to_dict("records")])
        else:
            path.write_bytes(good[:100])
        assert not is_done(results, cell)
        summary = run()
        assert summary.ran == 1 and is_done(results, cell)
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and str(path) in err and "runs again" in err
    bad = sorted(p.name for p in path.parent.glob("*.bad"))
    assert bad == [f"{path.name}.1.bad", f"{path.name}.bad"]
    assert len(read_results(results)) == 1


def test_files_from_before_the_later_provenance_columns_are_still_read(tmp_path) -> None:
    from benchmark.results import LATER_COLUMNS, InvalidCellFile, check_cell_file

    root = results_with_two_cells(tmp_path)
    path = root / "cells" / "s" / "a.parquet"
    table = pq.read_table(path).replace_schema_metadata({})  # written before the rows' checksum, too
    pq.write_table(table.drop_columns(list(LATER_COLUMNS)), path)
    frame = check_cell_file(path)
    assert list(frame.columns) == COLUMNS and frame["dataset_revision"].isna().all()
    pq.write_table(table.drop_columns(["top1"]), path)
    with pytest.raises(InvalidCellFile, match="missing columns top1"):
        check_cell_file(path)
