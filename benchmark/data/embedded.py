"""The dataset shipped in the repository: a class-balanced subset of Fashion-MNIST.

``benchmark/assets/fashion_mnist_subset.npz`` holds 300 training and 100 test images per class (3,000 /
1,000) as uint8 28x28 arrays with their labels and their row numbers in the original files; see
``benchmark/assets/fashion_mnist_subset.md`` for provenance and ``scripts/make_fashion_mnist_subset.py``
to rebuild it. The rows are chosen per class by sorting the class's row numbers by
``sha256(f"{seed}:{split}:{row}")`` and taking the first k, then kept in original order; this needs no
random number generator, so it is the same on every numpy version.

Loaded, each split is an in-memory ``datasets.Dataset`` with an ``Image`` feature (each image stored as
a binary PGM, whose bytes depend only on the pixels) and a ``ClassLabel`` with the real class names.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import io
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

ASSETS_DIR = Path(__file__).resolve().parent.parent / "assets"
FASHION_MNIST_ASSET = "fashion_mnist_subset.npz"
FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
IDX_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
SUBSET_SEED = 0
SUBSET_PER_CLASS = {"train": 300, "test": 100}
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)


# -- building the asset (used by scripts/make_fashion_mnist_subset.py) --------------------------------
def read_idx(path: str | Path) -> np.ndarray:
    """An IDX file (optionally gzipped) of unsigned bytes -> numpy array of its shape."""
    raw = Path(path).read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    if raw[:2] != b"\x00\x00" or raw[2] != 0x08:
        raise ValueError(f"{path} is not an IDX file of unsigned bytes")
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(shape)):
        raise ValueError(f"{path}: header says {shape} but holds {data.size} values")
    return data.reshape(shape)


def read_debian_split(split: str, root: str | Path = DEBIAN_DIR) -> tuple[np.ndarray, np.ndarray]:
    images_file, labels_file = IDX_FILES[split]
    return read_idx(Path(root) / images_file), read_idx(Path(root) / labels_file)


def select_balanced(labels: np.ndarray, per_class: int, seed: int, split: str) -> np.ndarray:
    """Row numbers of ``per_class`` rows of each class, chosen by a seeded hash, in ascending order."""
    chosen: list[int] = []
    for c in np.unique(labels):
        rows = np.flatnonzero(labels == c)
        if len(rows) < per_class:
            raise ValueError(f"class {c} has only {len(rows)} rows in {split}; {per_class} asked")
        key = sorted(rows, key=lambda r: hashlib.sha256(f"{seed}:{split}:{int(r)}".encode()).digest())
        chosen.extend(int(r) for r in key[:per_class])
    return np.asarray(sorted(chosen), dtype=np.int64)


def build_subset(splits: Mapping[str, tuple[np.ndarray, np.ndarray]], seed: int = SUBSET_SEED,
                 per_class: Mapping[str, int] = SUBSET_PER_CLASS) -> dict[str, np.ndarray]:
    """{split: (images N×28×28 uint8, labels N)} -> the arrays stored in the asset."""
    arrays: dict[str, np.ndarray] = {"class_names": np.asarray(FASHION_MNIST_CLASSES)}
    for split, (images, labels) in splits.items():
        rows = select_balanced(np.asarray(labels), per_class[split], seed, split)
        arrays[f"{split}_images"] = np.ascontiguousarray(images[rows], dtype=np.uint8)
        arrays[f"{split}_labels"] = np.asarray(labels, dtype=np.uint8)[rows]
        arrays[f"{split}_source_rows"] = rows.astype("<i4")
    return arrays


def npz_bytes(arrays: Mapping[str, np.ndarray]) -> bytes:
    """An ``.npz`` (readable by ``np.load``) whose bytes depend only on the arrays: fixed member order,
    timestamps and permissions, deflate level 6 (level 9 is 8x slower for 1% less)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as zf:
        for name in sorted(arrays):
            member = io.BytesIO()
            np.lib.format.write_array(member, np.asarray(arrays[name]), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            info.create_system = 3
            zf.writestr(info, member.getvalue(), compresslevel=6)
    return buf.getvalue()


# -- loading -------------------------------------------------------------------------------------------
def asset_path(name: str = FASHION_MNIST_ASSET) -> Path:
    path = ASSETS_DIR / name
    if not path.is_file():
        raise FileNotFoundError(
            f"bundled dataset file {path} is missing; rebuild it with scripts/make_fashion_mnist_subset.py"
        )
    return path


@functools.lru_cache(maxsize=4)
def _read_asset(path: str, mtime_ns: int, size: int) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}


