"""Parity of the evaluation side with the official code of the paper.

Every ``official_*`` function below is a reference written for these tests from reading the official
code (the paper's repository, and DINOv2's for the position table): what it computes, in our own words
and code. Each test compares what the harness does with its reference, exactly where the operation is
deterministic and in distribution where it draws random numbers, and fails for the departure it names.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from datasets import ClassLabel, Dataset, Features
from datasets import Image as ImageFeature
from PIL import Image
from torch import nn
from torchvision import transforms

from benchmark.augment import flip_random_resized_crop, sample_crops
from benchmark.features import FeatureCache
from benchmark.probe import paper as paper_module
from benchmark.probe.common import set_image_preprocess, training_crop
from benchmark.probe.paper import PaperProbe
from benchmark.registry import BACKBONES, METHODS
from benchmark.report import PaperNumbers, paper_tables
from benchmark.report.aggregate import aggregate
from benchmark.results import COLUMNS
from benchmark.types import Backbone, BackboneIdentity, LabeledImages, RunContext, SyntheticSet

IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


pytestmark = pytest.mark.usefixtures("one_thread")


# -- helpers ------------------------------------------------------------------------------------------


def noise_images(sizes: list[tuple[int, int]], seed: int = 0) -> list[Image.Image]:
    """Random RGB images of the given (width, height): every pixel distinct enough to locate a crop."""
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)) for w, h in sizes]


def labelled(images: list[Image.Image], labels: list[int], name: str = "parity", split: str = "train"
             ) -> LabeledImages:
    names = [f"c{c}" for c in range(max(labels) + 1)]
    ds = Dataset.from_dict({"image": images, "label": labels},
                           features=Features({"image": ImageFeature(), "label": ClassLabel(names=names)}))
    return LabeledImages(name=name, split=split, dataset=ds, class_names=names, fingerprint=f"{name}-{split}")


class PatchNet(nn.Module):
    """A fixed strided convolution: features depend on where things are, so crops and resizes differ."""

    def __init__(self, patch: int) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 2, patch, stride=patch)

    def forward(self, x):
        return self.conv(x).flatten(1)


def patch_backbone(input_size: int, patch: int, **identity: str) -> Backbone:
    """``identity``: overrides of the identity's defaults (e.g. ``interpolation``)."""
    ident = BackboneIdentity(name="patchnet", library="test", architecture=f"conv{patch}", weight_id="fixed",
                             weight_sha256="0" * 64, input_size=input_size, mean=IMAGENET[0], std=IMAGENET[1],
                             **identity)
    dim = 2 * (input_size // patch) ** 2
    return Backbone(PatchNet(patch), ident, feature_dim=dim)


def ctx_for(tmp_path, synthetic: dict | None = None) -> RunContext:
    synthetic = synthetic or {}
    return RunContext(device=torch.device("cpu"), features=FeatureCache(tmp_path / "features", progress=False),
                      artifact_dir=tmp_path / "artifact", load_synthetic=lambda m: synthetic.get(m), progress=False)


# -- 10. the probe's random resized crop: the official op lets crops overhang the image -----------------


def official_random_resized_crop(images: torch.Tensor, size: int, u: torch.Tensor,
                                 scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3)) -> torch.Tensor:
    """The official crop for B x 4 uniforms ``u``: area a = lerp(scale, u0), aspect r = exp(lerp(log
    ratio, u1)); crop sides sqrt(a r), sqrt(a / r) as fractions of the side, never clamped; left/top
    edge u2 (1 - side), u3 (1 - side) (negative when the side exceeds 1: the crop overhangs); resampled
    with an affine grid, bilinear, zero padding."""
    area = scale[0] + u[:, 0] * (scale[1] - scale[0])
    aspect = torch.exp(math.log(ratio[0]) + u[:, 1] * (math.log(ratio[1]) - math.log(ratio[0])))
    w, h = torch.sqrt(area * aspect), torch.sqrt(area / aspect)
    left, top = u[:, 2] * (1 - w), u[:, 3] * (1 - h)
    theta = torch.zeros(len(u), 2, 3)
    theta[:, 0, 0], theta[:, 1, 1] = w, h
    theta[:, 0, 2], theta[:, 1, 2] = 2 * (left + w / 2) - 1, 2 * (top + h / 2) - 1
    grid = F.affine_grid(theta, [len(u), images.shape[1], size, size], align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def official_overhang(u: torch.Tensor, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3)) -> torch.Tensor:
    """Whether the official crop of each draw reaches outside the image (a side longer than 1)."""
    area = scale[0] + u[:, 0] * (scale[1] - scale[0])
    aspect = torch.exp(math.log(ratio[0]) + u[:, 1] * (math.log(ratio[1]) - math.log(ratio[0])))
    return (area * aspect > 1) | (area / aspect > 1)


