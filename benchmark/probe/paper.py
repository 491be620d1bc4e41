"""``paper``: the paper's evaluation protocol (docs/evaluation.md), as the official code runs it.

A new linear head (weight ~ N(0, 0.01^2), bias 0) on the frozen evaluating backbone, trained on the set's
images with flip + random resized crop to the backbone's input size (area 0.08-1, ratio 3/4-4/3, no
noise; the shared op of ``benchmark.augment``, whose crops may overhang the image and see zero padding
as the official op's do, unless ``crop_fit``); the backbone runs inside the loop. Adam with
lr = base_lr * batch / lr_gpu_divisor / 256 (the official code divides by its GPU count; one GPU
here), batch = min(100, N), shuffled every epoch, last batch kept, no weight decay, cosine schedule to
0 over the epochs (stepped per epoch), fp16 autocast with a gradient scaler on CUDA (fp32 on CPU).
Top-1 / top-5 on the cached centre-crop test features (fp32) after the last epoch: nothing is selected
on test. The full-data reference (``synset.metadata["full_data"]`` or ``full_data=True``) uses 100
epochs, batch 128, lr 5e-4, and a new random 256 crop of every training image each epoch
(``full_data_crop``; the official train loader's ``RandomCrop``) before the flip + crop.

Determinism: head init, shuffling, the full-data crops and augmentation draw from one CPU
``torch.Generator`` seeded with the probe seed, so a seed gives the same numbers on every CPU run.

Real-image sets (``synset.indices`` without images) are decoded with a resize of the short side to
round(size*256/224) (the backbone's interpolation, bilinear by default) and a centre crop of the same
size (256 for a 224 backbone), then augmented like synthetic images.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from ..augment import flip_random_resized_crop
from ..checks import check_finite
from ..embedding import backbone_device, decode_rows
from ..images import random_crop, resize_short_side
from ..registry import PROBES
from ..types import (
    Backbone,
    LabeledImages,
    PreparedProbe,
    Preprocess,
    ProbeProtocol,
    ProbeResult,
    RunContext,
    SyntheticSet,
)
from .common import check_inputs, init_head, load_test_features, set_image_preprocess, training_crop
from .metrics import score_logits

FULL_DATA_CROPS = ("auto", "random", "center")
# Datasets whose official loader gives its training split the test transform (Resize + CenterCrop):
# there the official full-data probe sees a fixed centre crop, not a random one.
CENTER_CROPPED_TRAIN = ("spawrious",)


def paper_learning_rate(n: int, base_lr: float = 1e-3, batch_cap: int = 100, gpu_divisor: int = 1) -> float:
    """The linear-scaling rule: ``base_lr * min(batch_cap, n) / gpu_divisor / 256`` (10 images on one
    GPU: 3.9e-5). The official code divides by its GPU count; we assume one GPU."""
    return base_lr * min(batch_cap, n) / gpu_divisor / 256.0


def full_data_crop_mode(option: str, dataset: str) -> str:
    """``"random"`` or ``"center"``: the crop the full-data probe takes of each 256-side image.
    ``"auto"`` follows the official loaders: random, except for the datasets in
    :data:`CENTER_CROPPED_TRAIN`."""
    if option != "auto":
        return option
    return "center" if dataset.lower().startswith(CENTER_CROPPED_TRAIN) else "random"


@dataclass
class PaperOptions:
    epochs: int = 1000
    base_lr: float = 1e-3
    batch_cap: int = 100  # batch = min(batch_cap, N)
    weight_decay: float = 0.0
    init_std: float = 0.01
    min_scale: float = 0.08  # random resized crop area fraction in [min_scale, 1]
    crop_fit: bool = False  # False: the official crop (may overhang: zero padding); True: crops fit
    amp: bool = True  # fp16 autocast + grad scaler, on CUDA only
    lr_scale: float = 1.0  # multiplies the learning rate (1.0 = the paper; see docs/evaluation.md "Small sets")
    lr_gpu_divisor: int = 1  # the official lr is divided by its GPU count; 1 = one GPU
    full_data: bool | None = None  # None: from synset.metadata["full_data"]
    full_data_epochs: int = 100
    full_data_batch: int = 128
    full_data_lr: float = 5e-4  # absolute (= base_lr * 128 / 256; the official one for any GPU count)
    # full data: "random" 256 crop of each image every epoch (the official train loader), "center" (a
    # fixed centre crop, this project's earlier choice), "auto": random except where the official
    # loader centre-crops its train split (Spawrious)
    full_data_crop: str = "auto"
    preload_max_bytes: int = 1 << 30  # real images are decoded once when they fit, else per batch
    # decoding workers when real images are decoded per batch; None: the run's ``--workers``. It
    # cannot change a result, so it is left out of the probe's config (and of every cell's identity)
    num_workers: int | None = None
    eval_batch_size: int = 8192

    def __post_init__(self) -> None:
        if self.full_data_crop not in FULL_DATA_CROPS:
            raise ValueError(f"paper probe: full_data_crop must be one of {FULL_DATA_CROPS}, "
                             f"not {self.full_data_crop!r}")
        if int(self.lr_gpu_divisor) < 1:
            raise ValueError("paper probe: lr_gpu_divisor must be >= 1")


@dataclass(frozen=True)
class Schedule:
    epochs: int
    batch_size: int
    lr: float  # peak learning rate (the cosine schedule starts here)
    full_data: bool
    n: int  # training images

    @property
    def steps_per_epoch(self) -> int:
        return math.ceil(self.n / self.batch_size) if self.batch_size else 0


class _Images:
    """Where training batches come from: an in-memory tensor or real images decoded per batch.

    Real rows are decoded as ``preprocess`` says (short side ``resize``, centre crop ``crop``), or, with
    ``random_crop``, only resized (short side ``resize``) and cropped to ``crop`` at the offsets the
    caller draws for each batch (:meth:`batches`' ``crops``).
    """

    def __init__(self, images: Tensor | None = None, train: LabeledImages | None = None,
                 rows: Tensor | None = None, preprocess: Preprocess | None = None, num_workers: int = 0,
                 device: torch.device | None = None, preload_max_bytes: int = 1 << 30,
                 random_crop: bool = False) -> None:
        self.device = device or torch.device("cpu")
        self.train, self.rows, self.preprocess, self.num_workers = train, rows, preprocess, num_workers
        self.random_crop = random_crop
        self.tensor: Tensor | None = None
        self.resized: list[Tensor] | None = None  # random_crop: decoded once, uncropped (uint8, CPU)
        if images is not None:
            nbytes = images.numel() * images.element_size()
            self.tensor = images.to(self.device) if nbytes <= preload_max_bytes else images
        else:
            assert train is not None and rows is not None and preprocess is not None
            if random_crop:
                if self._resized_bytes() <= preload_max_bytes:  # decoded once, by the run's workers
                    resize = functools.partial(resize_short_side, size=preprocess.resize,
                                               interpolation=preprocess.interpolation)
                    self.resized = decode_rows(train, rows, resize, workers=num_workers)
                return
            nbytes = len(rows) * 3 * preprocess.crop ** 2  # decoded as uint8
            if nbytes <= preload_max_bytes:
                self.tensor = self._decode(rows).to(self.device)

    def _decode(self, rows: Tensor) -> Tensor:
        assert self.train is not None and self.preprocess is not None
        return (self.train.load(rows, self.preprocess) * 255).round_().to(torch.uint8)

    def _decode_resized(self, row: int) -> Tensor:
        """One row, short side resized to ``preprocess.resize``, not cropped: 3 x H x W uint8."""
        assert self.train is not None and self.preprocess is not None
        image = self.train.dataset[int(row)][self.train.image_column]
        return resize_short_side(image, self.preprocess.resize, self.preprocess.interpolation)

    def _resized_bytes(self) -> int:
        """uint8 bytes of every row resized, assuming the first row's aspect ratio for all."""
        assert self.train is not None and self.rows is not None and self.preprocess is not None
        if len(self.rows) == 0:
            return 0
        w, h = self.train.dataset[int(self.rows[0])][self.train.image_column].size
        side = self.preprocess.resize
        return len(self.rows) * 3 * side * round(side * max(w, h) / max(min(w, h), 1))

    def batches(self, order: Tensor, batch_size: int,
                crops: Tensor | None = None) -> Iterator[tuple[Tensor, Tensor]]:
        """(images as float in [0, 1] on the device, positions in the set) for each batch of ``order``.

        ``crops`` (N x 2 uniforms, one row per position of the set) places the random crops of a
        ``random_crop`` source; other sources ignore it."""
        chunks = list(order.split(batch_size))
        if self.random_crop:
            assert crops is not None and self.preprocess is not None
            side = self.preprocess.crop
            if self.resized is not None:
                for pos in chunks:
                    yield self._cropped([self.resized[int(p)] for p in pos], pos, crops, side), pos
                return
            from torch.utils.data import DataLoader

            loader = DataLoader(_ResizedRowDataset(self), batch_sampler=[c.tolist() for c in chunks],
                                num_workers=self.num_workers, collate_fn=list)
            for pos, images in zip(chunks, loader, strict=True):
                yield self._cropped(images, pos, crops, side), pos
            return
        if self.tensor is not None:
            for pos in chunks:
                yield self._as_float(self.tensor[pos.to(self.tensor.device)]), pos
            return
        if self.rows is not None and self.train is not None:
            from torch.utils.data import DataLoader

            loader = DataLoader(_RowDataset(self), batch_sampler=[c.tolist() for c in chunks],
                                num_workers=self.num_workers, collate_fn=torch.stack)
            for pos, x in zip(chunks, loader, strict=True):
                yield self._as_float(x), pos
            return
        raise AssertionError("unreachable")

    def _cropped(self, images: list[Tensor], pos: Tensor, crops: Tensor, side: int) -> Tensor:
        return self._as_float(torch.stack([random_crop(im, side, crops[int(p)])
                                           for im, p in zip(images, pos, strict=True)]))

    def _as_float(self, x: Tensor) -> Tensor:
        x = x.to(self.device, non_blocking=True)
        return x.float().div_(255) if x.dtype == torch.uint8 else x.float()


class _RowDataset(torch.utils.data.Dataset):
    def __init__(self, images: _Images) -> None:
        self.images = images

    def __len__(self) -> int:
        assert self.images.rows is not None
        return len(self.images.rows)

    def __getitem__(self, pos: int) -> Tensor:
        assert self.images.rows is not None
        return self.images._decode(self.images.rows[pos:pos + 1])[0]


class _ResizedRowDataset(_RowDataset):
    def __getitem__(self, pos: int) -> Tensor:
        assert self.images.rows is not None
        return self.images._decode_resized(int(self.images.rows[pos]))


@dataclass
class PaperPrepared(PreparedProbe):
    """The paper probe's shared state: where the training batches come from, and the test features."""

    images: _Images
    labels: Tensor
    x_test: Tensor
    schedule: Schedule
    backbone: Backbone
    device: torch.device
    train_crop: str | None  # "random", "center", or None for in-memory images
    progress: bool


@PROBES.register("paper")
class PaperProbe(ProbeProtocol):
    """The paper's protocol: augmented images through the frozen backbone, lr = 1e-3 * min(100, N) / 256."""

    name = "paper"
    description = "paper protocol: flip+RRC through the backbone, Adam lr=1e-3*min(100,N)/256, cosine, 1000 ep"
    Options = PaperOptions

    def config(self) -> dict[str, Any]:
        """The options without ``num_workers``, which cannot change a result."""
        config = super().config()
        config.pop("num_workers")
        return config

    def schedule(self, n: int, full_data: bool = False) -> Schedule:
        """Epochs, batch size and peak learning rate for a set of ``n`` images."""
        o: PaperOptions = self.options
        if full_data:
            return Schedule(o.full_data_epochs, min(o.full_data_batch, n), o.full_data_lr * o.lr_scale, True, n)
        lr = paper_learning_rate(n, o.base_lr, o.batch_cap, int(o.lr_gpu_divisor)) * o.lr_scale
        return Schedule(o.epochs, min(o.batch_cap, n), lr, False, n)

    def is_full_data(self, synset: SyntheticSet) -> bool:
        if self.options.full_data is not None:
            return bool(self.options.full_data)
        return bool(synset.metadata.get("full_data", False))

    def train_crop(self, synset: SyntheticSet, train: LabeledImages) -> str | None:
        """How the set's real rows are cropped to 256 before augmenting: ``"random"`` (per epoch) or
        ``"center"``; None for in-memory images (used as they are)."""
        if synset.images is not None:
            return None
        if self.is_full_data(synset):
            return full_data_crop_mode(self.options.full_data_crop, train.name)
        return "center"  # the official baselines decode their picks with a centre crop

    def prepare(self, synset: SyntheticSet, train: LabeledImages, test: LabeledImages, backbone: Backbone,
                ctx: RunContext) -> PaperPrepared:
        """The set's images (decoded once when they fit), the test features and the schedule."""
        num_classes = check_inputs(synset, train, test)
        device = backbone_device(backbone)
        crop = self.train_crop(synset, train)
        return PaperPrepared(
            test=test, num_classes=num_classes, images=self._images(synset, train, backbone, device, crop == "random",
                                                                  ctx.workers),
            labels=synset.labels, x_test=load_test_features(ctx.features, backbone, test),
            schedule=self.schedule(len(synset), self.is_full_data(synset)), backbone=backbone, device=device,
            train_crop=crop, progress=ctx.progress)

    def fit(self, prepared: PreparedProbe, seed: int) -> ProbeResult:
        """Train the head of ``seed`` through the backbone and score it on the test features."""
        assert isinstance(prepared, PaperPrepared)
        o: PaperOptions = self.options
        p, schedule = prepared, prepared.schedule
        weight, bias, last_loss = self.train_head(p.images, p.labels, p.num_classes, p.backbone, schedule,
                                                  int(seed), p.device, progress=p.progress)
        logits = _predict(p.x_test, weight, bias, o.eval_batch_size)
        scores = score_logits(logits, p.test.labels, p.test.groups)  # test labels: read here only
        extra: dict[str, Any] = {
            "lr": schedule.lr, "batch_size": schedule.batch_size, "epochs": schedule.epochs,
            "steps": schedule.epochs * schedule.steps_per_epoch, "full_data": schedule.full_data,
            "n_train": len(p.labels), "final_train_loss": last_loss,
            "amp": o.amp and p.device.type == "cuda", "train_crop": p.train_crop,
        }
        if "worst_group_top1" in scores:
            extra["worst_group_top1"] = scores["worst_group_top1"]
        return ProbeResult(seed=int(seed), top1=scores["top1"], top5=scores["top5"], extra=extra)

    def _images(self, synset: SyntheticSet, train: LabeledImages, backbone: Backbone,
                device: torch.device, random_crop: bool = False, workers: int = 0) -> _Images:
        o: PaperOptions = self.options
        if synset.images is not None:
            return _Images(images=synset.images.detach(), device=device, preload_max_bytes=o.preload_max_bytes)
        preprocess = set_image_preprocess(backbone)
        assert synset.indices is not None
        return _Images(train=train, rows=torch.as_tensor(synset.indices).long(), preprocess=preprocess,
                       num_workers=workers if o.num_workers is None else o.num_workers, device=device,
                       preload_max_bytes=o.preload_max_bytes,
                       random_crop=random_crop)

    def train_head(self, images: _Images, labels: Tensor, num_classes: int, backbone: Backbone,
                   schedule: Schedule, seed: int, device: torch.device,
                   progress: bool = False) -> tuple[Tensor, Tensor, float]:
        """Train one head; returns (weight C x D, bias C) on the CPU and the last epoch's mean loss.

        Per epoch the generator draws, in this order: the shuffle, the random 256 crops (random-crop
        sources only, one pair of uniforms per image), then each batch's flip + random resized crop."""
        from tqdm.auto import tqdm

        o: PaperOptions = self.options
        spec = training_crop(o.min_scale, o.crop_fit)
        generator = torch.Generator().manual_seed(seed)
        weight, bias = init_head(int(backbone.feature_dim), num_classes, generator, o.init_std)
        weight = weight.to(device).requires_grad_(True)
        bias = bias.to(device).requires_grad_(True)
        optimizer = torch.optim.Adam([weight, bias], lr=schedule.lr, weight_decay=o.weight_decay)
        use_amp = bool(o.amp) and device.type == "cuda"
        scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
        # non-finite features would make the scaler skip every step in silence: an error where they appear
        what = f"features of {backbone.name} in the paper probe"
        what += " (fp16 autocast; amp=false computes in fp32)" if use_amp else ""
        labels = labels.long().to(device)
        n = len(labels)
        size = backbone.input_size
        last_loss = float("nan")
        for epoch in tqdm(range(schedule.epochs), desc=f"paper probe (seed {seed})", leave=False,
                          disable=not progress):
            for group in optimizer.param_groups:  # CosineAnnealingLR(T_max=epochs, eta_min=0), per epoch
                group["lr"] = schedule.lr * 0.5 * (1.0 + math.cos(math.pi * epoch / schedule.epochs))
            order = torch.randperm(n, generator=generator)
            crops = torch.rand(n, 2, generator=generator) if images.random_crop else None
            total, count = torch.zeros((), device=device), 0
            for x, pos in images.batches(order, schedule.batch_size, crops):
                x = flip_random_resized_crop(x, size, generator, spec)
                with torch.autocast(device_type=device.type, dtype=torch.float16, enabled=use_amp):
                    with torch.no_grad():
                        z = check_finite(backbone(x), what)
                    logits = F.linear(z, weight, bias)
                    loss = F.cross_entropy(logits.float(), labels[pos.to(device)])
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
                total += loss.detach() * len(pos)
                count += len(pos)
            last_loss = total.item() / max(count, 1) if epoch == schedule.epochs - 1 else last_loss
        return weight.detach().float().cpu(), bias.detach().float().cpu(), last_loss


def _predict(features: Tensor, weight: Tensor, bias: Tensor, batch_size: int) -> Tensor:
    with torch.no_grad():
        return torch.cat([F.linear(chunk, weight, bias) for chunk in features.split(batch_size)])
