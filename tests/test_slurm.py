"""``run --executor slurm`` against a real one-node Slurm with accounting (scripts/slurm_local.sh): the
smoke suite, ``--jobs``, a preemption, a time limit, ``scancel``, a failing cell, two submissions at
once and a node going down. ``tox -e slurm`` (``pytest -m slurm``); skipped where Slurm's daemons are
not installed (apt-get install -y slurm-wlm munge slurmdbd mariadb-server)."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
import torch

from benchmark.cli import main
from benchmark.launch.records import read_events, read_submissions
from benchmark.registry import SUITES
from benchmark.results import read_results
from benchmark.runner import Runner

pytestmark = pytest.mark.slurm

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "slurm_local.sh"
NEEDED = ("mariadbd", "mariadb-install-db", "munged", "slurmdbd", "slurmctld", "slurmd", "sbatch", "sacct")
NODE = "lgmnode"
SMOKE = SUITES.get("smoke")
KEY = ["cell_id", "probe_seed"]
VALUES = [*KEY, "method", "eval_backbone", "status", "n_train", "top1", "top5"]
# one CPU a task (the node has two): one torch thread, no decode worker, as the references below
JOB = ("--executor", "slurm", "--gpus-per-job", "0", "--cpus-per-job", "1", "--mem", "1", "--no-progress")
# A one-minute limit's USR2 (asked 5 s before the end) comes 25 to 55 s after a task starts (Slurm's 30 s
# timer); a requeued task's usually about 28 s in. The long LGM cell must still be running at the latest
# first USR2 though its length is an estimate: about 80 s of the task's time (25 s past the latest first
# USR2; on CI a task once ran a cell sized at 66 s in 53 s, and it ended unsignalled), less what it spends
# starting (imports, data, backbone), which is measured. At the earliest it ends in its fourth run, inside
# --max-requeues' default.
TASK_SECONDS = 80
STARTUP = """
import time
started = time.perf_counter()
import submitit
from benchmark.registry import BACKBONES, DATASETS
from benchmark.runner import Runner
DATASETS.get("smoke_tiny").load("train"), DATASETS.get("smoke_tiny").load("test")
BACKBONES.get("tiny_vit").build(device="cpu")
print(time.perf_counter() - started)
"""


def missing() -> list[str]:
    return [name for name in NEEDED if shutil.which(name) is None and not Path("/usr/sbin", name).exists()]


@dataclass
class Cluster:
    directory: Path
    report: Callable[[str], None]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, figures: Callable[[str], None]):
    """A one-node cluster for this module; SLURM_CONF points every Slurm command (and job) at it."""
    lacking = missing()
    if lacking:
        pytest.skip(f"no Slurm here ({', '.join(lacking)} not found): apt-get install -y slurm-wlm munge "
                    "slurmdbd mariadb-server")
    directory = tmp_path_factory.mktemp("slurm")
    started = time.monotonic()
    up = subprocess.run([str(SCRIPT), "up", str(directory)], capture_output=True, text=True, timeout=300)
    assert up.returncode == 0, f"the one-node cluster did not start:\n{up.stdout}{up.stderr}"
    figures(f"one-node Slurm up in {time.monotonic() - started:.1f} s under {directory}")
    before = os.environ.get("SLURM_CONF")
    os.environ["SLURM_CONF"] = str(directory / "etc" / "slurm.conf")
    try:
        yield Cluster(directory, figures)
    finally:
        down = subprocess.run([str(SCRIPT), "down", str(directory)], capture_output=True, text=True, timeout=300)
        if before is None:
            os.environ.pop("SLURM_CONF", None)
        else:
            os.environ["SLURM_CONF"] = before
        assert down.returncode == 0, down.stdout + down.stderr


# -- helpers --------------------------------------------------------------------------------------------

def cli(*args: str) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "benchmark", *args], cwd=ROOT, text=True, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def finished(proc: subprocess.Popen, code: int = 0) -> str:
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == code, out
    return out


def run(*args: str, code: int = 0) -> str:
    return finished(cli("run", *args), code)


def status(results: Path, capsys, *args: str) -> str:
    capsys.readouterr()
    assert main(["status", "--results", str(results), *args]) == 0
    return capsys.readouterr().out


def slurm(*args: str, check: bool = True) -> str:
    proc = subprocess.run(list(args), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 or not check, f"{' '.join(args)}: {proc.stderr}"
    return proc.stdout


def sacct(job: str) -> dict[str, list[str]]:
    """Each task of ``job``'s states, one per run (``--duplicates``: a requeued task has several)."""
    runs: dict[str, list[str]] = {}
    for line in slurm("sacct", "-X", "--duplicates", "-P", "-n", "-o", "JobID,State", "-j", job).splitlines():
        task, state = line.split("|")
        runs.setdefault(task, []).append(state.split()[0])
    return runs


