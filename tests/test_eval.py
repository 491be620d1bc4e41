"""`eval`: a set made elsewhere scores exactly as the cells of the run that made it (same probe seeds),
its rows are written like any cell's and stay current in `report`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from benchmark.cli import main
from benchmark.external import read_folder, read_set
from benchmark.hashing import sha256_file
from benchmark.results import read_results
from benchmark.stale import current_definitions, split_stale

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A smoke run of LGM (images) and centroids (real rows), 2 probe seeds."""
    results = tmp_path_factory.mktemp("smoke") / "results"
    assert main(["run", "--suite", "smoke", "--methods", "lgm", "centroids", "--results", str(results),
                 "--no-progress"]) == 0
    return results


def stored_set(results: Path, method: str) -> Path:
    (path,) = (results / "artifacts" / "smoke_tiny" / method / "tiny_vit").glob("*/set.safetensors")
    return path


def top1(rows, method: str, suite: str) -> list[float]:
    part = rows[(rows["method"] == method) & (rows["suite"] == suite)].sort_values("probe_seed")
    return part["top1"].tolist()


def test_a_stored_set_scores_exactly_as_its_own_cells(smoke: Path) -> None:
    path = stored_set(smoke, "centroids")
    assert main(["eval", "--images", str(path), "--dataset", "smoke_tiny", "--backbones", "tiny_vit",
                 "--seeds", "2", "--name", "centroids_again", "--results", str(smoke), "--no-progress"]) == 0
    rows = read_results(smoke)
    ours = rows[rows["method"] == "external:centroids_again"]
    assert sorted(ours["probe_seed"]) == [3407, 3408] and set(ours["suite"]) == {"eval"}
    assert top1(rows, "external:centroids_again", "eval") == top1(rows, "centroids", "smoke")
    sha = sha256_file(path)
    assert set(ours["artifact"]) == {f"{path.resolve()} sha256:{sha}"}
    assert {json.loads(c)["sha256"] for c in ours["method_config"]} == {sha}
    assert set(ours["distill_backbone"]) == {""} and set(ours["ipc"]) == {1}


def test_images_in_a_torch_file_score_exactly_as_the_lgm_cells(smoke: Path, tmp_path: Path) -> None:
    stored = load_file(str(stored_set(smoke, "lgm")))
    exported = tmp_path / "lgm_set.pt"  # what the official code saves: decoded images in [0, 1] and labels
    torch.save({"images": stored["images"], "labels": stored["labels"]}, exported)
    assert main(["eval", "--images", str(exported), "--dataset", "smoke_tiny", "--backbones", "tiny_vit",
                 "--seeds", "2", "--results", str(smoke), "--no-progress"]) == 0
    rows = read_results(smoke)
    assert top1(rows, "external:lgm_set", "eval") == top1(rows, "lgm", "smoke")  # name: the file's stem
    # nothing of it is stale in `report`; scoring it again runs nothing
    assert split_stale(rows, current_definitions(smoke)).stale.empty
    assert main(["eval", "--images", str(exported), "--dataset", "smoke_tiny", "--backbones", "tiny_vit",
                 "--seeds", "2", "--results", str(smoke), "--no-progress"]) == 0
    assert len(read_results(smoke)) == len(rows)


def test_a_later_file_under_the_same_name_makes_the_earlier_rows_stale(smoke: Path, tmp_path: Path) -> None:
    stored = load_file(str(stored_set(smoke, "lgm")))
    for k, images in enumerate((stored["images"], stored["images"].flip(-1))):
        path = tmp_path / f"v{k}" / "flipped.safetensors"
        path.parent.mkdir()
        from safetensors.torch import save_file

        save_file({"images": images.contiguous(), "labels": stored["labels"]}, str(path))
        assert main(["eval", "--images", str(path), "--dataset", "smoke_tiny", "--backbones", "tiny_vit",
                     "--seeds", "1", "--results", str(smoke), "--no-progress"]) == 0
    rows = read_results(smoke)
    split = split_stale(rows, current_definitions(smoke))
    assert (split.stale["method"] == "external:flipped").sum() == 1
    assert (split.current["method"] == "external:flipped").sum() == 1


def test_like_takes_the_suites_probe_and_backbone_options(tmp_path: Path) -> None:
    from benchmark.cli import build_parser, eval_plan

    args = build_parser().parse_args(["eval", "--images", str(tmp_path / "my set.pt"), "--dataset",
                                      "fashion_mnist_embedded", "--backbones", "effnet_lite0", "--like", "default"])
    plan = eval_plan(args)
    assert plan.name == "my_set" and plan.protocol == "fast" and plan.seeds == 5
    assert plan.protocol_options == {"train_views": 20}
    assert plan.backbone_options["effnet_lite0"] == {"input_size": 64}
    assert plan.suite().backbone_options["effnet_lite0"] == {"input_size": 64}


def test_uint8_images_and_an_image_folder_read_as_the_dataset_classes(tmp_path: Path) -> None:
    from PIL import Image

    names = ["T-shirt/top", "Trouser", "Bag"]
    for folder, label in (("T-shirt_top", 0), ("1", 1), ("Bag", 2)):
        (tmp_path / "set" / folder).mkdir(parents=True)
        Image.new("RGB", (8, 8), (label * 100, 0, 0)).save(tmp_path / "set" / folder / "a.png")
    found = read_folder(tmp_path / "set", names)
    assert sorted(found.labels.tolist()) == [0, 1, 2] and found.images.shape == (3, 3, 8, 8)
    from safetensors.torch import save_file

    save_file({"images": torch.full((2, 3, 4, 4), 255, dtype=torch.uint8), "labels": torch.tensor([0, 1])},
              str(tmp_path / "u8.safetensors"))
    assert torch.equal(read_set(tmp_path / "u8.safetensors", names).images, torch.ones(2, 3, 4, 4))
