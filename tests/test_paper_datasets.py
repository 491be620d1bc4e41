"""The paper's datasets: every entry loads from a local fixture in its documented layout; ImageNet-100 cut
out of ImageNet-1k; Spawrious staging; the errors that name the fix. Nothing here reaches the network."""

from __future__ import annotations

import io
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from benchmark.data import (  # noqa: E402
    IMAGENET100_CMC,
    PAPER_DATASETS,
    DatasetError,
    HubSource,
    SpawriousSource,
    local_env_var,
)
from benchmark.registry import DATASETS  # noqa: E402
from benchmark.types import Preprocess  # noqa: E402

# What docs/assets.md documents, written out independently of the table in benchmark/data/paper.py:
# key -> (Hub id, train split, test split, group column).
HUB_LAYOUT = {
    "imagenet1k": ("ILSVRC/imagenet-1k", "train", "validation", None),
    "imagenet100": ("clane9/imagenet-100", "train", "validation", None),
    "cub200": ("bentrevett/caltech-ucsd-birds-200-2011", "train", "test", None),
    "stanford_dogs": ("maurice-fp/stanford-dogs", "train", "test", None),
    "flowers102": ("dpdl-benchmark/oxford_flowers102", "train", "test", None),
    "food101": ("ethz/food101", "train", "validation", None),
    "waterbirds": ("grodino/waterbirds", "train", "test", "place"),
    "artbench10": ("zguo0525/ArtBench", "train", "test", None),
}
# Class names of each fixture (not the real ones; ArtBench's are deliberately not alphabetical).
FIXTURE_CLASSES = {
    "artbench10": ["realism", "baroque", "ukiyo_e", "art_nouveau"],
    "waterbirds": ["landbird", "waterbird"],
}
SPAWRIOUS = ("bulldog", "corgi", "dachshund", "labrador")
SPAWRIOUS_TRAIN = {"bulldog": "jungle", "dachshund": "mountain", "labrador": "snow", "corgi": "desert"}
SPAWRIOUS_TEST = {"bulldog": "mountain", "dachshund": "snow", "labrador": "desert", "corgi": "jungle"}


@pytest.fixture(scope="module", autouse=True)
def _hf_cache(tmp_path_factory):
    """Keep HF datasets' Arrow cache out of the user's home."""
    import datasets

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path_factory.mktemp("hf_cache"))
        yield


@pytest.fixture(autouse=True)
def _no_local_overrides(monkeypatch):
    for name in DATASETS.names():
        monkeypatch.delenv(local_env_var(name), raising=False)


def _png(seed: int, size: int = 4) -> bytes:
    from PIL import Image

    pixels = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


def _write_parquet(path: Path, columns: dict, features: dict) -> None:
    from datasets import Dataset, Features

    path.parent.mkdir(parents=True, exist_ok=True)
    Dataset.from_dict(columns, features=Features(features)).to_parquet(str(path))


def _hub_mirror(root: Path, key: str) -> dict[str, list[int]]:
    """A tiny parquet copy of ``key`` in the Hub's layout (data/<split>-00000-of-00001.parquet); its labels."""
    from datasets import ClassLabel, Image, Sequence, Value

    _, train, test, _ = HUB_LAYOUT[key]
    names = FIXTURE_CLASSES.get(key, ["a", "b", "c"])
    written = {}
    for n, split in enumerate((train, test)):
        labels = [c for c in range(len(names)) for _ in range(2 if split == train else 1)]
        columns = {"image": [{"bytes": _png(100 * n + i), "path": None} for i in range(len(labels))],
                   "label": labels}
        features = {"image": Image(), "label": ClassLabel(names=names)}
        if key == "waterbirds":
            columns["place"] = [(i + 1) % 2 for i in range(len(labels))]
            columns["bird"] = [i % 3 for i in range(len(labels))]
            features |= {"place": ClassLabel(names=["land", "water"]), "bird": ClassLabel(names=["x", "y", "z"])}
        if key == "cub200":
            columns["bbox"] = [[1.0, 2.0, 3.0, 4.0]] * len(labels)
            features["bbox"] = Sequence(Value("float32"))
        _write_parquet(root / "data" / f"{split}-00000-of-00001.parquet", columns, features)
        written[split] = labels
    if key == "flowers102":  # the Hub copy also has a validation split, unused by default
        _write_parquet(root / "data" / "validation-00000-of-00001.parquet",
                       {"image": [{"bytes": _png(999), "path": None}], "label": [1]},
                       {"image": Image(), "label": ClassLabel(names=names)})
    return written


