"""The feature cache: keys, disk round trip, the in-memory layer, corruption handling, atomic writes."""

from __future__ import annotations

import dataclasses
import json
import logging
import os

import numpy as np
import pytest
import torch
from datasets import ClassLabel, Dataset, Features
from datasets import Image as ImageFeature
from PIL import Image
from torch import nn

from benchmark.features import CACHE_FORMAT_VERSION, FeatureCache, indices_hash
from benchmark.types import Backbone, BackboneIdentity, LabeledImages, Preprocess

# -- toys ----------------------------------------------------------------------------------------------


class CountingNet(nn.Module):
    """Pool to 2x2, project to 8 dims; counts forward calls and rows seen."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Sequential(nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(12, 8))
        self.calls = 0
        self.rows = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        self.rows += len(x)
        return self.body(x)


def toy_identity(**changes: object) -> BackboneIdentity:
    ident = BackboneIdentity(name="toy", library="test", architecture="pool-linear", weight_id="toy-v1",
                             weight_sha256="0" * 64, input_size=16, mean=(0.5, 0.5, 0.5),
                             std=(0.25, 0.25, 0.25))
    return dataclasses.replace(ident, **changes)


def toy_backbone(**changes: object) -> Backbone:
    return Backbone(CountingNet(), toy_identity(**changes), feature_dim=8)


def toy_data(n: int = 10, split: str = "train", fingerprint: str = "fp-1", seed: int = 0) -> LabeledImages:
    rng = np.random.default_rng(seed)
    images = [Image.fromarray(rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)) for _ in range(n)]
    labels = [i % 3 for i in range(n)]
    features = Features({"image": ImageFeature(), "label": ClassLabel(names=["a", "b", "c"])})
    ds = Dataset.from_dict({"image": images, "label": labels}, features=features)
    return LabeledImages(name="toyset", split=split, dataset=ds, class_names=["a", "b", "c"],
                         fingerprint=fingerprint)


@pytest.fixture()
def data() -> LabeledImages:
    return toy_data()


def files(root):
    """The files under ``root``, less the entries' lock files (benchmark/locks.py)."""
    from benchmark.locks import is_lock_file

    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() and not is_lock_file(p))


# -- keys ----------------------------------------------------------------------------------------------


def test_key_is_stable_and_changes_with_every_input(tmp_path, data):
    cache = FeatureCache(tmp_path, progress=False)
    bb = toy_backbone()
    base = cache.key(bb, data)
    assert base == FeatureCache(tmp_path / "other").key(toy_backbone(), toy_data())  # stable
    assert len(base) == 64
    assert cache.key(bb, data, None, bb.preprocess) == base  # the default preprocessing is the backbone's
    variants = {
        "resize": cache.key(bb, data, preprocess=Preprocess(20, 16)),
        "crop": cache.key(bb, data, preprocess=Preprocess(18, 14)),
        "interpolation": cache.key(bb, data, preprocess=Preprocess(18, 16, "bicubic")),
        "weight sha": cache.key(toy_backbone(weight_sha256="1" * 64), data),
        "weight id": cache.key(toy_backbone(weight_id="toy-v2"), data),
        "input size": cache.key(toy_backbone(input_size=32), data),
        "normalisation": cache.key(toy_backbone(mean=(0.4, 0.5, 0.5)), data),
        "backbone interpolation": cache.key(toy_backbone(interpolation="bicubic"), data),
        "fingerprint": cache.key(bb, toy_data(fingerprint="fp-2")),
        "split": cache.key(bb, toy_data(split="test")),
        "indices": cache.key(bb, data, torch.tensor([0, 1, 2])),
        "index order": cache.key(bb, data, torch.tensor([2, 1, 0])),
        "index subset": cache.key(bb, data, torch.tensor([0, 1])),
    }
    assert base not in variants.values()
    assert len(set(variants.values())) == len(variants)
    assert cache.key(bb, data, [0, 1, 2]) == variants["indices"]  # list or tensor: same rows, same key
    assert indices_hash(None) == "all"


# -- round trip ----------------------------------------------------------------------------------------


def test_features_match_direct_embedding_in_requested_order(tmp_path, data):
    bb = toy_backbone()
    cache = FeatureCache(tmp_path, batch_size=3, progress=False)
    rows = torch.tensor([7, 1, 4, 4, 0])
    got = cache(bb, data, rows)
    assert bb.model.calls == 2  # 5 rows in batches of 3
    with torch.no_grad():
        want = bb.embed(data.load(rows, bb.preprocess))
    assert got.dtype == torch.float32 and got.device.type == "cpu"
    assert torch.allclose(got, want, atol=1e-6)


