"""Inputs that used to give wrong numbers with exit status 0 (issue 19): 16-bit and other image modes,
non-finite weights, images and features, a device that does not exist, an edited cell file."""

from __future__ import annotations

import io
import math
import struct
import zlib
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

from benchmark.checks import InputError, NonFiniteError, check_finite, parse_device
from benchmark.cli import EXIT_FAILED_CELLS, EXIT_USAGE, main
from benchmark.data.decode import ImageDecodeError, to_rgb
from benchmark.results import ROWS_SHA256_KEY, InvalidCellFile, check_cell_file, write_cell
from benchmark.types import Preprocess
from tests.test_byo_bad_inputs import suite_file
from tests.test_refs import TINY, tiny_timm_weights, write_image_folder

pytestmark = pytest.mark.usefixtures("one_thread")

RNG = np.random.default_rng(19)
GREY = RNG.integers(0, 256, (9, 11), dtype=np.uint8)
RGB = RNG.integers(0, 256, (9, 11, 3), dtype=np.uint8)


def reopened(image: Image.Image, fmt: str) -> Image.Image:
    """``image`` written as ``fmt`` and read back (what a dataset's file gives)."""
    buf = io.BytesIO()
    image.save(buf, format=fmt)
    return Image.open(io.BytesIO(buf.getvalue()))


def png_16bit_rgb(pixels: np.ndarray) -> bytes:
    """A 48-bit RGB PNG (PIL cannot write one): H x W x 3 uint16, big-endian samples."""
    raw = b"".join(b"\0" + row.astype(">u2").tobytes() for row in pixels)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    h, w = pixels.shape[:2]
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def palette_with_transparency() -> tuple[Image.Image, np.ndarray]:
    palette = RNG.integers(0, 256, (16, 3), dtype=np.uint8)
    index = RNG.integers(0, 16, GREY.shape, dtype=np.uint8)
    image = Image.fromarray(index, "P")
    image.putpalette(palette.flatten().tolist())
    image.info["transparency"] = 3
    return reopened(image, "PNG"), palette[index]


def grey_rgb() -> np.ndarray:
    return np.repeat(GREY[..., None], 3, axis=2)


# mode -> (the stored image, the RGB the 8-bit file gives)
MODES = {
    "I;16 (16-bit grey PNG)": lambda: (reopened(Image.fromarray(GREY.astype(np.uint16) * 257), "PNG"), grey_rgb()),
    "I (32-bit TIFF, 16-bit values)": lambda: (reopened(Image.fromarray(GREY.astype(np.int32) * 257), "TIFF"),
                                               grey_rgb()),
    "F (fractions)": lambda: (reopened(Image.fromarray(GREY.astype(np.float32) / 255), "TIFF"), grey_rgb()),
    "F (8-bit levels)": lambda: (reopened(Image.fromarray(GREY.astype(np.float32)), "TIFF"), grey_rgb()),
    "P with transparency": palette_with_transparency,
    "LA": lambda: (reopened(Image.fromarray(np.stack([GREY, GREY[::-1]], -1), "LA"), "PNG"), grey_rgb()),
    "CMYK": lambda: (reopened(Image.fromarray(RGB).convert("CMYK"), "TIFF"), RGB),
    "48-bit RGB PNG": lambda: (Image.open(io.BytesIO(png_16bit_rgb(RGB.astype(np.uint16) * 257))), RGB),
    "RGBA": lambda: (reopened(Image.fromarray(np.concatenate([RGB, GREY[..., None]], -1), "RGBA"), "PNG"), RGB),
}


@pytest.mark.parametrize("mode", list(MODES))
def test_every_mode_decodes_to_the_rgb_of_the_8bit_file(mode: str) -> None:
    image, expected = MODES[mode]()
    assert np.array_equal(np.asarray(to_rgb(image)), expected)
    # through the preprocessing every real image takes: the same tensor as the 8-bit file's
    same = Preprocess(11, 9)
    assert torch.equal(same(image), same(Image.fromarray(expected)))


@pytest.mark.parametrize(("image", "expected"), [
    (lambda: Image.new("LAB", (4, 4)), "images of PIL mode 'LAB' have no faithful RGB reading here"),
    (lambda: Image.fromarray(np.full((2, 2), 70000, np.int32)), "with values in [70000, 70000], outside the 16-bit"),
    (lambda: Image.fromarray(np.full((2, 2), -0.5, np.float32)), "with values in [-0.5, -0.5], neither fractions"),
    (lambda: Image.fromarray(np.full((2, 2), np.nan, np.float32)), "holding 4 NaN or infinite values"),
], ids=["LAB", "I beyond 16 bits", "F negative", "F NaN"])
def test_modes_without_a_faithful_reading_are_refused(image, expected: str) -> None:
    with pytest.raises(ImageDecodeError) as info:
        to_rgb(image())
    assert expected in str(info.value) and "save the images as 8-bit RGB or greyscale" in str(info.value)


