"""Speed of one LGM step per bundled backbone, and of the fast probe's two cheap parts (pytest-benchmark).

``test_lgm_step``: each bundled backbone at the default suite's input size (``EMBEDDED_BACKBONES``),
the ``embedded`` preset, ipc 1 on the embedded Fashion-MNIST train split, timed from the state where
the pyramid is fully grown (the most expensive and most common kind of step): ``step_done`` starts at
the schedule's last growth update, so the warm-up step grows the pyramid (and builds the real bank, if
the config has one); the timed rounds follow. ``extra_info`` records the config, the real bank's build
time, the thread count and the projected distillation time at the preset (median step x steps + bank).

``test_embed``: one no-grad feature batch per bundled backbone (the feature cache's and probes' path).
``test_fast_probe_heads``: the fast probe's head training at the default suite's size.

Timings are only comparable on an otherwise idle machine; pytest-benchmark stores its machine info
with every saved run.
"""

from __future__ import annotations

import os

import pytest
import torch

from benchmark.suites import EMBEDDED_BACKBONES, EMBEDDED_PROBE

EMBEDDED_INPUT = {name: options["input_size"] for name, options in EMBEDDED_BACKBONES.items()}


def _synchronized(fn, device: torch.device):
    if device.type != "cuda":
        return fn

    def run():
        out = fn()
        torch.cuda.synchronize(device)
        return out

    return run


@pytest.fixture(scope="module")
def train_split(lgm_options):
    from benchmark.registry import DATASETS

    return DATASETS.get(lgm_options["dataset"]).load("train")


@pytest.mark.parametrize("name", list(EMBEDDED_INPUT))
def test_lgm_step(benchmark, name, lgm_options, train_split, backbones):
    from method.config import build_config
    from method.distill import Distiller

    input_size = EMBEDDED_INPUT[name]
    cfg = build_config(lgm_options["preset"], lgm_options["overrides"]).resolve(input_size)
    distiller = Distiller(cfg, train_split, backbones(name, input_size), ipc=1, seed=0,
                          device=lgm_options["device"])
    # start where the pyramid is fully grown: the warm-up step does the last growth
    growths = (distiller.schedule.growth_updates(len(distiller.images.sizes))
               if cfg.parameterization == "pyramid" else [])
    distiller.step_done = growths[-1] if growths else 0

    benchmark.group = "lgm_step"
    benchmark.extra_info.update({
        "backbone": name, "input_size": input_size, "preset": lgm_options["preset"],
        "overrides": lgm_options["overrides"], "syn_res": cfg.syn_res, "K": cfg.augs_per_batch,
        "ipc": 1, "num_classes": train_split.num_classes, "threads": torch.get_num_threads(),
        "device": str(distiller.device), "preset_steps": cfg.steps, "load_average": os.getloadavg()})
    benchmark.pedantic(_synchronized(distiller.step, distiller.device), rounds=lgm_options["rounds"],
                       warmup_rounds=lgm_options["warmup"], iterations=1)
    bank = getattr(distiller, "bank", None)
    benchmark.extra_info["real_bank_views"] = 0 if bank is None else len(bank[1])
    benchmark.extra_info["real_bank_s"] = round(getattr(distiller, "bank_seconds", 0.0), 2)
    if benchmark.stats is not None:  # None under --benchmark-disable
        median = benchmark.stats.stats.median
        benchmark.extra_info["projected_run_s"] = round(median * cfg.steps + benchmark.extra_info["real_bank_s"], 1)


@pytest.mark.parametrize("name", list(EMBEDDED_INPUT))
def test_embed(benchmark, name, lgm_options, backbones):
    """One no-grad batch of 128 images at the backbone's input size through ``embed``."""
    input_size = EMBEDDED_INPUT[name]
    device = torch.device(lgm_options["device"])
    backbone = backbones(name, input_size).to(device)
    images = torch.rand(128, 3, input_size, input_size, generator=torch.Generator().manual_seed(0)).to(device)

    def embed():
        with torch.no_grad():
            return backbone.embed(images)

    benchmark.group = "embed_128"
    benchmark.extra_info.update({"backbone": name, "input_size": input_size, "batch": 128,
                                 "threads": torch.get_num_threads(), "device": str(device)})
    features = benchmark.pedantic(_synchronized(embed, device), rounds=5, warmup_rounds=1, iterations=1)
    assert features.shape == (128, backbone.feature_dim)


@pytest.mark.parametrize("dim", [384, 1280], ids=lambda d: f"dim{d}")  # ViT-S/14 and EfficientNet-Lite0
def test_fast_probe_heads(benchmark, dim):
    """The fast probe's selection grid on a distilled set of the default suite: 10 classes x ipc 1 x
    ``train_views`` views, one head per learning rate, ``steps`` full-batch Adam steps (CPU)."""
    from benchmark.probe.fast import FastOptions, train_linear_heads

    options = FastOptions(**EMBEDDED_PROBE["fast"])
    classes, rows = 10, 10 * options.train_views
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(rows, dim, generator=generator)
    y = torch.arange(classes).repeat_interleave(rows // classes)
    heads = len(options.lrs)

    benchmark.group = "fast_probe_heads"
    benchmark.extra_info.update({"rows": rows, "dim": dim, "heads": heads, "steps": options.steps,
                                 "threads": torch.get_num_threads()})
    weights, _ = benchmark.pedantic(
        train_linear_heads, args=(x, y, classes, options.lrs, (0.0,) * heads, tuple(range(heads)), options.steps),
        rounds=5, warmup_rounds=1, iterations=1)
    assert weights.shape == (heads, classes, dim)
