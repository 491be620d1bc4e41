"""Checked inputs on the data side (issue 10): train and test agree on their classes, every class has
training images, errors that name the real problem and the fix, and pinned Hub revisions."""

from __future__ import annotations

import io
import os
import re
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from benchmark.data import (  # noqa: E402
    PAPER_DATASETS,
    DatasetError,
    DatasetSpec,
    HubSource,
    ImageFolderSource,
    ParquetSource,
    local_env_var,
)
from benchmark.registry import DATASETS  # noqa: E402

CLASSES = ("a", "b", "c")


@pytest.fixture(scope="module", autouse=True)
def _hf_cache(tmp_path_factory):
    """Keep HF datasets' Arrow cache out of the user's home."""
    import datasets

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path_factory.mktemp("hf_cache"))
        yield


def _png(cls: str, seed: int, size: int = 8) -> bytes:
    """An image whose colour tells its class (learnable by any backbone), plus a little noise."""
    from PIL import Image

    colour = np.array([255 * (cls == "a"), 255 * (cls == "b"), 255 * (cls == "c")], dtype=np.float32)
    noise = np.random.default_rng(seed).normal(0, 10, (size, size, 3))
    pixels = np.clip(colour + noise, 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


def _write_split(path: Path, names: list[str], rows: list[str], seed: int) -> None:
    """A parquet split whose ClassLabel is ``names`` and whose rows show the classes ``rows`` (by name)."""
    from datasets import ClassLabel, Dataset, Features, Image

    path.parent.mkdir(parents=True, exist_ok=True)
    columns = {"image": [{"bytes": _png(c, seed + i), "path": None} for i, c in enumerate(rows)],
               "label": [names.index(c) for c in rows]}
    Dataset.from_dict(columns, features=Features({"image": Image(), "label": ClassLabel(names=names)})
                      ).to_parquet(str(path))


def _mirror(root: Path, train_names, test_names, train_rows=None, test_rows=None) -> Path:
    """A parquet mirror in the Hub layout: data/{train,test}-00000-of-00001.parquet."""
    train_rows = train_rows or [c for c in CLASSES for _ in range(4)]
    test_rows = test_rows or [c for c in CLASSES for _ in range(2)]
    _write_split(root / "data" / "train-00000-of-00001.parquet", list(train_names), train_rows, 0)
    _write_split(root / "data" / "test-00000-of-00001.parquet", list(test_names), test_rows, 100)
    return root


def _spec(root: Path, name: str = "mirror") -> DatasetSpec:
    return DatasetSpec(name, "A local parquet mirror.", ParquetSource(data_dir=str(root)))


def _image_folder(root: Path, layout: dict[str, list[str]], per_class: int = 2) -> Path:
    """``{split: [class folder, ...]}`` -> root/split/class/i.png ("" as a class: images in the split folder)."""
    from PIL import Image

    for split, classes in layout.items():
        for k, cls in enumerate(classes):
            folder = root / split / cls if cls else root / split
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                Image.open(io.BytesIO(_png(cls or "a", 10 * k + i))).save(folder / f"{cls or 'x'}{i}.png")
    return root


# -- item 2: train and test agree on their classes ---------------------------------------------------------
def test_test_split_naming_classes_in_another_order_is_realigned_by_name(tmp_path):
    rows = ["a", "b", "c", "a", "c"]
    same = _spec(_mirror(tmp_path / "same", CLASSES, CLASSES, test_rows=rows))
    swapped = _spec(_mirror(tmp_path / "swapped", CLASSES, ["c", "b", "a"], test_rows=rows))
    consistent, realigned = same.load("test"), swapped.load("test")
    assert realigned.class_names == consistent.class_names == list(CLASSES)
    assert realigned.labels.tolist() == consistent.labels.tolist() == [0, 1, 2, 0, 2]
    assert realigned.dataset.features["label"].names == list(CLASSES)
    assert realigned.fingerprint == consistent.fingerprint  # the same data once aligned: same caches
    assert realigned.realigned_from == ("c", "b", "a") and consistent.realigned_from is None
    assert swapped.load("train").class_names == list(CLASSES)


def test_realigned_split_scores_as_the_consistent_one(tmp_path):
    """The issue's case end to end: [c, b, a] in the test split scored 33 %, consistent names 100 %."""
    from benchmark.features import FeatureCache
    from benchmark.registry import BACKBONES
    from benchmark.results import read_results
    from benchmark.runner import Runner
    from benchmark.suites import Suite
    from tests.toys import ToyBackbone

    entries = [(DATASETS, "t_same", _spec(_mirror(tmp_path / "same", CLASSES, CLASSES), "t_same")),
               (DATASETS, "t_swapped", _spec(_mirror(tmp_path / "swapped", CLASSES, ["c", "b", "a"]), "t_swapped")),
               (BACKBONES, "t_net", ToyBackbone("t_net"))]
    for registry, name, obj in entries:
        registry._load()
        registry._entries[name] = obj
    try:
        suite = Suite(name="t_align", description="", datasets=["t_same", "t_swapped"], methods=["full_data"],
                      backbones=["t_net"], ipc=[1], seeds=1, protocol="fast")
        Runner(suite, tmp_path / "results", progress=False,
               features=FeatureCache(tmp_path / "features", progress=False)).run()
        frame = read_results(tmp_path / "results").set_index("dataset")
        assert (frame.status == "ok").all(), frame.error.tolist()
        assert frame.top1["t_swapped"] == frame.top1["t_same"] == 100.0
        assert frame.test_realigned_from["t_swapped"] == '["c","b","a"]'  # the row says it was realigned
        assert frame.test_realigned_from["t_same"] == "" and frame.dataset_revision.eq("").all()
    finally:
        for registry, name, _ in entries:
            registry._entries.pop(name)


def test_class_names_that_differ_as_sets_name_both_sides(tmp_path):
    spec = _spec(_mirror(tmp_path / "differ", CLASSES, ["a", "b", "d"], test_rows=["a", "b", "d"]))
    with pytest.raises(DatasetError, match=r"only in train: 'c'; only in test: 'd'.*Fix: "):
        spec.load("test")
    fewer = _spec(_mirror(tmp_path / "fewer", ["a", "b"], CLASSES, train_rows=["a", "b"]))
    with pytest.raises(DatasetError, match=r"only in train: none; only in test: 'c'"):
        fewer.load("test")


def test_a_class_without_training_images_is_an_error_when_loaded(tmp_path):
    spec = _spec(_mirror(tmp_path / "parquet", CLASSES, CLASSES, train_rows=["a", "b", "a"]))
    fix = r"every method needs training images of every class.*Fix: add training images of 'c'"
    with pytest.raises(DatasetError, match=r"split 'train' .* has no images of 1 class: 'c'; " + fix):
        spec.load("train")
    assert spec.load("train", allow_missing_classes=True).num_classes == 3  # for inspecting a mirror
    # an image folder names its classes from the folders of every split: test/c makes 'c' a class
    folder = _image_folder(tmp_path / "folder", {"train": ["a", "b"], "test": ["a", "b", "c"]})
    with pytest.raises(DatasetError, match=r"has no images of 1 class: 'c'"):
        DatasetSpec("folder", "An image folder.", ImageFolderSource(str(folder))).load("train")


def test_a_class_without_training_images_fails_every_method(tmp_path):
    """lgm and full_data used to write ok rows at 0 % where the baselines failed."""
    from benchmark.features import FeatureCache
    from benchmark.registry import BACKBONES
    from benchmark.results import read_results
    from benchmark.runner import Runner
    from benchmark.suites import Suite
    from tests.toys import ToyBackbone

    spec = _spec(_mirror(tmp_path / "m", CLASSES, CLASSES, train_rows=["a", "a", "b", "b"]), "t_missing")
    entries = [(DATASETS, "t_missing", spec), (BACKBONES, "t_net", ToyBackbone("t_net"))]
    for registry, name, obj in entries:
        registry._load()
        registry._entries[name] = obj
    try:
        suite = Suite(name="t_missing", description="", datasets=["t_missing"],
                      methods=["full_data", "random_real", "lgm"], backbones=["t_net"], ipc=[1], seeds=1,
                      protocol="fast")
        summary = Runner(suite, tmp_path / "results", progress=False,
                         features=FeatureCache(tmp_path / "features", progress=False)).run()
        frame = read_results(tmp_path / "results")
        assert set(frame.method) == {"full_data", "random_real", "lgm"}
        assert (frame.status == "error").all() and len(summary.failed) == len(frame)
        assert frame.error.str.contains("has no images of 1 class: 'c'").all()
    finally:
        for registry, name, _ in entries:
            registry._entries.pop(name)


# -- item 6: messages that say what is wrong ---------------------------------------------------------------
def test_image_folder_with_one_class_says_so(tmp_path):
    one = _image_folder(tmp_path / "one", {"train": ["cat"], "test": ["cat"]})
    layout = r"needs <split>/<class>/<image> with at least two class folders"
    with pytest.raises(DatasetError, match=r"found one class folder, 'cat'.*" + layout) as info:
        DatasetSpec("one", "One class.", ImageFolderSource(str(one))).load("train")
    assert "no label column" not in str(info.value)
    flat = _image_folder(tmp_path / "flat", {"train": [""], "test": [""]})
    with pytest.raises(DatasetError, match=r"no class subfolders.*" + layout):
        DatasetSpec("flat", "No classes.", ImageFolderSource(str(flat))).load("test")


def test_a_source_with_only_a_test_split_never_suggests_training_on_it(tmp_path):
    _write_split(tmp_path / "data" / "test-00000-of-00001.parquet", list(CLASSES), list(CLASSES), 0)
    spec = _spec(tmp_path)
    with pytest.raises(DatasetError) as info:
        spec.load("train")
    text = str(info.value)
    assert "train_split='test'" not in text and "replace(" not in text
    assert re.search(r"no split 'train'.*available splits: 'test'.*only the test split.*never train on it.*"
                     r"carve a train split.*or point .* at a source that has one", text), text
    assert "\n" not in text


def test_read_only_cache_is_one_clear_error_for_the_bundled_vit(tmp_path, monkeypatch):
    """The ViT extracts its weights into the cache; a cache it cannot write is named with the fix."""
    import errno

    from benchmark.registry import BACKBONES

    cache = tmp_path / "ro-cache"
    cache.mkdir()
    cache.chmod(0o555)
    monkeypatch.setenv("LGM_BENCH_CACHE", str(cache))
    real_mkdir, real_open = os.mkdir, os.open

    def refuse(path):  # root ignores the mode bits: refuse writes under the cache as a read-only mount would
        if Path(path).is_relative_to(cache):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))

    monkeypatch.setattr(os, "mkdir", lambda p, *a, **k: refuse(p) or real_mkdir(p, *a, **k))
    monkeypatch.setattr(os, "open", lambda p, flags, *a, **k: (
        flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT) and refuse(p)) or real_open(p, flags, *a, **k))
    try:
        with pytest.raises(PermissionError) as info:
            BACKBONES.get("vit_s14_imgfocus").build(input_size=56)
    finally:
        cache.chmod(0o755)
    text = str(info.value)
    assert re.fullmatch(r"backbone 'vit_s14_imgfocus' extracts its weights into .*ro-cache/weights, which is "
                        r"not writable .*; set LGM_BENCH_CACHE to a writable directory.*", text), text
    assert "\n" not in text


