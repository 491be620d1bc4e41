"""A stable, content-based fingerprint of one split of a labelled image dataset.

What is hashed (sha256, version ``FINGERPRINT_VERSION``):

* a header: the logical split ("train"/"test"), the number of rows, the column names used, the class
  names, how the images were hashed ("all" or "sample:K") and, only when the rows were read at a pinned
  Hub revision, that revision (so another revision never shares caches, even where a big split's
  sampled images agree; fingerprints without a revision are unchanged);
* every label (as little-endian int64), and every group value when there is a group column;
* the *stored* bytes of the images (the encoded PNG/JPEG/... bytes, or the file's bytes when the
  dataset only holds a path), length-prefixed, in row order. A split of up to ``max_full_rows`` rows
  (default 50,000) has every image hashed; a bigger split (ImageNet, Food-101) has the images of
  ``sample_rows`` evenly spaced rows hashed, while its row count and labels are still hashed in full.
  So an edit to an unsampled image of a big split that keeps all labels is not seen; a change of any
  label, of the row order (through the labels), of the row count or of a sampled image is.

Nothing here depends on where the data lives (Hub id, local path, mtime) or on the HF ``datasets``
``_fingerprint``, which is not content-based (it is random for in-memory datasets and derived from
paths and modification times for local files). So a local parquet mirror of a Hub split, byte for byte
the same, has the same fingerprint as the Hub split read without a pinned revision, on any machine (a
pinned revision is part of the header; a mirror has none). A re-encoded image (same pixels,
different bytes) counts as a change.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

FINGERPRINT_VERSION = 1
MAX_FULL_ROWS = 50_000
SAMPLE_ROWS = 4096
_MEMO_MIN_ROWS = 10_000  # below this, hashing is cheaper than a disk memo


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def column_values(dataset: Any, column: str) -> np.ndarray:
    """One column as a numpy array, read through Arrow (respects an indices mapping; no decoding)."""
    table = dataset.select_columns([column]).with_format("arrow")[:]
    return np.asarray(table.column(column).to_numpy(zero_copy_only=False))


def _column_as_int64(dataset: Any, column: str) -> np.ndarray:
    values = column_values(dataset, column)
    try:
        return np.asarray(values, dtype="<i8")
    except (TypeError, ValueError):
        raise ValueError(f"column {column!r} holds non-integer values ({values[:3]!r} ...)") from None


def _values_digest(dataset: Any, column: str) -> str:
    values = column_values(dataset, column)
    try:
        return _sha(np.asarray(values, dtype="<i8").tobytes())
    except (TypeError, ValueError):  # e.g. string groups
        return _sha(json.dumps([str(v) for v in values]).encode())


def _image_rows(dataset: Any, column: str, rows: Sequence[int] | None, batch: int = 512) -> Iterable[bytes]:
    """The stored bytes of each image (file bytes when only a path is stored), in row order."""
    from datasets import Image

    ds = dataset.select_columns([column])
    if not isinstance(ds.features[column], Image):
        raise ValueError(f"column {column!r} is {ds.features[column]}, not an Image feature")
    ds = ds.with_format("arrow")
    n = len(ds)
    order = range(n) if rows is None else list(rows)
    for start in range(0, len(order), batch):
        chunk = order[start:start + batch]
        table = ds[chunk.start:chunk.stop] if isinstance(chunk, range) else ds[list(chunk)]
        structs = table.column(column)
        for value in structs.to_pylist():
            if value is None:
                yield b"<null>"
            elif isinstance(value, dict) and value.get("bytes") is not None:
                yield value["bytes"]
            elif isinstance(value, dict) and value.get("path"):
                with open(value["path"], "rb") as fh:
                    yield fh.read()
            else:
                raise ValueError(f"image column {column!r} has a row with neither bytes nor a path")


def sample_rows(n: int, k: int) -> list[int]:
    """``k`` evenly spaced row indices in ``[0, n)`` (all of them when ``n <= k``), first and last included."""
    if n <= k:
        return list(range(n))
    return sorted({int(i) for i in np.linspace(0, n - 1, k).round()})


def fingerprint(
    dataset: Any,
    *,
    split: str,
    class_names: Sequence[str],
    image_column: str = "image",
    label_column: str = "label",
    group_column: str | None = None,
    max_full_rows: int = MAX_FULL_ROWS,
    sample_size: int = SAMPLE_ROWS,
    memo: bool = True,
    revision: str | None = None,
) -> str:
    """sha256 (hex) of one split's content; see the module docstring for what is hashed.

    ``memo``: for big splits backed by an HF ``datasets`` cache file, remember the result on disk under
    the lgm-bench cache root, keyed by the dataset's own cache fingerprint (which changes when the
    source files change), so a second process does not re-read every image.
    """
    n = len(dataset)
    full = n <= max_full_rows
    header = {
        "version": FINGERPRINT_VERSION,
        "split": split,
        "rows": n,
        "image_column": image_column,
        "label_column": label_column,
        "group_column": group_column,
        "class_names": list(class_names),
        "images": "all" if full else f"sample:{sample_size}",
    }
    if revision is not None:
        header["revision"] = revision
    memo_path = None
    if memo and n >= _MEMO_MIN_ROWS and getattr(dataset, "cache_files", None):
        from ..paths import cache_root

        key = _sha(json.dumps({**header, "hf": dataset._fingerprint}, sort_keys=True).encode())
        memo_path = cache_root() / "fingerprints" / f"{key}.txt"
        if memo_path.is_file():
            cached = memo_path.read_text().strip()
            if len(cached) == 64:
                return cached

    h = hashlib.sha256()
    h.update(json.dumps(header, sort_keys=True).encode())
    h.update(b"\nlabels:" + _sha(_column_as_int64(dataset, label_column).tobytes()).encode())
    if group_column is not None:
        h.update(b"\ngroups:" + _values_digest(dataset, group_column).encode())
    images = hashlib.sha256()
    for data in _image_rows(dataset, image_column, None if full else sample_rows(n, sample_size)):
        images.update(len(data).to_bytes(8, "little"))
        images.update(data)
    h.update(b"\nimages:" + images.hexdigest().encode())
    digest = h.hexdigest()
    if memo_path is not None:
        from ..paths import atomic_write_bytes

        atomic_write_bytes(memo_path, digest.encode())
    return digest
