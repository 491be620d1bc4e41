"""``python -m benchmark status``: per suite, the cells done, failed and missing (from the cell files),
and the state and logs of the jobs last submitted for it (``run --executor local|slurm``)."""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from .launch.records import Submission, logs_folder, read_submissions
from .results import CELLS_DIR
from .stale import current_definitions
from .suites import Cell, Suite

SHOWN = 10  # cells listed per kind before "... and N more"

# Slurm's job states (sacct), as status reports them
SLURM_STATES = {
    "PENDING": "pending", "REQUEUED": "pending", "CONFIGURING": "pending", "RESIZING": "pending",
    "RUNNING": "running", "COMPLETING": "running", "SUSPENDED": "running", "STOPPED": "running",
    "COMPLETED": "done",
    "FAILED": "failed", "CANCELLED": "failed", "TIMEOUT": "failed", "NODE_FAIL": "failed",
    "OUT_OF_MEMORY": "failed", "PREEMPTED": "failed", "BOOT_FAIL": "failed", "DEADLINE": "failed",
}


@dataclass
class CellCounts:
    done: list[Cell] = field(default_factory=list)
    failed: list[Cell] = field(default_factory=list)  # its file holds error rows
    missing: list[Cell] = field(default_factory=list)  # no file yet
    invalid: list[tuple[Cell, str]] = field(default_factory=list)  # a file that is not this cell's; runs again


def cell_counts(suite: Suite, results: Path) -> CellCounts:
    """Where each cell of ``suite`` stands, from its file alone (no data, no backbone)."""
    from .runner import cell_file_state, cell_path

    counts = CellCounts()
    for cell in suite.cells():
        state = cell_file_state(results, cell)
        if state.done:
            counts.done.append(cell)
        elif state.invalid:
            counts.invalid.append((cell, state.invalid))
        elif cell_path(results, cell).exists():
            counts.failed.append(cell)
        else:
            counts.missing.append(cell)
    return counts


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def _local_state(folder: Path, job_id: str) -> str:
    # a local job's id is the pid of its submitit controller on this machine
    if not job_id.isdigit():
        return "unknown"
    return "running" if _pid_alive(int(job_id)) else "failed (ended without a result: killed?)"


def _slurm_state(folder: Path, job_id: str) -> str:
    import submitit

    state = str(submitit.SlurmJob(folder, job_id).state).split()[0].upper()  # "CANCELLED by 123"
    return SLURM_STATES.get(state, "unknown")


STATE_READERS = {"local": _local_state, "slurm": _slurm_state}


def job_state(executor: str, folder: Path, job_id: str) -> str:
    """pending / running / done / failed, or unknown when it cannot be read (no submitit, no sacct)."""
    try:
        from submitit.core.utils import JobPaths, pickle_load
    except ImportError:
        return "unknown"
    result = JobPaths(folder, job_id, task_id=0).result_pickle
    if result.exists():  # the job ended and said how
        try:
            outcome, _ = pickle_load(result)
        except Exception:  # a result written by another submitit version, or half-read
            return "unknown"
        return "done" if outcome == "success" else "failed"
    reader = STATE_READERS.get(executor)
    if reader is None:
        return "unknown"
    try:
        return reader(Path(folder), job_id)
    except Exception:  # sacct missing or refusing: say so rather than guess
        return "unknown"


def _listed(label: str, cells: list[Cell]) -> list[str]:
    lines = [f"    {label:<8} {c.describe().rstrip()}" for c in cells[:SHOWN]]
    if len(cells) > SHOWN:
        lines.append(f"    ... and {len(cells) - SHOWN} more {label}")
    return lines


def describe_jobs(submission: Submission, earlier: int) -> list[str]:
    states = [(job, job_state(submission.executor, Path(submission.folder), job.job_id)) for job in submission.jobs]
    tally = Counter(state.split(" (")[0] for _, state in states)
    lines = [f"  jobs ({submission.executor}, submitted {submission.submitted_at}): "
             + ", ".join(f"{n} {s}" for s, n in sorted(tally.items()))
             + (f"; {earlier} earlier submissions" if earlier else "")]
    for job, state in states:
        lines.append(f"    job {job.job_id:<12} {state:<10} {len(job.cells)} cells  log {job.stdout}")
        if state.startswith("failed"):
            lines.append(f"    {'':<16} errors: {job.stderr}")
    return lines


