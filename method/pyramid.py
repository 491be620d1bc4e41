"""Image parameterisations: the multi-resolution pyramid (the paper's) and plain pixels (the ablation).

Both decode to images in (0, 1): the sum of the levels (bilinearly upsampled to the synthetic
resolution, ``align_corners=False``), then optionally the fixed colour-decorrelation matrix per pixel,
then ``sigmoid(2x)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

# The "Feature Visualization" colour-correlation square root (Olah et al. 2017), rows = RGB outputs.
COLOR_CORRELATION = ((0.26, 0.09, 0.02), (0.27, 0.00, -0.05), (0.27, -0.09, 0.03))


def decorrelation_matrix() -> Tensor:
    """The 3x3 matrix divided by its largest column L2 norm; ``rgb = M @ v`` per pixel, no offset."""
    m = torch.tensor(COLOR_CORRELATION, dtype=torch.float32)
    return m / m.norm(dim=0).max()


def pyramid_resolutions(syn_res: int, max_res: int | None = None) -> list[int]:
    """Level sizes 1, 2, 4, ... with the last one capped at (and equal to) ``syn_res``, or to
    ``max_res`` when given and smaller (the top levels are then left out; decoding still upsamples to
    ``syn_res``)."""
    top = syn_res if max_res is None else min(max_res, syn_res)
    sizes = [1]
    while sizes[-1] < top:
        sizes.append(min(2 * sizes[-1], top))
    return sizes


def start_levels(sizes: list[int], start_res: int) -> int:
    """How many levels the pyramid starts with: every size up to ``start_res`` (at least one)."""
    return max(1, sum(1 for size in sizes if size <= start_res))


@dataclass(frozen=True)
class GrowthSchedule:
    """How many updates a run makes and when the pyramid grows, for ``steps`` and ``grow_every``.

    ``"official"``: the official loop, ``for i in range(steps + 1)``: ``steps + 1`` updates, and a new
    level before 0-indexed update ``i`` whenever ``i > 1`` and ``(i - 1) % grow_every == 0`` (so
    ``grow_every + 1`` updates at the first level, ``grow_every`` at each later one).
    ``"exact"``: ``steps`` updates, a new level before 0-indexed update ``k * grow_every``, k >= 1
    (``grow_every`` updates at every level).
    """

    steps: int
    grow_every: int
    kind: str = "official"

    def __post_init__(self) -> None:
        if self.kind not in SCHEDULES:
            raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)}, not {self.kind!r}")

    @property
    def updates(self) -> int:
        return self.steps + 1 if self.kind == "official" else self.steps

    def growths_before(self, update: int) -> int:
        """How many growths have happened before 0-indexed ``update`` runs (uncapped)."""
        if self.kind == "official":
            return max(update - 1, 0) // self.grow_every
        return update // self.grow_every

    def growth_updates(self, max_levels: int, start: int = 1) -> list[int]:
        """The 0-indexed updates before which the pyramid grows, while it has levels to add."""
        found = [i for i in range(1, self.updates)
                 if self.growths_before(i) > self.growths_before(i - 1)]
        return found[:max(max_levels - start, 0)]


SCHEDULES = ("official", "exact")


def to_rgb(v: Tensor, decorrelate: bool, grayscale: bool = False) -> Tensor:
    """Unconstrained Nx3xHxW values -> images in (0, 1); ``grayscale``: the channel mean in all three."""
    if decorrelate:
        v = torch.einsum("ij,njhw->nihw", decorrelation_matrix().to(v), v)
    if grayscale:
        return torch.sigmoid(2 * v.mean(dim=1, keepdim=True)).expand_as(v)
    return torch.sigmoid(2 * v)


def from_rgb(x: Tensor, decorrelate: bool, grayscale: bool = False, eps: float = 0.01) -> Tensor:
    """Values that ``to_rgb`` maps to ``x`` (Nx3xHxW in [0, 1], clamped to [eps, 1 - eps] first); with
    ``grayscale``, values whose decoded gray equals the mean of ``x``'s channels."""
    x = x.float().clamp(eps, 1 - eps)
    if grayscale:
        x = x.mean(dim=1, keepdim=True).expand(-1, 3, -1, -1)
    u = torch.logit(x) / 2
    if not decorrelate:
        return u.contiguous()
    m = decorrelation_matrix().to(u)
    if grayscale:  # v = t * 1: the matrix maps it to t * (row sums); their mean must be u
        return (u / m.sum(dim=1).mean()).contiguous()
    return torch.einsum("ij,njhw->nihw", torch.linalg.inv(m), u).contiguous()


def _init_level(n: int, size: int, std: float, init: str, gen: torch.Generator) -> Tensor:
    """N(0, std^2) (``init="noise"``) or zeros; the generator is consumed either way."""
    noise = torch.randn(n, 3, size, size, generator=gen)
    return noise * std if init == "noise" else torch.zeros_like(noise)


