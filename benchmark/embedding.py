"""The one way images become backbone features: rows through the image stream, embedded in batches.

Every feature extraction of the project goes through here: the feature cache (real rows, centre crop),
in-memory images (synthetic sets, augmented views, distilled images for ``neighbors``). Real rows are
decoded by :mod:`benchmark.stream` (a pool of ``workers`` processes, uint8 chunks, batches assembled a
batch ahead in a background thread), so the features are bit-identical for any worker count.

* On CUDA, batches come from pinned memory, are copied on a side stream and converted to float on the
  device, and the forward passes run under ``torch.autocast("cuda", dtype=torch.bfloat16)`` unless
  ``autocast=False``. On the CPU they run in plain fp32, exactly as before the stream existed.
* Features come back as float32 on the CPU, one row per image, in order.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from torch import Tensor

from .checks import check_finite
from .types import Backbone, LabeledImages, Preprocess

DEFAULT_BATCH_SIZE = 128
# decode workers beyond this rarely pay for their memory (each holds a process); a 16-core GPU node needs
# about 15 to keep a ViT-B fed at ImageNet scale (README, "What a suite costs")
MAX_DEFAULT_WORKERS = 32


def backbone_device(module: torch.nn.Module) -> torch.device:
    """The device a module lives on (its first buffer or parameter; the CPU when it has neither)."""
    for tensor in module.buffers():
        return tensor.device
    for tensor in module.parameters():
        return tensor.device
    return torch.device("cpu")


def default_workers() -> int:
    """Decode workers from the CPUs this process may use: one fewer than them (the main process runs
    the backbone), at most :data:`MAX_DEFAULT_WORKERS`; 0 (decode in process) on one CPU."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return min(MAX_DEFAULT_WORKERS, max(0, cpus - 1))


def check_workers(workers: int, what: str = "workers") -> int:
    """``workers`` as an int; a negative or non-integer count is a ValueError that says what to pass."""
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
        raise ValueError(f"{what} must be an integer >= 0 (0 = decode in the main process), got {workers!r}")
    return workers


def compute_dtype(device: torch.device, autocast: bool = True) -> torch.dtype:
    """The dtype the forward passes compute in: bfloat16 on CUDA with ``autocast``, else float32."""
    return torch.bfloat16 if autocast and device.type == "cuda" else torch.float32


def source_dtype(source: object, backbone: torch.nn.Module) -> str:
    """What a feature source (e.g. ``FeatureCache``) computes ``backbone``'s features in when not told
    otherwise: "bfloat16" where it autocasts on CUDA, else "float32" (recorded in the fast probe's rows)."""
    dtype = compute_dtype(backbone_device(backbone), bool(getattr(source, "autocast", False)))
    return str(dtype).removeprefix("torch.")


def _embed_batches(backbone: Backbone, batches: Iterable[Tensor], autocast: bool,
                   on_batch: Callable[[int], Any] | None = None) -> Tensor:
    device = backbone_device(backbone)
    dtype = compute_dtype(device, autocast)
    amp = torch.autocast("cuda", dtype=dtype) if dtype != torch.float32 else contextlib.nullcontext()
    out: list[Tensor] = []
    with torch.no_grad(), amp:
        for x in batches:
            x = x.to(device=device, dtype=torch.float32, non_blocking=True)
            out.append(check_finite(backbone.embed(x).to("cpu", torch.float32), f"features of {backbone.name}"))
            if on_batch is not None:
                on_batch(len(x))
    if not out:
        return torch.empty(0, int(getattr(backbone, "feature_dim", 0)), dtype=torch.float32)
    return torch.cat(out)


def embed_rows(backbone: Backbone, data: LabeledImages, rows: Sequence[int] | Tensor | None = None,
               preprocess: Preprocess | None = None, *, batch_size: int = DEFAULT_BATCH_SIZE, workers: int = 0,
               autocast: bool = True, progress: bool = False, desc: str | None = None) -> Tensor:
    """Features (float32, CPU) of ``data``'s ``rows`` (all when None) decoded with ``preprocess``
    (default: the backbone's centre crop), one row per requested row, in order."""
    from tqdm.auto import tqdm

    from .stream import Decode, ImageStream, Prefetcher, requests, split_batches, to_float

    rows = list(range(len(data))) if rows is None else rows.flatten().tolist() if isinstance(rows, Tensor) \
        else [int(r) for r in rows]
    device = backbone_device(backbone)
    decode = Decode.of(preprocess or backbone.preprocess)
    desc = desc or f"features {backbone.name} {data.name}/{data.split}"
    with ImageStream(data, decode, check_workers(workers)) as stream, \
            Prefetcher(stream, split_batches(requests(rows), int(batch_size)), device=device, depth=2) as batches, \
            tqdm(total=len(rows), desc=desc, unit="img", disable=not progress, leave=False) as bar:
        return _embed_batches(backbone, (to_float(b, device) for b in batches), autocast, bar.update)


def embed_tensor(backbone: Backbone, images: Tensor, *, batch_size: int = DEFAULT_BATCH_SIZE,
                 autocast: bool = True) -> Tensor:
    """Features (float32, CPU) of in-memory images (N x 3 x H x W in [0, 1], any device), in batches."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    return _embed_batches(backbone, images.split(int(batch_size)) if len(images) else (), autocast)
