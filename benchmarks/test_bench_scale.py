"""Scale simulation on a CPU: LGM step time and peak memory as classes x K grows, and decode + embed speed
with 0, 1, 2 decoding workers (pytest-benchmark).

The world is ImageNet-shaped (about 500x375 JPEGs in the Hub's parquet layout, ``scale_world.py``), the
backbone a ViT-B/16-shaped random-init model at a small input size. Each configuration runs in a fresh
process (``scale_probe.py``) because the peak RSS never goes down within one; the benchmark's timing is
that process's wall time (start-up, reading the world and the warm-up step included), and
``extra_info`` holds what was measured inside it: the median step time, the peak RSS and the RSS before
the step (``step_s``, ``peak_rss_mib``, ``base_rss_mib``), or the decode + embed images/s.

    pytest benchmarks/test_bench_scale.py --benchmark-only                      # 10 and 100 classes
    pytest benchmarks/test_bench_scale.py --benchmark-only --scale-classes 10,100,1000

At the end the module prints the Markdown table (``scale_table.py``) and the two expectations as
measured: step time about linear in classes x K, and with ``micro_batch`` a flat peak memory.
``python scripts/scale_sim.py`` prints the same table without pytest.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import pytest
from scale_table import ScaleSettings, embed_table, expectations, lgm_args, lgm_table, run_probe
from scale_world import build_world

RESULTS: list[dict] = []


def _classes(config: pytest.Config) -> list[int]:
    text = config.getoption("--scale-classes")
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise pytest.UsageError(f"--scale-classes expects numbers separated by commas, got {text!r}") from None
    if not values or min(values) < 2:
        raise pytest.UsageError(f"--scale-classes needs class counts of 2 or more, got {text!r}")
    return values


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "classes" in metafunc.fixturenames:
        metafunc.parametrize("classes", _classes(metafunc.config), ids=lambda c: f"c{c}")


@pytest.fixture(scope="session")
def settings(request: pytest.FixtureRequest) -> ScaleSettings:
    option = request.config.getoption
    return ScaleSettings(input_size=option("--scale-input"), K=option("--scale-K"),
                         micro_batch=option("--scale-micro-batch"), threads=option("--lgm-threads"),
                         device=option("--lgm-device"))


@pytest.fixture(scope="session")
def worlds(_isolated_cache):
    """Worlds built once and kept in the cache (``LGM_BENCH_CACHE``) across parametrizations and runs."""
    root = Path(os.environ["LGM_BENCH_CACHE"]) / "scale-worlds"
    return lambda classes: build_world(root, classes)


@pytest.fixture(scope="module", autouse=True)
def summary(request: pytest.FixtureRequest):
    """After the module: the table and the expectations, on the terminal."""
    yield
    plugins = request.config.pluginmanager
    reporter, capture = plugins.get_plugin("terminalreporter"), plugins.get_plugin("capturemanager")
    if reporter is None or not RESULTS:
        return
    with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():  # teardown is captured
        reporter.write_line("")
        reporter.write_line("scale simulation (step times in s, memory as the peak RSS of each fresh process):")
        for block in (lgm_table(RESULTS), embed_table(RESULTS), *expectations(RESULTS)):
            for line in block.splitlines():
                reporter.write_line(line)


def _measure(benchmark, kind: str, world: Path, args: list[str], settings: ScaleSettings) -> dict:
    out: dict = {}

    def once() -> None:
        out.update(run_probe(kind, world, args, settings))

    benchmark.pedantic(once, rounds=1, iterations=1)
    if not out:  # --benchmark-disable runs it too; nothing else can leave it empty
        raise AssertionError("the scale probe returned nothing")
    benchmark.extra_info.update(out)
    RESULTS.append(out)
    return out


@pytest.mark.parametrize("chunked", [False, True], ids=["one_pass", "micro_batch"])
def test_scale_lgm_step(benchmark, classes, chunked, settings, worlds) -> None:
    micro = settings.micro_batch if chunked else None
    benchmark.group = f"scale_lgm_{'micro_batch' if chunked else 'one_pass'}"
    result = _measure(benchmark, "lgm", worlds(classes), lgm_args(classes, settings, micro), settings)
    assert result["images"] == classes * settings.K and result["step_s"] > 0


@pytest.mark.parametrize("workers", [0, 1, 2], ids=lambda w: f"workers{w}")
def test_scale_decode_embed(benchmark, workers, settings, worlds) -> None:
    benchmark.group = "scale_decode_embed"
    result = _measure(benchmark, "embed", worlds(100), ["--workers", str(workers)], settings)
    if "skipped" in result:
        pytest.skip(result["skipped"])
    assert result["feature_shape"] == [result["images"], 768]
