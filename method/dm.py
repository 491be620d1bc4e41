"""``dm``: distribution matching (Zhao & Bilen, "Dataset Condensation with Distribution Matching", WACV
2023) through the frozen backbone, in the shared loop (docs/method.md, "DM").

Per update and class c, the mean feature of the augmented synthetic images of c must equal the mean
feature of an augmented real batch of c: loss = sum_c || mean_real_c - mean_syn_c ||^2 (no classifier).
A class absent from the update's real batch (possible with ``real_sampling`` "epoch" or "uniform") adds
nothing that update. With ``real_bank`` the real means are those of the bank (the expected means).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch.nn.functional as F
from torch import Tensor

from benchmark.registry import METHODS

from .config import DistillConfig, InitMode, RealSampling
from .methods import DistillMethod
from .objective import Objective, RealFeatures


@dataclass(frozen=True)
class DMConfig(DistillConfig):
    """One DM run: the loop's options, at DM's paper values where DM fixes them, and DM's real batch."""

    kind: ClassVar[str] = "DM"
    augs_per_batch: int = 1  # DM augments each synthetic image once per update
    real_sampling: RealSampling = "balanced"  # DM draws its real images class by class
    init: InitMode = "real"  # DM starts from random real images of each class
    # Real images of each class per update (DM's batch_real); None: ipc x augs_per_batch.
    real_per_class: int | None = 256

    def problems(self) -> list[str]:
        problems = super().problems()
        if self.real_per_class is not None and self.real_per_class < 1:
            problems.append("real_per_class must be a positive integer or None (ipc x augs_per_batch)")
        if self.center_features:
            problems.append("center_features cannot change DM's loss (both class means move by the same "
                            "vector); leave it False")
        return problems


def class_means(z: Tensor, y: Tensor, num_classes: int) -> tuple[Tensor, Tensor]:
    """(C x F mean feature of each class, C bool: the class has rows); a class without rows has mean 0."""
    onehot = F.one_hot(y, num_classes).to(z.dtype)
    counts = onehot.sum(0)
    return (onehot.t() @ z) / counts.clamp(min=1).unsqueeze(1), counts > 0


@dataclass
class MeanTarget:
    means: Tensor  # C x F, float32
    present: Tensor  # C bool


class DMObjective(Objective):
    """Match each class's mean synthetic feature to its mean real feature (squared distance, summed)."""

    name = "dm"
    Config = DMConfig

    def target(self, real: RealFeatures) -> MeanTarget:
        z, y = real()
        means, present = class_means(z.float(), y, self.loop.num_classes)
        return MeanTarget(means, present)

    def loss(self, z: Tensor, y: Tensor, target: MeanTarget) -> Tensor:
        means, _ = class_means(z.float(), y, self.loop.num_classes)
        return (target.means - means)[target.present].square().sum()


# DM's own hyper-parameters in its paper's preset are DMConfig's defaults (K = 1, 256 real images per
# class drawn class by class, a start from real images); the rest is the shared loop's paper values.
DM_PRESETS: dict[str, dict[str, Any]] = {
    "paper": {},
    # The embedded default's budget and data (two bundled backbones, Fashion-MNIST, 1 image per class):
    # LGM's ``embedded`` settings wherever they apply to DM (not tuned for DM; docs/method.md, "The
    # embedded presets of DM and KRR"). Its real bank gives the exact class means of 2 views of 1000
    # images, embedded once (256 x 10 real images a step through the backbone would be 40x the cost of
    # the synthetic side). DM's own defaults already start from real images and draw class by class.
    "embedded": {"steps": 500, "augs_per_batch": 2, "grow_every": 20, "lr": 3e-3, "grayscale": True,
                 "syn_res": None, "crop_res": None, "checkpoint_every": 50, "real_bank": 2,
                 "real_bank_rows": 1000, "pyramid_max_res": 32, "noise_mean": 0.0},
    "smoke": {"steps": 6, "augs_per_batch": 2, "grow_every": 2, "syn_res": None, "crop_res": None,
              "checkpoint_every": 3, "real_per_class": 2},
}


@METHODS.register("dm")
class DM(DistillMethod):
    """Distribution matching: per class, mean synthetic feature = mean real feature."""

    name = "dm"
    description = "Distribution Matching (Zhao & Bilen 2023): per-class mean features, through the backbone"
    display_name = "DM"
    objective = DMObjective
    presets = DM_PRESETS
