"""Pieces both probe protocols share: input checks, head initialisation, embedding in-memory images,
the geometry of set images (decoding, centre view) and the training crop."""

from __future__ import annotations

import torch
from torch import Tensor

from ..augment import CropSpec
from ..embedding import embed_tensor
from ..types import Backbone, FeatureSource, LabeledImages, Preprocess, SyntheticSet


def check_inputs(synset: SyntheticSet, train: LabeledImages, test: LabeledImages) -> int:
    """Raise ValueError on inputs no probe can score; return the number of classes."""
    if (synset.images is None and synset.indices is None) or len(synset) == 0:
        raise ValueError("the set holds no images and no indices of training images: nothing to train "
                         "a probe on")
    if len(test) == 0:
        raise ValueError(f"the test split of {test.name!r} is empty: nothing to score the probe on")
    num_classes = train.num_classes
    if num_classes < 1:
        raise ValueError(f"dataset {train.name!r} has no classes")
    labels = synset.labels
    if labels.dtype.is_floating_point or labels.dim() != 1:
        raise ValueError("SyntheticSet.labels must be a 1-D integer tensor (hard labels)")
    if int(labels.min()) < 0 or int(labels.max()) >= num_classes:
        raise ValueError(f"set labels span [{int(labels.min())}, {int(labels.max())}] but {train.name!r} "
                         f"has {num_classes} classes")
    return num_classes


def init_head(dim: int, num_classes: int, generator: torch.Generator, std: float = 0.01) -> tuple[Tensor, Tensor]:
    """The paper's head: weight (C x D) ~ N(0, std^2) from ``generator`` (CPU), bias 0."""
    weight = torch.randn(num_classes, dim, generator=generator) * std
    return weight, torch.zeros(num_classes)


def embed_images(features: FeatureSource, backbone: Backbone, images: Tensor, batch_size: int = 128) -> Tensor:
    """Features (float32, CPU) of in-memory images, through the cache's ``embed_images`` when it has one."""
    embed = getattr(features, "embed_images", None)
    if embed is not None:
        return embed(backbone, images)
    return embed_tensor(backbone, images, batch_size=batch_size)


def load_test_features(ctx_features: FeatureSource, backbone: Backbone, test: LabeledImages) -> Tensor:
    """Cached centre-crop test features, computed in fp32 as the official evaluation does (no autocast
    there); checks they match the backbone's feature dimension."""
    feats = ctx_features(backbone, test, autocast=False).float()
    if feats.dim() != 2 or len(feats) != len(test):
        raise ValueError(f"feature source returned {tuple(feats.shape)} for {len(test)} test rows")
    return feats


def set_image_preprocess(backbone: Backbone) -> Preprocess:
    """How a probe decodes a real-image set's rows before augmenting them: short side to
    round(size * 256 / 224), centre crop of that side (256 for a 224 backbone), like synthetic images."""
    side = round(backbone.input_size * 256 / 224)
    return Preprocess(side, side, backbone.identity.interpolation)


def center_view(images: Tensor, input_size: int) -> Tensor:
    """The test split's geometry on in-memory images: a centre crop of the fraction
    input/round(input*256/224) of their side (224 of 256 for a 224 backbone; the backbone resizes
    whatever else comes out)."""
    side = images.shape[-1]
    crop = round(side * input_size / round(input_size * 256 / 224))
    top, left = (images.shape[-2] - crop) // 2, (side - crop) // 2
    return images[..., top:top + crop, left:left + crop] if 0 < crop < side else images


def training_crop(min_scale: float, fit: bool) -> CropSpec:
    """The probes' training augmentation: flip + random resized crop of area ``min_scale``-1, ratio
    3/4-4/3. ``fit=False`` is the official op (a crop may overhang the image and see zero padding,
    about 14 % of draws at area 0.08-1); ``fit=True`` keeps every crop inside the image."""
    return CropSpec(scale=(float(min_scale), 1.0), fit=bool(fit))