def read_asset(name: str = FASHION_MNIST_ASSET) -> dict[str, np.ndarray]:
    path = asset_path(name)
    st = path.stat()
    return _read_asset(str(path), st.st_mtime_ns, st.st_size)


def pgm_bytes(image: np.ndarray) -> bytes:
    """A uint8 H×W array as binary PGM (P5): a tiny header plus the raw pixels, so the bytes (and the
    fingerprint) depend only on the pixels, never on an encoder's version."""
    h, w = image.shape
    return b"P5\n%d %d\n255\n" % (w, h) + np.ascontiguousarray(image, dtype=np.uint8).tobytes()


def first_per_class(labels: np.ndarray, classes: Sequence[int], k: int | None) -> np.ndarray:
    """Rows of the first ``k`` occurrences of each class in ``classes`` (all when k is None), in row order."""
    keep = np.zeros(len(labels), dtype=bool)
    for c in classes:
        rows = np.flatnonzero(labels == c)
        if k is not None and len(rows) < k:
            raise ValueError(f"class {c} has {len(rows)} rows; {k} asked")
        keep[rows if k is None else rows[:k]] = True
    return np.flatnonzero(keep)


@dataclass(frozen=True)
class EmbeddedSource:
    """A split of the bundled Fashion-MNIST subset, optionally a deterministic slice of it.

    ``classes``: original class ids to keep (relabelled 0..K-1 in this order); ``per_class``: the first
    n rows of each kept class per split, as (split, n) pairs.
    """

    kind: ClassVar[str] = "embedded"
    is_local: ClassVar[bool] = True  # bundled: LGM_BENCH_DATA_<NAME> does not replace it
    asset: str = FASHION_MNIST_ASSET
    classes: tuple[int, ...] | None = None
    per_class: tuple[tuple[str, int], ...] = ()

    def split_names(self) -> list[str]:
        return sorted(k[: -len("_images")] for k in read_asset(self.asset) if k.endswith("_images"))

    def describe(self) -> str:
        return f"bundled file benchmark/assets/{self.asset}"

    def load_split(self, split: str) -> Any:
        import pyarrow as pa
        from datasets import ClassLabel, Dataset, DatasetInfo, Features, Image

        arrays = read_asset(self.asset)
        if f"{split}_images" not in arrays:
            raise ValueError(f'Unknown split "{split}". Should be one of {self.split_names()}.')
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"].astype(np.int64)
        all_names = [str(n) for n in arrays["class_names"]]
        classes = list(self.classes) if self.classes is not None else list(range(len(all_names)))
        rows = first_per_class(labels, classes, dict(self.per_class).get(split))
        relabel = {c: i for i, c in enumerate(classes)}
        features = Features({"image": Image(), "label": ClassLabel(names=[all_names[c] for c in classes])})
        # Build the Arrow table directly (the Image feature's storage is struct<bytes, path>): no per-row encoding.
        image = pa.StructArray.from_arrays(
            [pa.array([pgm_bytes(images[r]) for r in rows], type=pa.binary()),
             pa.nulls(len(rows), type=pa.string())],
            names=["bytes", "path"],
        )
        label = pa.array([relabel[int(labels[r])] for r in rows], type=pa.int64())
        table = pa.table({"image": image, "label": label})
        return Dataset(table, info=DatasetInfo(features=features))
