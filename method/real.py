"""Real training images for LGM: resize the short side to ``res``, random crop ``res`` x ``res``, [0, 1].

The rows are decoded by one :class:`benchmark.stream.ImageStream` that lives as long as the run (its
workers never restart between steps) and sends the resized images as uint8. A split whose resized
pixels fit the machine's preload budget (``benchmark.budgets``) is decoded once into one contiguous
buffer; a larger one is decoded step by step, and when the loop knows the rows of the coming steps
ahead (the official epoch loader, :class:`EpochBatches`), :meth:`RealImages.plan` decodes step t+1's
rows in the background while step t computes. Either way the crop positions are drawn from the caller's
generator at the step, in the same order, and the crop is cut in this process, so preloading, planning
and the number of workers never change a result.
"""

from __future__ import annotations

import collections
import logging
import time
from collections.abc import Callable, Iterator, Sequence

import torch
from torch import Tensor

from benchmark.budgets import preload_budget_bytes
from benchmark.embedding import check_workers
from benchmark.images import random_crop
from benchmark.stream import Decode, ImageStream, Packed, Prefetcher, requests, to_float
from benchmark.types import LabeledImages

log = logging.getLogger(__name__)


class RealImages:
    """The training split's images for LGM. ``workers``: decode processes (``RunContext.workers``; 0: in
    this process). ``preload``: None decides from the preload budget (``budget`` bytes, default
    ``benchmark.budgets.preload_budget_bytes()``)."""

    def __init__(self, train: LabeledImages, res: int, interpolation: str = "bilinear",
                 preload: bool | None = None, workers: int = 0, budget: int | None = None) -> None:
        self.train = train
        self.res = res
        self.interpolation = interpolation
        self.workers = check_workers(workers)
        self.stream = ImageStream(train, Decode(res, None, interpolation), self.workers)
        if preload is None:
            preload = self.estimated_bytes() <= (preload_budget_bytes() if budget is None else budget)
        # preloaded: every row resized once, in one buffer (stacked when all share a shape, e.g. square images)
        self.cache: Tensor | Packed | None = None
        if preload:
            self.cache = self.stream.decode(requests(range(len(train))))
            self.stream.close()  # nothing left to decode
        self._ahead: Prefetcher | None = None
        self._planned: collections.deque[list[int]] | None = None
        self._sync_seconds = 0.0  # decoding in step (rows not planned ahead)
        self._ahead_seconds = 0.0  # waits of closed plans

    @property
    def preloaded(self) -> bool:
        return self.cache is not None

    @property
    def wait_seconds(self) -> float:
        """Seconds the loop waited for real images it had planned (decoded ahead) or asked for."""
        return self._ahead_seconds + (self._ahead.wait_seconds if self._ahead is not None else 0.0) \
            + self._sync_seconds

    def estimated_bytes(self) -> int:
        """uint8 bytes at short side ``res``, assuming the first image's aspect ratio for all."""
        if len(self.train) == 0:
            return 0
        first = self.train.dataset[0][self.train.image_column]
        w, h = first.size
        return len(self.train) * 3 * self.res * round(self.res * max(w, h) / max(min(w, h), 1))

    def plan(self, rows_of_step: Callable[[int], Tensor], start: int, stop: int) -> None:
        """The rows steps ``start``..``stop - 1`` will ask for, known ahead (``rows_of_step(t)``, which
        must draw from no generator the loop uses): decoded one step ahead in the background."""
        self.close()
        if self.cache is not None or start >= stop:
            return
        planned: collections.deque[list[int]] = collections.deque()

        def batches() -> Iterator[list]:  # read by the stream's pass, mostly in the prefetch thread
            for t in range(start, stop):
                rows = rows_of_step(t).tolist()
                planned.append(rows)  # before the batch's first chunk is decoded
                yield requests(rows)

        self._planned = planned
        self._ahead = Prefetcher(self.stream, batches(), depth=1)

    def _decode(self, indices: list[int]) -> Tensor | Packed | Sequence[Tensor]:
        if self.cache is not None:
            return [self.cache[i] for i in indices]
        if self._ahead is not None and self._planned is not None:
            batch = next(self._ahead)
            if self._planned.popleft() == indices:  # the rows the batch holds, as decoded
                return batch
            log.warning("LGM real images: a step asked for other rows than planned; decoding in step from now on")
            self.close()
        started = time.perf_counter()
        found = self.stream.decode(requests(indices))
        self._sync_seconds += time.perf_counter() - started
        return found

    def batch(self, indices: Tensor, gen: torch.Generator, device: torch.device | None = None) -> Tensor:
        """Mx3xRxR float in [0, 1] for the given rows, each with a uniform random R x R crop (on
        ``device`` when given: the uint8 crops are copied there, then converted)."""
        idx = [int(i) for i in indices]
        offsets = torch.rand(len(idx), 2, generator=gen)
        pin = device is not None and device.type == "cuda"
        out = torch.empty(len(idx), 3, self.res, self.res, dtype=torch.uint8, pin_memory=pin)
        images = self._decode(idx)
        for k in range(len(idx)):
            out[k] = random_crop(images[k], self.res, offsets[k])
        return to_float(out, device)

    def close(self) -> None:
        """Stop decoding ahead (the stream's workers stay for synchronous decodes)."""
        if self._ahead is not None:
            self._ahead.close()
            self._ahead_seconds += self._ahead.wait_seconds
        self._ahead, self._planned = None, None


