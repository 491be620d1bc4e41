"""Real-image selection baselines (centroids, kmeans, herding, neighbors) on toy embeddings."""

from __future__ import annotations

import itertools
from pathlib import Path

import datasets
import pytest
import torch
from PIL import Image
from torch import nn

from baselines.herding import herding_order
from baselines.kmeans import nearest_unique
from benchmark.registry import METHODS
from benchmark.types import Backbone, BackboneIdentity, LabeledImages, RunContext, SyntheticSet

SELECTORS = ("centroids", "kmeans", "herding")
_IMAGE = Image.new("RGB", (2, 2))


def toy_images(labels: list[int], num_classes: int | None = None) -> LabeledImages:
    n_cls = num_classes if num_classes is not None else max(labels) + 1
    ds = datasets.Dataset.from_dict({"image": [_IMAGE] * len(labels), "label": labels})
    return LabeledImages("toy", "train", ds, [f"c{i}" for i in range(n_cls)], fingerprint="toy")


def toy_backbone() -> Backbone:
    """Embedding = per-channel spatial mean of the raw image (identity normalisation): 3-D features."""
    ident = BackboneIdentity(name="toy", library="test", architecture="meanpool", weight_id="none",
                             weight_sha256="0", input_size=4, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
    return Backbone(nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten()), ident, feature_dim=3)


class FakeFeatures:
    """Stands in for the feature cache: returns rows of a given matrix and records what was asked."""

    def __init__(self, feats: torch.Tensor) -> None:
        self.feats = feats.float()
        self.calls: list[torch.Tensor | None] = []

    def __call__(self, backbone, data, indices=None, preprocess=None, autocast=None):
        self.calls.append(None if indices is None else torch.as_tensor(indices).clone())
        return self.feats if indices is None else self.feats[torch.as_tensor(indices)]


def make_ctx(feats: torch.Tensor, synthetic: dict[str, SyntheticSet] | None = None) -> RunContext:
    synthetic = synthetic or {}
    return RunContext(device=torch.device("cpu"), features=FakeFeatures(feats), artifact_dir=Path("."),
                      load_synthetic=lambda method: synthetic.get(method), progress=False)


def run(method: str, train, feats, ipc, seed=0, synthetic=None, **options):
    ctx = make_ctx(feats, synthetic)
    return METHODS.get(method)(**options).synthesize(train, toy_backbone(), ipc, seed, ctx), ctx


def blobs(n_per_class=30, num_classes=3, dim=8, seed=0):
    """Interleaved labels (so class rows are not contiguous) and gaussian features per class."""
    gen = torch.Generator().manual_seed(seed)
    labels = [i % num_classes for i in range(n_per_class * num_classes)]
    centres = 5 * torch.randn(num_classes, dim, generator=gen)
    feats = centres[torch.tensor(labels)] + torch.randn(len(labels), dim, generator=gen)
    return toy_images(labels), feats


def class_picks(synset: SyntheticSet, c: int) -> list[int]:
    return synset.indices[synset.labels == c].tolist()


# ---------------------------------------------------------------- registration and contracts


def test_registered_with_description():
    for name in (*SELECTORS, "neighbors"):
        cls = METHODS.get(name)
        assert cls.name == name and cls.description and cls.uses_backbone


@pytest.mark.parametrize("method", SELECTORS)
@pytest.mark.parametrize("ipc", [1, 4])
def test_indices_valid_unique_right_class(method, ipc):
    train, feats = blobs()
    synset, ctx = run(method, train, feats, ipc)
    assert synset.is_real and synset.images is None
    assert synset.indices.dtype == torch.long and len(synset) == ipc * train.num_classes
    assert int(synset.indices.min()) >= 0 and int(synset.indices.max()) < len(train)
    assert len(torch.unique(synset.indices)) == len(synset.indices)
    assert torch.equal(train.labels[synset.indices], synset.labels)
    # grouped by class, in class order
    assert torch.equal(synset.labels, torch.arange(train.num_classes).repeat_interleave(ipc))
    # one request for every training row (one cache entry, one pass of the image stream), never per class
    assert ctx.features.calls == [None]


@pytest.mark.parametrize("method", SELECTORS)
def test_deterministic_under_seed(method):
    train, feats = blobs(seed=3)
    a, _ = run(method, train, feats, ipc=3, seed=7)
    b, _ = run(method, train, feats, ipc=3, seed=7)
    assert torch.equal(a.indices, b.indices) and torch.equal(a.labels, b.labels)


@pytest.mark.parametrize("method", SELECTORS)
def test_too_few_images_for_ipc(method):
    train, feats = blobs(n_per_class=3)
    with pytest.raises(ValueError, match="fewer than ipc=4"):
        run(method, train, feats, ipc=4)