def test_probe_crop_is_the_official_op_pixel_for_pixel():
    """Same uniforms, same pixels (no flip): our crop is the official one, overhang and all."""
    images = torch.rand(64, 3, 20, 20, generator=torch.Generator().manual_seed(0))
    ours = flip_random_resized_crop(images, 12, torch.Generator().manual_seed(5),
                                    dataclasses.replace(training_crop(0.08, fit=False), flip_p=0.0))
    u = torch.rand(64, 4, generator=torch.Generator().manual_seed(5))  # sample_crops draws these first
    assert official_overhang(u).any()  # the batch has overhanging crops
    assert torch.allclose(ours, official_random_resized_crop(images, 12, u), atol=1e-5)


def test_probe_flip_is_the_official_flip_then_crop():
    """Ours mirrors the crop; the official op flips the image, then crops: the same image for the crop
    whose left edge is mirrored (u2 -> 1 - u2), so the same law."""
    images = torch.rand(32, 3, 20, 20, generator=torch.Generator().manual_seed(1))
    ours = flip_random_resized_crop(images, 12, torch.Generator().manual_seed(6),
                                    dataclasses.replace(training_crop(0.08, fit=False), flip_p=1.0))
    u = torch.rand(32, 4, generator=torch.Generator().manual_seed(6))
    mirrored = torch.stack([u[:, 0], u[:, 1], 1 - u[:, 2], u[:, 3]], dim=1)
    assert torch.allclose(ours, official_random_resized_crop(images.flip(-1), 12, mirrored), atol=1e-5)


def test_probe_crop_law_matches_the_official_one():
    """In distribution: ~14 % of crops overhang at area 0.08-1 (analytically 14.2 %), with the official
    area, aspect-ratio and centre laws; ``crop_fit`` removes every overhang and keeps the area law."""
    n = 100_000
    u = torch.rand(n, 4, generator=torch.Generator().manual_seed(11))
    official = official_overhang(u).float().mean().item()
    a = np.linspace(0.08, 1, 100_001)
    analytic = 2 * np.clip((math.log(4 / 3) + np.log(a)) / (2 * math.log(4 / 3)), 0, 1).mean()
    assert official == pytest.approx(analytic, abs=0.005) and 0.13 < analytic < 0.15

    ours = sample_crops(n, training_crop(0.08, fit=False), torch.Generator().manual_seed(12))
    assert ours.overhangs().float().mean().item() == pytest.approx(analytic, abs=0.005)
    qs = torch.tensor([0.05, 0.25, 0.5, 0.75, 0.95])
    area = 0.08 + u[:, 0] * 0.92
    aspect = torch.exp(math.log(3 / 4) + u[:, 1] * (math.log(4 / 3) - math.log(3 / 4)))
    w = torch.sqrt(area * aspect)
    centre_x = 2 * (u[:, 2] * (1 - w) + w / 2) - 1
    for mine, theirs in ((ours.area, area), (ours.width / ours.height, aspect), (ours.width, w),
                         (ours.center_x, centre_x)):
        assert torch.allclose(torch.quantile(mine, qs), torch.quantile(theirs, qs), atol=0.01)

    fit = sample_crops(n, training_crop(0.08, fit=True), torch.Generator().manual_seed(12))
    assert not fit.overhangs().any()
    assert torch.allclose(torch.quantile(fit.area, qs), torch.quantile(area, qs), atol=0.01)


