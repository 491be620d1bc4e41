"""Linear Gradient Matching, the paper's objective, and ``lgm`` with its ablations as registered methods
(docs/method.md; the paper's Table 3 for the ablations).

Per update a fresh random head W ~ N(0, head_std^2), b = 0; g = d CE(z W^T + b, y) / d[W, b] on the
real features (detached) and on the synthetic ones; loss = 1 - cos(g_real, g_syn) over the whole
flattened [W; b]. ``center_features`` (not in the paper) subtracts the real mean feature from both first.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from torch import Tensor

from benchmark.registry import METHODS

from .config import PRESETS, LGMConfig, LGMOptions
from .gradients import head_gradient, matching_loss, random_head
from .methods import DistillMethod
from .objective import Objective, RealFeatures


@dataclass
class HeadTarget:
    """An update's random head, the real gradient it gives, and the centre both feature sets share."""

    g_real: Tensor
    weight: Tensor
    bias: Tensor
    centre: Tensor | None


class LGMObjective(Objective):
    """Match the gradient of a fresh random linear head on real and synthetic features."""

    name = "lgm"
    Config = LGMConfig
    real_block = None  # the official loader's batch, crops and augmentation drawn for the whole batch at once
    cuda_autocast = "fp16"  # the official numerics: fp16 autocast, the loss scaled x1024

    def target(self, real: RealFeatures) -> HeadTarget:
        loop = self.loop
        weight, bias = random_head(loop.num_classes, loop.backbone.feature_dim, self.cfg.head_std,  # type: ignore[attr-defined]
                                   loop.dev_gen, loop.device)
        g_real, centre = self.real_gradient(real, weight, bias)
        return HeadTarget(g_real, weight, bias, centre)

    def real_gradient(self, real: RealFeatures, weight: Tensor, bias: Tensor) -> tuple[Tensor, Tensor | None]:
        """g_real (detached) and the feature centre the synthetic features must share (or None)."""
        z, y = real()
        centre = z.float().mean(0) if self.cfg.center_features else None
        z = z if centre is None else z.float() - centre
        return head_gradient(z, y, weight, bias).detach(), centre

    def loss(self, z: Tensor, y: Tensor, target: HeadTarget) -> Tensor:
        centre = target.centre
        g_syn = head_gradient(z if centre is None else z.float() - centre, y, target.weight, target.bias)
        return matching_loss(target.g_real, g_syn)


# (option, value) pairs the paper itself uses for some dataset: K = 3 augmentations on ImageNet-1k
PAPER_PER_DATASET = {("augs_per_batch", 3)}


@METHODS.register("lgm")
class LGM(DistillMethod):
    """Linear Gradient Matching: synthetic images whose random-linear-head gradients match real ones."""

    name = "lgm"
    description = "Linear Gradient Matching (the paper's method): pyramid images, random heads, cosine"
    display_name = "LGM"
    objective = LGMObjective
    Options = LGMOptions
    presets = PRESETS
    paper_per_dataset = PAPER_PER_DATASET
    fixed: ClassVar[dict[str, Any]] = {}


@METHODS.register("lgm_no_decorrelate")
class LGMNoDecorrelate(LGM):
    """LGM without the colour-decorrelation matrix (Table 3 ablation)."""

    name = "lgm_no_decorrelate"
    description = "LGM ablation: no colour decorrelation"
    display_name = "LGM w/o decorrelation"
    fixed = {"decorrelate": False}


@METHODS.register("lgm_no_pyramid")
class LGMNoPyramid(LGM):
    """LGM with plain pixels instead of the pyramid (Table 3 ablation)."""

    name = "lgm_no_pyramid"
    description = "LGM ablation: plain pixels instead of the pyramid"
    display_name = "LGM w/o pyramid"
    fixed = {"parameterization": "pixel"}


@METHODS.register("lgm_no_augment")
class LGMNoAugment(LGM):
    """LGM without differentiable augmentation (Table 3 ablation)."""

    name = "lgm_no_augment"
    description = "LGM ablation: no differentiable augmentation"
    display_name = "LGM w/o augmentation"
    fixed = {"augment": False}