# -- the table -----------------------------------------------------------------------------------------
def test_every_paper_dataset_is_registered_from_the_table(capsys):
    from benchmark.cli import main
    from benchmark.report.paper import DATASET_TITLES

    keys = [row.key for row in PAPER_DATASETS]
    assert len(keys) == len(set(keys))
    assert set(DATASET_TITLES) <= set(keys)  # every dataset the paper's tables name
    assert set(keys) == set(HUB_LAYOUT) | {"imagenet100_in1k", "spawrious_o2o_hard"}
    for row in PAPER_DATASETS:
        spec = DATASETS.get(row.key)
        assert spec == row.spec() and spec.name == row.key
        assert spec.description and "\n" not in spec.description and len(spec.description) < 120
    for key, (hub_id, train, test, group) in HUB_LAYOUT.items():
        spec = DATASETS.get(key)
        assert isinstance(spec.source, HubSource) and spec.source.hub_id == hub_id
        assert (spec.train_split, spec.test_split, spec.group_column) == (train, test, group)
        assert (spec.image_column, spec.label_column) == ("image", "label")
        assert spec.source.gated == (key == "imagenet1k")
    assert main(["list", "datasets"]) == 0
    listed = capsys.readouterr().out
    for key in keys:
        assert f"{key} " in listed and DATASETS.describe(key) in listed
    assert local_env_var("imagenet1k") == "LGM_BENCH_DATA_IMAGENET1K"
    assert local_env_var("spawrious_o2o_hard") == "LGM_BENCH_DATA_SPAWRIOUS_O2O_HARD"


# -- Hub datasets, read from local mirrors in the Hub layout -----------------------------------------------
@pytest.mark.parametrize("key", sorted(HUB_LAYOUT))
def test_hub_dataset_loads_from_a_local_mirror(key, tmp_path, monkeypatch):
    labels = _hub_mirror(tmp_path, key)
    _, train_split, test_split, group = HUB_LAYOUT[key]
    names = FIXTURE_CLASSES.get(key, ["a", "b", "c"])
    # train through with_local, test through the environment variable, read at load time
    train = DATASETS.get(key).with_local(tmp_path).load("train")
    monkeypatch.setenv(local_env_var(key), str(tmp_path))
    test = DATASETS.get(key).load("test")
    for data, split, real in ((train, "train", train_split), (test, "test", test_split)):
        assert (data.name, data.split) == (key, split)
        assert data.class_names == names and data.num_classes == len(names)  # the dataset's own order
        assert data.labels.tolist() == labels[real]
        assert data.group_column == group
    if group is not None:
        assert test.groups.tolist() == [(i + 1) % 2 for i in range(len(test))]
    if key == "flowers102":
        both = DATASETS.get(key).replace(train_split="train+validation").load("train")
        assert len(both) == len(train) + 1
    if key == "artbench10":
        assert train.load([0], Preprocess(4, 4)).shape == (1, 3, 4, 4)
    # an explicit with_local wins over the environment variable
    monkeypatch.setenv(local_env_var(key), str(tmp_path / "nowhere"))
    assert DATASETS.get(key).with_local(tmp_path).load("test").fingerprint == test.fingerprint
    with pytest.raises(DatasetError, match=f"{local_env_var(key)}=.*nowhere.*does not exist"):
        DATASETS.get(key).load("test")


# -- ImageNet-100 from ImageNet-1k -------------------------------------------------------------------------
def test_imagenet100_list_is_the_cmc_list():
    assert len(IMAGENET100_CMC) == len(set(IMAGENET100_CMC)) == 100
    assert all(0 <= c < 1000 for c in IMAGENET100_CMC)
    assert IMAGENET100_CMC[:5] == (452, 64, 374, 236, 993) and IMAGENET100_CMC[-3:] == (570, 99, 169)
    assert IMAGENET100_CMC[26] == 15 and sum(IMAGENET100_CMC) == 47997


