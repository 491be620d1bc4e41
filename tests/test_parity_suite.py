"""The ``parity`` suite and its summary table (``python -m benchmark parity``)."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from benchmark.cli import main
from benchmark.parity import loss_windows, parity_frame, parity_markdown
from benchmark.suites import PARITY, CellSettings
from tests.toys import write_rows


def test_parity_suite_is_the_compared_setting():
    cells = PARITY.cells()
    lgm = [c for c in cells if c.method == "lgm"]
    assert sorted(c.method_seed for c in lgm) == [0, 1, 2]  # three distillation seeds
    assert all(len(c.probe_seeds) == 5 and c.protocol == "fast" for c in lgm)
    assert len([c for c in cells if c.method == "random_real"]) == 5
    options = PARITY.options_for("lgm", "fashion_mnist_embedded")
    assert (options["preset"], options["steps"], options["augs_per_batch"], options["grow_every"],
            options["lr"], options["precision"]) == ("paper", 1000, 4, 100, 2e-3, "fp32")
    assert PARITY.backbone_options["effnet_lite0"]["input_size"] == 64


def test_loss_windows_average_each_hundred_updates():
    curve = [1.0] * 100 + [0.5] * 100 + [0.2]
    assert loss_windows(curve) == [("1-100", 1.0), ("101-200", 0.5), ("201-201", pytest.approx(0.2))]


def _row(method, seed, probe, top1, artifact="", config_hash=None):
    distill = "effnet_lite0" if method == "lgm" else ""
    current = CellSettings(PARITY).hash("fashion_mnist_embedded", method, distill, "effnet_lite0", "fast")
    return {"suite": "parity", "dataset": "fashion_mnist_embedded", "method": method,
            "distill_backbone": distill, "eval_backbone": "effnet_lite0",
            "ipc": 1, "method_seed": seed, "probe_seed": probe, "protocol": "fast", "top1": top1, "top5": 99.0,
            "status": "ok", "artifact": artifact, "started_at": datetime(2026, 1, 1, tzinfo=timezone.utc),
            "config_hash": config_hash or current}


def test_parity_table_from_results_and_artifacts(tmp_path, capsys):
    results = tmp_path / "results"
    for seed in (0, 1):
        art = results / "artifacts" / f"lgm{seed}"
        art.mkdir(parents=True)
        curve = [0.9 + 0.01 * seed] * 100 + [0.7] * 100 + [0.6]
        (art / "meta.json").write_text(json.dumps({"metadata": {"loss_curve": curve}}))
        write_rows(results, f"lgm{seed}",
                   [_row("lgm", seed, 3407 + k, 60.0 + seed + k, str(art)) for k in range(2)])
    write_rows(results, "rr", [_row("random_real", 0, 3407, 49.0)])
    # made with earlier settings: left out, not pooled with seed 0
    write_rows(results, "old", [_row("lgm", 0, 3407, 10.0, config_hash="0" * 16)])
    frame = parity_frame(results)
    assert frame["set"].tolist() == ["lgm seed 0", "lgm seed 1", "random real (1 sets)"]
    assert frame["top1"].tolist()[:2] == [60.5, 61.5]
    assert frame["loss 1-100"].tolist()[:2] == pytest.approx([0.90, 0.91])
    assert frame["loss 201-201"].tolist()[:2] == pytest.approx([0.6, 0.6])
    text = parity_markdown(frame)
    assert "60.50 ± 0.71" in text and "0.910" in text
    assert main(["parity", "--results", str(results)]) == 0
    assert "lgm seed 1" in capsys.readouterr().out


def test_parity_without_results_is_a_usage_error(tmp_path, capsys):
    assert main(["parity", "--results", str(tmp_path)]) == 2
    assert "run --suite parity" in capsys.readouterr().err
