"""``fast``: a linear head on cached features, its learning rate chosen on a validation split of train.

Why: with few classes the paper's rule gives a tiny learning rate (docs/evaluation.md, "Small sets"), so
small suites use this probe. Features, embedded once per set: with ``train_views`` 0, one centre view
per image (real-image sets through the feature cache, synthetic images like the test split); with
``train_views`` V > 0, V views of every image drawn with the paper probe's training augmentation (flip +
random resized crop, area ``min_scale``-1; crops may overhang the image as in the official op unless
``crop_fit``), real rows decoded like the paper probe's. Sets of more than
``views_max_rows`` images (the full-data reference) keep the cached centre views.

Selection, never on test: a fixed, seeded, class-balanced subset V of the TRAINING split (``val_per_class``
images per class, or ``val_fraction``) is the validation set; it avoids the set's own real rows while a
class has enough others (a full-data set overlaps it). One head per (lr, weight decay) of the grid is
trained on the set's rows that are not in V (optionally capped by ``select_max_rows``), all from the
same fixed init (``val_seed``); the best validation top-1 wins (ties: lower validation loss, then grid
order). Features and selection are ``prepare``, once per set. Then ``fit``, per probe seed: a head
initialised from that seed (N(0, 0.01^2), bias 0) is trained alone on the whole set with the chosen
values and scored on the cached test features. Test labels are read only for that final score.
Training is full-batch Adam (betas 0.9/0.999) for ``steps`` steps, mean cross-entropy + ``wd/2 * ||W||^2``.

``standardize`` (default on) centres the features on V's mean and divides by one scalar (V's RMS per
coordinate), so one learning-rate grid fits every backbone. It is an affine change of variables: the
head is still linear in the backbone's features.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from ..augment import flip_random_resized_crop
from ..embedding import source_dtype
from ..registry import PROBES
from ..types import Backbone, LabeledImages, PreparedProbe, ProbeProtocol, ProbeResult, RunContext, SyntheticSet
from .common import (
    center_view,
    check_inputs,
    embed_images,
    init_head,
    load_test_features,
    set_image_preprocess,
    training_crop,
)
from .metrics import score_logits

log = logging.getLogger(__name__)


@dataclass
class FastOptions:
    lrs: tuple[float, ...] = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2)
    weight_decays: tuple[float, ...] = (0.0,)
    steps: int = 100  # full-batch Adam steps
    val_per_class: int = 25  # validation images per class, from the training split (at most half a class)
    val_fraction: float | None = None  # instead of val_per_class: this fraction of each class
    val_seed: int = 0  # fixes V, the selection subsample and the selection heads' init
    select_max_rows: int | None = None  # cap on the rows selection trains on (class-balanced); None: all
    standardize: bool = True
    init_std: float = 0.01
    synthetic_view: str = "center"  # "center": centre crop 224/256 of the image (like test); "resize": whole
    # V > 0: train on V augmented views per set image (the paper probe's flip + random resized crop), the
    # features of the training views cached instead of recomputed every epoch
    train_views: int = 0
    min_scale: float = 0.08
    crop_fit: bool = False  # False: the official crop (may overhang, zero padding); True: crops fit
    views_max_rows: int = 1000  # larger sets keep one cached centre view per image
    view_seed: int = 0

    def __post_init__(self) -> None:
        self.lrs = tuple(float(v) for v in self.lrs)
        self.weight_decays = tuple(float(v) for v in self.weight_decays)
        if not self.lrs or not self.weight_decays:
            raise ValueError("fast probe: lrs and weight_decays need at least one value each")
        if self.synthetic_view not in ("center", "resize"):
            raise ValueError(f"fast probe: synthetic_view must be 'center' or 'resize', not {self.synthetic_view!r}")
        if self.steps < 1:
            raise ValueError("fast probe: steps must be >= 1")
        if self.train_views < 0:
            raise ValueError("fast probe: train_views must be >= 0 (0: one centre view per image)")
        if not 0 < self.min_scale <= 1:
            raise ValueError(f"fast probe: min_scale must be in (0, 1], got {self.min_scale}")


# -- building blocks (public for tests and for other probes) -------------------------------------------

def validation_indices(labels: Tensor, num_classes: int, per_class: int = 10, seed: int = 0,
                       fraction: float | None = None, exclude: Tensor | None = None) -> Tensor:
    """Sorted rows of a fixed, seeded, class-balanced validation subset of a training split.

    Each class's rows are ranked once by a permutation seeded with ``seed``; the subset takes the first
    ``per_class`` (or ``fraction`` of the class; never more than half of it) in that ranking. Rows in
    ``exclude`` (the rows a probe trains on) are skipped while the class has enough other rows, so sets
    that do not overlap the subset all see the same one; a class without enough other rows keeps its
    canonical rows (overlap).
    """
    generator = torch.Generator().manual_seed(seed)
    excluded = torch.zeros(len(labels), dtype=torch.bool)
    if exclude is not None and len(exclude):
        excluded[torch.as_tensor(exclude).long()] = True
    chosen = []
    for c in range(num_classes):
        rows = torch.nonzero(labels == c).flatten()
        ranked = rows[torch.randperm(len(rows), generator=generator)]
        k = per_class if fraction is None else max(1, round(fraction * len(rows)))
        k = min(k, max(len(rows) // 2, 1))  # at most half a class
        free = ranked[~excluded[ranked]]
        chosen.append(free[:k] if len(free) >= k else ranked[:k])
    return torch.cat(chosen).sort().values if chosen else torch.empty(0, dtype=torch.long)


def balanced_subsample(labels: Tensor, max_rows: int, seed: int = 0) -> Tensor:
    """Positions of at most ``max_rows`` rows, classes interleaved round-robin in a seeded order."""
    if len(labels) <= max_rows:
        return torch.arange(len(labels))
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(labels), generator=generator)
    rank = torch.empty(len(labels), dtype=torch.long)
    for c in labels.unique():
        pos = order[labels[order] == c]
        rank[pos] = torch.arange(len(pos))
    keys = rank * len(labels) + torch.argsort(order)  # round r of every class before round r + 1
    return torch.argsort(keys)[:max_rows].sort().values


def train_linear_heads(x: Tensor, y: Tensor, num_classes: int, lrs: Sequence[float],
                       weight_decays: Sequence[float], seeds: Sequence[int], steps: int,
                       init_std: float = 0.01) -> tuple[Tensor, Tensor]:
    """Train H independent heads at once with full-batch Adam; returns weights H x C x D and biases H x C.

    Head h starts from ``init_head(D, C, Generator(seeds[h]))`` and uses ``lrs[h]``, ``weight_decays[h]``.
    """
    if not (len(lrs) == len(weight_decays) == len(seeds)):
        raise ValueError("one lr, weight decay and seed per head")
    x = x.float()
    n, dim = x.shape
    heads, c = len(lrs), num_classes
    inits = [init_head(dim, c, torch.Generator().manual_seed(int(s)), init_std) for s in seeds]
    w = torch.stack([wt.t() for wt, _ in inits], dim=1).reshape(dim, heads * c)  # D x (H*C)
    b = torch.zeros(heads * c)
    lr = torch.tensor(lrs, dtype=torch.float32).repeat_interleave(c)
    wd = torch.tensor(weight_decays, dtype=torch.float32).repeat_interleave(c)
    onehot = torch.nn.functional.one_hot(y.long(), c).float().unsqueeze(1)  # N x 1 x C
    m_w, v_w, m_b, v_b = torch.zeros_like(w), torch.zeros_like(w), torch.zeros_like(b), torch.zeros_like(b)
    beta1, beta2, eps = 0.9, 0.999, 1e-8
    xt = x.t().contiguous()
    for t in range(1, steps + 1):
        logits = torch.addmm(b, x, w).view(n, heads, c)
        # softmax with the log-odds floored at -40, so no subnormal float appears (x86 computes them
        # ~100x slower); a probability below e^-40 is 4e-18 instead of smaller: no visible change
        z = (logits - logits.amax(dim=-1, keepdim=True)).clamp_(min=-40.0).exp_()
        grad = z.div_(z.sum(dim=-1, keepdim=True)).sub_(onehot).div_(n).view(n, heads * c)
        g_w = torch.addmm(w * wd, xt, grad)
        g_b = grad.sum(0)
        for g, m, v, p in ((g_w, m_w, v_w, w), (g_b, m_b, v_b, b)):
            m.mul_(beta1).add_(g, alpha=1 - beta1)
            torch.threshold(v.mul_(beta2).addcmul_(g, g, value=1 - beta2), 1e-30, 0.0, out=v)
            step = (m / (1 - beta1 ** t)) / ((v / (1 - beta2 ** t)).sqrt_().add_(eps))
            p.sub_(step * lr)
    return w.view(dim, heads, c).permute(1, 2, 0).contiguous(), b.view(heads, c)


def head_logits(x: Tensor, weights: Tensor, biases: Tensor) -> Tensor:
    """H x N x C logits of H heads on N x D features."""
    return torch.einsum("nd,hcd->hnc", x.float(), weights) + biases.unsqueeze(1)


def val_scores(x: Tensor, y: Tensor, weights: Tensor, biases: Tensor) -> tuple[Tensor, Tensor]:
    """Per head: top-1 in percent and mean cross-entropy on (x, y)."""
    logits = head_logits(x, weights, biases)
    acc = (logits.argmax(-1) == y.view(1, -1)).float().mean(1) * 100
    loss = torch.nn.functional.cross_entropy(logits.permute(0, 2, 1), y.view(1, -1).expand(len(logits), -1),
                                             reduction="none").mean(1)
    return acc, loss


@dataclass
class Selection:
    lr: float
    weight_decay: float
    val_top1: float
    val_loss: float
    val_size: int
    select_rows: int
    val_overlap: int  # rows of the set that are also in V (left out of selection training)
    grid: list[dict[str, float]] = field(default_factory=list)  # every grid point's validation score


@dataclass
class FastPrepared(PreparedProbe):
    """The fast probe's shared state: standardised set, and test features and the selection."""

    x_set: Tensor
    y_set: Tensor
    views: int  # feature rows per set image
    train_views: int  # augmented views per set image (0: one centre view), as the rows record it
    x_test: Tensor
    selection: Selection
    set_dtype: str = "float32"  # what the set and validation features were computed in (test: float32)


