"""Choose a distillation method's ``embedded`` preset on the training images only.

The bundled Fashion-MNIST train split (300 images per class) is cut, with a fixed seed, into 250 images
per class to distil from (and to fit the fast probe on, whose learning rate is chosen on its own
validation split of them) and 50 per class to score on. The test split is never read. Each trial is a
method at its ``embedded`` preset with some options changed, distilled through both bundled backbones
and probed by both (5 probe seeds), exactly as the ``methods`` suite runs it, plus the real-image
baselines for scale. Finished cells are kept under ``--results``, so trials can be added and rerun.

    python scripts/tune_methods.py --trials dm_lr3e-3 dm_lr1e-2 --results /tmp/tune/results
    python scripts/tune_methods.py --list
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

HOLDOUT_PER_CLASS = 50
SPLIT_SEED = 0

# trial name -> (method, options on top of its ``embedded`` preset)
TRIALS: dict[str, tuple[str, dict[str, Any]]] = {
    "start": ("dm", {"steps": 0, "schedule": "exact"}),  # the shared start: one real image per class, no update
    "lgm": ("lgm", {}),
    "dm_lr1e-3": ("dm", {"lr": 1e-3}),
    "dm_lr3e-3": ("dm", {"lr": 3e-3}),
    "dm_lr1e-2": ("dm", {"lr": 1e-2}),
    "dm_lr3e-2": ("dm", {"lr": 3e-2}),
    "dm_k1_lr1e-2": ("dm", {"lr": 1e-2, "augs_per_batch": 1}),
    "krr_centred": ("krr", {"center_features": True}),
    "krr_plain": ("krr", {"center_features": False}),
    "krr_ridge1e-2": ("krr", {"ridge": 1e-2}),
    "krr_ridge1": ("krr", {"ridge": 1.0}),
    "krr_onehot": ("krr", {"targets": "onehot"}),
    "krr_lr1e-3": ("krr", {"lr": 1e-3}),
    "krr_lr1e-2": ("krr", {"lr": 1e-2}),
}
BASELINES = ["centroids", "random_real"]


@dataclass(frozen=True)
class HeldOut:
    """The bundled train split cut in two: ``train`` (distil and fit from) and ``test`` (score on)."""

    name: str = "fashion_mnist_train_holdout"
    display_name: str = "Fashion-MNIST train split, held-out part"
    description: str = "the bundled train split: 250 images per class to distil from, 50 held out to score on"

    def load(self, split: str):
        from benchmark.registry import DATASETS
        from benchmark.types import LabeledImages

        train = DATASETS.get("fashion_mnist_embedded").load("train")
        gen = torch.Generator().manual_seed(SPLIT_SEED)
        kept, held = [], []
        for c in range(train.num_classes):
            rows = train.class_indices(c)
            rows = rows[torch.randperm(len(rows), generator=gen)]
            held += rows[:HOLDOUT_PER_CLASS].tolist()
            kept += rows[HOLDOUT_PER_CLASS:].tolist()
        rows = sorted(kept if split == "train" else held)
        return LabeledImages(self.name, split, train.dataset.select(rows), list(train.class_names),
                             f"{train.fingerprint}:holdout{HOLDOUT_PER_CLASS}:seed{SPLIT_SEED}:{split}")


def trial_suite(name: str, method: str, options: dict[str, Any]):
    from benchmark.suites import DEFAULT

    return DEFAULT.replace(name=f"tune_{name}", description=f"tuning trial {name}", datasets=[HeldOut.name],
                           methods=[method], method_options={method: {"preset": "embedded", **options}},
                           alignment=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", nargs="*", default=None, help="trial names (default: all)")
    parser.add_argument("--results", type=Path, default=Path("tune_results"))
    parser.add_argument("--list", action="store_true", help="list the trials and exit")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = parser.parse_args()
    if args.list:
        for name, (method, options) in TRIALS.items():
            print(f"{name:<16} {method:<4} {options}")
        return
    names = args.trials if args.trials is not None else list(TRIALS)
    unknown = [n for n in names if n not in TRIALS]
    if unknown:
        parser.error(f"unknown trials {unknown}; --list shows them")
    logging.basicConfig(level=logging.WARNING)
    if args.threads:
        torch.set_num_threads(args.threads)

    from benchmark.registry import DATASETS
    from benchmark.results import read_results
    from benchmark.runner import Runner

    DATASETS.add(HeldOut.name, HeldOut())
    suites = [trial_suite(n, *TRIALS[n]) for n in names]
    base = suites[0].replace(name="tune_baselines", methods=BASELINES, method_options={})
    for suite in [base, *suites]:
        Runner(suite, args.results, device=torch.device("cpu"), progress=False, workers=0).run()
    rows = read_results(args.results)
    rows = rows[rows["status"] == "ok"]
    print("\nheld-out top-1 (%), mean ± std over probe seeds; distilling -> evaluating backbone")
    for suite in [base, *suites]:
        part = rows[rows["suite"] == suite.name]
        for (method, db, eb), group in part.groupby(["method", "distill_backbone", "eval_backbone"]):
            label = suite.name.removeprefix("tune_")
            print(f"  {label:<16} {method:<12} {db or '-':>16} -> {eb:<16} "
                  f"{group['top1'].mean():6.2f} ± {group['top1'].std(ddof=1):.2f}")


if __name__ == "__main__":
    main()
