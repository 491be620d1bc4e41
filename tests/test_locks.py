"""Cross-process locks: naming, waiting, and that lock files are never taken for results or temps."""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import time
from pathlib import Path

from benchmark.features import FeatureCache
from benchmark.locks import held, is_lock_file, lock_path, try_hold
from benchmark.paths import make_temp, remove_stale_temps
from benchmark.results import cell_files, read_results, write_cell
from tests.toys import ToyBackbone, ToyDataset

HOLD = """
import sys, time
from pathlib import Path
from benchmark.locks import file_lock
lock = file_lock(Path(sys.argv[1]))
lock.acquire()
print("held", flush=True)
time.sleep(float(sys.argv[2]))
Path(sys.argv[3]).write_text("released by the other process")
lock.release()
"""


def hold_in_other_process(target: Path, seconds: float, note: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(target), str(seconds), str(note)],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_lock_file_is_hidden_beside_its_target(tmp_path: Path) -> None:
    target = tmp_path / "artifacts" / "ds" / "lgm" / "ipc1_seed0_abc"
    assert lock_path(target) == target.parent / ".ipc1_seed0_abc.lock"
    assert is_lock_file(lock_path(target)) and not is_lock_file(target)


def test_try_hold_refuses_a_lock_another_process_holds(tmp_path: Path) -> None:
    target = tmp_path / "cell.parquet"
    proc = hold_in_other_process(target, 30, tmp_path / "note")
    try:
        assert try_hold(target) is None
    finally:
        proc.kill()
        proc.wait()
    lock = try_hold(target)  # the kernel released the dead holder's lock
    assert lock is not None and lock.is_locked
    lock.release()


def test_held_waits_for_the_other_process(tmp_path: Path) -> None:
    target, note = tmp_path / "set_dir", tmp_path / "note"
    proc = hold_in_other_process(target, 0.5, note)
    with held(target, "a test set"):
        # only reachable after the other process wrote its note and let go
        assert note.read_text() == "released by the other process"
    proc.wait()


def test_lock_files_are_neither_results_nor_temps(tmp_path: Path) -> None:
    cell = tmp_path / "cells" / "toy_suite" / "c1.parquet"
    row = {"suite": "toy_suite", "cell_id": "c1", "probe_seed": 0, "status": "error", "error": "x"}
    with held(cell, "cell c1"):
        write_cell(cell, [row])
    assert lock_path(cell).exists()
    files, skipped = cell_files(tmp_path)
    assert files == [cell] and skipped == []
    assert len(read_results(tmp_path)) == 1
    assert remove_stale_temps(tmp_path) == [] and lock_path(cell).exists()


def test_temp_of_another_machine_is_removed_only_when_old(tmp_path: Path) -> None:
    mine = make_temp(tmp_path / "a.parquet")
    assert f".{os.getpid()}@" in mine.name
    fresh = tmp_path / ".b.parquet.4242@othernode.k3j9x.tmp.parquet"
    old = tmp_path / ".c.parquet.4242@othernode.q1w2e3.tmp.parquet"
    for path in (fresh, old):
        path.write_bytes(b"x")
    day_and_more = time.time() - 25 * 3600
    os.utime(old, (day_and_more, day_and_more))
    assert remove_stale_temps(tmp_path) == [old]  # our own live temp and the other machine's fresh one stay
    assert mine.exists() and fresh.exists()


def _build_entry(root: str, out) -> None:
    """One process asking the cache for a cold entry whose build is slow (1 s)."""
    import benchmark.features as features

    slow = features.embed_rows

    def embed_slowly(*args, **kwargs):
        time.sleep(1.0)
        return slow(*args, **kwargs)

    features.embed_rows = embed_slowly
    cache = FeatureCache(Path(root), progress=False, workers=0)
    got = cache(ToyBackbone("toy_a", seed=0).build(), ToyDataset().load("train"))
    out.put((cache.stats.built, cache.stats.disk_hits, got.numpy().tobytes()))


def test_two_processes_build_a_cold_feature_entry_once(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")  # fork after torch has run threads can hang the child
    out = ctx.Queue()
    procs = [ctx.Process(target=_build_entry, args=(str(tmp_path / "features"), out)) for _ in range(2)]
    for proc in procs:
        proc.start()
    results = [out.get(timeout=120) for _ in procs]
    for proc in procs:
        proc.join(timeout=60)
    assert sorted((built, hits) for built, hits, _ in results) == [(0, 1), (1, 0)]  # one built, one read it
    assert results[0][2] == results[1][2]
