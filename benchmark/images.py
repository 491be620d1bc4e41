"""Image geometry shared by the LGM real batches and the paper probe: the short-side resize and the
random square crop of the official loaders (torchvision ``Resize`` then ``RandomCrop``)."""

from __future__ import annotations

from typing import Any

from torch import Tensor


def resize_short_side(image: Any, size: int, interpolation: str = "bilinear") -> Tensor:
    """A PIL image, RGB, short side resized to ``size`` (antialiased) -> 3 x H x W uint8."""
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms import functional as TF

    from .data.decode import to_rgb

    image = TF.resize(to_rgb(image), size, interpolation=InterpolationMode(interpolation), antialias=True)
    return TF.pil_to_tensor(image)


def random_crop(image: Tensor, side: int, u: Tensor) -> Tensor:
    """The ``side`` x ``side`` crop of one C x H x W image at the position two uniforms in [0, 1) pick:
    each offset uniform over 0..(H or W) - side, as torchvision's ``RandomCrop`` draws it."""
    h, w = image.shape[-2:]
    top = min(int(float(u[0]) * (h - side + 1)), h - side)
    left = min(int(float(u[1]) * (w - side + 1)), w - side)
    return image[..., top:top + side, left:left + side]
