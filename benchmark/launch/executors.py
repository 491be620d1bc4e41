"""``run --executor local|slurm``: a suite's pending cells as submitit jobs.

The cells are grouped the way the data flows (:func:`~benchmark.launch.groups.set_groups`: a set with
every cell probing it, and the sets that read it). ``slurm`` submits one array task per group (``--jobs``
caps how many run at once); ``local`` spreads the groups over ``--jobs`` processes on this machine (one
per visible GPU by default). Jobs that share sets or cells coordinate through the locks of
:mod:`benchmark.locks`, so concurrent runs never make a set or a cell twice.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..suites import Cell, Suite
from .cpus import affinity_cpus, share, slurm_cpus, workers_for
from .groups import set_groups, shards
from .records import JobRecord, Submission, logs_folder, record_submission

LOCAL_TIMEOUT_MIN = 30 * 24 * 60  # local jobs: no practical limit (submitit's default is 2 minutes)
SLURM_TIMEOUT_MIN = 24 * 60
SIGNAL_DELAY_S = 90  # submitit's warning before a Slurm time limit (USR2), for limits of 4 minutes and more
SIGNAL_SLACK_S = 30  # Slurm checks time limits every 30 s and may send the warning up to that much early
# Time-limit requeues a Slurm task may take before submitit fails it. submitit's own default (3) ends a
# ~20 h ImageNet-1k full-data cell under a 4 h limit; every requeue resumes from a checkpoint, so more are
# progress, not waste.
SLURM_MAX_REQUEUES = 20


def signal_delay(timeout_min: int) -> int:
    """Seconds before the time limit that Slurm is asked to warn a task: 90, or less for a short limit so
    that even a warning sent early (Slurm's timer resolution) comes after the task's first half."""
    return max(5, min(SIGNAL_DELAY_S, timeout_min * 60 // 2 - SIGNAL_SLACK_S))


class LaunchError(ValueError):
    """Bad launch options, or a missing submitit: one ``error:`` line, exit status 2."""


@dataclass(frozen=True)
class LaunchOptions:
    """The ``run`` options of a submitit executor (None: the executor's default)."""

    executor: str
    jobs: int | None = None
    partition: str | None = None
    gpus_per_job: int | None = None
    cpus_per_job: int | None = None
    mem_gb: int | None = None
    timeout_min: int | None = None
    max_requeues: int | None = None  # slurm: time-limit requeues per task (None: SLURM_MAX_REQUEUES)
    slurm_args: dict[str, str] = field(default_factory=dict)
    device: str = "auto"
    wait: bool = False  # slurm: wait for the jobs and summarise them (local always waits)
    workers: int | None = None  # image decode workers per job (None: from the CPUs the job may use)


@dataclass
class PlannedJob:
    cells: list[Cell]
    parameters: dict[str, Any]  # this job's own executor parameters, on top of the shared ones
    alignment: bool = False
    threads: int = 0  # torch threads; 0: from the CPUs the job gets (Slurm)
    workers: int | None = None  # decode workers; None: from the CPUs the job gets (Slurm)


def parse_slurm_args(items: Sequence[str]) -> dict[str, str]:
    """``KEY=VALUE`` strings (``--slurm-arg``) -> sbatch options, e.g. ``account=abc``, ``qos=high``."""
    parsed: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip().removeprefix("--")
        if not sep or not key:
            raise LaunchError(f"--slurm-arg {item!r} is not KEY=VALUE; e.g. --slurm-arg account=my_account")
        parsed[key] = value
    return parsed


def require_submitit(executor: str) -> None:
    if importlib.util.find_spec("submitit") is None:
        raise LaunchError(f"--executor {executor} needs submitit: pip install 'lgm-bench[slurm]'")


class Launcher(ABC):
    """How one kind of executor turns groups of cells into jobs and submits them."""

    name: str
    waits: bool  # whether `run` waits for the jobs and summarises them

    def __init__(self, options: LaunchOptions) -> None:
        self.options = options
        for flag, value in (("--jobs", options.jobs), ("--gpus-per-job", options.gpus_per_job),
                            ("--cpus-per-job", options.cpus_per_job), ("--timeout-min", options.timeout_min)):
            if value is not None and value < (0 if flag == "--gpus-per-job" else 1):
                raise LaunchError(f"{flag} must be at least {0 if flag == '--gpus-per-job' else 1}, got {value}")
        if options.mem_gb is not None and options.mem_gb <= 0:
            raise LaunchError(f"--mem must be a positive number of GB, got {options.mem_gb}")
        if options.max_requeues is not None and options.max_requeues < 0:
            raise LaunchError(f"--max-requeues must be 0 or more, got {options.max_requeues}")

    @abstractmethod
    def plan(self, groups: list[list[Cell]]) -> list[PlannedJob]:
        """The jobs to submit for these groups of cells."""

    @abstractmethod
    def parameters(self) -> dict[str, Any]:
        """The executor parameters every job shares (``update_parameters``)."""

    def limits(self) -> dict[str, Any]:
        """What the jobs are given beside ``parameters`` (the dry run shows it)."""
        return {}

    @abstractmethod
    def executor(self, folder: Path) -> Any:
        """The submitit executor, with :meth:`parameters` set."""

    def submit(self, executor: Any, jobs: list[PlannedJob], calls: list[Any]) -> list[Any]:
        submitted = []
        for job, call in zip(jobs, calls, strict=True):
            if job.parameters:
                executor.update_parameters(**job.parameters)
            submitted.append(executor.submit(call))
        return submitted


class LocalLauncher(Launcher):
    """Jobs as processes on this machine (submitit's LocalExecutor): one per visible GPU, each seeing
    only its own GPU(s); on a machine without GPUs, ``--jobs N`` processes (default 1)."""

    name = "local"
    waits = True

    def __init__(self, options: LaunchOptions) -> None:
        super().__init__(options)
        import torch

        self.gpus = torch.cuda.device_count()
        self.physical = physical_gpus(self.gpus)
        if options.partition or options.mem_gb or options.slurm_args or options.max_requeues is not None:
            raise LaunchError("--partition, --mem, --max-requeues and --slurm-arg are Slurm options; drop "
                              "them with --executor local, or use --executor slurm")
        if options.gpus_per_job and not self.gpus:
            raise LaunchError(f"--gpus-per-job {options.gpus_per_job}: no GPU is visible on this machine; "
                              "drop it to run the jobs on the CPU")
        if options.gpus_per_job and options.gpus_per_job > self.gpus:
            raise LaunchError(f"--gpus-per-job {options.gpus_per_job}: this machine has {self.gpus} GPUs")

    def plan(self, groups: list[list[Cell]]) -> list[PlannedJob]:
        per_job = self.options.gpus_per_job if self.options.gpus_per_job is not None else int(self.gpus > 0)
        n = self.options.jobs or (max(1, self.gpus // per_job) if per_job else 1)
        sharded = shards(groups, n)
        # the machine's CPUs split among the jobs: each runs its torch threads and decode workers on its share
        cpus = self.options.cpus_per_job or share(affinity_cpus(), len(sharded))
        workers = self.options.workers if self.options.workers is not None else workers_for(cpus)
        planned = []
        for k, cells in enumerate(sharded):
            # job k sees its own GPUs (round robin when there are more jobs than GPUs)
            visible = tuple(self.physical[(k * per_job + i) % self.gpus] for i in range(per_job)) if per_job else ()
            parameters = {"gpus_per_node": per_job, "visible_gpus": visible}
            planned.append(PlannedJob(cells, parameters, alignment=k == 0, threads=cpus, workers=workers))
        return planned

    def parameters(self) -> dict[str, Any]:
        return {"timeout_min": self.options.timeout_min or LOCAL_TIMEOUT_MIN}

    def executor(self, folder: Path) -> Any:
        import submitit

        executor = submitit.LocalExecutor(folder=folder)
        executor.update_parameters(**self.parameters())
        return executor


def physical_gpus(count: int, visible: str | None = None) -> list[int]:
    """The ids of this process's ``count`` GPUs as the whole machine numbers them: submitit's local
    executor sets each job's ``CUDA_VISIBLE_DEVICES`` to the ids it is given, so a parent restricted to
    ``CUDA_VISIBLE_DEVICES=4,5`` must hand its jobs 4 and 5, not 0 and 1."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES") if visible is None else visible
    if not count or visible is None or not visible.strip():
        return list(range(count))
    ids = [part.strip() for part in visible.split(",") if part.strip()]
    if not all(part.isdigit() for part in ids):
        raise LaunchError(f"CUDA_VISIBLE_DEVICES={visible} names GPUs by UUID; --executor local hands each job "
                          "numeric GPU ids: set CUDA_VISIBLE_DEVICES to numbers (nvidia-smi -L lists them)")
    return [int(part) for part in ids[:count]]


class SlurmLauncher(Launcher):
    """One Slurm array task per group of cells (submitit's AutoExecutor with ``cluster="slurm"``)."""

    name = "slurm"

    def __init__(self, options: LaunchOptions) -> None:
        super().__init__(options)
        self.waits = options.wait

    def plan(self, groups: list[list[Cell]]) -> list[PlannedJob]:
        # threads and workers follow the CPUs each task gets (SLURM_CPUS_PER_TASK), unless --workers is given
        return [PlannedJob(cells, {}, alignment=k == 0, workers=self.options.workers) for k, cells in enumerate(groups)]

    def parameters(self) -> dict[str, Any]:
        o = self.options
        timeout = o.timeout_min or SLURM_TIMEOUT_MIN
        params: dict[str, Any] = {
            "name": "lgm-bench",
            "timeout_min": timeout,
            "gpus_per_node": 1 if o.gpus_per_job is None else o.gpus_per_job,
            "tasks_per_node": 1,
            "nodes": 1,
            # by default a task asks for its decode workers and the main process
            "cpus_per_task": o.cpus_per_job or slurm_cpus(o.workers),
            # the time-limit warning (USR2): a short job still works a while before it checkpoints and requeues
            "slurm_signal_delay_s": signal_delay(timeout),
        }
        optional = {"slurm_partition": o.partition, "mem_gb": o.mem_gb,
                    "slurm_array_parallelism": o.jobs,
                    "slurm_additional_parameters": dict(o.slurm_args) if o.slurm_args else None}
        params.update({k: v for k, v in optional.items() if v is not None})
        return params

    def limits(self) -> dict[str, Any]:
        requeues = self.options.max_requeues
        return {"max_requeues": SLURM_MAX_REQUEUES if requeues is None else requeues}

    def executor(self, folder: Path) -> Any:
        import submitit

        executor = submitit.AutoExecutor(folder=folder, cluster="slurm",
                                         slurm_max_num_timeout=self.limits()["max_requeues"])
        executor.update_parameters(**self.parameters())
        return executor

    def submit(self, executor: Any, jobs: list[PlannedJob], calls: list[Any]) -> list[Any]:
        with executor.batch():  # one array: one sbatch call, --jobs tasks at a time
            submitted = [executor.submit(call) for call in calls]
        return submitted


LAUNCHERS: dict[str, type[Launcher]] = {"local": LocalLauncher, "slurm": SlurmLauncher}
EXECUTORS = ("inline", *LAUNCHERS)


def describe_jobs(suite: Suite, launcher: Launcher, jobs: list[PlannedJob], done: int, total: int) -> str:
    """The dry-run text: the jobs, the cells each holds, and the parameters they would be submitted with."""
    cells = sum(len(j.cells) for j in jobs)
    lines = [f"suite {suite.name}: {total} cells, {done} already done, {cells} to run in {len(jobs)} "
             f"{launcher.name} jobs",
             f"parameters: {json.dumps(launcher.parameters(), sort_keys=True)}"]
    if launcher.limits():
        lines.append(f"limits: {json.dumps(launcher.limits(), sort_keys=True)}")
    for k, job in enumerate(jobs):
        extra = {**job.parameters, **({"alignment": True} if job.alignment and suite.alignment else {}),
                 **({"threads": job.threads} if job.threads else {}),
                 **({"workers": job.workers} if job.workers is not None else {})}
        sets = len({(c.dataset, c.method, c.distill_backbone, c.ipc, c.method_seed) for c in job.cells})
        lines.append(f"job {k}: {len(job.cells)} cells, {sets} sets" + (f" {json.dumps(extra)}" if extra else ""))
        lines += [f"  {c.describe()}" for c in job.cells]
    lines.append("nothing submitted (--dry-run)")
    return "\n".join(lines)


@dataclass
class LaunchResult:
    """What a launch did: jobs submitted, and for waited-on jobs the summed cell counts."""

    submitted: int = 0
    waited: bool = False
    ran: int = 0
    skipped: int = 0
    failed_cells: list[str] = field(default_factory=list)
    failed_jobs: list[str] = field(default_factory=list)
    made_sets: int = 0
    reused_sets: int = 0


def missing_alignment(suite: Suite, results: Path) -> list[str]:
    """The suite's datasets whose alignment file is not there yet."""
    from ..mutual_knn import alignment_path

    return [d for d in suite.datasets if not alignment_path(results, d).exists()]


def launch(suite: Suite, results: Path, options: LaunchOptions, dry_run: bool = False,
           is_done: Any = None) -> LaunchResult:
    """Submit the suite's pending cells as jobs (print them instead with ``dry_run``); wait for them
    where the executor waits (local, or slurm with ``wait``). Raises :class:`LaunchError` on bad options."""
    from ..runner import is_done as cell_done

    if options.executor not in LAUNCHERS:
        raise LaunchError(f"unknown executor {options.executor!r}; choose one of {', '.join(EXECUTORS)}")
    require_submitit(options.executor)
    launcher = LAUNCHERS[options.executor](options)
    is_done = is_done or cell_done
    cells = suite.cells()
    pending = [c for c in cells if not is_done(results, c)]
    result = LaunchResult(skipped=len(cells) - len(pending))
    if not pending:
        print(f"All {len(cells)} cells of suite {suite.name!r} are already in {results}: nothing to submit.")
        if suite.alignment and len(suite.backbones) > 1 and missing_alignment(suite, results):
            print(f"The backbone alignment of suite {suite.name!r} is missing (its job did not finish): run the "
                  "same command without --executor to measure it here.")
        return result
    jobs = launcher.plan(set_groups(pending))
    if dry_run:
        print(describe_jobs(suite, launcher, jobs, len(cells) - len(pending), len(cells)))
        return result
    from .jobs import CellsJob

    folder = logs_folder(results)
    calls = [CellsJob(suite, Path(results).resolve(), tuple(c.cell_id for c in j.cells), options.device,
                      alignment=j.alignment, threads=j.threads, workers=j.workers) for j in jobs]
    try:
        executor = launcher.executor(folder)
        submitted = launcher.submit(executor, jobs, calls)
    except (OSError, RuntimeError, ValueError) as err:  # e.g. no sbatch here, or Slurm refused the job
        raise LaunchError(f"could not submit to {launcher.name}: {type(err).__name__}: {err}") from None
    records = [JobRecord(str(j.job_id), [c.cell_id for c in p.cells], str(j.paths.stdout), str(j.paths.stderr))
               for j, p in zip(submitted, jobs, strict=True)]
    path = record_submission(results, Submission(suite.name, launcher.name, str(folder), jobs=records))
    result.submitted = len(submitted)
    print(f"submitted {len(submitted)} {launcher.name} jobs ({len(pending)} cells) for suite {suite.name!r}; "
          f"job ids and logs in {path}; `python -m benchmark status --results {results}` shows their state")
    if launcher.waits:
        wait_for(submitted, records, result)
        result.waited = True
    return result


def wait_for(submitted: list[Any], records: list[JobRecord], result: LaunchResult) -> None:
    """Wait for every job and add up their summaries; Ctrl-C cancels the jobs (finished cells stay)."""
    try:
        for job, record in zip(submitted, records, strict=True):
            try:
                summary = job.result()
            except Exception as err:  # the job died (killed, out of memory, an error outside any cell)
                first = str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__
                result.failed_jobs.append(f"job {record.job_id}: {first} (log: {record.stderr})")
                continue
            result.ran += summary["ran"]
            result.skipped += summary["skipped"]
            result.failed_cells += summary["failed"]
            result.made_sets += summary["made_sets"]
            result.reused_sets += summary["reused_sets"]
    except KeyboardInterrupt:
        for job in submitted:
            job.cancel(check=False)
        raise
    if result.failed_jobs:
        print("\n".join(f"  FAILED {line}" for line in result.failed_jobs), file=sys.stderr)