def test_second_call_reads_disk_without_forward(tmp_path, data):
    bb = toy_backbone()
    first = FeatureCache(tmp_path, progress=False)(bb, data)
    assert bb.model.calls > 0
    calls = bb.model.calls
    fresh = FeatureCache(tmp_path, progress=False)  # a new process: no memory layer
    again = fresh(bb, data)
    assert bb.model.calls == calls
    assert fresh.stats.disk_hits == 1 and fresh.stats.built == 0
    assert torch.equal(first, again)
    key = fresh.key(bb, data)
    feat, manifest = fresh.paths(key)
    assert feat.parent.name == key[:2] and feat.name == f"{key}.safetensors" and manifest.name == f"{key}.json"
    meta = json.loads(manifest.read_text())
    assert meta["key"] == key and meta["shape"] == [10, 8] and meta["format"] == CACHE_FORMAT_VERSION
    assert meta["dataset"] == "toyset" and meta["split"] == "train" and "created_at" in meta


def test_memory_layer_skips_disk_and_returns_copies(tmp_path, data, monkeypatch):
    bb = toy_backbone()
    cache = FeatureCache(tmp_path, progress=False)
    first = cache(bb, data)
    reads = []
    monkeypatch.setattr(FeatureCache, "_load_checked", lambda *a, **k: reads.append(1))
    expected = first.clone()
    first.mul_(0)  # callers may modify what they get
    again = cache(bb, data)
    assert reads == [] and cache.stats.memory_hits == 1
    assert torch.equal(again, expected) and expected.abs().sum() > 0  # the features, not the zeroed copy


def test_memory_layer_is_bounded(tmp_path, data):
    bb = toy_backbone()
    cache = FeatureCache(tmp_path, progress=False, memory_bytes=3 * 8 * 4)  # three rows of 8 floats
    cache(bb, data, [0, 1])
    cache(bb, data, [2])
    cache(bb, data, [3])  # evicts [0, 1]
    assert cache._memory_used <= 3 * 8 * 4 and len(cache._memory) == 2
    cache(bb, data)  # bigger than the cap: not kept
    assert len(cache._memory) == 2


def test_subset_is_sliced_from_cached_all_rows(tmp_path, data):
    bb = toy_backbone()
    whole = FeatureCache(tmp_path, progress=False)(bb, data)
    calls = bb.model.calls
    fresh = FeatureCache(tmp_path, progress=False)
    sub = fresh(bb, data, torch.tensor([5, 2]))
    assert bb.model.calls == calls and fresh.stats.sliced == 1
    assert torch.equal(sub, whole[[5, 2]])


def test_embed_images_does_not_cache(tmp_path):
    bb = toy_backbone()
    cache = FeatureCache(tmp_path, batch_size=4, progress=False)
    images = torch.rand(6, 3, 24, 24)
    out = cache.embed_images(bb, images)
    assert out.shape == (6, 8) and bb.model.calls == 2
    with torch.no_grad():
        assert torch.allclose(out, bb.embed(images), atol=1e-6)
    assert files(tmp_path) == []


def test_out_of_range_indices_raise(tmp_path, data):
    with pytest.raises(IndexError):
        FeatureCache(tmp_path, progress=False)(toy_backbone(), data, [0, 10])


# -- corruption -----------------------------------------------------------------------------------------


def _truncate(feat, manifest):
    feat.write_bytes(feat.read_bytes()[:-7])


def _flip_byte(feat, manifest):  # same size, different content
    blob = bytearray(feat.read_bytes())
    blob[-1] ^= 0xFF
    feat.write_bytes(bytes(blob))


def _edit_manifest(**changes):
    def edit(feat, manifest):
        meta = json.loads(manifest.read_text())
        meta.update(changes)
        manifest.write_text(json.dumps(meta))
    edit.__name__ = "_manifest_" + "_".join(changes)
    return edit


def _garbage_manifest(feat, manifest):
    manifest.write_text("{not json")


def _drop_manifest(feat, manifest):
    manifest.unlink()


def _drop_features(feat, manifest):
    feat.unlink()


def _garbage_features_consistent_manifest(feat, manifest):
    """A file that is not safetensors, with a manifest that agrees on size and sha: the load must fail."""
    import hashlib

    blob = b"\x00" * 64
    feat.write_bytes(blob)
    meta = json.loads(manifest.read_text())
    meta.update(size_bytes=len(blob), sha256=hashlib.sha256(blob).hexdigest())
    manifest.write_text(json.dumps(meta))


