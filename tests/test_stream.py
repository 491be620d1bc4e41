"""The image stream (benchmark/stream.py): the pixels of the old per-image decode, uint8 chunks that fit
the shared-memory budget, one descriptor per chunk (a 256 open-file limit holds thousands of live
images), batches ahead of the consumer in order, and LGM's planned real batches equal to unplanned ones."""

from __future__ import annotations

import io
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from datasets import ClassLabel, Dataset, Features
from datasets import Image as ImageFeature
from PIL import Image

from benchmark.images import random_crop, resize_short_side
from benchmark.stream import (
    PREFETCH_CHUNKS,
    Decode,
    ImageStream,
    Packed,
    Prefetcher,
    assemble,
    chunk_rows,
    decode_rows,
    requests,
)
from benchmark.types import LabeledImages, Preprocess
from method.real import EpochBatches, RealImages

REPO = Path(__file__).resolve().parents[1]


def jpeg_split(n: int, seed: int = 0, classes: int = 4) -> LabeledImages:
    """``n`` small JPEGs of varying aspect ratios (so resized images differ in size), ``classes`` labels."""
    gen = torch.Generator().manual_seed(seed)
    images = []
    for i in range(n):
        w, h = 16 + int(torch.randint(0, 12, (1,), generator=gen)), 16 + (i % 5)
        pixels = torch.randint(0, 256, (h, w, 3), generator=gen, dtype=torch.uint8).numpy()
        out = io.BytesIO()
        Image.fromarray(pixels).save(out, format="JPEG", quality=90)
        images.append({"bytes": out.getvalue(), "path": f"img_{i:05d}.jpg"})
    names = [f"c{c}" for c in range(classes)]
    features = Features({"image": ImageFeature(), "label": ClassLabel(names=names)})
    ds = Dataset.from_dict({"image": images, "label": [i % classes for i in range(n)]}, features=features)
    return LabeledImages("jpegs", "train", ds, names, f"jpegs-{n}-{seed}")


@pytest.fixture(scope="module")
def split():
    return jpeg_split(90)


def test_centre_decode_is_the_test_preprocess_and_random_decode_the_shared_crop(split):
    preprocess = Preprocess(18, 16)
    decode = Decode.of(preprocess)
    for row in (0, 7, 33):
        image = split.dataset[row]["image"]
        assert torch.equal(decode(image).float().div(255), preprocess(image))
        u = torch.tensor([0.3, 0.9])
        assert torch.equal(decode(image, (0.3, 0.9)), random_crop(resize_short_side(image, 18), 16, u))
    whole = Decode(18)(split.dataset[1]["image"])
    assert whole.dtype == torch.uint8 and min(whole.shape[1:]) == 18


@pytest.mark.parametrize("workers", [0, 1, 3])
def test_any_worker_count_gives_the_same_pixels_in_order(split, workers):
    rows = [89, 0, 5, 5, 44, 12] * 5  # out of order and repeated
    crops = torch.rand(len(rows), 2, generator=torch.Generator().manual_seed(1))
    fixed = decode_rows(split, rows, Decode(18, 16), workers=workers, crops=crops)
    assert isinstance(fixed, torch.Tensor) and fixed.shape == (len(rows), 3, 16, 16)
    whole = decode_rows(split, rows, Decode(18), workers=workers)
    assert isinstance(whole, Packed) and len(whole) == len(rows)
    for i, row in enumerate(rows):
        resized = resize_short_side(split.dataset[row]["image"], 18)
        assert torch.equal(whole[i], resized)
        assert torch.equal(fixed[i], random_crop(resized, 16, crops[i]))


def test_chunks_in_flight_fit_the_shared_memory_budget():
    decode = Decode(256, 224)
    for workers, budget in ((8, 32 << 20), (2, 32 << 20), (16, 8 << 20), (1, 1 << 30)):
        rows = chunk_rows(decode, workers, budget)
        assert 1 <= rows <= 64
        if rows > 1:  # one row per chunk is the floor, whatever the budget
            assert rows * decode.item_bytes() * (workers * PREFETCH_CHUNKS + 2) <= budget
    assert chunk_rows(decode, 8, 32 << 20) == 12  # 150,528 bytes a crop, 18 chunks in flight: 2.7 MB each
    assert chunk_rows(decode, 0) == 64  # no workers, no shared memory


def test_assemble_stacks_equal_shapes_and_packs_the_rest():
    a, b = torch.ones(2, 3, 4, 4, dtype=torch.uint8), torch.zeros(1, 3, 4, 4, dtype=torch.uint8)
    stacked = assemble(iter([a, b]), 3)
    assert isinstance(stacked, torch.Tensor) and stacked.shape == (3, 3, 4, 4) and int(stacked.sum()) == 96
    odd = Packed.of([torch.full((3, 4, 5), 7, dtype=torch.uint8)])
    mixed = assemble(iter([a, odd, b]), 4)
    assert isinstance(mixed, Packed) and [tuple(mixed[i].shape) for i in range(4)] == \
        [(3, 4, 4), (3, 4, 4), (3, 4, 5), (3, 4, 4)]
    assert int(mixed[2].sum()) == 7 * 60 and int(mixed[3].sum()) == 0 and mixed.nbytes == 3 * 48 + 60


