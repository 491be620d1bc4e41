"""A fourth objective from outside the package: one config, one objective, one registered method, and it
runs in the shared loop (chunks, checkpoints) and in a suite, probed by every backbone, labelled by name.

Everything below the imports is what a user's own file would hold; only the fixture's clean-up is test
plumbing (it takes the method out of the registry again).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import pytest
import torch
from test_lgm import ctx_for, toy_backbone, toy_train

from benchmark.features import FeatureCache
from benchmark.registry import BACKBONES, DATASETS, METHODS
from benchmark.report import labels, naming
from benchmark.results import read_results
from benchmark.runner import Runner
from benchmark.suites import Suite
from method import DistillConfig, DistillMethod, Objective
from tests.toys import ToyBackbone, ToyDataset

pytestmark = pytest.mark.usefixtures("one_thread")


# -- the user's file ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class PullConfig(DistillConfig):
    kind: ClassVar[str] = "pull"
    weight: float = 1.0  # scales the loss (Adam does not care; it shows an objective's own option)


class PullToMeans(Objective):
    """Each synthetic feature pulled onto the mean real feature of its class."""

    name = "pull_means"
    Config = PullConfig

    def target(self, real):
        z, y = real()
        return torch.stack([z[y == c].mean(0) for c in range(self.loop.num_classes)])

    def loss(self, z, y, target):
        return self.cfg.weight * (z.float() - target[y]).square().sum(1).mean()


class PullMethod(DistillMethod):
    name = "pull_means"
    description = "synthetic features pulled onto the real class means"
    display_name = "Pull"
    objective = PullToMeans
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        "paper": {}, "tiny": {"steps": 3, "augs_per_batch": 2, "grow_every": 1, "real_sampling": "balanced",
                              "syn_res": None, "crop_res": None, "checkpoint_every": 2}}


# -- the test -----------------------------------------------------------------------------------------

def forget_names() -> None:
    """The report caches what the registries hold; a method registered mid-process must be seen."""
    naming._registered.cache_clear()
    labels._method_class.cache_clear()


@pytest.fixture
def registered():
    METHODS.register("pull_means")(PullMethod)  # the one registration
    forget_names()
    extras = [(DATASETS, "toy", ToyDataset()), (BACKBONES, "toy_a", ToyBackbone("toy_a", seed=0)),
              (BACKBONES, "toy_b", ToyBackbone("toy_b", seed=1))]
    for registry, name, obj in extras:
        registry._load()
        registry._entries[name] = obj
    yield
    for registry, name in [(METHODS, "pull_means"), *[(r, n) for r, n, _ in extras]]:
        registry._entries.pop(name)
    forget_names()


def test_a_registered_objective_runs_in_the_shared_loop(registered, tmp_path):
    method = METHODS.get("pull_means")(preset="tiny")
    assert method.config()["weight"] == 1.0 and method.config()["preset"] == "tiny"
    synset = method.synthesize(toy_train(), toy_backbone(), 1, 0, ctx_for(tmp_path))
    curve = synset.metadata["loss_curve"]
    assert synset.metadata["objective"] == "pull_means" and len(curve) == 4 and curve[-1] < curve[0]
    assert (tmp_path / "checkpoint.pt").exists()
    chunked = METHODS.get("pull_means")(preset="tiny", micro_batch=2).synthesize(
        toy_train(), toy_backbone(), 1, 0, ctx_for(tmp_path / "chunked"))
    assert float((chunked.images - synset.images).abs().max()) <= 1e-5
    with pytest.raises(ValueError, match="bad pull config"):
        PullConfig(steps=-1)


def test_a_registered_objective_joins_a_suite_and_the_report(registered, tmp_path):
    suite = Suite(name="pull_suite", description="", datasets=["toy"], methods=["pull_means", "random_real"],
                  backbones=["toy_a", "toy_b"], seeds=2, protocol="fast", cross_model=("*",),
                  method_options={"pull_means": {"preset": "tiny"}})
    cells = suite.cells()
    pulled = {(c.distill_backbone, c.eval_backbone) for c in cells if c.method == "pull_means"}
    assert pulled == {("toy_a", "toy_a"), ("toy_a", "toy_b"), ("toy_b", "toy_a"), ("toy_b", "toy_b")}
    Runner(suite, tmp_path / "results", progress=False, features=FeatureCache(tmp_path / "f", progress=False)).run()
    rows = read_results(tmp_path / "results")
    ours = rows[rows["method"] == "pull_means"]
    assert len(ours) == 4 * 2 and (ours["status"] == "ok").all() and ours["top1"].between(0, 100).all()
    key = labels.method_key("pull_means", ours["method_config"].iloc[0])
    assert key == "pull_means [tiny]" and naming.display_method(key) == "Pull [tiny]"
