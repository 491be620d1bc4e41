"""Killing a run part-way and running it again ends with exactly the rows of an uninterrupted run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from benchmark.results import read_results

KEYS = ["method", "distill_backbone", "eval_backbone", "ipc", "method_seed", "probe_seed"]
STABLE = [*KEYS, "top1", "top5", "n_train", "status", "config_hash"]


def run_smoke(results: Path, cache: Path) -> subprocess.Popen:
    env = {**os.environ, "LGM_BENCH_CACHE": str(cache), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    return subprocess.Popen([sys.executable, "-m", "benchmark", "run", "--suite", "smoke", "--results",
                             str(results), "--no-progress"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def table(results: Path):
    frame = read_results(results)
    return frame[STABLE].sort_values(KEYS).reset_index(drop=True)


def test_sigkill_then_rerun_equals_an_uninterrupted_run(tmp_path) -> None:
    cache = tmp_path / "cache"
    whole = run_smoke(tmp_path / "whole", cache)
    out, _ = whole.communicate(timeout=600)
    assert whole.returncode == 0, out

    killed = run_smoke(tmp_path / "killed", cache)
    cells = tmp_path / "killed" / "cells"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and killed.poll() is None:
        if len(list(cells.rglob("*.parquet"))) >= 2:
            break
        time.sleep(0.05)
    assert killed.poll() is None, "the run finished before it could be killed; the smoke suite is too small"
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    n_partial = len(list(cells.rglob("*.parquet")))
    assert n_partial >= 2

    again = run_smoke(tmp_path / "killed", cache)
    out, _ = again.communicate(timeout=600)
    assert again.returncode == 0, out
    assert "Resuming" in out
    resumed = table(tmp_path / "killed")
    assert not resumed.duplicated(KEYS).any()
    assert resumed.equals(table(tmp_path / "whole"))
