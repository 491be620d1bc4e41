"""What was submitted: ``<results>/logs/submitit/jobs.json``, appended at every submission, read by
``python -m benchmark status`` to show each job's state and logs; and what was made, by which process:
``<results>/logs/events.jsonl``, one JSON line per set made and per cell written (inline runs too)."""

from __future__ import annotations

import json
import os
import socket
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..locks import file_lock, held
from ..paths import atomic_write_bytes

LOGS_DIR = Path("logs", "submitit")
RECORDS = "jobs.json"
EVENTS = Path("logs", "events.jsonl")


def logs_folder(results: Path) -> Path:
    """Where submitit keeps the jobs' pickles and logs, and where the records go."""
    return Path(results) / LOGS_DIR


@dataclass
class JobRecord:
    job_id: str
    cells: list[str]
    stdout: str
    stderr: str


@dataclass
class Submission:
    suite: str
    executor: str
    folder: str
    submitted_at: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))
    jobs: list[JobRecord] = field(default_factory=list)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Submission:
        jobs = [JobRecord(**j) for j in data.get("jobs", [])]
        return cls(data["suite"], data["executor"], data["folder"], data["submitted_at"], jobs)


def read_submissions(results: Path) -> list[Submission]:
    """Every recorded submission, oldest first; [] when there is none or the file is unreadable."""
    path = logs_folder(results) / RECORDS
    try:
        data = json.loads(path.read_text())
        return [Submission.from_dict(d) for d in data["submissions"]]
    except (OSError, ValueError, KeyError, TypeError):
        return []


def record_submission(results: Path, submission: Submission) -> Path:
    """Append ``submission`` to the records (under a lock: other runs may submit at the same time)."""
    path = logs_folder(results) / RECORDS
    with held(path, "the job records"):
        known = read_submissions(results)
        data = {"submissions": [asdict(s) for s in [*known, submission]]}
        atomic_write_bytes(path, json.dumps(data, indent=1).encode())
    return path


def events_path(results: Path) -> Path:
    return Path(results) / EVENTS


def slurm_task_id() -> str:
    """This process's Slurm job id as ``sacct`` and the job records name it (``123_4`` for an array
    task), or "" outside Slurm."""
    array, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    return f"{array}_{task}" if array and task else os.environ.get("SLURM_JOB_ID", "")


def record_event(results: Path, kind: str, **fields: Any) -> None:
    """Append one event (``set_made``, ``cell_written``) with when, where and by which job it happened.
    One line per write under the log's lock, so lines of concurrent jobs never interleave."""
    event = {"event": kind, "at": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
             "host": socket.gethostname(), "pid": os.getpid(), "slurm_job": slurm_task_id(), **fields}
    path = events_path(results)
    with file_lock(path), path.open("a", encoding="utf-8") as out:
        out.write(json.dumps(event, default=str) + "\n")


def read_events(results: Path, kind: str | None = None) -> list[dict[str, Any]]:
    """The events recorded under ``results`` (of ``kind`` only), oldest first; a torn last line (a
    process killed mid-write) is left out."""
    try:
        lines = events_path(results).read_text(encoding="utf-8").splitlines()
    except OSError:
        return []
    events = []
    for line in lines:
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if kind is None or event.get("event") == kind:
            events.append(event)
    return events
