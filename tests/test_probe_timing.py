"""What the runner times for a probe: one ``prepare`` per cell, one ``fit`` per seed, and a row's share.

A fake clock (only :mod:`benchmark.provenance` reads it) advances by known amounts inside a fake method
and a fake probe, so the test can time the evaluation part of ``run_cell`` from outside (the whole call
minus the set's making) and compare it with what the rows say, exactly and independently of the load.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch

from benchmark import provenance
from benchmark.features import FeatureCache
from benchmark.registry import BACKBONES, DATASETS, METHODS, PROBES
from benchmark.results import COLUMNS, LATER_COLUMNS, read_results
from benchmark.runner import Runner
from benchmark.suites import Suite
from benchmark.types import Method, PreparedProbe, ProbeProtocol, ProbeResult, SyntheticSet
from tests.toys import ToyBackbone, ToyDataset

PREPARE, DISTILL = 7.0, 100.0
TIMING = ("probe_prepare_seconds", "probe_fit_seconds", "probe_wall_seconds")


class FakeClock:
    """``time`` as provenance sees it: ``perf_counter`` moves only when the test says."""

    def __init__(self) -> None:
        self.now = 1000.0

    def perf_counter(self) -> float:
        return self.now


CLOCK = FakeClock()


def fit_seconds(seed: int) -> float:
    return 1.0 + 0.5 * (seed % 10)  # seeds take different times, so a swapped or averaged column shows


class SlowMethod(Method):
    """The first image of each class, after 100 fake seconds."""

    name = "t_slow"
    uses_backbone = False

    def synthesize(self, train, backbone, ipc, seed, ctx):
        CLOCK.now += DISTILL
        rows = torch.stack([train.class_indices(c)[0] for c in range(train.num_classes)])
        return SyntheticSet(labels=train.labels[rows], indices=rows)


@dataclass
class ClockPrepared(PreparedProbe):
    prepares: int


class ClockProbe(ProbeProtocol):
    """Scores nothing; ``prepare`` takes 7 fake seconds, ``fit`` of seed s takes 1 + s/2."""

    name = "t_clock"
    prepare_calls = 0

    def prepare(self, synset, train, test, backbone, ctx):
        CLOCK.now += PREPARE
        ClockProbe.prepare_calls += 1
        return ClockPrepared(test=test, num_classes=train.num_classes, prepares=ClockProbe.prepare_calls)

    def fit(self, prepared, seed):
        CLOCK.now += fit_seconds(seed)
        return ProbeResult(seed=seed, top1=50.0 + seed % 10, top5=100.0, extra={"prepares": prepared.prepares})


@pytest.fixture(autouse=True)
def toys(monkeypatch):
    entries = [(DATASETS, "toy", ToyDataset()), (BACKBONES, "toy_a", ToyBackbone("toy_a", seed=0)),
               (METHODS, "t_slow", SlowMethod), (PROBES, "t_clock", ClockProbe)]
    for registry, name, obj in entries:
        registry._load()
        registry._entries[name] = obj
    monkeypatch.setattr(provenance, "time", CLOCK)
    ClockProbe.prepare_calls = 0
    yield
    for registry, name, _ in entries:
        registry._entries.pop(name)


def make_runner(tmp_path, protocol: str, seeds: int, methods=("t_slow",), **options) -> Runner:
    suite = Suite(name="timing", description="", datasets=["toy"], methods=list(methods), backbones=["toy_a"],
                  seeds=seeds, protocol=protocol, protocol_options={protocol: options} if options else {})
    return Runner(suite, tmp_path / "results", progress=False,
                  features=FeatureCache(tmp_path / "features", progress=False))


@pytest.mark.parametrize("seeds", [1, 3])
def test_rows_split_the_probe_time_into_one_prepare_and_each_seeds_fit(tmp_path, seeds) -> None:
    runner = make_runner(tmp_path, "t_clock", seeds)
    (cell,) = runner.suite.cells()
    before = CLOCK.now
    rows = runner.run_cell(cell)
    probe_wall = CLOCK.now - before - DISTILL  # timed from outside: the call less the set's making
    assert [r["status"] for r in rows] == ["ok"] * seeds, rows[0].get("error")
    assert [r["probe_seed"] for r in rows] == list(cell.probe_seeds)
    assert ClockProbe.prepare_calls == 1 and all(r["top1"] == 50.0 + r["probe_seed"] % 10 for r in rows)
    fits = [fit_seconds(s) for s in cell.probe_seeds]
    assert probe_wall == PREPARE + sum(fits)
    assert [r["distill_seconds"] for r in rows] == [DISTILL] * seeds
    assert [r["probe_prepare_seconds"] for r in rows] == [PREPARE] * seeds  # the cell's, on every row
    assert [r["probe_fit_seconds"] for r in rows] == fits  # each seed's own
    assert [r["probe_wall_seconds"] for r in rows] == [probe_wall] * seeds
    # acceptance: prepare + the seeds' fits is the probe's wall time (within 10 %; here exactly)
    recorded = rows[0]["probe_prepare_seconds"] + sum(r["probe_fit_seconds"] for r in rows)
    assert recorded == pytest.approx(probe_wall, rel=0.10)
    # eval_seconds: the seed's fit and its share of the prepare, so the rows of a cell add up to its wall
    assert [r["eval_seconds"] for r in rows] == pytest.approx([PREPARE / seeds + f for f in fits], abs=1e-12)
    assert sum(r["eval_seconds"] for r in rows) == pytest.approx(probe_wall, abs=1e-9)


def test_timing_columns_are_written_and_read_back(tmp_path) -> None:
    runner = make_runner(tmp_path, "t_clock", 2)
    summary = runner.run()
    frame = read_results(tmp_path / "results")
    assert summary.ok and len(frame) == 2 and list(frame.columns) == COLUMNS
    assert set(TIMING) <= set(LATER_COLUMNS)  # files from before these columns stay readable
    fits = [fit_seconds(s) for s in frame.probe_seed]
    assert frame.probe_prepare_seconds.tolist() == [PREPARE, PREPARE]
    assert frame.probe_fit_seconds.tolist() == fits
    assert frame.probe_wall_seconds.tolist() == [PREPARE + sum(fits)] * 2


def test_a_failing_fit_leaves_error_rows_without_timings(tmp_path, monkeypatch) -> None:
    def broken(self, prepared, seed):
        raise RuntimeError("fit broke on purpose")

    monkeypatch.setattr(ClockProbe, "fit", broken)
    runner = make_runner(tmp_path, "t_clock", 2)
    rows = runner.run_cell(runner.suite.cells()[0])
    assert [r["status"] for r in rows] == ["error", "error"]
    assert all("fit broke on purpose" in r["error"] and "probe_fit_seconds" not in r for r in rows)


@pytest.mark.parametrize("protocol,options", [("fast", {}), ("paper", {"epochs": 2})])
def test_real_probes_record_one_prepare_per_cell(tmp_path, monkeypatch, protocol, options) -> None:
    """The built-in probes through the runner: prepare runs once per cell, whatever the seeds, and the
    rows carry a consistent split (the real clock, so only relations that hold at any load)."""
    monkeypatch.setattr(provenance, "time", __import__("time"))
    calls = []
    real_prepare = PROBES.get(protocol).prepare

    def counted(self, *args, **kwargs):
        calls.append(1)
        return real_prepare(self, *args, **kwargs)

    monkeypatch.setattr(PROBES.get(protocol), "prepare", counted)
    runner = make_runner(tmp_path, protocol, 3, **options)
    (cell,) = runner.suite.cells()
    rows = runner.run_cell(cell)
    assert [r["status"] for r in rows] == ["ok"] * 3, rows[0].get("error")
    assert len(calls) == 1
    prepare = rows[0]["probe_prepare_seconds"]
    assert prepare > 0 and all(r["probe_prepare_seconds"] == prepare for r in rows)
    assert all(r["probe_fit_seconds"] > 0 for r in rows)
    assert all(r["eval_seconds"] == prepare / 3 + r["probe_fit_seconds"] for r in rows)
    assert rows[0]["probe_wall_seconds"] >= prepare + sum(r["probe_fit_seconds"] for r in rows)
