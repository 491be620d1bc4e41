"""The preflight: what a run can know at its start, checked before the first cell, in seconds.

``run`` performs it before any work, ``run --check`` and ``status --check`` perform it alone. It checks
what the cells still to run need (all of a suite's cells on a fresh results directory), one check per
kind, in the order of :data:`CHECKS` (each a class registered with :func:`preflight_check`):

* ``options``: every method's and probe's options build (their dataclasses, each value of the type its
  field needs, ``checks.build_options``);
* ``dataset``: each dataset opens, has its train and test splits, its image and label columns, its
  classes (the test split the train split's) and labels in range (``DatasetSpec.checked``: no content
  fingerprint, which the run computes);
* ``ipc``: every class has at least as many training images as the largest ipc asked of it;
* ``images``: on a dataset read from local files (``folder:``, ``parquet:``, a local mirror), the stored
  images open: every image fully decoded (and converted to RGB) in splits of up to
  :data:`FULL_DECODE_MAX_ROWS` rows, every image's header and structure checked (PIL ``verify``) in
  splits of up to :data:`HEADER_CHECK_MAX_ROWS`, and :data:`HEADER_SAMPLE_ROWS` evenly spaced ones in
  bigger splits (ImageNet's 1.28M would take longer than the minute a preflight may); the others get
  their full check when the run first decodes them (``ImageDecodeError``, naming the file). Bundled
  and Hub datasets are not read image by image here;
* ``backbone``: its options are ones its entry accepts, the weights are on this machine and load strictly
  into the architecture, finite, and a forward pass at the input size gives finite features (built on
  the CPU, then dropped). Weights not on
  this machine are an error offline (``HF_HUB_OFFLINE``, with the file and the command that fetches it)
  and, online, are noted as downloaded when the first cell needs them (nothing is downloaded here);
* ``disk``: the free space under the cache and the results directory covers what the run will write
  (:func:`disk_need`).

A rehearsal (``run --limit``) is checked on the rows its limit keeps, the ones it will read: its ipc
against those, its images among those.

Each check adds rows to a short table (:meth:`PreflightReport.table`); each problem is one line. The
preflight writes nothing under the results directory.
"""

from __future__ import annotations

import os
import shutil
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch

from .registry import BACKBONES, DATASETS, METHODS, PROBES
from .rehearsal import limit_label
from .suites import Cell, Suite

FULL_DECODE_MAX_ROWS = 2000  # splits up to this size are decoded in full; bigger ones get a header check
HEADER_CHECK_MAX_ROWS = 50_000  # of bigger splits, evenly spaced rows are header-checked
HEADER_SAMPLE_ROWS = 4096
_DETAIL_WIDTH = 110  # characters of a result shown in the table (a problem's whole line goes to stderr)


@dataclass(frozen=True)
class Finding:
    """One row of the table: what was checked, on what, and what came out (``problem``: the one-line
    error when it failed)."""

    check: str
    subject: str
    result: str
    problem: str = ""

    @property
    def ok(self) -> bool:
        return not self.problem


@dataclass
class Preflight:
    """What the checks share: the suite, the cells to check, and what earlier checks found."""

    suite: Suite
    cells: list[Cell]
    results: Path
    progress: bool = False
    # name -> split -> LabeledImages, checked but not fingerprinted (the run computes the fingerprint)
    datasets: dict[str, dict[str, Any]] = field(default_factory=dict)
    feature_dims: dict[str, int] = field(default_factory=dict)  # backbones that built -> feature dim

    @property
    def dataset_names(self) -> list[str]:
        return list(dict.fromkeys(c.dataset for c in self.cells))

    @property
    def backbone_names(self) -> list[str]:
        names = [b for c in self.cells for b in (c.distill_backbone, c.eval_backbone) if b]
        return list(dict.fromkeys(names))

    @property
    def method_names(self) -> list[str]:
        return list(dict.fromkeys(c.method for c in self.cells))


class Check(ABC):
    """One kind of check; :meth:`run` yields a finding per thing it checked."""

    kind: ClassVar[str]

    @abstractmethod
    def run(self, pre: Preflight) -> Iterable[Finding]:
        ...


CHECKS: list[Check] = []


def preflight_check(cls: type[Check]) -> type[Check]:
    """Register a check; they run in the order registered (datasets before what needs them)."""
    CHECKS.append(cls())
    return cls


def _one_line(err: BaseException, kind: str, subject: str) -> str:
    """The error's first line; prefixed with what failed (and the error's type) unless it names it."""
    text = str(err).strip()
    line = text.splitlines()[0] if text else ""
    if subject in line:
        return line
    return f"{kind} {subject!r}: {line}" if isinstance(err, ValueError) and line else \
        f"{kind} {subject!r}: {type(err).__name__}: {line}"


