"""Synthetic sets stored once per (dataset, method config, distilling backbone, ipc, method seed).

Layout: ``<root>/<dataset>/<method>/<backbone>/ipc<k>_seed<s>_<key12>/`` holding ``set.safetensors``
(labels, and images and/or indices), ``meta.json`` (written last: its presence marks a complete set; it
holds the payload's sha256, checked on every load),
and whatever the method keeps there while it works (checkpoints, ``grid.png``).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from safetensors.torch import load_file, save_file

from .hashing import canonical_json, path_safe, sha256_file, stable_hash
from .paths import atomic_target, atomic_write_bytes
from .types import SyntheticSet

log = logging.getLogger(__name__)
FORMAT = 2  # 2: meta.json holds the payload's sha256
PAYLOAD = "set.safetensors"
META = "meta.json"
FOLDER = "artifacts"  # the store's folder in a results directory


def locate(artifact: str, results: Path, marker: str = META) -> Path | None:
    """The directory holding ``marker`` that a row's ``artifact`` names, or None.

    Rows keep the path as the run saw it: relative to its working directory (``results/artifacts/…``)
    or absolute. It is looked for first by its part below ``artifacts/`` in this results directory, so a
    report run from another directory, or of a results directory copied elsewhere, finds the sets; then
    as written, beside the results directory, and inside it."""
    path, results = Path(artifact), Path(results)
    folders = [i for i, part in enumerate(path.parts) if part == FOLDER]
    candidates = [results.joinpath(FOLDER, *path.parts[folders[-1] + 1:])] if folders else []
    candidates += [path] if path.is_absolute() else [results.parent / path, results / path, path]
    return next((c for c in candidates if (c / marker).is_file()), None)


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
        leaf = f"ipc{self.ipc}_seed{self.seed}_{self.digest[:12]}"
        return Path(path_safe(self.dataset), method, path_safe(self.backbone or "none"), leaf)


class ArtifactStore:
    """Save and load synthetic sets; a missing, partial, mismatched or corrupted artifact reads as absent
    (and is made again). ``rejected`` lists the directories whose payload failed its checksum."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.rejected: list[Path] = []

    def directory(self, key: ArtifactKey) -> Path:
        return self.root / key.relpath()

    def load(self, key: ArtifactKey) -> tuple[SyntheticSet, dict[str, Any]] | None:
        d = self.directory(key)
        try:
            meta = json.loads((d / META).read_text())
            if meta.get("key") != key.digest:
                log.warning("artifact %s has a different key; making it again", d)
                return None
            expected = meta.get("payload_sha256")
            actual = sha256_file(d / PAYLOAD)
            if actual != expected:
                log.warning("artifact %s: %s does not match the sha256 in its meta.json (%s, expected %s); "
                            "the set is made again", d, PAYLOAD, actual[:12], str(expected)[:12])
                self.rejected.append(d)
                return None
            tensors = load_file(d / PAYLOAD)
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
        tmp = atomic_target(d / PAYLOAD)
        save_file(tensors, tmp)
        payload_sha256 = sha256_file(tmp)
        tmp.replace(d / PAYLOAD)
        meta = {"key": key.digest, "format": FORMAT, "artifact": json.loads(canonical_json(key.__dict__)),
                "payload_sha256": payload_sha256, "cost": cost, "metadata": synset.metadata}
        atomic_write_bytes(d / "meta.json", json.dumps(meta, indent=1, default=str).encode())
        return d
