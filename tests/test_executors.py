"""Running a suite as submitit jobs: grouping, ordering by ``requires``, the job callable, dry runs,
local jobs against the inline run, a killed job, two runs at once and a preempted job."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from benchmark.cli import main
from benchmark.launch.groups import in_dependency_order, set_groups, shards
from benchmark.registry import METHODS, SUITES
from benchmark.results import read_results
from benchmark.runner import Runner, cell_path
from benchmark.types import Method

ROOT = Path(__file__).resolve().parents[1]
SMOKE = SUITES.get("smoke")
KEY = ["cell_id", "probe_seed"]
VALUES = [*KEY, "method", "eval_backbone", "status", "n_train", "top1", "top5"]


def values(results: Path) -> pd.DataFrame:
    frame = read_results(results)
    return frame[VALUES].sort_values(KEY).reset_index(drop=True)


@pytest.fixture(scope="module")
def inline(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    """The smoke suite run inline: the reference every executor must match."""
    results = tmp_path_factory.mktemp("inline") / "results"
    summary = Runner(SMOKE, results, progress=False).run()
    assert summary.ok and summary.made_sets == 8
    return values(results)


def cli(*args: str, env: dict[str, str] | None = None, **popen) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "benchmark", *args], cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env or dict(os.environ), **popen)


def finished(proc: subprocess.Popen) -> str:
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out
    return out


def no_temps(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if ".tmp" in p.name]


# -- order and groups ------------------------------------------------------------------------------

def test_required_method_runs_first_and_order_is_otherwise_kept() -> None:
    listed = SMOKE.replace(methods=["neighbors", "centroids", "lgm", "kmeans"]).cells()
    assert [c.method for c in in_dependency_order(listed)] == ["centroids", "lgm", "neighbors", "kmeans"]
    already = SMOKE.cells()
    assert in_dependency_order(already) == already  # a valid order is left alone


def test_a_cycle_in_requires_is_an_error() -> None:
    class A(Method):
        name, requires = "t_cycle_a", ("t_cycle_b",)

    class B(Method):
        name, requires = "t_cycle_b", ("t_cycle_a",)

    METHODS._load()
    METHODS._entries.update({"t_cycle_a": A, "t_cycle_b": B})
    try:
        cells = SMOKE.replace(methods=["t_cycle_a", "t_cycle_b"]).cells()
        with pytest.raises(ValueError, match="t_cycle_a, t_cycle_b require each other"):
            in_dependency_order(cells)
    finally:
        for name in ("t_cycle_a", "t_cycle_b"):
            METHODS._entries.pop(name)


def test_groups_follow_the_sets_and_shards_keep_groups_whole() -> None:
    groups = set_groups(SMOKE.cells())
    assert [[c.method for c in g] for g in groups] == [
        ["lgm", "neighbors"], ["centroids"], ["kmeans"], ["herding"], ["random_real"], ["random_real"],
        ["full_data"]]
    default = SUITES.get("default")  # two backbones, every set probed by both
    sizes = sorted(len(g) for g in set_groups(default.cells()))
    # the full-data set is probed by both backbones, a job each (job_per_cell); the other sets' cells share one
    assert sizes == [1, 1] + [2] * 11 + [4, 4] and sum(sizes) == len(default.cells())
    two = shards(groups, 2)
    assert [len(s) for s in two] == [4, 4] and sorted(c.cell_id for s in two for c in s) == \
        sorted(c.cell_id for c in SMOKE.cells())
    assert [c.method for c in two[0]][:2] == ["lgm", "neighbors"]
    assert len(shards(groups, 20)) == len(groups)


def test_full_data_cells_are_one_job_each_at_paper_scale() -> None:
    cells = SUITES.get("imagenet1k").cells()
    full = [c for c in cells if c.method == "full_data"]
    groups = set_groups(cells)
    alone = [g for g in groups if g[0].method == "full_data"]
    assert len(full) >= 4 and [len(g) for g in alone] == [1] * len(full)
    assert sorted(g[0].cell_id for g in alone) == sorted(c.cell_id for c in full)
    assert all(len(g) > 1 for g in groups if g[0].method == "lgm")  # a set and its probes stay together


def test_neighbors_listed_before_lgm_runs_after_it(tmp_path: Path) -> None:
    suite = SMOKE.replace(methods=["neighbors", "lgm"])
    summary = Runner(suite, tmp_path / "results", progress=False).run()
    assert summary.ok and summary.ran == 2
    assert sorted(read_results(tmp_path / "results").method) == ["lgm", "lgm", "neighbors", "neighbors"]


def test_neighbors_without_lgm_says_what_is_missing(tmp_path: Path, capsys) -> None:
    summary = Runner(SMOKE.replace(methods=["neighbors"]), tmp_path / "results", progress=False).run()
    assert summary.ran == 1 and len(summary.failed) == 1
    assert "neighbors needs the lgm artifact" in summary.failed[0]
    assert "note: neighbors reads the sets of lgm, which this run does not make" in capsys.readouterr().err


# -- the job callable and the CLI without jobs running -----------------------------------------------

def test_cells_job_runs_its_cells_and_requeues_itself(tmp_path: Path) -> None:
    from submitit import DebugExecutor
    from submitit.helpers import DelayedSubmission

    from benchmark.launch.jobs import CellsJob

    mine = [c for c in SMOKE.cells() if c.method in ("centroids", "full_data")]
    job = CellsJob(SMOKE, tmp_path / "results", tuple(c.cell_id for c in mine))
    summary = DebugExecutor(tmp_path / "logs").submit(job).result()
    assert (summary["ran"], summary["made_sets"], summary["failed"]) == (2, 2, [])
    assert Runner(SMOKE, tmp_path / "inline", progress=False).run(mine).ran == 2
    assert values(tmp_path / "results").equals(values(tmp_path / "inline"))
    assert sorted(values(tmp_path / "results").method.unique()) == ["centroids", "full_data"]
    again = job.checkpoint()
    assert isinstance(again, DelayedSubmission) and again.function is job


def test_slurm_dry_run_lists_jobs_and_writes_nothing(tmp_path: Path, capsys) -> None:
    results = tmp_path / "results"
    code = main(["run", "--suite", "smoke", "--executor", "slurm", "--dry-run", "--results", str(results),
                 "--partition", "gpu", "--jobs", "3", "--slurm-arg", "account=abc", "--slurm-arg", "qos=high",
                 "--mem", "64", "--timeout-min", "120"])
    out = capsys.readouterr().out
    assert code == 0 and not results.exists()
    assert "8 cells, 0 already done, 8 to run in 7 slurm jobs" in out
    assert '"slurm_partition": "gpu"' in out and '"slurm_array_parallelism": 3' in out
    assert '"slurm_additional_parameters": {"account": "abc", "qos": "high"}' in out
    assert '"mem_gb": 64' in out and '"timeout_min": 120' in out and '"gpus_per_node": 1' in out
    assert '"cpus_per_task": 9' in out and '"slurm_signal_delay_s": 90' in out
    assert 'limits: {"max_requeues": 20}' in out
    job0 = out.split("job 0: ")[1].split("job 1: ")[0]
    assert job0.startswith("2 cells, 2 sets") and job0.index(" lgm ") < job0.index(" neighbors ")
    assert out.rstrip().endswith("nothing submitted (--dry-run)")


@pytest.fixture
def fake_srun(tmp_path: Path, monkeypatch) -> None:
    """An ``srun`` on the PATH (submitit's AutoExecutor looks for one to pick Slurm) that fails if run."""
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "srun").write_text("#!/bin/sh\nexit 1\n")
    (fake / "srun").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake}{os.pathsep}{os.environ['PATH']}")


