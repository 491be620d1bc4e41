"""A paper-probe training killed or preempted part-way resumes to the same head, and a cell whose run
stopped after some probe seeds redoes only the others, with the rows of an uninterrupted run."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from benchmark import preemption
from benchmark.features import FeatureCache
from benchmark.probe.paper import PaperProbe
from benchmark.registry import BACKBONES, DATASETS
from benchmark.results import read_results
from benchmark.runner import PartialRows, Runner, checkpoint_dir
from benchmark.suites import Suite
from benchmark.types import SyntheticSet
from tests.test_probe import make_backbone, make_split
from tests.toys import ToyBackbone, ToyDataset

pytestmark = pytest.mark.usefixtures("one_thread")


class Killed(BaseException):
    """A process dying mid-batch (escapes every ``except Exception``, as a SIGKILL would end it)."""


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    train, test = make_split(10, 0, "train"), make_split(4, 1, "test")
    return {"train": train, "test": test, "backbone": make_backbone(),
            "features": FeatureCache(tmp_path_factory.mktemp("f"), progress=False, workers=0)}


def sets(world):
    train = world["train"]
    rows = torch.arange(0, len(train), 3)
    return {"images": SyntheticSet(labels=train.labels[rows], images=train.load(rows, world["backbone"].preprocess)),
            "full_data": SyntheticSet(labels=train.labels, indices=torch.arange(len(train)),
                                      metadata={"full_data": True})}


def ctx_for(world, tmp_path, name):
    from benchmark.types import RunContext

    return RunContext(device=torch.device("cpu"), features=world["features"], artifact_dir=tmp_path / "a",
                      progress=False, checkpoint_dir=tmp_path / name)


FIT_STARTED = {"calls": 0}


def train(world, synset, ctx, probe, seed=3407):
    """The fit's result; ``FIT_STARTED`` holds the backbone's forward count when the fit began."""
    prepared = probe.prepare(synset, world["train"], world["test"], world["backbone"], ctx)
    FIT_STARTED["calls"] = batches_seen(world["backbone"])
    return probe.fit(prepared, seed)


def batches_seen(backbone):
    return backbone.model.calls


def in_fit(backbone):
    """Training batches (backbone forwards) of the fit under way."""
    return batches_seen(backbone) - FIT_STARTED["calls"]


@pytest.mark.parametrize("kind", ["images", "full_data"])
def test_preempted_training_resumes_mid_epoch_to_the_same_head(world, tmp_path, monkeypatch, kind):
    synset = sets(world)[kind]
    probe = PaperProbe(epochs=4, full_data_epochs=3, full_data_batch=8, batch_cap=4, lr_scale=50,
                       checkpoint_every=0, preload_max_bytes=0)  # decoded per epoch: the stream path too
    want = train(world, synset, ctx_for(world, tmp_path, "ref"), probe)

    backbone = world["backbone"]
    # a SIGTERM, taken up after the training's 11th batch (mid-epoch for both kinds)
    monkeypatch.setattr(preemption, "requested", lambda: "SIGTERM" if in_fit(backbone) >= 11 else None)
    ctx = ctx_for(world, tmp_path, "cut")
    with pytest.raises(preemption.Preempted) as stopped:
        train(world, synset, ctx, probe)
    per_epoch = {"images": 5, "full_data": 8}[kind]  # 20 images in batches of 4; 60 in batches of 8
    epoch = 10 // per_epoch
    assert stopped.value.where == f"probe seed 3407, epoch {epoch}, batch {11 - epoch * per_epoch}"
    assert (ctx.checkpoint_dir / "probe-seed3407.pt").exists()
    monkeypatch.setattr(preemption, "requested", lambda: None)
    got = train(world, synset, ctx, probe)
    epochs = {"images": 4, "full_data": 3}[kind]
    assert in_fit(backbone) == epochs * per_epoch - 11  # no batch done twice
    assert (got.top1, got.top5, got.extra["final_train_loss"]) == (want.top1, want.top5, want.extra["final_train_loss"])


def test_killed_training_resumes_from_its_last_periodic_checkpoint(world, tmp_path):
    synset = sets(world)["images"]
    probe = PaperProbe(epochs=9, batch_cap=4, lr_scale=50, checkpoint_every=2)
    want = train(world, synset, ctx_for(world, tmp_path, "ref"), probe)
    backbone = world["backbone"]

    def dying(module, args):
        if in_fit(backbone) == 5 * 6 + 2:  # the third batch of epoch 6 (5 batches an epoch): dies
            raise Killed

    hook = backbone.register_forward_pre_hook(dying)
    ctx = ctx_for(world, tmp_path, "killed")
    with pytest.raises(Killed):
        train(world, synset, ctx, probe)
    hook.remove()
    saved = torch.load(ctx.checkpoint_dir / "probe-seed3407.pt", weights_only=True)
    assert saved["state"]["position"]["epoch"] == 6 and saved["state"]["position"]["batch"] == 0
    got = train(world, synset, ctx, probe)
    assert (got.top1, got.top5, got.extra["final_train_loss"]) == (want.top1, want.top5, want.extra["final_train_loss"])
    # a checkpoint of other settings is not resumed
    other = PaperProbe(epochs=9, batch_cap=4, lr_scale=40, checkpoint_every=2)
    assert train(world, synset, ctx, other).top1 == train(world, synset, ctx_for(world, tmp_path, "o"), other).top1


@pytest.fixture()
def toys():
    entries = [(DATASETS, "toy", ToyDataset()), (BACKBONES, "toy_a", ToyBackbone("toy_a", seed=0))]
    for registry, name, obj in entries:
        registry._load()
        registry._entries[name] = obj
    yield
    for registry, name, _ in entries:
        registry._entries.pop(name)


@pytest.mark.usefixtures("toys")
def test_a_cell_stopped_after_some_seeds_redoes_only_the_others(tmp_path, monkeypatch):
    suite = Suite(name="t_resume", description="", datasets=["toy"], methods=["centroids"], backbones=["toy_a"],
                  seeds=3, protocol="paper",  # one cell, three probe seeds
                  protocol_options={"paper": {"epochs": 3, "lr_scale": 30, "checkpoint_every": 1}})
    features = FeatureCache(tmp_path / "features", progress=False, workers=0)
    Runner(suite, tmp_path / "whole", progress=False, features=features).run()
    want = read_results(tmp_path / "whole")

    fits: list[int] = []
    fit = PaperProbe.fit

    def dying_fit(self, prepared, seed):
        fits.append(seed)
        if len(fits) == 2:  # the second seed's training dies
            raise Killed
        return fit(self, prepared, seed)

    monkeypatch.setattr(PaperProbe, "fit", dying_fit)
    results = tmp_path / "cut"
    with pytest.raises(Killed):
        Runner(suite, results, progress=False, features=features).run()
    (cell,) = suite.cells()
    assert sorted(PartialRows(checkpoint_dir(results, cell)).load()) == [3407]
    fits.clear()
    monkeypatch.setattr(PaperProbe, "fit", lambda self, prepared, seed: fits.append(seed) or fit(self, prepared, seed))
    assert Runner(suite, results, progress=False, features=features).run().ok
    assert fits == [3408, 3409]  # the finished seed is not trained again
    got = read_results(results)
    assert not checkpoint_dir(results, cell).exists()  # written into the cell's file, then removed
    columns = ["cell_id", "probe_seed", "top1", "top5", "config_hash", "probe_extra"]
    pd.testing.assert_frame_equal(got[columns], want[columns])
