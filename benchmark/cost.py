"""The cost model behind ``run --dry-run``: device hours per phase from measured or assumed throughputs.

A suite's work is counted in images through a backbone, per phase:

* ``features``: the feature caches, every train and test image once through every backbone of the suite
  (no-grad forward);
* ``distillation``: per LGM set, ``updates x`` (the synthetic batch ``classes x ipc x K`` forward +
  backward to the input, plus as many real images forward, or the real bank's views once when the config
  has one; with ``micro_batch`` one more no-grad synthetic forward), through the distilling backbone at
  the LGM crop;
* ``probes``: per cell and probe seed, the probe protocol's passes (``PROBE_COSTS``): the paper probe runs
  the backbone on every augmented image every epoch; the fast probe embeds its views once and trains
  heads on cached features (the head training is left out: seconds).

Each phase also decodes images (``DECODE_OPS``): the feature caches every image once per backbone, LGM
its real batch every step, a probe of real images its set every epoch. Decoding runs in the run's
worker processes beside the backbone, so a piece of work takes ``max(decode, compute)`` (their sum with
0 workers: the main process does both), and a split whose decoded pixels fit the preload budget
(``benchmark.budgets``) is decoded once up front instead of every step or epoch. A phase whose decoding
leaves the device idle is "decode-bound" (``PhaseEstimate``).

Images per second come from a calibration table (``python -m benchmark calibrate`` writes one per device
under ``<cache>/calibration/``) or, where there is none, from ``ASSUMED`` (compute: one H200
measurement of a ViT-B/16 at 224 px, scaled by pixel count to other inputs) and ``ASSUMED_DECODE``
(decode: one CPU core on ImageNet-size JPEGs). The estimate says which numbers it used.
"""

from __future__ import annotations

import datetime
import json
import platform
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .paths import atomic_write_bytes, cache_root
from .registry import BACKBONES, METHODS
from .suites import Cell, Suite

CALIBRATION_FORMAT = 2  # 2 added the decode rates; format 1 files (throughputs only) are still read
READABLE_FORMATS = (1, 2)
PHASES = ("features", "distillation", "probes")


@dataclass(frozen=True)
class Throughput:
    """Images per second through one backbone at one input size."""

    forward: float  # no-grad forward (feature caches, probes, LGM's real batch)
    fwd_bwd: float  # forward + backward to the input (LGM's synthetic batch)

    def __post_init__(self) -> None:
        for name in ("forward", "fwd_bwd"):
            _check_rate(name, getattr(self, name))


def _check_rate(name: str, value: Any) -> None:
    if not (isinstance(value, (int, float)) and value > 0 and value != float("inf")):
        raise ValueError(f"{name} throughput must be a positive number of images/s, not {value!r}")


# Assumed when nothing was measured: one NVIDIA H200 (README, scripts/gpu_check.py), a ViT-B/16 at 224 px.
# forward: the measured no-grad feature throughput (bf16). fwd_bwd: fitted to the measured LGM step of
# 1000 classes x K=3 with micro_batch 256 (5.00 s = 3000 / fwd_bwd + 6000 / forward: the real batch and
# the extra no-grad synthetic pass), the slower of the two measured steps (100 x 10 fits 1126 img/s).
# Both leave decoding out (gpu_check preloaded its images); ASSUMED_DECODE is the decode side.
ASSUMED_DEVICE = "NVIDIA H200 (assumed)"
ASSUMED_RESOLUTION = 224
ASSUMED = Throughput(forward=9000.0, fwd_bwd=700.0)


def assumed_throughput(resolution: int) -> Throughput:
    """``ASSUMED`` scaled by pixel count from 224 px to ``resolution`` (what a ViT's token count does)."""
    scale = (ASSUMED_RESOLUTION / resolution) ** 2
    return Throughput(ASSUMED.forward * scale, ASSUMED.fwd_bwd * scale)


# -- decoding ----------------------------------------------------------------------------------------

# How a phase turns a stored image into pixels (what ``calibrate`` times in one process, per row: the
# row read, the decode and this transform, as a decode worker does it).
DECODE_OPS = {
    "center_crop": "short side resized, centre crop, float (a backbone's preprocess: the feature caches; "
                   "a probe's small real-image set)",
    "random_crop": "short side resized, random square crop (LGM's real batches; the full-data probe)",
}