def test_slurm_options_become_sbatch_options(tmp_path: Path, fake_srun) -> None:
    from benchmark.launch.executors import LaunchOptions, SlurmLauncher, signal_delay

    options = LaunchOptions("slurm", jobs=3, partition="gpu", cpus_per_job=8, mem_gb=64, timeout_min=120,
                            slurm_args={"account": "abc", "constraint": "h100"})
    executor = SlurmLauncher(options).executor(tmp_path / "logs")
    script = executor._executor._make_submission_file_text("python -m x", "uid")
    for flag in ("--partition=gpu", "--cpus-per-task=8", "--mem=64GB", "--time=120", "--gpus-per-node=1",
                 "--account=abc", "--constraint=h100", "--signal=USR2@90", f"--output={tmp_path}/logs/%j_0_log.out"):
        assert f"#SBATCH {flag}\n" in script, flag
    assert executor._executor.parameters["array_parallelism"] == 3
    # a one-minute limit is warned 5 s before its end, not 90: Slurm may send it up to 30 s early, and
    # a warning before the job has started its work would only requeue it
    short = SlurmLauncher(LaunchOptions("slurm", timeout_min=1)).executor(tmp_path / "logs")
    script = short._executor._make_submission_file_text("python -m x", "uid")
    assert "#SBATCH --signal=USR2@5\n" in script and "#SBATCH --cpus-per-task=9\n" in script
    assert [signal_delay(m) for m in (1, 2, 3, 4, 720)] == [5, 30, 60, 90, 90]


