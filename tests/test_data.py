"""benchmark.data: the bundled dataset, local parquet mirrors and image folders, fingerprints, errors."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import importlib  # noqa: E402
import importlib.util  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from benchmark.data import (  # noqa: E402
    FASHION_MNIST_CLASSES,
    DatasetError,
    DatasetSpec,
    HubSource,
    ImageFolderSource,
    ParquetSource,
    fingerprint,
)
from benchmark.data.embedded import ASSETS_DIR, DEBIAN_DIR, IDX_FILES, read_asset  # noqa: E402
from benchmark.registry import DATASETS  # noqa: E402
from benchmark.types import LabeledImages, Preprocess  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
# The fingerprints of the bundled splits. They must not change across processes, machines or library
# versions; if the data or the hashing rule changes on purpose, bump FINGERPRINT_VERSION and update these.
EMBEDDED_FP = {
    "train": "d6ef533ee533892ee8f2fa012c3e4b735eb510767298c6361e207bd0933d1f57",
    "test": "b6cb74bee59fb32b4c8591cadc4b3b7455ab8a4d9a993c10a5bc1286d1d803b7",
}


@pytest.fixture(scope="module", autouse=True)
def _hf_cache(tmp_path_factory):
    """Keep HF datasets' Arrow cache out of the user's home."""
    import datasets

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path_factory.mktemp("hf_cache"))
        yield


@pytest.fixture(scope="module")
def embedded() -> dict[str, LabeledImages]:
    spec = DATASETS.get("fashion_mnist_embedded")
    return {split: spec.load(split) for split in ("train", "test")}


def _with_labels(ds, labels):
    """The same rows (same image bytes) with another label column, built through Arrow."""
    from datasets import Dataset

    table = ds.data.table
    i = table.schema.get_field_index("label")
    return Dataset(table.set_column(i, "label", pa.array(labels, type=pa.int64())), info=ds.info.copy())


def _with_image(ds, row, data: bytes):
    from datasets import Dataset

    table = ds.data.table
    col = table.column("image").combine_chunks()
    blobs = col.field("bytes").to_pylist()
    blobs[row] = data
    image = pa.StructArray.from_arrays([pa.array(blobs, pa.binary()), col.field("path")], names=["bytes", "path"])
    return Dataset(table.set_column(0, "image", image), info=ds.info.copy())


def _fp(ds, split="train", names=FASHION_MNIST_CLASSES, **kw):
    return fingerprint(ds, split=split, class_names=names, **kw)


# -- the bundled dataset -----------------------------------------------------------------------------
def test_registered_entries():
    for name in ("fashion_mnist_embedded", "smoke_tiny", "fashion_mnist"):
        spec = DATASETS.get(name)
        assert isinstance(spec, DatasetSpec) and spec.name == name
        assert DATASETS.describe(name) == spec.description and "\n" not in spec.description
    assert DATASETS.get("fashion_mnist").source == HubSource("zalando-datasets/fashion_mnist")
    with pytest.raises(ValueError, match="one line"):
        DatasetSpec("x", "two\nlines", HubSource("a/b"))


def test_embedded_is_balanced_with_real_class_names(embedded):
    from datasets import ClassLabel, Image

    train, test = embedded["train"], embedded["test"]
    assert (len(train), len(test)) == (3000, 1000)
    assert train.class_names == test.class_names == list(FASHION_MNIST_CLASSES)
    assert FASHION_MNIST_CLASSES[0] == "T-shirt/top" and FASHION_MNIST_CLASSES[9] == "Ankle boot"
    assert train.num_classes == 10
    assert torch.bincount(train.labels, minlength=10).tolist() == [300] * 10
    assert torch.bincount(test.labels, minlength=10).tolist() == [100] * 10
    features = train.dataset.features
    assert isinstance(features["image"], Image)
    assert isinstance(features["label"], ClassLabel) and features["label"].names == list(FASHION_MNIST_CLASSES)
    assert (train.name, train.split, test.split) == ("fashion_mnist_embedded", "train", "test")
    # the file: rows in original order, distinct, and the labels agree with the original row numbers' picks
    arrays = read_asset()
    for split, n in (("train", 60000), ("test", 10000)):
        rows = arrays[f"{split}_source_rows"]
        assert np.all(np.diff(rows) > 0) and rows[-1] < n


def test_embedded_images_decode_to_rgb_tensors(embedded):
    train = embedded["train"]
    idx = [0, 1, 2999]
    x = train.load(idx, Preprocess(resize=28, crop=28))
    assert x.shape == (3, 3, 28, 28) and x.dtype == torch.float32
    assert x.min() >= 0.0 and x.max() <= 1.0 and x.max() > 0.5
    assert torch.equal(x[:, 0], x[:, 1]) and torch.equal(x[:, 1], x[:, 2])  # grey -> RGB
    pixels = torch.from_numpy(read_asset()["train_images"][idx].astype(np.float32) / 255)
    assert torch.allclose(x[:, 0], pixels)
    assert train.load([5], Preprocess(resize=32, crop=24)).shape == (1, 3, 24, 24)


def test_smoke_tiny_is_a_slice_of_the_bundled_file(embedded):
    spec = DATASETS.get("smoke_tiny")
    train, test = spec.load("train"), spec.load("test")
    assert train.class_names == ["T-shirt/top", "Trouser", "Sneaker", "Bag"]
    assert torch.bincount(train.labels).tolist() == [16] * 4
    assert torch.bincount(test.labels).tolist() == [8] * 4
    # its first T-shirt is the bundled set's first T-shirt, byte for byte
    full = embedded["train"]
    first = int(full.class_indices(0)[0])
    mine = int(train.class_indices(0)[0])
    assert train.dataset.data.column("image")[mine] == full.dataset.data.column("image")[first]
    assert train.fingerprint != full.fingerprint


# -- fingerprints ------------------------------------------------------------------------------------
def test_fingerprint_is_stable_and_content_based(embedded):
    spec = DATASETS.get("fashion_mnist_embedded")
    train, test = embedded["train"], embedded["test"]
    assert spec.load("train").fingerprint == train.fingerprint  # a second load, a fresh Dataset object
    assert {"train": train.fingerprint, "test": test.fingerprint} == EMBEDDED_FP  # across processes
    assert train.fingerprint != test.fingerprint

    labels = train.labels.tolist()
    assert _fp(_with_labels(train.dataset, labels)) == train.fingerprint  # rebuilt, same content
    labels[1234] = (labels[1234] + 1) % 10
    assert _fp(_with_labels(train.dataset, labels)) != train.fingerprint  # one label changed
    one_pixel = bytearray(train.dataset.data.column("image")[7]["bytes"].as_py())
    one_pixel[-1] ^= 1
    assert _fp(_with_image(train.dataset, 7, bytes(one_pixel))) != train.fingerprint  # one pixel changed
    assert _fp(train.dataset.select(range(2999))) != train.fingerprint  # one row fewer
    assert _fp(train.dataset, split="test") != train.fingerprint
    assert _fp(train.dataset, names=[n.upper() for n in FASHION_MNIST_CLASSES]) != train.fingerprint


def test_fingerprint_of_a_big_split_hashes_labels_fully_and_images_by_sample(embedded):
    ds = embedded["test"].dataset
    kw = {"split": "test", "max_full_rows": 100, "sample_size": 10}
    base = _fp(ds, **kw)
    assert base != embedded["test"].fingerprint
    labels = embedded["test"].labels.tolist()
    labels[500] = (labels[500] + 1) % 10
    assert _fp(_with_labels(ds, labels), **kw) != base  # every label counts
    data = ds.data.column("image")[1]["bytes"].as_py()
    assert _fp(_with_image(ds, 1, data[:-1] + b"\x00"), **kw) == base  # row 1 is not in the sample
    assert _fp(_with_image(ds, 0, data), **kw) != base  # row 0 is


def test_fingerprint_memo_for_big_cached_splits(fashion_mirror, smoke, tmp_path, monkeypatch):
    fp_module = importlib.import_module("benchmark.data.fingerprint")  # the package exports the function
    monkeypatch.setenv("LGM_BENCH_CACHE", str(tmp_path))
    monkeypatch.setattr(fp_module, "_MEMO_MIN_ROWS", 0)
    ds = DATASETS.get("fashion_mnist").with_local(fashion_mirror).load_raw("test")
    assert ds.cache_files  # backed by an HF cache file: memo allowed
    names = smoke["test"].class_names
    first = _fp(ds, split="test", names=names)
    (memo,) = (tmp_path / "fingerprints").iterdir()
    assert first == memo.read_text() == smoke["test"].fingerprint
    memo.write_text("f" * 64)
    assert _fp(ds, split="test", names=names) == "f" * 64  # read back, not recomputed
    memo.write_text("truncated")
    assert _fp(ds, split="test", names=names) == first  # a bad memo is recomputed and rewritten
    assert memo.read_text() == first
    assert _fp(ds, split="test", names=names, memo=False) == first


# -- local parquet mirrors (the Hub's layout) and image folders -----------------------------------------
def _write_split(path: Path, ds) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.to_parquet(str(path))


@pytest.fixture(scope="module")
def smoke() -> dict[str, LabeledImages]:
    spec = DATASETS.get("smoke_tiny")
    return {split: spec.load(split) for split in ("train", "test")}


@pytest.fixture(scope="module")
def fashion_mirror(tmp_path_factory, smoke) -> Path:
    """A parquet mirror laid out as the Hub serves zalando-datasets/fashion_mnist."""
    root = tmp_path_factory.mktemp("fashion_mnist_mirror")
    for split in ("train", "test"):
        _write_split(root / "fashion_mnist" / f"{split}-00000-of-00001.parquet", smoke[split].dataset)
    return root


def test_parquet_mirror_loads_through_the_hub_entry(fashion_mirror, smoke):
    hub = DATASETS.get("fashion_mnist")
    local = hub.with_local(fashion_mirror)
    assert isinstance(local.source, ParquetSource)
    assert local.replace(source=hub.source) == hub  # only the source changed
    for split in ("train", "test"):
        data = local.load(split)
        assert data.name == "fashion_mnist" and data.split == split
        assert len(data) == len(smoke[split]) and data.class_names == smoke[split].class_names
        assert torch.equal(data.labels, smoke[split].labels)
        assert data.fingerprint == smoke[split].fingerprint  # same bytes, same fingerprint
        assert data.load([0], Preprocess(28, 28)).shape == (1, 3, 28, 28)
    # the Hub code path itself (load_dataset(path, split=...)) reads the same mirror the same way
    same = hub.with_source(HubSource(str(fashion_mirror))).load("test")
    assert same.fingerprint == smoke["test"].fingerprint


def test_parquet_mirror_with_other_split_and_column_names(tmp_path, smoke):
    for real, logical in (("train", "train"), ("validation", "test")):
        ds = smoke[logical].dataset.rename_columns({"image": "img", "label": "fine_label"})
        _write_split(tmp_path / "data" / f"{real}-00000-of-00001.parquet", ds)
    spec = DatasetSpec("custom", "A Hub dataset whose test split is called validation.",
                       HubSource("someone/custom"), test_split="validation",
                       image_column="img", label_column="fine_label")
    test = spec.with_local(tmp_path).load("test")
    assert len(test) == 32 and test.class_names == smoke["test"].class_names
    assert torch.equal(test.labels, smoke["test"].labels)
    assert test.load([3], Preprocess(28, 28)).shape == (1, 3, 28, 28)
    # explicit files, keyed by the logical split names
    files = {"train": str(tmp_path / "data" / "train-00000-of-00001.parquet"),
             "test": str(tmp_path / "data" / "validation-00000-of-00001.parquet")}
    by_files = spec.with_local(files)
    assert dict(by_files.source.data_files).keys() == {"train", "validation"}
    assert by_files.load("test").fingerprint == test.fingerprint
    # a missing split names what is there and the fix
    with pytest.raises(DatasetError, match=r"no split 'test'.*'train'.*'validation'.*replace\(test_split="):
        spec.replace(test_split="test").with_local(tmp_path).load("test")


def test_imagefolder_loads(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, n in (("train", 3), ("test", 2)):
        for cls in ("cat", "dog"):
            (tmp_path / split / cls).mkdir(parents=True)
            for i in range(n):
                pixels = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(tmp_path / split / cls / f"{i}.png")
    spec = DatasetSpec("folder", "A folder of images.", ImageFolderSource(str(tmp_path)))
    via_with_local = DATASETS.get("fashion_mnist").with_local(tmp_path)
    assert isinstance(via_with_local.source, ImageFolderSource)
    train, test = spec.load("train"), via_with_local.load("test")
    assert train.class_names == test.class_names == ["cat", "dog"]
    assert torch.bincount(train.labels).tolist() == [3, 3] and torch.bincount(test.labels).tolist() == [2, 2]
    assert train.load([0, 5], Preprocess(16, 16)).shape == (2, 3, 16, 16)
    assert spec.load("train").fingerprint == train.fingerprint != test.fingerprint
    with pytest.raises(DatasetError, match="no split 'validation'.*'test'.*'train'"):
        spec.replace(test_split="validation").load("test")


# -- clear errors --------------------------------------------------------------------------------------
def test_bad_names_raise_clear_errors(fashion_mirror):
    spec = DATASETS.get("fashion_mnist_embedded")
    with pytest.raises(DatasetError, match=r"unknown split 'val'.*'train'.*'test'"):
        spec.load("val")
    with pytest.raises(DatasetError, match=r"no split 'validation'.*'test', 'train'.*replace\(test_split="):
        spec.replace(test_split="validation").load("test")
    image_hint = r"no image column 'img'.*'image' \(Image\).*replace\(image_column='image'\)"
    with pytest.raises(DatasetError, match=image_hint):
        spec.replace(image_column="img").load("test")
    with pytest.raises(DatasetError, match=r"no label column 'fine_label'.*replace\(label_column='label'\)"):
        spec.replace(label_column="fine_label").load("test")
    with pytest.raises(DatasetError, match="no group column 'place'"):
        spec.replace(group_column="place").load("test")
    with pytest.raises(DatasetError, match="group column 'image' is Image"):
        spec.replace(group_column="image").load("test")
    with pytest.raises(DatasetError, match="class_names has 3 names"):
        spec.replace(class_names=("a", "b", "c")).load("test")
    local = DATASETS.get("fashion_mnist").with_local(fashion_mirror)
    with pytest.raises(DatasetError, match=r"parquet files under .*no split 'validation'.*'train', 'test'"):
        local.replace(train_split="validation").load("train")
    with pytest.raises(DatasetError, match="does not exist"):
        spec.with_local(fashion_mirror / "nowhere")


def test_labels_must_be_classes(smoke, tmp_path):
    ds = smoke["test"].dataset
    out_of_range = _with_labels(ds, smoke["test"].labels.tolist()[:-1] + [-1])
    _write_split(tmp_path / "bad" / "test-00000-of-00001.parquet", out_of_range.cast_column(
        "label", __import__("datasets").Value("int64")))
    spec = DatasetSpec("bad", "Labels out of range.", ParquetSource(data_dir=str(tmp_path / "bad")),
                       class_names=tuple("abcd"))
    with pytest.raises(DatasetError, match=r"labels range over \[-1, 3\] but there are 4 classes"):
        spec.load("test")


# -- the script that makes the bundled file -------------------------------------------------------------
def _script():
    path = REPO / "scripts" / "make_fashion_mnist_subset.py"
    module_spec = importlib.util.spec_from_file_location("make_fashion_mnist_subset", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(not all((DEBIAN_DIR / f).is_file() for pair in IDX_FILES.values() for f in pair),
                    reason="Debian package dataset-fashion-mnist not installed")
def test_make_script_reproduces_the_shipped_file(tmp_path):
    out = tmp_path / "subset.npz"
    assert _script().main(["--out", str(out)]) == 0
    assert out.read_bytes() == (ASSETS_DIR / "fashion_mnist_subset.npz").read_bytes()


def test_make_script_reads_a_hub_layout_copy(fashion_mirror, smoke):
    images, labels = _script().read_hub_split("test", hub_id=str(fashion_mirror))
    assert images.shape == (32, 28, 28) and images.dtype == np.uint8
    assert labels.tolist() == smoke["test"].labels.tolist()
    first = smoke["test"].load([0], Preprocess(28, 28))[0, 0]
    assert torch.allclose(first, torch.from_numpy(images[0] / 255).float())


def test_licence_and_provenance_ship_with_the_file():
    licence = (ASSETS_DIR / "LICENSE-fashion-mnist.txt").read_text()
    assert "MIT License" in licence and "Copyright (c) 2017 Zalando SE" in licence
    note = (ASSETS_DIR / "fashion_mnist_subset.md").read_text()
    import hashlib

    assert hashlib.sha256((ASSETS_DIR / "fashion_mnist_subset.npz").read_bytes()).hexdigest() in note