@dataclass(frozen=True)
class DecodeNeed:
    """One way a suite decodes a dataset's rows: ``op`` after resizing the short side to ``side``, then
    a ``crop`` square. Rates are kept per ``key`` (the crop size hardly changes the cost)."""

    dataset: str
    op: str
    side: int
    crop: int
    interpolation: str = "bilinear"

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.dataset, self.op, self.side)

    def decoded_bytes(self, rows: int, image_size: tuple[int, int]) -> int:
        """uint8 bytes of ``rows`` decoded images of the aspect of ``image_size`` (width, height): what
        a preloaded split holds (a centre crop keeps the crop; a short-side resize the whole image)."""
        if self.op == "center_crop":
            return rows * 3 * self.crop ** 2
        w, h = image_size
        return rows * 3 * self.side * round(self.side * max(w, h) / max(min(w, h), 1))


@dataclass(frozen=True)
class DecodeRate:
    """Images/s of one decode worker on source images of ``image_size`` (width x height, each the low
    median of the rows timed); ``rows``: how many were timed (0: an assumed rate). ``cpu_images_per_s``:
    the same per second of the process's CPU time (far above the wall rate: the machine was busy or the
    rows were slow to read)."""

    images_per_s: float
    image_size: tuple[int, int]
    rows: int = 0
    cpu_images_per_s: float | None = None

    def __post_init__(self) -> None:
        _check_rate("decode", self.images_per_s)
        if self.cpu_images_per_s is not None:
            _check_rate("decode (CPU time)", self.cpu_images_per_s)

    def describe(self) -> str:
        return f"{self.images_per_s:,.0f} img/s per worker on {self.image_size[0]}x{self.image_size[1]}"


# Assumed where the data is not on this machine: one process (PIL, one torch thread) on about 500x375
# JPEGs (a typical ImageNet photo): benchmarks/test_bench_decode.py on the scale world (cut from foolbox's
# ImageNet validation photos), per second of CPU time, i.e. one undisturbed core of the 2-core Xeon
# development machine (its wall rate, shared with other work, was 1/2 to 1/3 of that; README "What a
# suite costs"). The decode alone ran at about 800 img/s.
ASSUMED_DECODE_SIZE = (500, 375)
ASSUMED_DECODE = {"center_crop": DecodeRate(330.0, ASSUMED_DECODE_SIZE),
                  "random_crop": DecodeRate(340.0, ASSUMED_DECODE_SIZE)}


# -- calibration tables -------------------------------------------------------------------------------

class CalibrationError(ValueError):
    """A calibration file that cannot be used; the message names the file and the fix."""


@dataclass
class Calibration:
    """Measured rates of one device: ``table[(backbone, resolution)]`` (compute) and
    ``decode[(dataset, op, side)]`` (one decode worker on this machine's copy of the dataset)."""

    device: str
    device_type: str
    torch_version: str
    date: str
    table: dict[tuple[str, int], Throughput] = field(default_factory=dict)
    batch: dict[tuple[str, int], int] = field(default_factory=dict)
    decode: dict[tuple[str, str, int], DecodeRate] = field(default_factory=dict)
    format: int = CALIBRATION_FORMAT  # of the file it was read from

    def to_json(self) -> dict[str, Any]:
        entries = [{"backbone": b, "resolution": r, "forward_images_per_s": round(t.forward, 3),
                    "fwd_bwd_images_per_s": round(t.fwd_bwd, 3), "batch": self.batch.get((b, r))}
                   for (b, r), t in sorted(self.table.items())]
        decode = [{"dataset": d, "op": op, "side": side, "images_per_s": round(rate.images_per_s, 3),
                   "cpu_images_per_s": None if rate.cpu_images_per_s is None else round(rate.cpu_images_per_s, 3),
                   "width": rate.image_size[0], "height": rate.image_size[1], "rows": rate.rows}
                  for (d, op, side), rate in sorted(self.decode.items())]
        return {"format": CALIBRATION_FORMAT, "device": self.device, "device_type": self.device_type,
                "torch": self.torch_version, "date": self.date, "entries": entries, "decode": decode}

    @classmethod
    def from_json(cls, data: Any, path: Path) -> Calibration:
        fix = "delete it or run `python -m benchmark calibrate` again to rewrite it"
        if not isinstance(data, dict) or data.get("format") not in READABLE_FORMATS:
            found = data.get("format") if isinstance(data, dict) else None
            raise CalibrationError(f"calibration file {path} is format {found!r}, not one of "
                                   f"{', '.join(map(str, READABLE_FORMATS))}; {fix}")
        try:
            cal = cls(device=str(data["device"]), device_type=str(data["device_type"]),
                      torch_version=str(data["torch"]), date=str(data["date"]), format=int(data["format"]))
            for entry in data["entries"]:
                key = (str(entry["backbone"]), int(entry["resolution"]))
                cal.table[key] = Throughput(float(entry["forward_images_per_s"]),
                                            float(entry["fwd_bwd_images_per_s"]))
                if entry.get("batch") is not None:
                    cal.batch[key] = int(entry["batch"])
            for entry in data.get("decode", []) if cal.format >= 2 else []:
                if entry["op"] not in DECODE_OPS:
                    raise ValueError(f"unknown decode op {entry['op']!r}")
                cpu = entry.get("cpu_images_per_s")
                cal.decode[str(entry["dataset"]), str(entry["op"]), int(entry["side"])] = DecodeRate(
                    float(entry["images_per_s"]), (int(entry["width"]), int(entry["height"])), int(entry["rows"]),
                    None if cpu is None else float(cpu))
        except (KeyError, TypeError, ValueError) as err:
            raise CalibrationError(f"calibration file {path} is malformed ({err}); {fix}") from None
        return cal