def test_a_slurm_task_takes_max_requeues_time_limits(tmp_path: Path, fake_srun, capsys) -> None:
    """submitit fails a task after its ``max_num_timeout`` time-limit requeues: its own default of 3 would
    end a cell that needs five 4-hour windows; --max-requeues sets it, and --help says the default."""
    from benchmark.launch.executors import SLURM_MAX_REQUEUES, LaunchOptions, SlurmLauncher

    default = SlurmLauncher(LaunchOptions("slurm")).executor(tmp_path / "logs")
    given = SlurmLauncher(LaunchOptions("slurm", max_requeues=2)).executor(tmp_path / "logs")
    assert (default._executor.max_num_timeout, given._executor.max_num_timeout) == (SLURM_MAX_REQUEUES, 2)
    assert SLURM_MAX_REQUEUES > 3
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    assert f"(default {SLURM_MAX_REQUEUES};" in " ".join(capsys.readouterr().out.split())


@pytest.mark.skipif(shutil.which("srun") is not None, reason="a Slurm cluster would take the job")
def test_slurm_without_slurm_is_a_usage_error(tmp_path: Path, capsys) -> None:
    results = tmp_path / "results"
    code = main(["run", "--suite", "smoke", "--methods", "centroids", "--executor", "slurm", "--results",
                 str(results)])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: could not submit to slurm: RuntimeError: Could not detect")
    assert not (results / "logs" / "submitit" / "jobs.json").exists()


@pytest.mark.parametrize(("args", "message"), [
    (["--executor", "slurm", "--slurm-arg", "account"], "--slurm-arg 'account' is not KEY=VALUE"),
    (["--executor", "slurm", "--jobs", "0"], "--jobs must be at least 1, got 0"),
    (["--executor", "local", "--partition", "gpu"], "--partition, --mem, --max-requeues and --slurm-arg are Slurm"),
    (["--executor", "local", "--max-requeues", "5"], "--max-requeues and --slurm-arg are Slurm options"),
    (["--executor", "slurm", "--max-requeues", "-1"], "--max-requeues must be 0 or more, got -1"),
    (["--max-requeues", "5"], "--max-requeues apply to jobs: add --executor local or --executor slurm"),
    (["--jobs", "2"], "--jobs apply to jobs: add --executor local or --executor slurm"),
])
def test_bad_job_options(tmp_path: Path, capsys, args: list[str], message: str) -> None:
    code = main(["run", "--suite", "smoke", "--dry-run", "--results", str(tmp_path / "r"), *args])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and message in err and len(err.strip().splitlines()) == 1