def sample_indices(n_total: int, n: int, gen: torch.Generator) -> Tensor:
    """``n`` rows drawn uniformly from the whole split, without replacement within a batch when possible."""
    if n_total == 0:
        raise ValueError("the training split is empty")
    perms = [torch.randperm(n_total, generator=gen) for _ in range(-(-n // n_total))]
    return torch.cat(perms)[:n]


def sample_balanced(class_rows: Sequence[Tensor], per_class: int, gen: torch.Generator) -> Tensor:
    """``per_class`` rows of every class, uniform within the class (without replacement when possible)."""
    picks = []
    for rows in class_rows:
        if len(rows) == 0:
            raise ValueError("a class has no training images")
        picks.append(rows[sample_indices(len(rows), per_class, gen)])
    return torch.cat(picks)


EPOCH_SEED_OFFSET = 0x2545F491  # each epoch's shuffle has its own generator, derived from the run's seed


class EpochBatches:
    """The official real loader (shuffle each epoch, batches of ``batch`` rows, the incomplete last
    batch dropped), addressed by batch number: batch ``t`` of the run is batch ``t % per_epoch`` of
    epoch ``t // per_epoch``, whose order comes from a generator seeded by (seed, epoch). Holding no
    state, it resumes from a checkpoint by the update count alone."""

    def __init__(self, n_total: int, batch: int, seed: int) -> None:
        if batch > n_total:
            raise ValueError(
                f"the real batch (ipc * augs_per_batch * classes = {batch} images) is larger than the training "
                f"split ({n_total} images): the official loader drops the incomplete batch and would yield "
                "nothing. Lower augs_per_batch, or use real_sampling='uniform'")
        self.n_total = n_total
        self.batch = batch
        self.seed = seed
        self.per_epoch = n_total // batch
        self._order: tuple[int, Tensor] | None = None

    def order(self, epoch: int) -> Tensor:
        cached = self._order  # read once: the prefetch thread asks for steps ahead of the loop
        if cached is None or cached[0] != epoch:
            gen = torch.Generator().manual_seed((self.seed + EPOCH_SEED_OFFSET + 7919 * epoch) % 2**63)
            cached = self._order = (epoch, torch.randperm(self.n_total, generator=gen))
        return cached[1]

    def __call__(self, t: int) -> Tensor:
        epoch, pos = divmod(t, self.per_epoch)
        return self.order(epoch)[pos * self.batch:(pos + 1) * self.batch]