def run_rows(tmp_path: Path, dataset: str, name: str) -> list[tuple]:
    suite = suite_file(tmp_path / name, f'name = "mine"\ndatasets = ["{dataset}"]\n'
                                        'methods = ["centroids", "full_data"]\nbackbones = ["tiny_vit"]\n'
                                        'seeds = 1\nprotocol = "fast"\n')
    results = tmp_path / name / "results"
    assert main(["run", "--suite", suite, "--results", str(results), "--no-progress"]) == 0
    from benchmark.results import read_results

    frame = read_results(results).sort_values("method")
    return list(frame[["method", "n_train", "top1", "top5"]].itertuples(index=False))


def test_a_16bit_folder_gives_the_rows_of_its_8bit_copy(tmp_path: Path) -> None:
    eight = write_image_folder(tmp_path / "eight")
    sixteen = tmp_path / "sixteen"
    for path in eight.rglob("*.png"):
        target = sixteen / path.relative_to(eight)
        target.parent.mkdir(parents=True, exist_ok=True)
        with Image.open(path) as image:
            assert image.mode == "L"
            Image.fromarray(np.asarray(image).astype(np.uint16) * 257).save(target)  # 16-bit grey PNG
    with Image.open(next(sixteen.rglob("*.png"))) as image:
        assert image.mode == "I;16"
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    rows_8, rows_16 = run_rows(tmp_path, f"folder:{eight}", "a"), run_rows(tmp_path, f"folder:{sixteen}", "b")
    assert len(rows_8) == 2 and rows_8 == rows_16


# -- non-finite weights, images and features --------------------------------------------------------
@pytest.mark.parametrize("bad", [float("nan"), float("inf")], ids=["nan", "inf"])
def test_a_weight_file_holding_nan_or_inf_is_an_error_naming_the_tensor(tmp_path: Path, capsys, bad: float) -> None:
    state = load_file(str(tiny_timm_weights(tmp_path / "good.safetensors")))
    state["blocks.0.attn.qkv.weight"][5, 7] = bad
    save_file(state, str(tmp_path / "bad.safetensors"))
    results = tmp_path / "results"
    argv = ["run", "--suite", "smoke", "--backbones", f"timm:{TINY}@32,weights={tmp_path / 'bad.safetensors'}",
            "--methods", "centroids", "--results", str(results)]
    assert main(argv) == EXIT_USAGE
    err = capsys.readouterr().err.strip()
    nan, inf = (1, 0) if math.isnan(bad) else (0, 1)
    assert err.startswith("error: ") and "\n" not in err, err
    assert (f"weight tensor 'blocks.0.attn.qkv.weight' holds values that are not finite: 1 of 110592 values are not "
            f"finite ({nan} NaN, {inf} inf) in 1 of 576 rows, the first at index (5, 7)") in err
    assert not results.exists()


def eval_set(tmp_path: Path, images: torch.Tensor) -> list[str]:
    path = tmp_path / "set.safetensors"
    save_file({"images": images.contiguous(), "labels": torch.arange(4)}, str(path))
    return ["eval", "--images", str(path), "--dataset", "smoke_tiny", "--backbones", "tiny_vit", "--seeds", "1",
            "--results", str(tmp_path / "results")]


@pytest.mark.parametrize(("where", "expected"), [
    ("one", "'images' hold values that are not finite: 1 of 768 values are not finite (1 NaN, 0 inf) in 1 of 4 rows, "
            "the first at index (2, 1, 3, 4) as (image, channel, y, x); the images holding them: 2"),
    ("all", "768 of 768 values are not finite (768 NaN, 0 inf) in 4 of 4 rows, the first at index (0, 0, 0, 0) as "
            "(image, channel, y, x); the images holding them: 0, 1, 2, 3"),
])
def test_eval_of_images_with_nan_pixels_says_how_many_and_where(tmp_path: Path, capsys, where: str,
                                                                 expected: str) -> None:
    images = torch.rand(4, 3, 8, 8)
    if where == "one":
        images[2, 1, 3, 4] = float("nan")
    else:
        images[:] = float("nan")
    assert main(eval_set(tmp_path, images)) == EXIT_USAGE
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and expected in err, err
    assert not (tmp_path / "results").exists()


class NaNBackbone(torch.nn.Module):
    """A backbone whose features are NaN for every other image (what fp16 overflow gives)."""

    name, feature_dim, input_size = "nan_net", 4, 8

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        out = x.flatten(1)[:, :4].clone()
        out[1::2] = float("nan")
        return out

    forward = embed


