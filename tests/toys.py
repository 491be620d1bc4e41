"""Small, fast stand-ins for real datasets and backbones, registered only inside tests."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import datasets
import numpy as np
import torch
from PIL import Image
from torch import nn

from benchmark.types import Backbone, BackboneIdentity, LabeledImages


def toy_images(n_per_class: int, n_classes: int, seed: int, size: int = 16) -> datasets.Dataset:
    """Images whose mean colour depends on the class, plus noise: linearly separable in feature space."""
    rng = np.random.default_rng(seed)
    images, labels = [], []
    for c in range(n_classes):
        colour = np.array([(c * 97) % 256, (c * 57 + 80) % 256, (c * 151 + 30) % 256], dtype=np.float32)
        for _ in range(n_per_class):
            pixels = np.clip(colour + rng.normal(0, 40, (size, size, 3)), 0, 255).astype(np.uint8)
            images.append(Image.fromarray(pixels))
            labels.append(c)
    names = [f"class_{c}" for c in range(n_classes)]
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=names)})
    return datasets.Dataset.from_dict({"image": images, "label": labels}, features=features)


@dataclass
class ToyDataset:
    name: str = "toy"
    description: str = "toy colour classes"
    n_classes: int = 3
    n_train: int = 12
    n_test: int = 6

    def load(self, split: str) -> LabeledImages:
        per_class = self.n_train if split == "train" else self.n_test
        ds = toy_images(per_class, self.n_classes, seed=0 if split == "train" else 1)
        digest = hashlib.sha256(f"{self.name}:{split}:{per_class}:{self.n_classes}".encode()).hexdigest()
        return LabeledImages(self.name, split, ds, ds.features["label"].names, digest)


@dataclass
class ToyBackbone:
    name: str = "toy_net"
    description: str = "toy conv net"
    seed: int = 0
    dim: int = 8

    def build(self, *, device: str | torch.device = "cpu", input_size: int = 16, **_: object) -> Backbone:
        torch.manual_seed(self.seed)
        model = nn.Sequential(nn.Conv2d(3, self.dim, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        sha = hashlib.sha256(b"".join(p.detach().numpy().tobytes() for p in model.parameters())).hexdigest()
        identity = BackboneIdentity(self.name, "torch", "toy-conv", f"toy:{self.seed}", sha, input_size,
                                    (0.5, 0.5, 0.5), (0.25, 0.25, 0.25), "bilinear")
        return Backbone(model, identity, self.dim).to(device)


def write_rows(root, name: str, rows: list[dict]):
    """Hand-made rows as the cell file ``<root>/cells/<suite>/<name>.parquet`` (the layout and the checks
    of ``read_results``: every row's ``cell_id`` is the file's name, its suite the directory's)."""
    from benchmark.results import write_cell

    (suite,) = {r["suite"] for r in rows}
    path = root / "cells" / suite / f"{name}.parquet"
    write_cell(path, [{**r, "cell_id": name} for r in rows])
    return path