# -- 6. test and real-image preprocessing: bilinear resize 256 + centre crop, as torchvision's defaults ---


SIZES = [(300, 417), (500, 333), (257, 256), (640, 481), (256, 256)]


def official_test_transform(image: Image.Image) -> torch.Tensor:
    """The official test split: Resize(256) (torchvision's default, bilinear), CenterCrop(224)."""
    return transforms.Compose([transforms.Resize(256), transforms.CenterCrop(224), transforms.ToTensor()])(image)


def official_train_centre(image: Image.Image) -> torch.Tensor:
    """The official training images of the baselines: Resize(256), CenterCrop(256)."""
    return transforms.Compose([transforms.Resize(256), transforms.CenterCrop(256), transforms.ToTensor()])(image)


def test_every_backbone_resizes_bilinearly_by_default():
    for name in BACKBONES:
        spec = BACKBONES.get(name)
        if hasattr(spec, "interpolation"):  # a registered BackboneSpec
            assert spec.interpolation == "bilinear", name


def test_test_and_real_image_preprocessing_is_the_official_exactly():
    backbone = patch_backbone(224, 32)
    for image in noise_images(SIZES):
        assert torch.equal(backbone.preprocess(image), official_test_transform(image))
        assert torch.equal(set_image_preprocess(backbone)(image), official_train_centre(image))
        # centroids/neighbours embed the centre 224 of the 256 centre crop: the same pixels
        assert torch.equal(official_train_centre(image)[:, 16:240, 16:240], backbone.preprocess(image))
    bicubic = patch_backbone(224, 32, interpolation="bicubic")  # the option keeps the old resize
    image = noise_images([(300, 417)])[0]
    assert not torch.equal(bicubic.preprocess(image), official_test_transform(image))


def test_interpolation_is_a_recorded_backbone_option():
    spec = BACKBONES.get("tiny_vit")
    default, bicubic = spec.build(), spec.build(interpolation="bicubic")
    assert default.identity.interpolation == "bilinear" and bicubic.identity.interpolation == "bicubic"
    assert bicubic.preprocess.interpolation == "bicubic"
    assert default.identity.key() != bicubic.identity.key()  # so cache keys and result rows differ
    with pytest.raises(ValueError, match="interpolation"):
        spec.build(interpolation="nearest")


def official_centroid(images: list[Image.Image], embed) -> int:
    """Official centroids of one class: embeddings of the centre 224 of each Resize(256)/CenterCrop(256)
    image, their mean, the argmin of the L2 distance to it."""
    batch = torch.stack([official_train_centre(im) for im in images])[..., 16:240, 16:240]
    z = embed(batch)
    return int(torch.argmin(torch.norm(z - z.mean(0, keepdim=True), dim=1)))


def test_centroids_pick_the_official_image(tmp_path):
    images = noise_images([(300 + 7 * i, 260 + 11 * i) for i in range(10)], seed=3)
    labels = [i % 2 for i in range(10)]
    train = labelled(images, labels)
    backbone = patch_backbone(224, 32)
    synset = METHODS.get("centroids")().synthesize(train, backbone, 1, 0, ctx_for(tmp_path))
    for c in range(2):
        rows = [i for i in range(10) if labels[i] == c]
        with torch.no_grad():
            want = official_centroid([images[i] for i in rows], backbone)
        assert synset.indices[c].item() == rows[want]


# -- 8. DINOv2's position table: the official hub model's run-time op -------------------------------------


