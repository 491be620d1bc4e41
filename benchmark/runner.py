"""The local runner: a suite's cells, each made, probed and written as one Parquet file.

A synthetic set is made once per (dataset, method, distilling backbone, ipc, method seed), stored as an
artifact and reused by every evaluating backbone. Finished cells are skipped on the next run; a failing
cell records its error and the run goes on.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
import sys
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from . import preemption, provenance
from .artifacts import FOLDER as ARTIFACTS_FOLDER
from .artifacts import ArtifactKey, ArtifactStore
from .data.limit import limited
from .embedding import check_workers, default_workers
from .features import FeatureCache
from .hashing import canonical_json
from .launch.groups import in_dependency_order, missing_requirements, required_sets, set_key
from .launch.records import record_event
from .locks import held, try_hold
from .registry import BACKBONES, DATASETS, METHODS, PROBES
from .rehearsal import limit_text, overrides_text
from .results import InvalidCellFile, check_cell_file, read_rows, set_aside, write_cell
from .suites import Cell, Suite
from .types import Backbone, LabeledImages, RunContext, SyntheticSet

log = logging.getLogger(__name__)


def now() -> datetime:
    return datetime.now(timezone.utc)


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for but no CUDA device is visible; use --device cpu")
    return device


@dataclass
class RunSummary:
    total: int = 0
    skipped: int = 0
    ran: int = 0
    failed: list[str] = field(default_factory=list)
    made_sets: int = 0
    reused_sets: int = 0

    @property
    def ok(self) -> bool:
        return not self.failed


@dataclass
class Made:
    synset: SyntheticSet
    directory: Path
    cost: dict[str, Any]
    config: dict[str, Any]
    fresh: bool = False  # made by this run (not loaded from the store)


def cell_path(results: Path, cell: Cell) -> Path:
    return Path(results) / "cells" / cell.suite / f"{cell.cell_id}.parquet"


def checkpoint_dir(results: Path, cell: Cell) -> Path:
    """The cell's private directory for work in progress: the rows of finished probe seeds, and the
    probe's checkpoints (removed once the cell's file is written)."""
    return Path(results) / "checkpoints" / cell.suite / cell.cell_id


class PartialRows:
    """The rows of a cell's probe seeds finished so far, kept (atomically) until the cell's file is written."""

    FILENAME = "rows.parquet"

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.path = self.directory / self.FILENAME

    def load(self) -> dict[int, dict[str, Any]]:
        """Probe seed -> its row; nothing when there is no readable file."""
        if not self.path.exists():
            return {}
        try:
            frame = read_rows(self.path)
        except InvalidCellFile as err:
            log.warning("ignoring the kept probe rows %s (%s); those seeds run again", self.path, err)
            return {}
        return {int(row["probe_seed"]): row for row in frame.to_dict("records")}

    def save(self, rows: list[dict[str, Any]]) -> None:
        write_cell(self.path, rows)

    def clear(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)


@dataclass(frozen=True)
class CellFile:
    """What a cell's file says about the cell: ``done``, or why not. ``invalid``: the file is not this
    cell's (unreadable, another schema, another cell's or another config's rows); ``run`` sets it aside."""

    done: bool
    invalid: str = ""


def cell_file_state(results: Path, cell: Cell) -> CellFile:
    """Reads the cell's file only: no data, no backbone (a rerun of a finished suite stays fast)."""
    path = cell_path(results, cell)
    if not path.exists():
        return CellFile(done=False)
    try:
        frame = check_cell_file(path)
    except InvalidCellFile as err:
        return CellFile(done=False, invalid=str(err))
    stored = sorted(set(frame["config_hash"].fillna("")))
    if stored != [cell.config_hash]:
        return CellFile(done=False, invalid=f"its rows were made with other settings (config_hash "
                                            f"{', '.join(stored)}, expected {cell.config_hash})")
    if sorted(frame["probe_seed"]) != sorted(cell.probe_seeds):
        return CellFile(done=False, invalid=f"its probe seeds {sorted(frame['probe_seed'])} are not the "
                                            f"cell's {sorted(cell.probe_seeds)}")
    return CellFile(done=bool((frame["status"] == "ok").all()))  # a failed cell runs again


