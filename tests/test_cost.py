"""The measured cost model: ``calibrate`` writes a throughput table, ``run --dry-run`` reads it."""

from __future__ import annotations

import json

import pytest
import torch

from benchmark.cli import main
from benchmark.cost import (
    ASSUMED,
    Calibration,
    Rates,
    Throughput,
    calibration_path,
    estimate_suite,
    load_calibration,
    save_calibration,
)
from benchmark.plan import KNOWN_SIZES
from benchmark.registry import SUITES

CPU = torch.device("cpu")
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    """Each test its own cache, so no calibration leaks between tests (or from a real one)."""
    monkeypatch.setenv("LGM_BENCH_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def tiny_rates(forward: float, fwd_bwd: float) -> Rates:
    cal = Calibration("test cpu", "cpu", torch.__version__, "2026-01-01",
                      {("tiny_vit", 32): Throughput(forward, fwd_bwd)})
    return Rates(cal, "test")


def test_calibrate_on_cpu_writes_the_table(own_cache, capsys) -> None:
    argv = ["calibrate", "--device", "cpu", "--suite", "smoke", "--batch", "2", "--iterations", "1",
            "--warmup", "0"]
    assert main(argv) == 0
    path = calibration_path(CPU)
    assert path.parent == own_cache / "calibration" and path.is_file()
    assert f"wrote {path}" in capsys.readouterr().out
    data = json.loads(path.read_text())
    assert data["torch"] == torch.__version__ and data["device_type"] == "cpu" and data["date"]
    (entry,) = data["entries"]
    assert (entry["backbone"], entry["resolution"], entry["batch"]) == ("tiny_vit", 32, 2)
    assert entry["forward_images_per_s"] > 0 and entry["fwd_bwd_images_per_s"] > 0
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temp file left
    # a second calibration at another size adds to the table, the first entry stays
    assert main([*argv, "--resolutions", "16"]) == 0
    assert set(load_calibration(path).table) == {("tiny_vit", 32), ("tiny_vit", 16)}


def test_estimate_follows_the_formula_and_the_measured_numbers() -> None:
    smoke = SUITES.get("smoke")
    est = estimate_suite(smoke, KNOWN_SIZES, tiny_rates(100.0, 10.0))
    # features: (64 train + 32 test) / 100 img/s; LGM smoke preset: 6 steps -> 7 updates, each 4 classes x
    # K 2 = 8 synthetic images forward+backward (10 img/s) and 8 real forward (100 img/s)
    assert est.seconds["features"] == pytest.approx(0.96)
    assert est.seconds["distillation"] == pytest.approx(7 * (8 / 10 + 8 / 100))
    assert est.lgm_updates == 7 and est.rates.measured == {("tiny_vit", 32)} and not est.rates.assumed
    faster = estimate_suite(smoke, KNOWN_SIZES, tiny_rates(200.0, 20.0))  # both throughputs doubled
    assert faster.seconds["features"] == pytest.approx(est.seconds["features"] / 2)
    assert faster.seconds["distillation"] == pytest.approx(est.seconds["distillation"] / 2)
    backward_only = estimate_suite(smoke, KNOWN_SIZES, tiny_rates(100.0, 20.0))
    assert backward_only.seconds["features"] == pytest.approx(est.seconds["features"])
    assert backward_only.seconds["distillation"] == pytest.approx(7 * (8 / 20 + 8 / 100))


def test_paper_probe_cost_counts_every_image_every_epoch() -> None:
    suite = SUITES.get("smoke").replace(protocol="paper")
    est = estimate_suite(suite, KNOWN_SIZES, tiny_rates(100.0, 10.0))
    # lgm, neighbors, centroids, kmeans, herding: 2 seeds x 1000 epochs x 4 images; random_real: 2 cells x
    # 1 seed x 1000 x 4; full_data: 2 seeds x 100 epochs x 64 train images
    images = 5 * 2 * 1000 * 4 + 2 * 1000 * 4 + 2 * 100 * 64
    assert est.seconds["probes"] == pytest.approx(images / 100.0)


def test_dry_run_reads_the_calibration_and_halves_with_double_throughput(tmp_path, capsys) -> None:
    path = calibration_path(CPU)
    cal = Calibration("test cpu", "cpu", torch.__version__, "2026-01-01", {("tiny_vit", 32): Throughput(2.0, 1.0)})
    save_calibration(cal, path)
    argv = ["run", "--suite", "smoke", "--dry-run", "--device", "cpu", "--results", str(tmp_path / "r")]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "estimate on test cpu (calibrated 2026-01-01)" in out and str(path) in out and "ASSUMED" not in out

    def features_line(text: str) -> str:
        return next(line for line in text.splitlines() if line.strip().startswith("features"))

    assert features_line(out).split()[1:] == ["48.0", "s"]  # 96 images at 2 img/s
    cal.table["tiny_vit", 32] = Throughput(4.0, 1.0)
    save_calibration(cal, path)
    assert main(argv) == 0
    assert features_line(capsys.readouterr().out).split()[1:] == ["24.0", "s"]


def test_dry_run_without_calibration_names_the_assumed_numbers(tmp_path, capsys) -> None:
    assert main(["run", "--suite", "smoke", "--dry-run", "--device", "cpu", "--results", str(tmp_path / "r")]) == 0
    out = capsys.readouterr().out
    assert "(assumed)" in out and "ASSUMED throughputs" in out and "tiny_vit@32px" in out
    assert f"{ASSUMED.forward:.0f} img/s forward" in out and "`python -m benchmark calibrate`" in out
    for phase in ("features", "distillation", "probes"):
        assert any(line.strip().startswith(phase) for line in out.splitlines())


@pytest.mark.parametrize("content", ["{not json", json.dumps({"format": 99}),
                                     json.dumps({"format": 1, "device": "x", "device_type": "cpu", "torch": "t",
                                                 "date": "d", "entries": [{"backbone": "tiny_vit", "resolution": 32,
                                                                           "forward_images_per_s": -1,
                                                                           "fwd_bwd_images_per_s": 1}]})],
                         ids=["unreadable", "wrong-format", "negative-throughput"])
def test_bad_calibration_file_is_ignored_with_a_warning_naming_it(tmp_path, capsys, content) -> None:
    path = calibration_path(CPU)
    path.parent.mkdir(parents=True)
    path.write_text(content)
    assert main(["run", "--suite", "smoke", "--dry-run", "--device", "cpu", "--results", str(tmp_path / "r")]) == 0
    out = capsys.readouterr().out
    assert f"warning: ignored calibration file {path}" in out and "ASSUMED throughputs" in out


@pytest.mark.parametrize("args, message", [
    (["--batch", "0"], "--batch must be at least 1"),
    (["--iterations", "0"], "--iterations must be at least 1"),
    (["--backbones", "tiny_vitt"], "tiny_vit"),
    (["--resolutions", "30"], "multiple of the patch size 8"),
    (["--suite", "smok"], "smoke"),
    (["--device", "cuda:7"], "--device"),
])
def test_calibrate_bad_args_exit_2_and_write_nothing(own_cache, capsys, args, message) -> None:
    assert main(["calibrate", "--suite", "smoke", "--device", "cpu", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1
    assert not (own_cache / "calibration").exists()


def test_calibrate_skips_backbones_without_weights(own_cache, capsys, monkeypatch) -> None:
    from benchmark.registry import BACKBONES

    spec = BACKBONES.get("mocov3_vitb16")  # as offline without its download, wherever the test runs
    monkeypatch.setattr(type(spec), "weights_available", lambda self, cache_dir=None: False)
    assert main(["calibrate", "--device", "cpu", "--backbones", "mocov3_vitb16"]) == 2
    captured = capsys.readouterr()
    assert "skipped mocov3_vitb16: its weights are not on this machine" in captured.out
    assert "error: nothing measured" in captured.err and not (own_cache / "calibration").exists()
    assert main(["calibrate", "--device", "cpu", "--backbones", "tiny_vit", "mocov3_vitb16", "--batch", "2",
                 "--iterations", "1", "--warmup", "0"]) == 0
    assert "skipped mocov3_vitb16" in capsys.readouterr().out
    assert set(load_calibration(calibration_path(CPU)).table) == {("tiny_vit", 32)}
