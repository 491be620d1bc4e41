"""Shared pieces of the real-image selection baselines (centroids, k-means, herding, neighbours).

The features of every training row are fetched once through the feature cache (``ctx.features``: one
entry, embedded by one pass of the image stream, shared by every selecting baseline and the full-data
probe), then sliced class by class; only one class is converted to float64 at a time. The selection
arithmetic runs in float64 on the CPU: it is cheap next to the backbone forward, and float64 keeps
near-ties from being decided by rounding.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor

from benchmark.types import Backbone, LabeledImages, RunContext, SyntheticSet


def require_backbone(backbone: Backbone | None, method: str) -> Backbone:
    if backbone is None:
        raise ValueError(f"method {method!r} selects images in a backbone's feature space; "
                         "it needs a distilling backbone")
    return backbone


def class_members(train: LabeledImages, c: int, need: int) -> Tensor:
    """Rows of class ``c`` in the train split; an error when there are fewer than ``need``."""
    members = train.class_indices(c)
    if len(members) < need:
        raise ValueError(f"class {c} ({train.class_names[c]}) has {len(members)} training images, "
                         f"fewer than ipc={need}; lower --ipc")
    return members


def train_features(train: LabeledImages, backbone: Backbone, ctx: RunContext) -> Tensor:
    """fp32 centre-crop features of every training row (one cache entry), checked for its row count."""
    feats = ctx.features(backbone, train, autocast=False)
    if feats.shape[0] != len(train):
        raise RuntimeError(f"the feature cache returned {feats.shape[0]} rows for the {len(train)} training images")
    return feats.detach().to("cpu")


def per_class_features(train: LabeledImages, backbone: Backbone, ipc: int,
                       ctx: RunContext) -> Iterator[tuple[int, Tensor, Tensor]]:
    """Yield ``(class, member rows, float64 centre-crop features of those rows)``, one class at a time,
    from the features of all rows fetched once."""
    every = train_features(train, backbone, ctx)
    for c in range(train.num_classes):
        members = class_members(train, c, ipc)
        yield c, members, every[members].to(torch.float64)


def greedy_unique_assignment(cost: Tensor) -> list[tuple[int, int]]:
    """Match every row of ``cost`` (k x n, k <= n) to a distinct column, cheapest pair first.

    Repeatedly takes the globally smallest entry among unmatched rows and unused columns, so a row
    whose nearest column was taken by a closer row gets its next nearest unused column. Exact ties go
    to the lower row, then the lower column. Returns ``(row, column)`` pairs in the order matched.
    """
    k, n = cost.shape
    if k > n:
        raise ValueError(f"cannot match {k} rows to {n} distinct columns")
    cost = cost.clone().to(torch.float64)
    pairs = []
    for _ in range(k):
        flat = int(torch.argmin(cost))  # first occurrence: lowest row, then lowest column
        r, col = divmod(flat, n)
        pairs.append((r, col))
        cost[r, :] = float("inf")
        cost[:, col] = float("inf")
    return pairs


def assemble(train: LabeledImages, picks: list[Tensor], metadata: dict,
             allow_repeats: bool = False) -> SyntheticSet:
    """Concatenate per-class picks (in class order, each in the order chosen) into a SyntheticSet.
    ``allow_repeats``: the same image may be picked twice (official neighbours); else it is a bug."""
    indices = torch.cat(picks).long() if picks else torch.empty(0, dtype=torch.long)
    if not allow_repeats and len(torch.unique(indices)) != len(indices):  # a bug guard, never expected
        raise RuntimeError("a selection baseline chose the same training image twice")
    return SyntheticSet(labels=train.labels[indices], indices=indices, metadata=metadata)
