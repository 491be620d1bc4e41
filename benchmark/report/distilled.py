"""The distilled images as the paper shows its sets: classes across, one row per distilling backbone
(``ipc`` rows each when a set has several images per class), class names on top.

Read from the stored synthetic sets (``set.safetensors`` and ``meta.json`` of each row's artifact
directory; only sets of images, and only inside the results directory). Wide sets wrap: at most
:data:`CLASSES_PER_BLOCK` classes per row block and :data:`BLOCKS_PER_PAGE` blocks per page, so 10
classes make one page and 100 classes two; the PDF holds every page, and each page is a PNG too.
The ``grid.png`` a method drew into its artifact while it worked is copied beside them.
"""

from __future__ import annotations

import io
import json
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_pdf import PdfPages
from matplotlib.figure import Figure

from ..artifacts import META, PAYLOAD, locate
from ..hashing import sha256_file
from ..paths import atomic_target, atomic_write_bytes
from .aggregate import ok_rows
from .figures import PDF_META, PNG_META, themed
from .naming import display_backbone, display_dataset, display_method, safe_name
from .records import DistilledGrid

CLASSES_PER_BLOCK = 10
BLOCKS_PER_PAGE = 5
TILE = 64  # pixels per image in the figure (larger sets are downsampled)
PAD = 2
METHOD_GRID = "grid.png"  # what a method may draw into its artifact while it works
Warn = Callable[[str], None]


@dataclass
class StoredSet:
    """One distilled set: images per class (``classes x ipc x TILE x TILE x 3``, uint8) and names."""

    backbone: str
    images: np.ndarray
    class_names: list[str]


def class_blocks(n_classes: int, per_block: int = CLASSES_PER_BLOCK,
                 per_page: int = BLOCKS_PER_PAGE) -> list[list[range]]:
    """Pages of row blocks of class indices: ``class_blocks(25, 10, 2)`` -> [[0..9, 10..19], [20..24]]."""
    if per_block < 1 or per_page < 1:
        raise ValueError("per_block and per_page must be at least 1")
    blocks = [range(s, min(s + per_block, n_classes)) for s in range(0, n_classes, per_block)]
    return [blocks[i:i + per_page] for i in range(0, len(blocks), per_page)]


def _tiles(images: np.ndarray, labels: np.ndarray, n_classes: int) -> np.ndarray:
    """Nx3xHxW floats in [0, 1] -> classes x ipc x TILE x TILE x 3 uint8 (white where a class has fewer)."""
    from PIL import Image

    ipc = max(int((labels == c).sum()) for c in range(n_classes)) if len(labels) else 0
    out = np.full((n_classes, max(ipc, 1), TILE, TILE, 3), 255, dtype=np.uint8)
    for c in range(n_classes):
        for i, image in enumerate(images[labels == c]):
            pixels = (np.clip(image.transpose(1, 2, 0), 0, 1) * 255).round().astype(np.uint8)
            if pixels.shape[-1] == 1:
                pixels = pixels.repeat(3, axis=-1)
            out[c, i] = np.asarray(Image.fromarray(pixels).resize((TILE, TILE), Image.Resampling.LANCZOS))
    return out


@dataclass
class Payload:
    """What one artifact directory stores: ``images`` (N x C x H x W floats in [0, 1]) for a set of
    images, else ``indices`` (N training rows) for a set of real images; ``labels`` and the class names
    (padded with the class index where the set names fewer)."""

    images: np.ndarray | None
    indices: np.ndarray | None
    labels: np.ndarray
    class_names: list[str]
    meta: dict


def read_payload(directory: Path) -> Payload | None:
    """The stored set of one artifact directory; None for an incomplete set (no ``meta.json``) or one
    whose payload fails its checksum."""
    from safetensors.numpy import load_file

    try:
        meta = json.loads((directory / META).read_text())
        if meta.get("payload_sha256") != sha256_file(directory / PAYLOAD):
            return None
        tensors = load_file(str(directory / PAYLOAD))
    except (OSError, ValueError):
        return None
    if "labels" not in tensors:
        return None
    labels = tensors["labels"].astype(np.int64)
    names = [str(n) for n in meta.get("metadata", {}).get("class_names") or []]
    n_classes = max(len(names), int(labels.max()) + 1 if len(labels) else 0)
    names += [str(c) for c in range(len(names), n_classes)]
    images = tensors["images"].astype(np.float32) if "images" in tensors else None
    indices = tensors["indices"].astype(np.int64) if images is None and "indices" in tensors else None
    return Payload(images, indices, labels, names, meta)


