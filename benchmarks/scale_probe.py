"""One configuration of the scale simulation, in a fresh process; prints one JSON object.

    python benchmarks/scale_probe.py lgm --world DIR --classes 100 --K 2 --micro-batch 32
    python benchmarks/scale_probe.py embed --world DIR --workers 2

A fresh process per configuration because the peak RSS (``ru_maxrss``) never goes down within one.
``lgm``: the LGM step of ``classes x K`` synthetic images (ipc 1) through the ViT-B/16-shaped random-init
backbone of ``scale_world``, timed from a fully grown pyramid after ``--warmup`` untimed steps.
``embed``: decode + embed the world's train split through ``FeatureCache`` with ``--workers`` decoding
processes. Peak memory: ``ru_maxrss`` (the process's high-water RSS), and on CUDA
``torch.cuda.max_memory_allocated``; ``base_rss_mib`` is the RSS before the measured work.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # scale_world, when run as a script

from scale_world import scale_backbone, world_dataset  # noqa: E402


def rss_mib() -> float:
    """This process's peak resident set size so far, MiB (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (2**20 if sys.platform == "darwin" else 2**10)


def children_rss_mib() -> float:
    """The largest peak RSS of this process's finished children (the decoding workers), MiB."""
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return peak / (2**20 if sys.platform == "darwin" else 2**10)


def current_rss_mib() -> float:
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return float("nan")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_lgm(args: argparse.Namespace) -> dict:
    from method.config import build_config
    from method.distill import Distiller

    device = torch.device(args.device)
    train = world_dataset(Path(args.world), "train")
    if train.num_classes != args.classes:
        raise SystemExit(f"error: the world has {train.num_classes} classes, not {args.classes}")
    backbone = scale_backbone(args.input_size)
    overrides = {"augs_per_batch": args.K, "syn_res": "auto", "crop_res": "auto", "real_sampling": "uniform",
                 "micro_batch": args.micro_batch, "checkpoint_every": 0, "steps": 1000}
    cfg = build_config("paper", overrides).resolve(args.input_size)
    distiller = Distiller(cfg, train, backbone, ipc=1, seed=0, device=device)
    growths = distiller.schedule.growth_updates(len(distiller.images.sizes))
    distiller.step_done = growths[-1]  # the warm-up step grows the last level; the timed ones follow
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    base = current_rss_mib()
    for _ in range(args.warmup):
        distiller.step()
    _sync(device)
    times = []
    for _ in range(args.rounds):
        started = time.perf_counter()
        distiller.step()
        _sync(device)
        times.append(time.perf_counter() - started)
    synthetic = args.classes * args.K
    return {"kind": "lgm", "classes": args.classes, "K": args.K, "images": synthetic,
            "micro_batch": args.micro_batch, "input_size": args.input_size, "syn_res": cfg.syn_res,
            "step_s": statistics.median(times), "step_s_all": times,
            "peak_rss_mib": rss_mib(), "base_rss_mib": base,
            "cuda_peak_mib": torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None}


def run_embed(args: argparse.Namespace) -> dict:
    from benchmark.features import FeatureCache

    device = torch.device(args.device)
    train = world_dataset(Path(args.world), "train")
    backbone = scale_backbone(args.input_size).to(device)
    base = current_rss_mib()
    kwargs = {"workers": args.workers} if "workers" in inspect.signature(FeatureCache).parameters else None
    if kwargs is None:
        return {"kind": "embed", "skipped": "FeatureCache has no workers argument yet"}
    with tempfile.TemporaryDirectory() as root:
        cache = FeatureCache(root=Path(root), batch_size=args.batch, progress=False, **kwargs)
        started = time.perf_counter()
        features = cache(backbone, train)
        _sync(device)
        seconds = time.perf_counter() - started
    return {"kind": "embed", "workers": args.workers, "images": len(train), "input_size": args.input_size,
            "seconds": seconds, "images_per_s": len(train) / seconds, "feature_shape": list(features.shape),
            "peak_rss_mib": rss_mib(), "base_rss_mib": base, "workers_peak_rss_mib": children_rss_mib()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=["lgm", "embed"])
    parser.add_argument("--world", required=True)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--K", type=int, default=1)
    parser.add_argument("--micro-batch", type=int, default=None)
    parser.add_argument("--input-size", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    result = (run_lgm if args.kind == "lgm" else run_embed)(args)
    result["threads"] = torch.get_num_threads()
    result["load_average"] = list(os.getloadavg())
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
