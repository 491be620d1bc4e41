"""``python -m benchmark status``: per suite, the cells done, failed and missing (from the cell files),
and the jobs last submitted for it (``run --executor local|slurm``): each one's state (Slurm's, with
the reason a task waits), how often it was requeued and why, its elapsed time, the cells of a job that
failed or was cancelled, and the last error line of its log."""

from __future__ import annotations

import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from .launch.records import JobRecord, Submission, logs_folder, read_submissions
from .results import CELLS_DIR
from .stale import current_definitions
from .suites import Cell, Suite

SHOWN = 10  # cells listed per kind before "... and N more"

# Slurm's job states (sacct, squeue), as status reports them; the others show Slurm's own word
SLURM_STATES = {
    "PENDING": "pending", "REQUEUED": "pending", "REQUEUE_HOLD": "pending", "REQUEUE_FED": "pending",
    "CONFIGURING": "pending", "RESIZING": "pending",
    "RUNNING": "running", "COMPLETING": "running", "SUSPENDED": "running", "STOPPED": "running",
    "SIGNALING": "running", "STAGE_OUT": "running",
    "COMPLETED": "done",
    "CANCELLED": "cancelled",
    "FAILED": "failed", "TIMEOUT": "failed", "NODE_FAIL": "failed", "OUT_OF_MEMORY": "failed",
    "PREEMPTED": "failed", "BOOT_FAIL": "failed", "DEADLINE": "failed",
}
STOPPED = re.compile(r"preempted by (SIG\w+) at (.+); checkpoint saved")  # benchmark.preemption's log line
# the lines of a job's log that say why it ended, best first: a Python exception, Slurm's own word
# ("*** JOB 12 ... CANCELLED ... DUE TO TIME LIMIT ***"), any other error line
ERROR_LINES = (re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Interrupt|Exit)\b(:.*)?$"),
               re.compile(r"\*\*\* .* \*\*\*"),
               re.compile(r"\berror\b", re.IGNORECASE))
LOG_TAIL = 64 * 1024


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


@dataclass
class JobView:
    """What status says of one job: its state word, a detail (why it waits or how it ended) and notes
    (elapsed time, restarts, where it stopped)."""

    state: str
    detail: str = ""
    notes: list[str] = field(default_factory=list)

    def text(self) -> str:
        return f"{self.state} ({self.detail})" if self.detail else self.state


def _result(folder: Path, job_id: str) -> tuple[str, object] | None:
    """The outcome submitit pickled when the job ended ("success", summary) or ("error", traceback)."""
    from submitit.core.utils import JobPaths, pickle_load

    path = JobPaths(folder, job_id, task_id=0).result_pickle
    if not path.exists():
        return None
    try:
        return pickle_load(path)
    except Exception:  # a result written by another submitit version, or half-read
        return ("unknown", None)


def _from_result(folder: Path, job_id: str) -> JobView | None:
    outcome = _result(folder, job_id)
    if outcome is None:
        return None
    kind, value = outcome
    if kind == "success":
        failed = value.get("failed", []) if isinstance(value, dict) else []
        return JobView("failed", f"{len(failed)} cells failed") if failed else JobView("done")
    return JobView("failed" if kind == "error" else "unknown")


def _local_view(folder: Path, record: JobRecord, task: object) -> JobView:
    # a local job's id is the pid of its submitit controller on this machine
    ended = _from_result(folder, record.job_id)
    if ended is not None:
        return ended
    if not record.job_id.isdigit():
        return JobView("unknown")
    if _pid_alive(int(record.job_id)):
        return JobView("running")
    return JobView("failed", "ended without a result: killed?")


def _slurm_view(folder: Path, record: JobRecord, task: object) -> JobView:
    from .launch.accounting import Task, format_elapsed

    if not isinstance(task, Task) or not task.state:  # sacct unreachable or not knowing the job
        return _from_result(folder, record.job_id) or JobView("unknown")
    word = SLURM_STATES.get(task.state, task.state.lower())
    view = JobView(word)
    if word == "pending":
        view.detail = task.reason
    elif word == "failed" and task.state != "FAILED":
        view.detail = task.state  # TIMEOUT, NODE_FAIL, OUT_OF_MEMORY...
    elif word == "failed" and task.runs:
        view.detail = f"exit {task.runs[-1].exit_code}"
    elif word == "done":  # Slurm's COMPLETED: the job's own summary may still list failed cells
        view = _from_result(folder, record.job_id) or view
    if word in ("failed", "cancelled"):
        ended = _from_result(folder, record.job_id)
        if ended is not None and ended.state == "done":  # killed after it had written its result
            view = JobView("done", f"Slurm: {task.state} after the job ended")
    if task.runs and word != "pending":
        view.notes.append(f"elapsed {format_elapsed(task.elapsed_s)}")
    if task.restarts:
        view.notes.append(f"requeued {len(task.restarts)}x ({', '.join(task.restarts)}), "
                          f"{format_elapsed(task.total_elapsed_s)} over {len(task.runs)} runs")
    return view


VIEWS = {"local": _local_view, "slurm": _slurm_view}


