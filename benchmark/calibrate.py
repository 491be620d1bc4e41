"""``python -m benchmark calibrate``: measure images/s per (backbone, input size) on this device.

Two passes per entry, each timed after a short warm-up: a no-grad forward (the feature caches and the
probes, under the bf16 autocast ``benchmark.embedding`` uses on CUDA, fp32 on a CPU) and a forward +
backward to the input (LGM's synthetic pass, under the precision LGM's ``"auto"`` picks: fp16 autocast
on CUDA, fp32 on a CPU). The median of the timed iterations gives images/s. The table
(``benchmark.cost.Calibration``) is merged into this device's file under ``<cache>/calibration/`` and
read by ``run --dry-run``.
"""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from .cost import Calibration, CalibrationError, Throughput, device_name, load_calibration, today
from .embedding import compute_dtype
from .registry import BACKBONES


@dataclass(frozen=True)
class CalibrationPlan:
    """What to measure: ``(backbone, resolution)`` pairs, ``batch`` images per pass, passes per entry."""

    entries: tuple[tuple[str, int], ...]
    batch: int = 32
    warmup: int = 2
    iterations: int = 5
    seed: int = 0

    def __post_init__(self) -> None:
        if self.batch < 1:
            raise ValueError(f"--batch must be at least 1, not {self.batch}")
        if self.warmup < 0:
            raise ValueError(f"--warmup must be 0 or more, not {self.warmup}")
        if self.iterations < 1:
            raise ValueError(f"--iterations must be at least 1, not {self.iterations}")
        for name, resolution in self.entries:
            if resolution < 1:
                raise ValueError(f"--resolutions must be positive, not {resolution}")
            BACKBONES.get(name).check_input_size(resolution)  # e.g. a ViT's patch multiple


def _timed(fn: Callable[[], object], device: torch.device, warmup: int, iterations: int) -> float:
    """Median seconds of ``fn`` over ``iterations`` calls after ``warmup`` untimed ones."""
    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(iterations):
        started = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def measure_backbone(backbone: torch.nn.Module, resolution: int, device: torch.device, plan: CalibrationPlan
                     ) -> Throughput:
    """Forward and forward+backward images/s of a built backbone at ``resolution``."""
    gen = torch.Generator().manual_seed(plan.seed)
    x = torch.rand(plan.batch, 3, resolution, resolution, generator=gen).to(device)
    # LGM's "auto" precision: fp16 autocast on CUDA (method/distill.py), fp32 elsewhere
    autocast = (torch.autocast(device_type="cuda", dtype=torch.float16) if device.type == "cuda"
                else contextlib.nullcontext())

    no_grad_autocast = (torch.autocast(device_type="cuda", dtype=compute_dtype(device))
                        if device.type == "cuda" else contextlib.nullcontext())

    def forward() -> None:
        with torch.no_grad(), no_grad_autocast:
            backbone(x)

    def forward_backward() -> None:
        leaf = x.detach().requires_grad_(True)
        with autocast:
            out = backbone(leaf)
        out.float().sum().backward()

    fwd = _timed(forward, device, plan.warmup, plan.iterations)
    bwd = _timed(forward_backward, device, plan.warmup, plan.iterations)
    return Throughput(forward=plan.batch / fwd, fwd_bwd=plan.batch / bwd)


def calibrate(plan: CalibrationPlan, device: torch.device, path: Path, options: dict[str, dict] | None = None,
              say: Callable[[str], None] = print) -> tuple[Calibration, list[str]]:
    """Measure every entry whose weights are on this machine, merge into ``path``'s table (an unusable
    old file is replaced, with a note). Returns the table and the skipped backbones' messages."""
    options = options or {}
    skipped: list[str] = []
    try:
        calibration = load_calibration(path)
    except CalibrationError as err:
        say(f"warning: replacing {err}")
        calibration = None
    name = device_name(device)
    if calibration is None or calibration.device != name:
        calibration = Calibration(device=name, device_type=device.type, torch_version="", date="")
    calibration.torch_version = torch.__version__
    calibration.date = today()
    unavailable: set[str] = set()
    for backbone_name, resolution in plan.entries:
        spec = BACKBONES.get(backbone_name)
        if backbone_name in unavailable:
            continue
        if not spec.weights_available():
            unavailable.add(backbone_name)
            skipped.append(f"skipped {backbone_name}: its weights are not on this machine (download them "
                           f"first; `python -m benchmark run --suite <suite> --dry-run` lists the downloads)")
            say(skipped[-1])
            continue
        build_options = {k: v for k, v in options.get(backbone_name, {}).items() if k != "input_size"}
        backbone = spec.build(input_size=resolution, device=device, **build_options)
        rate = measure_backbone(backbone, resolution, device, plan)
        calibration.table[backbone_name, resolution] = rate
        calibration.batch[backbone_name, resolution] = plan.batch
        say(f"{backbone_name} @ {resolution} px: {rate.forward:,.1f} img/s forward, "
            f"{rate.fwd_bwd:,.1f} img/s forward+backward (batch {plan.batch})")
        del backbone
    return calibration, skipped


def default_entries(backbones: Sequence[str], resolutions: Sequence[int] | None,
                    resolution_of: Callable[[str], set[int]]) -> tuple[tuple[str, int], ...]:
    """Each backbone at ``resolutions`` when given, else at the sizes the suite runs it at."""
    return tuple((b, r) for b in backbones for r in (sorted(set(resolutions)) if resolutions
                                                      else sorted(resolution_of(b))))
