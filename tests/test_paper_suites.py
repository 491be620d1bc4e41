"""Each paper suite expands to the cells the paper has; dry runs touch no network and write nothing."""

from __future__ import annotations

from collections import Counter

import pytest

from benchmark.cli import main
from benchmark.registry import SUITES

B = 4  # paper backbones
SEEDS = 5
PROBE_SEEDS = tuple(3407 + k for k in range(SEEDS))  # the official code's seeds
TABLE1 = {"lgm": B, "neighbors": B, "centroids": B, "random_real": B * SEEDS, "full_data": B}


@pytest.mark.parametrize(("suite", "per_dataset", "datasets"), [
    ("imagenet100", TABLE1, 1),
    ("imagenet1k", TABLE1, 1),
    ("fine_grained", TABLE1, 4),
    ("spurious", TABLE1, 2),
    ("cross_model", {"lgm": B * B}, 1),
    ("ablation", {m: B * B for m in ("lgm", "lgm_no_decorrelate", "lgm_no_pyramid", "lgm_no_augment")}, 1),
    ("ood", {"lgm": 1, "neighbors": 1, "centroids": 1, "random_real": SEEDS, "full_data": 1}, 1),
])
def test_suite_cell_counts(suite, per_dataset, datasets) -> None:
    cells = SUITES.get(suite).cells()
    assert Counter(c.method for c in cells) == {m: n * datasets for m, n in per_dataset.items()}
    assert len({c.dataset for c in cells}) == datasets
    assert {c.protocol for c in cells} == {"paper"}
    # every cell has the paper's probe seeds 3407+k: five per cell, or, for random real images, one per
    # selection seed (paired), together the same five
    paired = [c for c in cells if c.method == "random_real"]
    assert {c.probe_seeds for c in cells if c.method != "random_real"} == {PROBE_SEEDS}
    assert Counter(c.probe_seeds for c in paired) == Counter({(s,): len(paired) // SEEDS for s in PROBE_SEEDS})
    assert {(c.method_seed, c.probe_seeds) for c in paired} == (
        {(k, (PROBE_SEEDS[k],)) for k in range(SEEDS)} if paired else set())


def test_cross_model_covers_every_pair_and_measures_alignment() -> None:
    suite = SUITES.get("cross_model")
    pairs = {(c.distill_backbone, c.eval_backbone) for c in suite.cells()}
    backbones = {"clip_vitb16", "dinov2_vitb14", "eva02_vitb14", "mocov3_vitb16"}
    assert pairs == {(d, e) for d in backbones for e in backbones} and suite.alignment


def test_imagenet1k_uses_three_augmentations_per_batch() -> None:
    suite = SUITES.get("imagenet1k")
    assert suite.options_for("lgm", "imagenet1k")["augs_per_batch"] == 3
    assert "augs_per_batch" not in SUITES.get("imagenet100").options_for("lgm", "imagenet100")


def test_fine_grained_dry_run_lists_cells_downloads_and_estimate(tmp_path, capsys, monkeypatch) -> None:
    import socket

    def no_network(*args, **kwargs):
        raise AssertionError("a dry run must not touch the network")

    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(socket.socket, "connect", no_network)
    assert main(["run", "--suite", "fine_grained", "--dry-run", "--results", str(tmp_path / "r")]) == 0
    out = capsys.readouterr().out
    assert out.count("[todo]") == 4 * (4 * 4 + 4 * SEEDS)  # 4 datasets x (16 + 20) cells
    for hub_id in ("maurice-fp/stanford-dogs", "bentrevett/caltech-ucsd-birds-200-2011", "ethz/food101"):
        assert hub_id in out
    assert "ViT-B-16-quickgelu" in out and "GPU hours" in out
    assert not (tmp_path / "r").exists()
