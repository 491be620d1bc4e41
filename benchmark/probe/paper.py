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

import dataclasses
import hashlib
import logging
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from .. import checkpoints
from ..augment import flip_random_resized_crop
from ..budgets import preload_budget_bytes
from ..checks import check_finite
from ..embedding import backbone_device
from ..images import random_crop
from ..neutral import neutral
from ..registry import PROBES
from ..stream import Decode, ImageStream, Packed, Prefetcher, decode_rows, requests, to_float
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

log = logging.getLogger(__name__)

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
    # How fast, never what: neutral fields (benchmark/neutral.py) that no cell id holds.
    # real rows decoded once when their pixels fit (None: the machine's preload budget, benchmark.budgets)
    preload_max_bytes: int | None = neutral(None, key=1 << 30)
    num_workers: int | None = neutral(None)  # decode workers; None: the run's ``--workers``
    eval_batch_size: int = neutral(8192, key=8192)  # test features scored per matrix product
    # epochs between checkpoints of a seed's head (0: only on a preemption signal); a killed or
    # preempted training resumes from the last one to the same numbers
    checkpoint_every: int = neutral(10)

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
    """Where training batches come from: in-memory images, or real rows through the image stream.

    Real rows are decoded as ``preprocess`` says (short side ``resize``, crop ``crop``): at the centre,
    or, with ``random_crop``, at the offsets the caller draws for each epoch (:meth:`batches`'
    ``crops``). Rows whose uint8 pixels fit ``budget`` bytes are decoded once (centre crops, stacked, on
    the device; random-crop sources resized but uncropped, in host memory, cut per batch); larger sets
    are decoded per epoch by one :class:`~benchmark.stream.ImageStream` kept for every epoch, the
    workers cropping at the drawn offsets, batches assembled and copied to the device ahead.
    """

    def __init__(self, images: Tensor | None = None, train: LabeledImages | None = None,
                 rows: Tensor | None = None, preprocess: Preprocess | None = None, num_workers: int = 0,
                 device: torch.device | None = None, budget: int = 1 << 30, random_crop: bool = False) -> None:
        self.device = device or torch.device("cpu")
        self.rows, self.random_crop = rows, random_crop
        self.side = preprocess.crop if preprocess is not None else 0
        self.tensor: Tensor | None = None  # in memory (on the device when it fits)
        self.resized: Tensor | Packed | None = None  # random_crop, preloaded: each row resized, uncropped
        self.stream: ImageStream | None = None  # decoded per epoch
        self.wait_seconds = 0.0  # how long the probe waited for decoded batches
        if images is not None:
            nbytes = images.numel() * images.element_size()
            self.tensor = images.to(self.device) if nbytes <= budget else images
            return
        assert train is not None and rows is not None and preprocess is not None
        decode = Decode.of(preprocess)
        if random_crop and _resized_bytes(train, rows, preprocess.resize) <= budget:
            whole = Decode(preprocess.resize, None, preprocess.interpolation)
            self.resized = decode_rows(train, rows, whole, workers=num_workers)
        elif not random_crop and len(rows) * decode.item_bytes() <= budget:
            started = time.perf_counter()
            self.tensor = decode_rows(train, rows, decode, workers=num_workers).to(self.device)
            self.wait_seconds += time.perf_counter() - started
        else:
            self.stream = ImageStream(train, decode, num_workers)

    def batches(self, order: Tensor, batch_size: int, crops: Tensor | None = None,
                start: int = 0) -> Iterator[tuple[Tensor, Tensor]]:
        """(images as float in [0, 1] on the device, positions in the set) for each batch of ``order``,
        from batch ``start`` on (a training resumed mid-epoch).

        ``crops`` (N x 2 uniforms, one row per position of the set) places the random crops of a
        ``random_crop`` source; other sources ignore it."""
        chunks = list(order.split(batch_size))[start:]
        if not chunks:
            return
        if self.random_crop:
            assert crops is not None
        if self.resized is not None:
            assert crops is not None
            for pos in chunks:
                cut = torch.stack([random_crop(self.resized[int(p)], self.side, crops[int(p)]) for p in pos])
                yield to_float(cut, self.device), pos
            return
        if self.tensor is not None:
            for pos in chunks:
                yield to_float(self.tensor[pos.to(self.tensor.device)], self.device), pos
            return
        assert self.stream is not None and self.rows is not None
        rows = self.rows
        asked = (requests(rows[pos].tolist(), crops[pos] if self.random_crop else None) for pos in chunks)
        with Prefetcher(self.stream, asked, device=self.device, depth=2) as ahead:
            try:
                for pos, x in zip(chunks, ahead, strict=True):
                    yield to_float(x, self.device), pos
            finally:
                self.wait_seconds += ahead.wait_seconds

    def close(self) -> None:
        if self.stream is not None:
            self.stream.close()


