"""Scores of a linear head on the test split: top-1, top-k and worst-group top-1, in percent."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor


def topk_accuracy(logits: Tensor, labels: Tensor, k: int) -> float:
    """Percent of rows whose label is among the ``min(k, C)`` highest logits (ties: lowest index first)."""
    if len(labels) == 0:
        raise ValueError("cannot score an empty set")
    k = max(1, min(int(k), logits.shape[-1]))
    top = logits.topk(k, dim=-1).indices
    hit = (top == labels.view(-1, 1).to(top.device)).any(dim=-1)
    return 100.0 * hit.float().mean().item()


def worst_group_accuracy(predictions: Tensor, labels: Tensor, groups: Tensor) -> float:
    """Lowest top-1 (percent) over the (label, group) pairs present in the data (Waterbirds-style)."""
    correct = (predictions.cpu() == labels.cpu()).float()
    pairs = torch.stack([labels.cpu().long(), groups.cpu().long()], dim=1)
    uniq, inverse = torch.unique(pairs, dim=0, return_inverse=True)
    hits = torch.zeros(len(uniq)).index_add_(0, inverse, correct)
    counts = torch.zeros(len(uniq)).index_add_(0, inverse, torch.ones_like(correct))
    return 100.0 * (hits / counts).min().item()


def score_logits(logits: Tensor, labels: Tensor, groups: Tensor | None = None) -> dict[str, Any]:
    """``{"top1", "top5"}`` (top-5 uses ``min(5, C)``) plus ``"worst_group_top1"`` when groups are given."""
    logits = logits.float()
    labels = labels.to(logits.device).long()
    out: dict[str, Any] = {"top1": topk_accuracy(logits, labels, 1), "top5": topk_accuracy(logits, labels, 5)}
    if groups is not None:
        if len(groups) != len(labels):
            raise ValueError(f"{len(groups)} group labels for {len(labels)} test rows")
        out["worst_group_top1"] = worst_group_accuracy(logits.argmax(dim=-1), labels, groups)
    return out
