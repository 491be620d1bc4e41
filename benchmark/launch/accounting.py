"""What Slurm says about a submission's tasks: every run of each task from ``sacct --duplicates`` (a
requeued task has one record per run), and the live state and reason of those still queued from
``squeue``. Read by ``python -m benchmark status``."""

from __future__ import annotations

import getpass
import re
import shutil
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass, field

TIMEOUT_S = 30
SACCT_FIELDS = ("JobID", "State", "Reason", "Elapsed", "ExitCode")


class AccountingError(RuntimeError):
    """sacct or squeue missing or refusing (no Slurm here, no accounting)."""


@dataclass(frozen=True)
class Run:
    """One run of a task, as ``sacct`` records it."""

    state: str  # COMPLETED, RUNNING, REQUEUED, PREEMPTED, NODE_FAIL, ... ("CANCELLED by 0" -> CANCELLED)
    reason: str = ""
    elapsed_s: int = 0
    exit_code: str = ""


@dataclass
class Task:
    """A task's runs, oldest first, and what ``squeue`` says of it now (empty when it left the queue)."""

    job_id: str
    runs: list[Run] = field(default_factory=list)
    queue_state: str = ""
    queue_reason: str = ""

    @property
    def state(self) -> str:
        """Slurm's state now: the queue's while it is queued (fresher than the accounting's)."""
        return self.queue_state or (self.runs[-1].state if self.runs else "")

    @property
    def reason(self) -> str:
        if self.queue_state:
            return self.queue_reason if self.queue_reason not in ("None", "(null)") else ""
        return self.runs[-1].reason if self.runs else ""

    @property
    def restarts(self) -> list[str]:
        """The states the earlier runs ended in (REQUEUED, PREEMPTED, NODE_FAIL...), one per restart."""
        return [r.state for r in self.runs[:-1]]

    @property
    def elapsed_s(self) -> int:
        return self.runs[-1].elapsed_s if self.runs else 0

    @property
    def total_elapsed_s(self) -> int:
        return sum(r.elapsed_s for r in self.runs)


def parse_elapsed(text: str) -> int:
    """Slurm's ``[D-]HH:MM:SS`` (or ``MM:SS``) in seconds; 0 for anything else."""
    found = re.fullmatch(r"(?:(\d+)-)?(?:(\d+):)?(\d+):(\d+)", text.strip())
    if not found:
        return 0
    days, hours, minutes, seconds = (int(g) if g else 0 for g in found.groups())
    return ((days * 24 + hours) * 60 + minutes) * 60 + seconds


def format_elapsed(seconds: int) -> str:
    hours, rest = divmod(int(seconds), 3600)
    return f"{hours:02d}:{rest // 60:02d}:{rest % 60:02d}"


def expand_ids(job_id: str) -> list[str]:
    """sacct/squeue ids to task ids: ``12_[3-5%2]`` -> 12_3, 12_4, 12_5; ``12_4`` and ``12`` as they are."""
    found = re.fullmatch(r"(\d+)_\[([^\]]*)\]", job_id.strip())
    if not found:
        return [job_id.strip()]
    base, spec = found[1], found[2].split("%")[0]
    ids = []
    for part in filter(None, spec.split(",")):
        start, _, stop = part.partition("-")
        ids += [f"{base}_{k}" for k in range(int(start), int(stop or start) + 1)]
    return ids


def _run(command: list[str]) -> str:
    if shutil.which(command[0]) is None:
        raise AccountingError(f"{command[0]} not found")
    try:
        proc = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise AccountingError(f"{command[0]}: {err}") from None
    if proc.returncode != 0:
        raise AccountingError(f"{command[0]}: {proc.stderr.strip() or f'exit status {proc.returncode}'}")
    return proc.stdout


def parse_sacct(text: str) -> dict[str, list[Run]]:
    """``sacct -X --duplicates --parsable2 --noheader -o JobID,State,Reason,Elapsed,ExitCode`` output
    -> each task's runs in the order sacct lists them (oldest first)."""
    runs: dict[str, list[Run]] = {}
    for line in text.splitlines():
        parts = line.split("|")
        if len(parts) != len(SACCT_FIELDS):
            continue
        job_id, state, reason, elapsed, exit_code = parts
        run = Run(state.split()[0] if state.strip() else "", reason, parse_elapsed(elapsed), exit_code)
        for task in expand_ids(job_id):
            runs.setdefault(task, []).append(run)
    return runs


def parse_squeue(text: str) -> dict[str, tuple[str, str]]:
    """``squeue --array --noheader -o %i|%T|%r`` output -> task id: (state, reason)."""
    queued: dict[str, tuple[str, str]] = {}
    for line in text.splitlines():
        parts = line.strip().split("|")
        if len(parts) == 3:
            for task in expand_ids(parts[0]):
                queued[task] = (parts[1], parts[2])
    return queued


def base_ids(task_ids: Iterable[str]) -> list[str]:
    """The job ids to ask sacct about (an array's id covers all its tasks)."""
    return sorted({t.split("_")[0] for t in task_ids}, key=lambda s: (len(s), s))


def read_tasks(task_ids: Iterable[str]) -> dict[str, Task]:
    """The runs and queue state of each of ``task_ids``; :class:`AccountingError` when sacct cannot
    be asked. A task sacct does not know (yet) has no runs."""
    task_ids = list(task_ids)
    runs = parse_sacct(_run(["sacct", "-X", "--duplicates", "--parsable2", "--noheader",
                             "-o", ",".join(SACCT_FIELDS), "-j", ",".join(base_ids(task_ids))]))
    try:
        queued = parse_squeue(_run(["squeue", "--array", "--noheader", "-u", getpass.getuser(),
                                    "-o", "%i|%T|%r"]))
    except AccountingError:  # the accounting alone still tells the states
        queued = {}
    tasks = {}
    for task_id in task_ids:
        state, reason = queued.get(task_id, ("", ""))
        tasks[task_id] = Task(task_id, runs.get(task_id, []), state, reason)
    return tasks
