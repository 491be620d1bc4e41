"""The page's image grids: every stored set of a method with a distilling backbone, classes across and
one row per distilling backbone, each image its own PNG beside the page (``images/<grid stem>/``).

Sets of images (LGM) are written at their own resolution; sets of real training images (centroids,
k-means, herding, neighbours store the rows they picked) are read from the dataset's training split,
which must be the one the set was picked from (its fingerprint, as the set recorded it), and written
no larger than :data:`REAL_MAX_SIDE`. Sets are found as for the report's figures
(:func:`.distilled.set_groups`: only inside the results directory).
"""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from ..paths import atomic_write_bytes
from .distilled import Payload, read_payload, set_groups
from .naming import display_backbone, safe_name
from .records import Gallery, GalleryRow

IMAGES = "images"  # folder beside the page
REAL_MAX_SIDE = 256  # real images are shown as large as this at most (ImageNet photos are larger)
Warn = Callable[[str], None]


def _png(image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def _from_pixels(chw: np.ndarray):
    """C x H x W floats in [0, 1] -> a PIL image (greyscale for one channel)."""
    from PIL import Image

    pixels = (np.clip(chw.transpose(1, 2, 0), 0, 1) * 255).round().astype(np.uint8)
    return Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels)


def _real(image):
    """A training image as shown: its own mode where PNG keeps it, no side above REAL_MAX_SIDE."""
    image = image if image.mode in ("L", "RGB") else image.convert("RGB")
    if max(image.size) > REAL_MAX_SIDE:
        image = image.copy()
        image.thumbnail((REAL_MAX_SIDE, REAL_MAX_SIDE))
    return image


class TrainSplits:
    """Training splits by dataset name, loaded once (for the real images a set picked); a dataset that
    cannot be loaded here, or whose rows are not the ones a set was picked from, is said once."""

    def __init__(self, warn: Warn) -> None:
        self.warn = warn
        self._splits: dict[str, object] = {}
        self._said: set[tuple[str, str]] = set()

    def _say(self, dataset: str, why: str, message: str) -> None:
        if (dataset, why) not in self._said:
            self._said.add((dataset, why))
            self.warn(message)

    def get(self, dataset: str, fingerprint: str | None):
        if dataset not in self._splits:
            from ..registry import DATASETS

            try:
                self._splits[dataset] = DATASETS.get(dataset).load("train")
            except Exception as err:  # offline, gated, moved: the page shows the rest
                self._splits[dataset] = None
                self._say(dataset, "load", f"selected real images of {dataset} not shown: its training split "
                                           f"cannot be loaded here ({str(err).splitlines()[0] if str(err) else err!r})")
        split = self._splits[dataset]
        if split is None:
            return None
        if fingerprint and split.fingerprint != fingerprint:
            self._say(dataset, "fingerprint", f"selected real images of {dataset} not shown: its training split "
                                              f"here (fingerprint {split.fingerprint[:12]}) is not the one the sets "
                                              f"were picked from ({fingerprint[:12]})")
            return None
        return split


def _set_images(payload: Payload, dataset: str, splits: TrainSplits) -> tuple[str, list, list[str]] | None:
    """``(kind, images, class names)``: the set's images as PIL images, in the order of its labels; a
    set of real images takes its class names from the split it was picked from."""
    if payload.images is not None:
        return "distilled", [_from_pixels(im) for im in payload.images], payload.class_names
    if payload.indices is None:
        return None
    split = splits.get(dataset, payload.meta.get("artifact", {}).get("train_fingerprint"))
    if split is None:
        return None
    rows = split.dataset.select([int(i) for i in payload.indices])[split.image_column]
    names = list(split.class_names) + payload.class_names[len(split.class_names):]
    return "selected", [_real(im) for im in rows], names


def galleries(rows: pd.DataFrame, root: Path, out: Path, warn: Warn) -> list[Gallery]:
    """One :class:`~.records.Gallery` per stored set group, its images written under ``out/images/``."""
    splits = TrainSplits(warn)
    made = []
    for group in set_groups(rows, root, warn):
        folder = out / IMAGES / group.stem
        gallery: Gallery | None = None
        for backbone, directory in group.directories:
            payload = read_payload(directory)
            found = None if payload is None else _set_images(payload, group.dataset, splits)
            if found is None:
                continue
            kind, images, names = found
            if gallery is None:
                gallery = Gallery(group.stem, group.title, kind, group.method, group.dataset, group.ipc, group.seed,
                                  names)
            per_class: dict[int, list[int]] = {}
            for i, label in enumerate(payload.labels):
                per_class.setdefault(int(label), []).append(i)
            ipc = max((len(v) for v in per_class.values()), default=0)
            for k in range(ipc):
                label = display_backbone(backbone) + (f" #{k + 1}" if ipc > 1 else "")
                paths: list[str | None] = []
                for c in range(len(gallery.class_names)):
                    picked = per_class.get(c, [])
                    if k >= len(picked):
                        paths.append(None)
                        continue
                    path = folder / f"{safe_name(backbone)}_c{c}_{k}.png"
                    image = images[picked[k]]
                    atomic_write_bytes(path, _png(image))
                    gallery.side = max(gallery.side, *image.size)
                    gallery.files.append(path)
                    paths.append(path.relative_to(out).as_posix())
                gallery.rows.append(GalleryRow(label, paths))
        if gallery is not None:
            made.append(gallery)
    return made