@pytest.fixture(scope="module")
def fake_imagenet1k(tmp_path_factory) -> tuple[Path, dict[str, list[int]]]:
    """A parquet 'ImageNet-1k' (ClassLabel of 1000) whose rows hold a sparse mix of CMC and other classes."""
    from datasets import ClassLabel, Image

    root = tmp_path_factory.mktemp("imagenet1k_mirror")
    labels = {"train": [452, 3, 64, 999, 169, 452, 0, 374, 236, 500], "validation": [15, 1, 99, 998, 993]}
    for split, ys in labels.items():
        _write_parquet(root / "data" / f"{split}-00000-of-00001.parquet",
                       {"image": [{"bytes": _png(7 * y + i), "path": None} for i, y in enumerate(ys)], "label": ys},
                       {"image": Image(), "label": ClassLabel(names=[f"n{c:04d}" for c in range(1000)])})
    return root, labels


def test_imagenet100_filters_imagenet1k_in_cmc_order(fake_imagenet1k, monkeypatch):
    root, labels = fake_imagenet1k
    spec = DATASETS.get("imagenet100_in1k")
    # the fixture holds a few of the classes: a benchmark run refuses it, inspecting it is fine
    train = spec.with_local(root).load("train", allow_missing_classes=True)
    # kept: 452 -> 0, 64 -> 1, 169 -> 99, 452 -> 0, 374 -> 2, 236 -> 3 (in row order); 3, 999, 0, 500 dropped
    assert train.labels.tolist() == [0, 1, 99, 0, 2, 3]
    assert train.num_classes == 100 and train.class_names[:4] == ["n0452", "n0064", "n0374", "n0236"]
    assert train.class_names[99] == "n0169" and train.class_names[26] == "n0015"
    full = DATASETS.get("imagenet1k").with_local(root).load("train", allow_missing_classes=True)
    kept = [0, 2, 4, 5, 7, 8]
    assert full.labels[kept].tolist() == [452, 64, 169, 452, 374, 236]

    def image_bytes(data):
        return data.dataset.with_format("arrow")[:].column("image").combine_chunks().field("bytes").to_pylist()

    assert image_bytes(train) == [image_bytes(full)[i] for i in kept]  # the kept rows, unchanged
    assert train.load([2], Preprocess(4, 4)).shape == (1, 3, 4, 4)
    # through LGM_BENCH_DATA_IMAGENET1K: the fallback reads imagenet1k as that entry does
    monkeypatch.setenv("LGM_BENCH_DATA_IMAGENET1K", str(root))
    test = spec.load("test")
    assert test.labels.tolist() == [26, 98, 4]  # 15, 99, 993; 1 and 998 dropped
    assert test.fingerprint == spec.with_local(root).load("test").fingerprint
    assert DATASETS.get("imagenet1k").load("test").num_classes == 1000


