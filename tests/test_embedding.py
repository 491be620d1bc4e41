"""The one embedding path (benchmark/embedding.py over benchmark/stream.py): worker counts that never
change a feature, bf16 autocast on CUDA only, and every caller routed through it."""

from __future__ import annotations

import os

import pandas as pd
import pytest
import torch
from torch import nn

from benchmark import embedding, stream
from benchmark.embedding import backbone_device, default_workers, embed_rows, embed_tensor
from benchmark.features import FeatureCache
from benchmark.images import resize_short_side
from benchmark.stream import Decode, ImageStream, decode_rows, requests
from benchmark.types import Preprocess, RunContext, SyntheticSet
from method.real import RealImages
from tests.toys import ToyBackbone, ToyDataset

ROWS = [5, 0, 3, 3, 35, 17, 8, 2, 30, 11]  # out of order, one repeated: order must be kept exactly


@pytest.fixture(scope="module")
def train():
    return ToyDataset().load("train")  # 36 rows of 16 px images


@pytest.fixture(scope="module")
def backbone():
    return ToyBackbone().build()


def in_process(backbone, data, rows, preprocess, batch_size):
    """The path every caller had before: decode a batch of rows in this process, embed it in fp32."""
    with torch.no_grad():
        return torch.cat([backbone.embed(data.load(rows[i:i + batch_size], preprocess))
                          for i in range(0, len(rows), batch_size)])


def test_backbone_device_is_where_the_weights_are(backbone):
    assert backbone_device(backbone) == torch.device("cpu")
    assert backbone_device(nn.Identity()) == torch.device("cpu")  # no weights at all: the CPU
    if torch.cuda.is_available():
        assert backbone_device(backbone.to("cuda")).type == "cuda"
        backbone.to("cpu")


@pytest.mark.parametrize(("cpus", "workers"), [(1, 0), (2, 1), (4, 3), (16, 15), (64, 32)])
def test_default_workers_from_the_cpus_this_process_may_use(monkeypatch, cpus, workers):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(cpus)), raising=False)
    assert default_workers() == workers


@pytest.mark.parametrize("workers", [0, 2])
def test_dataloader_path_gives_exactly_the_in_process_features(train, backbone, workers):
    preprocess = Preprocess(18, 16)
    want = in_process(backbone, train, ROWS, preprocess, batch_size=4)
    got = embed_rows(backbone, train, ROWS, preprocess, batch_size=4, workers=workers)
    assert got.dtype == torch.float32 and got.device.type == "cpu"
    assert got.shape == (len(ROWS), backbone.feature_dim)
    assert torch.equal(got, want)
    # chunks of 4: the stream really runs the asked number of workers, in order
    with ImageStream(train, Decode.of(preprocess), workers, chunk=4) as pool:
        assert torch.equal(pool.decode(requests(ROWS)).float().div(255), train.load(ROWS, preprocess))
        assert (pool._loader is not None) == (workers > 0)
        assert pool._loader is None or pool._loader.num_workers == workers


def test_one_chunk_is_decoded_in_process_and_all_rows_by_default(train, backbone):
    with ImageStream(train, Decode.of(Preprocess(18, 16)), 4, chunk=64) as pool:
        pool.decode(requests(ROWS))
        assert pool._loader is None  # ten rows, one chunk: no worker round trip
    every = embed_rows(backbone, train, None, batch_size=8, workers=2)
    assert torch.equal(every, in_process(backbone, train, list(range(len(train))), backbone.preprocess, 8))


