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

Images per second come from a calibration table (``python -m benchmark calibrate`` writes one per device
under ``<cache>/calibration/``) or, where there is none, from ``ASSUMED``: numbers derived from one
H200 measurement of a ViT-B/16 at 224 px, scaled by pixel count to other inputs. The estimate says which
numbers it used.
"""

from __future__ import annotations

import datetime
import json
import platform
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .paths import atomic_write_bytes, cache_root
from .registry import BACKBONES, METHODS
from .suites import Cell, Suite

CALIBRATION_FORMAT = 1
PHASES = ("features", "distillation", "probes")


@dataclass(frozen=True)
class Throughput:
    """Images per second through one backbone at one input size."""

    forward: float  # no-grad forward (feature caches, probes, LGM's real batch)
    fwd_bwd: float  # forward + backward to the input (LGM's synthetic batch)

    def __post_init__(self) -> None:
        for name in ("forward", "fwd_bwd"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and value > 0 and value != float("inf")):
                raise ValueError(f"{name} throughput must be a positive number of images/s, not {value!r}")


# Assumed when nothing was measured: one NVIDIA H200 (README, scripts/gpu_check.py), a ViT-B/16 at 224 px.
# forward: the measured no-grad feature throughput (bf16). fwd_bwd: fitted to the measured LGM step of
# 1000 classes x K=3 with micro_batch 256 (5.00 s = 3000 / fwd_bwd + 6000 / forward: the real batch and
# the extra no-grad synthetic pass), the slower of the two measured steps (100 x 10 fits 1126 img/s).
ASSUMED_DEVICE = "NVIDIA H200 (assumed)"
ASSUMED_RESOLUTION = 224
ASSUMED = Throughput(forward=9000.0, fwd_bwd=700.0)


def assumed_throughput(resolution: int) -> Throughput:
    """``ASSUMED`` scaled by pixel count from 224 px to ``resolution`` (what a ViT's token count does)."""
    scale = (ASSUMED_RESOLUTION / resolution) ** 2
    return Throughput(ASSUMED.forward * scale, ASSUMED.fwd_bwd * scale)


# -- calibration tables -------------------------------------------------------------------------------

class CalibrationError(ValueError):
    """A calibration file that cannot be used; the message names the file and the fix."""


@dataclass
class Calibration:
    """Measured throughputs of one device: ``table[(backbone, resolution)]``."""

    device: str
    device_type: str
    torch_version: str
    date: str
    table: dict[tuple[str, int], Throughput] = field(default_factory=dict)
    batch: dict[tuple[str, int], int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        entries = [{"backbone": b, "resolution": r, "forward_images_per_s": round(t.forward, 3),
                    "fwd_bwd_images_per_s": round(t.fwd_bwd, 3), "batch": self.batch.get((b, r))}
                   for (b, r), t in sorted(self.table.items())]
        return {"format": CALIBRATION_FORMAT, "device": self.device, "device_type": self.device_type,
                "torch": self.torch_version, "date": self.date, "entries": entries}

    @classmethod
    def from_json(cls, data: Any, path: Path) -> Calibration:
        fix = "delete it or run `python -m benchmark calibrate` again to rewrite it"
        if not isinstance(data, dict) or data.get("format") != CALIBRATION_FORMAT:
            raise CalibrationError(f"calibration file {path} is not format {CALIBRATION_FORMAT}; {fix}")
        try:
            cal = cls(device=str(data["device"]), device_type=str(data["device_type"]),
                      torch_version=str(data["torch"]), date=str(data["date"]))
            for entry in data["entries"]:
                key = (str(entry["backbone"]), int(entry["resolution"]))
                cal.table[key] = Throughput(float(entry["forward_images_per_s"]),
                                            float(entry["fwd_bwd_images_per_s"]))
                if entry.get("batch") is not None:
                    cal.batch[key] = int(entry["batch"])
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
    """Where each (backbone, resolution) gets its throughput: the calibration, else ``ASSUMED``."""

    calibration: Calibration | None = None
    source: str = ""  # the calibration file, for the text
    assumed: set[tuple[str, int]] = field(default_factory=set)  # keys that fell back to ASSUMED
    measured: set[tuple[str, int]] = field(default_factory=set)

    def get(self, backbone: str, resolution: int) -> Throughput:
        key = (backbone, resolution)
        if self.calibration is not None and key in self.calibration.table:
            self.measured.add(key)
            return self.calibration.table[key]
        self.assumed.add(key)
        return assumed_throughput(resolution)


@dataclass
class CostEstimate:
    """Device seconds per phase, and how they were reached."""

    seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(PHASES, 0.0))
    lgm_updates: int = 0
    probe_trainings: int = 0
    rates: Rates = field(default_factory=Rates)
    notes: list[str] = field(default_factory=list)
    unsized: list[str] = field(default_factory=list)  # datasets left out: no known size

    def hours(self, phase: str) -> float:
        return self.seconds[phase] / 3600

    @property
    def total_hours(self) -> float:
        return sum(self.seconds.values()) / 3600


def backbone_resolution(suite: Suite, name: str) -> int:
    """The input size a suite runs ``name`` at: its ``backbone_options``, else the entry's default."""
    size = suite.backbone_options.get(name, {}).get("input_size")
    return int(size) if size is not None else int(getattr(BACKBONES.get(name), "input_size", 224))


def lgm_config(suite: Suite, method: str, dataset: str) -> Any:
    """The method's ``LGMConfig`` when it is an LGM method, else None."""
    return getattr(METHODS.get(method)(**suite.options_for(method, dataset)), "lgm_config", None)


def lgm_seconds(config: Any, classes: int, n_train: int, ipc: int, rate_at: Callable[[int], Throughput],
                input_size: int) -> tuple[float, int]:
    """(seconds, updates) of one LGM distillation."""
    cfg = config.resolve(input_size)
    rate = rate_at(int(cfg.crop_res))
    updates = cfg.steps + 1 if cfg.schedule == "official" else cfg.steps
    synthetic = classes * ipc * (cfg.augs_per_batch if cfg.augment else 1)
    per_step = synthetic / rate.fwd_bwd
    if cfg.micro_batch is not None:  # the no-grad pass that gives g_syn before the chunked backward
        per_step += synthetic / rate.forward
    once = 0.0
    if cfg.real_bank:
        rows = min(n_train, cfg.real_bank_rows or n_train)
        once = cfg.real_bank * rows / rate.forward
    else:
        per_step += synthetic / rate.forward  # the real batch: as many images as the synthetic one
    return updates * per_step + once, updates


def paper_probe_images(options: dict[str, Any], set_size: int, full_data: bool, seeds: int) -> int:
    """The paper probe: every image of the set through the backbone every epoch, per probe seed."""
    from .probe.paper import PaperOptions

    o = PaperOptions(**options)
    return seeds * (o.full_data_epochs if full_data else o.epochs) * set_size


def fast_probe_images(options: dict[str, Any], set_size: int, full_data: bool, seeds: int) -> int:
    """The fast probe: its augmented views embedded once per cell (``view_seed`` is fixed; small sets
    only), the heads trained on cached features; larger sets use the feature cache's centre views."""
    from .probe.fast import FastOptions

    o = FastOptions(**options)
    if full_data or not o.train_views or set_size > o.views_max_rows:
        return 0  # the feature cache's centre views, counted under features
    return o.train_views * set_size


# protocol -> images through the evaluating backbone for one cell: (options, set size, full data, seeds)
PROBE_COSTS: dict[str, Callable[[dict[str, Any], int, bool, int], int]] = {
    "paper": paper_probe_images, "fast": fast_probe_images,
}


def estimate_suite(suite: Suite, sizes: dict[str, tuple[int, int, int]], rates: Rates) -> CostEstimate:
    """Device seconds per phase of ``suite``; ``sizes``: dataset -> (classes, train, test images)."""
    est = CostEstimate(rates=rates)
    cells = suite.cells()
    est.probe_trainings = sum(len(c.probe_seeds) for c in cells)
    est.unsized = sorted({c.dataset for c in cells} - set(sizes))
    backbones = sorted({*suite.backbones, *(suite.distill_backbones or [])})
    for dataset in suite.datasets:
        if dataset not in sizes:
            continue
        _, n_train, n_test = sizes[dataset]
        for name in backbones:
            est.seconds["features"] += (n_train + n_test) / rates.get(name, backbone_resolution(suite, name)).forward
    sets = {(c.dataset, c.method, c.distill_backbone, c.ipc, c.method_seed) for c in cells}
    for dataset, method, backbone, ipc, _ in sorted(sets):
        config = lgm_config(suite, method, dataset)
        if config is None or dataset not in sizes or not backbone:
            continue
        classes, n_train, _ = sizes[dataset]
        seconds, updates = lgm_seconds(config, classes, n_train, ipc, lambda r, b=backbone: rates.get(b, r),
                                       backbone_resolution(suite, backbone))
        est.seconds["distillation"] += seconds
        est.lgm_updates += updates
    cost = PROBE_COSTS.get(suite.protocol)
    options = suite.protocol_options.get(suite.protocol, {})
    for cell in cells:
        if cell.dataset not in sizes or cost is None:
            continue
        images = cost(options, *_set_size(cell, sizes[cell.dataset]), len(cell.probe_seeds))
        rate = rates.get(cell.eval_backbone, backbone_resolution(suite, cell.eval_backbone))
        est.seconds["probes"] += images / rate.forward
    if cost is None:
        est.notes.append(f"no cost model for the {suite.protocol!r} probe: its time is left out")
    return est


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
    """The dry run's estimate lines: hours per phase, and which throughputs were measured or assumed."""
    cal = est.rates.calibration
    where = f"{cal.device} (calibrated {cal.date})" if cal is not None else ASSUMED_DEVICE
    unit = "CPU hours" if cal is not None and cal.device_type == "cpu" else "GPU hours"
    lines = [f"estimate on {where}: about {est.total_hours:.2f} {unit} "
             f"({est.lgm_updates} LGM updates, {est.probe_trainings} probe trainings)"]
    lines += [f"  {phase:<13} {duration(est.seconds[phase])}" for phase in PHASES]
    if est.rates.measured:
        lines.append(f"  measured throughputs ({est.rates.source}): " + _keys(est.rates.measured))
    if est.rates.assumed:
        lines.append(f"  ASSUMED throughputs (a ViT-B/16 on an H200 at 224 px: {ASSUMED.forward:.0f} img/s forward, "
                     f"{ASSUMED.fwd_bwd:.0f} img/s forward+backward, scaled by pixel count) for: "
                     + _keys(est.rates.assumed))
        lines.append("  `python -m benchmark calibrate` measures them on this device")
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
