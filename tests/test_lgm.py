"""Linear Gradient Matching (method/): gradients, pyramid, colour, augmentation, loop, checkpoints.

Toy backbones and toy datasets only; the whole file runs in seconds on a CPU.
"""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F
from datasets import ClassLabel, Dataset, Features
from datasets import Image as ImageFeature
from PIL import Image
from torch import nn

from benchmark.augment import CropParams, CropSpec, apply_crops, sample_crops
from benchmark.neutral import neutral_fields
from benchmark.registry import METHODS
from benchmark.types import IMAGENET_MEAN, IMAGENET_STD, Backbone, BackboneIdentity, LabeledImages, RunContext
from method import checkpoint
from method.augment import AugmentSpec, augment
from method.config import PRESETS, LGMConfig, build_config
from method.distill import Distiller
from method.gradients import head_gradient, head_gradient_autograd, matching_loss
from method.pyramid import (
    COLOR_CORRELATION,
    GrowthSchedule,
    PyramidImages,
    decorrelation_matrix,
    from_rgb,
    pyramid_resolutions,
    to_rgb,
)
from method.real import RealImages, sample_balanced, sample_indices

pytestmark = pytest.mark.usefixtures("one_thread")


# -- toys ---------------------------------------------------------------------------------------------

TOY_INPUT = 16


def toy_backbone(seed: int = 0, input_size: int = TOY_INPUT) -> Backbone:
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU(),
                          nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.ReLU(),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten())
    identity = BackboneIdentity(name="toy", library="test", architecture="toyconv", weight_id=f"seed{seed}",
                                weight_sha256="0" * 64, input_size=input_size, mean=IMAGENET_MEAN,
                                std=IMAGENET_STD, interpolation="bilinear")
    return Backbone(model, identity, feature_dim=16)


def toy_train(per_class: int = 6, size: int = 12, classes: int = 3, square: bool = True) -> LabeledImages:
    gen = torch.Generator().manual_seed(123)
    colours = torch.tensor([[220, 40, 40], [40, 200, 60], [50, 60, 230], [200, 200, 40]])[:classes]
    images, labels = [], []
    for c in range(classes):
        for _ in range(per_class):
            h, w = (size, size) if square else (size, size + 5)
            noise = torch.randint(-30, 31, (h, w, 3), generator=gen)
            pixels = (colours[c] + noise).clamp(0, 255).to(torch.uint8).numpy()
            images.append(Image.fromarray(pixels))
            labels.append(c)
    names = [f"class{c}" for c in range(classes)]
    ds = Dataset.from_dict({"image": images, "label": labels},
                           features=Features({"image": ImageFeature(), "label": ClassLabel(names=names)}))
    return LabeledImages(name="toy", split="train", dataset=ds, class_names=names, fingerprint="toy-v1")


def toy_config(**changes) -> LGMConfig:
    base = dict(steps=8, augs_per_batch=2, grow_every=2, syn_res=None, crop_res=None, checkpoint_every=0)
    base.update(changes)
    return build_config("paper", base).resolve(TOY_INPUT)


def ctx_for(tmp_path, progress=False) -> RunContext:
    return RunContext(device=torch.device("cpu"), features=lambda *a, **k: None, artifact_dir=tmp_path,
                      progress=progress)


# -- gradients ----------------------------------------------------------------------------------------

def test_closed_form_head_gradient_equals_autograd():
    gen = torch.Generator().manual_seed(0)
    z = torch.randn(12, 7, generator=gen)
    y = torch.randint(0, 5, (12,), generator=gen)
    w = 0.3 * torch.randn(5, 7, generator=gen)
    b = torch.randn(5, generator=gen)
    closed = head_gradient(z, y, w, b)
    auto = head_gradient_autograd(z, y, w, b)
    assert closed.shape == (5 * 7 + 5,)
    torch.testing.assert_close(closed, auto, rtol=1e-5, atol=1e-7)
    # the explicit formula: (softmax - onehot)^T z / M, then the bias part
    delta = (torch.softmax(z @ w.t() + b, 1) - F.one_hot(y, 5).float()) / 12
    torch.testing.assert_close(closed[:35].view(5, 7), delta.t() @ z)