def job_state(executor: str, folder: Path, job_id: str) -> str:
    """pending / running / done / failed / cancelled (with a detail), or unknown when it cannot be read."""
    view = job_views(executor, Path(folder), [JobRecord(job_id, [], "", "")])[0]
    return view.text()


def job_views(executor: str, folder: Path, records: list[JobRecord]) -> list[JobView]:
    """Each job's view; Slurm's accounting is asked once for all of them."""
    try:
        import submitit  # noqa: F401  (the results and job paths are submitit's)
    except ImportError:
        return [JobView("unknown") for _ in records]
    reader = VIEWS.get(executor)
    if reader is None:
        return [JobView("unknown") for _ in records]
    tasks: dict[str, object] = {}
    if executor == "slurm":
        from .launch.accounting import AccountingError, read_tasks

        try:
            tasks = dict(read_tasks(r.job_id for r in records))
        except AccountingError:  # no sacct here: the result files alone
            tasks = {}
    views = []
    for record in records:
        try:
            views.append(reader(folder, record, tasks.get(record.job_id)))
        except Exception:  # a record or file this version cannot read: say so rather than guess
            views.append(JobView("unknown"))
    return views


def _log_tail(path: str) -> list[str]:
    try:
        with open(path, "rb") as log:
            log.seek(0, os.SEEK_END)
            log.seek(max(0, log.tell() - LOG_TAIL))
            return log.read().decode("utf-8", "replace").splitlines()
    except OSError:
        return []


def last_error_line(*paths: str) -> str:
    """The last line of the logs that says why the job ended (:data:`ERROR_LINES`, best kind first), else ""."""
    lines = [line.strip() for path in paths for line in _log_tail(path)]
    for pattern in ERROR_LINES:
        found = [line for line in lines if pattern.search(line)]
        if found:
            return found[-1]
    return ""


def last_stop(*paths: str) -> str:
    """Where the job last stopped on a signal with a checkpoint, from :mod:`benchmark.preemption`'s line."""
    stops = [m for path in paths for line in _log_tail(path) for m in [STOPPED.search(line)] if m]
    return f"last stopped by {stops[-1][1]} at {stops[-1][2]} (checkpoint saved)" if stops else ""


def _listed(label: str, cells: list[Cell]) -> list[str]:
    lines = [f"    {label:<8} {c.describe().rstrip()}" for c in cells[:SHOWN]]
    if len(cells) > SHOWN:
        lines.append(f"    ... and {len(cells) - SHOWN} more {label}")
    return lines


def describe_jobs(submission: Submission, earlier: int, cells: dict[str, Cell] | None = None) -> list[str]:
    """The lines of one submission's jobs; ``cells`` (by id) names the cells of a failed or cancelled job."""
    views = job_views(submission.executor, Path(submission.folder), submission.jobs)
    tally = Counter(view.state for view in views)
    lines = [f"  jobs ({submission.executor}, submitted {submission.submitted_at}): "
             + ", ".join(f"{n} {s}" for s, n in sorted(tally.items()))
             + (f"; {earlier} earlier submissions" if earlier else "")]
    indent = " " * 21
    for job, view in zip(submission.jobs, views, strict=True):
        notes = [*view.notes, *filter(None, [last_stop(job.stdout, job.stderr)])]
        lines.append(f"    job {job.job_id:<12} {view.text():<10} {len(job.cells)} cells"
                     + "".join(f"  {note}" for note in notes) + f"  log {job.stdout}")
        if view.state in ("failed", "cancelled"):
            held = [cells[c] for c in job.cells if cells and c in cells]
            lines += [f"{indent}cell {c.describe().rstrip()}" for c in held[:SHOWN]]
            if len(held) > SHOWN:
                lines.append(f"{indent}... and {len(held) - SHOWN} more cells")
            error = last_error_line(job.stderr, job.stdout)
            if error and view.state == "failed":
                lines.append(f"{indent}error: {error}")
            lines.append(f"{indent}errors: {job.stderr}")
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
        # submissions of a suite whose definition no longer loads (a suite file's dataset gone): jobs only
        unloadable = sorted({s.suite for s in submissions} - {suite.name for suite in suites})
        if not suites and not unloadable:
            return f"no cells or jobs under {results} yet; start with `python -m benchmark run`"
    else:
        unloadable = []

    def jobs_of(name: str, cells: dict[str, Cell] | None = None) -> list[str]:
        mine = [s for s in submissions if s.suite == name]
        return describe_jobs(mine[-1], len(mine) - 1, cells) if mine else []

    lines = []
    for suite in suites:
        name = suite.name
        lines += _count_lines(f"suite {name}", suite, results)
        for label, rehearsal in rehearsals_on_disk(results, suite):  # run --limit / --set beside it
            lines += _count_lines(f"suite {name}{label}", rehearsal, results)
        lines += jobs_of(name, {c.cell_id: c for c in suite.cells()})
    for name in unloadable:
        lines.append(f"suite {name}: its definition does not load now (a warning above says why); its cells "
                     "are not counted")
        lines += jobs_of(name)
    if submissions:
        lines.append(f"job records: {logs_folder(results) / 'jobs.json'}")
    return "\n".join(lines)
