"""The paper's five ViT-B backbones, built from local weight files (nothing is downloaded).

Each entry is built once (module-scoped cache) at a small input size from a random state dict of its
real architecture, saved the way the real weights are stored (full-size position tables; the MoCo file
with its ``head.*`` keys), so the load path is the real one: timm/open_clip loaders, strict key checks,
position-table resampling, sha256 of the file.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

from benchmark.backbones import (  # noqa: E402
    MOCOV3_VITB16,
    PAPER_BACKBONES,
    WeightsUnavailableError,
    build_backbone,
    load_state_dict_file,
    save_state_dict_file,
    sha256_file,
)
from benchmark.backbones.paper import MOCOV3_REVISION, hub_offline  # noqa: E402
from benchmark.registry import BACKBONES  # noqa: E402
from benchmark.types import IMAGENET_MEAN, IMAGENET_STD, Backbone  # noqa: E402

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclasses.dataclass(frozen=True)
class Expected:
    dim: int
    size: int  # small test input size (a multiple of the patch size)
    architecture: str  # what the identity's architecture starts with
    hub_repo: str
    hub_file: str
    native_mean: tuple[float, float, float]
    native_std: tuple[float, float, float]
    pooling: str  # "cls": CLS token after the final norm; "mean": mean of patch tokens + fc_norm; "clip"


EXPECTED = {
    "clip_vitb16": Expected(512, 64, "ViT-B-16-quickgelu", "timm/vit_base_patch16_clip_224.openai",
                            "open_clip_model.safetensors", CLIP_MEAN, CLIP_STD, "clip"),
    "dinov2_vitb14": Expected(768, 56, "vit_base_patch14_dinov2.lvd142m", "timm/vit_base_patch14_dinov2.lvd142m",
                              "model.safetensors", IMAGENET_MEAN, IMAGENET_STD, "cls"),
    "eva02_vitb14": Expected(768, 56, "eva02_base_patch14_224.mim_in22k", "timm/eva02_base_patch14_224.mim_in22k",
                             "model.safetensors", CLIP_MEAN, CLIP_STD, "mean"),
    # MoCo-v3 was trained with ImageNet mean/std (timm's config for the bare architecture says 0.5)
    "mocov3_vitb16": Expected(768, 64, "vit_base_patch16_224", "nyu-visionx/moco-v3-vit-b", "model.safetensors",
                              IMAGENET_MEAN, IMAGENET_STD, "cls"),
    "dino_vitb16": Expected(768, 64, "vit_base_patch16_224.dino", "timm/vit_base_patch16_224.dino",
                            "model.safetensors", IMAGENET_MEAN, IMAGENET_STD, "cls"),
}
POSITION_TABLES = {"pos_embed", "visual.positional_embedding"}


def random_state_dict(name: str, seed: int = 0, **model_kwargs: Any) -> dict[str, torch.Tensor]:
    """Random weights with the key names and shapes of the entry's real weight file.

    The architecture is built on the meta device (no slow random init) at its native size, so position
    tables have the real files' grid (37x37 for DINOv2, 14x14 for the others); the MoCo file keeps its
    1000-class ``head.*``, as the Hub file may. Values are slices of one shared pool of normal numbers
    (drawing ~100M fresh ones takes seconds on a small CPU); the pool's odd length keeps rows distinct.
    """
    import open_clip
    import timm

    with torch.device("meta"):
        if name == "clip_vitb16":
            skeleton = open_clip.CLIP(**{**open_clip.get_model_config("ViT-B-16-quickgelu"), **model_kwargs})
        else:
            arch = BACKBONES.get(name).architecture.split(".")[0]
            classes = 1000 if name == "mocov3_vitb16" else 0
            skeleton = timm.create_model(arch, pretrained=False, num_classes=classes, **model_kwargs)
    g = torch.Generator().manual_seed(seed)
    pool = torch.randn(1_000_003, generator=g) * 0.02
    out = {}
    for key, t in skeleton.state_dict().items():
        start = int(torch.randint(len(pool), (1,), generator=g))
        reps = (start + t.numel()) // len(pool) + 1
        value = pool.repeat(reps)[start:start + t.numel()].reshape(t.shape).clone()
        if t.ndim == 1 and key.endswith(".weight"):  # norm scales around 1
            value += 1.0
        out[key] = value
    return out


class Built:
    """Weight files and backbones, made once per module; the files are removed at the end."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.files: dict[str, Path] = {}
        self.backbones: dict[str, Backbone] = {}

    def file(self, name: str) -> Path:
        if name not in self.files:
            self.files[name] = save_state_dict_file(random_state_dict(name), self.root / f"{name}.safetensors")
        return self.files[name]

    def backbone(self, name: str) -> Backbone:
        if name not in self.backbones:
            self.backbones[name] = build_backbone(name, weights=self.file(name), input_size=EXPECTED[name].size)
        return self.backbones[name]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Built]:
    cache = Built(tmp_path_factory.mktemp("paper-weights"))
    yield cache
    for path in cache.files.values():
        path.unlink(missing_ok=True)  # hundreds of MB each