def load_stored_set(directory: Path, backbone: str) -> StoredSet | None:
    """The images of one artifact directory; None for a set of real-image indices, or an incomplete
    set (no ``meta.json``), or one whose payload fails its checksum."""
    payload = read_payload(directory)
    if payload is None or payload.images is None:
        return None
    tiles = _tiles(payload.images, payload.labels, len(payload.class_names))
    return StoredSet(backbone, tiles, payload.class_names)


def _mosaic(sets: Sequence[StoredSet], classes: range) -> np.ndarray:
    """One row block: a row of tiles per (backbone, image index), a column per class; white gaps."""
    ipc = max(s.images.shape[1] for s in sets)
    rows, cols = len(sets) * ipc, len(classes)
    step = TILE + PAD
    canvas = np.full((rows * step + PAD, cols * step + PAD, 3), 255, dtype=np.uint8)
    for r, s in enumerate(sets):
        for i in range(s.images.shape[1]):
            y = PAD + (r * ipc + i) * step
            for j, c in enumerate(classes):
                canvas[y:y + TILE, PAD + j * step:PAD + j * step + TILE] = s.images[c, i]
    return canvas


def row_labels(sets: Sequence[StoredSet]) -> list[str]:
    ipc = max(s.images.shape[1] for s in sets)
    return [display_backbone(s.backbone) + (f" #{i + 1}" if ipc > 1 else "") for s in sets for i in range(ipc)]


def grid_pages(sets: Sequence[StoredSet], title: str = "", per_block: int = CLASSES_PER_BLOCK,
               per_page: int = BLOCKS_PER_PAGE) -> list[Figure]:
    """The pages of one grid (the first set's class names label the columns)."""
    names = sets[0].class_names
    labels = row_labels(sets)
    step = TILE + PAD
    pages = []
    for p, blocks in enumerate(class_blocks(len(names), per_block, per_page)):
        block_h = len(labels) * step / 60 + 0.9  # inches: tiles at 60 px/inch plus the class names
        fig = Figure(figsize=(2.0 + min(per_block, len(names)) * step / 60, 0.4 + block_h * len(blocks)))
        axes = fig.subplots(len(blocks), 1, squeeze=False)[:, 0]
        for ax, classes in zip(axes, blocks, strict=True):
            ax.imshow(_mosaic(sets, classes), interpolation="nearest")
            ax.grid(False)
            ax.xaxis.tick_top()
            ax.set_xticks([PAD + j * step + TILE / 2 for j in range(len(classes))],
                          [names[c] for c in classes], rotation=30, ha="left", fontsize=7)
            ax.set_yticks([PAD + r * step + TILE / 2 for r in range(len(labels))], labels, fontsize=7)
            ax.tick_params(length=0)
            for side in ax.spines.values():
                side.set_visible(False)
        if title:
            n_pages = -(-len(names) // (per_block * per_page))
            fig.suptitle(title + (f" ({p + 1}/{n_pages})" if n_pages > 1 else ""), fontsize=9)
        fig.set_layout_engine("tight")
        pages.append(fig)
    return pages


def save_pages(pages: Sequence[Figure], stem: Path, pdf: bool = True) -> list[Path]:
    """``stem.png`` (``stem_p<k>.png`` per page when there are several) and one ``stem.pdf``."""
    written = []
    for k, fig in enumerate(pages, start=1):
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=120, metadata=PNG_META, bbox_inches="tight")
        path = stem.with_name(f"{stem.name}.png" if len(pages) == 1 else f"{stem.name}_p{k}.png")
        atomic_write_bytes(path, buf.getvalue())
        written.append(path)
    if pdf:
        buf = io.BytesIO()
        with PdfPages(buf, metadata=PDF_META) as doc:
            for fig in pages:
                doc.savefig(fig, bbox_inches="tight")
        path = stem.with_name(f"{stem.name}.pdf")
        atomic_write_bytes(path, buf.getvalue())
        written.append(path)
    return written