def _count_lines(title: str, suite: Suite, results: Path) -> list[str]:
    counts = cell_counts(suite, results)
    total = len(counts.done) + len(counts.failed) + len(counts.missing) + len(counts.invalid)
    lines = [f"{title}: {total} cells: {len(counts.done)} done, {len(counts.failed)} failed, "
             f"{len(counts.missing)} missing" + (f", {len(counts.invalid)} invalid" if counts.invalid else "")]
    lines += _listed("failed", counts.failed) + _listed("missing", counts.missing)
    return lines + [f"    invalid  {c.cell_id}: {why}" for c, why in counts.invalid[:SHOWN]]


def rehearsals_on_disk(results: Path, suite: Suite) -> list[tuple[str, Suite]]:
    """The rehearsals (``run --limit``/``--set``) of ``suite`` with cell files under ``results``, as
    (label, suite) pairs: found from what their rows record (protocol, limit, overrides and, for
    ``--seeds``, the highest probe seed), in the files that are not the suite's own cells."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from .overrides import rehearsal_suite
    from .rehearsal import overrides_from_text, parse_limit, run_label
    from .suites import PROBE_SEED_BASE

    folder = Path(results) / CELLS_DIR / suite.name
    if not folder.is_dir():
        return []
    own = {c.cell_id for c in suite.cells()}
    seeds: dict[tuple[str, str, str], int] = {}
    for path in sorted(folder.glob("*.parquet")):
        if path.stem in own:
            continue
        try:
            table = pq.read_table(path, columns=["protocol", "limit", "overrides", "probe_seed"])
        except (OSError, ValueError, pa.ArrowException):  # unreadable, or written before these columns
            continue
        columns = (table.column(c).to_pylist() for c in ("protocol", "limit", "overrides", "probe_seed"))
        for p, lim, o, seed in zip(*columns, strict=True):
            if lim or o:
                key = (p or "", lim or "", o or "")
                seeds[key] = max(seeds.get(key, 0), (seed or PROBE_SEED_BASE) - PROBE_SEED_BASE + 1)
    variants = []
    for (protocol, limit, overrides), n in sorted(seeds.items()):
        try:
            variant = rehearsal_suite(suite.replace(protocol=protocol or None, seeds=n),
                                      parse_limit(limit) if limit else None, overrides_from_text(overrides),
                                      check=False)
        except ValueError:  # options the suite no longer has: its cells are stale
            continue
        variants.append((run_label(limit, overrides), variant))
    return variants


def describe_status(results: Path, suites: list[Suite] | None = None) -> str:
    """The status text of ``suites`` (default: every suite, registered or recorded from a suite file by
    ``run``, with cell files or jobs)."""
    results = Path(results)
    submissions = read_submissions(results)
    if suites is None:
        cells_dir = results / CELLS_DIR
        on_disk = {p.name for p in cells_dir.iterdir() if p.is_dir()} if cells_dir.is_dir() else set()
        named = on_disk | {s.suite for s in submissions}
        suites = [suite for name, suite in sorted(current_definitions(results).items()) if name in named]
        if not suites:
            return f"no cells or jobs under {results} yet; start with `python -m benchmark run`"
    lines = []
    for suite in suites:
        name = suite.name
        lines += _count_lines(f"suite {name}", suite, results)
        for label, rehearsal in rehearsals_on_disk(results, suite):  # run --limit / --set beside it
            lines += _count_lines(f"suite {name}{label}", rehearsal, results)
        mine = [s for s in submissions if s.suite == name]
        if mine:
            lines += describe_jobs(mine[-1], len(mine) - 1)
    if submissions:
        lines.append(f"job records: {logs_folder(results) / 'jobs.json'}")
    return "\n".join(lines)
