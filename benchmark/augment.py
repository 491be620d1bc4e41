"""Flip + random resized crop, batched and differentiable: the one crop op of the harness.

LGM's differentiable augmentation, the paper probe's training augmentation and the fast probe's views
all use it. Per image: area fraction ``a ~ U(scale)``, aspect ratio ``r`` log-uniform in ``ratio``, crop
sides ``sqrt(a r)`` and ``sqrt(a / r)`` as fractions of the image side, crop position uniform, flip with
probability ``flip_p``; the crop is resampled to ``out_size`` with ``affine_grid``/``grid_sample``
(bilinear, zero padding, ``align_corners=False``).

``fit=False`` is the official protocol: a side may come out longer than the image (area near 1 with an
aspect ratio away from 1, about 14 % of draws at scale (0.08, 1)); the crop then overhangs the image
and sees the zero padding (black before normalisation). ``fit=True`` narrows the ratio to
``[a, 1/a]`` so that every crop lies inside the image (the area is unchanged).

All parameters come from one CPU generator (four uniforms and one flip draw per image, in that order),
so a seed gives the same crops on every device.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor


@dataclass(frozen=True)
class CropSpec:
    scale: tuple[float, float] = (0.08, 1.0)  # area fraction of the crop
    ratio: tuple[float, float] = (3 / 4, 4 / 3)  # width / height, drawn log-uniformly
    flip_p: float = 0.5
    fit: bool = False  # False: the official op (crops may overhang); True: crops always fit


@dataclass
class CropParams:
    """Per-image crops in fractions of the input's side (``width``, ``height``) and of its area."""

    area: Tensor
    ratio: Tensor
    width: Tensor
    height: Tensor
    center_x: Tensor  # in [-1, 1] (affine_grid's coordinates)
    center_y: Tensor
    flip: Tensor  # bool

    def theta(self) -> Tensor:
        """n x 2 x 3 output -> input maps; a flip mirrors the sampled crop (flip, then crop, in law)."""
        sign = 1.0 - 2.0 * self.flip.to(self.width.dtype)
        zero = torch.zeros_like(self.width)
        row0 = torch.stack([sign * self.width, zero, self.center_x], dim=1)
        row1 = torch.stack([zero, self.height, self.center_y], dim=1)
        return torch.stack([row0, row1], dim=1)

    def overhangs(self) -> Tensor:
        """Which crops reach outside the image (and so see the zero padding)."""
        return (self.center_x.abs() + self.width > 1 + 1e-6) | (self.center_y.abs() + self.height > 1 + 1e-6)


def sample_crops(n: int, spec: CropSpec, gen: torch.Generator) -> CropParams:
    """``n`` independent crops drawn from ``gen`` (CPU)."""
    u = torch.rand(n, 4, generator=gen)
    flip = torch.rand(n, generator=gen) < spec.flip_p
    lo, hi = spec.scale
    area = lo + (hi - lo) * u[:, 0]
    log_lo, log_hi = math.log(spec.ratio[0]), math.log(spec.ratio[1])
    ratio = torch.exp(log_lo + (log_hi - log_lo) * u[:, 1])
    if spec.fit:
        ratio = torch.minimum(torch.maximum(ratio, area), 1 / area)
    width = torch.sqrt(area * ratio)
    height = torch.sqrt(area / ratio)
    if spec.fit:
        width, height = width.clamp(max=1.0), height.clamp(max=1.0)
    # the crop's left edge is uniform on [0, 1 - width] (on [1 - width, 0] when it overhangs); centre in [-1, 1]
    center_x = (2 * u[:, 2] - 1) * (1 - width)
    center_y = (2 * u[:, 3] - 1) * (1 - height)
    return CropParams(area, ratio, width, height, center_x, center_y, flip)


def apply_crops(x: Tensor, crops: CropParams, out_size: int) -> Tensor:
    """Resample each image's crop (and flip) to ``out_size`` x ``out_size``: bilinear, zero padding."""
    theta = crops.theta().to(device=x.device, dtype=x.dtype)
    grid = F.affine_grid(theta, [x.shape[0], x.shape[1], out_size, out_size], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def flip_random_resized_crop(images: Tensor, size: int, generator: torch.Generator,
                             spec: CropSpec | None = None) -> Tensor:
    """Augment a batch (Nx3xHxW) into N x 3 x size x size, one independent draw per image."""
    crops = sample_crops(images.shape[0], spec or CropSpec(), generator)
    return apply_crops(images, crops, size)
