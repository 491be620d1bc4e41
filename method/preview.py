"""A PNG grid of a synthetic set: one row per class (labelled with the class name), ``ipc`` columns."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor

from benchmark.paths import atomic_write_bytes

MAX_LABELLED_ROWS = 100  # beyond this, a plain image grid without names


def save_grid(images: Tensor, labels: Tensor, class_names: Sequence[str], path: Path,
              title: str | None = None) -> Path:
    """Write ``path`` atomically. Images are Nx3xHxW in [0, 1]; rows follow the class order."""
    from torchvision.utils import make_grid

    images = images.detach().float().cpu().clamp(0, 1)
    labels = labels.cpu()
    classes = sorted(set(labels.tolist()))
    ipc = max(int((labels == c).sum()) for c in classes)
    ordered, pad = [], torch.ones_like(images[:1])
    for c in classes:
        members = images[labels == c]
        ordered.extend(list(members) + [pad[0]] * (ipc - len(members)))
    grid = make_grid(torch.stack(ordered), nrow=ipc, padding=2, pad_value=1.0)
    array = (grid.permute(1, 2, 0).numpy() * 255).round().astype("uint8")
    buffer = io.BytesIO()
    if len(classes) > MAX_LABELLED_ROWS:
        from PIL import Image

        Image.fromarray(array).save(buffer, format="PNG")
    else:
        from matplotlib.figure import Figure

        height, width = array.shape[:2]
        scale = max(1.0, 48 / images.shape[-1])  # at least ~48 px per image
        fig = Figure(figsize=(width * scale / 100, height * scale / 100), dpi=100)
        ax = fig.add_axes((0.0, 0.0, 1.0, 1.0))
        ax.imshow(array, interpolation="nearest")
        step = images.shape[-1] + 2
        ax.set_yticks([2 + step * r + images.shape[-1] / 2 for r in range(len(classes))])
        ax.set_yticklabels([str(class_names[c]) if c < len(class_names) else str(c) for c in classes],
                           fontsize=8)
        ax.set_xticks([])
        for side in ax.spines.values():
            side.set_visible(False)
        if title:
            ax.set_title(title, fontsize=8)
        fig.savefig(buffer, format="png", bbox_inches="tight")
    atomic_write_bytes(Path(path), buffer.getvalue())
    return Path(path)
