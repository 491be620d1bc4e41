"""The feature cache: centre-crop features of real images, computed once per backbone and stored on disk.

A cache entry is identified by a key: the sha256 of the canonical JSON of everything that decides the
numbers (backbone identity incl. the weight sha256, preprocessing, dataset fingerprint / split / name,
the hash of the selected rows, dtype and the cache format version). It is stored as
``<root>/<key[:2]>/<key>.safetensors`` plus a ``<key>.json`` manifest, both written to a temp file and
renamed into place (features first, manifest last). A read checks the manifest against the key, the file's
size, sha256 and shape; anything off is logged as a warning and rebuilt, never used silently.

A small in-memory LRU layer keeps recently used entries so one process does not re-read them, and an
entry for a subset of rows is sliced from a cached entry for all rows when one exists.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import time
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from .embedding import backbone_device, check_workers, compute_dtype, default_workers, embed_rows, embed_tensor
from .hashing import canonical_json
from .locks import held
from .paths import atomic_write_bytes, features_dir
from .types import Backbone, LabeledImages, Preprocess

log = logging.getLogger(__name__)

#: bump when the stored layout or the meaning of an entry changes; old entries are then simply not found
CACHE_FORMAT_VERSION = 1
_TENSOR_NAME = "features"
_DTYPE = torch.float32


class CacheEntryError(Exception):
    """A cache entry on disk that must not be used (why is in the message)."""


def indices_hash(indices: Tensor | Sequence[int] | None) -> str:
    """``"all"`` for None, else the sha256 of the rows as little-endian int64 (order matters)."""
    if indices is None:
        return "all"
    rows = torch.as_tensor(indices, dtype=torch.int64).flatten().contiguous()
    return hashlib.sha256(rows.numpy().astype("<i8").tobytes()).hexdigest()


def _as_rows(indices: Tensor | Sequence[int] | None, n: int) -> Tensor:
    if indices is None:
        return torch.arange(n, dtype=torch.int64)
    rows = torch.as_tensor(indices, dtype=torch.int64).flatten()
    if len(rows) and (int(rows.min()) < 0 or int(rows.max()) >= n):
        raise IndexError(f"feature cache: row indices out of range for a split of {n} rows")
    return rows


@dataclass
class CacheStats:
    memory_hits: int = 0
    disk_hits: int = 0
    sliced: int = 0  # served by slicing a cached all-rows entry
    built: int = 0  # computed with the backbone
    rebuilt: int = 0  # of those, how many replaced a bad entry on disk


class FeatureCache:
    """Centre-crop features of dataset rows, cached on disk; callable as ``benchmark.types.FeatureSource``.

    ``cache(backbone, data, indices=None, preprocess=None)`` returns float32 CPU features, one row per
    requested row, in the requested order. ``preprocess`` defaults to ``backbone.preprocess`` (resize to
    size*256/224, centre crop). ``memory_bytes`` caps the in-process LRU layer (0 disables it).
    Returned tensors are copies: callers may modify them. Rows are decoded by ``workers`` DataLoader
    processes (None: ``benchmark.embedding.default_workers()``; 0: in this process), which never
    changes a feature; on CUDA the backbone runs under bf16 autocast unless ``autocast=False``.
    """

    def __init__(self, root: Path | None = None, batch_size: int = 128, progress: bool = True,
                 memory_bytes: int = 2 << 30, workers: int | None = None, autocast: bool = True) -> None:
        self.root = Path(root) if root is not None else features_dir()
        self.batch_size = int(batch_size)
        self.progress = progress
        self.workers = default_workers() if workers is None else check_workers(workers)
        self.autocast = bool(autocast)
        self.memory_bytes = int(memory_bytes)
        self._memory: OrderedDict[str, Tensor] = OrderedDict()
        self._memory_used = 0
        self.stats = CacheStats()

    # -- keys and paths ------------------------------------------------------------------------------
    @staticmethod
    def key_fields(backbone: Backbone, data: LabeledImages, indices: Tensor | Sequence[int] | None = None,
                   preprocess: Preprocess | None = None, compute: torch.dtype = _DTYPE) -> dict[str, Any]:
        """Everything the key is the hash of. ``compute`` is the dtype the backbone ran in: only a
        non-fp32 one (bf16 autocast on CUDA) adds a field, so every fp32 key is what it always was."""
        preprocess = preprocess or backbone.preprocess
        fields = {
            "format": CACHE_FORMAT_VERSION,
            "backbone": backbone.identity.key(),
            "preprocess": preprocess.key(),
            # content, not name: a registered dataset, its local mirror and a reference to either share entries
            "dataset": {"split": data.split, "fingerprint": data.fingerprint},
            "indices": indices_hash(indices),
            "dtype": str(_DTYPE).removeprefix("torch."),
        }
        if compute != _DTYPE:
            fields["compute"] = str(compute).removeprefix("torch.")
        return fields

    def key(self, backbone: Backbone, data: LabeledImages, indices: Tensor | Sequence[int] | None = None,
            preprocess: Preprocess | None = None, autocast: bool | None = None) -> str:
        compute = compute_dtype(backbone_device(backbone), self._autocast(autocast))
        fields = self.key_fields(backbone, data, indices, preprocess, compute)
        return hashlib.sha256(canonical_json(fields).encode()).hexdigest()

    def paths(self, key: str) -> tuple[Path, Path]:
        """(features file, manifest file) of a key."""
        folder = self.root / key[:2]
        return folder / f"{key}.safetensors", folder / f"{key}.json"

    # -- the FeatureSource call -----------------------------------------------------------------------
    def __call__(self, backbone: Backbone, data: LabeledImages, indices: Tensor | Sequence[int] | None = None,
                 preprocess: Preprocess | None = None, autocast: bool | None = None) -> Tensor:
        """``autocast``: None follows the cache's setting; False computes in fp32 (what the official code
        does for test features and for the feature-selecting baselines)."""
        preprocess = preprocess or backbone.preprocess
        autocast = self._autocast(autocast)
        rows = _as_rows(indices, len(data))
        key = self.key(backbone, data, indices, preprocess, autocast)
        n_expected = len(rows)

        found = self._memory_get(key)
        if found is not None:
            self.stats.memory_hits += 1
            return found.clone()

        features, bad = self._read(key, n_expected)
        if features is None:
            # one builder per entry across processes: the others wait, then read what it wrote
            with self._entry_lock(key):
                features, bad = self._read(key, n_expected)
                if features is None:
                    return self._make(key, backbone, data, indices, rows, preprocess, autocast, bad)
        self.stats.disk_hits += 1
        self._memory_put(key, features)
        return features.clone()

    def _make(self, key: str, backbone: Backbone, data: LabeledImages, indices: Tensor | Sequence[int] | None,
              rows: Tensor, preprocess: Preprocess, autocast: bool, bad: bool) -> Tensor:
        """Slice the entry from a cached all-rows entry, or build and write it (the caller holds its lock)."""
        if indices is not None and not bad:  # a subset: slice a cached all-rows entry if there is one
            whole = self._cached_all(backbone, data, preprocess, autocast)
            if whole is not None:
                self.stats.sliced += 1
                sub = whole[rows].clone()
                self._memory_put(key, sub)
                return sub.clone()
        features = self._build(backbone, data, rows, preprocess, autocast)
        self.stats.built += 1
        self.stats.rebuilt += int(bad)
        self._write(key, features, backbone, data, indices, preprocess)
        self._memory_put(key, features)
        return features.clone()

    @contextlib.contextmanager
    def _entry_lock(self, key: str) -> Iterator[None]:
        """The entry's cross-process lock; none when the cache directory cannot hold a lock file (the
        entry is then built here, and ``_write`` reports the failed write the same way)."""
        with contextlib.ExitStack() as stack:
            try:
                stack.enter_context(held(self.paths(key)[0].parent / key, f"the feature cache entry {key[:16]}"))
            except OSError as err:
                log.warning("feature cache: no lock for %s (%s); building without one", key[:16], err)
            yield

    def embed_images(self, backbone: Backbone, images: Tensor, batch_size: int | None = None) -> Tensor:
        """Features (float32, CPU) of in-memory images (Nx3xHxW in [0, 1]); nothing is cached."""
        return embed_tensor(backbone, images, batch_size=batch_size or self.batch_size, autocast=self.autocast)

    def _autocast(self, asked: bool | None) -> bool:
        return self.autocast if asked is None else bool(asked)

    # -- disk ----------------------------------------------------------------------------------------
    def _read(self, key: str, n_expected: int | None) -> tuple[Tensor | None, bool]:
        """(features, False) on a good entry; (None, False) when there is none; (None, True) on a bad one."""
        feat_path, manifest_path = self.paths(key)
        if not feat_path.exists() and not manifest_path.exists():
            return None, False
        try:
            return self._load_checked(key, feat_path, manifest_path, n_expected), False
        except CacheEntryError as err:
            log.warning("feature cache: entry %s is not usable (%s); rebuilding it", key[:16], err)
            return None, True

    @staticmethod
    def _load_checked(key: str, feat_path: Path, manifest_path: Path, n_expected: int | None) -> Tensor:
        from safetensors.torch import load as st_load

        try:
            manifest = json.loads(manifest_path.read_text())
        except FileNotFoundError:
            raise CacheEntryError("manifest missing") from None
        except (OSError, ValueError) as err:
            raise CacheEntryError(f"manifest unreadable: {err}") from None
        if not isinstance(manifest, dict):
            raise CacheEntryError("manifest is not a JSON object")
        if manifest.get("key") != key:
            raise CacheEntryError(f"manifest key {str(manifest.get('key'))[:16]!r} does not match")
        if manifest.get("format") != CACHE_FORMAT_VERSION:
            raise CacheEntryError(f"cache format {manifest.get('format')!r} != {CACHE_FORMAT_VERSION}")
        try:
            blob = feat_path.read_bytes()
        except FileNotFoundError:
            raise CacheEntryError("features file missing") from None
        except OSError as err:
            raise CacheEntryError(f"features file unreadable: {err}") from None
        if len(blob) != manifest.get("size_bytes"):
            raise CacheEntryError(f"file has {len(blob)} bytes, manifest says {manifest.get('size_bytes')}")
        if hashlib.sha256(blob).hexdigest() != manifest.get("sha256"):
            raise CacheEntryError("file sha256 does not match the manifest")
        try:
            tensor = st_load(blob)[_TENSOR_NAME]
        except Exception as err:  # safetensors raises its own error types
            raise CacheEntryError(f"safetensors load failed: {err}") from None
        shape = list(tensor.shape)
        if shape != manifest.get("shape") or tensor.dim() != 2:
            raise CacheEntryError(f"shape {shape} does not match the manifest {manifest.get('shape')}")
        if n_expected is not None and shape[0] != n_expected:
            raise CacheEntryError(f"{shape[0]} rows stored, {n_expected} expected")
        if tensor.dtype != _DTYPE:
            raise CacheEntryError(f"dtype {tensor.dtype} stored, {_DTYPE} expected")
        return tensor

    def _cached_all(self, backbone: Backbone, data: LabeledImages, preprocess: Preprocess,
                    autocast: bool) -> Tensor | None:
        key = self.key(backbone, data, None, preprocess, autocast)
        found = self._memory_get(key)
        if found is not None:
            return found
        if not self.paths(key)[1].exists():
            return None
        features, _ = self._read(key, len(data))
        if features is not None:
            self._memory_put(key, features)
        return features

    def _write(self, key: str, features: Tensor, backbone: Backbone, data: LabeledImages,
               indices: Tensor | Sequence[int] | None, preprocess: Preprocess) -> None:
        from safetensors.torch import save as st_save

        feat_path, manifest_path = self.paths(key)
        blob = st_save({_TENSOR_NAME: features.contiguous()}, metadata={"key": key})
        ident = backbone.identity
        manifest = {
            "key": key,
            "format": CACHE_FORMAT_VERSION,
            "shape": list(features.shape),
            "dtype": str(features.dtype).removeprefix("torch."),
            "size_bytes": len(blob),
            "sha256": hashlib.sha256(blob).hexdigest(),
            "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            # human-readable: what this entry is
            "backbone": ident.name,
            "weight_id": ident.weight_id,
            "weight_sha256": ident.weight_sha256,
            "dataset": data.name,
            "split": data.split,
            "fingerprint": data.fingerprint,
            "rows": "all" if indices is None else len(features),
            "indices_sha256": indices_hash(indices),
            "preprocess": preprocess.key(),
            "torch": torch.__version__,
        }
        try:  # under the entry's lock (see __call__): the manifest always matches its file
            atomic_write_bytes(feat_path, blob)
            atomic_write_bytes(manifest_path, json.dumps(manifest, indent=1, sort_keys=True).encode())
        except OSError as err:
            log.warning("feature cache: could not write %s (%s); features are used but not cached",
                        feat_path, err)

    # -- compute -------------------------------------------------------------------------------------
    def _build(self, backbone: Backbone, data: LabeledImages, rows: Tensor, preprocess: Preprocess,
               autocast: bool) -> Tensor:
        started = time.perf_counter()
        features = embed_rows(backbone, data, rows, preprocess, batch_size=self.batch_size, workers=self.workers,
                              autocast=autocast, progress=self.progress)
        log.info("feature cache: embedded %d rows of %s/%s with %s in %.1fs", len(rows), data.name,
                 data.split, backbone.name, time.perf_counter() - started)
        return features.contiguous()

    # -- memory layer --------------------------------------------------------------------------------
    def _memory_get(self, key: str) -> Tensor | None:
        found = self._memory.get(key)
        if found is not None:
            self._memory.move_to_end(key)
        return found

    def _memory_put(self, key: str, features: Tensor) -> None:
        size = features.numel() * features.element_size()
        if size > self.memory_bytes:
            return
        old = self._memory.pop(key, None)
        if old is not None:
            self._memory_used -= old.numel() * old.element_size()
        self._memory[key] = features
        self._memory_used += size
        while self._memory_used > self.memory_bytes and self._memory:
            _, evicted = self._memory.popitem(last=False)
            self._memory_used -= evicted.numel() * evicted.element_size()