# -- registry -----------------------------------------------------------------------------------------
def test_paper_entries_registered() -> None:
    assert set(PAPER_BACKBONES) == set(EXPECTED)
    for name in PAPER_BACKBONES:
        spec = BACKBONES.get(name)
        assert spec.name == name and spec.input_size == 224 and spec.normalization == "imagenet"
        assert spec.description and "\n" not in spec.description and BACKBONES.describe(name) == spec.description
        assert spec.architecture == EXPECTED[name].architecture
    assert MOCOV3_VITB16.hub_revision == "7d091cd70772c5c0ecf7f00b5f12ca609a99d69d"
    assert BACKBONES.get("clip_vitb16").pretrained == "openai"


# -- built from a local file --------------------------------------------------------------------------
@pytest.mark.parametrize("name", PAPER_BACKBONES)
def test_builds_from_local_file_and_embeds(built: Built, name: str) -> None:
    want = EXPECTED[name]
    bb = built.backbone(name)
    x = torch.rand(2, 3, want.size, want.size)  # images in [0, 1]
    with torch.no_grad():
        f = bb.embed(x)
    assert bb.feature_dim == want.dim and f.shape == (2, want.dim)
    assert torch.isfinite(f).all() and not torch.allclose(f[0], f[1])
    file = built.file(name)
    identity = bb.identity
    assert identity.weight_sha256 == hashlib.sha256(file.read_bytes()).hexdigest() == sha256_file(file)
    assert identity.weight_id == f"file:{file.name}"
    assert identity.name == name and identity.input_size == want.size
    assert identity.architecture.startswith(want.architecture)
    assert not any(p.requires_grad for p in bb.parameters())


@pytest.mark.parametrize("name", PAPER_BACKBONES)
def test_weights_come_from_the_file(built: Built, name: str) -> None:
    """Every tensor of the model is the file's (position tables resampled to the small grid)."""
    model = built.backbone(name).model.state_dict()
    stored = load_state_dict_file(built.file(name))
    if name == "mocov3_vitb16":
        assert {k for k in stored if k.startswith("head.")} == {"head.weight", "head.bias"}
        stored = {k: v for k, v in stored.items() if not k.startswith("head.")}
    assert set(model) == set(stored)
    resampled = {k for k in model if model[k].shape != stored[k].shape}
    assert resampled <= POSITION_TABLES and resampled  # the file's grid is the 224/518 one
    grid = EXPECTED[name].size // (14 if "14" in name else 16)
    for key in resampled:
        assert model[key].shape[-2] == 1 + grid * grid
    for key in set(model) - resampled:
        assert torch.equal(model[key], stored[key]), key