def _resized_bytes(train: LabeledImages, rows: Tensor, side: int) -> int:
    """uint8 bytes of every row resized to short side ``side``, assuming the first row's aspect ratio."""
    if len(rows) == 0:
        return 0
    w, h = train.dataset[int(rows[0])][train.image_column].size
    return len(rows) * 3 * side * round(side * max(w, h) / max(min(w, h), 1))


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
    set_digest: str = ""  # sha256 of the set's labels and images (or rows): what a checkpoint belongs to
    checkpoint_dir: Path | None = None  # where each seed's head training keeps its checkpoint

    @property
    def data_wait_seconds(self) -> float:
        """Seconds the training loop (and the set's one-time decode) waited for decoded images."""
        return self.images.wait_seconds


@PROBES.register("paper")
class PaperProbe(ProbeProtocol):
    """The paper's protocol: augmented images through the frozen backbone, lr = 1e-3 * min(100, N) / 256."""

    name = "paper"
    description = "paper protocol: flip+RRC through the backbone, Adam lr=1e-3*min(100,N)/256, cosine, 1000 ep"
    Options = PaperOptions

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
            train_crop=crop, progress=ctx.progress, set_digest=set_digest(synset),
            checkpoint_dir=ctx.checkpoint_dir)

    def fit(self, prepared: PreparedProbe, seed: int) -> ProbeResult:
        """Train the head of ``seed`` through the backbone and score it on the test features."""
        assert isinstance(prepared, PaperPrepared)
        o: PaperOptions = self.options
        p, schedule = prepared, prepared.schedule
        resume = None
        if p.checkpoint_dir is not None:
            identity = {"probe": self.config(), "seed": int(seed), "schedule": dataclasses.asdict(schedule),
                        "set": p.set_digest, "backbone": p.backbone.identity.key(), "train_crop": p.train_crop}
            resume = Resume(Path(p.checkpoint_dir) / f"probe-seed{int(seed)}.pt", identity, o.checkpoint_every)
        weight, bias, last_loss = self.train_head(p.images, p.labels, p.num_classes, p.backbone, schedule,
                                                  int(seed), p.device, progress=p.progress, resume=resume)
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
        budget = preload_budget_bytes() if o.preload_max_bytes is None else int(o.preload_max_bytes)
        if synset.images is not None:
            return _Images(images=synset.images.detach(), device=device, budget=budget)
        preprocess = set_image_preprocess(backbone)
        assert synset.indices is not None
        return _Images(train=train, rows=torch.as_tensor(synset.indices).long(), preprocess=preprocess,
                       num_workers=workers if o.num_workers is None else o.num_workers, device=device,
                       budget=budget, random_crop=random_crop)

    def train_head(self, images: _Images, labels: Tensor, num_classes: int, backbone: Backbone,
                   schedule: Schedule, seed: int, device: torch.device, progress: bool = False,
                   resume: Resume | None = None) -> tuple[Tensor, Tensor, float]:
        """Train one head; returns (weight C x D, bias C) on the CPU and the last epoch's mean loss.

        Per epoch the generator draws, in this order: the shuffle, the random 256 crops (random-crop
        sources only, one pair of uniforms per image), then each batch's flip + random resized crop.
        With ``resume``, the training is saved every ``resume.every`` epochs and at the batch where a
        preemption signal is taken up (``benchmark.preemption``), and continues from such a save: the
        generator's state, the head, Adam's and the scaler's state, the epoch's order and crops, and the
        loss summed so far, so a resumed training ends with the same head."""
        from tqdm.auto import tqdm

        from .. import preemption

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
        at = _Position()  # where the training is: what a save holds besides the head and optimiser
        saved = resume.load() if resume is not None else None
        if saved is not None:
            with torch.no_grad():
                weight.copy_(saved["weight"].to(device))
                bias.copy_(saved["bias"].to(device))
            optimizer.load_state_dict(saved["optimizer"])
            scaler.load_state_dict(saved["scaler"])
            generator.set_state(saved["generator"])
            at = _Position.of(saved["position"], device)
            last_loss = float(saved["last_loss"])

        def save() -> None:
            assert resume is not None
            resume.save({"weight": weight.detach().cpu(), "bias": bias.detach().cpu(),
                         "optimizer": optimizer.state_dict(), "scaler": scaler.state_dict(),
                         "generator": generator.get_state(), "position": at.state(), "last_loss": last_loss})

        bar = tqdm(range(schedule.epochs), desc=f"paper probe (seed {seed})", leave=False, disable=not progress,
                   initial=at.epoch)
        for epoch in range(at.epoch, schedule.epochs):
            for group in optimizer.param_groups:  # CosineAnnealingLR(T_max=epochs, eta_min=0), per epoch
                group["lr"] = schedule.lr * 0.5 * (1.0 + math.cos(math.pi * epoch / schedule.epochs))
            if at.order is None:  # a new epoch (not one resumed part-way)
                at.order = torch.randperm(n, generator=generator)
                at.crops = torch.rand(n, 2, generator=generator) if images.random_crop else None
                at.total, at.count = torch.zeros((), device=device), 0
            for x, pos in images.batches(at.order, schedule.batch_size, at.crops, start=at.batch):
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
                at.total += loss.detach() * len(pos)
                at.count += len(pos)
                at.batch += 1
                if resume is not None:
                    preemption.checkpoint_point(save, f"probe seed {seed}, epoch {epoch}, batch {at.batch}")
            last_loss = at.total.item() / max(at.count, 1) if epoch == schedule.epochs - 1 else last_loss
            at = _Position(epoch=epoch + 1)
            bar.update(1)
            if resume is not None:
                if resume.every and (epoch + 1) % resume.every == 0 and epoch + 1 < schedule.epochs:
                    save()
                preemption.checkpoint_point(save, f"probe seed {seed}, epoch {epoch + 1}")
        bar.close()
        return weight.detach().float().cpu(), bias.detach().float().cpu(), last_loss