def test_closed_form_second_order_term_matches_create_graph():
    gen = torch.Generator().manual_seed(1)
    z1 = torch.randn(6, 4, generator=gen, requires_grad=True)
    z2 = z1.detach().clone().requires_grad_(True)
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    w, b = 0.1 * torch.randn(3, 4, generator=gen), torch.zeros(3)
    target = torch.randn(15, generator=gen)
    matching_loss(target, head_gradient(z1, y, w, b)).backward()
    matching_loss(target, head_gradient_autograd(z2, y, w, b, create_graph=True)).backward()
    assert z1.grad.abs().sum() > 0
    torch.testing.assert_close(z1.grad, z2.grad, rtol=1e-4, atol=1e-7)


def test_matching_loss_is_one_global_cosine():
    a = torch.tensor([1.0, 0.0, 0.0, 0.0])
    assert matching_loss(a, 3 * a).item() == pytest.approx(0.0, abs=1e-6)
    assert matching_loss(a, -a).item() == pytest.approx(2.0)
    assert matching_loss(a, torch.tensor([0.0, 1.0, 0.0, 0.0])).item() == pytest.approx(1.0)


# -- pyramid and colour -------------------------------------------------------------------------------

def test_pyramid_levels_and_resolutions_at_given_steps():
    assert pyramid_resolutions(256) == [1, 2, 4, 8, 16, 32, 64, 128, 256]
    assert pyramid_resolutions(73) == [1, 2, 4, 8, 16, 32, 64, 73]
    official = GrowthSchedule(5000, 200, "official")
    gen = torch.Generator().manual_seed(0)
    pyr = PyramidImages.create(2, 256, True, gen, torch.device("cpu"))
    seen = {}
    for update in (0, 1, 200, 201, 400, 401, 1601, 1801, 5000):  # 0-indexed updates, as the official loop
        pyr.maybe_grow(update, official, gen)
        seen[update] = pyr.resolutions
    assert seen[0] == seen[1] == seen[200] == [1]
    assert seen[201] == seen[400] == [1, 2]
    assert seen[401] == [1, 2, 4]
    assert seen[1601] == seen[1801] == seen[5000] == [1, 2, 4, 8, 16, 32, 64, 128, 256]
    assert pyr.decode().shape == (2, 3, 256, 256)


def test_pyramid_growth_rescales_levels_and_appends_scaled_noise():
    gen = torch.Generator().manual_seed(0)
    every = GrowthSchedule(10, 1, "exact")  # a growth before every update
    pyr = PyramidImages.create(256, 32, False, gen, torch.device("cpu"))
    pyr.maybe_grow(2, every, gen)  # three levels: 1, 2, 4
    before = [t.detach().clone() for t in pyr.levels]
    raw_before = pyr.raw().detach()
    assert pyr.maybe_grow(3, every, gen)  # L = 3 -> 4 levels
    assert pyr.resolutions == [1, 2, 4, 8]
    for old, new in zip(before, pyr.levels[:3], strict=True):
        torch.testing.assert_close(new.detach(), old * 3 / 4)
    new_level = pyr.levels[3].detach()
    assert new_level.std().item() == pytest.approx(1 / 4, rel=0.05)
    assert new_level.mean().abs().item() < 0.02
    up = F.interpolate(new_level, size=(32, 32), mode="bilinear", align_corners=False)
    torch.testing.assert_close(pyr.raw().detach(), raw_before * 3 / 4 + up)
    assert not pyr.maybe_grow(3, every, gen)
    assert all(t.requires_grad and t.is_leaf for t in pyr.levels)


