"""Synthetic sets stored once per (dataset, method config, distilling backbone, ipc, method seed).

Layout: ``<root>/<dataset>/<method>/<backbone>/ipc<k>_seed<s>_<key12>/`` holding ``set.safetensors``
(labels, and images and/or indices), ``meta.json`` (written last: its presence marks a complete set),
and whatever the method keeps there while it works (checkpoints, ``grid.png``).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from safetensors.torch import load_file, save_file

from .hashing import canonical_json, stable_hash
from .paths import atomic_target, atomic_write_bytes
from .types import SyntheticSet

log = logging.getLogger(__name__)
FORMAT = 1


@dataclass(frozen=True)
class ArtifactKey:
    dataset: str
    train_fingerprint: str
    method_config: dict[str, Any]
    backbone: str  # "" when the method uses no backbone
    backbone_identity: dict[str, Any] | None
    ipc: int
    seed: int

    @property
    def digest(self) -> str:
        return stable_hash({"format": FORMAT, **self.__dict__})

    def relpath(self) -> Path:
        method = self.method_config.get("method", "method")
        return Path(self.dataset, method, self.backbone or "none", f"ipc{self.ipc}_seed{self.seed}_{self.digest[:12]}")


class ArtifactStore:
    """Save and load synthetic sets; a missing, partial or mismatched artifact reads as absent."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def directory(self, key: ArtifactKey) -> Path:
        return self.root / key.relpath()

    def load(self, key: ArtifactKey) -> tuple[SyntheticSet, dict[str, Any]] | None:
        d = self.directory(key)
        try:
            meta = json.loads((d / "meta.json").read_text())
            if meta.get("key") != key.digest:
                log.warning("artifact %s has a different key; making it again", d)
                return None
            tensors = load_file(d / "set.safetensors")
        except FileNotFoundError:
            return None
        except Exception as err:  # truncated or corrupt: rebuild rather than trust it
            log.warning("artifact %s is unreadable (%s); making it again", d, err)
            return None
        synset = SyntheticSet(labels=tensors["labels"], images=tensors.get("images"),
                              indices=tensors.get("indices"), metadata=meta.get("metadata", {}))
        return synset, meta

    def save(self, key: ArtifactKey, synset: SyntheticSet, cost: dict[str, Any]) -> Path:
        d = self.directory(key)
        d.mkdir(parents=True, exist_ok=True)
        tensors = {"labels": synset.labels.contiguous()}
        if synset.images is not None:
            tensors["images"] = synset.images.detach().float().cpu().contiguous()
        if synset.indices is not None:
            tensors["indices"] = synset.indices.long().cpu().contiguous()
        tmp = atomic_target(d / "set.safetensors")
        save_file(tensors, tmp)
        tmp.replace(d / "set.safetensors")
        meta = {"key": key.digest, "format": FORMAT, "artifact": json.loads(canonical_json(key.__dict__)),
                "cost": cost, "metadata": synset.metadata}
        atomic_write_bytes(d / "meta.json", json.dumps(meta, indent=1, default=str).encode())
        return d