def test_prefetcher_delivers_batches_in_order_and_passes_errors_on(split):
    batches = [requests([r, r + 1, r + 2]) for r in range(0, 60, 3)]
    with ImageStream(split, Decode(18, 16), workers=2, chunk=2) as stream:
        with Prefetcher(stream, iter(batches), depth=2) as ahead:
            got = list(ahead)
        assert [len(b) for b in got] == [3] * 20
        assert torch.equal(torch.cat(got), decode_rows(split, list(range(60)), Decode(18, 16)))
        assert ahead.wait_seconds >= 0 and stream.decoded == 60

        def broken():  # six good batches (more than the pool primes itself with), then a failure
            yield from (requests([r]) for r in range(6))
            raise RuntimeError("no such row")

        with Prefetcher(stream, broken()) as ahead:
            assert [tuple(next(ahead).shape) for _ in range(6)] == [(1, 3, 16, 16)] * 6
            with pytest.raises(RuntimeError, match="no such row"):
                next(ahead)
        with pytest.raises(ValueError, match="empty batch"), Prefetcher(stream, iter([[]])) as ahead:
            next(ahead)


def test_planned_real_batches_equal_unplanned_ones(split, caplog):
    epochs = EpochBatches(len(split), 16, seed=3)
    reference = RealImages(split, 18, preload=True)
    planned = RealImages(split, 18, preload=False, workers=2)
    planned.plan(epochs, 0, 12)
    gens = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    for t in range(12):  # crosses epoch boundaries (5 batches an epoch)
        want = reference.batch(epochs(t), gens[0])
        assert torch.equal(planned.batch(epochs(t), gens[1]), want)
    assert planned.wait_seconds >= 0 and not planned.preloaded
    # a step that asks for other rows than planned is still served right, decoded in step
    planned.plan(epochs, 12, 20)
    other = torch.arange(16)
    assert torch.equal(planned.batch(other, gens[1]), reference.batch(other, gens[0]))
    assert "other rows than planned" in caplog.text and planned._ahead is None
    planned.close()


def run_python(code: str, *, limit_files: int | None = None, shm_mb: int | None = None) -> subprocess.CompletedProcess:
    prelude = ""
    if limit_files:
        prelude = f"import resource; resource.setrlimit(resource.RLIMIT_NOFILE, ({limit_files}, {limit_files}))\n"
    script = prelude + textwrap.dedent(code)
    cmd = [sys.executable, "-c", script]
    if shm_mb:  # a private /dev/shm of this size, as a container has
        cmd = ["unshare", "-m", "sh", "-c",
               f"mount -t tmpfs -o size={shm_mb}m tmpfs /dev/shm && exec \"$0\" \"$@\"", *cmd]
    env = {"PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "PATH": "/usr/bin:/bin"}
    return subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO, timeout=600)


HOLD_THOUSANDS = """
    import torch
    from tests.test_stream import jpeg_split
    from benchmark.stream import Decode, decode_rows
    from method.real import RealImages
    split = jpeg_split(3000)
    real = RealImages(split, 18, preload=True, workers=2)          # 3000 live images, every one kept
    crops = decode_rows(split, range(3000), Decode(18, 16), workers=2)
    batch = real.batch(torch.arange(3000), torch.Generator().manual_seed(0))
    print(len(real.cache), list(crops.shape), list(batch.shape))
"""


def test_thousands_of_live_images_under_a_256_file_limit():
    done = run_python(HOLD_THOUSANDS, limit_files=256)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "3000 [3000, 3, 16, 16] [3000, 3, 18, 18]"


@pytest.mark.skipif(shutil.which("unshare") is None, reason="needs unshare(1) to give the test a 64 MB /dev/shm")
def test_decoding_with_many_workers_in_a_64_mb_shared_memory():
    code = """
        from benchmark.budgets import shm_free_bytes
        from benchmark.stream import Decode, ImageStream, requests
        from tests.test_stream import jpeg_split
        split = jpeg_split(400)
        decode = Decode(256, 224)  # 147 KiB a crop: 8 workers x 64-row chunks would need 150 MB in flight
        with ImageStream(split, decode, workers=8) as stream:
            out = stream.decode(requests(range(400)))
        print(shm_free_bytes() // 2**20, stream.chunk, tuple(out.shape))
    """
    done = run_python(code, shm_mb=64)
    if done.returncode != 0 and "mount" in done.stderr and "permission" in done.stderr.lower():
        pytest.skip("no permission to mount a private /dev/shm here")
    assert done.returncode == 0, done.stderr[-2000:]
    free, chunk, *shape = done.stdout.split()
    assert int(free) <= 64 and int(chunk) < 16 and " ".join(shape) == "(400, 3, 224, 224)"