@pytest.mark.parametrize("damage", [
    _truncate, _flip_byte, _edit_manifest(key="f" * 64), _edit_manifest(shape=[10, 9]),
    _edit_manifest(sha256="0" * 64), _edit_manifest(format=CACHE_FORMAT_VERSION + 1), _garbage_manifest,
    _drop_manifest, _drop_features, _garbage_features_consistent_manifest,
], ids=lambda f: f.__name__)
def test_bad_entry_is_rebuilt_with_a_warning(tmp_path, data, damage, caplog):
    bb = toy_backbone()
    good = FeatureCache(tmp_path, progress=False)(bb, data)
    cache = FeatureCache(tmp_path, progress=False)
    feat, manifest = cache.paths(cache.key(bb, data))
    damage(feat, manifest)
    calls = bb.model.calls
    with caplog.at_level(logging.WARNING, logger="benchmark.features"):
        again = cache(bb, data)
    assert bb.model.calls > calls, "a damaged entry must be recomputed"
    assert cache.stats.rebuilt == 1
    assert any("rebuilding" in r.getMessage() for r in caplog.records)
    assert torch.allclose(again, good)
    # the rebuilt entry is good again: a third process reads it without a forward
    calls = bb.model.calls
    third = FeatureCache(tmp_path, progress=False)
    assert torch.equal(third(bb, data), again) and bb.model.calls == calls


def test_entry_with_wrong_row_count_is_rebuilt(tmp_path, data, caplog):
    """A well-formed entry whose rows do not match the split (e.g. a key collision) is not used."""
    bb = toy_backbone()
    cache = FeatureCache(tmp_path, progress=False)
    key = cache.key(bb, data)
    cache._write(key, torch.zeros(3, 8), bb, data, None, bb.preprocess)
    with caplog.at_level(logging.WARNING, logger="benchmark.features"):
        out = FeatureCache(tmp_path, progress=False)(bb, data)
    assert out.shape == (10, 8) and "rows stored" in caplog.text


# -- atomic writes ---------------------------------------------------------------------------------------


def test_writes_leave_only_the_two_files(tmp_path, data):
    bb = toy_backbone()
    cache = FeatureCache(tmp_path, progress=False)
    cache(bb, data, [1, 2])  # before the all-rows entry, else it would be sliced from memory
    cache(bb, data)
    key_all, key_sub = cache.key(bb, data), cache.key(bb, data, [1, 2])
    expected = sorted(f"{k[:2]}/{k}.{ext}" for k in (key_all, key_sub) for ext in ("json", "safetensors"))
    assert files(tmp_path) == expected  # no temp files


def test_failed_write_leaves_no_temp_and_no_manifest(tmp_path, data, monkeypatch, caplog):
    bb = toy_backbone()
    real_replace = os.replace

    def failing_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", failing_replace)
    cache = FeatureCache(tmp_path, progress=False)
    with caplog.at_level(logging.WARNING, logger="benchmark.features"):
        out = cache(bb, data)  # still served
    assert out.shape == (10, 8) and "not cached" in caplog.text
    assert files(tmp_path) == []
    monkeypatch.setattr(os, "replace", real_replace)
    # a write that dies after the features but before the manifest leaves an entry that is rebuilt
    calls = []

    def replace_features_only(src, dst):
        calls.append(dst)
        if str(dst).endswith(".json"):
            raise OSError("killed")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace_features_only)
    FeatureCache(tmp_path, progress=False)(bb, data)
    assert [str(c).rsplit(".", 1)[-1] for c in calls] == ["safetensors", "json"]  # features first
    monkeypatch.setattr(os, "replace", real_replace)
    assert all(not f.endswith("tmp") for f in files(tmp_path))
    fresh = FeatureCache(tmp_path, progress=False)
    fresh(bb, data)
    assert fresh.stats.rebuilt == 1


def test_the_same_content_under_another_name_shares_entries(tmp_path, data):
    """A local mirror or a reference (another dataset name, same content fingerprint) reuses the entry."""
    cache = FeatureCache(tmp_path, progress=False, workers=0)
    bb = toy_backbone()
    first = cache(bb, data)
    mirror = dataclasses.replace(data, name="parquet:/mirror/of/it")
    again = FeatureCache(tmp_path, progress=False, workers=0)
    assert torch.equal(again(bb, mirror), first)
    assert again.stats.disk_hits == 1 and again.stats.built == 0
    other = dataclasses.replace(data, name="x", fingerprint=data.fingerprint[::-1])
    assert again.key(bb, other) != again.key(bb, mirror)  # other content: its own entry