@dataclass
class Resume:
    """Where one seed's head training keeps its checkpoint, what it belongs to, and how often."""

    path: Path
    identity: dict[str, Any]
    every: int = 10  # epochs between checkpoints; 0: only on a preemption signal

    def load(self) -> dict[str, Any] | None:
        found = checkpoints.load(self.path, self.identity)
        if found is not None:
            position = found["position"]
            log.info("paper probe resumed from %s at epoch %d, batch %d", self.path, position["epoch"],
                     position["batch"])
        return found

    def save(self, state: dict[str, Any]) -> None:
        checkpoints.save(self.path, self.identity, state)


@dataclass
class _Position:
    """Where a head training is: the next epoch, and inside an epoch begun, its order, crops, the batches
    done and the loss summed so far."""

    epoch: int = 0
    batch: int = 0
    order: Tensor | None = None
    crops: Tensor | None = None
    total: Tensor | None = None
    count: int = 0

    def state(self) -> dict[str, Any]:
        total = None if self.total is None else self.total.detach().cpu()
        return {"epoch": self.epoch, "batch": self.batch, "order": self.order, "crops": self.crops,
                "total": total, "count": self.count}

    @classmethod
    def of(cls, state: dict[str, Any], device: torch.device) -> _Position:
        total = state["total"]
        return cls(int(state["epoch"]), int(state["batch"]), state["order"], state["crops"],
                   None if total is None else total.to(device), int(state["count"]))


def set_digest(synset: SyntheticSet) -> str:
    """sha256 of a set's labels and images (or selected rows): what the probe's checkpoints belong to."""
    digest = hashlib.sha256(synset.labels.long().cpu().numpy().tobytes())
    content = synset.images if synset.images is not None else synset.indices
    if content is not None:
        digest.update(content.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def _predict(features: Tensor, weight: Tensor, bias: Tensor, batch_size: int) -> Tensor:
    with torch.no_grad():
        return torch.cat([F.linear(chunk, weight, bias) for chunk in features.split(batch_size)])
