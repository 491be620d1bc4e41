from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from benchmark import provenance
from benchmark.embedding import default_workers
from benchmark.features import FeatureCache
from benchmark.registry import BACKBONES, DATASETS, METHODS
from benchmark.results import COLUMNS, read_results
from benchmark.runner import Runner, describe_plan
from benchmark.suites import Suite
from benchmark.types import Method, SyntheticSet
from tests.toys import ToyBackbone, ToyDataset

CALLS: dict[str, int] = {}
REPO = Path(__file__).resolve().parent.parent


class Counting(Method):
    """Picks the first ipc images of each class and counts how often it is asked."""

    name = "t_counting"

    def synthesize(self, train, backbone, ipc, seed, ctx):
        CALLS[backbone.name] = CALLS.get(backbone.name, 0) + 1
        idx = [int(train.class_indices(c)[ipc * seed % 3]) for c in range(train.num_classes)]
        return SyntheticSet(labels=train.labels[idx], images=train.load(idx, backbone.preprocess))


class Broken(Method):
    name = "t_broken"
    uses_backbone = False

    def synthesize(self, train, backbone, ipc, seed, ctx):
        raise RuntimeError("this method is broken on purpose")


@pytest.fixture(autouse=True)
def toys():
    entries = [(DATASETS, "toy", ToyDataset()), (BACKBONES, "toy_a", ToyBackbone("toy_a", seed=0)),
               (BACKBONES, "toy_b", ToyBackbone("toy_b", seed=1)), (METHODS, "t_counting", Counting),
               (METHODS, "t_broken", Broken)]
    for registry, name, obj in entries:
        registry._load()
        registry._entries[name] = obj
    CALLS.clear()
    yield
    for registry, name, _ in entries:
        registry._entries.pop(name)


def make_suite(**kw) -> Suite:
    base = dict(name="toy_suite", description="", datasets=["toy"], methods=["random_real", "full_data", "t_counting"],
                backbones=["toy_a", "toy_b"], ipc=[1], seeds=2, protocol="fast", cross_model=("t_counting",))
    return Suite(**{**base, **kw})


def run(tmp_path, suite=None, results="results"):
    runner = Runner(suite or make_suite(), tmp_path / results, progress=False,
                    features=FeatureCache(tmp_path / "features", progress=False))
    return runner, runner.run()


def test_rows_schema_and_provenance(tmp_path) -> None:
    suite = make_suite()
    _, summary = run(tmp_path, suite)
    frame = read_results(tmp_path / "results")
    assert summary.ok and summary.ran == len(suite.cells())
    assert list(frame.columns) == COLUMNS
    # one row per cell x probe seed
    assert len(frame) == sum(len(c.probe_seeds) for c in suite.cells())
    assert (frame.status == "ok").all()
    assert frame.top1.between(0, 100).all() and (frame.top5 >= frame.top1).all()
    shas = {name: BACKBONES.get(name).build().identity.weight_sha256 for name in ("toy_a", "toy_b")}
    assert frame.eval_weight_sha256.tolist() == frame.eval_backbone.map(shas).tolist()
    assert len(set(shas.values())) == 2 and all(len(sha) == 64 for sha in shas.values())
    assert frame.train_fingerprint.ne(frame.test_fingerprint).all()
    assert frame.config_hash.str.fullmatch("[0-9a-f]{16}").all()
    head = git_head()
    if head is None:  # not a git checkout (an installed copy): the only case "unknown" is allowed
        assert (frame.git_sha == "unknown").all()
    else:  # the commit that ran, "-dirty" when tracked files had changes
        assert frame.git_sha.str.fullmatch(f"{head}(-dirty)?").all(), frame.git_sha.unique()
    full = frame[frame.method == "full_data"]
    assert (full.n_train == 36).all() and (full.ipc == 0).all()
    rand = frame[frame.method == "random_real"]
    assert sorted(rand.method_seed.unique()) == [0, 1] and (rand.n_train == 3).all()
    # the machine and the decode: on a CPU no GPU fields; the run's workers; no set here waited on images
    assert (frame.gpu_name == "").all() and (frame.cuda_version == "").all() and (frame.driver_version == "").all()
    assert (frame.decode_workers == default_workers()).all()
    assert frame.distill_data_wait_seconds.isna().all()  # no set of this suite decodes real images per step


def test_lgm_and_paper_probe_rows_say_how_long_they_waited_for_images(tmp_path) -> None:
    suite = make_suite(methods=["lgm", "random_real"], method_options={"lgm": {"preset": "smoke"}}, seeds=1,
                       protocol="paper", protocol_options={"paper": {"epochs": 2, "preload_max_bytes": 0}},
                       backbones=["toy_a"])
    runner = Runner(suite, tmp_path / "results", progress=False, workers=1,
                    features=FeatureCache(tmp_path / "features", progress=False))
    assert runner.run().ok
    frame = read_results(tmp_path / "results")
    lgm, rand = frame[frame.method == "lgm"], frame[frame.method == "random_real"]
    assert (lgm.distill_data_wait_seconds >= 0).all() and rand.distill_data_wait_seconds.isna().all()
    assert (rand.probe_data_wait_seconds > 0).all()  # decoded per epoch through the stream (no preload)
    assert (frame.decode_workers == 1).all()


