"""``python -m benchmark status``: cells done / failed / missing per suite, and the submitted jobs."""

from __future__ import annotations

import os
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


def test_sacct_and_squeue_lines_become_each_tasks_runs() -> None:
    from benchmark.launch.accounting import expand_ids, format_elapsed, parse_elapsed, parse_sacct, parse_squeue

    assert expand_ids("12_[3-5%1]") == ["12_3", "12_4", "12_5"]
    assert expand_ids("12_[1,4-5]") == ["12_1", "12_4", "12_5"] and expand_ids("12_4") == ["12_4"]
    assert (parse_elapsed("1-02:03:04"), parse_elapsed("05:06"), parse_elapsed("Unknown")) == (93784, 306, 0)
    assert format_elapsed(93784) == "26:03:04"
    runs = parse_sacct("12_0|COMPLETED|None|00:00:41|0:0\n12_1|REQUEUED|None|00:00:05|0:0\n"
                       "12_1|RUNNING|None|00:01:02|0:0\n12_[2-3%1]|PENDING|JobArrayTaskLimit|00:00:00|0:0\n"
                       "12_4|CANCELLED by 0|None|00:00:00|0:15\nnot|a line\n")
    assert {k: [r.state for r in v] for k, v in runs.items()} == {
        "12_0": ["COMPLETED"], "12_1": ["REQUEUED", "RUNNING"], "12_2": ["PENDING"], "12_3": ["PENDING"],
        "12_4": ["CANCELLED"]}
    assert runs["12_1"][1].elapsed_s == 62 and runs["12_2"][0].reason == "JobArrayTaskLimit"
    assert parse_squeue("12_1|RUNNING|None\n12_[2-3]|PENDING|BeginTime\n") == {
        "12_1": ("RUNNING", "None"), "12_2": ("PENDING", "BeginTime"), "12_3": ("PENDING", "BeginTime")}


def test_slurm_jobs_show_why_they_wait_their_restarts_and_the_error_of_their_log(tmp_path: Path, capsys,
                                                                                monkeypatch) -> None:
    import benchmark.launch.accounting as accounting

    results = tmp_path / "results"
    folder = logs_folder(results)
    folder.mkdir(parents=True)
    cells = SMOKE.cells()
    logs = {k: (folder / f"12_{k}_0_log.out", folder / f"12_{k}_0_log.err") for k in range(4)}
    for out, err in logs.values():
        out.write_text("job: 1 CPUs\n")
        err.write_text("")
    logs[1][1].write_text("WARNING benchmark.preemption: preempted by SIGTERM at step 12; checkpoint saved\n")
    logs[3][1].write_text("Traceback (most recent call last):\n  File x\nValueError: the dataset went away\n"
                          "srun: error: lgmnode: task 0: Exited with exit code 1\n")
    jobs = [JobRecord(f"12_{k}", [cells[k].cell_id], str(logs[k][0]), str(logs[k][1])) for k in range(4)]
    record_submission(results, Submission("smoke", "slurm", str(folder), jobs=jobs))
    runs = accounting.parse_sacct("12_0|PENDING|JobArrayTaskLimit|00:00:00|0:0\n12_1|REQUEUED|None|00:00:30|0:0\n"
                                  "12_1|RUNNING|None|00:00:50|0:0\n12_2|CANCELLED by 0|None|00:00:00|0:0\n"
                                  "12_3|NODE_FAIL|None|00:01:00|0:0\n")
    tasks = {t: accounting.Task(t, runs[t]) for t in runs}
    monkeypatch.setattr(accounting, "read_tasks", lambda ids: {i: tasks[i] for i in ids})
    assert main(["status", "--results", str(results)]) == 0
    out = capsys.readouterr().out
    assert "jobs (slurm, submitted " in out and "1 cancelled, 1 failed, 1 pending, 1 running" in out
    assert f"job 12_0         pending (JobArrayTaskLimit) 1 cells  log {logs[0][0]}" in out
    assert ("job 12_1         running    1 cells  elapsed 00:00:50  requeued 1x (REQUEUED), 00:01:20 over 2 runs"
            "  last stopped by SIGTERM at step 12 (checkpoint saved)") in out
    assert "job 12_2         cancelled  1 cells" in out and f"cell {cells[2].describe().rstrip()}" in out
    assert "job 12_3         failed (NODE_FAIL) 1 cells  elapsed 00:01:00" in out
    assert "error: ValueError: the dataset went away" in out and out.count("error: ") == 1  # not the cancelled one


def test_events_are_lines_a_torn_last_one_left_out(tmp_path: Path) -> None:
    from benchmark.launch.records import events_path, read_events, record_event

    record_event(tmp_path, "set_made", set="a/b", cell="c1")
    record_event(tmp_path, "cell_written", cell="c1", status="ok")
    with events_path(tmp_path).open("a") as out:
        out.write('{"event": "set_made", "set": "x')  # a process killed mid-line
    events = read_events(tmp_path)
    assert [e["event"] for e in events] == ["set_made", "cell_written"]
    assert [e["cell"] for e in read_events(tmp_path, "set_made")] == ["c1"] and events[0]["pid"] == os.getpid()