def test_decoded_images_lie_in_open_unit_interval():
    gen = torch.Generator().manual_seed(0)
    for decorrelate in (True, False):
        pyr = PyramidImages.create(4, 16, decorrelate, gen, torch.device("cpu"))
        pyr.maybe_grow(10, GrowthSchedule(10, 1, "exact"), gen)
        with torch.no_grad():
            for level in pyr.levels:
                level.mul_(3)
        x = pyr.decode()
        assert x.shape == (4, 3, 16, 16)
        assert x.min() > 0 and x.max() < 1
    torch.testing.assert_close(to_rgb(torch.zeros(1, 3, 2, 2), True), torch.full((1, 3, 2, 2), 0.5))


def test_decorrelation_matrix_normalised_by_largest_column_norm():
    raw = torch.tensor(COLOR_CORRELATION)
    m = decorrelation_matrix()
    norms = m.norm(dim=0)
    assert norms.max().item() == pytest.approx(1.0)
    assert norms.min().item() < 0.5  # only the largest column is unit
    ratio = m / raw.masked_fill(raw == 0, 1)
    assert torch.allclose(ratio[raw != 0], torch.full_like(ratio[raw != 0], 1 / raw.norm(dim=0).max()))
    v = torch.randn(2, 3, 4, 5)
    expected = torch.sigmoid(2 * torch.einsum("ij,njhw->nihw", m, v))
    torch.testing.assert_close(to_rgb(v, True), expected)


def test_grayscale_and_zero_init_knobs():
    gen = torch.Generator().manual_seed(0)
    pyr = PyramidImages.create(2, 8, True, gen, torch.device("cpu"), init="zero")
    pyr.maybe_grow(3, GrowthSchedule(10, 1, "exact"), gen)
    assert all((t == 0).all() for t in pyr.levels)
    torch.testing.assert_close(pyr.decode(), torch.full((2, 3, 8, 8), 0.5))
    v = torch.randn(2, 3, 5, 5)
    gray = to_rgb(v, True, grayscale=True)
    assert torch.equal(gray[:, 0], gray[:, 1]) and torch.equal(gray[:, 1], gray[:, 2])
    assert not torch.equal(to_rgb(v, True)[:, 0], to_rgb(v, True)[:, 1])


# -- augmentation -------------------------------------------------------------------------------------

def test_augmentation_keeps_gradients_flowing_to_pixels():
    spec = AugmentSpec(out_size=12, noise_mean=0.5)
    x = torch.rand(6, 3, 20, 20, requires_grad=True)
    out = augment(x, spec, torch.Generator().manual_seed(0), torch.Generator().manual_seed(1))
    assert out.shape == (6, 3, 12, 12)
    (out * torch.randn_like(out)).sum().backward()
    assert x.grad is not None
    assert (x.grad.flatten(1).abs().sum(1) > 0).all()
    # the synthetic images' levels get gradients through decode + augment too
    gen = torch.Generator().manual_seed(0)
    pyr = PyramidImages.create(3, 16, True, gen, torch.device("cpu"))
    pyr.maybe_grow(3, GrowthSchedule(10, 1, "exact"), gen)
    augment(pyr.decode().repeat(2, 1, 1, 1), spec, gen, gen).square().sum().backward()
    assert all(t.grad is not None and t.grad.abs().sum() > 0 for t in pyr.levels)


@pytest.mark.parametrize("scale", [(0.08, 1.0), (0.3, 0.6), (0.9, 1.0)])
def test_crop_scales_fall_inside_the_configured_range(scale):
    spec = CropSpec(scale=scale, fit=True)
    crops = sample_crops(4000, spec, torch.Generator().manual_seed(0))
    area = crops.width * crops.height
    assert area.min() >= scale[0] - 1e-6 and area.max() <= scale[1] + 1e-6
    torch.testing.assert_close(area, crops.area)
    ratio = crops.width / crops.height
    assert ratio.min() >= 3 / 4 - 1e-5 and ratio.max() <= 4 / 3 + 1e-5
    assert (crops.center_x.abs() + crops.width <= 1 + 1e-6).all()  # the crop lies inside the image
    assert (crops.center_y.abs() + crops.height <= 1 + 1e-6).all()
    if scale[1] - scale[0] > 0.5:
        assert area.min() < scale[0] + 0.05 and area.max() > scale[1] - 0.05  # the range is used
    assert 0.4 < crops.flip.float().mean() < 0.6


