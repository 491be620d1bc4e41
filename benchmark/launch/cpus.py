"""How many CPUs a job asks for and how it spreads the ones it got: one main process running the
backbone (torch intra-op threads = the job's CPUs) and up to ``MAX_DEFAULT_WORKERS`` image decode
workers (one fewer than the CPUs). None of it changes a result."""

from __future__ import annotations

import os
from collections.abc import Mapping

from ..embedding import MAX_DEFAULT_WORKERS


def affinity_cpus() -> int:
    """The CPUs this process may run on (its affinity mask where the OS has one)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def allotted_cpus(environ: Mapping[str, str] | None = None) -> int:
    """The CPUs this job got: Slurm's ``SLURM_CPUS_PER_TASK`` (without task binding Slurm leaves the
    affinity mask at the whole node), else the affinity mask."""
    environ = os.environ if environ is None else environ
    given = environ.get("SLURM_CPUS_PER_TASK", "").strip()
    return int(given) if given.isdigit() and int(given) > 0 else affinity_cpus()


def workers_for(cpus: int) -> int:
    """Decode workers beside the main process on ``cpus`` CPUs: ``cpus - 1``, at most the default cap."""
    return min(MAX_DEFAULT_WORKERS, max(0, cpus - 1))


# the decode workers a Slurm task asks CPUs for when --workers is not given: a GPU's usual share of a
# node's cores; the task then uses every CPU it got (up to MAX_DEFAULT_WORKERS workers)
SLURM_DEFAULT_WORKERS = 8


def slurm_cpus(workers: int | None) -> int:
    """The CPUs a Slurm task asks for by default: its decode workers (``--workers``, else
    :data:`SLURM_DEFAULT_WORKERS`) and the main process."""
    return (SLURM_DEFAULT_WORKERS if workers is None else workers) + 1


def share(total: int, jobs: int) -> int:
    """Each of ``jobs`` local processes' share of ``total`` CPUs (at least one)."""
    return max(1, total // max(1, jobs))