def device_name(device: torch.device) -> str:
    """A readable name of the device: the GPU's name, or the CPU's model name."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return "CPU " + line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "CPU " + (platform.processor() or platform.machine() or "unknown")


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "device"


def calibration_dir() -> Path:
    return cache_root() / "calibration"


def calibration_path(device: torch.device) -> Path:
    return calibration_dir() / f"{slug(device_name(device))}.json"


def load_calibration(path: Path) -> Calibration | None:
    """The table in ``path``; None when there is no file; CalibrationError when it is unusable."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CalibrationError(f"calibration file {path} is unreadable ({err}); delete it or run "
                               "`python -m benchmark calibrate` again to rewrite it") from None
    return Calibration.from_json(data, path)


def save_calibration(calibration: Calibration, path: Path) -> Path:
    """Write the table atomically (temp file + rename)."""
    atomic_write_bytes(Path(path), (json.dumps(calibration.to_json(), indent=2) + "\n").encode())
    return Path(path)


def today() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")


# -- the estimate ------------------------------------------------------------------------------------

@dataclass
class Rates:
    """Where each rate comes from: the calibration, else ``ASSUMED`` / ``ASSUMED_DECODE``."""

    calibration: Calibration | None = None
    source: str = ""  # the calibration file, for the text
    assumed: set[tuple[str, int]] = field(default_factory=set)  # keys that fell back to ASSUMED
    measured: set[tuple[str, int]] = field(default_factory=set)
    decode_assumed: set[tuple[str, str, int]] = field(default_factory=set)
    decode_measured: set[tuple[str, str, int]] = field(default_factory=set)

    def get(self, backbone: str, resolution: int) -> Throughput:
        key = (backbone, resolution)
        if self.calibration is not None and key in self.calibration.table:
            self.measured.add(key)
            return self.calibration.table[key]
        self.assumed.add(key)
        return assumed_throughput(resolution)

    def decode(self, need: DecodeNeed) -> DecodeRate:
        if self.calibration is not None and need.key in self.calibration.decode:
            self.decode_measured.add(need.key)
            return self.calibration.decode[need.key]
        self.decode_assumed.add(need.key)
        return ASSUMED_DECODE[need.op]


DECODE_BOUND_IDLE = 0.05  # a phase that leaves the device idle this share of its time or more is decode-bound