# ---------------------------------------------------------------- centroids


def test_centroids_known_by_construction():
    # class 0: a point exactly at its mean m plus pairs symmetric about m at radii 1, 2.5, 3; class 1 likewise
    # around another mean. Rows interleaved and shuffled so the answer is not "the first row".
    def cloud(m):
        m = torch.tensor(m)
        offsets = [[3.0, 0], [0, 1.0], [0, 0], [0, -1.0], [-3.0, 0], [1.5, 2.0], [-1.5, -2.0]]  # exact in fp32
        pts = [m + torch.tensor(o) for o in offsets]
        return torch.stack(pts)

    f0, f1 = cloud([10.0, -4.0]), cloud([-7.0, 2.0])
    labels = [0, 1] * 7
    feats = torch.stack([f0[i // 2] if lab == 0 else f1[i // 2] for i, lab in enumerate(labels)])
    train = toy_images(labels)
    synset, _ = run("centroids", train, feats, ipc=1)
    assert synset.indices.tolist() == [4, 5]  # the centre points: within-class row 2 of each class
    synset, _ = run("centroids", train, feats, ipc=3)
    # nearest first: the centre, then the radius-1 pair (tie -> earlier training row first)
    assert class_picks(synset, 0) == [4, 2, 6]
    assert class_picks(synset, 1) == [5, 3, 7]


# ---------------------------------------------------------------- kmeans


@pytest.mark.parametrize("ipc", [3, 5])
def test_kmeans_agrees_with_sklearn(ipc):
    from sklearn.cluster import KMeans

    train, feats = blobs(n_per_class=40, num_classes=2, dim=4, seed=1)
    seed = 11
    synset, _ = run("kmeans", train, feats, ipc=ipc, seed=seed)
    for c in range(train.num_classes):
        members = train.class_indices(c)
        x = feats[members].double()
        km = KMeans(n_clusters=ipc, n_init=10, random_state=seed).fit(x.numpy())
        centres = torch.from_numpy(km.cluster_centers_)
        nearest = torch.cdist(centres, x).argmin(dim=1)
        assert len(set(nearest.tolist())) == ipc  # no collision on this toy problem
        assert sorted(class_picks(synset, c)) == sorted(members[nearest].tolist())


def test_kmeans_ipc1_is_nearest_to_class_mean():
    train, feats = blobs(n_per_class=25, seed=5)
    synset, _ = run("kmeans", train, feats, ipc=1, seed=2)
    for c in range(train.num_classes):
        members = train.class_indices(c)
        x = feats[members].double()
        expected = members[(x - x.mean(0)).norm(dim=1).argmin()]
        assert class_picks(synset, c) == [int(expected)]


def test_kmeans_shared_nearest_image_goes_to_closer_centre():
    feats = torch.tensor([[0.0], [1.0], [-1.5], [10.0]], dtype=torch.float64)
    centres = torch.tensor([[0.45], [-0.3]], dtype=torch.float64)  # both nearest row 0
    rows = nearest_unique(feats, centres)
    # centre 1 is closer to row 0 and keeps it; centre 0 takes its next nearest unused row (1). Serving
    # centres in index order instead would give centre 0 row 0 and centre 1 row 2.
    assert rows == [0, 1]


# ---------------------------------------------------------------- herding


def test_herding_first_two_picks_match_brute_force():
    gen = torch.Generator().manual_seed(4)
    for _ in range(5):
        x = torch.randn(7, 3, generator=gen, dtype=torch.float64)
        mu = x.mean(0)
        # brute force: the best singleton, then the best ordered pair extending it (the greedy rule)
        first = min(range(7), key=lambda i: float((x[i] - mu).norm()))
        pairs = [p for p in itertools.permutations(range(7), 2) if p[0] == first]
        _, second = min(pairs, key=lambda p: float((x[list(p)].mean(0) - mu).norm()))
        assert herding_order(x, 2) == [first, second]


def test_herding_method_uses_herding_order_per_class():
    train, feats = blobs(n_per_class=12, seed=9)
    synset, _ = run("herding", train, feats, ipc=4)
    for c in range(train.num_classes):
        members = train.class_indices(c)
        assert class_picks(synset, c) == members[herding_order(feats[members], 4)].tolist()


def _running_error(x: torch.Tensor, order: list[int]) -> torch.Tensor:
    chosen = x[torch.as_tensor(order)]
    running = chosen.cumsum(0) / torch.arange(1, len(order) + 1, dtype=x.dtype).unsqueeze(1)
    return (running - x.mean(0)).norm(dim=1)


def test_herding_running_mean_error_decreases_and_beats_random():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(200, 16, generator=gen, dtype=torch.float64)
    k = 20
    err = _running_error(x, herding_order(x, k))
    diffs = err[1:] - err[:-1]
    assert diffs.mean() < 0 and (diffs <= 0).float().mean() >= 0.75  # non-increasing on average
    assert err[k // 2:].mean() < err[: k // 2].mean()
    rand = torch.stack([_running_error(x, torch.randperm(200, generator=gen)[:k].tolist()) for _ in range(50)])
    assert torch.all(err < rand.mean(0))
    assert err[-1] < 0.5 * rand.mean(0)[-1]


# ---------------------------------------------------------------- neighbors


def _colour_images(colours: list[list[float]]) -> torch.Tensor:
    """Constant-colour 3x4x4 images: the toy backbone embeds each as its colour."""
    return torch.tensor(colours).view(-1, 3, 1, 1).expand(-1, 3, 4, 4).contiguous()


def test_neighbors_without_lgm_artifact_fails_clearly():
    train, feats = blobs(n_per_class=4, dim=3)
    with pytest.raises(RuntimeError, match=r"lgm artifact.*does not exist yet.*--methods lgm neighbors"):
        run("neighbors", train, feats, ipc=1)


def test_neighbors_cosine_nearest_unique_same_class():
    labels = [0, 1, 0, 1, 0, 1, 0, 1]
    train = toy_images(labels)
    feats = torch.tensor([
        [1.0, 0.0, 0.0],   # 0 c0: L2-near the distilled (0.9, 0.1, 0) image, but cosine-farther
        [0.0, 0.0, 1.0],   # 1 c1: cosine-identical to the class-1 distilled image
        [9.0, 1.0, 0.0],   # 2 c0: same direction as (0.9, 0.1, 0), far in L2
        [0.0, 0.0, 0.2],   # 3 c1: also cosine-identical to it (tie with row 1)
        [0.0, 1.0, 0.0],   # 4 c0
        [0.9, 0.1, 0.0],   # 5 c1: the other class's exact match: must never be picked for class 0
        [0.5, 0.5, 0.0],   # 6 c0
        [1.0, 0.0, 0.1],   # 7 c1
    ])
    distilled = SyntheticSet(labels=torch.tensor([0, 0, 1, 1]),
                             images=_colour_images([[0.9, 0.1, 0.0], [0.88, 0.12, 0.0],
                                                    [0.0, 0.0, 1.0], [0.0, 0.1, 1.0]]))
    synset, _ = run("neighbors", train, feats, ipc=2, synthetic={"lgm": distilled}, unique=True)
    assert torch.equal(synset.labels, torch.tensor([0, 0, 1, 1]))
    assert len(torch.unique(synset.indices)) == 4
    # class 0: both distilled images are nearest (cosine) row 2; the more similar one keeps it, the
    # other gets its next nearest unused row (0 beats 6 in cosine)
    assert synset.indices[:2].tolist() == [2, 0]
    # class 1: rows 1 and 3 tie for the first distilled image (lower row wins); the second gets row 3
    assert synset.indices[2:].tolist() == [1, 3]
    sims = synset.metadata["cosine_similarity"]
    assert len(sims) == 4 and sims[0] == pytest.approx(1.0) and sims[2] == pytest.approx(1.0)


def test_neighbors_default_is_argmax_per_image_with_repeats():
    """The official rule: each distilled image takes its own argmax; two may take the same real image."""
    labels = [0, 1, 0, 1, 0, 1]
    feats = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [9.0, 1.0, 0.0], [0.0, 0.0, 0.2],
                          [0.0, 1.0, 0.0], [0.9, 0.1, 0.0]])
    distilled = SyntheticSet(labels=torch.tensor([0, 0, 1, 1]),
                             images=_colour_images([[0.9, 0.1, 0.0], [0.88, 0.12, 0.0],
                                                    [0.0, 0.0, 1.0], [0.0, 0.1, 1.0]]))
    synset, _ = run("neighbors", toy_images(labels), feats, ipc=2, synthetic={"lgm": distilled})
    assert synset.indices.tolist() == [2, 2, 1, 1]  # rows 1 and 3 tie for class 1: the earlier row
    assert "repeats allowed" in synset.metadata["selection"]
    assert METHODS.get("neighbors")().config()["unique"] is False


def test_centroids_uses_the_mean_not_a_median():
    # 1-D class [0, 1, 2, 3, 20]: mean 5.2 -> nearest is 3 (a median or medoid would say 2)
    feats = torch.tensor([[0.0], [1.0], [2.0], [3.0], [20.0]])
    synset, _ = run("centroids", toy_images([0] * 5), feats, ipc=2)
    assert synset.indices.tolist() == [3, 2]
