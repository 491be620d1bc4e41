"""Real training images for LGM: resize the short side to ``res``, random crop ``res`` x ``res``, [0, 1].

Small splits are decoded once and kept as uint8 tensors (one per image, short side ``res``); larger ones
are decoded per step. Both paths draw the crop positions from the caller's generator in the same way and
give identical batches, so the choice never changes a result. Either way the rows are decoded through
``benchmark.embedding.decode_rows`` (DataLoader workers), which gives the same pixels in the same order
for any number of workers.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import torch
from torch import Tensor

from benchmark.embedding import check_workers, decode_rows
from benchmark.images import random_crop, resize_short_side
from benchmark.types import LabeledImages

# Decode the whole split up front when its resized uint8 pixels fit in this many bytes.
PRELOAD_MAX_BYTES = 256 * 2**20


class RealImages:
    """``workers``: decode processes (``RunContext.workers``; 0: in this process)."""

    def __init__(self, train: LabeledImages, res: int, interpolation: str = "bilinear",
                 preload: bool | None = None, workers: int = 0) -> None:
        self.train = train
        self.res = res
        self.interpolation = interpolation
        self.workers = check_workers(workers)
        # a module-level function with bound arguments: picklable, should workers ever be spawned
        self._resize = functools.partial(resize_short_side, size=res, interpolation=interpolation)
        if preload is None:
            preload = self.estimated_bytes() <= PRELOAD_MAX_BYTES
        self.cache: list[Tensor] | None = self._decode_all() if preload else None

    @property
    def preloaded(self) -> bool:
        return self.cache is not None

    def estimated_bytes(self) -> int:
        """uint8 bytes at short side ``res``, assuming the first image's aspect ratio for all."""
        if len(self.train) == 0:
            return 0
        first = self.train.dataset[0][self.train.image_column]
        w, h = first.size
        return len(self.train) * 3 * self.res * round(self.res * max(w, h) / max(min(w, h), 1))

    def _decode_all(self) -> list[Tensor]:
        return decode_rows(self.train, range(len(self.train)), self._resize, workers=self.workers)

    def _decode(self, indices: Sequence[int]) -> list[Tensor]:
        if self.cache is not None:
            return [self.cache[i] for i in indices]
        return decode_rows(self.train, indices, self._resize, workers=self.workers)

    def batch(self, indices: Tensor, gen: torch.Generator) -> Tensor:
        """Mx3xRxR float in [0, 1] for the given rows, each with a uniform random R x R crop."""
        idx = [int(i) for i in indices]
        offsets = torch.rand(len(idx), 2, generator=gen)
        out = torch.empty(len(idx), 3, self.res, self.res, dtype=torch.uint8)
        for k, image in enumerate(self._decode(idx)):
            out[k] = random_crop(image, self.res, offsets[k])
        return out.float().div_(255)


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
        if self._order is None or self._order[0] != epoch:
            gen = torch.Generator().manual_seed((self.seed + EPOCH_SEED_OFFSET + 7919 * epoch) % 2**63)
            self._order = (epoch, torch.randperm(self.n_total, generator=gen))
        return self._order[1]

    def __call__(self, t: int) -> Tensor:
        epoch, pos = divmod(t, self.per_epoch)
        return self.order(epoch)[pos * self.batch:(pos + 1) * self.batch]
