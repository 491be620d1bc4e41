"""``centroids``: per class, the real images nearest the class-mean embedding (the paper's "Centroids")."""

from __future__ import annotations

import torch

from benchmark.registry import METHODS
from benchmark.types import Backbone, LabeledImages, Method, RunContext, SyntheticSet

from .selection import assemble, per_class_features, require_backbone


@METHODS.register("centroids")
class Centroids(Method):
    """Per class, the ``ipc`` real images whose centre-crop embeddings are nearest (L2) to the class mean.

    Deterministic: the seed is not used. Picks are ordered nearest first; exact distance ties go to the
    earlier training row.
    """

    name = "centroids"
    display_name = "Centroids"
    description = "per class, the ipc real images nearest (L2) to the class-mean embedding"

    def synthesize(self, train: LabeledImages, backbone: Backbone | None, ipc: int, seed: int,
                   ctx: RunContext) -> SyntheticSet:
        backbone = require_backbone(backbone, self.name)
        picks = []
        for _, members, feats in per_class_features(train, backbone, ipc, ctx):
            dist = (feats - feats.mean(dim=0, keepdim=True)).pow(2).sum(dim=1)
            order = torch.sort(dist, stable=True).indices[:ipc]
            picks.append(members[order])
        return assemble(train, picks, {"selection": "nearest to class mean (L2)"})