def test_crop_geometry_matches_slicing_and_flip():
    x = torch.arange(2 * 3 * 16 * 16, dtype=torch.float32).view(2, 3, 16, 16)
    half = torch.tensor([0.5, 0.5])
    crops = CropParams(area=half * half, ratio=torch.ones(2), width=half, height=half,
                       center_x=torch.tensor([-0.5, 0.5]), center_y=torch.tensor([-0.5, 0.5]),
                       flip=torch.tensor([False, True]))
    out = apply_crops(x, crops, 8)
    torch.testing.assert_close(out[0], x[0, :, :8, :8])  # top-left quadrant
    torch.testing.assert_close(out[1], x[1, :, 8:, 8:].flip(-1))  # bottom-right, mirrored


def test_noise_knobs_and_disabled_augmentation():
    x = torch.full((400, 3, 8, 8), 0.25)
    spec = AugmentSpec(out_size=8, scale=(1.0, 1.0), ratio=(1.0, 1.0), flip_p=0.0, noise_p=1.0, noise_sigma=0.2,
                       noise_mean=0.5)  # a whole-image crop: no padding shows
    out = augment(x, spec, torch.Generator().manual_seed(0), torch.Generator())
    assert out.mean().item() == pytest.approx(0.75, abs=0.01)
    assert out.std().item() == pytest.approx(0.2, abs=0.01)
    out = augment(x, AugmentSpec(out_size=8, noise_p=0.0), torch.Generator().manual_seed(0), torch.Generator())
    inside = out[:, :, 3:5, 3:5]  # crop centres always cover the middle of a constant image
    torch.testing.assert_close(inside, torch.full_like(inside, 0.25))
    plain = augment(torch.rand(2, 3, 10, 10), AugmentSpec(out_size=6, enabled=False), torch.Generator(),
                    torch.Generator())
    assert plain.shape == (2, 3, 6, 6)


# -- real images --------------------------------------------------------------------------------------

@pytest.mark.parametrize("square", [True, False])
def test_real_batches_identical_preloaded_or_decoded(square):
    train = toy_train(per_class=3, square=square)
    idx = torch.tensor([0, 4, 8, 2])
    pre = RealImages(train, 10, preload=True).batch(idx, torch.Generator().manual_seed(5))
    lazy = RealImages(train, 10, preload=False).batch(idx, torch.Generator().manual_seed(5))
    assert pre.shape == (4, 3, 10, 10) and pre.dtype == torch.float32
    assert pre.min() >= 0 and pre.max() <= 1
    torch.testing.assert_close(pre, lazy, rtol=0, atol=0)


def test_real_sampling_uniform_and_balanced():
    gen = torch.Generator().manual_seed(0)
    idx = sample_indices(10, 25, gen)
    assert len(idx) == 25 and set(idx[:10].tolist()) == set(range(10))  # no repeats within a pass
    labels = torch.tensor([0] * 5 + [1] * 30 + [2] * 2)
    rows = [torch.nonzero(labels == c).flatten() for c in range(3)]
    picked = sample_balanced(rows, 4, gen)
    assert torch.bincount(labels[picked], minlength=3).tolist() == [4, 4, 4]


# -- config and registration --------------------------------------------------------------------------

