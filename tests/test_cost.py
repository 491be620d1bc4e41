"""The measured cost model: ``calibrate`` writes a throughput table, ``run --dry-run`` reads it."""

from __future__ import annotations

import json

import pytest
import torch

from benchmark.cli import main
from benchmark.cost import (
    ASSUMED,
    ASSUMED_DECODE,
    CALIBRATION_FORMAT,
    DECODE_OPS,
    PHASES,
    Calibration,
    CalibrationError,
    DecodeRate,
    Rates,
    Throughput,
    calibration_path,
    duration,
    estimate_suite,
    load_calibration,
    save_calibration,
    suite_decode_needs,
)
from benchmark.plan import KNOWN_SIZES
from benchmark.registry import SUITES

CPU = torch.device("cpu")
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    """Each test its own cache, so no calibration leaks between tests (or from a real one), and a fixed
    preload budget (the default is a share of this machine's memory)."""
    monkeypatch.setenv("LGM_BENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("LGM_BENCH_PRELOAD_GB", "1")
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


def compute(est, phase: str) -> float:
    return est.phases[phase].compute_s


def test_estimate_follows_the_formula_and_the_measured_numbers() -> None:
    smoke = SUITES.get("smoke")
    est = estimate_suite(smoke, KNOWN_SIZES, tiny_rates(100.0, 10.0), workers=1)
    # features: (64 train + 32 test) / 100 img/s; LGM smoke preset: 6 steps -> 7 updates, each 4 classes x
    # K 2 = 8 synthetic images forward+backward (10 img/s) and 8 real forward (100 img/s)
    assert compute(est, "features") == pytest.approx(0.96)
    assert compute(est, "distillation") == pytest.approx(7 * (8 / 10 + 8 / 100))
    assert est.lgm_updates == 7 and est.rates.measured == {("tiny_vit", 32)} and not est.rates.assumed
    faster = estimate_suite(smoke, KNOWN_SIZES, tiny_rates(200.0, 20.0), workers=1)  # both throughputs doubled
    assert compute(faster, "features") == pytest.approx(compute(est, "features") / 2)
    assert compute(faster, "distillation") == pytest.approx(compute(est, "distillation") / 2)
    backward_only = estimate_suite(smoke, KNOWN_SIZES, tiny_rates(100.0, 20.0), workers=1)
    assert compute(backward_only, "features") == pytest.approx(compute(est, "features"))
    assert compute(backward_only, "distillation") == pytest.approx(7 * (8 / 20 + 8 / 100))
    # decoding (ASSUMED_DECODE, one worker) is far faster than this toy compute: the wall time is the compute
    assert est.phases["features"].decode_s == pytest.approx(96 / ASSUMED_DECODE["center_crop"].images_per_s)
    assert est.phases["features"].wall_s == pytest.approx(0.96) and est.phases["features"].bound == "compute"
    assert est.total_hours == pytest.approx(sum(p.wall_s for p in est.phases.values()) / 3600)


def test_paper_probe_cost_counts_every_image_every_epoch() -> None:
    suite = SUITES.get("smoke").replace(protocol="paper")
    est = estimate_suite(suite, KNOWN_SIZES, tiny_rates(100.0, 10.0), workers=1)
    # lgm, neighbors, centroids, kmeans, herding: 2 seeds x 1000 epochs x 4 images; random_real: 2 cells x
    # 1 seed x 1000 x 4; full_data: 2 seeds x 100 epochs x 64 train images
    images = 5 * 2 * 1000 * 4 + 2 * 1000 * 4 + 2 * 100 * 64
    assert compute(est, "probes") == pytest.approx(images / 100.0)


def test_dry_run_reads_the_calibration_and_halves_with_double_throughput(tmp_path, capsys) -> None:
    path = calibration_path(CPU)
    cal = Calibration("test cpu", "cpu", torch.__version__, "2026-01-01", {("tiny_vit", 32): Throughput(2.0, 1.0)})
    save_calibration(cal, path)
    argv = ["run", "--suite", "smoke", "--dry-run", "--device", "cpu", "--results", str(tmp_path / "r"),
            "--workers", "1"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "estimate on test cpu (calibrated 2026-01-01)" in out and str(path) in out
    assert "ASSUMED throughputs" not in out

    def features_line(text: str) -> list[str]:
        return next(line for line in text.splitlines() if line.strip().startswith("features")).split()

    # 96 images at 2 img/s: time and compute 48 s (decoding them, at the assumed rate, takes under 1 s)
    assert features_line(out)[1:5] == ["48.0", "s", "48.0", "s"] and features_line(out)[-1] == "compute-bound"
    cal.table["tiny_vit", 32] = Throughput(4.0, 1.0)
    save_calibration(cal, path)
    assert main(argv) == 0
    assert features_line(capsys.readouterr().out)[1:5] == ["24.0", "s", "24.0", "s"]


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


# -- the decode term ------------------------------------------------------------------------------------

def rates_with_decode(forward: float, fwd_bwd: float, decode: float) -> Rates:
    """``tiny_rates`` plus a decode rate for both ops on smoke_tiny (its 28 px images resized to 37 px:
    tiny_vit's 32 px input x 256 / 224)."""
    rates = tiny_rates(forward, fwd_bwd)
    for op in DECODE_OPS:
        rates.calibration.decode["smoke_tiny", op, 37] = DecodeRate(decode, (28, 28), 8)
    return rates


def test_decode_slower_than_compute_makes_the_phase_decode_bound() -> None:
    smoke = SUITES.get("smoke")
    est = estimate_suite(smoke, KNOWN_SIZES, rates_with_decode(100.0, 10.0, 10.0), workers=2)
    features = est.phases["features"]
    # 96 images: 0.96 s of compute, 96 / (10 img/s x 2 workers) = 4.8 s of decoding beside it
    assert features.compute_s == pytest.approx(0.96) and features.decode_s == pytest.approx(4.8)
    assert features.wall_s == pytest.approx(4.8) and features.idle_share == pytest.approx(0.8)
    assert features.bound == "decode" and features.verdict() == "decode-bound: 80 % of the GPU idle; add workers"
    assert est.rates.decode_measured == {("smoke_tiny", "center_crop", 37), ("smoke_tiny", "random_crop", 37)}
    assert not est.rates.decode_assumed
    more = estimate_suite(smoke, KNOWN_SIZES, rates_with_decode(100.0, 10.0, 10.0), workers=4)
    assert more.phases["features"].decode_s == pytest.approx(2.4)  # twice the workers, half the decoding
    serial = estimate_suite(smoke, KNOWN_SIZES, rates_with_decode(100.0, 10.0, 10.0), workers=0)
    assert serial.phases["features"].wall_s == pytest.approx(0.96 + 9.6)  # the main process does both
    fast = estimate_suite(smoke, KNOWN_SIZES, rates_with_decode(100.0, 10.0, 1000.0), workers=2)
    assert fast.phases["features"].wall_s == pytest.approx(0.96) and fast.phases["features"].verdict() == \
        "compute-bound"


def test_a_preloaded_split_is_decoded_once_a_streamed_one_every_step() -> None:
    smoke = SUITES.get("smoke")
    sizes = {"smoke_tiny": (4, 20, 32)}  # 20 train rows; LGM reads 7 updates x 8 = 56 real images of them
    rates = rates_with_decode(100.0, 10.0, 5.0)
    compute_s = 7 * (8 / 10 + 8 / 100)
    split_bytes = 20 * 3 * 37 * 37  # short side 37 of square images
    once = estimate_suite(smoke, sizes, rates, workers=1, preload_bytes=split_bytes).phases["distillation"]
    assert once.decode_s == pytest.approx(20 / 5) and once.wall_s == pytest.approx(20 / 5 + compute_s)
    assert (once.preloaded, once.streamed) == (1, 0) and once.verdict().endswith("; add workers")
    streamed = estimate_suite(smoke, sizes, rates, workers=1, preload_bytes=split_bytes - 1).phases["distillation"]
    assert streamed.decode_s == pytest.approx(56 / 5) and streamed.wall_s == pytest.approx(56 / 5)
    assert (streamed.preloaded, streamed.streamed) == (0, 1)
    assert streamed.verdict() == f"decode-bound: {100 * (1 - compute_s / 11.2):.0f} % of the GPU idle; " \
                                 "add workers or preload"
    # the full-data paper probe: 2 seeds x 100 epochs of the 20 rows, or the 20 rows once
    full = smoke.replace(protocol="paper", methods=["full_data"])
    probe = estimate_suite(full, sizes, rates, workers=1, preload_bytes=split_bytes).phases["probes"]
    assert probe.decode_s == pytest.approx(20 / 5) and probe.compute_s == pytest.approx(2 * 100 * 20 / 100)
    probe = estimate_suite(full, sizes, rates, workers=1, preload_bytes=0).phases["probes"]
    assert probe.decode_s == pytest.approx(2 * 100 * 20 / 5) and probe.streamed == 1


def test_lgm_sets_decode_nothing_in_the_probe() -> None:
    suite = SUITES.get("smoke").replace(protocol="paper", methods=["lgm"])
    probe = estimate_suite(suite, KNOWN_SIZES, rates_with_decode(100.0, 10.0, 1.0), workers=1).phases["probes"]
    assert probe.compute_s > 0 and probe.decode_s == 0 and probe.wall_s == probe.compute_s


def test_estimate_reads_a_decode_rate_for_exactly_the_needs_calibrate_measures() -> None:
    for name in ("imagenet1k", "fine_grained", "smoke"):
        suite = SUITES.get(name)
        est = estimate_suite(suite, KNOWN_SIZES, Rates(), workers=4, preload_bytes=0)
        assert est.rates.decode_assumed == {need.key for need in suite_decode_needs(suite)}, name
    needs = suite_decode_needs(SUITES.get("imagenet1k"))
    assert sorted(n.key for n in needs) == [("imagenet1k", "center_crop", 256), ("imagenet1k", "random_crop", 256)]


def phase_lines(out: str) -> dict[str, str]:
    return {line.split()[0]: line for line in out.splitlines() if line.strip().split(" ")[0] in PHASES}


def test_dry_run_of_imagenet1k_prints_decode_and_compute_per_phase_and_the_bound(tmp_path, capsys,
                                                                                  monkeypatch) -> None:
    monkeypatch.setenv("LGM_BENCH_PRELOAD_GB", "32")
    argv = ["run", "--suite", "imagenet1k", "--dry-run", "--workers", "15", "--results", str(tmp_path / "r")]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "estimate on NVIDIA H200 (assumed), 15 decode workers, preload budget 32.0 GiB" in out
    assert "phase              time   compute    decode  bound" in out
    center, random = (ASSUMED_DECODE[op].images_per_s for op in ("center_crop", "random_crop"))
    assert f"ASSUMED decode rates (one CPU core, PIL, 500x375 JPEGs: center_crop {center:.0f} img/s, random_crop " \
           f"{random:.0f} img/s) for: imagenet1k" in out
    est = estimate_suite(SUITES.get("imagenet1k"), KNOWN_SIZES, Rates(), workers=15, preload_bytes=32 * 2**30)
    lines = phase_lines(out)
    for phase in PHASES:
        p = est.phases[phase]
        assert lines[phase].split()[1:7] == [*duration(p.wall_s).split(), *duration(p.compute_s).split(),
                                             *duration(p.decode_s).split()]
        assert lines[phase].endswith(p.verdict())
    # the full-data probes decode ImageNet-1k every epoch (its 335 GB do not fit 32 GiB); the 28 small real
    # sets (1000 images each) once
    probes = est.phases["probes"]
    full = 4 * 5 * 100 * 1_281_167 / (ASSUMED_DECODE["random_crop"].images_per_s * 15)
    small = 28 * 1000 / (ASSUMED_DECODE["center_crop"].images_per_s * 15)
    assert probes.decode_s == pytest.approx(full + small)
    assert probes.bound == "decode" and "add workers or preload" in lines["probes"]
    assert lines["distillation"].endswith("compute-bound")


def test_format_1_calibration_is_read_with_assumed_decode_rates(tmp_path, capsys) -> None:
    path = calibration_path(CPU)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"format": 1, "device": "old cpu", "device_type": "cpu", "torch": "t", "date": "d",
                                "entries": [{"backbone": "tiny_vit", "resolution": 32, "forward_images_per_s": 2.0,
                                             "fwd_bwd_images_per_s": 1.0, "batch": 2}]}))
    cal = load_calibration(path)
    assert cal.format == 1 and cal.table == {("tiny_vit", 32): Throughput(2.0, 1.0)} and cal.decode == {}
    assert main(["run", "--suite", "smoke", "--dry-run", "--device", "cpu", "--workers", "1",
                 "--results", str(tmp_path / "r")]) == 0
    out = capsys.readouterr().out
    assert "measured throughputs" in out and "ASSUMED decode rates" in out and "for: smoke_tiny" in out
    assert "the calibration file is format 1 (no decode rates): calibrate again to add them" in out


