"""A paper suite rehearsed end to end, offline: ``run --suite fine_grained --limit 2`` on local parquet
copies of Stanford Dogs, CUB-200, Flowers-102 and Food-101 (their class counts and split names, three
images per class and split, through ``LGM_BENCH_DATA_<NAME>``), with the four paper backbones built from
random-init weight files of their real architectures (``tests/test_paper_backbones.py``) through
``--set <backbone>.weights=...`` at their smallest input size (one patch). The code path is the full
run's: the Hub entries, their split and class checks, the timm/open_clip loaders, LGM, the baselines
and the paper probe."""

from __future__ import annotations

import io
import json
import os
import re

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

from collections.abc import Iterator  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from benchmark.cli import main  # noqa: E402
from benchmark.data import local_env_var  # noqa: E402
from benchmark.data.limit import limited  # noqa: E402
from benchmark.registry import DATASETS  # noqa: E402
from benchmark.results import read_results  # noqa: E402
from tests.test_paper_backbones import Built  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")

# key -> (classes, train split, test split), as docs/assets.md has them
FINE_GRAINED = {"stanford_dogs": (120, "train", "test"), "cub200": (200, "train", "test"),
                "flowers102": (102, "train", "test"), "food101": (101, "train", "validation")}
PER_CLASS = 3  # images per class in each split of the fixtures; the rehearsal keeps 2
SMALLEST = {"clip_vitb16": 16, "dinov2_vitb14": 14, "eva02_vitb14": 14, "mocov3_vitb16": 16}
SHORT = ["--limit", "2", "--seeds", "1", "--set", "lgm.steps=2", "--set", "lgm.augs_per_batch=1",
         "--set", "paper.epochs=1", "--set", "paper.full_data_epochs=1",
         "--set", "lgm.syn_res=auto", "--set", "lgm.crop_res=auto"]


def _png(rng: np.random.Generator) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def write_dataset(root: Path, key: str) -> Path:
    """``<root>/<key>/data/<split>-00000-of-00001.parquet`` for both splits, classes named ``<key>-000``..."""
    from datasets import ClassLabel, Dataset, Features, Image

    classes, train, test = FINE_GRAINED[key]
    names = [f"{key}-{c:03d}" for c in range(classes)]
    features = Features({"image": Image(), "label": ClassLabel(names=names)})
    for n, split in enumerate((train, test)):
        rng = np.random.default_rng(n)
        labels = [c for c in range(classes) for _ in range(PER_CLASS)]
        images = [{"bytes": _png(rng), "path": None} for _ in labels]
        path = root / key / "data" / f"{split}-00000-of-00001.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        Dataset.from_dict({"image": images, "label": labels}, features=features).to_parquet(str(path))
    return root / key


