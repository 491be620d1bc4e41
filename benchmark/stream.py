"""The one image stream: rows of a split become uint8 pixels in a persistent pool of decode workers.

Every real-image path of the project goes through here (the feature cache, LGM's real batches, the
paper probe's epochs, the baselines through the cache). What it guarantees:

* **Same pixels for any worker count.** A worker does only what :class:`Decode` says to one row: decode,
  resize the short side (antialiased), and crop a square at the position the request carries (two
  uniforms drawn in the main process) or at the centre. Nothing random happens in a worker, so the
  pixels are bit-identical for 0, 1 or 8 workers.
* **uint8 on the wire, stacked.** A worker returns one tensor per *chunk* of rows (fixed-size crops
  stacked; whole resized images packed into one flat buffer, :class:`Packed`), so a chunk in shared
  memory holds one file descriptor, never one per image (a 1024 open-file limit is safe), and a quarter
  of the bytes float32 would take. Chunks are sized so that all those in flight fit in half of the free
  ``/dev/shm`` (``benchmark.budgets``; Docker gives 64 MB).
* **A pool per phase.** :class:`ImageStream` keeps its workers for as long as it lives (a whole LGM run,
  every epoch of a probe), so no phase pays worker start-up per step or per epoch.
* **Ahead of the compute.** :class:`Prefetcher` assembles consumer batches in a background thread from
  requests known ahead (LGM's epoch order, a probe epoch's order and crops), into pinned memory on CUDA,
  and copies them to the device on a side stream one batch ahead; the consumer converts uint8 to float
  on the device (:func:`to_float`). The seconds the consumer waited are counted (``wait_seconds``).
"""

from __future__ import annotations

import collections
import contextlib
import queue
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from .budgets import wire_budget_bytes
from .data.decode import decode_row
from .images import random_crop, resize_short_side
from .types import LabeledImages, Preprocess

PREFETCH_CHUNKS = 2  # chunks in flight per worker (DataLoader's prefetch_factor)
MAX_CHUNK = 64  # rows per wire chunk at most (fewer when the shared-memory budget says so)
LONG_SIDE_GUESS = 1.5  # resized-but-uncropped images: long side / short side assumed when sizing chunks

Request = tuple[int, Any]  # (row, crop uniforms (u0, u1) in [0, 1) or None for the centre)


@dataclass(frozen=True)
class Decode:
    """What a worker does to one row: decode, resize the short side to ``resize`` (antialiased, with
    ``interpolation``), then crop a ``crop`` x ``crop`` square, at the centre (request ``None``) or where
    the request's two uniforms put it (``benchmark.images.random_crop``). ``crop=None`` keeps the
    resized image whole (3 x H x W, H or W = ``resize``)."""

    resize: int
    crop: int | None = None
    interpolation: str = "bilinear"

    @classmethod
    def of(cls, preprocess: Preprocess) -> Decode:
        """The decode of a test-time ``Preprocess`` (resize, centre crop)."""
        return cls(preprocess.resize, preprocess.crop, preprocess.interpolation)

    def __call__(self, image: Any, u: Any = None) -> Tensor:
        from torchvision.transforms import functional as TF

        pixels = resize_short_side(image, self.resize, self.interpolation)
        if self.crop is None:
            return pixels
        if u is None:
            return TF.center_crop(pixels, [self.crop, self.crop])
        return random_crop(pixels, self.crop, torch.as_tensor(u)).contiguous()

    def item_bytes(self) -> int:
        """uint8 bytes of one decoded row (a guess for uncropped images)."""
        if self.crop is not None:
            return 3 * self.crop * self.crop
        return int(3 * self.resize * self.resize * LONG_SIDE_GUESS)


@dataclass
class Packed:
    """Images of different sizes in one flat uint8 buffer: image ``i`` is ``flat[offsets[i]:offsets[i+1]]``
    viewed as ``shapes[i]`` (C x H x W)."""

    flat: Tensor
    shapes: Tensor  # N x 3, int64

    def __post_init__(self) -> None:
        sizes = self.shapes.prod(1) if len(self.shapes) else torch.zeros(0, dtype=torch.int64)
        self.offsets = torch.cat([torch.zeros(1, dtype=torch.int64), sizes.cumsum(0)])

    @classmethod
    def of(cls, images: Sequence[Tensor], shared: bool = False) -> Packed:
        shapes = torch.tensor([list(im.shape) for im in images], dtype=torch.int64).reshape(-1, 3)
        flat = torch.empty(int(shapes.prod(1).sum()) if len(images) else 0, dtype=torch.uint8)
        if shared:  # a worker's result: made in shared memory, so the queue does not copy it again
            flat.share_memory_()
        if images:
            torch.cat([im.reshape(-1) for im in images], out=flat)
        return cls(flat, shapes)

    def __len__(self) -> int:
        return len(self.shapes)

    def __getitem__(self, i: int) -> Tensor:
        a, b = int(self.offsets[i]), int(self.offsets[i + 1])
        return self.flat[a:b].view(*self.shapes[i].tolist())

    @property
    def nbytes(self) -> int:
        return self.flat.numel()

    def pin_memory(self) -> Packed:
        return Packed(self.flat.pin_memory(), self.shapes)


