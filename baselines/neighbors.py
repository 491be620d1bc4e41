"""``neighbors``: for each LGM-distilled image, its most similar same-class real image (the paper's
"Neighbors" row: does LGM merely reconstruct real samples?).

As in the official code, a distilled image is embedded through its centre crop in the test geometry
(224 of its 256 px for a 224 backbone; not resized whole), real images through the cached centre-crop
features, and each distilled image independently takes the argmax-cosine real image of its class (with
ipc > 1 two distilled images may pick the same one). ``unique=True`` is this project's earlier variant:
a greedy one-to-one matching, most similar pair first.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from benchmark.embedding import embed_tensor
from benchmark.neutral import neutral
from benchmark.probe.common import center_view
from benchmark.registry import METHODS
from benchmark.types import Backbone, LabeledImages, Method, RunContext, SyntheticSet

from .selection import assemble, class_members, greedy_unique_assignment, require_backbone, train_features

SOURCE = "lgm"


@dataclass
class NeighborsOptions:
    batch_size: int = neutral(64, key=64)  # distilled images embedded per forward pass
    unique: bool = False  # False: argmax per distilled image (official); True: one-to-one greedy matching


def embed_images(backbone: Backbone, images: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Backbone embeddings of Nx3xHxW images in [0, 1] (``benchmark.embedding.embed_tensor``) -> float64 CPU.

    Each image is seen through its centre crop in the test geometry (``center_view``: 224 of 256 px for
    a 224 backbone), as the official code crops distilled images before embedding them."""
    images = center_view(images, backbone.input_size)
    return embed_tensor(backbone, images, batch_size=batch_size, autocast=False).to(torch.float64)


@METHODS.register("neighbors")
class Neighbors(Method):
    """For each image of the ``lgm`` set of the same (dataset, backbone, ipc, seed), the same-class real
    image with the highest cosine similarity of distilling-backbone embeddings (ties: the earlier row).
    ``unique=True``: each distilled image gets its own real image (most similar pair matched first).
    Needs the ``lgm`` artifact to exist."""

    name = "neighbors"
    display_name = "Neighbors"
    description = "per LGM-distilled image, the most cosine-similar same-class real image (run lgm first)"
    Options = NeighborsOptions
    requires = (SOURCE,)

    def synthesize(self, train: LabeledImages, backbone: Backbone | None, ipc: int, seed: int,
                   ctx: RunContext) -> SyntheticSet:
        backbone = require_backbone(backbone, self.name)
        distilled = ctx.load_synthetic(SOURCE)
        if distilled is None:
            raise RuntimeError(
                f"neighbors needs the {SOURCE} artifact for (dataset={train.name}, backbone={backbone.name}, "
                f"ipc={ipc}, seed={seed}), which does not exist yet; run both, e.g. "
                f"`python -m benchmark run --methods {SOURCE} neighbors ...` (the runner makes {SOURCE} first)")
        if distilled.images is None:
            raise RuntimeError(f"the {SOURCE} artifact for (dataset={train.name}, backbone={backbone.name}, "
                               f"ipc={ipc}, seed={seed}) holds no images to find neighbours of")
        labels = distilled.labels.long().cpu()
        if len(labels) and (labels.min() < 0 or labels.max() >= train.num_classes):
            raise ValueError(f"the {SOURCE} artifact has labels outside 0..{train.num_classes - 1}")
        batch_size = self.options.batch_size
        every = train_features(train, backbone, ctx)
        picks, sims = [], []
        for c in range(train.num_classes):
            rows = torch.nonzero(labels == c).flatten()
            if len(rows) == 0:
                continue
            members = class_members(train, c, len(rows) if self.options.unique else 1)
            real = every[members].to(torch.float64)
            real = F.normalize(real, dim=1)
            fake = F.normalize(embed_images(backbone, distilled.images[rows], batch_size), dim=1)
            sim = fake @ real.T  # distilled x real cosine similarities
            if self.options.unique:
                match = dict(greedy_unique_assignment(-sim))  # distilled row -> real column
                cols = torch.as_tensor([match[r] for r in range(len(rows))], dtype=torch.long)
            else:  # each distilled image on its own (first maximum on ties, as torch.argmax)
                cols = torch.argmax(sim, dim=1)
            picks.append(members[cols])
            sims.extend(round(float(sim[r, col]), 5) for r, col in enumerate(cols.tolist()))
        how = "one-to-one greedy" if self.options.unique else "argmax per image, repeats allowed"
        meta = {"selection": f"nearest real image (cosine) to each {SOURCE} image ({how})", "source": SOURCE,
                "cosine_similarity": sims,
                "mean_cosine_similarity": sum(sims) / len(sims) if sims else float("nan")}
        return assemble(train, picks, meta, allow_repeats=not self.options.unique)
