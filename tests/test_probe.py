"""Probe protocols: the paper's rule and determinism, the fast probe's selection on train, metrics, errors."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
from datasets import ClassLabel, Dataset, Features, Value
from datasets import Image as ImageFeature
from PIL import Image
from torch import nn

from benchmark.augment import CropSpec, flip_random_resized_crop, sample_crops
from benchmark.features import FeatureCache
from benchmark.probe import fast as fast_module
from benchmark.probe.common import set_image_preprocess, training_crop
from benchmark.probe.fast import (
    FastProbe,
    balanced_subsample,
    center_view,
    train_linear_heads,
    validation_indices,
)
from benchmark.probe.metrics import score_logits, topk_accuracy, worst_group_accuracy
from benchmark.probe.paper import PaperProbe, paper_learning_rate
from benchmark.registry import PROBES
from benchmark.types import Backbone, BackboneIdentity, LabeledImages, RunContext, SyntheticSet

C = 6  # classes: colours on a circle around grey, so class means are linearly separable
SIZE = 16  # backbone input size; images are 24 px


pytestmark = pytest.mark.usefixtures("one_thread")


def colour(c: int) -> np.ndarray:
    angle = 2 * math.pi * c / C
    return np.array([0.5 + 0.3 * math.cos(angle), 0.5 + 0.3 * math.sin(angle), 0.5])


def make_split(per_class: int, seed: int, split: str, groups: bool = False) -> LabeledImages:
    rng = np.random.default_rng(seed)
    images, labels, places = [], [], []
    for c in range(C):
        for i in range(per_class):
            pixels = np.clip(colour(c) + 0.15 * rng.normal(size=(24, 24, 3)), 0, 1)
            images.append(Image.fromarray((pixels * 255).astype(np.uint8)))
            labels.append(c)
            places.append(i % 2)
    names = [f"c{c}" for c in range(C)]
    columns = {"image": images, "label": labels}
    feats = {"image": ImageFeature(), "label": ClassLabel(names=names)}
    if groups:
        columns["place"], feats["place"] = places, Value("int64")
    ds = Dataset.from_dict(columns, features=Features(feats))
    return LabeledImages(name="circle", split=split, dataset=ds, class_names=names, fingerprint=f"{split}-{seed}",
                         group_column="place" if groups else None)


class ColourNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Sequential(nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(12, 16))
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return self.body(x)


def make_backbone() -> Backbone:
    ident = BackboneIdentity(name="colour", library="test", architecture="pool-linear", weight_id="v1",
                             weight_sha256="a" * 64, input_size=SIZE, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    return Backbone(ColourNet(), ident, feature_dim=16)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("probe")
    train, test = make_split(20, 0, "train"), make_split(8, 1, "test")
    backbone = make_backbone()
    ctx = RunContext(device=torch.device("cpu"), features=FeatureCache(root / "features", progress=False),
                     artifact_dir=root / "artifact", progress=False)
    first = torch.stack([train.class_indices(c)[0] for c in range(C)])
    return {"train": train, "test": test, "backbone": backbone, "ctx": ctx,
            "real": SyntheticSet(labels=train.labels[first], indices=first),
            "synthetic": SyntheticSet(labels=train.labels[first], images=train.load(first, backbone.preprocess))}


# -- registry and options ------------------------------------------------------------------------------


def test_registered_with_option_errors():
    assert PROBES.get("paper") is PaperProbe and PROBES.get("fast") is FastProbe
    with pytest.raises(ValueError, match="known options: .*epochs"):
        PROBES.get("paper")(epoch=3)
    assert FastProbe(lrs=[0.1, 0.2]).options.lrs == (0.1, 0.2)  # lists from a suite file are fine
    assert PaperProbe().config()["epochs"] == 1000


# -- paper protocol --------------------------------------------------------------------------------------


def test_paper_learning_rate_rule():
    assert paper_learning_rate(10) == pytest.approx(1e-3 * 10 / 256)  # the pitfall: 3.9e-5
    assert paper_learning_rate(10) == pytest.approx(3.90625e-5)
    assert paper_learning_rate(100) == pytest.approx(1e-3 * 100 / 256)
    assert paper_learning_rate(10_000) == pytest.approx(1e-3 * 100 / 256)  # batch capped at 100
    assert paper_learning_rate(10, gpu_divisor=4) == pytest.approx(1e-3 * 10 / 4 / 256)  # official: / GPUs
    assert PaperProbe(lr_gpu_divisor=4).schedule(10).lr == pytest.approx(1e-3 * 10 / 4 / 256)
    assert PaperProbe(lr_gpu_divisor=4).schedule(3000, full_data=True).lr == pytest.approx(5e-4)
    assert PaperProbe().config()["lr_gpu_divisor"] == 1
    with pytest.raises(ValueError, match="lr_gpu_divisor"):
        PaperProbe(lr_gpu_divisor=0)
    probe = PaperProbe()
    small = probe.schedule(10)
    assert (small.epochs, small.batch_size, small.lr) == (1000, 10, pytest.approx(1e-3 * 10 / 256))
    full = probe.schedule(3000, full_data=True)
    assert (full.epochs, full.batch_size, full.lr) == (100, 128, pytest.approx(5e-4))
    assert full.steps_per_epoch == math.ceil(3000 / 128)
    assert probe.is_full_data(SyntheticSet(labels=torch.zeros(1), indices=torch.zeros(1), metadata={"full_data": True}))
    assert not PaperProbe(full_data=False).is_full_data(
        SyntheticSet(labels=torch.zeros(1), indices=torch.zeros(1), metadata={"full_data": True}))


class RecordingAdam(torch.optim.Adam):
    log: list = []

    def step(self, closure=None):
        group = self.param_groups[0]
        RecordingAdam.log.append((group["lr"], group["weight_decay"], self.param_groups[0]["params"][0].shape))
        return super().step(closure)


@pytest.mark.parametrize("n", [12, 150])
def test_paper_optimiser_follows_the_rule_and_cosine(world, monkeypatch, n):
    monkeypatch.setattr(torch.optim, "Adam", RecordingAdam)
    RecordingAdam.log = []
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(n) % C
    synset = SyntheticSet(labels=labels, images=torch.rand(n, 3, 20, 20, generator=g))
    epochs = 4
    (result,) = PaperProbe(epochs=epochs).evaluate(synset, world["train"], world["test"], world["backbone"], [0],
                                                   world["ctx"])
    batch = min(100, n)
    steps_per_epoch = math.ceil(n / batch)
    assert len(RecordingAdam.log) == epochs * steps_per_epoch
    lr0 = 1e-3 * batch / 256
    want = [lr0 * 0.5 * (1 + math.cos(math.pi * e / epochs)) for e in range(epochs) for _ in range(steps_per_epoch)]
    assert [lr for lr, _, _ in RecordingAdam.log] == pytest.approx(want)
    assert all(wd == 0 for _, wd, _ in RecordingAdam.log)
    assert RecordingAdam.log[0][2] == (C, 16)  # the head: C x D
    assert result.extra["lr"] == pytest.approx(lr0) and result.extra["batch_size"] == batch
    assert result.extra["amp"] is False  # fp32 on CPU


def test_paper_head_init():
    from benchmark.probe.common import init_head

    w, b = init_head(4000, 10, torch.Generator().manual_seed(0))
    assert w.shape == (10, 4000) and torch.all(b == 0)
    assert w.std().item() == pytest.approx(0.01, rel=0.05) and abs(w.mean().item()) < 1e-3


def test_paper_is_deterministic_per_seed(world):
    probe = PaperProbe(epochs=6, lr_scale=30)
    args = (world["synthetic"], world["train"], world["test"], world["backbone"])
    a = probe.evaluate(*args, [3407, 3408], world["ctx"])
    b = PaperProbe(epochs=6, lr_scale=30).evaluate(*args, [3407], world["ctx"])
    assert (a[0].top1, a[0].top5, a[0].extra["final_train_loss"]) == (b[0].top1, b[0].top5,
                                                                      b[0].extra["final_train_loss"])
    assert a[0].extra["final_train_loss"] != a[1].extra["final_train_loss"]  # another seed, another run


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_paper_fp16_on_cuda(world, tmp_path):
    backbone = make_backbone().cuda()
    ctx = dataclasses.replace(world["ctx"], device=torch.device("cuda"),
                              features=FeatureCache(tmp_path, progress=False))
    probe = PaperProbe(epochs=25, lr_scale=100)
    (r,) = probe.evaluate(world["synthetic"], world["train"], world["test"], backbone, [0], ctx)
    assert r.extra["amp"] is True and r.top1 >= 95 and math.isfinite(r.extra["final_train_loss"])


def test_paper_real_images_decoded_once_or_per_batch_agree(world):
    args = (world["real"], world["train"], world["test"], world["backbone"])
    preloaded = PaperProbe(epochs=3, lr_scale=30).evaluate(*args, [1], world["ctx"])[0]
    lazy = PaperProbe(epochs=3, lr_scale=30, preload_max_bytes=0).evaluate(*args, [1], world["ctx"])[0]
    assert preloaded.extra["final_train_loss"] == pytest.approx(lazy.extra["final_train_loss"], abs=1e-6)
    assert preloaded.top1 == lazy.top1


# -- both probes -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("probe", [FastProbe(), PaperProbe(epochs=25, lr_scale=100)], ids=["fast", "paper"])
@pytest.mark.parametrize("kind", ["real", "synthetic"])
def test_separable_problem_is_solved(world, probe, kind):
    results = probe.evaluate(world[kind], world["train"], world["test"], world["backbone"], [0, 1], world["ctx"])
    assert [r.seed for r in results] == [0, 1]
    for r in results:
        assert r.top1 >= 95.0, r
        assert r.top5 >= r.top1


def test_worst_group_reported(world):
    test = make_split(4, 2, "test", groups=True)
    for probe in (FastProbe(), PaperProbe(epochs=2)):
        (r,) = probe.evaluate(world["real"], world["train"], test, world["backbone"], [0], world["ctx"])
        assert 0 <= r.extra["worst_group_top1"] <= r.top1
    (r,) = FastProbe().evaluate(world["real"], world["train"], world["test"], world["backbone"], [0], world["ctx"])
    assert "worst_group_top1" not in r.extra


@pytest.mark.parametrize("probe", [FastProbe(), PaperProbe(epochs=1)], ids=["fast", "paper"])
def test_bad_inputs_raise(world, probe):
    args = (world["train"], world["test"], world["backbone"])
    empty_test = make_split(0, 0, "test")
    with pytest.raises(ValueError, match="test split .* is empty"):
        probe.evaluate(world["real"], world["train"], empty_test, world["backbone"], [0], world["ctx"])
    hollow = SyntheticSet(labels=torch.tensor([0]), images=torch.rand(1, 3, 8, 8))
    hollow.images = None
    with pytest.raises(ValueError, match="no images and no indices"):
        probe.evaluate(hollow, *args, [0], world["ctx"])
    nothing = SyntheticSet(labels=torch.empty(0, dtype=torch.long), images=torch.empty(0, 3, 8, 8))
    with pytest.raises(ValueError, match="no images and no indices"):
        probe.evaluate(nothing, *args, [0], world["ctx"])
    wrong = SyntheticSet(labels=torch.tensor([C]), images=torch.rand(1, 3, 8, 8))
    with pytest.raises(ValueError, match="classes"):
        probe.evaluate(wrong, *args, [0], world["ctx"])


# -- fast probe: selection on a validation split of train, never test --------------------------------------


def test_validation_split_is_fixed_balanced_and_avoids_the_set():
    labels = torch.arange(60) % 3  # 20 per class
    v = validation_indices(labels, 3, per_class=5, seed=0)
    assert torch.equal(v, validation_indices(labels, 3, per_class=5, seed=0))
    assert not torch.equal(v, validation_indices(labels, 3, per_class=5, seed=1))
    assert torch.bincount(labels[v]).tolist() == [5, 5, 5]
    avoided = validation_indices(labels, 3, per_class=5, seed=0, exclude=v[:4])
    assert not set(avoided.tolist()) & set(v[:4].tolist())
    assert set(avoided.tolist()) & set(v.tolist()) == set(v[4:].tolist())  # same subset but for the clash
    full = validation_indices(labels, 3, per_class=5, seed=0, exclude=torch.arange(60))
    assert torch.equal(full, v)  # nothing else to take: the canonical rows
    assert torch.bincount(labels[validation_indices(labels, 3, per_class=50)]).tolist() == [10, 10, 10]
    assert torch.bincount(labels[validation_indices(labels, 3, fraction=0.25)]).tolist() == [5, 5, 5]
    sub = balanced_subsample(labels, 9, seed=0)
    assert torch.bincount(labels[sub]).tolist() == [3, 3, 3]


@pytest.mark.parametrize("lrs", [(1e-9, 1e-2), (1e-2, 1e-9)])
def test_fast_picks_the_lr_that_validates_best(world, lrs):
    probe = FastProbe(lrs=lrs, steps=30)
    (r,) = probe.evaluate(world["synthetic"], world["train"], world["test"], world["backbone"], [0], world["ctx"])
    assert r.extra["lr"] == 1e-2  # 1e-9 leaves the head at its random init
    assert r.extra["val_top1"] >= 95 and r.extra["val_size"] == C * 10


def test_fast_choice_is_whatever_validation_says(world, monkeypatch):
    """The chosen grid point is the argmax of the validation score, whatever it is."""
    real_scores = fast_module.val_scores

    def rigged(x, y, w, b):
        acc, loss = real_scores(x, y, w, b)
        favour = torch.zeros_like(acc)
        favour[2] = 100.0
        return favour, loss

    monkeypatch.setattr(fast_module, "val_scores", rigged)
    probe = FastProbe(lrs=(1e-4, 1e-3, 1e-2, 1e-1))
    (r,) = probe.evaluate(world["real"], world["train"], world["test"], world["backbone"], [0], world["ctx"])
    assert r.extra["lr"] == 1e-2 and r.extra["val_top1"] == 100.0


class WatchedLabels(LabeledImages):
    """A test split that logs when its labels are read."""

    events: list

    @property
    def labels(self):
        self.events.append("test labels")
        return super().labels


def test_fast_reads_test_labels_only_for_the_final_score(world, monkeypatch):
    events: list[str] = []
    real_train = fast_module.train_linear_heads

    def logged_train(*args, **kwargs):
        events.append("train")
        return real_train(*args, **kwargs)

    monkeypatch.setattr(fast_module, "train_linear_heads", logged_train)
    test = WatchedLabels(**{f.name: getattr(world["test"], f.name) for f in dataclasses.fields(LabeledImages)})
    test.events = events
    results = FastProbe().evaluate(world["real"], world["train"], test, world["backbone"], [0, 1], world["ctx"])
    runs = [e for i, e in enumerate(events) if e == "train" or events[i - 1] != e]  # label reads collapsed
    # selection, then each seed's head and its score: the test labels never before a seed's head
    assert runs == ["train", "train", "test labels", "train", "test labels"]
    assert len(results) == 2


def test_fast_selection_ignores_test_labels(world):
    test = world["test"]
    perm = torch.randperm(len(test), generator=torch.Generator().manual_seed(0))
    shuffled_ds = test.dataset.cast_column("label", Value("int64"))
    shuffled_ds = shuffled_ds.remove_columns("label").add_column("label", test.labels[perm].tolist())
    shuffled = dataclasses.replace(test, dataset=shuffled_ds, _labels=None)
    args = (world["real"], world["train"])
    a = FastProbe().evaluate(*args, test, world["backbone"], [0], world["ctx"])[0]
    b = FastProbe().evaluate(*args, shuffled, world["backbone"], [0], world["ctx"])[0]
    assert (a.extra["lr"], a.extra["val_top1"], a.extra["val_loss"]) == (b.extra["lr"], b.extra["val_top1"],
                                                                        b.extra["val_loss"])
    assert b.top1 < a.top1  # only the final score saw the permuted labels


def test_fast_seeds_vary_the_init_and_are_reproducible(world, monkeypatch):
    probe = FastProbe()
    args = (world["synthetic"], world["train"], world["test"], world["backbone"])
    calls = []
    real_select = FastProbe.select
    monkeypatch.setattr(FastProbe, "select", lambda self, *a, **k: calls.append(1) or real_select(self, *a, **k))
    prepared = probe.prepare(*args, world["ctx"])
    assert len(calls) == 1  # the selection is part of prepare, shared by every seed
    one, again, other = probe.fit(prepared, 5), probe.fit(prepared, 5), probe.fit(prepared, 4)
    assert len(calls) == 1
    assert (one.top1, one.top5, one.extra) == (again.top1, again.top5, again.extra)
    both = probe.evaluate(*args, [4, 5], world["ctx"])
    assert len(calls) == 2  # evaluate prepares once for its seeds
    assert [r.seed for r in both] == [4, 5]
    assert (both[0].top1, both[1].top1) == (other.top1, one.top1)  # bit-identical: a seed's head trains alone
    # the seed sets the init, and a head trained with others differs from one trained alone only in the
    # last bits (a batched matmul sums in another order): why fit trains one head at a time
    x, y = torch.randn(40, 16), torch.arange(40) % C
    w2, b2 = train_linear_heads(x, y, C, [1e-2, 1e-2], [0.0, 0.0], [4, 5], 20)
    w1, b1 = train_linear_heads(x, y, C, [1e-2], [0.0], [5], 20)
    assert torch.allclose(w2[1], w1[0], atol=1e-5) and torch.allclose(b2[1], b1[0], atol=1e-5)
    assert not torch.allclose(w2[0], w2[1], atol=1e-5)


def test_fast_fit_trains_one_head_per_seed(world, monkeypatch):
    """Seeds are never batched into one training pass (that would change the last bits of the weights)."""
    heads = []
    real_train = fast_module.train_linear_heads

    def spy(x, y, num_classes, lrs, *args, **kwargs):
        heads.append(len(lrs))
        return real_train(x, y, num_classes, lrs, *args, **kwargs)

    monkeypatch.setattr(fast_module, "train_linear_heads", spy)
    FastProbe(lrs=(1e-3, 1e-2)).evaluate(world["real"], world["train"], world["test"], world["backbone"],
                                         [0, 1, 2], world["ctx"])
    assert heads == [2, 1, 1, 1]  # the grid's heads together (one shared init), then one head per seed


def test_fast_full_data_holds_out_the_validation_rows(world):
    train = world["train"]
    full = SyntheticSet(labels=train.labels.clone(), indices=torch.arange(len(train)), metadata={"full_data": True})
    (r,) = FastProbe().evaluate(full, train, world["test"], world["backbone"], [0], world["ctx"])
    assert r.extra["val_overlap"] == C * 10 and r.extra["select_rows"] == len(train) - C * 10
    assert r.extra["n_train"] == len(train) and r.top1 >= 95


class PickFirst(FastProbe):
    """A broken selection that always takes the first grid point: the test below must fail it."""

    def select(self, *args, **kwargs):
        chosen = super().select(*args, **kwargs)
        first = chosen.grid[0]
        return dataclasses.replace(chosen, lr=first["lr"], weight_decay=first["weight_decay"])


# 1e6 pins the head at 0 (chance on validation); 10 validates as well as 0 but with a higher loss: the
# right pick, 0, is neither first nor last, so neither "first" nor "last" finds it
@pytest.mark.parametrize("weight_decays", [(1e6, 0.0, 10.0), (10.0, 0.0, 1e6)])
def test_fast_weight_decay_grid_is_searched(world, weight_decays):
    args = (world["real"], world["train"], world["test"], world["backbone"], [0], world["ctx"])
    (r,) = FastProbe(lrs=(1e-2,), weight_decays=weight_decays).evaluate(*args)
    assert r.extra["weight_decay"] == 0.0 and r.extra["val_top1"] == 100.0
    (wrong,) = PickFirst(lrs=(1e-2,), weight_decays=weight_decays).evaluate(*args)
    assert wrong.extra["weight_decay"] == weight_decays[0] != 0.0  # the check above tells them apart


def test_fast_train_views_embed_augmented_views_of_small_sets_only(world, monkeypatch):
    train, test, backbone, ctx = world["train"], world["test"], world["backbone"], world["ctx"]
    seen = []
    real_train = fast_module.train_linear_heads

    def spy(x, y, *args, **kw):
        seen.append((x.clone(), y.clone()))
        return real_train(x, y, *args, **kw)

    monkeypatch.setattr(fast_module, "train_linear_heads", spy)
    probe = FastProbe(train_views=4, view_seed=1)
    (r,) = probe.evaluate(world["real"], train, test, backbone, [0], ctx)
    x, y = seen[-1]
    assert r.extra["train_views"] == 4 and r.extra["n_train"] == C and x.shape == (4 * C, 16)
    assert torch.equal(y, world["real"].labels.repeat(4))
    views = x.view(4, C, 16)
    assert not torch.allclose(views[0], views[1])  # views differ from one another
    # a real-image set's views are those of its decoded images: equal to the same images given in memory
    rows = world["real"].indices
    decoded = SyntheticSet(labels=world["real"].labels, images=train.load(rows, set_image_preprocess(backbone)))
    assert torch.allclose(probe.set_features(decoded, train, backbone, ctx),
                          probe.set_features(world["real"], train, backbone, ctx), atol=1e-6)
    # the same view seed gives the same views; sets over views_max_rows keep one centre view per image
    seen.clear()
    FastProbe(train_views=4, view_seed=1).evaluate(world["real"], train, test, backbone, [0], ctx)
    assert torch.equal(seen[-1][0], x)
    (big,) = FastProbe(train_views=4, views_max_rows=C - 1).evaluate(world["real"], train, test, backbone, [0], ctx)
    assert big.extra["train_views"] == 0 and big.extra["n_train"] == C
    one, centre = (FastProbe(train_views=v).set_features(world["real"], train, backbone, ctx) for v in (1, 0))
    assert one.shape == centre.shape and not torch.allclose(one, centre)  # one augmented view, not the centre
    with pytest.raises(ValueError, match="train_views"):
        FastProbe(train_views=-1)


def test_center_view_matches_the_test_geometry():
    images = torch.rand(2, 3, 256, 256)
    assert center_view(images, 224).shape[-1] == 224
    assert torch.equal(center_view(images, 224), images[..., 16:240, 16:240])
    assert center_view(torch.rand(1, 3, 18, 18), 16).shape[-1] == 16


# -- metrics and augmentation --------------------------------------------------------------------------------


def test_metrics():
    logits = torch.tensor([[3.0, 2.0, 1.0], [3.0, 2.0, 1.0], [1.0, 3.0, 2.0], [1.0, 2.0, 3.0]])
    labels = torch.tensor([0, 1, 1, 0])
    assert topk_accuracy(logits, labels, 1) == 50.0
    assert topk_accuracy(logits, labels, 2) == 75.0
    scores = score_logits(logits, labels)
    assert scores["top5"] == 100.0  # top-5 with 3 classes is top-3
    groups = torch.tensor([0, 0, 1, 1])
    # (label, group) pairs: (0,0) right, (1,0) wrong, (1,1) right, (0,1) wrong -> worst 0
    assert worst_group_accuracy(logits.argmax(1), labels, groups) == 0.0
    assert worst_group_accuracy(logits.argmax(1), labels, torch.zeros(4)) == 50.0  # per label: 1 of 2
    assert score_logits(logits[[0, 2]], labels[[0, 2]], groups[[0, 2]])["worst_group_top1"] == 100.0


def test_augmentation_geometry_and_determinism():
    images = torch.rand(3, 3, 20, 20)
    flipped = flip_random_resized_crop(images, 20, torch.Generator().manual_seed(0),
                                       CropSpec(scale=(1, 1), ratio=(1, 1), flip_p=1.0))
    assert torch.allclose(flipped, images.flip(-1), atol=1e-5)
    same = flip_random_resized_crop(images, 20, torch.Generator().manual_seed(0),
                                    CropSpec(scale=(1, 1), ratio=(1, 1), flip_p=0.0))
    assert torch.allclose(same, images, atol=1e-5)
    a = flip_random_resized_crop(images, 8, torch.Generator().manual_seed(1))
    b = flip_random_resized_crop(images, 8, torch.Generator().manual_seed(1))
    c = flip_random_resized_crop(images, 8, torch.Generator().manual_seed(2))
    assert a.shape == (3, 3, 8, 8) and torch.equal(a, b) and not torch.equal(a, c)


def test_probe_crops_overhang_like_the_official_op_unless_fit():
    """By default (the official op) about 14 % of crops at area 0.08-1 reach outside the image and show
    its zero padding; with ``crop_fit`` (``CropSpec.fit``) none do."""
    n = 4000
    crops = sample_crops(n, training_crop(0.08, fit=False), torch.Generator().manual_seed(3))
    assert 0.12 < crops.overhangs().float().mean().item() < 0.16
    ones = flip_random_resized_crop(torch.ones(n, 3, 20, 20), 8, torch.Generator().manual_seed(3),
                                    training_crop(0.08, fit=False))
    # a sample more than half a pixel outside the image is mostly zero padding (a crop that fits can
    # still blend its outermost samples with the padding, by less than half)
    padded = (ones.flatten(1).amin(1) < 0.5).float().mean().item()
    assert 0.01 < padded < 0.14  # most overhangs are slivers that only dim the outer samples
    fit = training_crop(0.08, fit=True)
    assert not sample_crops(n, fit, torch.Generator().manual_seed(3)).overhangs().any()
    ones = flip_random_resized_crop(torch.ones(n, 3, 20, 20), 8, torch.Generator().manual_seed(3), fit)
    assert ones.min().item() >= 0.5 - 1e-5


@pytest.mark.parametrize("fit", [False, True])
def test_both_probes_use_the_shared_crop_with_crop_fit(world, monkeypatch, fit):
    """The paper and fast probes augment through ``benchmark.augment`` with ``fit = crop_fit``, and the
    option lands in the probe's config (the row's ``probe_config``)."""
    from benchmark import augment as shared
    from benchmark.probe import paper as paper_module

    seen = []
    real = shared.flip_random_resized_crop

    def spy(images, size, generator, spec=None):
        seen.append(spec)
        return real(images, size, generator, spec)

    monkeypatch.setattr(paper_module, "flip_random_resized_crop", spy)
    monkeypatch.setattr(fast_module, "flip_random_resized_crop", spy)
    args = (world["synthetic"], world["train"], world["test"], world["backbone"], [0], world["ctx"])
    for probe in (PaperProbe(epochs=1, crop_fit=fit), FastProbe(train_views=2, crop_fit=fit)):
        seen.clear()
        probe.evaluate(*args)
        assert seen and all(s == CropSpec(scale=(0.08, 1.0), fit=fit) for s in seen)
        assert probe.config()["crop_fit"] is fit
    assert PaperProbe().options.crop_fit is False and FastProbe().options.crop_fit is False
