"""Differentiable augmentation ("standard" in the official code), drawn independently per image.

Horizontal flip, random resized crop (area fraction uniform in ``scale``, aspect ratio log-uniform in
``ratio``, crop position uniform) done with ``affine_grid``/``grid_sample`` (bilinear, zero padding), then
additive Gaussian noise with probability ``noise_p``. Every operation is differentiable in the pixels,
so the same code augments the real batch and the synthetic copies.

Random draws: per-image parameters come from a CPU generator (device independent, small); the noise
tensor comes from a generator on the images' device. Both are always consumed in the same amounts
whatever was drawn, so a run's random stream depends on the seed only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor


@dataclass(frozen=True)
class AugmentSpec:
    out_size: int
    enabled: bool = True
    flip_p: float = 0.5
    scale: tuple[float, float] = (0.08, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    noise_p: float = 0.5
    noise_sigma: float = 0.2
    noise_mean: float = 0.0


@dataclass
class CropParams:
    """Per-image crop, in fractions of the input's side (``width``, ``height``) and of its area."""

    area: Tensor
    ratio: Tensor
    width: Tensor
    height: Tensor
    center_x: Tensor  # in [-1, 1] (affine_grid's coordinates)
    center_y: Tensor
    flip: Tensor  # bool

    def theta(self) -> Tensor:
        sign = 1.0 - 2.0 * self.flip.float()
        zero = torch.zeros_like(self.width)
        row0 = torch.stack([sign * self.width, zero, self.center_x], dim=1)
        row1 = torch.stack([zero, self.height, self.center_y], dim=1)
        return torch.stack([row0, row1], dim=1)


def sample_crops(n: int, spec: AugmentSpec, gen: torch.Generator) -> CropParams:
    """Random resized crops that lie inside the image, area in ``spec.scale`` and ratio in ``spec.ratio``.

    The ratio is drawn log-uniformly and then narrowed to ``[area, 1/area]`` (only matters for areas
    above ``ratio[0]``), so that both sides fit: the area is never changed and stays uniform.
    """
    lo, hi = spec.scale
    area = lo + (hi - lo) * torch.rand(n, generator=gen)
    log_lo, log_hi = math.log(spec.ratio[0]), math.log(spec.ratio[1])
    ratio = torch.exp(log_lo + (log_hi - log_lo) * torch.rand(n, generator=gen))
    ratio = torch.minimum(torch.maximum(ratio, area), 1 / area)
    width = torch.sqrt(area * ratio).clamp(max=1.0)
    height = torch.sqrt(area / ratio).clamp(max=1.0)
    center_x = (2 * torch.rand(n, generator=gen) - 1) * (1 - width)
    center_y = (2 * torch.rand(n, generator=gen) - 1) * (1 - height)
    flip = torch.rand(n, generator=gen) < spec.flip_p
    return CropParams(area, ratio, width, height, center_x, center_y, flip)


def resize(x: Tensor, size: int) -> Tensor:
    if x.shape[-1] == size and x.shape[-2] == size:
        return x
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=False)


def apply_crops(x: Tensor, crops: CropParams, out_size: int) -> Tensor:
    """Resample each image's crop (and flip) to ``out_size`` x ``out_size``: bilinear, zero padding."""
    theta = crops.theta().to(device=x.device, dtype=x.dtype)
    grid = F.affine_grid(theta, [x.shape[0], x.shape[1], out_size, out_size], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def augment(x: Tensor, spec: AugmentSpec, gen: torch.Generator, noise_gen: torch.Generator) -> Tensor:
    """Nx3xHxW -> Nx3xSxS (S = ``spec.out_size``), differentiable in ``x``. Disabled: a plain resize."""
    if not spec.enabled:
        return resize(x, spec.out_size)
    n = x.shape[0]
    crops = sample_crops(n, spec, gen)
    apply_noise = torch.rand(n, generator=gen) < spec.noise_p
    out = apply_crops(x, crops, spec.out_size)
    noise = torch.randn(out.shape, generator=noise_gen, device=noise_gen.device, dtype=out.dtype)
    noise = spec.noise_mean + spec.noise_sigma * noise
    mask = apply_noise.to(device=x.device, dtype=out.dtype).view(n, 1, 1, 1)
    return out + mask * noise.to(out.device)
