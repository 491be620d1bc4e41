"""Time one LGM distillation step per bundled backbone (a benchmark, not a test).

    python benchmarks/bench_lgm_step.py                      # embedded preset, both bundled backbones
    python benchmarks/bench_lgm_step.py --steps 20 --set augs_per_batch=8 --backbone effnet_lite0

For each backbone: build it at the embedded input size, load the embedded Fashion-MNIST train split,
run ``--warmup`` steps (pyramid growth and the real bank, if any, included), then time ``--steps``
steps. Prints the wall time and the process CPU time per step, the projected time of a full run at the
preset, and the machine's load average (the numbers are only comparable on an otherwise idle machine).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import torch

from benchmark.suites import EMBEDDED_BACKBONES

EMBEDDED_INPUT = {name: options["input_size"] for name, options in EMBEDDED_BACKBONES.items()}


def parse_value(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def bench(name: str, input_size: int, args: argparse.Namespace) -> dict:
    from benchmark.registries import BACKBONES, DATASETS
    from method.config import build_config
    from method.distill import Distiller

    overrides = dict(parse_value_pair(p) for p in args.set)
    cfg = build_config(args.preset, overrides).resolve(input_size)
    train = DATASETS.get(args.dataset).load("train")
    backbone = BACKBONES.get(name).build(input_size=input_size)
    distiller = Distiller(cfg, train, backbone, ipc=args.ipc, seed=0, device=args.device)
    # start where the pyramid is fully grown: the most expensive (and most common) kind of step
    growths = distiller.schedule.growth_updates(len(distiller.images.sizes)) \
        if cfg.parameterization == "pyramid" else []
    distiller.step_done = growths[-1] if growths else 0
    for _ in range(args.warmup):
        distiller.step()
    walls, cpus = [], []
    for _ in range(args.steps):
        w0, c0 = time.perf_counter(), time.process_time()
        distiller.step()
        if distiller.device.type == "cuda":
            torch.cuda.synchronize()
        walls.append(time.perf_counter() - w0)
        cpus.append(time.process_time() - c0)
    wall = statistics.median(walls)
    return {"backbone": name, "input_size": input_size, "syn_res": cfg.syn_res, "K": cfg.augs_per_batch,
            "real_batch": 0 if cfg.real_bank else args.ipc * cfg.augs_per_batch * train.num_classes,
            "real_bank_views": 0 if distiller.bank is None else len(distiller.bank[1]),
            "real_bank_s": round(distiller.bank_seconds, 1),
            "wall_s_per_step": round(wall, 4), "wall_s_mean": round(statistics.mean(walls), 4),
            "cpu_s_per_step": round(statistics.median(cpus), 4), "threads": torch.get_num_threads(),
            "preset_steps": cfg.steps, "projected_run_s": round(wall * cfg.steps + distiller.bank_seconds, 1)}


def parse_value_pair(text: str) -> tuple[str, object]:
    key, _, value = text.partition("=")
    return key, parse_value(value)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", action="append", help="default: both bundled backbones")
    parser.add_argument("--preset", default="embedded")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="override a config field (JSON value), e.g. augs_per_batch=8")
    parser.add_argument("--dataset", default="fashion_mnist_embedded")
    parser.add_argument("--ipc", type=int, default=1)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = [bench(name, EMBEDDED_INPUT.get(name, 224), args) for name in (args.backbone or EMBEDDED_INPUT)]
    for row in rows:
        print(json.dumps(row))
    total = sum(r["projected_run_s"] for r in rows)
    print(f"projected distillation, all listed backbones: {total:.0f} s; load average {os.getloadavg()}")


if __name__ == "__main__":
    main()
