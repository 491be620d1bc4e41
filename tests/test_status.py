"""``python -m benchmark status``: cells done / failed / missing per suite, and the submitted jobs."""

from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path

from submitit.core.utils import JobPaths

from benchmark.cli import main
from benchmark.launch.records import JobRecord, Submission, logs_folder, read_submissions, record_submission
from benchmark.registry import SUITES
from benchmark.results import write_cell
from benchmark.runner import Runner, cell_path
from benchmark.status import cell_counts, job_state

SMOKE = SUITES.get("smoke")


def dead_pid() -> int:
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          check=True)
    return int(proc.stdout)


def error_rows(cell) -> list[dict]:
    return [{"suite": cell.suite, "cell_id": cell.cell_id, "config_hash": cell.config_hash, "method": cell.method,
             "probe_seed": s, "status": "error", "error": "RuntimeError: broken"} for s in cell.probe_seeds]


def test_counts_and_jobs(tmp_path: Path, capsys) -> None:
    results = tmp_path / "results"
    cells = SMOKE.cells()
    done = [c for c in cells if c.method == "centroids"]
    assert Runner(SMOKE, results, progress=False).run(done).ran == 1
    failed = next(c for c in cells if c.method == "kmeans")
    write_cell(cell_path(results, failed), error_rows(failed))
    counts = cell_counts(SMOKE, results)
    assert (counts.done, counts.failed, len(counts.missing)) == (done, [failed], len(cells) - 2)

    folder = logs_folder(results)
    folder.mkdir(parents=True)
    for job_id, outcome in (("11", ("success", {"ran": 1})), ("12", ("error", "Traceback ..."))):
        JobPaths(folder, job_id, task_id=0).result_pickle.write_bytes(pickle.dumps(outcome))
    gone = str(dead_pid())
    jobs = [JobRecord(i, [cells[0].cell_id], f"{folder}/{i}_0_log.out", f"{folder}/{i}_0_log.err")
            for i in ("11", "12", gone)]
    record_submission(results, Submission("smoke", "local", str(folder), jobs=jobs[:1]))
    record_submission(results, Submission("smoke", "local", str(folder), jobs=jobs))
    assert [len(s.jobs) for s in read_submissions(results)] == [1, 3]

    assert main(["status", "--results", str(results)]) == 0
    out = capsys.readouterr().out
    assert f"suite smoke: {len(cells)} cells: 1 done, 1 failed, {len(cells) - 2} missing" in out
    assert f"failed   {failed.describe().rstrip()}" in out
    assert "jobs (local, submitted " in out and "1 done, 2 failed; 1 earlier submissions" in out
    assert f"job {gone:<12} failed (ended without a result: killed?)" in out
    assert f"errors: {folder}/12_0_log.err" in out


def test_job_state_without_sacct_is_unknown(tmp_path: Path) -> None:
    assert job_state("slurm", tmp_path, "123_4") == "unknown"  # no sacct on this machine
    assert job_state("nosuch", tmp_path, "1") == "unknown"


def test_empty_results_and_bad_suite(tmp_path: Path, capsys) -> None:
    assert main(["status", "--results", str(tmp_path)]) == 0
    assert "no cells or jobs under" in capsys.readouterr().out
    assert main(["status", "--results", str(tmp_path), "--suite", "smok"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "smoke" in err


def test_a_suite_file_run_shows_up_with_and_without_suite(tmp_path: Path, capsys) -> None:
    """A suite read from a TOML file is recorded by `run`; `status` finds it by the file or by default."""
    repo = Path(__file__).resolve().parents[1]
    suite_file = repo / "suites" / "offline_example.toml"
    results = tmp_path / "results"
    assert main(["run", "--suite", str(suite_file), "--results", str(results), "--methods", "centroids",
                 "--no-progress", "--workers", "0"]) == 0
    capsys.readouterr()
    assert main(["status", "--results", str(results), "--suite", str(suite_file)]) == 0
    by_file = capsys.readouterr().out
    assert by_file.startswith("suite offline_example: 4 cells: 1 done, 0 failed, 3 missing")
    assert main(["status", "--results", str(results)]) == 0
    assert capsys.readouterr().out.startswith("suite offline_example: 4 cells: 1 done, 0 failed, 3 missing")
    assert main(["status", "--results", str(results), "--suite", "offline_example"]) == 0  # by its name
    assert capsys.readouterr().out.startswith("suite offline_example: 4 cells: 1 done, 0 failed, 3 missing")
    assert main(["status", "--results", str(results), "--suite", str(tmp_path / "nope.toml")]) == 2
    assert "nope.toml" in capsys.readouterr().err
