"""Parity of the distillation side with the official LGM code, op by op.

Each ``official_*`` function below is our own reference, written from reading the official code (its
augmentation ops, pyramid, colour matrix, loop and loader); none of it is copied. Deterministic ops must
agree exactly (to float rounding); random ops agree exactly given the same draws, and in distribution.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from test_lgm import toy_backbone, toy_config, toy_train
from torch import Tensor, nn

from benchmark.augment import CropParams, CropSpec, apply_crops, sample_crops
from method.augment import AugmentSpec, augment
from method.config import LGMConfig
from method.distill import Distiller
from method.gradients import head_gradient, matching_loss
from method.pyramid import COLOR_CORRELATION, GrowthSchedule, PyramidImages
from method.real import EpochBatches, RealImages

pytestmark = pytest.mark.usefixtures("one_thread")


# -- references, from reading the official code ----------------------------------------------------------

def official_crop_theta(u: Tensor, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3)) -> Tensor:
    """The official random resized crop's affine maps from its four uniforms per image (no clamping)."""
    s = u[:, 0] * (scale[1] - scale[0]) + scale[0]
    r = torch.exp(u[:, 1] * (math.log(ratio[1]) - math.log(ratio[0])) + math.log(ratio[0]))
    w, h = torch.sqrt(s * r), torch.sqrt(s / r)
    x1, y1 = u[:, 2] * (1 - w), u[:, 3] * (1 - h)
    theta = torch.zeros(len(u), 2, 3)
    theta[:, 0, 0], theta[:, 1, 1] = w, h
    theta[:, 0, 2], theta[:, 1, 2] = (x1 + w / 2 - 0.5) * 2, (y1 + h / 2 - 0.5) * 2
    return theta