class SyntheticImages:
    """The learnable tensors behind ``n`` synthetic images and how they decode."""

    kind: str = ""

    def __init__(self, levels: list[Tensor], syn_res: int, decorrelate: bool) -> None:
        self.levels = [t.detach().requires_grad_(True) for t in levels]
        self.syn_res = syn_res
        self.decorrelate = decorrelate
        self.grayscale = False

    def parameters(self) -> list[Tensor]:
        return list(self.levels)

    def raw(self) -> Tensor:
        """The sum of the levels at full resolution, before colour and sigmoid."""
        total = None
        for level in self.levels:
            up = level if level.shape[-1] == self.syn_res else F.interpolate(
                level, size=(self.syn_res, self.syn_res), mode="bilinear", align_corners=False)
            total = up if total is None else total + up
        assert total is not None
        return total

    def decode(self) -> Tensor:
        return to_rgb(self.raw(), self.decorrelate, self.grayscale)

    def start_from(self, images: Tensor) -> None:
        """Replace the parameters so that ``decode()`` returns ``images`` (up to clamping)."""
        raw = from_rgb(F.interpolate(images, size=(self.syn_res, self.syn_res), mode="bilinear",
                                     align_corners=False), self.decorrelate, self.grayscale)
        self.levels = [raw.to(self.levels[0].device).requires_grad_(True)]

    def maybe_grow(self, update: int, schedule: GrowthSchedule, gen: torch.Generator) -> bool:
        """Called before 0-indexed ``update``; True when the parameters changed (re-create the optimiser)."""
        return False

    def state(self) -> list[Tensor]:
        return [t.detach().cpu().clone() for t in self.levels]


class PixelImages(SyntheticImages):
    """Plain pixels at the synthetic resolution, initialised N(0, 1) (the no-pyramid ablation)."""

    kind = "pixel"

    @classmethod
    def create(cls, n: int, syn_res: int, decorrelate: bool, gen: torch.Generator,
               device: torch.device, init: str = "noise") -> PixelImages:
        return cls([_init_level(n, syn_res, 1.0, init, gen).to(device)], syn_res, decorrelate)


class PyramidImages(SyntheticImages):
    """A sum of levels of sizes 1, 2, 4, ..., ``syn_res``. It starts with every level up to
    ``start_res`` (each N(0, 1)/L for L levels; 1 x 1 alone by default) and grows one level at a time
    on the run's ``GrowthSchedule``: existing levels are scaled by L/(L+1) and a level at the next size
    is appended, N(0, 1)/(L+1) (``init="noise"``) or, with ``init="zero"``, the bilinear upsampling of
    the scaled levels' sum divided by L (the official zero mode: the decoded image barely changes)."""

    kind = "pyramid"

    def __init__(self, levels: list[Tensor], syn_res: int, decorrelate: bool, init: str = "noise",
                 max_res: int | None = None) -> None:
        super().__init__(levels, syn_res, decorrelate)
        self.sizes = pyramid_resolutions(syn_res, max_res)
        self.init = init
        self.start_count = len(levels)  # growth counts from here (resuming replaces only ``levels``)

    @classmethod
    def create(cls, n: int, syn_res: int, decorrelate: bool, gen: torch.Generator, device: torch.device,
               start_res: int = 1, init: str = "noise", max_res: int | None = None) -> PyramidImages:
        sizes = pyramid_resolutions(syn_res, max_res)
        count = start_levels(sizes, start_res)
        levels = [_init_level(n, size, 1.0 / count, init, gen).to(device) for size in sizes[:count]]
        return cls(levels, syn_res, decorrelate, init, max_res)

    def start_from(self, images: Tensor) -> None:
        """Every level at once: zeros, but the finest holds ``images`` (resized to it), so the decoded
        images start as ``images`` and the pyramid does not grow further."""
        top = self.sizes[-1]
        device = self.levels[0].device
        small = F.interpolate(images.float(), size=(top, top), mode="bilinear", align_corners=False,
                              antialias=top < images.shape[-1])
        levels = [torch.zeros(len(images), 3, size, size, device=device) for size in self.sizes[:-1]]
        levels.append(from_rgb(small, self.decorrelate, self.grayscale).to(device))
        self.levels = [t.requires_grad_(True) for t in levels]

    @property
    def resolutions(self) -> list[int]:
        return [t.shape[-1] for t in self.levels]

    def grow(self, gen: torch.Generator) -> None:
        n_before = len(self.levels)
        if n_before >= len(self.sizes):
            raise RuntimeError("the pyramid is already at the synthetic resolution")
        size = self.sizes[n_before]
        ref = self.levels[0]
        with torch.no_grad():
            for level in self.levels:
                level.mul_(n_before / (n_before + 1))
            new = _init_level(ref.shape[0], size, 1 / (n_before + 1), self.init, gen).to(ref.device)
            if self.init == "zero":
                new = sum(F.interpolate(level, size=(size, size), mode="bilinear", align_corners=False)
                          for level in self.levels) / n_before
        self.levels.append(new.detach().requires_grad_(True))

    def maybe_grow(self, update: int, schedule: GrowthSchedule, gen: torch.Generator) -> bool:
        target = min(self.start_count + schedule.growths_before(update), len(self.sizes))
        grew = False
        while len(self.levels) < target:
            self.grow(gen)
            grew = True
        return grew