Chunk = Tensor | Packed  # what a worker returns for a list of requests


class _Rows(Dataset):
    """The worker side: ``dataset[(row, u)]`` is that row's image, as RGB (``benchmark.data.decode``: a
    file that does not decode is an error naming the row and its file), through ``decode``."""

    def __init__(self, data: LabeledImages, decode: Decode) -> None:
        self.data = data
        self.images = data.dataset.select_columns([data.image_column])  # decode no other column
        self.decode = decode

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, request: Request) -> Tensor:
        row, u = request
        return self.decode(decode_row(self.data, int(row), self.images), u)


def _collate(items: list[Tensor]) -> Chunk:
    """A chunk as one tensor: stacked when every image has the same shape, else packed."""
    in_worker = torch.utils.data.get_worker_info() is not None
    if items and all(t.shape == items[0].shape for t in items):
        out = torch.empty((len(items), *items[0].shape), dtype=torch.uint8)
        if in_worker:
            out.share_memory_()
        return torch.stack(items, out=out)
    return Packed.of(items, shared=in_worker)


class _Schedule:
    """The DataLoader's batch sampler: the wire chunks of the current pass (set before each pass), made
    lazily from the pass's consumer batches; ``sizes`` holds (chunks, rows) of each batch cut so far."""

    def __init__(self) -> None:
        self.source: Iterable[list[Request]] = ()
        self.sizes: collections.deque[tuple[int, int]] = collections.deque()

    def plan(self, batches: Iterable[Sequence[Request]], chunk: int) -> None:
        def cut() -> Iterator[list[Request]]:
            try:
                for batch in batches:
                    parts = _cut(batch, chunk)
                    self.sizes.append((len(parts), len(batch)))  # before its first chunk is handed out
                    yield from parts
            except Exception as err:  # the DataLoader would raise it early, before batches already cut
                self.error = err

        self.sizes.clear()
        self.error: Exception | None = None
        self.source = cut()

    def __iter__(self) -> Iterator[list[Request]]:
        return iter(self.source)


def _cut(batch: Sequence[Request], chunk: int) -> list[list[Request]]:
    batch = list(batch)
    if not batch:
        raise ValueError("the image stream was asked for an empty batch")
    return [batch[s:s + chunk] for s in range(0, len(batch), chunk)]


@dataclass
class BatchChunks:
    """One consumer batch of a pass: its row count and its chunks, to be read in order (each once)
    before the pass's next batch."""

    rows: int
    chunks: Iterator[Chunk]


class _Pass:
    """One pass of the pool over consecutive consumer batches (:meth:`ImageStream.batches`).

    Made in the calling thread (the workers of a new pool fork there), read in any one thread."""

    def __init__(self, stream: ImageStream, batches: Iterable[Sequence[Request]]) -> None:
        self.stream = stream
        self.schedule = stream._schedule
        self.schedule.plan(batches, stream.chunk)
        self.loader = iter(stream._dataloader())

    def __iter__(self) -> _Pass:
        return self

    def _read(self) -> Chunk:
        started = time.perf_counter()
        try:
            chunk = next(self.loader)
        finally:
            self.stream.read_seconds += time.perf_counter() - started
        self.stream.decoded += len(chunk)
        return chunk

    def __next__(self) -> BatchChunks:
        try:
            first = self._read()
        except StopIteration:  # the pass is over: after every good batch, what made the batches failed
            if self.schedule.error is not None:
                raise self.schedule.error from None
            raise
        count, rows = self.schedule.sizes.popleft()

        def chunks() -> Iterator[Chunk]:
            yield first
            for _ in range(count - 1):
                yield self._read()

        return BatchChunks(rows, chunks())


class _InProcess:
    """A pass without workers: each batch decoded chunk by chunk in the thread that reads it."""

    def __init__(self, stream: ImageStream, batches: Iterable[Sequence[Request]]) -> None:
        self.stream, self.batches = stream, iter(batches)
        self.rows = _Rows(stream.data, stream.decode_spec)

    def __iter__(self) -> _InProcess:
        return self

    def __next__(self) -> BatchChunks:
        parts = _cut(next(self.batches), self.stream.chunk)

        def chunks() -> Iterator[Chunk]:
            for part in parts:
                started = time.perf_counter()
                chunk = _collate([self.rows[r] for r in part])
                self.stream.read_seconds += time.perf_counter() - started
                self.stream.decoded += len(part)
                yield chunk

        return BatchChunks(sum(len(p) for p in parts), chunks())


