"""Mutual k-nearest-neighbour alignment of two backbones' embedding spaces.

The metric of Huh et al. (2024, "The Platonic Representation Hypothesis"): embed the same images with
backbones A and B; for every image take its ``k`` nearest neighbours (cosine similarity on
L2-normalised features, the image itself excluded) in A and in B; the alignment is the size of the
overlap of the two neighbour sets divided by ``k``, averaged over images. It is 1 for spaces with the
same neighbourhoods (e.g. a rotated copy) and about ``k / (n - 1)`` for unrelated ones.

The paper compares cross-model transfer with this metric at ``k = 10`` on about 1,000 test images;
:func:`alignment_rows` draws that fixed sample from a seed, :func:`alignment_table` computes every
unordered pair of backbones into a tidy frame, and :func:`write_alignment` / :func:`read_alignment`
keep it as its own Parquet table, ``<results>/alignment/<dataset>.parquet``, which the report reads.

Similarities are computed ``chunk_size`` rows at a time, so memory stays at ``chunk_size x n`` however
many images are used.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from torch import Tensor

from .paths import atomic_write_bytes

DEFAULT_K = 10
DEFAULT_SAMPLE = 1000
DEFAULT_SEED = 0
DEFAULT_CHUNK = 1024

#: The alignment table's columns, in order.
ALIGNMENT_COLUMNS = ["dataset", "backbone_a", "backbone_b", "k", "n", "alignment", "sample_seed", "sample_hash"]
_SCHEMA = pa.schema([
    ("dataset", pa.string()),
    ("backbone_a", pa.string()),
    ("backbone_b", pa.string()),
    ("k", pa.int64()),
    ("n", pa.int64()),
    ("alignment", pa.float64()),
    ("sample_seed", pa.int64()),  # null when the rows were not drawn by alignment_rows
    ("sample_hash", pa.string()),  # sha256 of the sampled row indices ("" when unknown)
])
#: Rows with the same values here are the same measurement; a newer write replaces an older one.
_IDENTITY = ["dataset", "backbone_a", "backbone_b", "k", "n", "sample_seed", "sample_hash"]
ALIGNMENT_DIR = "alignment"


# --------------------------------------------------------------------------------------- the metric


def _as_matrix(x: Any, name: str, dtype: torch.dtype) -> Tensor:
    t = torch.as_tensor(np.asarray(x) if not isinstance(x, Tensor) else x)
    if t.ndim != 2:
        raise ValueError(f"{name} must be a 2-D (images x features) array, got shape {tuple(t.shape)}")
    return t.detach().to("cpu", dtype)


def knn_indices(feats: Any, k: int = DEFAULT_K, *, chunk_size: int = DEFAULT_CHUNK,
                dtype: torch.dtype = torch.float64) -> Tensor:
    """``n x k`` indices of each row's ``k`` nearest other rows by cosine similarity (most similar
    first; the row itself never counts). Memory: ``chunk_size x n`` similarities at a time."""
    x = _as_matrix(feats, "features", dtype)
    n = x.shape[0]
    if not 1 <= k < n:
        raise ValueError(f"k must be in [1, n - 1] = [1, {n - 1}], got {k}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    x = torch.nn.functional.normalize(x, dim=1)
    out = torch.empty(n, k, dtype=torch.int64)
    for start in range(0, n, chunk_size):
        stop = min(start + chunk_size, n)
        sim = x[start:stop] @ x.T
        rows = torch.arange(stop - start)
        sim[rows, rows + start] = -torch.inf  # never one's own neighbour
        out[start:stop] = sim.topk(k, dim=1).indices
    return out


def mutual_knn(feats_a: Any, feats_b: Any, k: int = DEFAULT_K, *, chunk_size: int = DEFAULT_CHUNK,
               dtype: torch.dtype = torch.float64) -> float:
    """Mutual k-NN alignment in [0, 1] of two embeddings of the same ``n`` images (row i of each is
    image i): mean over images of |kNN_A(i) ∩ kNN_B(i)| / k. Symmetric in A and B. Accepts torch
    tensors or numpy arrays; the feature dimensions may differ."""
    a = _as_matrix(feats_a, "feats_a", dtype)
    b = _as_matrix(feats_b, "feats_b", dtype)
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"feats_a and feats_b must hold the same images: {a.shape[0]} != {b.shape[0]} rows")
    knn_a = knn_indices(a, k, chunk_size=chunk_size, dtype=dtype)
    knn_b = knn_indices(b, k, chunk_size=chunk_size, dtype=dtype)
    return _overlap(knn_a, knn_b, chunk_size)


def _overlap(knn_a: Tensor, knn_b: Tensor, chunk_size: int = DEFAULT_CHUNK) -> float:
    """Mean over rows of |row of knn_a ∩ row of knn_b| / k (rows hold distinct indices)."""
    n, k = knn_a.shape
    shared = 0
    step = max(1, chunk_size * 8 // k)  # step x k x k booleans at a time
    for start in range(0, n, step):
        ka, kb = knn_a[start:start + step], knn_b[start:start + step]
        shared += int((ka[:, :, None] == kb[:, None, :]).any(dim=2).sum())
    return shared / (n * k)


# --------------------------------------------------------------------------------- sample and table


def alignment_rows(n_total: int, n: int = DEFAULT_SAMPLE, seed: int = DEFAULT_SEED) -> np.ndarray:
    """A fixed, seeded sample of ``min(n, n_total)`` distinct row indices of a split, sorted."""
    if n_total < 1 or n < 1:
        raise ValueError(f"need n_total >= 1 and n >= 1, got n_total={n_total}, n={n}")
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n_total, size=min(n, n_total), replace=False)).astype(np.int64)


def indices_hash(indices: Sequence[int] | np.ndarray | Tensor) -> str:
    """sha256 of the row indices as little-endian int64 (the feature cache's convention)."""
    rows = np.asarray(torch.as_tensor(indices, dtype=torch.int64).flatten()).astype("<i8")
    return hashlib.sha256(rows.tobytes()).hexdigest()


def alignment_table(features: Mapping[str, Any], *, dataset: str, k: int = DEFAULT_K,
                    sample_seed: int | None = None, sample: Sequence[int] | np.ndarray | Tensor | None = None,
                    chunk_size: int = DEFAULT_CHUNK) -> pd.DataFrame:
    """Mutual k-NN alignment of every unordered pair of backbones.

    ``features`` maps backbone name -> ``n x D`` features of the same images in the same order.
    ``sample_seed`` / ``sample`` record how the rows were drawn (see :func:`alignment_rows`); they do not
    change the numbers. One row per pair, ``backbone_a < backbone_b``, columns
    :data:`ALIGNMENT_COLUMNS`."""
    names = sorted(features)
    if len(names) < 2:
        raise ValueError(f"alignment needs at least two backbones, got {names}")
    sizes = {name: len(features[name]) for name in names}
    if len(set(sizes.values())) != 1:
        raise ValueError(f"every backbone's features must hold the same images; rows per backbone: {sizes}")
    knn = {name: knn_indices(features[name], k, chunk_size=chunk_size) for name in names}
    n = sizes[names[0]]
    records = []
    for a, b in itertools.combinations(names, 2):
        records.append({
            "dataset": dataset, "backbone_a": a, "backbone_b": b, "k": int(k), "n": int(n),
            "alignment": _overlap(knn[a], knn[b], chunk_size),
            "sample_seed": None if sample_seed is None else int(sample_seed),
            "sample_hash": "" if sample is None else indices_hash(sample),
        })
    return _typed(pd.DataFrame(records, columns=ALIGNMENT_COLUMNS))


def compute_alignment(test: Any, backbones: Mapping[str, Any], features: Any, *, k: int = DEFAULT_K,
                      n: int = DEFAULT_SAMPLE, seed: int = DEFAULT_SEED,
                      chunk_size: int = DEFAULT_CHUNK) -> pd.DataFrame:
    """Alignment of ``backbones`` (name -> :class:`~benchmark.types.Backbone`) on a seeded sample of
    ``n`` images of the split ``test`` (:class:`~benchmark.types.LabeledImages`), embedding through the
    feature cache ``features`` (a :class:`~benchmark.types.FeatureSource`; the runner's decodes and
    embeds through ``benchmark.embedding``, sliced from the split's cached features when they exist)."""
    rows = alignment_rows(len(test), n, seed)
    index = torch.as_tensor(rows)
    feats = {name: features(bb, test, index) for name, bb in backbones.items()}
    return alignment_table(feats, dataset=test.name, k=k, sample_seed=seed, sample=rows,
                           chunk_size=chunk_size)


# ----------------------------------------------------------------------------------------- storage


def _typed(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.reindex(columns=ALIGNMENT_COLUMNS).copy()
    for col in ("dataset", "backbone_a", "backbone_b", "sample_hash"):
        frame[col] = frame[col].fillna("").astype(str)
    for col in ("k", "n", "sample_seed"):
        frame[col] = frame[col].astype("Int64")
    frame["alignment"] = frame["alignment"].astype(float)
    return frame


def _file_name(dataset: str) -> str:
    return (re.sub(r"[^A-Za-z0-9._-]+", "-", str(dataset)).strip("-.") or "none") + ".parquet"


def alignment_path(results_dir: Path, dataset: str) -> Path:
    return Path(results_dir) / ALIGNMENT_DIR / _file_name(dataset)


def _read_file(path: Path) -> pd.DataFrame | None:
    try:
        return _typed(pq.read_table(path).to_pandas())
    except (OSError, pa.ArrowInvalid):
        return None


def write_alignment(frame: pd.DataFrame, results_dir: Path) -> list[Path]:
    """Write ``frame`` as ``<results_dir>/alignment/<dataset>.parquet``, one file per dataset, atomically.

    Rows already stored for other pairs or settings are kept; a row for the same measurement (dataset,
    pair, k, n, sample) is replaced. Returns the written paths."""
    frame = _typed(frame)
    written = []
    for dataset, part in frame.groupby("dataset", sort=True):
        path = alignment_path(results_dir, dataset)
        old = _read_file(path) if path.exists() else None
        merged = part if old is None or old.empty else pd.concat([old, part], ignore_index=True)
        merged = merged.drop_duplicates(_IDENTITY, keep="last")
        merged = merged.sort_values(["backbone_a", "backbone_b", "k", "n"], kind="stable").reset_index(drop=True)
        buf = io.BytesIO()
        pq.write_table(pa.Table.from_pandas(merged, schema=_SCHEMA, preserve_index=False), buf)
        atomic_write_bytes(path, buf.getvalue())
        written.append(path)
    return written


def read_alignment(results_dir: Path) -> pd.DataFrame:
    """Every alignment row under ``<results_dir>/alignment/`` (an empty frame when there are none)."""
    root = Path(results_dir) / ALIGNMENT_DIR
    files = sorted(p for p in root.glob("*.parquet") if not p.name.startswith(".")) if root.is_dir() else []
    frames = [f for f in map(_read_file, files) if f is not None and not f.empty]
    if not frames:
        return _typed(pd.DataFrame(columns=ALIGNMENT_COLUMNS))
    return pd.concat(frames, ignore_index=True)
