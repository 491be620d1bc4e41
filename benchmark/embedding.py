"""The one way images become backbone features: decode rows in DataLoader workers, embed in batches.

Every feature extraction of the project goes through here: the feature cache (real rows, centre crop),
in-memory images (synthetic sets, augmented views, distilled images for ``neighbors``) and LGM's
decode of many real rows. What it guarantees:

* Rows are decoded and preprocessed one image per item by a ``torch.utils.data.DataLoader`` with
  ``workers`` processes (0: in the main process), batches in the order asked (``shuffle=False``).
  Decoding is deterministic (PIL decode, resize, crop; nothing random happens in a worker), so the
  features are bit-identical for any worker count.
* On CUDA, batches come from pinned memory and are copied with ``non_blocking=True``, and the
  forward passes run under ``torch.autocast("cuda", dtype=torch.bfloat16)`` unless ``autocast=False``.
  On the CPU they run in plain fp32, exactly as before this module existed.
* Features come back as float32 on the CPU, one row per image, in order.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from .checks import check_finite
from .data.decode import decode_row
from .types import Backbone, LabeledImages, Preprocess

DEFAULT_BATCH_SIZE = 128
MAX_DEFAULT_WORKERS = 8  # decode workers beyond this rarely pay for their memory (each holds a process)
# decode_rows' chunks: about two per worker so the workers share a list evenly, 16-64 images each (a
# list of up to 16 images is one chunk, decoded in process: a worker's start-up would cost more)
_DECODE_CHUNKS_PER_WORKER = 2
_MIN_DECODE_CHUNK, _MAX_DECODE_CHUNK = 16, 64


def backbone_device(module: torch.nn.Module) -> torch.device:
    """The device a module lives on (its first buffer or parameter; the CPU when it has neither)."""
    for tensor in module.buffers():
        return tensor.device
    for tensor in module.parameters():
        return tensor.device
    return torch.device("cpu")


def default_workers() -> int:
    """Decode workers from the CPUs this process may use: one fewer than them (the main process runs
    the backbone), at most 8 (:data:`MAX_DEFAULT_WORKERS`); 0 (decode in process) on one CPU."""
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


def _loader_workers(workers: int, batches: int) -> int:
    # A worker decodes whole batches: more workers than batches would idle, and a single batch gains
    # nothing from a worker process but its start-up time.
    return 0 if batches <= 1 else min(workers, batches)


class RowImages(Dataset):
    """Rows of a :class:`~benchmark.types.LabeledImages`, in the given order; item ``i`` is row
    ``rows[i]``'s image decoded and passed through ``transform`` (e.g. a
    :class:`~benchmark.types.Preprocess`). ``transform`` must be picklable where workers are spawned."""

    def __init__(self, data: LabeledImages, rows: Sequence[int] | Tensor, transform: Callable[[Any], Any]) -> None:
        self.data = data
        self.images = data.dataset.select_columns([data.image_column])  # decode no other column
        self.column = data.image_column
        self.rows = rows.flatten().tolist() if isinstance(rows, Tensor) else [int(r) for r in rows]
        self.transform = transform

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> Any:
        return self.transform(decode_row(self.data, self.rows[i], self.images))


def row_loader(data: LabeledImages, rows: Sequence[int] | Tensor, transform: Callable[[Any], Any], *,
               batch_size: int, workers: int = 0, pin_memory: bool = False,
               collate_fn: Callable[[list[Any]], Any] | None = None) -> DataLoader:
    """A DataLoader over ``RowImages(data, rows, transform)``: in order, ``workers`` processes at most
    (fewer when there are fewer batches), default collation (stacked tensors) unless ``collate_fn``."""
    dataset = RowImages(data, rows, transform)
    batches = -(-len(dataset) // batch_size)
    return DataLoader(dataset, batch_size=batch_size, shuffle=False,
                      num_workers=_loader_workers(check_workers(workers), batches),
                      pin_memory=pin_memory, collate_fn=collate_fn)


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

    rows = range(len(data)) if rows is None else rows
    preprocess = preprocess or backbone.preprocess
    device = backbone_device(backbone)
    loader = row_loader(data, rows, preprocess, batch_size=int(batch_size), workers=workers,
                        pin_memory=device.type == "cuda")
    desc = desc or f"features {backbone.name} {data.name}/{data.split}"
    with tqdm(total=len(loader.dataset), desc=desc, unit="img", disable=not progress, leave=False) as bar:
        return _embed_batches(backbone, loader, autocast, bar.update)


def embed_tensor(backbone: Backbone, images: Tensor, *, batch_size: int = DEFAULT_BATCH_SIZE,
                 autocast: bool = True) -> Tensor:
    """Features (float32, CPU) of in-memory images (N x 3 x H x W in [0, 1], any device), in batches."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    return _embed_batches(backbone, images.split(int(batch_size)) if len(images) else (), autocast)


def decode_rows(data: LabeledImages, rows: Sequence[int] | Tensor, transform: Callable[[Any], Tensor], *,
                workers: int = 0) -> list[Tensor]:
    """``transform`` of each row's image, in order, decoded by ``workers`` DataLoader processes; for
    images of different sizes (e.g. short side resized, not cropped), so nothing is stacked."""
    n = len(rows)
    workers = check_workers(workers)
    per_worker = -(-n // max(1, workers * _DECODE_CHUNKS_PER_WORKER))
    chunk = max(_MIN_DECODE_CHUNK, min(_MAX_DECODE_CHUNK, per_worker))
    loader = row_loader(data, rows, transform, batch_size=chunk, workers=workers, collate_fn=list)
    return [image for batch in loader for image in batch]
