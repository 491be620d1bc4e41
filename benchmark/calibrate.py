"""``python -m benchmark calibrate``: measure images/s per (backbone, input size) on this device, and
images/s of one decode worker per (dataset, decode op, size) on this machine's copy of the data.

Two passes per backbone entry, each timed after a short warm-up: a no-grad forward (the feature caches
and the probes, under the bf16 autocast ``benchmark.embedding`` uses on CUDA, fp32 on a CPU) and a forward
+ backward to the input (LGM's synthetic pass, under the precision LGM's ``"auto"`` picks: fp16 autocast
on CUDA, fp32 on a CPU). The median of the timed iterations gives images/s.

Decoding is timed in this process with one torch thread, as one DataLoader worker runs it: per row the
read, the decode and the phase's transform (``benchmark.cost.DECODE_OPS``), over a seeded sample of the
train split after an untimed warm-up, for every decode the suite's estimate reads
(``benchmark.cost.suite_decode_needs``). A dataset that is not on this machine is skipped (the estimate
then assumes ``ASSUMED_DECODE`` and says so); a Hub dataset is opened in a fresh offline process, so
nothing is ever downloaded.

The table (``benchmark.cost.Calibration``) is merged into this device's file under
``<cache>/calibration/`` and read by ``run --dry-run``.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .cost import (
    ASSUMED_DECODE,
    ASSUMED_DECODE_SIZE,
    Calibration,
    CalibrationError,
    DecodeNeed,
    DecodeRate,
    Throughput,
    device_name,
    load_calibration,
    today,
)
from .embedding import compute_dtype
from .images import random_crop, resize_short_side
from .registry import BACKBONES, DATASETS
from .types import LabeledImages, Preprocess


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


# -- decoding ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class DecodePlan:
    """How decoding is timed: ``rows`` rows of a seeded sample of the train split, after ``warmup``
    untimed ones."""

    rows: int = 128
    warmup: int = 8
    seed: int = 0

    def __post_init__(self) -> None:
        if self.rows < 1:
            raise ValueError(f"--decode-rows must be at least 1 (0 skips decoding), not {self.rows}")
        if self.warmup < 0:
            raise ValueError(f"--decode-warmup must be 0 or more, not {self.warmup}")


def _center_crop(need: DecodeNeed) -> Callable[[Any], torch.Tensor]:
    return Preprocess(need.side, need.crop, need.interpolation)


def _random_crop(need: DecodeNeed) -> Callable[[Any], torch.Tensor]:
    middle = torch.tensor([0.5, 0.5])  # where the crop lies does not change its cost

    def transform(image: Any) -> torch.Tensor:
        return random_crop(resize_short_side(image, need.side, need.interpolation), need.crop, middle).contiguous()

    return transform


# DECODE_OPS name -> the transform a decode worker applies to one image
DECODE_TRANSFORMS: dict[str, Callable[[DecodeNeed], Callable[[Any], torch.Tensor]]] = {
    "center_crop": _center_crop, "random_crop": _random_crop,
}


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    """As a DataLoader worker runs: one intra-op thread."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def measure_decode(data: LabeledImages, need: DecodeNeed, plan: DecodePlan,
                   transform: Callable[[Any], Any] | None = None) -> DecodeRate:
    """Images/s of one worker decoding ``data``'s rows as ``need`` says (read + decode + the op's
    transform, or ``transform``)."""
    n = len(data)
    if n == 0:
        raise ValueError(f"dataset {data.name!r} has no {data.split} rows to time decoding on")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(plan.seed)).tolist()
    timed = order[:plan.rows]
    warm = order[plan.rows:plan.rows + plan.warmup] or timed[:plan.warmup]  # small splits: the same rows
    transform = transform or DECODE_TRANSFORMS[need.op](need)
    column = data.image_column
    sizes = []
    with _one_thread():
        for row in warm:
            transform(data.dataset[row][column])
        started, cpu_started = time.perf_counter(), time.process_time()
        for row in timed:
            image = data.dataset[row][column]
            sizes.append(image.size)
            transform(image)
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    size = (statistics.median_low(w for w, _ in sizes), statistics.median_low(h for _, h in sizes))
    return DecodeRate(len(timed) / max(elapsed, 1e-9), size, len(timed), len(timed) / max(cpu, 1e-9))