def _short(text: str) -> str:
    return text if len(text) <= _DETAIL_WIDTH else text[:_DETAIL_WIDTH - 3] + "..."


def _failed(kind: str, subject: str, problem: str) -> Finding:
    return Finding(kind, subject, f"FAILED: {problem}", problem)


# -- the checks --------------------------------------------------------------------------------------
@preflight_check
class OptionsCheck(Check):
    """Method and probe options, built as the run builds them (no data, no weights); backbone options
    are checked with their backbone."""

    kind = "options"

    def run(self, pre: Preflight) -> Iterable[Finding]:
        from .checks import build_options

        suite = pre.suite
        built: dict[str, list[str]] = {"methods": [], "probe": []}
        owners = [(METHODS, "methods", m, d, suite.options_for(m, d))
                  for m, d in dict.fromkeys((c.method, c.dataset) for c in pre.cells)]
        owners += [(PROBES, "probe", p, "", suite.protocol_options.get(p, {}))
                   for p in dict.fromkeys(c.protocol for c in pre.cells)]
        for registry, group, name, dataset, options in owners:
            try:
                build_options(registry.get(name), options, f"{registry.kind} {name!r}")
            except ValueError as err:
                yield _failed(self.kind, f"{registry.kind} {name}" + (f" on {dataset}" if dataset else ""),
                              _one_line(err, registry.kind, name))
            else:
                built[group].append(name)
        for group, names in built.items():
            if names:
                yield Finding(self.kind, group, "ok: " + ", ".join(dict.fromkeys(names)))


@preflight_check
class DatasetCheck(Check):
    """Each dataset's splits, columns, classes and labels (what ``DatasetSpec.load`` checks)."""

    kind = "dataset"

    def run(self, pre: Preflight) -> Iterable[Finding]:
        from .types import LabeledImages

        for name in pre.dataset_names:
            spec = DATASETS.get(name)
            try:
                splits = {split: spec.checked(split) for split in ("train", "test")}
            except Exception as err:  # noqa: BLE001 - DatasetError, datasets' own errors, OSError: one line each
                yield _failed(self.kind, name, _one_line(err, "dataset", name))
                continue
            resolved = spec.resolved()
            pre.datasets[name] = {
                split: LabeledImages(name=name, split=split, dataset=c.dataset, class_names=c.class_names,
                                     fingerprint="", image_column=resolved.image_column,
                                     label_column=resolved.label_column, group_column=resolved.group_column)
                for split, c in splits.items()}
            if pre.suite.limit is not None:  # a rehearsal reads only its rows (run --limit): check those
                pre.datasets[name] = {split: _limited(data, pre.suite.limit)
                                      for split, data in pre.datasets[name].items()}
            train, test = pre.datasets[name]["train"], pre.datasets[name]["test"]
            kept = f" kept by --limit {limit_label(pre.suite.limit)}" if pre.suite.limit is not None else ""
            yield Finding(self.kind, name, f"ok: {train.num_classes} classes, {len(train)} train / {len(test)} test "
                                           f"rows{kept} ({resolved.source.describe()})")


def _limited(data: Any, limit: Any) -> Any:
    """``data`` narrowed to the rows a limit keeps (``benchmark.data.limit``), without the fingerprint the
    run takes of them."""
    import dataclasses

    from .data.limit import limited_rows

    rows = limited_rows(data.labels.numpy(), limit)
    return dataclasses.replace(data, dataset=data.dataset.select(rows), _labels=None)


@preflight_check
class IpcCheck(Check):
    """Every class has as many training images as the largest ipc a cell asks of it."""

    kind = "ipc"

    def run(self, pre: Preflight) -> Iterable[Finding]:
        for name, splits in pre.datasets.items():
            ipcs = [c.ipc for c in pre.cells if c.dataset == name and METHODS.get(c.method).uses_ipc]
            if not ipcs:
                continue
            train = splits["train"]
            counts = torch.bincount(train.labels, minlength=train.num_classes)
            smallest = int(counts.argmin())
            need, have = max(ipcs), int(counts[smallest])
            kept, more = ("", "") if pre.suite.limit is None else (
                f" --limit {limit_label(pre.suite.limit)} keeps", ", or raise --limit")
            if need > have:
                yield _failed(self.kind, f"{name} ipc {need}",
                              f"ipc {need} is more than the {have} training images{kept} of class "
                              f"{train.class_names[smallest]!r}, the smallest class of {name!r}; use --ipc {have} "
                              f"or less (or drop that ipc from the suite{more})")
            else:
                yield Finding(self.kind, f"{name} ipc {need}", f"ok: the smallest class has {have} images")