def test_embed_tensor_matches_batched_forward_and_handles_empty(backbone):
    images = torch.rand(7, 3, 20, 20, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        want = torch.cat([backbone.embed(images[:3]), backbone.embed(images[3:6]), backbone.embed(images[6:])])
    assert torch.equal(embed_tensor(backbone, images, batch_size=3), want)
    empty = embed_tensor(backbone, images[:0])
    assert empty.shape == (0, backbone.feature_dim) and empty.dtype == torch.float32
    with pytest.raises(ValueError, match="batch_size"):
        embed_tensor(backbone, images, batch_size=0)


@pytest.mark.parametrize("bad", [-1, 1.5, True, "2"])
def test_bad_worker_counts_are_refused(train, bad):
    with pytest.raises(ValueError, match="workers must be an integer >= 0"):
        FeatureCache(progress=False, workers=bad)
    with pytest.raises(ValueError, match="0 = decode in the main process"):
        decode_rows(train, ROWS, Decode(12), workers=bad)


def test_feature_cache_is_the_same_for_any_worker_count(tmp_path, train, backbone):
    zero = FeatureCache(tmp_path / "w0", batch_size=4, progress=False, workers=0)
    two = FeatureCache(tmp_path / "w2", batch_size=4, progress=False, workers=2)
    assert (zero.workers, two.workers) == (0, 2)
    assert FeatureCache(tmp_path, progress=False).workers == default_workers()
    for rows in (None, ROWS):
        a, b = zero(backbone, train, rows), two(backbone, train, rows)
        assert torch.equal(a, b)
        assert zero.key(backbone, train, rows) == two.key(backbone, train, rows)
    assert torch.equal(zero(backbone, train, ROWS), in_process(backbone, train, ROWS, backbone.preprocess, 4))
    # on the CPU the backbone runs in fp32, so the keys are what they were before autocast existed
    assert "compute" not in zero.key_fields(backbone, train)
    no_amp = FeatureCache(tmp_path / "fp32", progress=False, workers=0, autocast=False)
    assert no_amp.key(backbone, train) == zero.key(backbone, train)
    images = torch.rand(5, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    assert torch.equal(zero.embed_images(backbone, images), two.embed_images(backbone, images, batch_size=2))


def test_bf16_entries_get_their_own_key(train, backbone):
    fields = FeatureCache.key_fields(backbone, train, compute=torch.bfloat16)
    assert fields["compute"] == "bfloat16"
    assert {k: v for k, v in fields.items() if k != "compute"} == FeatureCache.key_fields(backbone, train)


@pytest.mark.parametrize("preload", [True, False])
def test_lgm_real_batches_do_not_depend_on_workers(train, preload):
    rows = torch.tensor(ROWS * 4)  # 40 rows: more than one decode chunk, so workers are used
    batches = [RealImages(train, 12, preload=preload, workers=w).batch(rows, torch.Generator().manual_seed(3))
               for w in (0, 2)]
    assert torch.equal(batches[0], batches[1])
    pixels = decode_rows(train, rows, Decode(12), workers=0)
    want = [resize_short_side(train.dataset[int(r)]["image"], 12) for r in rows]
    assert all(torch.equal(pixels[i], b) for i, b in enumerate(want))


def test_decode_rows_in_workers_keeps_order(train):
    rows = list(range(35, -1, -1)) + [4, 4]
    got = decode_rows(train, rows, Decode(10), workers=2)
    assert len(got) == len(rows)
    assert all(torch.equal(got[i], resize_short_side(train.dataset[r]["image"], 10)) for i, r in enumerate(rows))


def test_paper_probe_workers_come_from_the_run_and_not_its_identity(tmp_path, train, backbone):
    from benchmark.probe.paper import PaperProbe

    assert PaperProbe().config() == PaperProbe(num_workers=3).config()
    assert "num_workers" not in PaperProbe().config()
    test = ToyDataset().load("test")
    synset = SyntheticSet(labels=train.labels[:6], indices=torch.arange(6))
    features = FeatureCache(tmp_path, progress=False, workers=0)
    for option, ctx_workers, used in ((None, 2, 2), (None, 0, 0), (1, 2, 1)):
        ctx = RunContext(device=torch.device("cpu"), features=features, artifact_dir=tmp_path, workers=ctx_workers)
        probe = PaperProbe(epochs=1, num_workers=option, preload_max_bytes=0)  # decoded per batch
        assert probe.prepare(synset, train, test, backbone, ctx).images.stream.workers == used


def test_runner_hands_its_workers_to_the_cache_and_the_contexts(tmp_path):
    from benchmark.runner import Runner
    from benchmark.suites import SUITES

    runner = Runner(SUITES.get("smoke"), tmp_path, progress=False, workers=2)
    assert runner.features.workers == 2
    assert runner.context(tmp_path, "smoke_tiny", "tiny_vit", 1, 0).workers == 2
    assert Runner(SUITES.get("smoke"), tmp_path, progress=False).workers == default_workers()
    with pytest.raises(ValueError, match="workers"):
        Runner(SUITES.get("smoke"), tmp_path, progress=False, workers=-1)


def test_negative_workers_is_a_usage_error(tmp_path, capsys):
    from benchmark.cli import main

    before = set(tmp_path.rglob("*"))
    assert main(["run", "--suite", "smoke", "--workers", "-1", "--results", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert [line for line in err.splitlines() if "error:" in line] == \
        ["error: --workers must be at least 0 (0 = decode in the main process), got -1"]
    assert set(tmp_path.rglob("*")) == before


@pytest.mark.usefixtures("one_thread")
def test_smoke_suite_results_do_not_depend_on_workers(tmp_path, monkeypatch, capsys):
    """The whole pipeline (feature cache, LGM's real batches, neighbours, probes) with 0 and 2 decode
    workers, each with its own cache: the same cells and bit-identical numbers."""
    import functools

    from benchmark import runner as runner_module
    from benchmark.cli import main
    from benchmark.results import read_results

    # batches of 8 rows, so the smoke splits (64 and 32 rows) span several batches and workers decode them
    monkeypatch.setattr(runner_module, "FeatureCache", functools.partial(FeatureCache, batch_size=8))
    used: list[int] = []
    dataloader = stream.ImageStream._dataloader

    def spy(self):
        used.append(self.workers)
        return dataloader(self)

    monkeypatch.setattr(stream.ImageStream, "_dataloader", spy)
    frames, seen = {}, {}
    for workers in (0, 2):
        monkeypatch.setenv("LGM_BENCH_CACHE", str(tmp_path / f"cache{workers}"))
        results = tmp_path / f"results{workers}"
        used.clear()
        assert main(["run", "--suite", "smoke", "--results", str(results), "--no-progress", "--seeds", "1",
                     "--workers", str(workers)]) == 0
        frames[workers] = read_results(results).sort_values(["cell_id", "probe_seed"]).reset_index(drop=True)
        seen[workers] = set(used)
    capsys.readouterr()
    # with workers, decodes of more than one chunk went through the pool; without, none did
    assert seen[0] == set() and seen[2] == {2}
    a, b = frames[0], frames[2]
    assert len(a) == 7 and (a.status == "ok").all()  # one probe seed: one row per cell
    assert list(a.cell_id) == list(b.cell_id)  # workers are in no cell id or config hash
    assert list(a.config_hash) == list(b.config_hash)
    pd.testing.assert_series_equal(a.top1, b.top1, check_exact=True)
    pd.testing.assert_series_equal(a.top5, b.top5, check_exact=True)
    assert any(p.name.endswith(".safetensors") for p in (tmp_path / "cache2").rglob("*"))  # the cache was used


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("name", ["tiny_vit", "effnet_lite0"])
def test_bf16_autocast_features_agree_with_fp32(tmp_path, name):
    """Tolerance: per image, cosine similarity of bf16-autocast and fp32 features > 0.999 and the
    relative difference of their norms < 1e-2."""
    from benchmark.registry import BACKBONES, DATASETS

    bb = BACKBONES.get(name).build(device="cuda").to("cuda")
    data = DATASETS.get("smoke_tiny").load("test")
    assert embedding.compute_dtype(backbone_device(bb)) == torch.bfloat16
    bf16 = embed_rows(bb, data, batch_size=32, workers=2)
    fp32 = embed_rows(bb, data, batch_size=32, workers=0, autocast=False)
    assert bf16.dtype == fp32.dtype == torch.float32 and bf16.device.type == "cpu"
    cosine = torch.nn.functional.cosine_similarity(bf16, fp32, dim=1)
    norms = (bf16.norm(dim=1) - fp32.norm(dim=1)).abs() / fp32.norm(dim=1)
    assert cosine.min() > 0.999, cosine.min()
    assert norms.max() < 1e-2, norms.max()
    assert not torch.equal(bf16, fp32)  # autocast did run
    cache = FeatureCache(tmp_path, batch_size=32, progress=False, workers=2)
    assert cache.key_fields(bb, data, compute=torch.bfloat16) != cache.key_fields(bb, data)
    assert torch.equal(cache(bb, data), bf16)
    assert FeatureCache(tmp_path, progress=False, autocast=False).key(bb, data) != cache.key(bb, data)


class SpyFeatures:
    """A feature source that records the ``autocast`` each caller asks for."""

    def __init__(self, cache):
        self.cache, self.asked = cache, []

    def __call__(self, backbone, data, indices=None, preprocess=None, autocast=None):
        self.asked.append((data.split, autocast))
        return self.cache(backbone, data, indices, preprocess, autocast=autocast)


def test_official_fp32_passes_ask_for_fp32(tmp_path, train, backbone):
    """The official code computes test features and the selecting baselines' features without autocast;
    our callers must ask for fp32 whatever the cache's default (bf16 on CUDA)."""
    from baselines.centroids import Centroids
    from benchmark.probe.common import load_test_features

    spy = SpyFeatures(FeatureCache(tmp_path, progress=False, workers=0))
    test = ToyDataset().load("test")
    load_test_features(spy, backbone, test)
    ctx = RunContext(device=torch.device("cpu"), features=spy, artifact_dir=tmp_path)
    Centroids().synthesize(train, backbone, 1, 0, ctx)
    assert spy.asked and all(autocast is False for _, autocast in spy.asked), spy.asked


def test_a_per_call_autocast_overrides_the_cache_default(tmp_path, train, backbone, monkeypatch):
    cache = FeatureCache(tmp_path, progress=False, workers=0)  # autocast on by default
    # as if on CUDA, where autocast means bf16: the fp32 request must get another entry
    monkeypatch.setattr("benchmark.features.compute_dtype",
                        lambda device, autocast=True: torch.bfloat16 if autocast else torch.float32)
    assert cache.key(backbone, train) != cache.key(backbone, train, autocast=False)
    assert cache.key(backbone, train, autocast=False) == FeatureCache(tmp_path, autocast=False).key(backbone, train)


def test_the_fast_probe_records_the_precision_of_its_set_features(tmp_path, train, backbone, monkeypatch):
    from benchmark.probe.fast import FastProbe

    test = ToyDataset().load("test")
    synset = SyntheticSet(labels=train.labels[:4], indices=torch.arange(4))
    cache = FeatureCache(tmp_path, progress=False, workers=0)
    ctx = RunContext(device=torch.device("cpu"), features=cache, artifact_dir=tmp_path)
    (cpu,) = FastProbe().evaluate(synset, train, test, backbone, [0], ctx)
    assert cpu.extra["feature_dtype"] == "float32"
    assert embedding.source_dtype(cache, backbone) == "float32"
    monkeypatch.setattr(embedding, "compute_dtype", lambda device, autocast=True: torch.bfloat16 if autocast
                        else torch.float32)  # as on CUDA
    assert embedding.source_dtype(cache, backbone) == "bfloat16"
    assert embedding.source_dtype(FeatureCache(tmp_path, autocast=False), backbone) == "float32"