def test_paper_defaults_presets_and_variants():
    cfg = LGMConfig()
    assert (cfg.steps, cfg.augs_per_batch, cfg.grow_every, cfg.syn_res, cfg.crop_res, cfg.lr) == \
           (5000, 10, 200, 256, 224, 2e-3)
    assert cfg.crop_scale == (0.08, 1.0) and cfg.noise_sigma == 0.2 and cfg.noise_p == 0.5
    assert cfg.resolve(224).real_res == 256
    emb = build_config("embedded").resolve(64)
    assert (emb.crop_res, emb.syn_res, emb.real_res) == (64, 73, 73)
    assert build_config("embedded", {"crop_res": 32}).resolve(64).syn_res == 37
    assert set(PRESETS) >= {"paper", "embedded", "embedded_budget", "smoke"}
    # the default's preset is the budget one plus named options beyond the paper, nothing else
    budget, plus = build_config("embedded_budget"), build_config("embedded")
    beyond = {"real_bank", "real_bank_rows", "center_features", "init", "pyramid_max_res", "lr", "noise_mean"}
    differ = {k for k in LGMConfig.field_names() if getattr(budget, k) != getattr(plus, k)}
    assert differ == beyond
    assert (budget.real_bank, budget.center_features, budget.init, budget.pyramid_max_res) == (0, False, "noise", None)

    lgm = METHODS.get("lgm")(preset="embedded", steps=7, crop_scale=[0.2, 0.9])
    conf = lgm.config()
    assert conf["method"] == "lgm" and conf["preset"] == "embedded" and conf["steps"] == 7
    assert conf["crop_scale"] == [0.2, 0.9] and conf["noise_mean"] == PRESETS["embedded"]["noise_mean"]
    assert METHODS.get("lgm")().config()["noise_mean"] == LGMConfig().noise_mean == 0.5  # paper-time default
    # every field that can change a number is in the cell's identity; micro_batch (memory only) is not,
    # and checkpoint_every (cadence only) is held at the preset's value
    assert set(LGMConfig.field_names()) - neutral_fields(LGMConfig) <= set(conf)
    assert neutral_fields(LGMConfig) == {"micro_batch", "checkpoint_every"} and "micro_batch" not in conf
    assert conf["checkpoint_every"] == PRESETS["embedded"]["checkpoint_every"]
    json.dumps(conf)
    assert METHODS.get("lgm")().config()["steps"] == 5000
    assert METHODS.get("lgm_no_decorrelate")().config()["decorrelate"] is False
    assert METHODS.get("lgm_no_pyramid")().config()["parameterization"] == "pixel"
    assert METHODS.get("lgm_no_augment")().config()["augment"] is False
    with pytest.raises(ValueError, match="preset"):
        METHODS.get("lgm")(preset="huge")
    with pytest.raises(ValueError, match="fixes"):
        METHODS.get("lgm_no_pyramid")(parameterization="pyramid")
    with pytest.raises(ValueError, match="known options"):
        METHODS.get("lgm")(stepz=3)


# -- the loop -----------------------------------------------------------------------------------------

def test_meta_loss_falls_on_a_tiny_problem():
    cfg = toy_config(steps=20, grow_every=4, lr=0.05, augs_per_batch=2, noise_p=0.0)
    d = Distiller(cfg, toy_train(), toy_backbone(), ipc=1, seed=0)
    d.run()
    curve = d.loss_curve
    assert len(curve) == 21 and all(math.isfinite(v) for v in curve)  # the official loop: steps + 1
    first, last = sum(curve[:5]) / 5, sum(curve[-5:]) / 5
    assert last < 0.6 * first, (first, last)


def test_same_seed_same_images_other_seed_other_images():
    train, cfg = toy_train(), toy_config(steps=5)
    runs = [Distiller(cfg, train, toy_backbone(), ipc=1, seed=s).run() for s in (3, 3, 4)]
    assert torch.equal(runs[0], runs[1])
    assert not torch.allclose(runs[0], runs[2])


class Killed(RuntimeError):
    pass