@pytest.mark.parametrize("name", PAPER_BACKBONES)
def test_feature_is_the_documented_pooling(built: Built, name: str) -> None:
    bb = built.backbone(name)
    model = bb.model
    x = torch.rand(2, 3, bb.input_size, bb.input_size)
    with torch.no_grad():
        got = bb.embed(x)
        z = bb.prepare(x)
        pooling = EXPECTED[name].pooling
        if pooling == "clip":
            visual = model.visual
            assert visual.attn_pool is None and visual.pool_type == "tok"  # CLS, ln_post, projection
            assert tuple(visual.proj.shape) == (768, 512)
            want = model.encode_image(z, normalize=False)
            assert not torch.allclose(got.norm(dim=1), torch.ones(2))  # not L2-normalised
        elif pooling == "cls":
            assert model.global_pool == "token" and isinstance(model.norm, torch.nn.LayerNorm)
            assert isinstance(model.fc_norm, torch.nn.Identity)
            want = model.forward_features(z)[:, 0]  # forward_features ends with the final norm
        else:
            assert model.global_pool == "avg" and isinstance(model.fc_norm, torch.nn.LayerNorm)
            tokens = model.forward_features(z)
            want = model.fc_norm(tokens[:, model.num_prefix_tokens:].mean(1))
    assert torch.allclose(got, want, atol=1e-5)


def test_clip_uses_quickgelu(built: Built) -> None:
    from open_clip.transformer import QuickGELU

    model = built.backbone("clip_vitb16").model
    acts = [type(m) for m in model.visual.modules() if isinstance(m, (QuickGELU, torch.nn.GELU))]
    assert len(acts) == 12 and set(acts) == {QuickGELU}  # one per vision block, none plain GELU


# -- normalisation ------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", PAPER_BACKBONES)
def test_imagenet_mean_std_by_default(built: Built, name: str) -> None:
    bb = built.backbone(name)
    assert bb.identity.mean == IMAGENET_MEAN and bb.identity.std == IMAGENET_STD
    assert torch.allclose(bb.mean.flatten(), torch.tensor(IMAGENET_MEAN))
    assert torch.allclose(bb.std.flatten(), torch.tensor(IMAGENET_STD))


# one-block variants: the native mean/std follow the weights' tag, not the depth (and build in a second)
ONE_BLOCK = {
    "clip_vitb16": {"embed_dim": 16,
                    "vision_cfg": {"layers": 1, "width": 64, "head_width": 32, "patch_size": 16},
                    "text_cfg": {"context_length": 8, "vocab_size": 64, "width": 32, "heads": 2, "layers": 1}},
    "dinov2_vitb14": {"depth": 1}, "eva02_vitb14": {"depth": 1}, "dino_vitb16": {"depth": 1},
}


@pytest.mark.parametrize("name", PAPER_BACKBONES)
def test_native_mean_std_when_asked(built: Built, tmp_path: Path, name: str) -> None:
    want = EXPECTED[name]
    spec = BACKBONES.get(name)
    if name in ONE_BLOCK:
        spec = dataclasses.replace(spec, model_kwargs=ONE_BLOCK[name])
        file = save_state_dict_file(random_state_dict(name, **ONE_BLOCK[name]), tmp_path / "one.safetensors")
    else:  # MoCo builds fast at full size (no random init)
        file = built.file(name)
    bb = spec.build(weights=file, input_size=want.size, normalization="native")
    assert bb.identity.mean == pytest.approx(want.native_mean) and bb.identity.std == pytest.approx(want.native_std)
    assert torch.allclose(bb.mean.flatten(), torch.tensor(want.native_mean))
    default = spec.build(weights=file, input_size=want.size) if name in ONE_BLOCK else built.backbone(name)
    assert default.identity.mean == IMAGENET_MEAN and default.identity.std == IMAGENET_STD
    assert bb.identity.weight_sha256 == default.identity.weight_sha256 == sha256_file(file)