# -- Spawrious ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def staged_spawrious(tmp_path_factory) -> Path:
    """A staged o2o_hard tree: spawrious224/{env}/{location}/{class}/*.png, three images a folder."""
    from PIL import Image

    root = tmp_path_factory.mktemp("spawrious")
    folders = {(env, loc, cls) for env in "01" for cls in SPAWRIOUS
               for loc in (SPAWRIOUS_TRAIN[cls], "beach", SPAWRIOUS_TEST[cls])}
    folders.add(("0", "dirt", "bulldog"))  # a location the challenge never reads
    for k, (env, loc, cls) in enumerate(sorted(folders)):
        folder = root / "spawrious224" / env / loc / cls
        folder.mkdir(parents=True)
        for j, name in enumerate(("c.png", "a.png", "b.png")):
            pixels = np.random.default_rng(10 * k + j).integers(0, 256, (4, 4, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(folder / name)
        (folder / "notes.txt").write_text("not an image")
    return root


def _rows(data):
    table = data.dataset.select_columns(["image", "location", "env"]).with_format("arrow")[:]
    files = table.column("image").combine_chunks().field("path").to_pylist()
    paths = [Path(p).relative_to(Path(p).parents[3]).as_posix() for p in files]  # env/location/class/name
    return paths, table.column("location").to_pylist(), table.column("env").to_pylist()


def test_spawrious_loads_from_a_staged_folder(staged_spawrious, monkeypatch):
    monkeypatch.setenv("LGM_BENCH_DATA_SPAWRIOUS_O2O_HARD", str(staged_spawrious))
    spec = DATASETS.get("spawrious_o2o_hard")
    train, test = spec.load("train"), spec.load("test")
    for data in (train, test):
        assert data.class_names == list(SPAWRIOUS) and data.num_classes == 4
    assert len(train) == 2 * 4 * 2 * 3 and len(test) == 2 * 4 * 3
    assert torch.bincount(train.labels).tolist() == [12] * 4 and torch.bincount(test.labels).tolist() == [6] * 4
    paths, locations, envs = _rows(test)
    locs = train.dataset.features["location"].names
    for path, label, loc in zip(paths, test.labels.tolist(), locations, strict=True):
        assert locs[loc] == SPAWRIOUS_TEST[SPAWRIOUS[label]] and path.split("/")[2] == SPAWRIOUS[label]
    paths, locations, envs = _rows(train)
    assert "dirt" not in {locs[loc] for loc in locations} and sorted(set(envs)) == [0, 1]
    for path, label, loc in zip(paths, train.labels.tolist(), locations, strict=True):
        assert locs[loc] in (SPAWRIOUS_TRAIN[SPAWRIOUS[label]], "beach") and path.split("/")[1] == locs[loc]
    assert train.load([0], Preprocess(4, 4)).shape == (1, 3, 4, 4)
    # the same folder through with_local (the spawrious224 directory itself), same rows
    again = spec.with_local(staged_spawrious / "spawrious224").load("test")
    assert again.fingerprint == test.fingerprint


def test_spawrious_takes_the_first_files_in_sorted_order(staged_spawrious):
    source = SpawriousSource(str(staged_spawrious), train_counts=((2, 1), (1, 0)))
    spec = DATASETS.get("spawrious_o2o_hard").with_source(source)
    paths, locations, envs = _rows(spec.load("train"))
    assert paths[:3] == ["0/jungle/bulldog/a.png", "0/jungle/bulldog/b.png", "0/beach/bulldog/a.png"]
    assert len(paths) == 4 * (2 + 1) + 4 * 1 and envs.count(1) == 4
    assert "1/snow/labrador/a.png" in paths and "1/beach/labrador/a.png" not in paths


def test_spawrious_not_staged_says_where_to_stage_it(tmp_path):
    spec = DATASETS.get("spawrious_o2o_hard")
    fix = r"spawrious224__o2o_hard\.tar\.gz.*github\.com/aengusl/spawrious.*LGM_BENCH_DATA_SPAWRIOUS_O2O_HARD=<dir>"
    with pytest.raises(DatasetError, match=r"no Hub copy and is not staged.*" + fix + r".*with_local\(<dir>\)"):
        spec.load("train")
    with pytest.raises(DatasetError, match=r"lacks 16 folder\(s\) of the O2O-hard train split: 0/.*" + fix):
        spec.with_local(tmp_path).load("train")


# -- errors that name the fix ------------------------------------------------------------------------------
def test_gated_imagenet_error_names_the_fix(monkeypatch):
    import datasets
    from datasets.exceptions import DatasetNotFoundError

    def gated(path, *args, **kwargs):
        raise DatasetNotFoundError(f"Dataset '{path}' is a gated dataset on the Hub. You must be authenticated "
                                   "to access it.")

    monkeypatch.setattr(datasets, "load_dataset", gated)
    fix = (r"gated.*accept its terms of access at https://huggingface\.co/datasets/ILSVRC/imagenet-1k.*"
           r"`huggingface-cli login`.*LGM_BENCH_DATA_IMAGENET1K=<dir>.*DATASETS\.get\('imagenet1k'\)\.with_local")
    with pytest.raises(DatasetError, match="dataset 'imagenet1k' could not be loaded.*" + fix):
        DATASETS.get("imagenet1k").load("train")
    with pytest.raises(DatasetError, match=fix):  # the fallback reads imagenet1k, so it names the same fix
        DATASETS.get("imagenet100_in1k").load("test")
    with pytest.raises(DatasetError) as info:  # not gated: only the local override
        DATASETS.get("food101").load("test")
    assert "login" not in str(info.value) and "LGM_BENCH_DATA_FOOD101=<dir>" in str(info.value)


def test_offline_hub_failure_is_a_clear_error():
    """The real failure (offline mode, nothing cached) goes through the same message."""
    spec = DATASETS.get("imagenet1k").replace(source=HubSource("lgm-bench-tests/not-a-dataset", gated=True))
    with pytest.raises(DatasetError, match=r"ConnectionError.*huggingface-cli login.*HF_HUB_OFFLINE.*unset"):
        spec.load("train")