def _checks_images(spec: Any) -> bool:
    """Images are read one by one only from local files (a folder, parquet files, a local mirror)."""
    source = spec.resolved().source
    return bool(getattr(source, "is_local", False)) and getattr(source, "kind", "") != "embedded"


@preflight_check
class ImagesCheck(Check):
    """Every stored image of a local dataset opens (in full, or its header in big splits)."""

    kind = "images"

    def run(self, pre: Preflight) -> Iterable[Finding]:
        from tqdm.auto import tqdm

        from .data.decode import check_image, decode_error, stored_values
        from .data.fingerprint import sample_rows

        for name, splits in pre.datasets.items():
            if not _checks_images(DATASETS.get(name)):
                continue
            for split, data in splits.items():
                n = len(data)
                full = n <= FULL_DECODE_MAX_ROWS
                rows = list(range(n)) if n <= HEADER_CHECK_MAX_ROWS else sample_rows(n, HEADER_SAMPLE_ROWS)
                bad: list[tuple[int, Exception]] = []
                values = stored_values(data.dataset, data.image_column, rows)
                for row, value in zip(rows, tqdm(values, total=len(rows), desc=f"preflight images {name}/{split}",
                                                 unit="img", leave=False, disable=not pre.progress), strict=True):
                    try:
                        check_image(value, full)
                    except Exception as err:  # noqa: BLE001 - whatever PIL raises for this file
                        bad.append((row, err))
                how = "decoded" if full else "header-checked"
                if bad:
                    first = decode_error(data, *bad[0])
                    more = f" ({len(bad)} of {len(rows)} images fail; this is the first)" if len(bad) > 1 else ""
                    yield _failed(self.kind, f"{name} {split}", f"{first}{more}")
                elif len(rows) < n:
                    yield Finding(self.kind, f"{name} {split}", f"ok: {len(rows)} of {n} images (evenly spaced) "
                                                                f"{how}, the others when first decoded")
                else:
                    yield Finding(self.kind, f"{name} {split}", f"ok: {n} images {how}")


@preflight_check
class BackboneCheck(Check):
    """Weights present (or, online, downloadable later), loading strictly, finite; a forward pass."""

    kind = "backbone"

    def run(self, pre: Preflight) -> Iterable[Finding]:
        from .backbones.paper import hub_offline
        from .checks import check_finite

        for name in pre.backbone_names:
            spec = BACKBONES.get(name)
            options = pre.suite.backbone_options.get(name, {})
            try:
                spec.check_options(options)
                local = "weights" in options or spec.weights_available()
                if not local and not hub_offline():
                    yield Finding(self.kind, name, "weights not on this machine: downloaded when the first cell "
                                                   "needs them")
                    continue
                backbone = spec.build(device="cpu", **options)  # offline and missing: the entry's message
                size = backbone.input_size
                with torch.no_grad():  # a forward at the input size: shape errors and asserts of the library
                    grey = torch.full((1, 3, size, size), 0.5)
                    check_finite(backbone.embed(grey), f"features of {name} at {size} px")
            except Exception as err:  # noqa: BLE001 - missing weights, strict-load and shape errors, timm asserts
                yield _failed(self.kind, name, _one_line(err, "backbone", name))
                continue
            pre.feature_dims[name] = int(backbone.feature_dim)
            yield Finding(self.kind, name, f"ok: {size} px, {backbone.feature_dim}-d features, weights "
                                           f"{backbone.identity.weight_id}")
            del backbone


@preflight_check
class DiskCheck(Check):
    """Free space for the feature caches and the sets (:func:`disk_need`)."""

    kind = "disk"

    def run(self, pre: Preflight) -> Iterable[Finding]:
        from .paths import cache_root

        need = disk_need(pre)
        by_device: dict[int, list[tuple[str, Path, int]]] = {}
        for what, path, nbytes in (("cache", cache_root(), need.features), ("results", pre.results, need.results)):
            by_device.setdefault(os.stat(_existing(path)).st_dev, []).append((what, Path(path), nbytes))
        for entries in by_device.values():
            total = sum(n for _, _, n in entries)
            free = shutil.disk_usage(_existing(entries[0][1])).free
            where = " and ".join(f"{what} {path}" for what, path, _ in entries)
            if total > free:
                yield _failed(self.kind, where,
                              f"not enough free disk: the run needs about {_size(total)} under {where} "
                              f"({need.describe()}) and {_size(free)} is free there; free some space, or put the "
                              "cache (LGM_BENCH_CACHE=<dir>) or the results (--results) on another disk")
            else:
                unknown = [d for d in pre.dataset_names if d not in pre.datasets]
                left_out = f" (not counting {', '.join(unknown)}, which did not load)" if unknown else ""
                yield Finding(self.kind, where, f"ok: needs about {_size(total)}{left_out}, {_size(free)} free")


