"""One decode worker's images/s on ImageNet-size JPEGs: where ``benchmark.cost.ASSUMED_DECODE`` comes from
(pytest-benchmark).

    pytest benchmarks/test_bench_decode.py --benchmark-only

The rows are the scale world's (``scale_world.py``: about 500x375 JPEGs cut from foolbox's 20 ImageNet
validation photos, in the Hub's parquet layout), read through the project's dataset path. Each case is
``calibrate``'s own measurement (``benchmark.calibrate.measure_decode``: one process, one torch thread,
128 rows after 8 untimed ones), as ``calibrate`` runs it on a dataset that is on the machine: the row
read with its decode alone, then each phase's decode op at a 224 px backbone's sizes. ``extra_info``
holds images/s of every round, per second of wall time and per second of the process's CPU time (what
one core does undisturbed: on a shared machine the wall rate falls with the load, the CPU-time rate
does not); the module prints the best round of each at the end.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from scale_world import build_world, world_dataset

from benchmark.calibrate import DecodePlan, measure_decode
from benchmark.cost import DecodeNeed

RATES: dict[str, list[tuple[float, float]]] = {}  # case -> (wall, CPU-time) images/s per round
CASES = {  # name -> (need, transform; None: the op's own)
    "decode": (DecodeNeed("world", "center_crop", 256, 224), lambda image: image),
    "center_crop 256/224 (feature cache)": (DecodeNeed("world", "center_crop", 256, 224), None),
    "random_crop 256 (LGM real batch, full-data probe)": (DecodeNeed("world", "random_crop", 256, 256), None),
}


@pytest.fixture(scope="module")
def world_train(_isolated_cache):
    world = build_world(Path(os.environ["LGM_BENCH_CACHE"]) / "scale-worlds", classes=10, train_per_class=20)
    return world_dataset(world, "train")


@pytest.mark.parametrize("case", list(CASES))
def test_decode_rate(benchmark, world_train, case) -> None:
    need, transform = CASES[case]
    rates = RATES.setdefault(case, [])

    def measure():
        rate = measure_decode(world_train, need, DecodePlan(rows=128, warmup=8), transform=transform)
        rates.append((rate.images_per_s, rate.cpu_images_per_s))
        return rate

    rate = benchmark.pedantic(measure, rounds=5, iterations=1)
    benchmark.extra_info.update(images_per_s=[w for w, _ in rates], cpu_images_per_s=[c for _, c in rates],
                                width=rate.image_size[0], height=rate.image_size[1], rows=rate.rows)
    assert rate.rows == 128 and rate.image_size == (500, 375)


def teardown_module() -> None:
    for case, values in RATES.items():
        print(f"\n{case}: {max(w for w, _ in values):.0f} images/s per worker of wall time, "
              f"{max(c for _, c in values):.0f} per CPU second (best of {len(values)} rounds)")
