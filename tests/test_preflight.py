"""The preflight (issue 19): what used to fail per cell after work had started is one line per problem
and exit status 2 before any work, with nothing written; `run --check` and `status --check` run it
alone; and the messages that used to be unclear."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from benchmark.cli import EXIT_USAGE, main
from tests.test_byo_bad_inputs import SUITE, suite_file
from tests.test_refs import tiny_timm_weights, write_image_folder

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(autouse=True)
def _nothing_cached(tmp_path_factory, monkeypatch):
    """No Hub weights or datasets on this machine, whatever the developer's caches hold."""
    import datasets
    import huggingface_hub.constants as constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path_factory.mktemp("hub")))
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path_factory.mktemp("hf_datasets"))
    datasets.disable_progress_bars()  # "Generating train split" on stderr is not ours to check
    yield
    datasets.enable_progress_bars()


def png(cls: int, seed: int) -> bytes:
    pixels = np.clip(np.array([200 * (cls == 0), 200 * (cls == 1), 90]) + np.random.default_rng(seed).normal(
        0, 10, (8, 8, 3)), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


def folder(tmp_path: Path, damage: str = "") -> str:
    """A two-class image folder, ``<root>/{train,test}/{a,b}/<i>.png``, with ``damage`` done to it."""
    root = tmp_path / "images"
    for s, split in enumerate(("train", "test")):
        for c, name in enumerate("ab"):
            (root / split / name).mkdir(parents=True)
            for i in range(3):
                (root / split / name / f"{i}.png").write_bytes(png(c, 100 * s + 10 * c + i))
    first = root / "train" / "a" / "0.png"
    if damage == "corrupt":
        first.write_bytes(b"this is no image " * 8)
    elif damage == "truncated":
        first.write_bytes(first.read_bytes()[:60])
    elif damage == "zero-byte":
        first.write_bytes(b"")
    elif damage == "bomb":
        first.write_bytes(bomb())
    elif damage == "nested":
        for path in sorted(root.rglob("*.png")):
            (path.parent / "sub").mkdir(exist_ok=True)
            path.rename(path.parent / "sub" / path.name)
    return f"folder:{root}"


def bomb(side: int = 15_000) -> bytes:
    """A 1-bit PNG of side x side pixels (above PIL's decompression-bomb limit), a few KB of zlib."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    raw = zlib.compress(b"\0" * ((side // 8 + 1) * side), 9)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0))
            + chunk(b"IDAT", raw) + chunk(b"IEND", b""))


def parquet(tmp_path: Path, damage: str = "") -> str:
    """A parquet mirror in the Hub layout (written by HF datasets), with ``damage`` done to it."""
    from datasets import ClassLabel, Dataset, Features, Value
    from datasets import Image as ImageFeature

    root = tmp_path / "mirror"
    (root / "data").mkdir(parents=True)
    for s, split in enumerate(("train", "test")):
        labels = [c for c in range(2) for _ in range(3)]
        images = [{"bytes": png(c, 100 * s + i), "path": None} for i, c in enumerate(labels)]
        image_name, label_name = "picture" if damage == "no image column" else "image", \
            "target" if damage == "no label column" else "label"
        label_feature: object = ClassLabel(names=["a", "b"])
        if damage == "string labels":
            labels, label_feature = [str(v) for v in labels], Value("string")
        elif damage == "negative labels":
            labels, label_feature = [-1, *labels[1:]], Value("int64")
        if damage == "empty":
            images, labels = [], []
        features = Features({image_name: ImageFeature(), label_name: label_feature})
        path = root / "data" / f"{split}-00000-of-00001.parquet"
        Dataset.from_dict({image_name: images, label_name: labels}, features=features).to_parquet(str(path))
        if damage == "truncated file" and split == "train":
            path.write_bytes(path.read_bytes()[:-40])
    return f"parquet:{root}"


def with_dataset(tmp_path: Path, dataset: str) -> list[str]:
    return ["run", "--suite", suite_file(tmp_path, SUITE.replace('"smoke_tiny"', f'"{dataset}"'))]


def smoke(*extra: str) -> list[str]:
    return ["run", "--suite", "smoke", "--methods", "centroids", *extra]


def wrong_arch_suite(tmp_path: Path) -> list[str]:
    weights = tiny_timm_weights(tmp_path / "vit_tiny.safetensors")  # 192-d: tiny_vit is 32-d
    return ["run", "--suite", suite_file(tmp_path, SUITE + f'[backbone_options.tiny_vit]\nweights = "{weights}"\n')]


TINY_HF = "hf:timm/vit_tiny_patch16_224.augreg_in21k"
# each case: (id, builder(tmp_path) -> argv, what the one-line message must say); {t}: tmp_path
CASES = [
    ("ipc above the smallest class", lambda t: smoke("--ipc", "20"),
     "ipc 20 is more than the 16 training images of class 'T-shirt/top', the smallest class of 'smoke_tiny'; use "
     "--ipc 16 or less"),
    ("ipc above a rehearsal's limit", lambda t: smoke("--limit", "2", "--ipc", "3"),
     "ipc 3 is more than the 2 training images --limit 2/class keeps of class 'T-shirt/top', the smallest class of "
     "'smoke_tiny'; use --ipc 2 or less (or drop that ipc from the suite, or raise --limit)"),
    ("Hub dataset offline", lambda t: smoke("--datasets", "fashion_mnist"),
     "dataset 'fashion_mnist' could not be loaded from Hub dataset zalando-datasets/fashion_mnist: ConnectionError"),
    ("hub: dataset offline", lambda t: with_dataset(t, "hub:zalando-datasets/fashion_mnist"),
     "dataset 'hub:zalando-datasets/fashion_mnist' could not be loaded from Hub dataset "
     "zalando-datasets/fashion_mnist"),
    ("paper backbone offline", lambda t: smoke("--backbones", "dinov2_vitb14"),
     "backbone 'dinov2_vitb14' needs the file 'model.safetensors' of the Hugging Face Hub repo "
     "'timm/vit_base_patch14_dinov2.lvd142m'"),
    ("timm: backbone without weights offline", lambda t: smoke("--backbones", "timm:vit_tiny_patch16_224@32"),
     "`hf download timm/vit_tiny_patch16_224.augreg_in21k_ft_in1k model.safetensors`"),
    ("hf: backbone offline", lambda t: smoke("--backbones", f"{TINY_HF}@32"),
     "needs the file 'open_clip_config.json' of the Hugging Face Hub repo 'timm/vit_tiny_patch16_224.augreg_in21k'"),
    ("ViT input size not a multiple of the patch", lambda t: smoke("--backbones", f"{TINY_HF}@40"),
     f"backbone '{TINY_HF}@40': input_size must be a multiple of the patch size 16 (e.g. 224), not 40"),
    ("weights of the wrong architecture", wrong_arch_suite,
     "backbone 'tiny_vit': the weight file {t}/vit_tiny.safetensors does not load into vit_tiny_patch16_224: Error(s) "
     "in loading state_dict for VisionTransformer: size mismatch for cls_token"),
    ("folder: corrupt image", lambda t: with_dataset(t, folder(t, "corrupt")),
     "split 'train': cannot decode the image of row 0 ({t}/images/train/a/0.png): UnidentifiedImageError"),
    ("folder: truncated image", lambda t: with_dataset(t, folder(t, "truncated")),
     "cannot decode the image of row 0 ({t}/images/train/a/0.png): OSError: image file is truncated"),
    ("folder: zero-byte image", lambda t: with_dataset(t, folder(t, "zero-byte")),
     "cannot decode the image of row 0 ({t}/images/train/a/0.png): UnidentifiedImageError: cannot identify image"),
    ("folder: decompression bomb", lambda t: with_dataset(t, folder(t, "bomb")),
     "cannot decode the image of row 0 ({t}/images/train/a/0.png): DecompressionBombError: Image size (225000000 "
     "pixels) exceeds limit"),
    ("folder: nested class folders", lambda t: with_dataset(t, folder(t, "nested")),
     "class folder(s) 'a', 'b' of split 'train' in {t}/images hold images in subfolders"),
    ("parquet: no image column", lambda t: with_dataset(t, parquet(t, "no image column")),
     "has no image column 'image'; its columns are 'picture' (Image), 'label' (ClassLabel). Fix: "),
    ("parquet: no label column", lambda t: with_dataset(t, parquet(t, "no label column")),
     "has no label column 'label'; its columns are 'image' (Image), 'target' (ClassLabel). Fix: "),
    ("parquet: string labels", lambda t: with_dataset(t, parquet(t, "string labels")),
     "split 'train': label column 'label' is Value('string'); it must be a ClassLabel or integers"),
    ("parquet: negative labels", lambda t: with_dataset(t, parquet(t, "negative labels")),
     "split 'train': labels range over [-1, 1] but there are 2 classes"),
    ("parquet: truncated file", lambda t: with_dataset(t, parquet(t, "truncated file")),
     "{t}/mirror/data/train-00000-of-00001.parquet is not a readable parquet file (truncated or damaged: "),
    ("parquet: no rows", lambda t: with_dataset(t, parquet(t, "empty")),
     "no rows in {t}/mirror/data/train-00000-of-00001.parquet"),
    ("LGM option of the wrong type", lambda t: ["run", "--suite", suite_file(
        t, SUITE.replace('"centroids"', '"lgm"') + '[method_options.lgm]\nsteps = "100"\n')],
     "key 'method_options.lgm': bad options for method 'lgm': option 'steps' must be an integer, not a string "
     "('100')"),
    ("probe option of the wrong type", lambda t: ["run", "--suite", suite_file(
        t, SUITE + '[protocol_options.fast]\ntrain_views = "20"\n')],
     "key 'protocol_options.fast': bad options for probe 'fast': option 'train_views' must be an integer, not a "
     "string ('20')"),
]


@pytest.mark.parametrize(("build", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_found_before_any_work_one_line_exit_2_nothing_written(tmp_path: Path, capsys, build, expected: str) -> None:
    argv = [str(a) for a in build(tmp_path)]
    results = tmp_path / "results"
    capsys.readouterr()
    assert main([*argv, "--results", str(results), "--no-progress"]) == EXIT_USAGE
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err, err
    assert expected.replace("{t}", str(tmp_path)) in err, err
    assert not results.exists()


# -- run --check, the table, status --check ----------------------------------------------------------
def test_run_check_prints_what_it_checked_and_writes_nothing(tmp_path: Path, capsys) -> None:
    results = tmp_path / "results"
    assert main(["run", "--suite", "smoke", "--check", "--results", str(results)]) == 0
    out = capsys.readouterr().out
    assert "preflight of suite 'smoke' (8 cells to run): passed in " in out
    for row in ("options   methods", "ok: lgm, neighbors, centroids, kmeans, herding, random_real, full_data",
                "dataset   smoke_tiny", "ok: 4 classes, 64 train / 32 test rows", "ipc       smoke_tiny ipc 1",
                "ok: the smallest class has 16 images", "backbone  tiny_vit", "ok: 32 px, 32-d features", "disk"):
        assert row in out, out
    assert not results.exists()


def test_a_rehearsal_is_checked_on_the_rows_its_limit_keeps(tmp_path: Path, capsys) -> None:
    results = tmp_path / "results"
    assert main([*smoke("--limit", "2", "--check"), "--results", str(results), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "ok: 4 classes, 8 train / 8 test rows kept by --limit 2/class" in out, out
    assert "ok: the smallest class has 2 images" in out, out
    assert not results.exists()


def test_the_images_of_a_local_dataset_are_decoded_once(tmp_path: Path, capsys) -> None:
    argv = with_dataset(tmp_path, folder(tmp_path))
    assert main([*argv, "--check", "--results", str(tmp_path / "results")]) == 0
    out = capsys.readouterr().out
    assert f"images    folder:{tmp_path}/images train" in out and "ok: 6 images decoded" in out


def test_big_splits_get_a_header_check(tmp_path: Path, capsys, monkeypatch) -> None:
    import benchmark.preflight

    monkeypatch.setattr(benchmark.preflight, "FULL_DECODE_MAX_ROWS", 0)  # every split is "big"
    argv = with_dataset(tmp_path / "clean", folder(tmp_path / "clean"))
    assert main([*argv, "--check", "--results", str(tmp_path / "results")]) == 0
    assert "ok: 6 images header-checked" in capsys.readouterr().out
    argv = with_dataset(tmp_path / "bad", folder(tmp_path / "bad", "corrupt"))
    assert main([*argv, "--check", "--results", str(tmp_path / "results")]) == EXIT_USAGE
    assert f"({tmp_path}/bad/images/train/a/0.png): UnidentifiedImageError" in capsys.readouterr().err
    monkeypatch.setattr(benchmark.preflight, "HEADER_CHECK_MAX_ROWS", 3)  # and bigger than that: a sample
    monkeypatch.setattr(benchmark.preflight, "HEADER_SAMPLE_ROWS", 2)
    argv = with_dataset(tmp_path / "clean", f"folder:{tmp_path / 'clean' / 'images'}")
    assert main([*argv, "--check", "--results", str(tmp_path / "results")]) == 0
    assert "ok: 2 of 6 images (evenly spaced) header-checked, the others when first decoded" in capsys.readouterr().out


def test_several_problems_are_one_line_each(tmp_path: Path, capsys) -> None:
    argv = smoke("--backbones", "dinov2_vitb14", "eva02_vitb14", "--ipc", "20", "--check")
    assert main([*argv, "--results", str(tmp_path / "results")]) == EXIT_USAGE
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 3 and all(line.startswith("error: ") for line in lines), lines
    assert "ipc 20 is more than" in lines[0] and "'dinov2_vitb14' needs" in lines[1] and "'eva02_vitb14'" in lines[2]
    assert "FAILED (3 problem(s))" in captured.out


def test_run_checks_before_the_first_cell(tmp_path: Path, capsys, monkeypatch) -> None:
    import benchmark.runner

    def refuse(*args, **kwargs):
        raise AssertionError("work started before the preflight")

    monkeypatch.setattr(benchmark.runner, "Runner", refuse)
    assert main(smoke("--ipc", "20", "--results", str(tmp_path / "r"))) == EXIT_USAGE
    assert not (tmp_path / "r").exists()


def test_a_finished_suite_has_nothing_to_check(tmp_path: Path, capsys) -> None:
    results = tmp_path / "results"
    assert main(smoke("--seeds", "1", "--results", str(results), "--no-progress")) == 0
    assert "preflight of suite 'smoke' (1 cell to run): passed" in capsys.readouterr().out
    assert main(smoke("--seeds", "1", "--check", "--results", str(results))) == 0
    assert "all its cells are done under" in capsys.readouterr().out


def test_status_check_runs_the_preflight_of_the_suite(tmp_path: Path, capsys) -> None:
    argv = ["status", "--results", str(tmp_path / "results"), "--check"]
    assert main([*argv, "--suite", "smoke"]) == 0
    assert "preflight of suite 'smoke' (8 cells to run): passed" in capsys.readouterr().out
    assert main(argv) == EXIT_USAGE
    assert "status --check checks one suite's inputs: add --suite NAME" in capsys.readouterr().err
    assert not (tmp_path / "results").exists()


def test_not_enough_disk_is_a_problem(tmp_path: Path, capsys, monkeypatch) -> None:
    import shutil

    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage._replace(free=1000))
    assert main(smoke("--check", "--results", str(tmp_path / "results"))) == EXIT_USAGE
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: not enough free disk: the run needs about ") and "\n" not in err, err
    assert "and 1000 B is free there; free some space, or put the cache (LGM_BENCH_CACHE=<dir>)" in err


def test_check_and_dry_run_are_not_asked_together(tmp_path: Path, capsys) -> None:
    assert main(["run", "--suite", "smoke", "--check", "--dry-run"]) == EXIT_USAGE
    assert "pick one" in capsys.readouterr().err


# -- messages that used to be unclear ------------------------------------------------------------------
def test_eval_of_a_folder_with_a_corrupt_png_names_the_file(tmp_path: Path, capsys) -> None:
    root = tmp_path / "set"
    for name in ("Bag", "Sneaker", "T-shirt_top", "Trouser"):
        (root / name).mkdir(parents=True)
        Image.new("RGB", (8, 8)).save(root / name / "a.png")
    (root / "Bag" / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    argv = ["eval", "--images", str(root), "--dataset", "smoke_tiny", "--backbones", "tiny_vit", "--seeds", "1",
            "--results", str(tmp_path / "results")]
    assert main(argv) == EXIT_USAGE
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: cannot decode the image {root}/Bag/b.png: UnidentifiedImageError"), err
    assert "\n" not in err
    assert err.endswith("replace or remove the file")
    assert not (tmp_path / "results").exists()


def test_an_image_that_fails_at_its_first_decode_names_its_file(tmp_path: Path) -> None:
    """Images that pass the header check (big splits) get their full check when first decoded: in the
    main process and in a DataLoader worker, the error names the row and the file."""
    from benchmark.data.decode import ImageDecodeError, stored_values
    from benchmark.embedding import embed_rows
    from benchmark.registry import BACKBONES, DATASETS
    from benchmark.types import Preprocess

    root = write_image_folder(tmp_path / "imgs")
    victim = sorted((root / "train" / "Bag").glob("*.png"))[0]
    victim.write_bytes(victim.read_bytes()[:-30])  # a truncated PNG: its header is fine
    data = DATASETS.get(f"folder:{root}").load("train")
    row = [v["path"] for v in stored_values(data.dataset, "image")].index(str(victim))
    with pytest.raises(ImageDecodeError, match=rf"split 'train': cannot decode the image of row {row} \({victim}\)"):
        data.load([row], Preprocess(36, 32))
    with pytest.raises(ImageDecodeError, match=rf"row {row} \({victim}\).*\(in a DataLoader worker\)"):
        embed_rows(BACKBONES.get("tiny_vit").build(), data, batch_size=8, workers=1)


def test_a_parquet_row_that_fails_to_decode_names_its_file_and_row(tmp_path: Path) -> None:
    from datasets import ClassLabel, Dataset, Features
    from datasets import Image as ImageFeature

    from benchmark.data.decode import ImageDecodeError
    from benchmark.registry import DATASETS
    from benchmark.types import Preprocess

    root = tmp_path / "mirror"
    (root / "data").mkdir(parents=True)
    features = Features({"image": ImageFeature(), "label": ClassLabel(names=["a", "b"])})
    for split in ("train", "test"):
        images = [{"bytes": png(i % 2, i), "path": f"{i}.png"} for i in range(4)]
        images[3]["bytes"] = images[3]["bytes"][:-30] if split == "train" else images[3]["bytes"]
        Dataset.from_dict({"image": images, "label": [i % 2 for i in range(4)]}, features=features).to_parquet(
            str(root / "data" / f"{split}-00000-of-00001.parquet"))
    data = DATASETS.get(f"parquet:{root}").load("train")
    with pytest.raises(ImageDecodeError, match=rf"row 3 \(row 3 of {root}/data/train-00000-of-00001.parquet, "
                                               r"stored as '3.png'\)"):
        data.load([0, 3], Preprocess(9, 8))