def dataset_decode_rates(dataset: str, needs: Sequence[DecodeNeed], plan: DecodePlan
                         ) -> tuple[dict[tuple[str, str, int], DecodeRate], str | None]:
    """Every rate of ``needs`` on ``dataset``'s train split, or ({}, why) when it cannot be opened here."""
    from .data.spec import DatasetError

    try:
        train = DATASETS.get(dataset).load("train", allow_missing_classes=True)  # timing only: any rows do
    except (DatasetError, OSError, ValueError) as err:
        return {}, str(err).split(". ")[0] or type(err).__name__
    return {need.key: measure_decode(train, need, plan) for need in needs}, None


OFFLINE_ENV = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")
BUSY_SHARE = 0.7  # a wall rate under this share of the CPU-time rate: the timing was disturbed


def _is_local(dataset: str) -> bool:
    """Whether the dataset is read from files on this machine (bundled, a path, LGM_BENCH_DATA_<NAME>)."""
    from .data.spec import DatasetError

    try:
        return bool(getattr(DATASETS.get(dataset).resolved().source, "is_local", False))
    except DatasetError:
        return True  # a bad LGM_BENCH_DATA_<NAME>: opening it here reports the problem


def offline_process(fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)`` in a fresh process whose Hugging Face libraries are offline (they read the setting
    when imported): a dataset that is not cached fails there instead of downloading."""
    import multiprocessing

    saved = {name: os.environ.get(name) for name in OFFLINE_ENV}
    os.environ.update(dict.fromkeys(OFFLINE_ENV, "1"))
    try:
        pool = multiprocessing.get_context("spawn").Pool(1)  # started here, with the offline environment
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    with pool:
        return pool.apply(fn, args)


def calibrate_decode(calibration: Calibration, needs: Sequence[DecodeNeed], plan: DecodePlan,
                     say: Callable[[str], None] = print) -> list[str]:
    """Measure ``needs`` on every dataset that is on this machine, into ``calibration.decode``; returns
    the datasets skipped, with why."""
    skipped: list[str] = []
    by_dataset: dict[str, list[DecodeNeed]] = {}
    for need in needs:
        by_dataset.setdefault(need.dataset, []).append(need)
    w, h = ASSUMED_DECODE_SIZE
    assumed = ", ".join(f"{op} {rate.images_per_s:.0f}" for op, rate in ASSUMED_DECODE.items())
    for dataset, wanted in by_dataset.items():
        if _is_local(dataset):
            rates, why = dataset_decode_rates(dataset, wanted, plan)
        else:
            rates, why = offline_process(dataset_decode_rates, dataset, wanted, plan)
        if why is not None:
            skipped.append(f"decode of {dataset}: not measured, the data is not on this machine ({why}); the "
                           f"estimate ASSUMES {assumed} img/s per worker on {w}x{h} JPEGs")
            say(skipped[-1])
            continue
        for need in wanted:
            rate = rates[need.key]
            calibration.decode[need.key] = rate
            say(f"decode {dataset} {need.op} @ {need.side} px: {rate.describe()} ({rate.rows} rows, one process)")
            if rate.cpu_images_per_s and rate.images_per_s < BUSY_SHARE * rate.cpu_images_per_s:
                say(f"  note: {rate.cpu_images_per_s:,.0f} img/s per second of CPU time: the machine was busy or "
                    "the rows slow to read while this was timed; the estimate uses the wall rate (calibrate again "
                    "on an idle machine to compare)")
    return skipped
