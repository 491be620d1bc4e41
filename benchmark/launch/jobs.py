"""The callable a submitit job runs: a :class:`~benchmark.runner.Runner` over its share of a suite's cells.

Imported only when a submitit executor is asked for (it subclasses submitit's ``Checkpointable``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from submitit.helpers import Checkpointable

from ..suites import Suite


@dataclass
class CellsJob(Checkpointable):
    """Run the cells ``cell_ids`` of ``suite`` into ``results`` on ``device`` (resolved in the job, on
    the machine that runs it). Preempted or out of time, submitit calls :meth:`checkpoint`, which
    requeues the same job: the run then skips the cells already written and LGM resumes from the
    checkpoint in its set's artifact directory."""

    suite: Suite
    results: Path
    cell_ids: tuple[str, ...]
    device: str = "auto"
    alignment: bool = False  # measure the suite's backbone alignment (one job of a suite does)
    threads: int = 0  # torch intra-op threads; 0: torch's default
    workers: int | None = None  # image decode workers; None: from the CPUs this job may use

    def __call__(self) -> dict[str, Any]:
        import torch

        from ..runner import Runner, resolve_device

        if self.threads:
            torch.set_num_threads(self.threads)
        wanted = set(self.cell_ids)
        cells = [c for c in self.suite.cells() if c.cell_id in wanted]
        lost = wanted - {c.cell_id for c in cells}
        if lost:  # the suite's definition changed between submission and run: those ids are no cells now
            raise RuntimeError(f"{len(lost)} cells of this job are not cells of suite {self.suite.name!r} any "
                               f"more (its definition changed since submission); submit the suite again")
        runner = Runner(self.suite, Path(self.results), device=resolve_device(self.device), progress=False,
                        workers=self.workers)
        summary = runner.run(cells, alignment=self.alignment)
        print(f"{summary.ran} cells run, {summary.skipped} skipped, {len(summary.failed)} failed; "
              f"{summary.made_sets} sets made, {summary.reused_sets} reused", flush=True)
        return asdict(summary)