class Fixtures:
    """The datasets and weight files, each written once per module on first use."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.data: dict[str, Path] = {}
        self.weights = Built(root)  # the random-init weight files of tests/test_paper_backbones.py

    def dataset(self, key: str) -> Path:
        if key not in self.data:
            self.data[key] = write_dataset(self.root, key)
        return self.data[key]

    def rehearse(self, results: Path, datasets: list[str], backbones: list[str], *extra: str) -> int:
        """``run --suite fine_grained`` on these datasets and backbones with the short settings."""
        backbone_sets = [arg for b in backbones for arg in (
            "--set", f"{b}.input_size={SMALLEST[b]}", "--set", f"{b}.weights={self.weights.file(b)}")]
        with pytest.MonkeyPatch.context() as mp:
            for key in FINE_GRAINED:
                mp.setenv(local_env_var(key), str(self.dataset(key)))
            return main(["run", "--suite", "fine_grained", "--datasets", *datasets, "--backbones", *backbones,
                         *SHORT, *backbone_sets, *extra, "--results", str(results), "--workers", "0",
                         "--no-progress"])

    def full_split(self, key: str, split: str):
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv(local_env_var(key), str(self.dataset(key)))
            return DATASETS.get(key).load(split)


@pytest.fixture(scope="module")
def fixtures(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fixtures]:
    import datasets

    made = Fixtures(tmp_path_factory.mktemp("fine-grained"))
    with pytest.MonkeyPatch.context() as mp:  # HF datasets' Arrow cache out of the user's home
        mp.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path_factory.mktemp("hf_cache")))
        yield made
    for path in made.weights.files.values():
        path.unlink(missing_ok=True)  # hundreds of MB each


def test_one_dataset_one_backbone_rehearses_offline(fixtures: Fixtures, tmp_path: Path) -> None:
    results = tmp_path / "results"
    assert fixtures.rehearse(results, ["flowers102"], ["dinov2_vitb14"], "--methods", "lgm", "full_data") == 0
    rows = read_results(results)
    assert len(rows) == 2 and (rows["status"] == "ok").all() and (rows["limit"] == "2").all()
    by_method = rows.set_index("method")
    assert by_method.loc["full_data", "n_train"] == 2 * 102  # 2 of the 3 images of each class
    lgm = json.loads(by_method.loc["lgm", "method_config"])
    assert (lgm["steps"], lgm["augs_per_batch"], lgm["syn_res"], lgm["crop_res"]) == (2, 1, None, None)
    assert json.loads(by_method.loc["lgm", "probe_config"])["epochs"] == 1
    assert set(rows["eval_input_size"]) == {14} and set(rows["eval_weight_id"]) == {"file:dinov2_vitb14.safetensors"}
    for split, column in (("train", "train_fingerprint"), ("test", "test_fingerprint")):
        full = fixtures.full_split("flowers102", split)
        assert len(full) == PER_CLASS * 102
        assert set(rows[column]) == {limited(full, 2).fingerprint} != {full.fingerprint}
    overrides = json.loads(rows["overrides"].iloc[0])
    assert overrides["backbone:dinov2_vitb14.input_size"] == 14 and overrides["method:lgm.steps"] == 2


@pytest.mark.slow
def test_fine_grained_rehearses_end_to_end_offline(fixtures: Fixtures, tmp_path: Path, capsys) -> None:
    results = tmp_path / "results"
    assert fixtures.rehearse(results, list(FINE_GRAINED), list(SMALLEST)) == 0
    rows = read_results(results)
    # 5 methods x 4 datasets x 4 backbones, one probe seed each (random real: one selection per seed)
    assert rows["cell_id"].nunique() == len(rows) == 5 * 4 * 4
    assert (rows["status"] == "ok").all() and (rows["limit"] == "2").all()
    full_data = rows[rows["method"] == "full_data"].groupby("dataset")["n_train"].unique()
    assert {d: list(v) for d, v in full_data.items()} == {k: [2 * c] for k, (c, _, _) in FINE_GRAINED.items()}
    ipc1 = rows[rows["method"].isin(["lgm", "neighbors", "centroids", "random_real"])]
    assert (ipc1["n_train"] == ipc1["dataset"].map(lambda d: FINE_GRAINED[d][0])).all()
    capsys.readouterr()
    out = tmp_path / "report"
    assert main(["report", "--results", str(results), "--out", str(out)]) == 0
    assert "rehearsal rows, labelled `[rehearsal: 2/class, set " in capsys.readouterr().out
    summary = (out / "summary.md").read_text()
    # one table per dataset and one beside the paper's (no published number next to it); LGM is also labelled
    # by its options beyond the paper's (steps, K, resolutions)
    lgm = r"\| LGM \[paper\+[0-9a-f]{6}\] \[rehearsal: 2/class, set [0-9a-f]{6}\] +\|"
    assert len(re.findall(lgm, summary)) == 8
    assert len(re.findall(lgm + r"( +\*{0,2}[0-9.]+\*{0,2} +\| +— +\| +— +\|){4}", summary)) == 4
    assert main(["status", "--results", str(results)]) == 0
    assert re.search(r"suite fine_grained \[rehearsal: 2/class, set [0-9a-f]{6}\]: 80 cells: 80 done, 0 failed, "
                     "0 missing", capsys.readouterr().out)
