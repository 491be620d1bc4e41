"""``herding``: a herding coreset (Welling 2009; the iCaRL exemplar rule).

Per class, greedily add the image that brings the running mean of the chosen embeddings nearest to the
class mean. Not the "farthest point" variant some libraries call herding.
"""

from __future__ import annotations

import torch

from benchmark.registry import METHODS
from benchmark.types import Backbone, LabeledImages, Method, RunContext, SyntheticSet

from .selection import assemble, per_class_features, require_backbone


def herding_order(feats: torch.Tensor, k: int) -> list[int]:
    """Greedy herding over the rows of ``feats`` (n x D): k distinct rows, in the order chosen.

    Step t (1-based) picks the unused row x minimising ||(s + x) / t - mu||, with s the sum of the rows
    chosen so far and mu the mean of all rows; exact ties go to the earlier row.
    """
    x = feats.to(torch.float64)
    n = x.shape[0]
    if k > n:
        raise ValueError(f"cannot herd {k} distinct rows out of {n}")
    mu = x.mean(dim=0)
    sq = x.pow(2).sum(dim=1)
    used = torch.zeros(n, dtype=torch.bool)
    total = torch.zeros_like(mu)
    order = []
    for t in range(1, k + 1):
        target = t * mu - total  # ||total + x - t mu||^2 = ||x||^2 - 2 x.target + const
        score = sq - 2 * (x @ target)
        score[used] = float("inf")
        i = int(torch.argmin(score))
        order.append(i)
        used[i] = True
        total += x[i]
    return order


@METHODS.register("herding")
class Herding(Method):
    """Per class, greedy selection keeping the running mean of the chosen embeddings nearest the class
    mean (Welling 2009 / iCaRL). Deterministic: the seed is not used."""

    name = "herding"
    display_name = "Herding"
    description = "per class, greedy herding: each pick brings the running mean nearest the class mean"

    def synthesize(self, train: LabeledImages, backbone: Backbone | None, ipc: int, seed: int,
                   ctx: RunContext) -> SyntheticSet:
        backbone = require_backbone(backbone, self.name)
        picks = []
        for _, members, feats in per_class_features(train, backbone, ipc, ctx):
            rows = herding_order(feats, ipc)
            picks.append(members[torch.as_tensor(rows, dtype=torch.long)])
        return assemble(train, picks, {"selection": "herding (running mean nearest class mean)"})
