"""The callable a submitit job runs: a :class:`~benchmark.runner.Runner` over its share of a suite's cells.

Imported only when a submitit executor is asked for (it subclasses submitit's ``Checkpointable``).
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from submitit.helpers import Checkpointable

from ..suites import Suite
from .cpus import allotted_cpus, workers_for

# the executors whose job processes are ours alone: there the job takes the preemption signals over
JOB_EXECUTORS = ("slurm", "local")


def job_logging() -> None:
    """Our INFO lines (an LGM resume, a preemption) in the job's log (stderr), timed like submitit's;
    other libraries' loggers are left as they are."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    for name in ("benchmark", "method", "baselines"):
        logger = logging.getLogger(name)
        if not logger.handlers:
            logger.addHandler(handler)
            logger.setLevel(logging.INFO)
            logger.propagate = False


@dataclass
class CellsJob(Checkpointable):
    """Run the cells ``cell_ids`` of ``suite`` into ``results`` on ``device`` (resolved in the job, on
    the machine that runs it). On a preemption or time-limit signal, LGM saves its checkpoint at the end
    of the step (:mod:`benchmark.preemption`) and submitit requeues the job (:meth:`checkpoint`): the
    rerun skips the cells already written and LGM resumes from that checkpoint."""

    suite: Suite
    results: Path
    cell_ids: tuple[str, ...]
    device: str = "auto"
    alignment: bool = False  # measure the suite's backbone alignment (one job of a suite does)
    threads: int = 0  # torch intra-op threads; 0: the CPUs this job got
    workers: int | None = None  # image decode workers; None: from the CPUs this job got

    def __call__(self) -> dict[str, Any]:
        import torch

        from .. import preemption
        from ..runner import Runner, resolve_device

        if os.environ.get("SUBMITIT_EXECUTOR") in JOB_EXECUTORS:  # not in a debug job, in-process
            job_logging()
            preemption.install()
        cpus = allotted_cpus()
        threads = self.threads or cpus
        workers = self.workers if self.workers is not None else workers_for(cpus)
        print(f"job: {cpus} CPUs: {threads} torch threads, {workers} decode workers", flush=True)
        wanted = set(self.cell_ids)
        cells = [c for c in self.suite.cells() if c.cell_id in wanted]
        lost = wanted - {c.cell_id for c in cells}
        if lost:  # a reference that stopped resolving (a dataset folder gone) says why; else the suite changed
            self.check_references()
            raise RuntimeError(f"{len(lost)} cells of this job are not cells of suite {self.suite.name!r} any "
                               f"more (its definition changed since submission); submit the suite again")
        before = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            runner = Runner(self.suite, Path(self.results), device=resolve_device(self.device), progress=False,
                            workers=workers)
            summary = runner.run(cells, alignment=self.alignment)
        except preemption.Preempted as stop:  # its checkpoint is saved: requeue the job, the rerun resumes
            print(f"{stop}; requeueing this job", flush=True)
            preemption.hand_over()  # submitit: checkpoint this job object, requeue, exit
            raise  # no submitit to requeue it: the process ends, the cell is not recorded as failed
        finally:
            torch.set_num_threads(before)
        preemption.stand_down()  # the cells are written: a signal now must not kill the exit
        print(f"{summary.ran} cells run, {summary.skipped} skipped, {len(summary.failed)} failed; "
              f"{summary.made_sets} sets made, {summary.reused_sets} reused", flush=True)
        return asdict(summary)

    def check_references(self) -> None:
        """Resolve the suite's datasets and backbones again; one that no longer resolves raises its own
        error (``dataset 'folder:...': directory not found``), which the job's log then ends with."""
        from ..registry import BACKBONES, DATASETS

        for name in self.suite.datasets:
            DATASETS.get(name)
        for name in {*self.suite.backbones, *(self.suite.distill_backbones or [])}:
            BACKBONES.get(name)
