"""``random_real``: ipc real training images drawn uniformly per class (the paper's "Random" row)."""

from __future__ import annotations

import torch

from benchmark.registry import METHODS
from benchmark.types import Backbone, LabeledImages, Method, RunContext, SyntheticSet


@METHODS.register("random_real")
class RandomReal(Method):
    """ipc random real training images per class; one probe seed per selection seed."""

    name = "random_real"
    display_name = "Random"
    description = "ipc random real training images per class (paper baseline 'Random')"
    uses_backbone = False
    paired_seeds = True

    def synthesize(self, train: LabeledImages, backbone: Backbone | None, ipc: int, seed: int,
                   ctx: RunContext) -> SyntheticSet:
        gen = torch.Generator().manual_seed(seed)
        picks = []
        for c in range(train.num_classes):
            members = train.class_indices(c)
            if len(members) < ipc:
                raise ValueError(f"class {c} ({train.class_names[c]}) has {len(members)} training images, "
                                 f"fewer than ipc={ipc}; lower --ipc")
            picks.append(members[torch.randperm(len(members), generator=gen)[:ipc]].sort().values)
        indices = torch.cat(picks)
        return SyntheticSet(labels=train.labels[indices], indices=indices)
