"""Cross-process locks on the shared results and cache directories (``filelock``).

Concurrent runs (two ``run`` commands, or the jobs of one ``run --executor local|slurm``) coordinate
through one lock file per thing that must be made once: a synthetic set, a feature-cache entry, a cell
file. The first process to take the lock makes the thing; the others wait, then find it made. The lock
files are hidden (``.<name>.lock`` beside what they guard), so results scanning never reads them, and
they are left in place: removing a lock file while another process waits on it would let a third
process lock a new file of the same name (README.md, "Running on a Slurm cluster").

On Unix ``filelock`` uses ``flock``, which the kernel releases when the holder dies (a killed or
preempted job never leaves a stale lock). On NFS, Linux maps ``flock`` onto NFS byte-range locks.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

log = logging.getLogger(__name__)

LOCK_SUFFIX = ".lock"


def lock_path(target: Path) -> Path:
    """The lock file that guards ``target`` (a file or a directory): ``.<name>.lock`` beside it."""
    target = Path(target)
    return target.with_name(f".{target.name}{LOCK_SUFFIX}")


def is_lock_file(path: Path) -> bool:
    name = Path(path).name
    return name.startswith(".") and name.endswith(LOCK_SUFFIX)


def file_lock(target: Path) -> FileLock:
    path = lock_path(target)
    path.parent.mkdir(parents=True, exist_ok=True)
    return FileLock(path)


@contextmanager
def held(target: Path, what: str) -> Iterator[None]:
    """Hold ``target``'s lock, waiting as long as another process holds it (it is making ``what``;
    that can take hours for an LGM set, so there is no time limit), and say so while waiting."""
    lock = file_lock(target)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        log.warning("waiting for another process making %s (lock %s)", what, lock.lock_file)
        lock.acquire()
    try:
        yield
    finally:
        lock.release()


def try_hold(target: Path) -> FileLock | None:
    """``target``'s lock, taken now, or None when another process holds it; release it when done."""
    lock = file_lock(target)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        return None
    return lock