# -- the disk estimate --------------------------------------------------------------------------------
FEATURE_COPIES = 2  # a split's features may be cached in fp32 and, on CUDA, from a bf16 pass
SET_COPIES = 4  # an LGM set's images, its checkpoint (the parameters and Adam's two moments) beside them
CELL_FILE_BYTES = 64 << 10
DEFAULT_FEATURE_DIM = 768  # for a backbone that did not build


@dataclass(frozen=True)
class DiskNeed:
    """Bytes the cells to run will write, by where they go."""

    features: int  # under the cache
    sets: int  # under <results>/artifacts
    cells: int  # the cell files

    @property
    def results(self) -> int:
        return self.sets + self.cells

    def describe(self) -> str:
        return f"features {_size(self.features)}, sets {_size(self.sets)}, cell files {_size(self.cells)}"


def disk_need(pre: Preflight) -> DiskNeed:
    """What the run writes, simply: each dataset's train and test images through each of its backbones
    once, float32, :data:`FEATURE_COPIES` times; each LGM set's images (classes x ipc x 3 x syn_res^2,
    float32) :data:`SET_COPIES` times (the other methods store row indices); a cell file per cell.
    Nothing already cached is subtracted, so a rerun is over-estimated."""
    from .cost import backbone_resolution, lgm_config

    features = 0
    for name, splits in pre.datasets.items():
        rows = sum(len(d) for d in splits.values())
        for backbone in {b for c in pre.cells if c.dataset == name for b in (c.distill_backbone, c.eval_backbone) if b}:
            features += rows * pre.feature_dims.get(backbone, DEFAULT_FEATURE_DIM) * 4 * FEATURE_COPIES
    sets = 0
    for dataset, method, backbone, ipc, _ in {(c.dataset, c.method, c.distill_backbone, c.ipc, c.method_seed)
                                              for c in pre.cells}:
        if dataset not in pre.datasets or not backbone:
            continue
        try:
            config = lgm_config(pre.suite, method, dataset)
            res = config.resolve(backbone_resolution(pre.suite, backbone)).syn_res if config is not None else 0
        except Exception:  # noqa: BLE001 - bad options: the options check says so
            continue
        classes = pre.datasets[dataset]["train"].num_classes
        sets += classes * ipc * 3 * int(res) ** 2 * 4 * SET_COPIES
    return DiskNeed(features, sets, CELL_FILE_BYTES * len(pre.cells))


def _existing(path: Path) -> Path:
    path = Path(path).absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _size(nbytes: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if nbytes < 1024 or unit == "TB":
            return f"{nbytes:.0f} {unit}" if unit == "B" else f"{nbytes:.1f} {unit}"
        nbytes /= 1024
    return f"{nbytes:.1f} TB"


# -- running it ---------------------------------------------------------------------------------------
@dataclass
class PreflightReport:
    """The findings of every check, and how long they took."""

    suite: str
    cells: int
    findings: list[Finding]
    seconds: float

    @property
    def ok(self) -> bool:
        return all(f.ok for f in self.findings)

    @property
    def problems(self) -> list[str]:
        return [f.problem for f in self.findings if not f.ok]

    def table(self) -> str:
        from tabulate import tabulate

        rows = [(f.check, f.subject, _short(f.result)) for f in self.findings]
        verdict = "passed" if self.ok else f"FAILED ({len(self.problems)} problem(s))"
        cells = f"{self.cells} cell{'s' * (self.cells != 1)} to run"
        head = f"preflight of suite {self.suite!r} ({cells}): {verdict} in {self.seconds:.1f} s"
        return head + "\n" + tabulate(rows, headers=("check", "what", "result"), tablefmt="simple")


def run_preflight(suite: Suite, cells: Sequence[Cell], results: Path, progress: bool = False) -> PreflightReport:
    """Every registered check on what ``cells`` need; nothing is written under ``results``."""
    started = time.perf_counter()
    pre = Preflight(suite, list(cells), Path(results), progress=progress)
    findings = [finding for check in CHECKS for finding in check.run(pre)]
    return PreflightReport(suite.name, len(pre.cells), findings, time.perf_counter() - started)