def git_head(directory: Path = REPO) -> str | None:
    """``git rev-parse HEAD`` in ``directory``, or None when it is not a git checkout."""
    try:
        done = subprocess.run(["git", "rev-parse", "HEAD"], cwd=directory, capture_output=True, text=True,
                              timeout=10, env={**os.environ, "GIT_CEILING_DIRECTORIES": str(directory.parent)})
    except OSError:  # no git at all
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def test_git_sha_is_the_checkouts_commit_or_unknown_outside_one(tmp_path, monkeypatch) -> None:
    head = git_head()
    provenance.git_sha.cache_clear()
    try:
        sha = provenance.git_sha()
        if head is not None:
            assert re.fullmatch("[0-9a-f]{40}(-dirty)?", sha) and sha.removesuffix("-dirty") == head
        else:
            assert sha == "unknown"
        # the same code in a directory that is no git checkout: "unknown", not a sha of something else
        copy = tmp_path / "benchmark"
        copy.mkdir()
        monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
        monkeypatch.setattr(provenance, "__file__", str(copy / "provenance.py"))
        provenance.git_sha.cache_clear()
        assert git_head(tmp_path) is None and provenance.git_sha() == "unknown"
    finally:
        monkeypatch.undo()
        provenance.git_sha.cache_clear()


def test_set_is_made_once_per_distilling_backbone_and_reused(tmp_path) -> None:
    _, summary = run(tmp_path)
    # t_counting: distilled with toy_a and toy_b, each probed on both backbones (cross-model)
    assert CALLS == {"toy_a": 1, "toy_b": 1}
    frame = read_results(tmp_path / "results")
    counting = frame[frame.method == "t_counting"]
    assert set(zip(counting.distill_backbone, counting.eval_backbone, strict=False)) == {
        ("toy_a", "toy_a"), ("toy_a", "toy_b"), ("toy_b", "toy_a"), ("toy_b", "toy_b")}
    assert counting.groupby("distill_backbone").artifact.nunique().eq(1).all()


def test_second_run_trains_nothing_and_says_so(tmp_path, capsys) -> None:
    run(tmp_path)
    before = read_results(tmp_path / "results")
    CALLS.clear()
    _, summary = run(tmp_path)
    assert summary.ran == 0 and summary.skipped == summary.total and summary.made_sets == 0
    assert CALLS == {}
    assert "nothing to train" in capsys.readouterr().out
    pd.testing.assert_frame_equal(before, read_results(tmp_path / "results"))


def test_artifacts_are_reused_by_a_fresh_run(tmp_path) -> None:
    run(tmp_path)
    for cell in (tmp_path / "results" / "cells").rglob("*t_counting*toy_a__toy_b*.parquet"):
        cell.unlink()
    CALLS.clear()
    _, summary = run(tmp_path)
    assert summary.ran == 1 and CALLS == {} and summary.reused_sets == 1


def test_failing_cell_is_recorded_and_the_run_goes_on(tmp_path) -> None:
    suite = make_suite(methods=["t_broken", "full_data"])
    _, summary = run(tmp_path, suite)
    frame = read_results(tmp_path / "results")
    broken = frame[frame.method == "t_broken"]
    assert not summary.ok and len(summary.failed) == 2  # one per eval backbone
    assert (broken.status == "error").all() and broken.error.str.contains("broken on purpose").all()
    assert (frame[frame.method == "full_data"].status == "ok").all()
    # a failed cell is tried again on the next run; finished ones are not
    _, again = run(tmp_path, suite)
    assert again.ran == 2 and again.skipped == 2


def test_same_seed_same_numbers(tmp_path) -> None:
    run(tmp_path, results="one")
    run(tmp_path, results="two")
    keys = ["method", "distill_backbone", "eval_backbone", "method_seed", "probe_seed"]
    one = read_results(tmp_path / "one").sort_values(keys).reset_index(drop=True)
    two = read_results(tmp_path / "two").sort_values(keys).reset_index(drop=True)
    pd.testing.assert_series_equal(one.top1, two.top1)
    pd.testing.assert_series_equal(one.config_hash, two.config_hash)


def test_dry_run_plan_lists_cells_and_writes_nothing(tmp_path) -> None:
    text = describe_plan(make_suite(), tmp_path / "results")
    assert text.count("[todo]") == len(make_suite().cells())
    assert not (tmp_path / "results").exists()
