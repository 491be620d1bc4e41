"""``full_data``: the whole training split, the upper reference of every table."""

from __future__ import annotations

import torch

from benchmark.registry import METHODS
from benchmark.types import Backbone, LabeledImages, Method, RunContext, SyntheticSet


@METHODS.register("full_data")
class FullData(Method):
    """Every real training image: the probe's upper reference ("Full Dataset")."""

    name = "full_data"
    display_name = "Full dataset"
    description = "all real training images (the full-data linear probe, upper reference)"
    uses_backbone = False
    uses_ipc = False
    job_per_cell = True

    def synthesize(self, train: LabeledImages, backbone: Backbone | None, ipc: int, seed: int,
                   ctx: RunContext) -> SyntheticSet:
        indices = torch.arange(len(train))
        return SyntheticSet(labels=train.labels.clone(), indices=indices, metadata={"full_data": True})
