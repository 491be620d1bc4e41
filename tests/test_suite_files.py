"""Suites from TOML files: reading, running offline with references, and judging their rows in `report`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from benchmark.cli import main
from benchmark.hashing import sha256_file
from benchmark.results import read_results
from benchmark.stale import current_definitions, split_stale
from benchmark.suite_files import definition_path, load_suite_file, recorded_definitions
from tests.test_refs import TINY, tiny_timm_weights, write_image_folder

pytestmark = pytest.mark.usefixtures("one_thread")
REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "suites"


def test_the_example_files_read_into_suites() -> None:
    offline = load_suite_file(EXAMPLES / "offline_example.toml")
    assert (offline.name, offline.datasets, offline.backbones, offline.seeds) == (
        "offline_example", ["smoke_tiny"], ["tiny_vit"], 2)
    assert offline.method_options == {"lgm": {"preset": "smoke"}}
    assert offline.protocol_options == {"fast": {"steps": 50}}
    paper = load_suite_file(EXAMPLES / "dinov2_s_fashion_mnist.toml")
    assert paper.backbones == ["timm:vit_small_patch14_dinov2.lvd142m@224"]
    assert paper.datasets == ["hub:zalando-datasets/fashion_mnist"] and paper.protocol == "paper"
    assert len(paper.cells()) == 9  # lgm, neighbors, centroids, 5 random real, full data


def test_every_suite_field_is_read(tmp_path: Path) -> None:
    path = tmp_path / "all.toml"
    path.write_text('''name = "all_fields"
description = "every field"
datasets = ["smoke_tiny"]
methods = ["lgm", "centroids"]
backbones = ["tiny_vit", "timm:vit_tiny_patch16_224@32"]
distill_backbones = ["tiny_vit"]
ipc = 2
seeds = 3
method_seeds = 2
protocol = "fast"
cross_model = ["lgm"]
alignment = true
exclude = [{method = "centroids", eval_backbone = "timm:vit_tiny_patch16_224@32"}]
[method_options.lgm]
preset = "smoke"
[dataset_method_options.smoke_tiny.lgm]
steps = 3
[backbone_options."timm:vit_tiny_patch16_224@32"]
normalization = "native"
[protocol_options.fast]
train_views = 2
''')
    suite = load_suite_file(path)
    assert suite.ipc == [2] and suite.method_seeds == 2 and suite.cross_model == ("lgm",) and suite.alignment
    assert suite.options_for("lgm", "smoke_tiny") == {"preset": "smoke", "steps": 3}
    assert suite.backbone_options == {"timm:vit_tiny_patch16_224@32": {"normalization": "native"}}
    cells = suite.cells()
    # lgm: 2 seeds x 2 evaluating backbones; centroids: 2 seeds, on its own backbone only
    assert sorted((c.method, c.eval_backbone, c.method_seed) for c in cells) == sorted(
        [("lgm", b, s) for b in ("tiny_vit", "timm:vit_tiny_patch16_224@32") for s in (0, 1)]
        + [("centroids", "tiny_vit", s) for s in (0, 1)])


def test_dry_run_lists_the_cells_and_writes_nothing(tmp_path: Path, capsys) -> None:
    results = tmp_path / "results"
    assert main(["run", "--suite", str(EXAMPLES / "offline_example.toml"), "--results", str(results),
                 "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "suite offline_example: 4 cells (0 already done)" in out
    assert out.count("[todo]") == 4 and not results.exists()


def test_a_suite_file_with_a_folder_dataset_and_a_local_timm_file_runs_offline(tmp_path: Path, capsys) -> None:
    folder = write_image_folder(tmp_path / "images")
    weights = tiny_timm_weights(tmp_path / "vit_tiny.safetensors")
    backbone = f"timm:{TINY}@32,weights={weights}"
    suite_file = tmp_path / "mine.toml"
    suite_file.write_text(f'''name = "mine"
datasets = ["folder:{folder}"]
methods = ["centroids", "random_real"]
backbones = ["{backbone}"]
seeds = 2
protocol = "fast"
[protocol_options.fast]
steps = 30
''')
    results = tmp_path / "results"
    assert main(["run", "--suite", str(suite_file), "--results", str(results), "--no-progress"]) == 0
    rows = read_results(results)
    assert len(rows) == 4 and set(rows["status"]) == {"ok"}
    assert set(rows["suite"]) == {"mine"} and set(rows["dataset"]) == {f"folder:{folder}"}
    assert set(rows["eval_weight_sha256"]) == {sha256_file(weights)}
    assert set(rows["eval_weight_id"]) == {"file:vit_tiny.safetensors"}
    assert rows["top1"].between(0, 100).all()
    # the definition it ran is kept beside the results, and its rows are current in `report`
    recorded = definition_path(results, "mine").read_bytes()
    assert recorded.endswith(suite_file.read_bytes()) and recorded.startswith(b"# lgm-bench: run from ")
    assert split_stale(rows, current_definitions(results)).stale.empty
    # a changed setting makes them stale once the changed file is what was recorded
    definition_path(results, "mine").write_text(suite_file.read_text().replace("steps = 30", "steps = 31"))
    assert len(split_stale(rows, current_definitions(results)).stale) == 4
    # a rerun of the same file skips every cell
    capsys.readouterr()
    definition_path(results, "mine").write_bytes(suite_file.read_bytes())
    assert main(["run", "--suite", str(suite_file), "--results", str(results), "--no-progress"]) == 0
    assert "0 cells run, 3 skipped" in capsys.readouterr().out


def test_the_offline_example_runs(tmp_path: Path) -> None:
    results = tmp_path / "results"
    assert main(["run", "--suite", str(EXAMPLES / "offline_example.toml"), "--results", str(results),
                 "--no-progress"]) == 0
    rows = read_results(results)
    assert sorted(set(rows["method"])) == ["centroids", "lgm", "random_real"]
    assert len(rows) == 6 and set(rows["status"]) == {"ok"}
    assert set(recorded_definitions(results)) == {"offline_example"}


def test_a_recorded_suite_with_relative_paths_stays_current_from_another_directory(
        tmp_path: Path, monkeypatch) -> None:
    """`folder:images` is relative to where `run` ran; `report` from elsewhere must still read the record."""
    work = tmp_path / "work"
    write_image_folder(work / "images")
    (work / "mine.toml").write_text('name = "rel"\ndatasets = ["folder:images"]\nmethods = ["centroids"]\n'
                                    'backbones = ["tiny_vit"]\nseeds = 1\nprotocol = "fast"\n')
    results = tmp_path / "results"
    monkeypatch.chdir(work)
    assert main(["run", "--suite", "mine.toml", "--results", str(results), "--no-progress"]) == 0
    rows = read_results(results)
    assert not rows.empty
    # elsewhere, in a fresh process (this one has the reference resolved already): folder:images does not
    # resolve from tmp_path, so the record must be read from where it ran
    code = ("import os, sys; from benchmark.results import read_results; from benchmark.stale import "
            "current_definitions, split_stale; r = sys.argv[1]; split = split_stale(read_results(r), "
            "current_definitions(r)); print(len(split.current), len(split.stale), os.getcwd())")
    out = subprocess.run([sys.executable, "-c", code, str(results)], cwd=tmp_path, capture_output=True,
                         text=True, check=True).stdout.split()
    assert out == [str(len(rows)), "0", str(tmp_path)]  # current, none stale, the directory left as it was
