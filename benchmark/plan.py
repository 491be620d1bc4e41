"""What a suite will do before it does it: cells, downloads and an estimate of the work (--dry-run).

The estimate's model is ``benchmark.cost`` (device hours per phase from measured or assumed throughputs and
decode rates, with the run's decode workers and the machine's preload budget).

Nothing here touches the network: downloads are read from the registries' specs, and "cached" means the
file is already on this machine.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import torch

from .budgets import preload_budget_bytes
from .cost import describe_estimate, estimate_suite, rates_for
from .registry import BACKBONES, DATASETS
from .rehearsal import limit_label, limited_count
from .suites import Suite


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


# Classes, train and test images of the paper's datasets (docs/assets.md), for the estimate only.
KNOWN_SIZES = {
    "imagenet1k": (1000, 1_281_167, 50_000), "imagenet100": (100, 126_689, 5_000),
    "cub200": (200, 5_994, 5_794), "stanford_dogs": (120, 12_000, 8_580), "flowers102": (102, 1_020, 6_149),
    "food101": (101, 75_750, 25_250), "waterbirds": (2, 4_795, 5_794), "spawrious_o2o_hard": (4, 25_344, 25_344),
    "artbench10": (10, 50_000, 10_000),
    # the bundled ones (benchmark/data/catalog.py)
    "fashion_mnist_embedded": (10, 3_000, 1_000), "smoke_tiny": (4, 64, 32),
}


def describe_plan(suite: Suite, results: Path, is_done: Any, device: torch.device | None = None,
                  calibration: Path | None = None, workers: int | None = None) -> str:
    """The dry-run text. The estimate uses ``device``'s calibration (``calibration``: another file) when
    there is one, else the assumed rates, and says which; ``workers``: the run's decode workers (None:
    this machine's default)."""
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
    rates, warnings = rates_for(device or torch.device("cpu"), calibration)
    lines += warnings
    try:
        budget = preload_budget_bytes()
    except ValueError as err:  # the run itself stops on it; a dry run says so and goes on
        lines.append(f"warning: {err}; the estimate preloads nothing")
        budget = 0
    sizes = KNOWN_SIZES
    if suite.limit is not None or suite.overrides:  # a rehearsal (run --limit / --set)
        sizes = {d: (c, limited_count(n, c, suite.limit), limited_count(t, c, suite.limit))
                 for d, (c, n, t) in KNOWN_SIZES.items()}
        lines.append(f"rehearsal: {limit_label(suite.limit) + ' of each split' if suite.limit else 'all images'}"
                     + "".join(f"; {key} = {value!r}" for key, value in suite.overrides.items()))
    lines += describe_estimate(estimate_suite(suite, sizes, rates, workers=workers, preload_bytes=budget))
    return "\n".join(lines)
