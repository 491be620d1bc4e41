"""Differentiable augmentation ("standard" in the official code), drawn independently per image.

Horizontal flip and random resized crop (``benchmark.augment``: the official op, whose crops may overhang
the image and see zero padding, unless ``crop_fit``), then additive Gaussian noise N(noise_mean,
noise_sigma^2) with probability ``noise_p``. Every operation is differentiable in the pixels,
so the same code augments the real batch and the synthetic copies.

Random draws: per-image parameters come from a CPU generator (device independent, small); the noise
tensor comes from a generator on the images' device. Both are always consumed in the same amounts
whatever was drawn, so a run's random stream depends on the seed only. ``draw_augment`` makes all the
draws of a batch at once and ``apply_augment`` applies any rows of them: the memory-bounded LGM step
augments its chunks with exactly the draws of the one-batch step.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from benchmark.augment import CropParams, CropSpec, apply_crops, sample_crops


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
    crop_fit: bool = False  # False: the official crop, which may overhang the image (zero padding)

    def crop(self) -> CropSpec:
        return CropSpec(scale=self.scale, ratio=self.ratio, flip_p=self.flip_p, fit=self.crop_fit)


@dataclass
class AugmentDraw:
    """Every random draw of one augmented batch of ``n`` images, so that rows can be applied apart."""

    crops: CropParams
    apply_noise: Tensor  # bool, n (CPU)
    noise: Tensor  # n x C x S x S, N(noise_mean, noise_sigma^2), on the noise generator's device

    def rows(self, start: int, stop: int) -> AugmentDraw:
        c = self.crops
        crops = CropParams(c.area[start:stop], c.ratio[start:stop], c.width[start:stop], c.height[start:stop],
                           c.center_x[start:stop], c.center_y[start:stop], c.flip[start:stop])
        return AugmentDraw(crops, self.apply_noise[start:stop], self.noise[start:stop])


def draw_augment(n: int, channels: int, dtype: torch.dtype, spec: AugmentSpec, gen: torch.Generator,
                 noise_gen: torch.Generator) -> AugmentDraw:
    """The draws ``augment`` makes for an ``n x channels`` batch of ``dtype``, in the same order and amounts."""
    crops = sample_crops(n, spec.crop(), gen)
    apply_noise = torch.rand(n, generator=gen) < spec.noise_p
    shape = (n, channels, spec.out_size, spec.out_size)
    noise = torch.randn(shape, generator=noise_gen, device=noise_gen.device, dtype=dtype)
    return AugmentDraw(crops, apply_noise, spec.noise_mean + spec.noise_sigma * noise)


def apply_augment(x: Tensor, spec: AugmentSpec, draw: AugmentDraw) -> Tensor:
    """Augment ``x`` with the given draws (one row per image); differentiable in ``x``."""
    n = x.shape[0]
    out = apply_crops(x, draw.crops, spec.out_size)
    mask = draw.apply_noise.to(device=x.device, dtype=out.dtype).view(n, 1, 1, 1)
    return out + mask * draw.noise.to(out.device)


def augment(x: Tensor, spec: AugmentSpec, gen: torch.Generator, noise_gen: torch.Generator) -> Tensor:
    """Nx3xHxW -> Nx3xSxS (S = ``spec.out_size``), differentiable in ``x``. Disabled: a plain resize."""
    if not spec.enabled:
        return resize(x, spec.out_size)
    return apply_augment(x, spec, draw_augment(x.shape[0], x.shape[1], x.dtype, spec, gen, noise_gen))


def resize(x: Tensor, size: int) -> Tensor:
    """Bilinear, no antialias: what the augmentation-free ablation feeds the backbone."""
    if x.shape[-1] == size and x.shape[-2] == size:
        return x
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=False)
