"""The paper probe's training augmentation: horizontal flip + random resized crop, batched, seeded.

Per image: flip with probability 0.5; crop area fraction ~ U(scale) and aspect ratio log-uniform in
``ratio``, clamped to the image, corner uniform over the valid positions; resampled to ``size`` x ``size``
with ``affine_grid`` / ``grid_sample`` (bilinear, zero padding). Every random number comes from the given
CPU ``torch.Generator``, so the same generator state gives the same crops on any device.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


def crop_flip_params(n: int, height: int, width: int, generator: torch.Generator,
                     scale: tuple[float, float] = (0.08, 1.0), ratio: tuple[float, float] = (3 / 4, 4 / 3),
                     flip_p: float = 0.5) -> Tensor:
    """n x 2 x 3 affine matrices (output -> input, normalised coordinates) for ``F.affine_grid``."""
    u = torch.rand(n, 5, generator=generator, dtype=torch.float64)
    area = scale[0] + (scale[1] - scale[0]) * u[:, 0]
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    aspect = torch.exp(log_lo + (log_hi - log_lo) * u[:, 1])  # width / height in pixels
    pixels = area * height * width
    w = (torch.sqrt(pixels * aspect) / width).clamp(max=1.0)  # fractions of the image side
    h = (torch.sqrt(pixels / aspect) / height).clamp(max=1.0)
    left = (1.0 - w) * u[:, 2]
    top = (1.0 - h) * u[:, 3]
    flip = torch.where(u[:, 4] < flip_p, -1.0, 1.0)
    theta = torch.zeros(n, 2, 3, dtype=torch.float64)
    theta[:, 0, 0] = w * flip
    theta[:, 0, 2] = 2 * left + w - 1  # crop centre, in [-1, 1]
    theta[:, 1, 1] = h
    theta[:, 1, 2] = 2 * top + h - 1
    return theta.float()


def flip_random_resized_crop(images: Tensor, size: int, generator: torch.Generator,
                             scale: tuple[float, float] = (0.08, 1.0),
                             ratio: tuple[float, float] = (3 / 4, 4 / 3), flip_p: float = 0.5) -> Tensor:
    """Augment a batch (Nx3xHxW) into N x 3 x size x size, one independent draw per image."""
    n, c, height, width = images.shape
    theta = crop_flip_params(n, height, width, generator, scale, ratio, flip_p).to(images.device)
    grid = F.affine_grid(theta.to(images.dtype), [n, c, size, size], align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
