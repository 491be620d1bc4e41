"""What a suite will do before it does it: cells, downloads and a rough estimate of the work (--dry-run).

Nothing here touches the network: downloads are read from the registries' specs, and "cached" means the
file is already on this machine.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .registries import BACKBONES, DATASETS, METHODS
from .suites import Suite

# Rough H100 costs for ViT-B/16-class backbones at 224 px, from FLOP counts (17.5 GFLOP per forward)
# at about 40% of fp16 peak. Estimates until measured; the GPU columns of the results replace them.
SECONDS_PER_IMAGE_FORWARD = 17.5e9 / 400e12
LGM_PASS_FACTOR = 4  # forward + backward + the second-order backward of the synthetic half


@dataclass
class Estimate:
    lgm_steps: int = 0
    probe_trainings: int = 0
    gpu_hours: float = 0.0


def dataset_need(name: str) -> str:
    spec = DATASETS.get(name)
    source = getattr(spec, "source", None)
    hub = getattr(source, "hub_id", None)
    note = _revision_note(spec)
    if hub is None:
        if note:  # read through another entry from the Hub (ImageNet-100 out of ImageNet-1k)
            return f"dataset {name}: {source.describe()} ({note})"
        kind = getattr(source, "kind", type(source).__name__)
        return f"dataset {name}: {kind} (no download)"
    gated = " (gated: accept the terms on the Hub and log in)" if getattr(source, "gated", False) else ""
    return f"dataset {name}: Hub {hub}" + (f", {note}" if note else "") + gated


def _revision_note(spec: Any) -> str:
    """The entry's "revision <sha>", "revision not pinned" (its rows may change under the same name), or ""."""
    try:
        note = getattr(spec, "revision_note", "")
    except Exception:  # e.g. a bad LGM_BENCH_DATA_<NAME>: the run reports it; a dry run goes on
        return ""
    return note if isinstance(note, str) else ""


def backbone_need(name: str) -> str:
    spec = BACKBONES.get(name)
    try:
        here = spec.weights_available()
    except Exception:  # a spec that cannot tell is reported as unknown, never fatal for a dry run
        here = None
    state = {True: "on this machine", False: "download needed", None: "unknown"}[here]
    return f"backbone {name}: {getattr(spec, 'library', '?')} {getattr(spec, 'architecture', '?')} ({state})"


def estimate(suite: Suite, sizes: dict[str, tuple[int, int, int]] | None = None) -> Estimate:
    """``sizes``: dataset -> (classes, train images, test images), where known (e.g. ``KNOWN_SIZES``)."""
    sizes = sizes or {}
    est = Estimate()
    sets = {(c.dataset, c.method, c.distill_backbone, c.ipc, c.method_seed) for c in suite.cells()}
    for dataset, method, _, ipc, _ in sets:
        options = suite.options_for(method, dataset)
        config = getattr(METHODS.get(method)(**options), "lgm_config", None)
        if config is None or dataset not in sizes:
            continue
        classes = sizes[dataset][0]
        per_step = 2 * ipc * config.augs_per_batch * classes  # real + synthetic
        est.lgm_steps += config.steps
        est.gpu_hours += config.steps * per_step * LGM_PASS_FACTOR * SECONDS_PER_IMAGE_FORWARD / 3600
    for cell in suite.cells():
        est.probe_trainings += len(cell.probe_seeds)
        if cell.dataset in sizes and suite.protocol == "paper":
            classes, n_train, _ = sizes[cell.dataset]
            images = n_train * 100 if cell.method == "full_data" else classes * max(cell.ipc, 1) * 1000
            est.gpu_hours += len(cell.probe_seeds) * images * SECONDS_PER_IMAGE_FORWARD / 3600
    return est


# Classes, train and test images of the paper's datasets (docs/assets.md), for the estimate only.
KNOWN_SIZES = {
    "imagenet1k": (1000, 1_281_167, 50_000), "imagenet100": (100, 126_689, 5_000),
    "cub200": (200, 5_994, 5_794), "stanford_dogs": (120, 12_000, 8_580), "flowers102": (102, 1_020, 6_149),
    "food101": (101, 75_750, 25_250), "waterbirds": (2, 4_795, 5_794), "spawrious_o2o_hard": (4, 25_344, 25_344),
    "artbench10": (10, 50_000, 10_000),
}


def describe_plan(suite: Suite, results: Path, is_done: Any) -> str:
    cells = suite.cells()
    done = [bool(is_done(results, c)) for c in cells]  # one read of each cell file
    lines = [f"suite {suite.name}: {len(cells)} cells ({sum(done)} already done), protocol {suite.protocol}, "
             f"{max((len(c.probe_seeds) for c in cells), default=0)} probe seeds per cell"]
    lines += [("  [done] " if d else "  [todo] ") + c.describe() for c, d in zip(cells, done, strict=True)]
    by_method = Counter(c.method for c in cells)
    lines.append("cells per method: " + ", ".join(f"{m} {n}" for m, n in by_method.items()))
    lines.append("needs:")
    backbones = sorted({*suite.backbones, *(suite.distill_backbones or [])})
    lines += [f"  {dataset_need(d)}" for d in suite.datasets] + [f"  {backbone_need(b)}" for b in backbones]
    est = estimate(suite, KNOWN_SIZES)
    if est.gpu_hours:
        lines.append(f"estimate (rough, H100, until measured): {est.lgm_steps} LGM steps, "
                     f"{est.probe_trainings} probe trainings, about {est.gpu_hours:.1f} GPU hours")
    else:
        lines.append(f"work: {est.probe_trainings} probe trainings")
    return "\n".join(lines)