def test_non_finite_features_are_an_error_where_they_are_made() -> None:
    from benchmark.embedding import embed_tensor

    with pytest.raises(NonFiniteError, match=r"features of nan_net: 8 of 16 values are not finite \(8 NaN, 0 inf\) "
                                             r"in 2 of 4 rows, the first at index \(1, 0\)"):
        embed_tensor(NaNBackbone(), torch.rand(4, 3, 8, 8))
    x = torch.rand(3, 2)
    assert check_finite(x, "x") is x
    big = torch.full((4,), 3e38)  # finite, though its sum overflows: the exact check decides
    assert check_finite(big, "big") is big
    with pytest.raises(NonFiniteError, match=r"big: 1 of 4 values are not finite \(0 NaN, 1 inf\), the first at "
                                             r"index 2"):
        check_finite(torch.tensor([3e38, 3e38, float("inf"), 1.0]), "big")


def test_the_paper_probe_stops_on_non_finite_features_instead_of_skipping_steps() -> None:
    from benchmark.probe.paper import PaperProbe, Schedule, _Images

    images = _Images(images=torch.rand(4, 3, 8, 8), device=torch.device("cpu"))
    schedule = Schedule(epochs=1, batch_size=4, lr=1e-3, full_data=False, n=4)
    with pytest.raises(NonFiniteError, match="features of nan_net in the paper probe: 8 of 16 values"):
        PaperProbe().train_head(images, torch.arange(4), 4, NaNBackbone(), schedule, 3407, torch.device("cpu"))


# -- devices ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(("device", "expected"), [
    ("cpu:3", "--device cpu:3: there is one CPU device, cpu (no index); use --device cpu"),
    ("cpu:1", "--device cpu:1: there is one CPU device"),
    ("mps:1", "--device mps:1: there is one MPS device, mps (no index); use --device mps"),
])
def test_a_device_index_that_names_nothing_is_one_line_exit_2(tmp_path: Path, capsys, device: str,
                                                              expected: str) -> None:
    with pytest.raises(InputError, match="there is one"):
        parse_device(device)
    assert main(["run", "--suite", "smoke", "--device", device, "--results", str(tmp_path / "r")]) == EXIT_USAGE
    err = capsys.readouterr().err.strip()
    assert err == f"error: {expected}" or (err.startswith("error: ") and expected in err and "\n" not in err), err
    assert not (tmp_path / "r").exists()
    assert parse_device("cpu:0").type == parse_device("cpu").type == "cpu"


# -- cell files carry a checksum of their rows -------------------------------------------------------
def cell(tmp_path: Path) -> Path:
    from datetime import datetime, timezone

    t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
    rows = [{"suite": "s", "dataset": "d", "method": "m", "eval_backbone": "b", "ipc": 1, "method_seed": 0,
             "probe_seed": 3407 + k, "protocol": "fast", "top1": 61.25 + k, "top5": 97.5, "status": "ok",
             "error": "", "cell_id": "c", "config_hash": "h" * 16, "started_at": t0, "finished_at": t0}
            for k in range(2)]
    path = tmp_path / "results" / "cells" / "s" / "c.parquet"
    write_cell(path, rows)
    return path


def test_an_edited_top1_makes_the_cell_broken(tmp_path: Path, capsys) -> None:
    path = cell(tmp_path)
    assert check_cell_file(path)["top1"].tolist() == [61.25, 62.25]
    table = pq.read_table(path)
    assert ROWS_SHA256_KEY in table.schema.metadata
    i = table.column_names.index("top1")
    pq.write_table(table.set_column(i, "top1", pa.array([91.25, 62.25])), path)  # valid Parquet, same metadata
    with pytest.raises(InvalidCellFile, match="its rows do not match the checksum written with them"):
        check_cell_file(path)
    out = tmp_path / "out"
    argv = ["report", "--results", str(tmp_path / "results"), "--out", str(out), "--all"]
    assert main(argv) == EXIT_FAILED_CELLS
    err = capsys.readouterr().err
    assert f"{path}: its rows do not match the checksum" in err and "--allow-broken" in err
    assert not out.exists()


def test_a_flipped_bit_in_a_top1_value_makes_the_cell_broken(tmp_path: Path) -> None:
    path = cell(tmp_path)
    data = bytearray(path.read_bytes())
    at = data.find(struct.pack("<d", 61.25))
    assert at > 0  # the value's bytes as stored (plain in the dictionary page)
    data[at] ^= 0x01  # the lowest mantissa bit: still a valid double, a valid file
    path.write_bytes(bytes(data))
    assert pq.read_table(path).column("top1").to_pylist()[0] != 61.25
    with pytest.raises(InvalidCellFile, match="do not match the checksum"):
        check_cell_file(path)


def test_cell_files_from_before_the_checksum_are_still_read(tmp_path: Path) -> None:
    path = cell(tmp_path)
    table = pq.read_table(path)
    old = {k: v for k, v in table.schema.metadata.items() if k != ROWS_SHA256_KEY}
    pq.write_table(table.replace_schema_metadata(old), path)
    assert check_cell_file(path)["top1"].tolist() == [61.25, 62.25]