def queued(job: str) -> list[tuple[str, str, str]]:
    """(task, state, reason) of ``job``'s tasks still in the queue."""
    out = slurm("squeue", "-h", "-r", "-j", job, "-o", "%i|%T|%r", check=False)
    return [tuple(line.split("|")) for line in out.splitlines() if line.count("|") == 2]


def wait_until(condition: Callable[[], object], what: str, timeout: float = 300, every: float = 0.2) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def wait_done(job: str, timeout: float = 400) -> None:
    wait_until(lambda: not queued(job), f"job {job} to leave the queue", timeout, every=0.5)
    # the accounting follows the queue by a moment
    wait_until(lambda: all(s[-1] not in ("PENDING", "RUNNING", "REQUEUED") for s in sacct(job).values()),
               f"sacct to record job {job}'s end", 60, every=0.5)


def submission_jobs(results: Path) -> list:
    return read_submissions(results)[-1].jobs


def base_id(results: Path) -> str:
    return submission_jobs(results)[0].job_id.split("_")[0]


def values(results: Path, cells: list | None = None) -> pd.DataFrame:
    frame = read_results(results)
    if cells is not None:
        frame = frame[frame.cell_id.isin({c.cell_id for c in cells})]
    return frame[VALUES].sort_values(KEY).reset_index(drop=True)


def inline_run(suite, results: Path, cells=None) -> None:
    """The reference: the same cells in this process, one torch thread and no decode worker like a task."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        summary = Runner(suite, results, progress=False, workers=0).run(cells)
    finally:
        torch.set_num_threads(threads)
    assert summary.ok, summary.failed


def lgm_set(results: Path) -> Path:
    (found,) = (results / "artifacts").rglob("lgm/*/*/set.safetensors")
    return found


def seconds_per_step(results: Path) -> float:
    return json.loads(lgm_set(results).with_name("meta.json").read_text())["metadata"]["seconds_per_step"]


def log_text(results: Path) -> str:
    return "\n".join(p.read_text() for p in sorted((results / "logs" / "submitit").glob("*_log.*")))


@pytest.fixture(scope="module")
def inline(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    results = tmp_path_factory.mktemp("inline") / "results"
    inline_run(SMOKE, results)
    return values(results)


LONG_SUITE = """
name = "{name}"
description = "the smoke suite's LGM with {steps} steps: long enough to preempt"
datasets = ["smoke_tiny"]
methods = ["lgm"]
backbones = ["tiny_vit"]
ipc = [1]
seeds = 1
protocol = "fast"