@dataclass
class PhaseEstimate:
    """One phase's seconds: the device's compute, the decoding (at the run's workers), and the wall time
    they take together (``wall_s``, what the estimate adds up)."""

    compute_s: float = 0.0
    decode_s: float = 0.0
    wall_s: float = 0.0
    streamed: int = 0  # pieces of work that decode their rows again every step or epoch
    preloaded: int = 0  # ... that decode them once up front (they fit the preload budget)

    def add(self, compute: float, decode: float = 0.0, overlap: bool = True, upfront: float = 0.0) -> None:
        """``decode`` seconds beside ``compute`` (workers decode while the device computes), or after
        it (``overlap=False``: the main process does both); ``upfront``: decoding before the work starts."""
        self.compute_s += compute
        self.decode_s += decode + upfront
        self.wall_s += upfront + (max(decode, compute) if overlap else decode + compute)

    @property
    def idle_share(self) -> float:
        """The share of the wall time the device waits on decoding."""
        return 1 - self.compute_s / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def bound(self) -> str:
        return "decode" if self.idle_share >= DECODE_BOUND_IDLE else "compute"

    def verdict(self, unit: str = "GPU") -> str:
        if self.wall_s == 0:
            return "nothing to do"
        if self.bound == "compute":
            return "compute-bound"
        advice = "add workers or preload" if self.streamed else "add workers"
        return f"decode-bound: {100 * self.idle_share:.0f} % of the {unit} idle; {advice}"


@dataclass
class CostEstimate:
    """Device seconds per phase, and how they were reached."""

    phases: dict[str, PhaseEstimate] = field(default_factory=lambda: {p: PhaseEstimate() for p in PHASES})
    workers: int = 0  # decode workers the estimate assumes
    preload_bytes: int = 0  # the preload budget it assumes
    lgm_updates: int = 0
    probe_trainings: int = 0
    rates: Rates = field(default_factory=Rates)
    notes: list[str] = field(default_factory=list)
    unsized: list[str] = field(default_factory=list)  # datasets left out: no known size

    def hours(self, phase: str) -> float:
        return self.phases[phase].wall_s / 3600

    @property
    def total_hours(self) -> float:
        return sum(p.wall_s for p in self.phases.values()) / 3600

    def add(self, phase: str, compute: float, need: DecodeNeed | None = None, images: int = 0,
            rows: int = 0) -> None:
        """``compute`` seconds of ``phase`` that read ``images`` decoded images (as ``need`` says) drawn
        from ``rows`` distinct rows: decoded once up front when those rows are read more than once and
        fit the preload budget, else decoded as they are read."""
        phase_est = self.phases[phase]
        if need is None or images <= 0:
            phase_est.add(compute)
            return
        rate = self.rates.decode(need)
        repeated = rows < images
        if repeated and need.decoded_bytes(rows, rate.image_size) <= self.preload_bytes:
            phase_est.add(compute, upfront=self._decode_s(rows, rate))
            phase_est.preloaded += 1
            return
        phase_est.add(compute, self._decode_s(images, rate), overlap=self.workers > 0)
        phase_est.streamed += int(repeated)

    def _decode_s(self, images: int, rate: DecodeRate) -> float:
        return images / (rate.images_per_s * max(self.workers, 1))


def backbone_resolution(suite: Suite, name: str) -> int:
    """The input size a suite runs ``name`` at: its ``backbone_options``, else the entry's default."""
    size = suite.backbone_options.get(name, {}).get("input_size")
    return int(size) if size is not None else int(getattr(BACKBONES.get(name), "input_size", 224))


def backbone_interpolation(suite: Suite, name: str) -> str:
    """How a suite resizes real images for ``name``: its ``backbone_options``, else the entry's."""
    value = suite.backbone_options.get(name, {}).get("interpolation")
    return str(value) if value is not None else str(getattr(BACKBONES.get(name), "interpolation", "bilinear"))


def lgm_config(suite: Suite, method: str, dataset: str) -> Any:
    """The method's ``LGMConfig`` when it is an LGM method, else None."""
    return getattr(METHODS.get(method)(**suite.options_for(method, dataset)), "lgm_config", None)


# -- what each phase decodes -------------------------------------------------------------------------

def feature_need(suite: Suite, dataset: str, backbone: str) -> DecodeNeed:
    """The feature cache's decode: the backbone's preprocess (``Backbone.preprocess``: short side to
    size * 256 / 224, centre crop ``size``)."""
    size = backbone_resolution(suite, backbone)
    return DecodeNeed(dataset, "center_crop", round(size * 256 / 224), size, backbone_interpolation(suite, backbone))


