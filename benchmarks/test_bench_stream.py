"""Does the image stream hide decoding behind the LGM step? (pytest-benchmark, CPU scale world)

On the 100-class ImageNet-shaped JPEG world (``scale_world.py``), a random-init ViT (default ViT-S/16 at
32 px, where compute and decode take about as long), torch with one thread and one decode worker, three
timings in one run:

* ``preloaded``: the LGM step with every real image decoded beforehand (compute alone);
* ``decode``: decoding one step's real batch (``ipc x K x C`` JPEGs, resized and cropped) through the
  stream's one worker, nothing else running (decode alone);
* ``streamed``: the same step decoding its real batch as a paper run does, the official epoch loader's
  rows planned ahead so that step t+1's batch is decoded while step t computes.

Decoding hidden behind the compute makes ``streamed`` about max(``preloaded``, ``decode``); a stream
that waits makes it their sum. The module prints the three medians and the ratio streamed / max.

    pytest benchmarks/test_bench_stream.py --benchmark-only
    pytest benchmarks/test_bench_stream.py --benchmark-only --stream-arch vit_tiny_patch16_224 --stream-input 16
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import pytest
import torch
from scale_world import build_world, scale_backbone, world_dataset

CLASSES = 100
TIMES: dict[str, float] = {}


@pytest.fixture(scope="module")
def world(_isolated_cache):
    root = Path(os.environ["LGM_BENCH_CACHE"]) / "scale-worlds"
    return world_dataset(build_world(root, CLASSES), "train")


@pytest.fixture(scope="module")
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def setting(request):
    option = request.config.getoption
    return {"input_size": option("--stream-input"), "K": option("--stream-K"), "rounds": option("--stream-rounds"),
            "arch": option("--stream-arch")}


def distiller(world, setting, preload: bool):
    from method.config import build_config
    from method.distill import Distiller
    from method.real import RealImages

    size = setting["input_size"]
    overrides = {"augs_per_batch": setting["K"], "syn_res": "auto", "crop_res": "auto", "checkpoint_every": 0,
                 "real_sampling": "epoch", "steps": 1000}
    cfg = build_config("paper", overrides).resolve(size)
    run = Distiller(cfg, world, scale_backbone(size, setting["arch"]), ipc=1, seed=0, workers=1)
    run.real.close()
    run.real = RealImages(world, cfg.real_res, preload=preload, workers=1)
    growths = run.schedule.growth_updates(len(run.images.sizes))
    run.step_done = growths[-1]  # the warm-up step grows the last level; the timed ones follow
    if not preload:
        run.real.plan(run.epoch_batches, run.step_done, run.step_done + setting["rounds"] + 2)
    return run


@pytest.fixture(scope="module", autouse=True)
def summary(request):
    yield
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is None or len(TIMES) < 3:
        return
    bound = max(TIMES["preloaded"], TIMES["decode"])
    with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
        reporter.write_line("")
        reporter.write_line(f"stream overlap: preloaded step {TIMES['preloaded']:.3f} s, decode alone "
                            f"{TIMES['decode']:.3f} s, streamed step {TIMES['streamed']:.3f} s; streamed / "
                            f"max = {TIMES['streamed'] / bound:.2f} (sum would be "
                            f"{(TIMES['preloaded'] + TIMES['decode']) / bound:.2f})")


def _median(benchmark) -> float:
    return benchmark.stats.stats.median if benchmark.stats is not None else float("nan")


@pytest.mark.usefixtures("one_thread")
def test_step_preloaded(benchmark, world, setting):
    run = distiller(world, setting, preload=True)
    benchmark.group = "stream_overlap"
    benchmark.pedantic(run.step, rounds=setting["rounds"], warmup_rounds=1, iterations=1)
    TIMES["preloaded"] = _median(benchmark)
    benchmark.extra_info.update({**setting, "images": CLASSES * setting["K"], "threads": torch.get_num_threads()})


@pytest.mark.usefixtures("one_thread")
def test_decode_alone(benchmark, world, setting):
    from benchmark.stream import Decode, ImageStream, requests
    from method.real import EpochBatches

    size = round(setting["input_size"] * 256 / 224)
    epochs = EpochBatches(len(world), CLASSES * setting["K"], seed=0)
    steps = iter(range(10**6))
    with ImageStream(world, Decode(size), workers=1) as stream:
        def once():
            return stream.decode(requests(epochs(next(steps)).tolist()))

        benchmark.group = "stream_overlap"
        batch = benchmark.pedantic(once, rounds=setting["rounds"], warmup_rounds=1, iterations=1)
    TIMES["decode"] = _median(benchmark)
    assert len(batch) == CLASSES * setting["K"]


@pytest.mark.usefixtures("one_thread")
def test_step_streamed(benchmark, world, setting):
    run = distiller(world, setting, preload=False)
    benchmark.group = "stream_overlap"
    benchmark.pedantic(run.step, rounds=setting["rounds"], warmup_rounds=1, iterations=1)
    TIMES["streamed"] = _median(benchmark)
    benchmark.extra_info["real_wait_seconds"] = run.real.wait_seconds
    run.real.close()
    assert not run.real.preloaded
