"""``scripts/gpu_check.py --jpeg`` on the CPU with tiny settings: the LGM step decoding a JPEG world
through ``RealImages`` (preloaded and every step) and a full-data paper-probe epoch over it, written to
``--out`` as .json and .md. Needs foolbox's photos (the ``test`` extra), as the scale world does."""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "gpu_check.py"
pytestmark = pytest.mark.usefixtures("one_thread")


def load_script():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_jpeg_mode_runs_on_the_cpu_and_writes_its_files(tmp_path, capsys) -> None:
    gpu_check = load_script()
    out = tmp_path / "out"
    before = os.environ.get("LGM_BENCH_PRELOAD_GB")
    assert gpu_check.main(["--device", "cpu", "--arch", "vit_tiny_patch16_224", "--size", "32", "--cases", "4x2",
                           "--steps", "1", "--precisions", "fp32", "--jpeg", "--probe-world", "4x2", "--workers", "1",
                           "--feature-batch", "4", "--worlds", str(tmp_path / "worlds"), "--out", str(out)]) == 0
    assert os.environ.get("LGM_BENCH_PRELOAD_GB") == before  # the preload budget it set is undone
    report = json.loads((out / "gpu_check.json").read_text())
    assert report["workers"] == 1 and report["lgm"] == [] and report["jpeg"]["image_size"] == [500, 375]
    assert report["features"]["batch"] == 4 and report["features"]["images_per_s"] > 0
    (row,) = report["jpeg"]["lgm"]
    assert (row["classes"], row["K"], row["precision"], row["real_images_per_step"]) == (4, 2, "fp32", 8)
    pre, dec = row["runs"]["preloaded"], row["runs"]["decoding"]
    assert pre["real_preloaded"] is True and dec["real_preloaded"] is False and dec["workers"] == 1
    assert row["s_per_step_preloaded"] == pre["s_per_step"] > 0 and row["s_per_step_decoding"] == dec["s_per_step"] > 0
    assert row["gpu_idle_share"] == pytest.approx(max(0.0, 1 - pre["s_per_step"] / dec["s_per_step"]))
    assert 0 <= dec["data_wait_s_per_step"] <= dec["s_per_step"] and pre["data_wait_s_per_step"] == 0
    assert row["peak_mem_gib_decoding"] is None and row["cuda_event_s_per_step_decoding"] is None  # no CUDA here
    probe = report["jpeg"]["probe"]
    assert (probe["classes"], probe["per_class"], probe["images"]) == (4, 2, 8)
    for run in probe["runs"].values():  # one epoch of 8 images: one batch, random 37 px crops of each
        assert (run["steps"], run["batch_size"], run["train_crop"]) == (1, 8, "random") and run["seconds"] > 0
        assert run["data_wait_s"] >= 0
    assert probe["gpu_idle_share"] == pytest.approx(
        max(0.0, 1 - probe["epoch_s_preloaded"] / probe["epoch_s_decoding"]))
    # the world the case and the probe read: one Hub-layout parquet world, 4 classes x 2 JPEGs
    (world,) = (tmp_path / "worlds").glob("world-*")
    assert json.loads((world / "world.json").read_text())["classes"] == 4
    md = (out / "gpu_check.md").read_text()
    assert "| classes x K | precision | micro_batch | s/step preloaded | s/step decoding | GPU idle |" in md
    assert f"| 4 x 2 | fp32 | None | {row['s_per_step_preloaded']:.2f} | {row['s_per_step_decoding']:.2f} |" in md
    assert "| paper-probe epoch (full data) | images |" in md and "| 4 x 2 | 8 |" in md
    assert md.strip() in capsys.readouterr().out


def test_bad_case_is_a_usage_error(capsys) -> None:
    gpu_check = load_script()
    with pytest.raises(SystemExit) as exit_info:
        gpu_check.main(["--cases", "100by10"])
    assert exit_info.value.code == 2
    assert "expected CLASSESxN, e.g. 100x10, not '100by10'" in capsys.readouterr().err