def lgm_need(suite: Suite, dataset: str, backbone: str, config: Any) -> DecodeNeed:
    """LGM's real batches: short side to ``real_res``, a random ``real_res`` crop (``method.real``)."""
    res = int(config.resolve(backbone_resolution(suite, backbone)).real_res)
    return DecodeNeed(dataset, "random_crop", res, res, backbone_interpolation(suite, backbone))


def probe_need(suite: Suite, dataset: str, backbone: str, crop: str) -> DecodeNeed:
    """A probe's real-image set: short side to size * 256 / 224 (``set_image_preprocess``), then a
    random crop of that side (the full-data probe's ``"random"``) or the centre one."""
    side = round(backbone_resolution(suite, backbone) * 256 / 224)
    op = "random_crop" if crop == "random" else "center_crop"
    return DecodeNeed(dataset, op, side, side, backbone_interpolation(suite, backbone))


@dataclass(frozen=True)
class LGMWork:
    """One LGM distillation: device seconds, updates, and the real images it decodes (from ``rows``)."""

    compute_s: float
    updates: int
    real_images: int
    rows: int


def lgm_work(config: Any, classes: int, n_train: int, ipc: int, rate_at: Callable[[int], Throughput],
             input_size: int) -> LGMWork:
    """What one LGM distillation costs."""
    cfg = config.resolve(input_size)
    rate = rate_at(int(cfg.crop_res))
    updates = cfg.steps + 1 if cfg.schedule == "official" else cfg.steps
    synthetic = classes * ipc * (cfg.augs_per_batch if cfg.augment else 1)
    per_step = synthetic / rate.fwd_bwd
    if cfg.micro_batch is not None:  # the no-grad pass that gives g_syn before the chunked backward
        per_step += synthetic / rate.forward
    if cfg.real_bank:  # the bank's views, embedded once
        rows = min(n_train, cfg.real_bank_rows or n_train)
        real = cfg.real_bank * rows
        return LGMWork(updates * per_step + real / rate.forward, updates, real, rows)
    per_step += synthetic / rate.forward  # the real batch: as many images as the synthetic one
    return LGMWork(updates * per_step, updates, updates * synthetic, n_train)


@dataclass(frozen=True)
class ProbeWork:
    """One cell's probe: images through the evaluating backbone (all seeds), how many of the set's
    images it decodes when nothing is preloaded, and the crop it decodes them with."""

    images: int
    decoded: int
    crop: str = "center"  # "random": a fresh random crop of the resized image each epoch


def paper_probe_work(options: dict[str, Any], set_size: int, full_data: bool, seeds: int) -> ProbeWork:
    """The paper probe: every image of the set through the backbone every epoch, per probe seed."""
    from .probe.paper import PaperOptions

    o = PaperOptions(**options)
    images = seeds * (o.full_data_epochs if full_data else o.epochs) * set_size
    crop = "center" if not full_data or o.full_data_crop == "center" else "random"
    return ProbeWork(images, images, crop)


def fast_probe_work(options: dict[str, Any], set_size: int, full_data: bool, seeds: int) -> ProbeWork:
    """The fast probe: its augmented views embedded once per cell (``view_seed`` is fixed; small sets
    only) from the set decoded once, the heads trained on cached features; larger sets use the feature
    cache's centre views."""
    from .probe.fast import FastOptions

    o = FastOptions(**options)
    if full_data or not o.train_views or set_size > o.views_max_rows:
        return ProbeWork(0, 0)  # the feature cache's centre views, counted under features
    return ProbeWork(o.train_views * set_size, set_size)


# protocol -> one cell's probe work: (options, set size, full data, seeds)
PROBE_COSTS: dict[str, Callable[[dict[str, Any], int, bool, int], ProbeWork]] = {
    "paper": paper_probe_work, "fast": fast_probe_work,
}


def _lgm_sets(suite: Suite, sizes: dict[str, tuple[int, int, int]]) -> Iterator[tuple[str, str, int, Any]]:
    """(dataset, distilling backbone, ipc, LGM config) of every LGM set the suite makes."""
    sets = {(c.dataset, c.method, c.distill_backbone, c.ipc, c.method_seed) for c in suite.cells()}
    for dataset, method, backbone, ipc, _ in sorted(sets):
        config = lgm_config(suite, method, dataset)
        if config is not None and dataset in sizes and backbone:
            yield dataset, backbone, ipc, config