def is_done(results: Path, cell: Cell) -> bool:
    """A cell is done when its file holds one ok row per probe seed, made with the cell's settings
    (``config_hash``); anything else runs again."""
    return cell_file_state(results, cell).done


class Runner:
    """Runs a suite's cells on one device, writing ``<results>/cells/<suite>/<cell_id>.parquet``."""

    def __init__(self, suite: Suite, results: Path, device: torch.device | None = None,
                 progress: bool = True, features: FeatureCache | None = None, workers: int | None = None) -> None:
        self.suite = suite
        self.results = Path(results)
        self.device = device or resolve_device()
        self.progress = progress
        # image decode workers (None: from the CPU count); they never change a result, so no id holds them
        self.workers = default_workers() if workers is None else check_workers(workers)
        self.features = features or FeatureCache(progress=progress, workers=self.workers)
        self.store = ArtifactStore(self.results / ARTIFACTS_FOLDER)
        self._data: dict[str, tuple[LabeledImages, LabeledImages]] = {}
        self._backbones: dict[str, Backbone] = {}
        self._sets: dict[str, Made] = {}
        self.summary = RunSummary()

    # -- lazily built inputs -----------------------------------------------------------------------
    def data(self, name: str) -> tuple[LabeledImages, LabeledImages]:
        if name not in self._data:
            spec = DATASETS.get(name)
            # a rehearsal's rows of each split (run --limit; benchmark.data.limit), else the splits
            self._data[name] = (limited(spec.load("train"), self.suite.limit),
                                limited(spec.load("test"), self.suite.limit))
        return self._data[name]

    def backbone(self, name: str) -> Backbone:
        if name not in self._backbones:
            options = self.suite.backbone_options.get(name, {})
            self._backbones[name] = BACKBONES.get(name).build(device=self.device, **options).to(self.device)
        return self._backbones[name]

    def method(self, name: str, dataset: str) -> Any:
        return METHODS.get(name)(**self.suite.options_for(name, dataset))

    def artifact_key(self, dataset: str, method_name: str, backbone: str, ipc: int, seed: int) -> ArtifactKey:
        train, _ = self.data(dataset)
        identity = self.backbone(backbone).identity.key() if backbone else None
        config = self.method(method_name, dataset).config()
        return ArtifactKey(dataset, train.fingerprint, config, backbone, identity, ipc, seed)

    def context(self, directory: Path, dataset: str, backbone: str, ipc: int, seed: int) -> RunContext:
        def load_synthetic(other: str) -> SyntheticSet | None:
            found = self.store.load(self.artifact_key(dataset, other, backbone, ipc, seed))
            return found[0] if found else None

        return RunContext(device=self.device, features=self.features, artifact_dir=directory,
                          load_synthetic=load_synthetic, progress=self.progress, workers=self.workers)

    def synthetic(self, cell: Cell) -> Made:
        """The cell's set: from this run's memory, from the artifact store, or made now and stored."""
        key = self.artifact_key(cell.dataset, cell.method, cell.distill_backbone, cell.ipc, cell.method_seed)
        if key.digest in self._sets:
            return self._sets[key.digest]
        directory = self.store.directory(key)
        found = self.store.load(key)
        if found is None:  # one maker across processes; the others wait, then load what it stored
            with held(directory, f"the {cell.method} set {directory}"):
                found = self.store.load(key)
                if found is None:
                    made = self._make(cell, key, directory)
        if found is not None:
            synset, meta = found
            made = Made(synset, directory, meta.get("cost", {}), key.method_config)
            self.summary.reused_sets += 1
        self._sets[key.digest] = made
        return made

    def _make(self, cell: Cell, key: ArtifactKey, directory: Path) -> Made:
        """Make the cell's set and store it (the caller holds the set's lock)."""
        train, _ = self.data(cell.dataset)
        backbone = self.backbone(cell.distill_backbone) if cell.distill_backbone else None
        ctx = self.context(directory, cell.dataset, cell.distill_backbone, cell.ipc, cell.method_seed)
        directory.mkdir(parents=True, exist_ok=True)
        method = self.method(cell.method, cell.dataset)
        with provenance.measure(self.device) as cost:
            synset = method.synthesize(train, backbone, cell.ipc, cell.method_seed, ctx)
        cost_dict = dataclasses.asdict(cost)
        self.store.save(key, synset, cost_dict)
        record_event(self.results, "set_made", set=str(directory.relative_to(self.store.root)), cell=cell.cell_id)
        self.summary.made_sets += 1
        return Made(synset, directory, cost_dict, key.method_config, fresh=True)

    # -- one cell ----------------------------------------------------------------------------------
    def run_cell(self, cell: Cell) -> list[dict[str, Any]]:
        """The cell's rows, one per probe seed. Each seed's row is kept in the cell's checkpoint directory
        as soon as its fit ends, so a run killed or preempted part-way redoes only the seeds not done (and a
        seed's head training resumes from its own checkpoint, where the probe keeps one)."""
        started = now()
        base = self.base_row(cell, started)
        try:
            train, test = self.data(cell.dataset)
            made = self.synthetic(cell)
            backbone = self.backbone(cell.eval_backbone)
            protocol = PROBES.get(cell.protocol)(**self.suite.protocol_options.get(cell.protocol, {}))
            partial = PartialRows(checkpoint_dir(self.results, cell))
            if made.fresh:  # rows kept for an earlier set of these coordinates are not this set's
                partial.clear()
            ctx = dataclasses.replace(
                self.context(made.directory, cell.dataset, cell.distill_backbone, cell.ipc, cell.method_seed),
                checkpoint_dir=partial.directory)
            base.update(self.provenance_of(cell, made, protocol.config(), train, test, backbone))
            kept = partial.load()
            rows = [kept[seed] for seed in cell.probe_seeds if seed in kept]
            todo = [seed for seed in cell.probe_seeds if seed not in kept]
            if rows:
                log.info("cell %s: %d of %d probe seeds already done", cell.cell_id, len(rows), len(cell.probe_seeds))
            n = len(cell.probe_seeds)
            with provenance.measure(self.device) as wall:  # the probe alone: prepare, then each seed's fit
                if todo:
                    with provenance.measure(self.device) as prep:
                        prepared = protocol.prepare(made.synset, train, test, backbone, ctx)
                for seed in todo:
                    with provenance.measure(self.device) as fit:
                        result = protocol.fit(prepared, seed)
                    rows.append({**base, "probe_seed": seed, "top1": result.top1, "top5": result.top5,
                                 "worst_group_top1": result.extra.get("worst_group_top1", float("nan")),
                                 "probe_extra": canonical_json(result.extra),
                                 # this seed's share of the cell's probe time: its fit + 1/n of the shared prepare
                                 "eval_seconds": prep.seconds / n + fit.seconds,
                                 "eval_gpu_seconds": prep.gpu_seconds / n + fit.gpu_seconds,
                                 "eval_peak_mem_bytes": max(prep.peak_mem_bytes, fit.peak_mem_bytes),
                                 "probe_prepare_seconds": prep.seconds, "probe_fit_seconds": fit.seconds,
                                 "probe_data_wait_seconds": getattr(prepared, "data_wait_seconds", float("nan")),
                                 "status": "ok", "error": "", "finished_at": now()})
                    partial.save(rows)
            # the whole probe's time: this run's, and the fits of seeds an earlier run finished
            earlier = sum(float(r["probe_fit_seconds"]) for r in rows[:len(rows) - len(todo)])
            order = {seed: k for k, seed in enumerate(cell.probe_seeds)}
            return sorted(({**r, "probe_wall_seconds": wall.seconds + earlier} for r in rows),
                          key=lambda r: order[r["probe_seed"]])
        # a preemption (benchmark.preemption.Preempted) is no Exception: it passes, the cell is not failed
        except Exception as err:  # one broken cell must not stop the grid; its row says why
            log.debug("cell %s failed", cell.cell_id, exc_info=True)
            message = f"{type(err).__name__}: {err}"
            tail = traceback.format_exc(limit=-3)
            return [{**base, "probe_seed": seed, "status": "error", "error": f"{message}\n{tail}",
                     "finished_at": now()} for seed in cell.probe_seeds]

    def base_row(self, cell: Cell, started: datetime) -> dict[str, Any]:
        nan = float("nan")
        return {
            "suite": cell.suite, "dataset": cell.dataset, "method": cell.method,
            "distill_backbone": cell.distill_backbone, "eval_backbone": cell.eval_backbone, "ipc": cell.ipc,
            "method_seed": cell.method_seed, "protocol": cell.protocol, "top1": nan, "top5": nan,
            "worst_group_top1": nan, "device": str(self.device),
            **provenance.device_info(self.device.type, self.device.index), "decode_workers": self.workers,
            "cell_id": cell.cell_id,
            "config_hash": cell.config_hash,
            "git_sha": provenance.git_sha(), "versions": provenance.versions(), "started_at": started,
            "limit": limit_text(self.suite.limit), "overrides": overrides_text(self.suite.overrides),
        }

    def provenance_of(self, cell: Cell, made: Made, probe_config: dict[str, Any], train: LabeledImages,
                      test: LabeledImages, backbone: Backbone) -> dict[str, Any]:
        distill = self.backbone(cell.distill_backbone).identity if cell.distill_backbone else None
        fields = {
            "n_train": len(made.synset),
            "distill_seconds": made.cost.get("seconds", float("nan")),
            "distill_gpu_seconds": made.cost.get("gpu_seconds", float("nan")),
            "distill_peak_mem_bytes": made.cost.get("peak_mem_bytes", 0),
            "distill_data_wait_seconds": made.synset.metadata.get("real_wait_seconds", float("nan")),
            "method_config": canonical_json(made.config), "probe_config": canonical_json(probe_config),
            "artifact": str(made.directory),
            "distill_weight_id": distill.weight_id if distill else "",
            "distill_weight_sha256": distill.weight_sha256 if distill else "",
            "eval_weight_id": backbone.identity.weight_id, "eval_weight_sha256": backbone.identity.weight_sha256,
            "eval_input_size": backbone.input_size,
            "distill_backbone_identity": canonical_json(distill.key()) if distill else "",
            "eval_backbone_identity": canonical_json(backbone.identity.key()),
            "train_fingerprint": train.fingerprint, "test_fingerprint": test.fingerprint,
            "dataset_revision": train.revision or "",
            "test_realigned_from": canonical_json(list(test.realigned_from)) if test.realigned_from else "",
        }
        return fields

    # -- the grid ----------------------------------------------------------------------------------
    def run(self, cells: Sequence[Cell] | None = None, alignment: bool = True) -> RunSummary:
        """Run the suite's cells (``cells``: only these, e.g. one job's share), each cell after the cells
        making the sets it requires (``Method.requires``). Another process on the same results directory
        running a cell (it holds the cell's lock) is left to it: that cell, and those reading its set, are
        taken up at the end, when they are usually done. ``alignment``: also measure the suite's
        backbone alignment (a suite split into jobs measures it in one of them)."""
        cells = in_dependency_order(self.suite.cells() if cells is None else list(cells))
        self.summary = RunSummary(total=len(cells))
        pending = [c for c in cells if not self._done(c)]
        self.summary.skipped = len(cells) - len(pending)
        if not pending:
            print(f"All {len(cells)} cells of suite {self.suite.name!r} are already in {self.results}: "
                  "nothing to train or probe.")
            if self.suite.alignment and alignment:
                self.measure_alignment(only_missing=True)
            return self.summary
        if self.summary.skipped:
            print(f"Resuming: {self.summary.skipped} of {len(cells)} cells already done, {len(pending)} to run.")
        for method, lacking in missing_requirements(cells).items():
            print(f"note: {method} reads the sets of {', '.join(lacking)}, which this run does not make: its "
                  f"cells use those already stored under {self.store.root} or fail saying what is missing",
                  file=sys.stderr)
        bar = tqdm(pending, desc=f"suite {self.suite.name}", unit="cell", disable=not self.progress)
        later: list[Cell] = []
        busy: set[tuple] = set()  # sets another process is making or probing right now
        for cell in bar:
            bar.set_postfix_str(cell.describe())
            if set_key(cell) in busy or busy.intersection(required_sets(cell)):
                later.append(cell)
                continue
            lock = try_hold(cell_path(self.results, cell))
            if lock is None:  # another process runs this cell: do other work first
                later.append(cell)
                busy.add(set_key(cell))
                continue
            try:
                self._run_locked(cell)
            finally:
                lock.release()
        for cell in later:
            with held(cell_path(self.results, cell), f"cell {cell.cell_id}"):
                self._run_locked(cell)
        if self.suite.alignment and alignment:
            self.measure_alignment()
        return self.summary

    def _run_locked(self, cell: Cell) -> None:
        """Run and write one cell, under its lock: skipped when another process finished it meanwhile."""
        if self._done(cell):
            self.summary.skipped += 1
            return
        preemption.checkpoint_point(lambda: None, f"cell {cell.cell_id}")  # between cells: nothing to save
        rows = self.run_cell(cell)
        write_cell(cell_path(self.results, cell), rows)
        if rows[0]["status"] == "ok":  # the cell's file holds everything its checkpoints held
            PartialRows(checkpoint_dir(self.results, cell)).clear()
        record_event(self.results, "cell_written", cell=cell.cell_id, status=rows[0]["status"])
        self.summary.ran += 1
        if rows[0]["status"] != "ok":
            self.summary.failed.append(f"{cell.cell_id}: {rows[0]['error'].splitlines()[0]}")
            tqdm.write(f"cell failed: {cell.describe()}\n  {rows[0]['error'].splitlines()[0]}")

    def _done(self, cell: Cell) -> bool:
        """Whether the cell is done; a file that is not this cell's is moved aside (kept as ``*.bad``)."""
        state = cell_file_state(self.results, cell)
        if state.invalid:
            path = cell_path(self.results, cell)
            bad = set_aside(path)
            print(f"warning: {path}: {state.invalid}; moved to {bad.name}, the cell runs again", file=sys.stderr)
        return state.done

    def measure_alignment(self, only_missing: bool = False) -> None:
        """Mutual-kNN alignment of every pair of the suite's backbones on each dataset's test split."""
        from .mutual_knn import DEFAULT_K, alignment_path, compute_alignment, write_alignment

        if len(self.suite.backbones) < 2:
            return
        for dataset in self.suite.datasets:
            if only_missing and alignment_path(self.results, dataset).exists():
                continue
            try:
                _, test = self.data(dataset)
                backbones = {b: self.backbone(b) for b in self.suite.backbones}
                k = min(DEFAULT_K, len(test) - 1)  # tiny splits (fixtures) cannot have 10 neighbours
                frame = compute_alignment(test, backbones, self.features, k=k)
                write_alignment(frame, self.results)
            except Exception as err:  # alignment is a side measurement: report it, keep the run's status
                tqdm.write(f"alignment on {dataset} failed: {type(err).__name__}: {err}")


def describe_plan(suite: Suite, results: Path, device: torch.device | None = None,
                  workers: int | None = None) -> str:
    """The dry-run text: every cell and whether it is done, what it needs, and an estimate of the work
    (from ``device``'s calibration when there is one, with ``workers`` decode workers)."""
    from .plan import describe_plan as plan

    return plan(suite, Path(results), is_done, device, workers=workers)