def test_decode_rates_round_trip_and_a_bad_entry_is_refused(tmp_path) -> None:
    cal = rates_with_decode(2.0, 1.0, 42.5).calibration
    path = save_calibration(cal, tmp_path / "c.json")
    back = load_calibration(path)
    assert back.format == CALIBRATION_FORMAT == 2 and back.decode == cal.decode and back.table == cal.table
    data = json.loads(path.read_text())
    data["decode"][0]["op"] = "sharpen"
    path.write_text(json.dumps(data))
    with pytest.raises(CalibrationError, match="malformed .*unknown decode op 'sharpen'"):
        load_calibration(path)
    data["decode"][0].update(op="center_crop", images_per_s=0)
    path.write_text(json.dumps(data))
    with pytest.raises(CalibrationError, match="decode throughput must be a positive number"):
        load_calibration(path)


def test_dry_run_with_a_bad_preload_budget_warns_and_preloads_nothing(tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("LGM_BENCH_PRELOAD_GB", "lots")
    assert main(["run", "--suite", "smoke", "--dry-run", "--device", "cpu", "--workers", "1",
                 "--results", str(tmp_path / "r")]) == 0
    out = capsys.readouterr().out
    assert "warning: LGM_BENCH_PRELOAD_GB='lots' is not a number; set it to a size, e.g. LGM_BENCH_PRELOAD_GB=8; " \
           "the estimate preloads nothing" in out
    assert ", 1 decode worker, preload budget 0.0 GiB:" in out