def copy_file(src: Path, dst: Path) -> Path:
    """Copy atomically (temp file beside ``dst``, then rename)."""
    tmp = atomic_target(dst)
    shutil.copyfile(src, tmp)
    tmp.replace(dst)
    return dst


def inside(path: Path, root: Path) -> bool:
    """Whether ``path``, symlinks resolved, lies inside ``root``."""
    return Path(path).resolve().is_relative_to(Path(root).resolve())


def copy_method_grids(rows: pd.DataFrame, root: Path, out: Path, warn: Warn) -> list[Path]:
    """Copy the ``grid.png`` a method drew into its artifact (LGM does, one per set) once per artifact:
    ``<dataset>_<method>_<distill_backbone>_ipc<k>_seed<s>_grid.png``; only files inside ``root``."""
    frame = ok_rows(rows)
    frame = frame[frame["artifact"] != ""]
    if frame.empty:
        return []
    frame = frame.sort_values(["dataset", "method", "distill_backbone", "ipc", "method_seed", "artifact"])
    written: dict[str, str] = {}
    for rec in frame.drop_duplicates("artifact").to_dict("records"):
        src = locate(rec["artifact"], root, marker=METHOD_GRID)
        if src is None:
            continue
        if not inside(src / METHOD_GRID, root):
            warn(f"{src / METHOD_GRID}: not copied, it lies outside the results directory {root} (the "
                 "row's artifact path points elsewhere)")
            continue
        name = (f"{safe_name(rec['dataset'])}_{safe_name(rec['method'])}_{safe_name(rec['distill_backbone'])}"
                f"_ipc{int(rec['ipc'])}_seed{int(rec['method_seed'])}_grid.png")
        if name not in written:  # the same set under another suite: one copy is enough
            written[name] = rec["artifact"]
            copy_file(src / METHOD_GRID, out / name)
    return [out / n for n in sorted(written)]


@dataclass(frozen=True)
class SetGroup:
    """The stored sets of one (dataset, method, ipc, method seed): an artifact directory per distilling
    backbone, each inside the results directory."""

    dataset: str
    method: str
    ipc: int
    seed: int
    directories: list[tuple[str, Path]]  # (distilling backbone, artifact directory), by backbone

    @property
    def stem(self) -> str:
        return f"{safe_name(self.dataset)}_{safe_name(self.method)}_ipc{self.ipc}_seed{self.seed}_grid"

    @property
    def title(self) -> str:
        return (f"{display_method(self.method)}, {display_dataset(self.dataset)}, {self.ipc} image(s) per class, "
                f"seed {self.seed}")


def set_groups(rows: pd.DataFrame, root: Path, warn: Warn) -> list[SetGroup]:
    """Every (dataset, method, ipc, method seed) of ok rows with a distilling backbone and a stored set.

    Only sets inside the results directory are read: a row names a path, and a report must not
    publish whatever an edited or foreign row points at."""
    frame = ok_rows(rows)
    frame = frame[(frame["artifact"] != "") & (frame["distill_backbone"] != "")]
    groups = []
    for (dataset, method, ipc, seed), part in frame.groupby(["dataset", "method", "ipc", "method_seed"], sort=True):
        directories = []
        for backbone, art in part.groupby("distill_backbone", sort=True)["artifact"]:
            directory = locate(sorted(art)[0], root)
            if directory is None:
                continue
            if not inside(directory, root):
                warn(f"{directory}: not shown, it lies outside the results directory {root} (the row's "
                     "artifact path points elsewhere)")
                continue
            directories.append((str(backbone), directory))
        if directories:
            groups.append(SetGroup(str(dataset), str(method), int(ipc), int(seed), directories))
    return groups


def distilled_grids(rows: pd.DataFrame, root: Path, out: Path, warn: Warn, pdf: bool = True) -> list[DistilledGrid]:
    """One grid per (dataset, method, ipc, method seed) whose stored sets hold images."""
    made = []
    for group in set_groups(rows, root, warn):
        sets = [s for backbone, directory in group.directories
                if (s := load_stored_set(directory, backbone)) is not None]
        if not sets:
            continue
        with themed():
            figures = save_pages(grid_pages(sets, group.title), out / group.stem, pdf=pdf)
        made.append(DistilledGrid(group.stem, group.title, figures))
    return made