def test_killed_run_resumes_from_checkpoint_to_identical_images(tmp_path):
    train = toy_train()
    cfg = toy_config(steps=8, grow_every=2, checkpoint_every=3)
    full_dir, killed_dir = tmp_path / "full", tmp_path / "killed"
    reference = Distiller(cfg, train, toy_backbone(), ipc=2, seed=7, artifact_dir=full_dir).run()

    backbone = toy_backbone()
    calls = {"n": 0}

    def dying(module, args):
        calls["n"] += 1
        if calls["n"] == 2 * 5 + 1:  # first forward of step 6: last checkpoint is step 3
            raise Killed

    hook = backbone.register_forward_pre_hook(dying)
    with pytest.raises(Killed):
        Distiller(cfg, train, backbone, ipc=2, seed=7, artifact_dir=killed_dir).run()
    hook.remove()
    assert torch.load(killed_dir / checkpoint.FILENAME, weights_only=True)["state"]["step"] == 3

    resumed = Distiller(cfg, train, toy_backbone(), ipc=2, seed=7, artifact_dir=killed_dir)
    images = resumed.run()
    assert resumed.resumed_from == 3 and resumed.step_done == 9  # steps + 1 updates
    assert torch.equal(images, reference)
    assert len(resumed.loss_curve) == 9

    # a checkpoint of another config is ignored, not resumed; another cadence (neutral) is resumed
    other = Distiller(toy_config(steps=8, grow_every=2, checkpoint_every=3, lr=1e-3), train, toy_backbone(),
                      ipc=2, seed=7, artifact_dir=killed_dir)
    assert not other.try_resume() and other.step_done == 0
    cadence = Distiller(toy_config(steps=8, grow_every=2, checkpoint_every=5), train, toy_backbone(),
                        ipc=2, seed=7, artifact_dir=killed_dir)
    assert cadence.try_resume() and cadence.step_done == 9


def test_synthesize_through_the_registry_writes_grid_and_metadata(tmp_path):
    train = toy_train()
    method = METHODS.get("lgm")(preset="smoke")
    synset = method.synthesize(train, toy_backbone(), 2, 0, ctx_for(tmp_path))
    syn = round(TOY_INPUT * 256 / 224)
    assert synset.images.shape == (6, 3, syn, syn)
    assert synset.labels.tolist() == [0, 0, 1, 1, 2, 2]
    assert synset.images.min() > 0 and synset.images.max() < 1
    meta = json.loads(json.dumps(synset.metadata))
    assert meta["steps_done"] == PRESETS["smoke"]["steps"] + 1 == len(meta["loss_curve"]) == meta["updates"]
    assert meta["config"]["crop_res"] == TOY_INPUT and meta["config"]["syn_res"] == syn
    assert meta["config"]["noise_mean"] == method.config()["noise_mean"]
    assert meta["backbone"]["name"] == "toy" and meta["train_fingerprint"] == "toy-v1"
    assert meta["seconds_per_step"] > 0
    assert (tmp_path / "grid.png").stat().st_size > 0
    assert Image.open(tmp_path / "grid.png").size[1] > 3 * syn
    assert (tmp_path / checkpoint.FILENAME).exists()
    # a finished checkpoint makes a second call return the same set without stepping
    again = method.synthesize(train, toy_backbone(), 2, 0, ctx_for(tmp_path))
    assert torch.equal(again.images, synset.images) and again.metadata["resumed_from"] == meta["steps_done"]


@pytest.mark.parametrize("name", ["lgm_no_decorrelate", "lgm_no_pyramid", "lgm_no_augment"])
def test_ablation_variants_run(name, tmp_path):
    synset = METHODS.get(name)(preset="smoke", steps=2).synthesize(toy_train(), toy_backbone(), 1, 0,
                                                                   ctx_for(tmp_path))
    assert synset.images.shape[0] == 3 and torch.isfinite(synset.images).all()
    assert all(math.isfinite(v) for v in synset.metadata["loss_curve"])


def test_bf16_autocast_step_runs_on_cpu():
    d = Distiller(toy_config(steps=2, precision="bf16"), toy_train(), toy_backbone(), ipc=1, seed=0)
    d.run()
    assert d.loss_scale == 1.0 and all(math.isfinite(v) for v in d.loss_curve)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_fp16_loss_scaled_steps_on_cuda():
    d = Distiller(toy_config(steps=4), toy_train(), toy_backbone(), ipc=1, seed=0, device="cuda")
    images = d.run()
    assert d.dtype == torch.float16 and d.loss_scale == 1024.0
    assert torch.isfinite(images).all() and d.skipped_steps == 0


# -- options beyond the paper: real bank, centred features, capped pyramid, real init ------------------

