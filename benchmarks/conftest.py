"""Shared setup of the speed benchmarks (pytest-benchmark; not part of the default test run).

    pytest benchmarks --benchmark-only                        # or: tox -e bench, make bench
    pytest benchmarks --benchmark-only --lgm-rounds 10 --lgm-set augs_per_batch=8 -k effnet
    pytest benchmarks --benchmark-only --benchmark-autosave   # then: --benchmark-compare

Offline, and every cache in a per-session temporary directory unless ``LGM_BENCH_CACHE`` is set (set it
to a persistent directory to keep extracted weights between runs).

The pytest-benchmark fixture is called ``benchmark``, like this project's package: benchmark modules
import from it with ``from benchmark.x import y`` (which binds no name ``benchmark``), never
``import benchmark``, so the fixture argument shadows nothing.
"""

from __future__ import annotations

import json
import os

import pytest
import torch

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("lgm-bench", "lgm-bench speed benchmarks")
    group.addoption("--lgm-rounds", type=int, default=5, help="timed LGM steps per backbone (default 5)")
    group.addoption("--lgm-warmup", type=int, default=1,
                    help="untimed LGM steps first: the last pyramid growth and the real bank (default 1)")
    group.addoption("--lgm-preset", default="embedded", help="LGM config preset (default: embedded)")
    group.addoption("--lgm-set", action="append", default=[], metavar="FIELD=VALUE",
                    help="override an LGM config field (JSON value), e.g. augs_per_batch=8; repeatable")
    group.addoption("--lgm-dataset", default="fashion_mnist_embedded", help="training split the LGM step draws on")
    group.addoption("--lgm-threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    group.addoption("--lgm-device", default="cpu", help="device of the LGM and embedding benchmarks")
    # the scale simulation (test_bench_scale.py); tox -e bench and make bench add 1000 classes
    group.addoption("--scale-classes", default="10,100", help="comma-separated class counts of the scale "
                    "simulation (default 10,100; 1000 takes several minutes on 2 cores)")
    group.addoption("--scale-K", type=int, default=1, help="LGM augmentations per image in the scale simulation")
    group.addoption("--scale-micro-batch", type=int, default=64, help="micro_batch of the scale simulation's "
                    "chunked runs (default 64)")
    group.addoption("--scale-input", type=int, default=16, help="input size of the scale simulation's "
                    "ViT-B/16 (default 16: one patch)")
    # the stream overlap benchmark (test_bench_stream.py)
    group.addoption("--stream-arch", default="vit_small_patch16_224", help="timm ViT (16 px patches) of the stream "
                    "benchmark (default vit_small_patch16_224)")
    group.addoption("--stream-input", type=int, default=32, help="input size of the stream benchmark's ViT "
                    "(default 32)")
    group.addoption("--stream-K", type=int, default=1, help="LGM augmentations per image in the stream benchmark")
    group.addoption("--stream-rounds", type=int, default=5, help="timed rounds of each stream benchmark")


def _parse_value(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _overrides(config: pytest.Config) -> dict:
    overrides = {}
    for pair in config.getoption("--lgm-set"):
        key, sep, value = pair.partition("=")
        if not sep:
            raise pytest.UsageError(f"--lgm-set expects FIELD=VALUE, got {pair!r}")
        overrides[key] = _parse_value(value)
    return overrides


def pytest_configure(config: pytest.Config) -> None:
    _overrides(config)  # a malformed --lgm-set stops the run before anything is built


@pytest.fixture(scope="session")
def lgm_options(request: pytest.FixtureRequest) -> dict:
    option = request.config.getoption
    overrides = _overrides(request.config)
    return {"rounds": option("--lgm-rounds"), "warmup": option("--lgm-warmup"), "preset": option("--lgm-preset"),
            "overrides": overrides, "dataset": option("--lgm-dataset"), "device": option("--lgm-device")}


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Features and extracted weights go to a temporary cache unless ``LGM_BENCH_CACHE`` is set."""
    if not os.environ.get("LGM_BENCH_CACHE"):
        os.environ["LGM_BENCH_CACHE"] = str(tmp_path_factory.mktemp("lgm-bench-cache"))


@pytest.fixture(autouse=True, scope="session")
def _threads(request: pytest.FixtureRequest):
    threads = request.config.getoption("--lgm-threads")
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def backbones(_isolated_cache):
    """Bundled backbones built once per session at a given input size: ``backbones(name, input_size)``."""
    from benchmark.registry import BACKBONES

    built: dict[tuple[str, int], torch.nn.Module] = {}

    def get(name: str, input_size: int):
        if (name, input_size) not in built:
            built[name, input_size] = BACKBONES.get(name).build(input_size=input_size)
        return built[name, input_size]

    return get