[method_options.lgm]
preset = "smoke"
steps = {steps}
checkpoint_every = 1000000  # no periodic checkpoint: only the signal's explains a resume
"""


@dataclass
class LongCell:
    """The long LGM cell: its suite file and steps, and its set made uninterrupted by a ``run`` beside the
    tests (on the node's other CPU while the first of them runs), read when a test compares with it."""

    suite: str
    steps: int
    reference: subprocess.Popen
    results: Path

    def made(self) -> Path:
        if self.reference.returncode is None:
            finished(self.reference)
        return self.results

    def set_bytes(self) -> bytes:
        return lgm_set(self.made()).read_bytes()

    def seconds(self) -> float:
        """How long the reference's LGM ran (beside a task on the node's other CPU)."""
        return seconds_per_step(self.made()) * self.steps


@pytest.fixture(scope="module")
def long_lgm(tmp_path_factory: pytest.TempPathFactory, figures: Callable[[str], None]):
    """A suite file whose one LGM cell fills about TASK_SECONDS of a task on this machine, its steps from a
    calibration run; and its uninterrupted set, the reference of the preemption tests."""
    from benchmark.suite_files import load_suite_file

    root = tmp_path_factory.mktemp("long")
    calibration = root / "calibration.toml"
    # 300 steps misjudged the long run's rate by up to a third; 1000 (7 s) average the rate over more
    calibration.write_text(LONG_SUITE.format(name="slurm_calibration", steps=1000))
    inline_run(load_suite_file(calibration), root / "calibration")  # also fills the caches a task reads
    per_step = seconds_per_step(root / "calibration")
    startup = float(subprocess.run([sys.executable, "-c", STARTUP], capture_output=True, text=True, check=True,
                                   env={**os.environ, "OMP_NUM_THREADS": "1"}).stdout.split()[-1]) + 1.0  # srun
    lgm_seconds = min(85.0, max(30.0, TASK_SECONDS - startup))
    # too short tests nothing (the cell ends before its USR2), too long only takes a run more: aim long
    steps = max(40, math.ceil(1.1 * lgm_seconds / per_step))
    suite_file = root / "long.toml"
    suite_file.write_text(LONG_SUITE.format(name="slurm_lgm", steps=steps))
    reference = root / "reference"
    cell = LongCell(str(suite_file), steps, cli("run", "--suite", str(suite_file), "--results", str(reference),
                                                "--workers", "0", "--no-progress"), reference)
    figures(f"long LGM cell: {steps} steps ({per_step * 1000:.2f} ms a step when calibrated, a task starting in "
            f"{startup:.1f} s: about {startup + 1.1 * lgm_seconds:.0f} s of a task); its reference runs beside")
    try:
        yield cell
    finally:
        if cell.reference.poll() is None:
            cell.reference.kill()
            cell.reference.communicate()


@dataclass
class Outcome:
    """How the long LGM cell's task went: Slurm's runs of it, the steps its log says it stopped at and
    resumed from, and whether its set is the uninterrupted one, byte for byte."""

    job: str
    runs: list[str]
    log: str
    stopped: list[int]
    resumed: list[int]
    same: bool


def outcome(results: Path, reference: bytes) -> Outcome:
    job = base_id(results)
    wait_done(job)
    text = log_text(results)
    stopped = [int(m) for m in re.findall(r"preempted by SIG\w+ at step (\d+); checkpoint saved", text)]
    resumed = [int(m) for m in re.findall(r"resumed \w+ from \S+ at step (\d+)", text)]
    same = lgm_set(results).read_bytes() == reference
    return Outcome(job, sacct(job)[job], text, sorted(set(stopped)), resumed, same)


# -- the tests ------------------------------------------------------------------------------------------

def test_smoke_suite_through_slurm_equals_the_inline_run(cluster, inline, tmp_path, capsys) -> None:
    results = tmp_path / "results"
    out = run("--suite", "smoke", "--results", str(results), *JOB, "--partition", "debug", "--wait")
    assert "submitted 7 slurm jobs (8 cells)" in out and "8 cells run" in out and "8 sets made" in out, out
    got = values(results)
    assert list(got.columns) == VALUES and len(got) == sum(len(c.probe_seeds) for c in SMOKE.cells()) == 14
    assert got.equals(inline), pd.concat([got, inline], axis=1)
    job = base_id(results)
    wait_done(job)
    states = sacct(job)
    assert sorted(states) == [f"{job}_{k}" for k in range(7)] and all(s == ["COMPLETED"] for s in states.values())
    text = status(results, capsys)
    assert "suite smoke: 8 cells: 8 done, 0 failed, 0 missing" in text and "jobs (slurm, submitted" in text
    done = re.findall(rf"job {job}_\d +done +\d cells  elapsed \d\d:\d\d:\d\d", text)
    cluster.report(f"smoke suite through Slurm: {len(got)} rows equal to the inline run's; sacct: {len(states)} tasks "
                   f"COMPLETED; status: {len(done)} tasks done")
    assert len(done) == 7, text


def test_jobs_1_runs_one_array_task_at_a_time(cluster, tmp_path, capsys) -> None:
    results = tmp_path / "results"
    args = ("--suite", "smoke", "--methods", "centroids", "kmeans", "herding", "--results", str(results), *JOB)
    finished(cli("run", *args, "--jobs", "1"))
    job = base_id(results)
    running_at_once, seen_running, reasons = 0, set(), set()
    shown_waiting = ""
    while True:
        tasks = queued(job)
        if not tasks:
            break
        running = [t for t, state, _ in tasks if state == "RUNNING"]
        running_at_once = max(running_at_once, len(running))
        seen_running.update(running)
        reasons.update(reason for _, state, reason in tasks if state == "PENDING")
        if running and not shown_waiting and any(state == "PENDING" for _, state, _ in tasks):
            shown_waiting = status(results, capsys)
        time.sleep(0.1)
    wait_done(job)
    cluster.report(f"--jobs 1: at most {running_at_once} task running at once; {len(seen_running)} tasks seen "
                   f"running; pending reasons {sorted(reasons)}")
    assert running_at_once == 1 and len(seen_running) >= 2
    assert "JobArrayTaskLimit" in reasons
    assert "pending (JobArrayTaskLimit)" in shown_waiting, shown_waiting
    assert all(s == ["COMPLETED"] for s in sacct(job).values()) and len(sacct(job)) == 3


def test_a_preempted_lgm_cell_checkpoints_requeues_and_ends_with_the_same_set(cluster, long_lgm, tmp_path,
                                                                              capsys) -> None:
    results = tmp_path / "results"
    proc = cli("run", "--suite", long_lgm.suite, "--results", str(results), *JOB, "--partition", "low", "--wait")
    artifacts = results / "artifacts" / "smoke_tiny" / "lgm"
    wait_until(lambda: artifacts.is_dir() and any(artifacts.rglob("ipc1_*")), "the LGM cell to start", 300)
    time.sleep(1.0)  # a few steps in
    # a job on `high` that needs the whole node: Slurm preempts the low one (SIGTERM, GraceTime)
    high = slurm("sbatch", "--parsable", "-p", "high", "-c", "2", "--mem", "1G", "-o", str(tmp_path / "high.out"),
                 "--wrap", "sleep 2").strip()
    out = finished(proc)
    assert "1 cells run" in out and "1 sets made" in out, out
    wait_done(high)
    got = outcome(results, long_lgm.set_bytes())
    cluster.report(f"preemption: preempted at step {got.stopped} of {long_lgm.steps}, resumed from step "
                   f"{got.resumed}; Slurm runs {got.runs}; final set equals the uninterrupted one byte for byte: "
                   f"{got.same}")
    assert got.runs == ["REQUEUED", "COMPLETED"]
    assert "preempted by SIGTERM at step" in got.log and len(got.stopped) == 1
    assert 0 < got.stopped[0] < long_lgm.steps
    assert got.resumed == got.stopped  # resumed at the step it stopped at: no step redone
    assert got.same
    assert sacct(high)[high] == ["COMPLETED"]
    meta = json.loads(lgm_set(results).with_name("meta.json").read_text())
    assert meta["metadata"]["resumed_from"] == got.stopped[0]
    assert meta["metadata"]["steps_done"] == meta["metadata"]["updates"] >= long_lgm.steps
    shown = status(results, capsys)
    assert re.search(rf"job {got.job} +done +1 cells  elapsed \S+  requeued 1x \(REQUEUED\)", shown), shown
    assert f"last stopped by SIGTERM at step {got.stopped[0]} (checkpoint saved)" in shown


def test_a_time_limit_checkpoints_requeues_and_ends_with_the_same_set(cluster, long_lgm, tmp_path) -> None:
    results = tmp_path / "results"
    out = run("--suite", long_lgm.suite, "--results", str(results), *JOB, "--partition", "debug",
              "--timeout-min", "1", "--wait")
    assert "1 cells run" in out, out
    got = outcome(results, long_lgm.set_bytes())
    cluster.report(f"time limit 1 min (the cell's LGM uninterrupted: {long_lgm.seconds():.1f} s): USR2 checkpoints at "
                   f"steps {got.stopped} of {long_lgm.steps}, resumed from "
                   f"{got.resumed}; Slurm runs {got.runs}; final set equals the uninterrupted one byte for byte: "
                   f"{got.same}")
    assert "#SBATCH --signal=USR2@5" in (results / "logs" / "submitit" / f"{got.job}_submission.sh").read_text()
    assert "preempted by SIGUSR2 at step" in got.log and "this job is timed-out" in got.log, \
        f"no USR2 reached the cell (Slurm runs {got.runs}): it ended first\n{got.log[-1500:]}"
    assert len(got.runs) >= 2 and set(got.runs[:-1]) == {"REQUEUED"} and got.runs[-1] == "COMPLETED", got.runs
    assert len(got.stopped) == len(got.runs) - 1 and got.resumed == got.stopped
    assert got.same


def test_a_cancelled_task_shows_its_cells_and_a_resubmission_runs_only_them(cluster, tmp_path, capsys) -> None:
    results = tmp_path / "results"
    args = ("--suite", "smoke", "--methods", "centroids", "kmeans", "--results", str(results), *JOB)
    finished(cli("run", *args, "--jobs", "1"))
    jobs = submission_jobs(results)
    victim = jobs[-1]  # held back by --jobs 1 while the first runs
    slurm("scancel", victim.job_id)
    wait_done(victim.job_id.split("_")[0])
    states = sacct(victim.job_id.split("_")[0])
    assert states[victim.job_id] == ["CANCELLED"] and [states[j.job_id] for j in jobs[:-1]] == [["COMPLETED"]]
    shown = status(results, capsys)
    (cell,) = [c for c in SMOKE.cells() if c.cell_id in victim.cells]
    assert re.search(rf"job {victim.job_id} +cancelled +1 cells", shown), shown
    assert f"cell {cell.describe().rstrip()}" in shown and f"errors: {victim.stderr}" in shown
    assert "suite smoke: 8 cells: 1 done, 0 failed, 7 missing" in shown
    out = run(*args, "--wait")
    again = re.search(r"submitted (\d+) slurm jobs \((\d+) cells\)", out)
    cluster.report(f"scancel: task {victim.job_id} {states[victim.job_id]}, shown cancelled with its cell; the "
                   f"same command again submitted {again[1] if again else '?'} task ({again[2] if again else '?'} "
                   "cells)")
    assert "submitted 1 slurm jobs (1 cells)" in out and "1 cells run" in out, out
    assert [e["cell"] for e in read_events(results, "cell_written")][-1] == cell.cell_id
    assert len(read_events(results, "cell_written")) == 2


def test_a_failing_cell_shows_failed_with_the_error_line_of_its_log(cluster, tmp_path, capsys) -> None:
    from tests.test_refs import write_image_folder

    images = write_image_folder(tmp_path / "images")
    suite_file = tmp_path / "folder.toml"
    suite_file.write_text(f'name = "slurm_folder"\ndatasets = ["folder:{images}"]\nmethods = ["centroids"]\n'
                          'backbones = ["tiny_vit"]\nipc = [1]\nseeds = 1\nprotocol = "fast"\n')
    results = tmp_path / "results"
    # the task may start only in 3 s: the images are gone by then
    finished(cli("run", "--suite", str(suite_file), "--results", str(results), *JOB, "--slurm-arg", "begin=now+3"))
    shutil.rmtree(images)
    job = base_id(results)
    wait_done(job)
    (record,) = submission_jobs(results)
    shown = status(results, capsys)  # the suite file no longer loads either: its jobs are shown all the same
    error = re.search(r"error: (.+)", shown)
    cluster.report(f"failing cell: sacct {sacct(job)}; status says: {error[0] if error else shown}")
    assert "suite slurm_folder: its definition does not load now" in shown
    assert re.search(rf"job {record.job_id} +failed \(exit 1:0\)", shown), shown
    assert error and f"RegistryError: dataset 'folder:{images}': directory not found: {images}" in error[1], shown
    logs = Path(record.stdout).read_text() + Path(record.stderr).read_text()
    assert error[1] in logs  # the line is the job log's own


def test_two_submissions_at_once_compute_every_cell_once(cluster, inline, tmp_path) -> None:
    results = tmp_path / "results"
    methods = ("lgm", "neighbors", "centroids")
    args = ("--suite", "smoke", "--methods", *methods, "--results", str(results), *JOB, "--wait")
    outs = [finished(p) for p in [cli("run", *args), cli("run", *args)]]
    cells = [c for c in SMOKE.cells() if c.method in methods]
    submitted = [int(re.search(r"submitted (\d+) slurm jobs", o)[1]) for o in outs]
    made = [int(re.search(r"(\d+) sets made", o)[1]) for o in outs]
    ran = [int(re.search(r"(\d+) cells run", o)[1]) for o in outs]
    written = read_events(results, "cell_written")
    sets = read_events(results, "set_made")
    makers = len({e["slurm_job"] for e in sets})
    cluster.report(f"two submissions at once: {submitted} tasks, cells run {ran}, sets made {made}; events: "
                   f"{len(written)} cells written, {len(sets)} sets made, by {makers} tasks")
    assert sum(ran) == len(cells) == 3 and sum(made) == 3
    assert sorted(e["cell"] for e in written) == sorted(c.cell_id for c in cells)
    assert len(sets) == 3 and len({e["set"] for e in sets}) == 3
    got = values(results)
    assert len(got) == 6 and not got.duplicated(KEY).any()
    assert got.equals(values_of(inline, cells))


def values_of(frame: pd.DataFrame, cells: list) -> pd.DataFrame:
    return frame[frame.cell_id.isin({c.cell_id for c in cells})].reset_index(drop=True)


def test_a_node_down_requeues_its_task_and_a_resubmission_completes_the_suite(cluster, long_lgm, tmp_path,
                                                                              capsys) -> None:
    suite_file = tmp_path / "node.toml"
    steps = max(20, long_lgm.steps // 5)
    suite_file.write_text(LONG_SUITE.format(name="slurm_node", steps=steps))
    results = tmp_path / "results"
    args = ("--suite", str(suite_file), "--results", str(results), *JOB)
    finished(cli("run", *args))
    job = base_id(results)
    wait_until(lambda: any(state == "RUNNING" for _, state, _ in queued(job)), "the task to run", 120)
    slurm("scontrol", "update", f"nodename={NODE}", "state=down", "reason=test")
    try:
        first = wait_until(lambda: [s for s in sacct(job).get(job, []) if s != "RUNNING"], "the task to stop", 120)
    finally:  # ReturnToService=2 may have brought it back already (slurmd registered): then resume is refused
        slurm("scontrol", "update", f"nodename={NODE}", "state=resume", check=False)
    wait_until(lambda: slurm("sinfo", "-h", "-n", NODE, "-o", "%T").strip() in ("idle", "mixed", "allocated"),
               "the node to come back", 120)
    wait_done(job)
    runs = sacct(job)[job]
    shown = status(results, capsys, "--suite", str(suite_file))
    cluster.report(f"node down: Slurm runs {runs}; status: "
                   f"{next(line.strip() for line in shown.splitlines() if f'job {job}' in line)}")
    # requeued (NODE_FAIL or REQUEUED, then done), or reported failed: never gone without a word
    assert first[0] in ("NODE_FAIL", "REQUEUED", "FAILED", "CANCELLED"), runs
    assert len(runs) >= 2 or runs[-1] in ("NODE_FAIL", "FAILED", "CANCELLED")
    if len(runs) >= 2:
        assert re.search(rf"requeued {len(runs) - 1}x \({', '.join(runs[:-1])}\)", shown), shown
    else:
        assert re.search(rf"job {job} +(failed|cancelled)", shown), shown
    again = run(*args, "--wait")
    assert "nothing to submit" in again or "1 cells run" in again, again
    assert "suite slurm_node: 1 cells: 1 done, 0 failed, 0 missing" in status(results, capsys, "--suite",
                                                                                  str(suite_file))
    assert len(read_events(results, "set_made")) == 1
