"""``calibrate``'s decode rates: one worker's images/s per (dataset, decode op, size) on the data at hand,
written to the calibration file and read by the dry run; data not on this machine falls back to the
assumed rates, and nothing is downloaded."""

from __future__ import annotations

import io
import json
import os

import pytest
import torch

from benchmark.calibrate import DecodePlan, calibrate_decode, measure_decode
from benchmark.cli import main
from benchmark.cost import ASSUMED_DECODE, Calibration, DecodeNeed, calibration_path, load_calibration
from benchmark.types import LabeledImages

CPU = torch.device("cpu")
pytestmark = pytest.mark.usefixtures("one_thread")
FAST = ["--batch", "2", "--iterations", "1", "--warmup", "0"]


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LGM_BENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("LGM_BENCH_PRELOAD_GB", "1")
    return tmp_path / "cache"


def jpeg_bytes(width: int, height: int, seed: int) -> bytes:
    from PIL import Image

    gen = torch.Generator().manual_seed(seed)
    pixels = torch.randint(0, 256, (height, width, 3), generator=gen, dtype=torch.uint8).numpy()
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="JPEG", quality=90)
    return out.getvalue()


def jpeg_mirror(root, sizes: list[tuple[int, int]]):
    """An ImageNet-1k mirror in the Hub's parquet layout holding JPEGs of ``sizes`` (two classes)."""
    from datasets import ClassLabel, Dataset, Features, Image

    (root / "data").mkdir(parents=True)
    features = Features({"image": Image(), "label": ClassLabel(names=[f"n{c:04d}" for c in range(1000)])})
    images = [{"bytes": jpeg_bytes(w, h, i), "path": None} for i, (w, h) in enumerate(sizes)]
    Dataset.from_dict({"image": images, "label": [i % 2 for i in range(len(sizes))]}, features=features).to_parquet(
        str(root / "data" / "train-00000-of-00001.parquet"))
    return root


def test_calibrate_writes_decode_rates_the_dry_run_reads(own_cache, tmp_path, capsys) -> None:
    argv = ["calibrate", "--device", "cpu", "--suite", "smoke", *FAST, "--decode-rows", "5", "--decode-warmup", "1"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "decode smoke_tiny center_crop @ 37 px: " in out and "(5 rows, one process)" in out
    data = json.loads(calibration_path(CPU).read_text())
    assert data["format"] == 2
    assert [(d["dataset"], d["op"], d["side"], d["width"], d["height"], d["rows"]) for d in data["decode"]] == [
        ("smoke_tiny", "center_crop", 37, 28, 28, 5), ("smoke_tiny", "random_crop", 37, 28, 28, 5)]
    assert all(d["images_per_s"] > 0 and d["cpu_images_per_s"] > 0 for d in data["decode"])
    cal = load_calibration(calibration_path(CPU))
    assert set(cal.decode) == {("smoke_tiny", "center_crop", 37), ("smoke_tiny", "random_crop", 37)}
    assert main(["run", "--suite", "smoke", "--dry-run", "--device", "cpu", "--workers", "1",
                 "--results", str(tmp_path / "r")]) == 0
    out = capsys.readouterr().out
    assert "measured decode rates" in out and "smoke_tiny random_crop@37px" in out and "on 28x28" in out
    assert "ASSUMED decode" not in out
    # --decode-rows 0: the throughputs only; the decode rates already there stay
    assert main([*argv[:-4], "--decode-rows", "0"]) == 0
    assert "decode smoke_tiny" not in capsys.readouterr().out
    assert set(load_calibration(calibration_path(CPU)).decode) == set(cal.decode)


def test_a_hub_entry_pointed_at_local_files_is_measured_at_its_image_size(tmp_path, monkeypatch) -> None:
    root = jpeg_mirror(tmp_path / "in1k", [(60, 45), (64, 48), (80, 60), (60, 45), (64, 48)])
    monkeypatch.setenv("LGM_BENCH_DATA_IMAGENET1K", str(root))
    cal = Calibration("x", "cpu", "t", "d")
    said = []
    need = DecodeNeed("imagenet1k", "random_crop", 32, 32)
    assert calibrate_decode(cal, [need], DecodePlan(rows=4, warmup=1), say=said.append) == []
    rate = cal.decode["imagenet1k", "random_crop", 32]
    assert rate.rows == 4 and rate.images_per_s > 0
    # the 4 timed rows of the seeded sample, low median of width and height
    order = torch.randperm(5, generator=torch.Generator().manual_seed(0)).tolist()[:4]
    sizes = [[(60, 45), (64, 48), (80, 60), (60, 45), (64, 48)][i] for i in order]
    assert rate.image_size == (sorted(w for w, _ in sizes)[1], sorted(h for _, h in sizes)[1])
    assert said[0] == f"decode imagenet1k random_crop @ 32 px: {rate.describe()} (4 rows, one process)"
    # a busy machine (wall rate far below the CPU-time rate) adds a note; which one depends on the timing
    busy = rate.images_per_s < 0.7 * rate.cpu_images_per_s
    assert len(said) == 1 + busy and all(line.startswith("  note: ") for line in said[1:])


def test_a_small_split_is_timed_on_every_row() -> None:
    from datasets import Dataset, Features, Image

    ds = Dataset.from_dict({"image": [{"bytes": jpeg_bytes(40, 30, i), "path": None} for i in range(3)]},
                           features=Features({"image": Image()}))
    data = LabeledImages("toy", "train", ds, ["a"], "toy")
    rate = measure_decode(data, DecodeNeed("toy", "center_crop", 16, 8), DecodePlan(rows=128, warmup=8))
    assert rate.rows == 3 and rate.image_size == (40, 30)
    with pytest.raises(ValueError, match="no train rows"):
        measure_decode(LabeledImages("toy", "train", ds.select([]), ["a"], "toy"),
                       DecodeNeed("toy", "center_crop", 16, 8), DecodePlan())


def test_a_hub_dataset_not_on_this_machine_is_assumed_without_downloading(monkeypatch) -> None:
    # the parent online; the measuring process is started offline, so the uncached dataset fails there
    for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    cal = Calibration("x", "cpu", "t", "d")
    said = []
    skipped = calibrate_decode(cal, [DecodeNeed("imagenet1k", "random_crop", 256, 256)], DecodePlan(rows=2),
                               say=said.append)
    assert cal.decode == {} and said == skipped and len(skipped) == 1
    assert skipped[0].startswith("decode of imagenet1k: not measured, the data is not on this machine (")
    assert "OfflineModeIsEnabled" in skipped[0]
    center, random = (ASSUMED_DECODE[op].images_per_s for op in ("center_crop", "random_crop"))
    assert skipped[0].endswith(f"the estimate ASSUMES center_crop {center:.0f}, random_crop {random:.0f} img/s per "
                               "worker on 500x375 JPEGs")
    assert "HF_HUB_OFFLINE" not in os.environ and "HF_DATASETS_OFFLINE" not in os.environ  # restored


@pytest.mark.parametrize("args, message", [
    (["--decode-rows", "-1"], "--decode-rows must be at least 1 (0 skips decoding)"),
    (["--decode-warmup", "-1"], "--decode-warmup must be 0 or more"),
    (["--datasets", "cub200"], "--datasets cub200: not in suite 'smoke' (its datasets: smoke_tiny)"),
    (["--datasets", "cub20"], "cub200"),
])
def test_bad_decode_args_exit_2_and_write_nothing(own_cache, capsys, args, message) -> None:
    assert main(["calibrate", "--suite", "smoke", "--device", "cpu", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1
    assert not (own_cache / "calibration").exists()