def chunk_rows(decode: Decode, workers: int, budget: int | None = None) -> int:
    """Rows per wire chunk: every chunk in flight (``workers`` x :data:`PREFETCH_CHUNKS`, plus two being
    copied) fits in ``budget`` bytes (default: half of the free ``/dev/shm``); between 1 and
    :data:`MAX_CHUNK`."""
    if workers == 0:
        return MAX_CHUNK
    budget = wire_budget_bytes() if budget is None else budget
    return max(1, min(MAX_CHUNK, budget // (decode.item_bytes() * (workers * PREFETCH_CHUNKS + 2))))


class ImageStream:
    """A pool of ``workers`` decode processes for one split and one :class:`Decode`, alive until
    :meth:`close` (or the end of a ``with`` block); 0 workers: decode in this process."""

    def __init__(self, data: LabeledImages, decode: Decode, workers: int = 0, *,
                 chunk: int | None = None) -> None:
        from .embedding import check_workers

        self.data = data
        self.decode_spec = decode
        self.workers = check_workers(workers)
        self.chunk = chunk or chunk_rows(decode, self.workers)
        self._schedule = _Schedule()
        self._loader: DataLoader | None = None
        self.decoded = 0  # rows decoded so far
        self.read_seconds = 0.0  # time the reading thread spent decoding or waiting for chunks

    def _dataloader(self) -> DataLoader:
        if self._loader is None:
            persistent = self.workers > 0
            self._loader = DataLoader(_Rows(self.data, self.decode_spec), batch_sampler=self._schedule,
                                      num_workers=self.workers, collate_fn=_collate,
                                      persistent_workers=persistent,
                                      prefetch_factor=PREFETCH_CHUNKS if persistent else None)
        return self._loader

    def batches(self, batches: Iterable[Sequence[Request]]) -> Iterator[BatchChunks]:
        """Each consumer batch's chunks, in order, from one pass of the pool over all of them (``batches``
        may be lazy: the workers decode ahead across batch boundaries). Start it in the thread that
        owns the stream (a new pool's workers fork there); read it from one thread."""
        return _InProcess(self, batches) if self.workers == 0 else _Pass(self, batches)

    def decode(self, requests: Sequence[Request], pin: bool = False) -> Chunk:
        """All ``requests`` decoded into one buffer (stacked, or :class:`Packed`), pinned when asked; a
        single chunk's worth is decoded in this process (a worker round trip would buy nothing)."""
        requests = list(requests)
        if not requests:
            return Packed.of([])
        one = _InProcess(self, [requests]) if len(requests) <= self.chunk else self.batches([requests])
        return assemble(next(iter(one)).chunks, len(requests), pin)

    def close(self) -> None:
        """Stop the workers (a later pass starts new ones)."""
        if self._loader is not None:
            iterator = getattr(self._loader, "_iterator", None)
            if iterator is not None and hasattr(iterator, "_shutdown_workers"):
                iterator._shutdown_workers()
            self._loader = None

    def __enter__(self) -> ImageStream:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()


def assemble(chunks: Iterable[Chunk], n: int, pin: bool = False) -> Chunk:
    """Consecutive chunks of one batch of ``n`` rows as one buffer (pinned when asked): stacked while
    every image has one shape, else :class:`Packed`. Each chunk is copied as it arrives and dropped, so
    the shared memory (and the file descriptor) of a chunk never outlives it."""
    stacked: Tensor | None = None
    filled = 0
    packed: _Growing | None = None
    for chunk in chunks:
        if packed is None and isinstance(chunk, Tensor) and (stacked is None or chunk.shape[1:] == stacked.shape[1:]):
            if stacked is None:
                stacked = torch.empty((n, *chunk.shape[1:]), dtype=torch.uint8, pin_memory=pin)
            stacked[filled:filled + len(chunk)].copy_(chunk)
            filled += len(chunk)
            continue
        if packed is None:  # images of another shape: what was stacked so far moves to a packed buffer
            packed = _Growing(n, pin)
            if stacked is not None:
                packed.add(list(stacked[:filled]))
        packed.add(list(chunk) if isinstance(chunk, Tensor) else [chunk[i] for i in range(len(chunk))])
    if packed is not None:
        return packed.done()
    if stacked is None:
        return Packed.of([])
    return stacked


class _Growing:
    """A flat uint8 buffer that grows geometrically as packed images are appended (one copy each)."""

    def __init__(self, n: int, pin: bool) -> None:
        self.pin = pin
        self.flat = torch.empty(0, dtype=torch.uint8, pin_memory=pin)
        self.used = 0
        self.shapes: list[list[int]] = []

    def add(self, images: Sequence[Tensor]) -> None:
        need = self.used + sum(im.numel() for im in images)
        if need > self.flat.numel():
            grown = torch.empty(max(need, int(self.flat.numel() * 1.5)), dtype=torch.uint8, pin_memory=self.pin)
            grown[:self.used].copy_(self.flat[:self.used])
            self.flat = grown
        for im in images:
            self.flat[self.used:self.used + im.numel()].copy_(im.reshape(-1))
            self.used += im.numel()
            self.shapes.append(list(im.shape))

    def done(self) -> Packed:
        shapes = torch.tensor(self.shapes, dtype=torch.int64).reshape(-1, 3)
        return Packed(self.flat[:self.used], shapes)


def decode_rows(data: LabeledImages, rows: Sequence[int] | Tensor, decode: Decode, workers: int = 0,
                crops: Tensor | None = None) -> Chunk:
    """Rows decoded once into one contiguous buffer by a pool that lives for this call: stacked uint8
    (N x 3 x S x S) when ``decode`` crops, else :class:`Packed`. ``crops``: N x 2 uniforms placing the
    crops (None: centre)."""
    rows = rows.flatten().tolist() if isinstance(rows, Tensor) else [int(r) for r in rows]
    with ImageStream(data, decode, workers) as stream:
        return stream.decode(requests(rows, crops))


def requests(rows: Sequence[int], crops: Tensor | None = None) -> list[Request]:
    """(row, crop uniforms) pairs; ``crops``: one row of two uniforms per row, None for centre crops."""
    if crops is None:
        return [(int(r), None) for r in rows]
    return [(int(r), (float(u[0]), float(u[1]))) for r, u in zip(rows, crops.tolist(), strict=True)]


def to_float(x: Tensor, device: torch.device | None = None) -> Tensor:
    """uint8 pixels -> float32 in [0, 1] on ``device`` (the conversion runs where the pixels land)."""
    if device is not None and x.device != device:
        x = x.to(device, non_blocking=True)
    return x.float().div_(255) if x.dtype == torch.uint8 else x.float()


class Prefetcher:
    """Consumer batches assembled in a background thread, ``depth`` batches ahead of the consumer.

    ``batches`` yields, lazily and in order, the requests of each consumer batch (it runs in the
    background thread, so it must draw from no generator the consumer uses). On CUDA each batch is
    assembled in pinned memory and copied to ``device`` on a side stream; :meth:`__next__` makes the
    consumer's stream wait for that copy. ``wait_seconds``: how long the consumer waited."""

    def __init__(self, stream: ImageStream, batches: Iterable[Sequence[Request]], *,
                 device: torch.device | None = None, depth: int = 1) -> None:
        self.stream = stream
        self.device = device if device is not None and device.type == "cuda" else None
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, depth))
        self._stop = threading.Event()
        self.wait_seconds = 0.0
        self._pass = stream.batches(batches)  # here: a new pool's workers fork in the calling thread
        self._thread = threading.Thread(target=self._run, name="lgm-bench-prefetch", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        side = torch.cuda.Stream(self.device) if self.device is not None else None
        try:
            for part in self._pass:
                if self._stop.is_set():
                    return
                batch: Any = assemble(part.chunks, part.rows, pin=side is not None)
                event = None
                if side is not None:
                    with torch.cuda.stream(side):
                        batch = _to_device(batch, self.device)
                        event = torch.cuda.Event()
                        event.record(side)
                if not self._put((batch, event)):
                    return
            self._put(StopIteration())
        except BaseException as err:  # handed to the consumer, raised there
            self._put(err)

    def _put(self, item: Any) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def __iter__(self) -> Prefetcher:
        return self

    def __next__(self) -> Any:
        started = time.perf_counter()
        item = self._queue.get()
        self.wait_seconds += time.perf_counter() - started
        if isinstance(item, StopIteration):
            self._queue.put(item)  # later calls stop too
            raise StopIteration
        if isinstance(item, BaseException):
            raise item
        batch, event = item
        if event is not None:
            torch.cuda.current_stream(self.device).wait_event(event)
        return batch

    def close(self) -> None:
        self._stop.set()
        with contextlib.suppress(queue.Empty):
            while True:
                self._queue.get_nowait()
        self._thread.join(timeout=5)

    def __enter__(self) -> Prefetcher:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _to_device(batch: Chunk, device: torch.device) -> Chunk:
    if isinstance(batch, Packed):
        return Packed(batch.flat.to(device, non_blocking=True), batch.shapes)
    return batch.to(device, non_blocking=True)


def split_batches(items: Sequence[Request], size: int) -> Iterator[list[Request]]:
    """``items`` in consecutive batches of at most ``size``."""
    for start in range(0, len(items), max(1, size)):
        yield list(items[start:start + size])