# -- MoCo-v3: head.* dropped, everything else strict ------------------------------------------------------
def test_mocov3_rejects_missing_and_stray_keys(built: Built, tmp_path: Path) -> None:
    stored = load_state_dict_file(built.file("mocov3_vitb16"))
    missing = dict(stored)
    del missing["blocks.3.mlp.fc1.bias"]
    path = save_state_dict_file(missing, tmp_path / "missing.safetensors")
    with pytest.raises(RuntimeError, match=r"strictly.*missing: blocks\.3\.mlp\.fc1\.bias"):
        MOCOV3_VITB16.build(weights=path, input_size=64)
    path.unlink()
    stray = dict(stored, **{"fc_norm.weight": torch.ones(768)})
    path = save_state_dict_file(stray, tmp_path / "stray.safetensors")
    with pytest.raises(RuntimeError, match=r"unexpected: fc_norm\.weight"):
        MOCOV3_VITB16.build(weights=path, input_size=64)
    path.unlink()
    with pytest.raises(ValueError, match="multiple of the patch size"):
        MOCOV3_VITB16.build(weights=built.file("mocov3_vitb16"), input_size=56)


def fake_hub_cache(root: Path, repo_id: str, filename: str, target: Path, commit: str) -> Path:
    """What a download leaves in a Hugging Face cache: snapshots/<commit>/<file> (a link to the blob)."""
    repo = root / ("models--" + repo_id.replace("/", "--"))
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    (repo / "snapshots" / commit).mkdir(parents=True)
    link = repo / "snapshots" / commit / filename
    link.symlink_to(target)
    return link


def test_mocov3_loads_from_hub_cache_at_pinned_revision(built: Built, tmp_path: Path) -> None:
    file = built.file("mocov3_vitb16")
    assert not MOCOV3_VITB16.weights_available(tmp_path)
    fake_hub_cache(tmp_path / "other", "nyu-visionx/moco-v3-vit-b", "model.safetensors", file, "f" * 40)
    assert not MOCOV3_VITB16.weights_available(tmp_path / "other")  # another revision does not count
    fake_hub_cache(tmp_path / "hub", "nyu-visionx/moco-v3-vit-b", "model.safetensors", file, MOCOV3_REVISION)
    assert MOCOV3_VITB16.weights_available(tmp_path / "hub")
    bb = MOCOV3_VITB16.build(input_size=64, cache_dir=tmp_path / "hub")
    assert bb.identity.weight_id == f"hf-hub:nyu-visionx/moco-v3-vit-b/model.safetensors@{MOCOV3_REVISION}"
    assert bb.identity.weight_sha256 == sha256_file(file)
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(bb.embed(x), built.backbone("mocov3_vitb16").embed(x))


# -- offline and absent -------------------------------------------------------------------------------
@pytest.mark.parametrize("name", PAPER_BACKBONES)
def test_weights_found_in_hub_cache(tmp_path: Path, name: str) -> None:
    want = EXPECTED[name]
    spec = BACKBONES.get(name)
    assert not spec.weights_available(tmp_path)
    blob = tmp_path / "blob"
    blob.write_bytes(b"")
    commit = MOCOV3_REVISION if name == "mocov3_vitb16" else "0123456789abcdef0123456789abcdef01234567"
    fake_hub_cache(tmp_path, want.hub_repo, want.hub_file, blob, commit)
    assert spec.weights_available(tmp_path)


@pytest.mark.parametrize("name", PAPER_BACKBONES)
def test_missing_weights_offline_say_what_and_how(tmp_path: Path, name: str) -> None:
    assert hub_offline(), "tests must run with HF_HUB_OFFLINE=1"
    want = EXPECTED[name]
    with pytest.raises(WeightsUnavailableError) as info:
        BACKBONES.get(name).build(cache_dir=tmp_path)
    message = str(info.value)
    for part in (name, want.hub_repo, want.hub_file, str(tmp_path), "HF_HOME", "weights=", "backbone_options",
                 "hf download"):
        assert part in message, (part, message)
    if name == "mocov3_vitb16":
        assert MOCOV3_REVISION in message
    assert isinstance(info.value, FileNotFoundError)
    shown = "".join(traceback.format_exception(info.value))
    assert "site-packages" not in shown  # no stack trace from huggingface_hub, timm or open_clip