def official_crop(images: Tensor, size: int, u: Tensor) -> Tensor:
    theta = official_crop_theta(u)
    grid = F.affine_grid(theta, [len(images), images.shape[1], size, size], align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def official_flip(images: Tensor, flip: Tensor) -> Tensor:
    out = images.clone()
    out[flip] = torch.flip(images[flip], dims=[3])
    return out


def official_noise(images: Tensor, mean: float, std: float, p: float, gen: torch.Generator) -> Tensor:
    apply = torch.rand(len(images), generator=gen) < p
    noise = torch.randn(images.shape, generator=gen) * std + mean
    return images + apply.float().view(-1, 1, 1, 1) * noise


def official_decorrelate(v: Tensor) -> Tensor:
    """Pixels as rows (b h w, c) times the normalised matrix's transpose."""
    m = torch.tensor(COLOR_CORRELATION)
    m = m / torch.max(torch.linalg.norm(m, dim=0))
    b, c, h, w = v.shape
    rows = v.permute(0, 2, 3, 1).reshape(-1, c) @ m.T
    return rows.reshape(b, h, w, c).permute(0, 3, 1, 2)


class OfficialPyramid:
    """Levels kept finest first, as the official pyramid keeps them."""

    def __init__(self, levels_coarse_first: list[Tensor], syn_res: int, init: str = "noise") -> None:
        self.pyramid = [t.detach().clone() for t in reversed(levels_coarse_first)]
        self.syn_res, self.init = syn_res, init

    def extend(self, gen: torch.Generator) -> None:
        old_len, new_len = len(self.pyramid), len(self.pyramid) + 1
        new_res = min(self.pyramid[0].shape[-1] * 2, self.syn_res)
        n = self.pyramid[-1].shape[0]
        self.pyramid = [p * old_len / new_len for p in self.pyramid]
        noise = torch.randn((n, 3, new_res, new_res), generator=gen)  # drawn in both modes, as we do
        if self.init == "zero":
            new = torch.stack([F.interpolate(p, (new_res, new_res), mode="bilinear", antialias=False)
                               for p in self.pyramid]).sum(0) / old_len
        else:
            new = noise / new_len
        self.pyramid.insert(0, new)

    def decode(self, decorrelate: bool = True) -> Tensor:
        total = torch.stack([F.interpolate(p, (self.syn_res, self.syn_res), mode="bilinear", antialias=False)
                             for p in self.pyramid]).sum(0)
        if decorrelate:
            total = official_decorrelate(total)
        return torch.sigmoid(2 * total)


def official_loop_schedule(iterations: int, extent: int, levels_max: int) -> tuple[int, list[int], list[int]]:
    """(updates, 0-indexed updates before which the pyramid grew, levels during each update)."""
    levels, grew, during = 1, [], []
    for step in range(0, iterations + 1):
        if (step - 1) % extent == 0 and step > 1 and levels < levels_max:
            levels += 1
            grew.append(step)
        during.append(levels)
    return iterations + 1, grew, during


def official_match_loss(z_real: Tensor, y_real: Tensor, z_syn: Tensor, y_syn: Tensor, weight: Tensor) -> Tensor:
    """Autograd gradients of CE through an nn.Linear head (bias 0), flattened [W; b], one cosine."""
    fc = nn.Linear(weight.shape[1], weight.shape[0])
    with torch.no_grad():
        fc.weight.copy_(weight)
        fc.bias.zero_()
    g_real = torch.autograd.grad(F.cross_entropy(fc(z_real), y_real), [fc.weight, fc.bias])
    g_real = torch.cat([g.detach().flatten() for g in g_real])
    g_syn = torch.autograd.grad(F.cross_entropy(fc(z_syn), y_syn), [fc.weight, fc.bias], create_graph=True)
    g_syn = torch.cat([g.flatten() for g in g_syn])
    return 1 - F.cosine_similarity(g_real, g_syn, dim=0)


# -- crop, flip, noise -------------------------------------------------------------------------------

def test_crop_equals_the_official_op_given_the_same_uniforms():
    images = torch.rand(64, 3, 20, 20)
    ours = apply_crops(images, sample_crops(64, CropSpec(flip_p=0.0), torch.Generator().manual_seed(5)), 12)
    u = torch.rand(64, 4, generator=torch.Generator().manual_seed(5))  # our sampler's first draw
    torch.testing.assert_close(ours, official_crop(images, 12, u), atol=1e-5, rtol=0)  # centre: other rounding


def test_flip_then_crop_is_our_mirrored_crop_with_the_centre_mirrored():
    images = torch.rand(8, 3, 16, 16)
    crops = sample_crops(8, CropSpec(flip_p=1.0), torch.Generator().manual_seed(1))
    ours = apply_crops(images, crops, 10)
    mirrored = CropParams(crops.area, crops.ratio, crops.width, crops.height, -crops.center_x, crops.center_y,
                          torch.zeros(8, dtype=torch.bool))
    official = apply_crops(official_flip(images, torch.ones(8, dtype=torch.bool)), mirrored, 10)
    torch.testing.assert_close(ours, official, atol=1e-6, rtol=0)  # the centre's law is symmetric


def test_crop_laws_and_overhang_match_the_official_op():
    n = 20000
    crops = sample_crops(n, CropSpec(), torch.Generator().manual_seed(0))
    theta = official_crop_theta(torch.rand(n, 4, generator=torch.Generator().manual_seed(1)))
    off_w, off_cx = theta[:, 0, 0], theta[:, 0, 2]
    off_overhang = ((off_cx.abs() + off_w > 1 + 1e-6) | (theta[:, 1, 2].abs() + theta[:, 1, 1] > 1 + 1e-6))
    ours = crops.overhangs().float().mean().item()
    assert ours == pytest.approx(off_overhang.float().mean().item(), abs=0.01)
    assert 0.12 < ours < 0.16  # about 14 % of official crops see the zero padding
    for q in (0.1, 0.5, 0.9, 0.99):
        assert torch.quantile(crops.width, q).item() == pytest.approx(torch.quantile(off_w, q).item(), abs=0.01)
        assert torch.quantile(crops.center_x, q).item() == pytest.approx(torch.quantile(off_cx, q).item(), abs=0.02)
    assert crops.width.max() > 1.1  # sides longer than the image exist, as there
    assert not sample_crops(n, CropSpec(fit=True), torch.Generator().manual_seed(0)).overhangs().any()
    assert 0.45 < crops.flip.float().mean().item() < 0.55


def test_padding_shows_black_before_normalisation():
    ones = torch.ones(4000, 3, 16, 16)
    out = augment(ones, AugmentSpec(out_size=8, noise_p=0.0), torch.Generator().manual_seed(0), torch.Generator())
    padded = (out.flatten(1).min(1).values < 1 - 1e-4).float().mean().item()
    official = official_crop(ones, 8, torch.rand(4000, 4, generator=torch.Generator().manual_seed(1)))
    assert padded == pytest.approx((official.flatten(1).min(1).values < 1 - 1e-4).float().mean().item(), abs=0.015)
    assert padded > 0.05
    fit = augment(ones, AugmentSpec(out_size=8, noise_p=0.0, crop_fit=True), torch.Generator().manual_seed(0),
                  torch.Generator())
    assert (fit < 0.5).sum() == 0  # fitted crops blend the padding into their edge pixels at most
    assert (out < 0.5).any()


@pytest.mark.parametrize("mean", [0.0, 0.5])
def test_noise_matches_the_official_law(mean):
    x = torch.full((3000, 3, 8, 8), 0.3)
    spec = AugmentSpec(out_size=8, scale=(1.0, 1.0), ratio=(1.0, 1.0), flip_p=0.0, noise_mean=mean)
    ours = augment(x, spec, torch.Generator().manual_seed(0), torch.Generator().manual_seed(1)) - x
    theirs = official_noise(x, mean, 0.2, 0.5, torch.Generator().manual_seed(2)) - x
    for delta in (ours, theirs):
        noised = delta.flatten(1).abs().sum(1) > 0
        assert noised.float().mean().item() == pytest.approx(0.5, abs=0.03)
    a, b = ours[ours.flatten(1).abs().sum(1) > 0], theirs[theirs.flatten(1).abs().sum(1) > 0]
    assert a.mean().item() == pytest.approx(b.mean().item(), abs=0.005)
    assert a.std().item() == pytest.approx(b.std().item(), abs=0.005)


# -- pyramid, colour, schedule ----------------------------------------------------------------------

@pytest.mark.parametrize("init", ["noise", "zero"])
def test_pyramid_decode_and_growth_equal_the_official_pyramid(init):
    gen = torch.Generator().manual_seed(0)
    ours = PyramidImages.create(3, 37, True, gen, torch.device("cpu"), init=init)
    if init == "zero":  # give the zero pyramid content, as training would, to make growth visible
        with torch.no_grad():
            ours.levels[0].copy_(torch.randn(3, 3, 1, 1))
    ref = OfficialPyramid(ours.levels, 37, init)
    every = GrowthSchedule(20, 1, "exact")
    ref_gen = torch.Generator().manual_seed(99)
    for update in range(1, len(ours.sizes)):
        gen.manual_seed(99 + update)
        ref_gen.manual_seed(99 + update)
        assert ours.maybe_grow(update, every, gen)
        ref.extend(ref_gen)
        torch.testing.assert_close(ours.decode(), ref.decode(), atol=1e-6, rtol=0)
    assert [t.shape[-1] for t in ours.levels] == [1, 2, 4, 8, 16, 32, 37]
    assert [t.shape[-1] for t in reversed(ref.pyramid)] == [1, 2, 4, 8, 16, 32, 37]


def test_zero_mode_growth_keeps_the_image_nearly_unchanged():
    gen = torch.Generator().manual_seed(0)
    pyr = PyramidImages.create(2, 16, False, gen, torch.device("cpu"), init="zero")
    with torch.no_grad():
        pyr.levels[0].copy_(torch.randn(2, 3, 1, 1))
    before = pyr.decode().detach()
    pyr.maybe_grow(1, GrowthSchedule(5, 1, "exact"), gen)
    torch.testing.assert_close(pyr.decode().detach(), before, atol=1e-6, rtol=0)  # a 1x1 level upsamples flat


def test_start_res_starts_with_every_level_up_to_it():
    gen = torch.Generator().manual_seed(0)
    pyr = PyramidImages.create(400, 64, False, gen, torch.device("cpu"), start_res=4)
    assert pyr.resolutions == [1, 2, 4]  # the official start: every size up to 4, each N(0, 1)/3
    for level in pyr.levels[1:]:
        assert level.std().item() == pytest.approx(1 / 3, rel=0.1)
    pyr.maybe_grow(3, GrowthSchedule(10, 2, "official"), gen)  # one growth before update 3
    assert pyr.resolutions == [1, 2, 4, 8]


def test_decorrelation_equals_the_official_pixel_rows():
    v = torch.randn(2, 3, 5, 7)
    pyr = PyramidImages([v], 7, decorrelate=True)
    torch.testing.assert_close(pyr.decode(), torch.sigmoid(2 * official_decorrelate(v)), atol=1e-6, rtol=0)


@pytest.mark.parametrize(("steps", "every"), [(5000, 200), (1000, 100), (12, 3), (7, 2)])
def test_update_count_and_growth_updates_follow_the_official_loop(steps, every):
    updates, grew, _ = official_loop_schedule(steps, every, 9)
    schedule = GrowthSchedule(steps, every, "official")
    assert schedule.updates == updates
    assert schedule.growth_updates(9) == grew
    if (steps, every) == (5000, 200):
        assert grew == [201, 401, 601, 801, 1001, 1201, 1401, 1601]
    exact = GrowthSchedule(steps, every, "exact")
    assert exact.updates == steps and exact.growth_updates(9)[:1] == [every]


def test_the_loop_runs_the_official_updates_at_the_official_levels():
    cfg = toy_config(steps=7, grow_every=2, syn_res=8)
    seen: list[int] = []
    d = Distiller(cfg, toy_train(), toy_backbone(), ipc=1, seed=0)
    d.on_step = lambda step, loss: seen.append(len(d.images.levels))
    d.run()
    updates, grew, during = official_loop_schedule(7, 2, len(d.images.sizes))
    assert len(d.loss_curve) == updates == 8
    assert seen == during
    assert d.metadata()["growth_updates"] == grew


# -- the matching loss --------------------------------------------------------------------------------

def test_matching_loss_and_its_pixel_gradient_equal_the_official_autograd_path():
    torch.manual_seed(0)
    weight = 0.01 * torch.randn(5, 12)
    z_real, y_real = torch.randn(20, 12), torch.randint(0, 5, (20,))
    z_syn, y_syn = torch.randn(10, 12, requires_grad=True), torch.arange(5).repeat(2)
    ours = matching_loss(head_gradient(z_real, y_real, weight, torch.zeros(5)).detach(),
                         head_gradient(z_syn, y_syn, weight, torch.zeros(5)))
    (g_ours,) = torch.autograd.grad(ours, z_syn)
    theirs = official_match_loss(z_real, y_real, z_syn, y_syn, weight)
    (g_theirs,) = torch.autograd.grad(theirs, z_syn)
    torch.testing.assert_close(ours, theirs, atol=1e-6, rtol=0)
    torch.testing.assert_close(g_ours, g_theirs, atol=1e-7, rtol=1e-4)


# -- real images and batches -----------------------------------------------------------------------

def test_real_images_are_the_official_bilinear_resize_and_a_random_crop():
    from torchvision import transforms

    train = toy_train(per_class=2, size=40, square=False)  # 40 x 45: a crop has 6 positions across
    real = RealImages(train, 20, interpolation="bilinear", preload=False)
    reference = transforms.Compose([transforms.Resize(20), transforms.ToTensor()])
    for row in range(len(train)):
        full = reference(train.dataset[row]["image"])  # PIL resize: bilinear with antialiasing
        got = real.batch(torch.tensor([row]), torch.Generator().manual_seed(row))[0]
        crops = [full[:, :, left:left + 20] for left in range(full.shape[-1] - 19)]
        assert any(torch.allclose(got, c, atol=1 / 255 + 1e-6) for c in crops), row
    bicubic = RealImages(train, 20, interpolation="bicubic", preload=False)
    image = train.dataset[0]["image"]
    bilinear = RealImages(train, 20, preload=False)
    assert not torch.equal(bicubic.stream.decode_spec(image), bilinear.stream.decode_spec(image))


def test_epoch_batches_are_the_official_shuffled_loader_with_drop_last():
    n, batch = 23, 5
    sampler = EpochBatches(n, batch, seed=3)
    assert sampler.per_epoch == len(torch.utils.data.DataLoader(range(n), batch_size=batch, drop_last=True))
    epochs = [torch.cat([sampler(e * 4 + k) for k in range(4)]) for e in range(3)]
    for rows in epochs:
        assert len(rows) == 20 and len(set(rows.tolist())) == 20  # no repeat within an epoch
    assert len({tuple(r.tolist()) for r in epochs}) == 3  # a new shuffle each epoch
    assert torch.equal(EpochBatches(n, batch, seed=3)(9), sampler(9))  # addressable: resumes exactly
    with pytest.raises(ValueError, match="larger than the training split"):
        EpochBatches(4, 5, seed=0)


def test_paper_defaults_are_the_official_choices():
    cfg = LGMConfig()
    assert (cfg.schedule, cfg.real_sampling, cfg.crop_fit, cfg.pyramid_start_res, cfg.init) == \
        ("official", "epoch", False, 1, "noise")


# -- project choices kept, shown to change nothing -------------------------------------------------------

def test_frozen_backbone_changes_no_image():
    """The official code leaves the backbone's requires_grad on (so its weights collect gradients it
    never uses); freezing it only saves that work."""
    cfg = toy_config(steps=3, grow_every=1)
    frozen = Distiller(cfg, toy_train(), toy_backbone(), ipc=1, seed=4)
    trainable = Distiller(cfg, toy_train(), toy_backbone(), ipc=1, seed=4)
    trainable.backbone.requires_grad_(True)
    torch.testing.assert_close(frozen.run(), trainable.run(), atol=0, rtol=0)
    assert any(p.grad is not None for p in trainable.backbone.parameters())
    assert all(p.grad is None for p in frozen.backbone.parameters())
    assert frozen.skipped_steps == 0  # the non-finite guard never fires in fp32
