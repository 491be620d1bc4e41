"""What was submitted: ``<results>/logs/submitit/jobs.json``, appended at every submission, read by
``python -m benchmark status`` to show each job's state and logs."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..locks import held
from ..paths import atomic_write_bytes

LOGS_DIR = Path("logs", "submitit")
RECORDS = "jobs.json"


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