def _real_probe_cells(suite: Suite, sizes: dict[str, tuple[int, int, int]]) -> Iterator[tuple[Cell, bool]]:
    """Every cell of a known size, and whether its probe reads real images (not an LGM set's pixels)."""
    for cell in suite.cells():
        if cell.dataset in sizes:
            yield cell, lgm_config(suite, cell.method, cell.dataset) is None


def _backbones(suite: Suite) -> list[str]:
    return sorted({*suite.backbones, *(suite.distill_backbones or [])})


def estimate_suite(suite: Suite, sizes: dict[str, tuple[int, int, int]], rates: Rates, workers: int | None = None,
                   preload_bytes: int | None = None) -> CostEstimate:
    """Device seconds per phase of ``suite``; ``sizes``: dataset -> (classes, train, test images);
    ``workers`` decode workers (default: this machine's) and ``preload_bytes`` the preload budget
    (default: ``benchmark.budgets``)."""
    from .budgets import preload_budget_bytes
    from .embedding import default_workers

    est = CostEstimate(rates=rates, workers=default_workers() if workers is None else int(workers),
                       preload_bytes=preload_budget_bytes() if preload_bytes is None else int(preload_bytes))
    cells = suite.cells()
    est.probe_trainings = sum(len(c.probe_seeds) for c in cells)
    est.unsized = sorted({c.dataset for c in cells} - set(sizes))
    for dataset in suite.datasets:
        if dataset not in sizes:
            continue
        _, n_train, n_test = sizes[dataset]
        for name in _backbones(suite):
            rate = rates.get(name, backbone_resolution(suite, name))
            n = n_train + n_test  # every image once: nothing to preload
            est.add("features", n / rate.forward, feature_need(suite, dataset, name), n, n)
    for dataset, backbone, ipc, config in _lgm_sets(suite, sizes):
        classes, n_train, _ = sizes[dataset]
        work = lgm_work(config, classes, n_train, ipc, lambda r, b=backbone: rates.get(b, r),
                        backbone_resolution(suite, backbone))
        est.add("distillation", work.compute_s, lgm_need(suite, dataset, backbone, config), work.real_images,
                work.rows)
        est.lgm_updates += work.updates
    cost = PROBE_COSTS.get(suite.protocol)
    if cost is None:
        est.notes.append(f"no cost model for the {suite.protocol!r} probe: its time is left out")
        return est
    options = suite.protocol_options.get(suite.protocol, {})
    for cell, real in _real_probe_cells(suite, sizes):
        set_size, full_data = _set_size(cell, sizes[cell.dataset])
        work = cost(options, set_size, full_data, len(cell.probe_seeds))
        rate = rates.get(cell.eval_backbone, backbone_resolution(suite, cell.eval_backbone))
        need = probe_need(suite, cell.dataset, cell.eval_backbone, work.crop) if real else None
        est.add("probes", work.images / rate.forward, need, work.decoded, set_size)
    return est


def suite_decode_needs(suite: Suite, sizes: dict[str, tuple[int, int, int]] | None = None) -> list[DecodeNeed]:
    """Every decode the estimate of ``suite`` reads a rate for (what ``calibrate`` measures); ``sizes``
    only decides which probes read real images in large enough numbers (default: any size)."""
    known = sizes or {d: (1, 1, 1) for d in suite.datasets}
    needs = [feature_need(suite, d, b) for d in suite.datasets if d in known for b in _backbones(suite)]
    needs += [lgm_need(suite, d, b, config) for d, b, _, config in _lgm_sets(suite, known)]
    cost = PROBE_COSTS.get(suite.protocol)
    if cost is not None:
        options = suite.protocol_options.get(suite.protocol, {})
        for cell, real in _real_probe_cells(suite, known):
            work = cost(options, *_set_size(cell, known[cell.dataset]), len(cell.probe_seeds))
            if real and work.decoded:
                needs.append(probe_need(suite, cell.dataset, cell.eval_backbone, work.crop))
    return list({need.key: need for need in needs}.values())


def _set_size(cell: Cell, size: tuple[int, int, int]) -> tuple[int, bool]:
    """(images in the cell's set, whether it is the whole train split)."""
    classes, n_train, _ = size
    if not METHODS.get(cell.method).uses_ipc:  # full data: the set is the train split
        return n_train, True
    return classes * max(cell.ipc, 1), False


