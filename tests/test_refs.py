"""Backbones and datasets by reference: the registry's resolvers, the timm:/open_clip:/hf: and
folder:/parquet:/hub: factories, and what they record."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from benchmark.backbones.paper import WeightsUnavailableError
from benchmark.data.spec import DatasetError
from benchmark.hashing import path_safe
from benchmark.registry import BACKBONES, DATASETS, Registry, RegistryError
from benchmark.suites import Cell

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = "vit_tiny_patch16_224"


# -- helpers other test modules use ---------------------------------------------------------------------
def write_image_folder(root: Path, dataset: str = "smoke_tiny") -> Path:
    """``root/{train,test}/<class>/<n>.png`` from a bundled dataset ('/' in class names written '_')."""
    entry = DATASETS.get(dataset)
    for split in ("train", "test"):
        data = entry.load(split)
        for i, (image, label) in enumerate(zip(data.dataset["image"], data.dataset["label"], strict=True)):
            folder = root / split / data.class_names[label].replace("/", "_")
            folder.mkdir(parents=True, exist_ok=True)
            image.save(folder / f"{i:04d}.png")
    return root


def tiny_timm_weights(path: Path, size: int = 32, seed: int = 1) -> Path:
    """A headless ``vit_tiny_patch16_224`` state dict (random, seeded) saved as safetensors or torch file."""
    import timm
    from safetensors.torch import save_file

    torch.manual_seed(seed)
    model = timm.create_model(TINY, pretrained=False, num_classes=0, img_size=size)
    if path.suffix == ".safetensors":
        save_file(model.state_dict(), str(path))
    else:
        torch.save(model.state_dict(), path)
    return path


# -- the registry ------------------------------------------------------------------------------------
def widgets() -> tuple[Registry, list[str]]:
    calls: list[str] = []
    reg: Registry = Registry("widget")
    reg.add("alpha", object())

    def factory(name: str, rest: str) -> str:
        calls.append(name)
        if not rest.isdigit():
            raise ValueError(f"{rest!r} is not a number")
        return f"widget {rest}"

    reg.add_resolver("num", factory)
    return reg, calls


def test_resolved_references_are_memoised_and_not_listed() -> None:
    reg, calls = widgets()
    assert reg.get("num:12") == "widget 12"
    assert "num:12" in reg and reg.get("num:12") == "widget 12"
    assert calls == ["num:12"]
    assert reg.names() == ["alpha"]


def test_a_bad_reference_says_what_is_wrong_and_is_not_in_the_registry() -> None:
    reg, _ = widgets()
    assert "num:x" not in reg
    assert reg.unknown_message("num:x") == "widget 'num:x': 'x' is not a number"
    with pytest.raises(RegistryError, match="'x' is not a number"):
        reg.get("num:x")


def test_an_unknown_prefix_names_the_known_ones_and_a_close_match() -> None:
    reg, _ = widgets()
    message = reg.unknown_message("nmu:1")
    assert "unknown widget reference prefix 'nmu:'" in message
    assert "Did you mean num:?" in message and "Known prefixes: num:..." in message
    assert "(or a reference: num:...)" in reg.unknown_message("alpah")


# -- backbones ---------------------------------------------------------------------------------------
def test_timm_reference_takes_size_and_patch_from_the_name() -> None:
    spec = BACKBONES.get(f"timm:{TINY}@64")
    assert (spec.architecture, spec.input_size, spec.patch_size) == (TINY, 64, 16)
    assert BACKBONES.get(f"timm:{TINY}").input_size == 224  # the pretrained config's size


@pytest.mark.parametrize(("name", "expected"), [
    (f"timm:{TINY}@30", "must be a multiple of the patch size 16"),
    (f"timm:{TINY}@0", "bad input size '@0'"),
    (f"timm:{TINY}@big", "bad input size '@big'"),
    ("timm:vit_tiny_patch16_22", f"timm has no model 'vit_tiny_patch16_22'. Did you mean: {TINY}"),
    (f"timm:{TINY}.no_such_tag", "Invalid pretrained tag (no_such_tag)"),
    (f"timm:{TINY},wieghts=x", "bad option 'wieghts=x'"),
    (f"timm:{TINY},weights=/no/such/file.safetensors", "weight file not found: /no/such/file.safetensors"),
    ("open_clip:ViT-B-16/no_such_tag", "open_clip has no pretrained tag 'no_such_tag' for ViT-B-16"),
    ("open_clip:ViT-B-16", "names no pretrained tag"),
    ("open_clip:ViT-Q-16/openai", "open_clip has no model 'ViT-Q-16'"),
    ("hf:not-a-repo", "is not a Hub repo id"),
])
def test_bad_backbone_references(name: str, expected: str) -> None:
    assert name not in BACKBONES
    assert expected in BACKBONES.unknown_message(name)


def test_timm_reference_with_a_local_file_loads_it_strictly_and_records_its_sha256(tmp_path: Path) -> None:
    import timm

    from benchmark.hashing import sha256_file

    weights = tiny_timm_weights(tmp_path / "w.safetensors")
    backbone = BACKBONES.get(f"timm:{TINY}@32,weights={weights}").build()
    torch.manual_seed(1)
    reference = timm.create_model(TINY, pretrained=False, num_classes=0, img_size=32).eval()
    x = torch.rand(3, 3, 32, 32)
    with torch.no_grad():
        expected = reference.forward_head(reference.forward_features(backbone.prepare(x)), pre_logits=True)
        assert torch.equal(backbone(x), expected)
    identity = backbone.identity
    assert identity.weight_id == "file:w.safetensors" and identity.weight_sha256 == sha256_file(weights)
    assert identity.architecture.endswith("features=forward_features+forward_head(pre_logits=True), "
                                          "global_pool='token'")
    assert (identity.input_size, backbone.feature_dim) == (32, 192)


def test_a_weights_only_torch_file_and_a_file_of_another_size_load(tmp_path: Path) -> None:
    pt = tiny_timm_weights(tmp_path / "w.pt")
    assert BACKBONES.get(f"timm:{TINY}@32,weights={pt}").build().identity.weight_id == "file:w.pt"
    big = tiny_timm_weights(tmp_path / "w224.safetensors", size=224)  # position table resampled to 2 x 2
    assert BACKBONES.get(f"timm:{TINY}@32,weights={big}").build().feature_dim == 192


def test_a_file_with_a_classifier_drops_it(tmp_path: Path) -> None:
    import timm
    from safetensors.torch import save_file

    model = timm.create_model(TINY, pretrained=False, num_classes=7, img_size=32)
    save_file(model.state_dict(), str(tmp_path / "w.safetensors"))
    assert BACKBONES.get(f"timm:{TINY}@32,weights={tmp_path / 'w.safetensors'}").build().feature_dim == 192


def test_timm_reference_offline_and_not_cached_gives_the_paper_backbones_message(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    import huggingface_hub.constants as constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(WeightsUnavailableError, match="hf download timm/vit_tiny_patch16_224"):
        BACKBONES.get(f"timm:{TINY}@32").build()


def test_open_clip_reference_offline_and_not_cached_gives_the_paper_backbones_message(monkeypatch, tmp_path) -> None:
    import huggingface_hub.constants as constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(WeightsUnavailableError, match="hf download timm/vit_base_patch16_clip_224.openai"):
        BACKBONES.get("open_clip:ViT-B-16-quickgelu/openai@32").build()


def test_hf_reference_offline_and_not_cached_names_the_config_it_needs(monkeypatch, tmp_path) -> None:
    import huggingface_hub.constants as constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(WeightsUnavailableError, match="hf download timm/resnet18.a1_in1k open_clip_config.json"):
        BACKBONES.get("hf:timm/resnet18.a1_in1k@64").build()


def test_reference_names_make_short_file_names() -> None:
    name = f"timm:{TINY}@32,weights=/some/long/path/to/the/weights.safetensors"
    cell = Cell("s", "folder:/data/images", "centroids", name, name, 1, 0, (3407,), "fast", "h")
    assert "/" not in cell.cell_id and len(cell.cell_id) < 200
    assert path_safe("effnet_lite0") == "effnet_lite0"
    assert path_safe("folder:/a/b") != path_safe("folder:/a-b")  # the hash tells them apart


# -- datasets ----------------------------------------------------------------------------------------
def test_folder_reference_loads_the_folder_with_its_classes(tmp_path: Path) -> None:
    write_image_folder(tmp_path / "imgs")
    spec = DATASETS.get(f"folder:{tmp_path / 'imgs'}")
    train, test = spec.load("train"), spec.load("test")
    assert (len(train), len(test)) == (64, 32)
    assert train.class_names == ["Bag", "Sneaker", "T-shirt_top", "Trouser"]
    assert torch.bincount(train.labels).tolist() == [16, 16, 16, 16]


def test_parquet_mirror_has_the_registered_entrys_fingerprint(tmp_path: Path) -> None:
    entry = DATASETS.get("smoke_tiny")
    for split in ("train", "test"):
        data = entry.load(split)
        (tmp_path / "data").mkdir(exist_ok=True)
        data.dataset.to_parquet(str(tmp_path / "data" / f"{split}-00000-of-00001.parquet"))
    mirror = DATASETS.get(f"parquet:{tmp_path}")
    for split in ("train", "test"):
        assert mirror.load(split).fingerprint == entry.load(split).fingerprint


@pytest.mark.parametrize(("layout", "expected"), [
    ("no_test", "no 'test' split folder"),
    ("empty_class", "class folder(s) 'Empty' of split 'train'"),
    ("other_classes", "only in train: 'Bag'; only in test: 'Purse'"),
])
def test_bad_image_folders(tmp_path: Path, layout: str, expected: str) -> None:
    root = tmp_path / "imgs"
    for split, classes in (("train", ["Bag", "Coat"]), ("test", ["Bag", "Coat"])):
        for c in classes:
            (root / split / c).mkdir(parents=True)
            (root / split / c / "0.png").write_bytes(b"")
    if layout == "no_test":
        for f in (root / "test").rglob("*.png"):
            f.unlink()
        for d in sorted((root / "test").iterdir()):
            d.rmdir()
        (root / "test").rmdir()
    elif layout == "empty_class":
        (root / "train" / "Empty").mkdir()
    else:
        (root / "test" / "Bag").rename(root / "test" / "Purse")
    assert expected in DATASETS.unknown_message(f"folder:{root}")


def test_bad_dataset_references(tmp_path: Path) -> None:
    assert "directory not found: nowhere" in DATASETS.unknown_message("folder:nowhere")
    assert "no 'train', 'test' split among the parquet files" in DATASETS.unknown_message(f"parquet:{tmp_path}")
    assert "is not a Hub dataset id" in DATASETS.unknown_message("hub:just_a_name")
    hub = DATASETS.get("hub:some-org/some_data/cfg")
    assert (hub.source.hub_id, hub.source.config) == ("some-org/some_data", "cfg")


def test_hub_reference_offline_says_how_to_get_it(monkeypatch) -> None:
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    with pytest.raises(DatasetError, match="could not be loaded from Hub dataset no-such-org/no_such_data"):
        DATASETS.get("hub:no-such-org/no_such_data").load("train")