@PROBES.register("fast")
class FastProbe(ProbeProtocol):
    """Linear head on cached features; learning rate chosen on a validation split of train, never test."""

    name = "fast"
    description = "head on cached features, lr chosen on a train validation split; seconds on a CPU"
    Options = FastOptions

    def fit(self, prepared: PreparedProbe, seed: int) -> ProbeResult:
        """One head from ``seed`` with the selected values, scored on the test features.

        One head per call, never several seeds batched: a batched matmul sums in another order, and the
        weights then differ in the last bits from a head trained alone (docs/evaluation.md)."""
        assert isinstance(prepared, FastPrepared)
        o: FastOptions = self.options
        sel = prepared.selection
        w, b = train_linear_heads(prepared.x_set, prepared.y_set, prepared.num_classes, [sel.lr],
                                  [sel.weight_decay], [int(seed)], o.steps, o.init_std)
        logits = head_logits(prepared.x_test, w, b)[0]
        test = prepared.test
        scores = score_logits(logits, test.labels, test.groups)  # test labels: read here only
        extra: dict[str, Any] = {
            "lr": sel.lr, "weight_decay": sel.weight_decay, "val_top1": sel.val_top1,
            "val_loss": sel.val_loss, "val_size": sel.val_size, "select_rows": sel.select_rows,
            "val_overlap": sel.val_overlap, "steps": o.steps, "n_train": len(prepared.y_set) // prepared.views,
            "train_views": prepared.train_views, "feature_dtype": prepared.set_dtype,
        }
        if "worst_group_top1" in scores:
            extra["worst_group_top1"] = scores["worst_group_top1"]
        return ProbeResult(seed=int(seed), top1=scores["top1"], top5=scores["top5"], extra=extra)

    # -- everything before the per-seed heads: features and the selection ----------------------------
    def augmented_views(self, synset: SyntheticSet) -> int:
        """Augmented views per set image: ``train_views``, or 0 (one centre view) for sets over the cap."""
        o: FastOptions = self.options
        return o.train_views if len(synset) <= o.views_max_rows else 0

    def set_features(self, synset: SyntheticSet, train: LabeledImages, backbone: Backbone,
                     ctx: RunContext) -> Tensor:
        """Features of the set's views, view-major: rows ``v * len(set) + i`` are view v of image i."""
        o: FastOptions = self.options
        rows = None if synset.indices is None else torch.as_tensor(synset.indices).long()
        if self.augmented_views(synset) == 0:
            if rows is not None:
                return ctx.features(backbone, train, rows)
            assert synset.images is not None
            images = synset.images.detach()
            if o.synthetic_view == "center":
                images = center_view(images, backbone.input_size)
            return embed_images(ctx.features, backbone, images)
        images = synset.images.detach() if rows is None else train.load(rows, set_image_preprocess(backbone))
        generator = torch.Generator().manual_seed(o.view_seed)
        views = flip_random_resized_crop(images.float().repeat(o.train_views, 1, 1, 1), backbone.input_size,
                                         generator, training_crop(o.min_scale, o.crop_fit))
        return embed_images(ctx.features, backbone, views)

    def prepare(self, synset: SyntheticSet, train: LabeledImages, test: LabeledImages, backbone: Backbone,
                ctx: RunContext) -> FastPrepared:
        """Set, validation and test features (standardised), and the grid point validation picks."""
        num_classes = check_inputs(synset, train, test)
        o: FastOptions = self.options
        views = max(self.augmented_views(synset), 1)  # feature rows per image
        x_set = self.set_features(synset, train, backbone, ctx).float()
        y_set = synset.labels.long().cpu().repeat(views)
        set_rows = None if synset.indices is None else torch.as_tensor(synset.indices).long().cpu()
        val_rows = validation_indices(train.labels, num_classes, o.val_per_class, o.val_seed, o.val_fraction,
                                      exclude=set_rows)
        x_val = ctx.features(backbone, train, val_rows).float() if len(val_rows) else x_set[:0]
        y_val = train.labels[val_rows].long()
        x_test = load_test_features(ctx.features, backbone, test)

        if o.standardize:
            ref = x_val if len(x_val) > 1 else x_set
            mean = ref.mean(0)
            scale = float((ref - mean).pow(2).sum(1).mean().div(ref.shape[1]).sqrt())
            scale = scale if scale > 0 else 1.0
            x_set, x_val, x_test = ((t - mean) / scale for t in (x_set, x_val, x_test))

        selection = self.select(x_set, y_set, x_val, y_val, num_classes, synset, val_rows)
        return FastPrepared(test=test, num_classes=num_classes, x_set=x_set, y_set=y_set, views=views,
                            train_views=self.augmented_views(synset), x_test=x_test, selection=selection,
                            set_dtype=source_dtype(ctx.features, backbone))

    def select(self, x_set: Tensor, y_set: Tensor, x_val: Tensor, y_val: Tensor, num_classes: int,
               synset: SyntheticSet | None = None, val_rows: Tensor | None = None) -> Selection:
        """Pick (lr, weight decay) from the grid by validation top-1 (ties: loss, then grid order)."""
        o: FastOptions = self.options
        grid = [(lr, wd) for wd in o.weight_decays for lr in o.lrs]
        keep = torch.ones(len(y_set), dtype=torch.bool)
        if synset is not None and synset.indices is not None and val_rows is not None and len(val_rows):
            rows = torch.as_tensor(synset.indices).long().cpu()
            keep = ~torch.isin(rows, val_rows)
        overlap = int((~keep).sum())  # images, not views
        keep = keep.repeat(len(y_set) // len(keep))
        if not bool(keep.any()):
            log.warning("fast probe: every row of the set is in the validation split; selecting on them anyway")
            keep[:] = True
        pos = torch.nonzero(keep).flatten()
        if o.select_max_rows is not None:
            pos = pos[balanced_subsample(y_set[pos], o.select_max_rows, o.val_seed)]
        if len(y_val) == 0:
            log.warning("fast probe: empty validation split; using the first grid point unvalidated")
            lr, wd = grid[0]
            return Selection(lr, wd, float("nan"), float("nan"), len(y_val), len(pos), overlap)
        w, b = train_linear_heads(x_set[pos], y_set[pos], num_classes, [g[0] for g in grid],
                                  [g[1] for g in grid], [o.val_seed] * len(grid), o.steps, o.init_std)
        acc, loss = val_scores(x_val, y_val, w, b)
        loss = torch.nan_to_num(loss, nan=float("inf"))
        table = [{"lr": lr, "weight_decay": wd, "val_top1": float(a), "val_loss": float(ls)}
                 for (lr, wd), a, ls in zip(grid, acc, loss, strict=True)]
        best = min(range(len(grid)), key=lambda i: (-round(float(acc[i]), 6), float(loss[i]), i))
        lr, wd = grid[best]
        return Selection(lr, wd, float(acc[best]), float(loss[best]), len(y_val), len(pos), overlap, table)
