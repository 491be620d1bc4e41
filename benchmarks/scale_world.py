"""An ImageNet-shaped world on disk for the CPU scale simulation, and the ViT-B-shaped backbone it runs.

``build_world(root, classes)`` writes ``classes`` classes of about 500x375 JPEGs in the Hub's parquet
layout (``data/train-0000i-of-0000N.parquet``, ``data/test-00000-of-00001.parquet``, an ``image``
{bytes, path} column and a ``ClassLabel`` ``label`` column, written by ``datasets`` as the Hub's files
are). The pixels are real photos: foolbox's 20 ImageNet validation samples (512x512 JPEGs shipped in the
``foolbox`` package, a test dependency; see docs/assets.md), each image a seeded random crop (after a
random up-scaling) of one of them, flipped with probability 1/2. A finished world is reused (a marker
file holds its recipe).

``scale_backbone(input_size)``: timm ``vit_base_patch16_224`` (depth 12, width 768) with random
weights (seed 0) at a small input size, wrapped as a project ``Backbone`` by the same ``TimmSpec`` the
bundled tiny ViT uses.
"""

from __future__ import annotations

import importlib.util
import io
import json
import shutil
from pathlib import Path

import numpy as np

WORLD_FORMAT = 1
IMAGE_SIZE = (500, 375)  # width x height, a typical ImageNet photo
ROWS_PER_SHARD = 1000
JPEG_QUALITY = 90


def photo_files() -> list[Path]:
    """foolbox's ImageNet sample photos, sorted; a clear error when foolbox is not installed."""
    spec = importlib.util.find_spec("foolbox")  # the folder, without importing foolbox
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the scale world is made from foolbox's sample photos: pip install foolbox==3.3.4 "
                           "(in the `test` extra)")
    files = sorted((Path(next(iter(spec.submodule_search_locations))) / "data").glob("imagenet_*.jpg"))
    if not files:
        raise RuntimeError("foolbox is installed but ships no imagenet_*.jpg samples; reinstall foolbox==3.3.4")
    return files


def _image(photos: list, rng: np.random.Generator) -> bytes:
    """A seeded random 500x375 crop of a randomly up-scaled photo, flipped with p = 1/2, as JPEG bytes."""
    from PIL import Image, ImageOps

    photo = photos[int(rng.integers(len(photos)))]
    width, height = IMAGE_SIZE
    scale = rng.uniform(1.0, 1.5)
    side = max(width, height)
    size = (max(width, round(photo.width * scale * side / max(photo.size))),
            max(height, round(photo.height * scale * side / max(photo.size))))
    big = photo.resize(size, Image.BILINEAR)
    left = int(rng.integers(big.width - width + 1))
    top = int(rng.integers(big.height - height + 1))
    crop = big.crop((left, top, left + width, top + height))
    if rng.random() < 0.5:
        crop = ImageOps.mirror(crop)
    out = io.BytesIO()
    crop.save(out, format="JPEG", quality=JPEG_QUALITY)
    return out.getvalue()


def _write_split(folder: Path, split: str, labels: list[int], photos: list, rng: np.random.Generator,
                 names: list[str]) -> None:
    from datasets import ClassLabel, Dataset, Features, Image, disable_progress_bars

    disable_progress_bars()
    features = Features({"image": Image(), "label": ClassLabel(names=names)})
    shards = max(1, -(-len(labels) // ROWS_PER_SHARD))
    for shard in range(shards):
        part = labels[shard * ROWS_PER_SHARD:(shard + 1) * ROWS_PER_SHARD]
        start = shard * ROWS_PER_SHARD
        images = [{"bytes": _image(photos, rng), "path": f"{split}_{start + i:07d}.JPEG"} for i in range(len(part))]
        Dataset.from_dict({"image": images, "label": part}, features=features).to_parquet(
            str(folder / f"{split}-{shard:05d}-of-{shards:05d}.parquet"))


def build_world(root: Path, classes: int, train_per_class: int = 3, test_per_class: int = 1,
                seed: int = 0) -> Path:
    """The world's directory under ``root`` (built unless a finished one with the same recipe is there)."""
    from PIL import Image

    recipe = {"format": WORLD_FORMAT, "classes": classes, "train_per_class": train_per_class,
              "test_per_class": test_per_class, "seed": seed, "size": list(IMAGE_SIZE)}
    world = Path(root) / f"world-c{classes}-n{train_per_class}-t{test_per_class}-s{seed}"
    marker = world / "world.json"
    if marker.is_file() and json.loads(marker.read_text()) == recipe:
        return world
    shutil.rmtree(world, ignore_errors=True)
    (world / "data").mkdir(parents=True)
    photos = [Image.open(p).convert("RGB") for p in photo_files()]
    rng = np.random.default_rng(seed)
    names = [f"class_{c:04d}" for c in range(classes)]
    for split, per_class in (("train", train_per_class), ("test", test_per_class)):
        labels = [c for c in range(classes) for _ in range(per_class)]
        _write_split(world / "data", split, labels, photos, rng, names)
    marker.write_text(json.dumps(recipe))  # last: a world without it is rebuilt
    return world


def world_dataset(world: Path, split: str):
    """``LabeledImages`` of a world's split, read as any local Hub-layout parquet mirror is."""
    from datasets import disable_progress_bars

    from benchmark.data.spec import DatasetSpec, local_source

    disable_progress_bars()
    spec = DatasetSpec(name=f"scale_{Path(world).name}", description="scale simulation world",
                       source=local_source(Path(world)))
    return spec.load(split)


def scale_backbone(input_size: int = 32, architecture: str = "vit_base_patch16_224"):
    """A ViT-B/16-shaped (or ``architecture``, a timm ViT with 16 px patches) random-init ``Backbone``
    (seeded) at ``input_size`` px."""
    from benchmark.backbones.timm_adapter import TimmSpec

    spec = TimmSpec(name=f"scale_{architecture}", description=f"random-init {architecture} (seed 0) for the "
                    "scale simulation", architecture=architecture, pretrained=False, seed=0,
                    input_size=input_size, patch_size=16)
    return spec.build(input_size=input_size)