def rates_for(device: torch.device, path: Path | None = None) -> tuple[Rates, list[str]]:
    """The rates of ``device`` (its calibration file, if any) and warnings about an unusable file."""
    path = Path(path) if path is not None else calibration_path(device)
    try:
        calibration = load_calibration(path)
    except CalibrationError as err:
        return Rates(), [f"warning: ignored {err}"]
    return Rates(calibration, str(path) if calibration else ""), []


def describe_estimate(est: CostEstimate) -> list[str]:
    """The dry run's estimate lines: hours per phase with their compute and decode terms and the bound,
    and which rates were measured or assumed."""
    cal = est.rates.calibration
    where = f"{cal.device} (calibrated {cal.date})" if cal is not None else ASSUMED_DEVICE
    unit = "CPU" if cal is not None and cal.device_type == "cpu" else "GPU"
    workers = (f"{est.workers} decode worker{'s' if est.workers > 1 else ''}" if est.workers
               else "decoding in the main process (0 workers)")
    lines = [f"estimate on {where}, {workers}, preload budget {est.preload_bytes / 2**30:.1f} GiB: about "
             f"{est.total_hours:.2f} {unit} hours ({est.lgm_updates} LGM updates, {est.probe_trainings} "
             "probe trainings)",
             f"  {'phase':<13} {'time':>9} {'compute':>9} {'decode':>9}  bound"]
    for name in PHASES:
        p = est.phases[name]
        lines.append(f"  {name:<13} {duration(p.wall_s):>9} {duration(p.compute_s):>9} {duration(p.decode_s):>9}  "
                     f"{p.verdict(unit)}")
    r = est.rates
    if r.measured:
        lines.append(f"  measured throughputs ({r.source}): " + _keys(r.measured))
    if r.assumed:
        lines.append(f"  ASSUMED throughputs (a ViT-B/16 on an H200 at 224 px: {ASSUMED.forward:.0f} img/s forward, "
                     f"{ASSUMED.fwd_bwd:.0f} img/s forward+backward, scaled by pixel count) for: " + _keys(r.assumed))
    if r.decode_measured:
        assert cal is not None
        lines.append(f"  measured decode rates ({r.source}): " + ", ".join(
            f"{d} {op}@{side}px {cal.decode[d, op, side].describe()}" for d, op, side in sorted(r.decode_measured)))
    if r.decode_assumed:
        w, h = ASSUMED_DECODE_SIZE
        lines.append(f"  ASSUMED decode rates (one CPU core, PIL, {w}x{h} JPEGs: "
                     + ", ".join(f"{op} {rate.images_per_s:.0f} img/s" for op, rate in ASSUMED_DECODE.items())
                     + ") for: " + ", ".join(sorted({d for d, _, _ in r.decode_assumed})))
    if cal is not None and cal.format < 2:
        lines.append(f"  the calibration file is format {cal.format} (no decode rates): calibrate again to add them")
    if r.assumed or r.decode_assumed:
        lines.append("  `python -m benchmark calibrate` measures them on this device (decode rates: on the "
                     "datasets that are on this machine)")
    if any(p.bound == "decode" for p in est.phases.values()):
        lines.append("  decode workers: `run --workers N`; preload budget: LGM_BENCH_PRELOAD_GB")
    if est.unsized:
        lines.append(f"  left out (size unknown): {', '.join(est.unsized)}")
    lines += [f"  {note}" for note in est.notes]
    return lines


def duration(seconds: float) -> str:
    """Hours with two decimals from 0.1 h on, else minutes or seconds."""
    if seconds >= 360:
        return f"{seconds / 3600:.2f} h"
    return f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.1f} s"


def _keys(keys: Iterable[tuple[str, int]]) -> str:
    return ", ".join(f"{b}@{r}px" for b, r in sorted(keys))


def suite_resolutions(suite: Suite, backbone: str) -> set[int]:
    """The input sizes a suite runs ``backbone`` at: its input size, and the LGM crop where it distills."""
    sizes = {backbone_resolution(suite, backbone)}
    if backbone in (suite.distill_backbones or suite.backbones):
        for dataset in suite.datasets:
            for method in suite.methods:
                config = lgm_config(suite, method, dataset)
                if config is not None:
                    sizes.add(int(config.resolve(backbone_resolution(suite, backbone)).crop_res))
    return sizes