def official_dinov2_pos_embed(table: torch.Tensor, height: int, width: int, patch: int = 14) -> torch.Tensor:
    """What DINOv2's ``interpolate_pos_encoding`` adds for an input of height x width (hub defaults:
    interpolate_offset 0.1, interpolate_antialias False): the class entry unchanged; the M x M patch
    table resized bicubically by the factors ((h // p) + 0.1) / M and ((w // p) + 0.1) / M, float32."""
    n = table.shape[1] - 1
    m = int(math.sqrt(n))
    h0, w0 = height // patch, width // patch
    if n == h0 * w0 and height == width:
        return table
    grid = table[:, 1:].float().reshape(1, m, m, -1).permute(0, 3, 1, 2)
    out = F.interpolate(grid, scale_factor=((h0 + 0.1) / m, (w0 + 0.1) / m), mode="bicubic", antialias=False)
    assert out.shape[-2:] == (h0, w0)
    return torch.cat([table[:, :1].float(), out.permute(0, 2, 3, 1).reshape(1, h0 * w0, -1)], dim=1)


def bicubic_by_hand(grid: np.ndarray, out: int, step: float) -> np.ndarray:
    """Bicubic resampling written out (Keys kernel, a = -0.75, edge pixels repeated) at the source
    positions (i + 0.5) * step - 0.5: what ``F.interpolate`` does with a scale factor 1 / step."""
    def weights(t: float) -> np.ndarray:
        a = -0.75
        d = np.array([1 + t, t, 1 - t, 2 - t])
        near = ((a + 2) * d - (a + 3)) * d * d + 1
        far = ((a * d - 5 * a) * d + 8 * a) * d - 4 * a
        return np.where(d <= 1, near, far)

    m = grid.shape[0]
    src = (np.arange(out) + 0.5) * step - 0.5
    base = np.floor(src).astype(int)
    rows = np.zeros((out, m))
    for i, (b, s) in enumerate(zip(base, src, strict=True)):
        for k, wk in zip(range(b - 1, b + 3), weights(s - b), strict=True):
            rows[i, min(max(k, 0), m - 1)] += wk
    return np.einsum("im,mnd,jn->ijd", rows, grid, rows)


def test_dinov2_reference_is_bicubic_at_the_offset_scale():
    """The reference's op, checked against bicubic resampling written by hand: the source step is
    37 / 16.1, not 37 / 16 (what resizing to 16 x 16 would use)."""
    table = torch.randn(1, 1 + 37 * 37, 3, generator=torch.Generator().manual_seed(0))
    got = official_dinov2_pos_embed(table, 224, 224)[0, 1:].reshape(16, 16, 3).numpy()
    grid = table[0, 1:].reshape(37, 37, 3).numpy().astype(np.float64)
    assert np.allclose(got, bicubic_by_hand(grid, 16, 37 / 16.1), atol=1e-5)
    assert not np.allclose(got, bicubic_by_hand(grid, 16, 37 / 16), atol=1e-3)


@pytest.fixture(scope="module")
def dinov2_one_block(tmp_path_factory):
    """A one-block DINOv2 weight file with the real key names and the 37 x 37 table, and the spec."""
    from benchmark.backbones import DINOV2_VITB14, save_state_dict_file
    from tests.test_paper_backbones import random_state_dict

    path = tmp_path_factory.mktemp("dinov2") / "dinov2_one_block.safetensors"
    state = random_state_dict("dinov2_vitb14", depth=1)
    save_state_dict_file(state, path)
    yield dataclasses.replace(DINOV2_VITB14, model_kwargs={"depth": 1}), path, state["pos_embed"]
    path.unlink(missing_ok=True)


