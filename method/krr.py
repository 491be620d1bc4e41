"""``krr``: kernel ridge matching, the linear-kernel case of KIP (Nguyen et al., "Dataset Meta-Learning from
Kernel Ridge-Regression", ICLR 2021) and of FRePo's closed-form head (Zhou et al., NeurIPS 2022), through
the frozen backbone, in the shared loop (docs/method.md, "KRR").

Per update, a ridge-regression head is fitted in closed form on the synthetic features Z_s (all K copies;
targets Y_s one-hot, or centred: one-hot - 1/C), with lambda = ``ridge`` x trace(Z_s Z_s^T) / n_s; it
predicts the real batch's targets from their features Z_t; the loss is the mean squared error of those
predictions, back-propagated through the solve and the backbone into the synthetic pixels:

    W = (Z_s^T Z_s + lambda I)^-1 Z_s^T Y_s  =  Z_s^T (Z_s Z_s^T + lambda I)^-1 Y_s,    loss = mean((Z_t W - Y_t)^2)

The smaller of the two systems is solved (features or rows), in float64: with lambda at 1e-6 of the
trace the kernel is nearly singular, and float32 loses the solve. ``center_features`` (not in KIP)
subtracts the real mean feature from both sets first, which gives the head an intercept.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from benchmark.registry import METHODS

from .config import DistillConfig
from .methods import DistillMethod
from .objective import Objective, RealFeatures

Targets = Literal["centered", "onehot"]
TARGETS = ("centered", "onehot")


@dataclass(frozen=True)
class KRRConfig(DistillConfig):
    """One KRR run: the loop's options, and the ridge head's."""

    kind: ClassVar[str] = "KRR"
    ridge: float = 1e-6  # lambda relative to the kernel's mean diagonal, trace(K_ss) / n_s (KIP, FRePo)
    targets: Targets = "centered"  # "centered": one-hot - 1/C (KIP's); "onehot"
    # Real images of each class per update, the rows the head must predict; None: ipc x augs_per_batch.
    real_per_class: int | None = None

    def problems(self) -> list[str]:
        problems = super().problems()
        if not self.ridge > 0:
            problems.append(f"ridge must be > 0 (lambda = ridge x trace / n), not {self.ridge!r}")
        if self.targets not in TARGETS:
            problems.append(f"targets must be 'centered' or 'onehot', not {self.targets!r}")
        if self.real_per_class is not None and self.real_per_class < 1:
            problems.append("real_per_class must be a positive integer or None (ipc x augs_per_batch)")
        return problems


def label_targets(y: Tensor, num_classes: int, kind: str) -> Tensor:
    """Float64 regression targets of labels ``y``: one-hot, or one-hot - 1/C ("centered")."""
    onehot = F.one_hot(y, num_classes).double()
    return onehot - 1.0 / num_classes if kind == "centered" else onehot


def ridge_lambda(z: Tensor, ridge: float) -> Tensor:
    """lambda = ridge x trace(Z Z^T) / n (differentiable in z)."""
    return ridge * z.square().sum() / z.shape[0]


def ridge_head(z: Tensor, targets: Tensor, ridge: float) -> Tensor:
    """The F x C ridge weights fitted on rows ``z`` (n x F) for ``targets`` (n x C), no intercept;
    differentiable in z. Solves the n x n (kernel) system when n <= F, else the F x F one."""
    n, f = z.shape
    lam = ridge_lambda(z, ridge)
    if n <= f:
        kernel = z @ z.t()
        return z.t() @ torch.linalg.solve(kernel + lam * torch.eye(n, dtype=z.dtype, device=z.device), targets)
    gram = z.t() @ z
    return torch.linalg.solve(gram + lam * torch.eye(f, dtype=z.dtype, device=z.device), z.t() @ targets)


@dataclass
class RidgeTarget:
    z: Tensor  # real features, float64, centred when asked
    targets: Tensor  # their regression targets, float64
    centre: Tensor | None  # float32, subtracted from the synthetic features too


class KRRObjective(Objective):
    """Fit a ridge head on the synthetic features in closed form; score it on real features (MSE)."""

    name = "krr"
    Config = KRRConfig

    def target(self, real: RealFeatures) -> RidgeTarget:
        z, y = real()
        z = z.float()
        centre = z.mean(0) if self.cfg.center_features else None
        z = z if centre is None else z - centre
        return RidgeTarget(z.double(), label_targets(y, self.loop.num_classes, self.cfg.targets), centre)  # type: ignore[attr-defined]

    def loss(self, z: Tensor, y: Tensor, target: RidgeTarget) -> Tensor:
        zs = z.float() if target.centre is None else z.float() - target.centre
        head = ridge_head(zs.double(), label_targets(y, self.loop.num_classes, self.cfg.targets),  # type: ignore[attr-defined]
                          self.cfg.ridge)  # type: ignore[attr-defined]
        return (target.z @ head - target.targets).square().mean().float()


KRR_PRESETS: dict[str, dict[str, Any]] = {
    # KIP's and FRePo's ridge (1e-6 of the trace) and KIP's centred targets are KRRConfig's defaults; the
    # rest is the shared loop's paper values (the real batch: ipc x K per class, as LGM's).
    "paper": {},
    # The embedded default's budget and data: LGM's ``embedded`` settings, unchanged (not tuned for KRR;
    # docs/method.md, "The embedded presets of DM and KRR").
    "embedded": {"steps": 500, "augs_per_batch": 2, "grow_every": 20, "lr": 3e-3, "grayscale": True,
                 "real_sampling": "balanced", "syn_res": None, "crop_res": None, "checkpoint_every": 50,
                 "real_bank": 2, "real_bank_rows": 1000, "center_features": True, "init": "real",
                 "pyramid_max_res": 32, "noise_mean": 0.0},
    "smoke": {"steps": 6, "augs_per_batch": 2, "grow_every": 2, "syn_res": None, "crop_res": None,
              "checkpoint_every": 3},
}


@METHODS.register("krr")
class KRR(DistillMethod):
    """Kernel ridge matching: a closed-form ridge head on the synthetic features must predict real labels."""

    name = "krr"
    description = "Kernel ridge matching (KIP/FRePo, linear kernel): closed-form ridge head, MSE on real labels"
    display_name = "KRR"
    objective = KRRObjective
    presets = KRR_PRESETS
    # the loop's K = 3 on ImageNet-1k, as LGM's paper runs it there
    paper_per_dataset = {("augs_per_batch", 3)}