# -- item 7: Hub revisions -------------------------------------------------------------------------------
def _tiny_dataset():
    from datasets import ClassLabel, Dataset, Features, Image

    return Dataset.from_dict({"image": [{"bytes": _png(c, i), "path": None} for i, c in enumerate(CLASSES)],
                              "label": [0, 1, 2]},
                             features=Features({"image": Image(), "label": ClassLabel(names=list(CLASSES))}))


def test_hub_revision_reaches_load_dataset_and_the_identity(monkeypatch):
    import datasets

    calls = []

    def fake_load_dataset(path, name=None, **kwargs):
        calls.append(kwargs.get("revision"))
        return _tiny_dataset()

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    rev = "0123456789abcdef0123456789abcdef01234567"
    pinned = DatasetSpec("hubby", "A Hub dataset.", HubSource("someone/hubby", revision=rev))
    unpinned = pinned.replace(source=HubSource("someone/hubby"))
    other = pinned.replace(source=HubSource("someone/hubby", revision="f" * 40))
    train = pinned.load("train")
    assert calls and set(calls) == {rev}
    assert pinned.revision == train.revision == rev and pinned.load("test").revision == rev
    assert unpinned.revision is None and unpinned.load("train").revision is None
    # same rows, another revision: another identity, so no cache made from one is reused for the other
    fps = {train.fingerprint, unpinned.load("train").fingerprint, other.load("train").fingerprint}
    assert len(fps) == 3
    assert pinned.revision_note == f"revision {rev}" and unpinned.revision_note == "revision not pinned"


def test_paper_hub_datasets_are_pinned_or_the_dry_run_says_not(monkeypatch):
    from benchmark.plan import dataset_need

    for name in DATASETS.names():
        monkeypatch.delenv(local_env_var(name), raising=False)
    for row in PAPER_DATASETS:
        assert row.revision is None or re.fullmatch(r"[0-9a-f]{40}", row.revision), row.key
        spec = DATASETS.get(row.key)
        if row.hub_id is not None:
            assert spec.revision == row.revision
            expected = f"revision {row.revision}" if row.revision else "revision not pinned"
            assert expected in dataset_need(row.key), dataset_need(row.key)
    # the ImageNet-1k cut reads imagenet1k, so it carries that entry's revision
    assert DATASETS.get("imagenet100_in1k").revision == DATASETS.get("imagenet1k").revision
    assert "revision" in dataset_need("imagenet100_in1k")
    assert DATASETS.get("smoke_tiny").revision_note == ""  # bundled: no revision to pin