def test_real_bank_embeds_views_once_and_gives_the_bank_gradient():
    train = toy_train(per_class=4)
    d = Distiller(toy_config(real_bank=3), train, toy_backbone(), ipc=1, seed=0)
    z, y = d.real_bank()
    assert z.shape == (3 * len(train), 16) and torch.equal(y, train.labels.repeat(3))
    assert d.real_bank()[0] is z  # built once
    weight, bias = torch.randn(3, 16) * 0.01, torch.zeros(3)
    g, centre = d.real_gradient(weight, bias)
    assert centre is None and torch.allclose(g, head_gradient(z, y, weight, bias))
    # its own random stream: the same seed rebuilds the same bank whatever the run has drawn
    again = Distiller(toy_config(real_bank=3), train, toy_backbone(), ipc=1, seed=0)
    again.step()
    assert torch.equal(again.real_bank()[0], z)
    capped = Distiller(toy_config(real_bank=2, real_bank_rows=6), train, toy_backbone(), ipc=1, seed=0)
    zc, yc = capped.real_bank()
    assert len(zc) == 12 and torch.equal(torch.bincount(yc), torch.tensor([4, 4, 4]))


def test_centred_features_ignore_a_shared_offset():
    train = toy_train(per_class=4)
    d = Distiller(toy_config(real_bank=2, center_features=True), train, toy_backbone(), ipc=1, seed=0)
    z, y = d.real_bank()
    weight, bias = torch.randn(3, 16) * 0.01, torch.zeros(3)
    g, centre = d.real_gradient(weight, bias)
    assert torch.allclose(centre, z.mean(0))
    assert torch.allclose(g, head_gradient(z - z.mean(0), y, weight, bias))
    shifted = z + 50.0  # a large shared component changes the plain gradient but not the centred one
    assert torch.allclose(head_gradient(shifted - shifted.mean(0), y, weight, bias), g, atol=1e-5)
    assert not torch.allclose(head_gradient(shifted, y, weight, bias), head_gradient(z, y, weight, bias))


def test_pyramid_max_res_caps_the_levels_not_the_output():
    assert pyramid_resolutions(73, 32) == [1, 2, 4, 8, 16, 32]
    assert pyramid_resolutions(20, 32) == pyramid_resolutions(20) == [1, 2, 4, 8, 16, 20]
    cfg = toy_config(steps=12, grow_every=2, syn_res=20, pyramid_max_res=8)
    d = Distiller(cfg, toy_train(), toy_backbone(), ipc=1, seed=0)
    images = d.run()
    assert [t.shape[-1] for t in d.images.levels] == [1, 2, 4, 8] and images.shape[-1] == 20
    with pytest.raises(ValueError, match="pyramid_max_res"):
        toy_config(pyramid_max_res=0)


@pytest.mark.parametrize("decorrelate", [True, False])
@pytest.mark.parametrize("grayscale", [True, False])
def test_from_rgb_inverts_to_rgb(decorrelate, grayscale):
    x = torch.rand(2, 3, 5, 5, generator=torch.Generator().manual_seed(0)) * 0.9 + 0.05
    back = to_rgb(from_rgb(x, decorrelate, grayscale), decorrelate, grayscale)
    want = x.mean(1, keepdim=True).expand_as(x) if grayscale else x
    assert torch.allclose(back, want, atol=1e-5)


def test_real_init_starts_from_training_images_in_label_order():
    train = toy_train(per_class=4)
    cfg = toy_config(steps=0, schedule="exact", init="real", noise_p=0.0)  # no update: the start itself
    d = Distiller(cfg, train, toy_backbone(), ipc=2, seed=5)
    start = d.run()
    rows = torch.tensor(d.init_rows)
    assert torch.equal(train.labels[rows], torch.tensor([0, 0, 1, 1, 2, 2]))
    # the decoded start is the rows' pixels (a random crop of a resized square image: the image itself)
    real = RealImages(train, cfg.syn_res).batch(rows, torch.Generator()).clamp(0.01, 0.99)
    assert torch.allclose(start, real, atol=2e-3)
    assert len(d.images.levels) == len(d.images.sizes)  # every level present: no growth left
    assert d.metadata()["init_rows"] == d.init_rows