def test_missing_submitit_is_a_usage_error(tmp_path: Path, capsys, monkeypatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "submitit" else real(name, *a))
    code = main(["run", "--suite", "smoke", "--executor", "slurm", "--results", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.strip() == "error: --executor slurm needs submitit: pip install 'lgm-bench[slurm]'"
    assert not (tmp_path / "r" / "logs").exists()


# -- jobs that run ---------------------------------------------------------------------------------

def test_two_local_jobs_of_cheap_methods_match_inline(tmp_path: Path) -> None:
    """The default run's quick check of local jobs; the whole smoke suite is the slow test below."""
    results, methods = tmp_path / "results", ("centroids", "full_data")
    args = ("run", "--suite", "smoke", "--methods", *methods, "--results", str(results), "--no-progress")
    out = finished(cli(*args, "--executor", "local", "--jobs", "2"))
    assert "submitted 2 local jobs (2 cells)" in out and "2 cells run" in out and "2 sets made" in out
    cells = [c for c in SMOKE.cells() if c.method in methods]
    assert Runner(SMOKE, tmp_path / "inline", progress=False).run(cells).ran == 2
    assert values(results).equals(values(tmp_path / "inline"))
    assert "nothing to submit" in finished(cli(*args, "--executor", "local", "--jobs", "2"))


@pytest.mark.slow
def test_local_jobs_match_inline_and_a_rerun_submits_nothing(tmp_path: Path, inline: pd.DataFrame) -> None:
    results = tmp_path / "results"
    out = finished(cli("run", "--suite", "smoke", "--results", str(results), "--executor", "local",
                       "--jobs", "2", "--no-progress"))
    assert "submitted 2 local jobs (8 cells)" in out and "8 cells run" in out and "8 sets made" in out
    assert values(results).equals(inline)
    again = finished(cli("run", "--suite", "smoke", "--results", str(results), "--executor", "local",
                         "--jobs", "2"))
    assert "All 8 cells of suite 'smoke' are already in" in again and "nothing to submit" in again
    status = finished(cli("status", "--results", str(results)))
    assert "suite smoke: 8 cells: 8 done, 0 failed, 0 missing" in status
    assert "jobs (local, submitted" in status and status.count(" done       4 cells") == 2


def wait_for_cells(results: Path, proc: subprocess.Popen, at_least: int = 1) -> int:
    cells = results / "cells" / "smoke"
    while proc.poll() is None:
        n = len([p for p in cells.glob("*.parquet") if not p.name.startswith(".")]) if cells.is_dir() else 0
        if n >= at_least:
            return n
        time.sleep(0.02)
    raise AssertionError(f"the run ended before writing {at_least} cells:\n{proc.stdout.read()}")


@pytest.mark.slow
def test_killed_job_and_resubmission_give_the_same_results(tmp_path: Path, inline: pd.DataFrame) -> None:
    results = tmp_path / "results"
    args = ("run", "--suite", "smoke", "--results", str(results), "--executor", "local", "--jobs", "1")
    proc = cli(*args, start_new_session=True)  # its own process group: the CLI, the controller and the job
    written = wait_for_cells(results, proc)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert written < 8, "the job finished before it could be killed"
    out = finished(cli(*args))
    found = re.search(r"\b(\d+) cells run, (\d+) skipped", out)
    assert found, out
    ran, skipped = int(found[1]), int(found[2])
    # the cells written before the kill are not run again (one more may have landed after the count)
    assert ran + skipped == 8 and 1 <= ran <= 8 - written, out
    got = values(results)
    assert got.equals(inline)
    assert not got.duplicated(KEY).any() and no_temps(results) == []


@pytest.mark.slow
def test_two_runs_at_once_make_each_set_once(tmp_path: Path, inline: pd.DataFrame) -> None:
    env = {**os.environ, "LGM_BENCH_CACHE": str(tmp_path / "cache")}  # a cold cache, shared by both
    args = ("run", "--suite", "smoke", "--results", str(tmp_path / "results"), "--no-progress")
    outs = [finished(p) for p in [cli(*args, env=env), cli(*args, env=env)]]
    made = [int(re.search(r"(\d+) sets made", o).group(1)) for o in outs]
    ran = [int(re.search(r"(\d+) cells run", o).group(1)) for o in outs]
    assert sum(made) == 8 and sum(ran) == 8, outs
    assert values(tmp_path / "results").equals(inline)
    assert no_temps(tmp_path) == []


@pytest.mark.slow
def test_preempted_job_is_requeued_and_finishes(tmp_path: Path, inline: pd.DataFrame) -> None:
    from submitit import LocalExecutor

    from benchmark.launch.jobs import CellsJob

    results = tmp_path / "results"
    executor = LocalExecutor(tmp_path / "logs")
    executor.update_parameters(timeout_min=60)
    job = executor.submit(CellsJob(SMOKE, results, tuple(c.cell_id for c in SMOKE.cells())))
    written = wait_for_cells(results, job._process)
    controller = job._process.pid
    (task,) = Path(f"/proc/{controller}/task/{controller}/children").read_text().split()
    os.kill(int(task), signal.SIGUSR2)  # what Slurm sends the job before preempting it or at its time limit
    summary = job.result()
    logs = f"{job.stdout()}\n{job.stderr()}"
    assert written < 8 and summary["skipped"] >= written and summary["ran"] + summary["skipped"] == 8, logs
    assert "this job is preempted" in job.stderr() and "Requeued job" in job.stdout()
    assert "note:" not in job.stderr()  # lgm's cell was done before the requeue: no false warning
    assert values(results).equals(inline)
    for cell in SMOKE.cells():
        assert cell_path(results, cell).exists()


def test_a_finished_suite_without_its_alignment_says_how_to_measure_it(tmp_path: Path, capsys) -> None:
    from benchmark.launch.executors import LaunchOptions, launch
    from benchmark.mutual_knn import alignment_path

    suite = SUITES.get("default")  # two backbones, alignment on
    result = launch(suite, tmp_path, LaunchOptions("local", jobs=1), is_done=lambda results, cell: True)
    out = capsys.readouterr().out
    assert result.skipped == len(suite.cells())
    assert "nothing to submit" in out and "alignment of suite 'default' is missing" in out
    for dataset in suite.datasets:  # measured: no hint
        path = alignment_path(tmp_path, dataset)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")
    launch(suite, tmp_path, LaunchOptions("local", jobs=1), is_done=lambda results, cell: True)
    assert "alignment" not in capsys.readouterr().out


def test_local_jobs_get_the_machine_numbering_of_the_visible_gpus() -> None:
    from benchmark.launch.executors import LaunchError, physical_gpus

    assert physical_gpus(2, "") == [0, 1]
    assert physical_gpus(2, "4,5") == [4, 5]  # submitit would otherwise give the jobs GPUs 0 and 1
    assert physical_gpus(1, " 6 , 7") == [6]
    assert physical_gpus(0, "GPU-8e1d3f2a") == []  # no GPU: nothing to hand out
    with pytest.raises(LaunchError, match="UUID"):
        physical_gpus(1, "GPU-8e1d3f2a")


def test_jobs_size_their_threads_and_workers_from_the_cpus_they_got(tmp_path: Path, monkeypatch) -> None:
    import torch

    import benchmark.runner as runner_module
    from benchmark.launch.jobs import CellsJob

    seen = []

    class Recording(Runner):
        def __init__(self, *args, **kwargs):
            seen.append((kwargs.get("workers"), torch.get_num_threads()))
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(runner_module, "Runner", Recording)
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "3")  # what Slurm tells a task given --cpus-per-task 3
    before = torch.get_num_threads()
    suite = SUITES.get("smoke")
    CellsJob(suite, tmp_path, (), workers=0)()  # --workers 0: as asked
    CellsJob(suite, tmp_path, ())()  # 3 CPUs: 3 torch threads, 2 decode workers beside the main process
    CellsJob(suite, tmp_path, (), threads=1, workers=5)()
    assert seen == [(0, 3), (2, 3), (5, 1)]
    assert torch.get_num_threads() == before  # a job run in-process leaves the threads as they were


def test_local_jobs_split_the_cpus_and_slurm_tasks_ask_for_their_workers(monkeypatch) -> None:
    import benchmark.launch.executors as executors
    from benchmark.embedding import MAX_DEFAULT_WORKERS
    from benchmark.launch.executors import LaunchOptions, LocalLauncher, SlurmLauncher

    monkeypatch.setattr(executors, "affinity_cpus", lambda: 16)
    groups = set_groups(SMOKE.cells())  # 7 groups
    for jobs, threads, workers in ((8, 2, 1), (2, 8, 7), (1, 16, min(15, MAX_DEFAULT_WORKERS))):
        planned = LocalLauncher(LaunchOptions("local", jobs=jobs)).plan(groups)
        assert {(p.threads, p.workers) for p in planned} == {(threads, workers)}, jobs
    planned = LocalLauncher(LaunchOptions("local", jobs=2, cpus_per_job=3, workers=0)).plan(groups)
    assert {(p.threads, p.workers) for p in planned} == {(3, 0)}
    assert SlurmLauncher(LaunchOptions("slurm")).parameters()["cpus_per_task"] == 9  # 8 workers + the main one
    assert SlurmLauncher(LaunchOptions("slurm", workers=3)).parameters()["cpus_per_task"] == 4
    assert SlurmLauncher(LaunchOptions("slurm", workers=3, cpus_per_job=2)).parameters()["cpus_per_task"] == 2
    assert [p.workers for p in SlurmLauncher(LaunchOptions("slurm", workers=3)).plan(groups)] == [3] * 7
