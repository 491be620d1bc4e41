"""The rows of a rehearsal (``run --limit``): N images per class, or a fraction of each class, of a split.

The rows of each class are ranked by a hash of (``LIMIT_SEED``, row index), splitmix64 on uint64, which
is exact integer arithmetic: the same rows on every machine, for every backbone and numpy version, and
without reading an image. The first N of each class in that order are kept (all of a class with
fewer), in their original row order. Nothing is copied: the kept rows are an indices mapping on the
split's (memory-mapped) table, and the split's content fingerprint is taken again over them, so the
limited split keys its own caches and artifacts.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ..rehearsal import LIMIT_SEED, Limit, check_limit
from ..types import LabeledImages
from .fingerprint import fingerprint

_MASK = np.uint64(0xFFFFFFFFFFFFFFFF)


def row_hash(rows: np.ndarray, seed: int = LIMIT_SEED) -> np.ndarray:
    """splitmix64 of ``seed * 2**32 + row`` (uint64, wrapping): a fixed pseudo-random rank per row."""
    with np.errstate(over="ignore"):
        z = (np.asarray(rows, dtype=np.uint64) + np.uint64(seed) * np.uint64(1 << 32)) & _MASK
        z = z + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def per_class_counts(counts: np.ndarray, limit: Limit) -> np.ndarray:
    """How many rows of each class a limit keeps: ``min(N, n)``, or ``round(f * n)`` (at least 1) of n."""
    limit = check_limit(limit)
    counts = np.asarray(counts, dtype=np.int64)
    if isinstance(limit, int):
        return np.minimum(counts, limit)
    kept = np.floor(counts * limit + 0.5).astype(np.int64)  # round half up: no banker's rounding
    return np.where(counts > 0, np.clip(kept, 1, counts), 0)


def limited_rows(labels: np.ndarray, limit: Limit, seed: int = LIMIT_SEED) -> np.ndarray:
    """The row indices (sorted) a limit keeps of a split with these labels."""
    labels = np.asarray(labels, dtype=np.int64)
    n = len(labels)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    rows = np.arange(n, dtype=np.int64)
    order = np.lexsort((row_hash(rows, seed), labels))  # by class, then by hash rank within the class
    ranked = labels[order]
    _, first, counts = np.unique(ranked, return_index=True, return_counts=True)
    rank = np.arange(n) - np.repeat(first, counts)  # position within its class in hash order
    keep = per_class_counts(counts, limit)
    kept = order[rank < np.repeat(keep, counts)]
    return np.sort(kept)


def limited(images: LabeledImages, limit: Limit | None) -> LabeledImages:
    """``images`` cut to the limit's rows, with their own fingerprint; ``images`` itself when no limit."""
    if limit is None:
        return images
    rows = limited_rows(images.labels.numpy(), limit)
    subset = images.dataset.select(rows)
    digest = fingerprint(subset, split=images.split, class_names=images.class_names,
                         image_column=images.image_column, label_column=images.label_column,
                         group_column=images.group_column, revision=images.revision)
    return dataclasses.replace(images, dataset=subset, fingerprint=digest, _labels=None)