def test_dinov2_position_table_is_the_official_one(dinov2_one_block):
    spec, path, table = dinov2_one_block
    assert table.shape == (1, 1 + 37 * 37, 768)
    official = spec.build(weights=path)  # 224 px, pos_embed="official" by default
    want = official_dinov2_pos_embed(table, 224, 224)
    assert torch.allclose(official.model.pos_embed, want, atol=1e-6)
    assert official.identity.architecture.endswith("+pos_embed=official")
    kept = spec.build(weights=path, pos_embed="timm")  # the option keeps timm's load-time resampling
    assert kept.identity.architecture.endswith("+pos_embed=timm")
    assert (kept.model.pos_embed - want).abs().max() > 1e-3
    assert official.identity.key() != kept.identity.key()
    x = torch.rand(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert not torch.allclose(official(x), kept(x), atol=1e-5)
    with pytest.raises(ValueError, match="pos_embed"):
        spec.build(weights=path, pos_embed="nearest")


# -- 7. neighbours: the centre crop of the distilled image, argmax without uniqueness ---------------------


def official_neighbor_embedding(images: torch.Tensor, backbone: Backbone) -> torch.Tensor:
    """Official: the distilled 256 px images, normalised, centre-cropped to 224 (not resized), embedded."""
    normalised = (images - torch.tensor(IMAGENET[0]).view(1, 3, 1, 1)) / torch.tensor(IMAGENET[1]).view(1, 3, 1, 1)
    return backbone.features(normalised[..., 16:240, 16:240])


def official_neighbors(distilled: torch.Tensor, reals: torch.Tensor) -> torch.Tensor:
    """Official: for each distilled embedding on its own, the argmax-cosine real embedding."""
    return torch.argmax(F.normalize(reals, dim=1) @ F.normalize(distilled, dim=1).T, dim=0)


def test_neighbors_embed_the_centre_crop_of_distilled_images():
    from baselines.neighbors import embed_images

    backbone = patch_backbone(224, 32)
    images = torch.rand(3, 3, 256, 256, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        want = official_neighbor_embedding(images, backbone).double()
    got = embed_images(backbone, images, 2)
    assert torch.allclose(got, want, atol=1e-5)


class ColourFeatures:
    """A feature source that returns given features for training rows."""

    def __init__(self, feats: torch.Tensor) -> None:
        self.feats = feats

    def __call__(self, backbone, data, indices=None, preprocess=None, autocast=None):
        return self.feats if indices is None else self.feats[torch.as_tensor(indices)]


def test_neighbors_take_each_argmax_without_uniqueness(tmp_path):
    """Three distilled images of class 0 whose nearest real image is the same: all three take it."""
    g = torch.Generator().manual_seed(0)
    colours = torch.tensor([[0.9, 0.1, 0.1], [0.8, 0.2, 0.1], [0.7, 0.1, 0.2], [0.1, 0.1, 0.9]])
    images = colours.view(-1, 3, 1, 1).expand(-1, 3, 8, 8).contiguous()
    labels = torch.tensor([0, 0, 0, 1])
    reals = torch.cat([torch.tensor([[1.0, 0.1, 0.1], [0.1, 1.0, 0.1], [0.1, 0.1, 1.0]]),
                       torch.rand(3, 3, generator=g)])
    real_labels = [0, 0, 0, 1, 1, 1]
    train = labelled(noise_images([(8, 8)] * 6), real_labels)
    ident = BackboneIdentity("mean", "test", "meanpool", "none", "0", 8, (0.0,) * 3, (1.0,) * 3)
    backbone = Backbone(nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten()), ident, feature_dim=3)
    ctx = dataclasses.replace(ctx_for(tmp_path, {"lgm": SyntheticSet(labels=labels, images=images)}),
                              features=ColourFeatures(reals))
    synset = METHODS.get("neighbors")().synthesize(train, backbone, 3, 0, ctx)
    want = [int(official_neighbors(colours[:3], reals[:3])[k]) for k in range(3)]
    want.append(3 + int(official_neighbors(colours[3:], reals[3:])[0]))
    assert synset.indices.tolist() == want and want[:3] == [0, 0, 0]
    unique = METHODS.get("neighbors")(unique=True).synthesize(train, backbone, 3, 0, ctx)
    assert len(set(unique.indices[:3].tolist())) == 3  # the option keeps the one-to-one matching


# -- random real: uniform per class -----------------------------------------------------------------------


def test_random_real_is_uniform_per_class():
    """Official: the first ipc images of each class in a shuffled pass, i.e. a uniform subset per class."""
    labels = [i % 3 for i in range(30)]
    train = labelled(noise_images([(4, 4)] * 30), labels)
    counts = torch.zeros(30)
    method = METHODS.get("random_real")()
    for seed in range(600):
        synset = method.synthesize(train, None, 2, seed, None)
        assert torch.equal(synset.labels.bincount(minlength=3), torch.tensor([2, 2, 2]))
        counts[synset.indices] += 1
    assert torch.allclose(counts / 600, torch.full((30,), 0.2), atol=0.06)  # each image: 2 of 10


# -- 9. full data: a new random 256 crop of every image each epoch ------------------------------------------


def official_random_crop_offsets(image: Image.Image, side: int, draws: int) -> list[int]:
    """The official full-data train transform: Resize(side) then RandomCrop(side), drawn ``draws``
    times; the left offset of each crop, found by matching it against the resized image."""
    resized = transforms.Resize(side)(image)
    whole = transforms.ToTensor()(resized)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        crops = [transforms.ToTensor()(transforms.RandomCrop(side)(resized)) for _ in range(draws)]
    return [locate(c, [whole])[2] for c in crops]


def locate(crop: torch.Tensor, resized: list[torch.Tensor]) -> tuple[int, int, int]:
    """(image, top, left) of the one place among ``resized`` that ``crop`` is an exact slice of."""
    side = crop.shape[-1]
    found = [(i, top, left) for i, r in enumerate(resized)
             for top in range(r.shape[-2] - side + 1) for left in range(r.shape[-1] - side + 1)
             if torch.equal(r[:, top:top + side, left:left + side], crop)]
    assert len(found) == 1, f"the crop is {len(found)} slices of the resized images, not one"
    return found[0]


@pytest.fixture(scope="module")
def full_world(tmp_path_factory):
    """Wide images (short side resized to 18 for a 16 px backbone: 30 x 18, so 13 crop positions)."""
    images = noise_images([(40, 24)] * 8, seed=9)
    train = labelled(images, [i % 2 for i in range(8)], name="wide")
    test = labelled(noise_images([(40, 24)] * 4, seed=10), [0, 1, 0, 1], name="wide", split="test")
    ident = BackboneIdentity("tiny", "test", "pool", "none", "0", 16, IMAGENET[0], IMAGENET[1])
    backbone = Backbone(nn.Sequential(nn.AdaptiveAvgPool2d(2), nn.Flatten()), ident, feature_dim=12)
    full = SyntheticSet(labels=train.labels.clone(), indices=torch.arange(8), metadata={"full_data": True})
    root = tmp_path_factory.mktemp("full")
    ctx = RunContext(device=torch.device("cpu"), features=FeatureCache(root / "f", progress=False),
                     artifact_dir=root / "a", progress=False)
    return images, train, test, backbone, full, ctx


def probe_crops(monkeypatch, probe: PaperProbe, world, data: LabeledImages | None = None) -> list[torch.Tensor]:
    """The 18 px images the probe trains on, before its flip + random resized crop."""
    images, train, test, backbone, full, ctx = world
    seen = []
    real = paper_module.flip_random_resized_crop

    def spy(x, size, generator, spec=None):
        seen.extend(x.clone())
        return real(x, size, generator, spec)

    monkeypatch.setattr(paper_module, "flip_random_resized_crop", spy)
    (result,) = probe.evaluate(full, data or train, test, backbone, [0], ctx)
    seen.append(result.extra["train_crop"])
    return seen


def test_full_data_takes_a_random_crop_per_epoch_like_the_official_loader(monkeypatch, full_world):
    images = full_world[0]
    epochs = 60
    crops = probe_crops(monkeypatch, PaperProbe(full_data_epochs=epochs), full_world)
    assert crops.pop() == "random"
    resized = [transforms.ToTensor()(transforms.Resize(18)(im)) for im in images]
    assert all(r.shape == (3, 18, 30) for r in resized)
    # every training image is an exact slice of a resized image (a crop, not a resize), each image once
    # per epoch; the crop positions change from epoch to epoch
    where = [locate(x, resized) for x in crops]
    assert len(where) == epochs * 8 and sorted(i for i, _, _ in where) == sorted(list(range(8)) * epochs)
    offsets = [left for _, _, left in where]
    ours = np.bincount(offsets, minlength=13) / len(offsets)
    theirs = np.bincount(official_random_crop_offsets(images[0], 18, 600), minlength=13) / 600
    assert ours.min() > 0 and theirs.min() > 0  # every position occurs: not a fixed crop
    assert np.abs(ours - 1 / 13).max() < 0.045 and np.abs(theirs - 1 / 13).max() < 0.045  # both uniform


def test_full_data_centre_crop_option_and_spawrious(monkeypatch, full_world):
    images, train = full_world[0], full_world[1]
    centre = transforms.ToTensor()(transforms.CenterCrop(18)(transforms.Resize(18)(images[0])))
    crops = probe_crops(monkeypatch, PaperProbe(full_data_epochs=3, full_data_crop="center"), full_world)
    assert crops.pop() == "center"
    assert sum(torch.equal(x, centre) for x in crops) == 3  # image 0, once per epoch, always the centre
    # the official Spawrious loader centre-crops its training split: "auto" follows it
    spawrious = dataclasses.replace(train, name="spawrious_o2o_hard")
    crops = probe_crops(monkeypatch, PaperProbe(full_data_epochs=3), full_world, spawrious)
    assert crops.pop() == "center"
    assert sum(torch.equal(x, centre) for x in crops) == 3
    with pytest.raises(ValueError, match="full_data_crop"):
        PaperProbe(full_data_crop="middle")


def test_full_data_random_crops_decoded_once_or_per_batch_agree(full_world):
    _, train, test, backbone, full, ctx = full_world
    a = PaperProbe(full_data_epochs=3).evaluate(full, train, test, backbone, [1], ctx)[0]
    b = PaperProbe(full_data_epochs=3, preload_max_bytes=0).evaluate(full, train, test, backbone, [1], ctx)[0]
    assert a.extra["final_train_loss"] == pytest.approx(b.extra["final_train_loss"], abs=1e-6)


# -- 11. spread: the population std beside the paper's numbers ----------------------------------------------


def official_spread(values: list[float]) -> float:
    """The official scripts report ``np.std`` of the per-seed accuracies: the population std."""
    return float(np.std(values))


def test_paper_tables_show_the_population_std_and_say_so():
    values = [79.0, 80.0, 82.0]
    rows = []
    for suite in ("imagenet100", "cross_model"):  # the same measurement twice: pooled, it counts once
        for seed, v in enumerate(values):
            row = {c: None for c in COLUMNS}
            row.update(suite=suite, dataset="imagenet100", method="lgm", distill_backbone="bb", eval_backbone="bb",
                       ipc=1, method_seed=0, probe_seed=seed, protocol="paper", top1=v, top5=v, status="ok",
                       error="", artifact="", cell_id="", eval_seconds=1.0)
            rows.append(row)
    frame = pd.DataFrame(rows, columns=COLUMNS)
    agg = aggregate(frame[frame["suite"] == "imagenet100"])
    assert agg.loc[0, "std"] == pytest.approx(float(np.std(values, ddof=1)))  # suite tables: sample std
    assert agg.loc[0, "std_pop"] == pytest.approx(official_spread(values))
    (table,) = paper_tables(frame, PaperNumbers.empty())
    cell = table.grid.cell("lgm", "bb")
    assert cell.n == 3 and cell.std == pytest.approx(official_spread(values))
    assert "ddof 0" in table.caption
