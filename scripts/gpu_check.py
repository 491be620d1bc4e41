"""GPU check of LGM at the paper's scale: s/step, peak memory and CUDA-event time of fp16 (x1024 loss
scale) and bf16 steps on a ViT-B/16-shaped random-init model at 224 px, for 100 classes x K = 10 and
1000 classes x K = 3 with ``micro_batch``, and the no-grad feature throughput (images/s).

    python scripts/gpu_check.py --out gpu_check            # on a CUDA machine; writes .json and .md
    python scripts/gpu_check.py --device cpu --arch vit_tiny_patch16_224 --size 32 --cases 10x2 --steps 1

Random-init weights and random images: it measures cost, not accuracy. The real images are small
random pictures resized to 256 like any training image (decoded once, held in memory).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch


def toy_split(classes: int, per_class: int, seed: int = 0):
    import datasets
    import numpy as np
    from PIL import Image

    from benchmark.types import LabeledImages

    rng = np.random.default_rng(seed)
    images = [Image.fromarray(rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)) for _ in range(classes * per_class)]
    labels = [c for c in range(classes) for _ in range(per_class)]
    names = [f"c{c}" for c in range(classes)]
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=names)})
    ds = datasets.Dataset.from_dict({"image": images, "label": labels}, features=features)
    return LabeledImages("gpu_check", "train", ds, names, f"gpu-check-{classes}x{per_class}")


def build_backbone(arch: str, size: int, device: torch.device):
    from benchmark.backbones.timm_adapter import TimmSpec

    spec = TimmSpec(name=arch, description="random init", architecture=arch, pretrained=False, input_size=size)
    return spec.build(input_size=size, device=device)


def lgm_case(backbone, classes: int, k: int, precision: str, micro_batch, size: int, steps: int,
             device: torch.device) -> dict:
    import method.real
    from method.config import build_config
    from method.distill import Distiller

    method.real.PRELOAD_MAX_BYTES = 64 << 30  # decode the toy split once: time the step, not PIL
    train = toy_split(classes, k)
    syn = round(size * 256 / 224)
    cfg = build_config("paper", {"steps": steps + 1, "augs_per_batch": k, "precision": precision,
                                 "micro_batch": micro_batch, "crop_res": size, "syn_res": syn,
                                 "grow_every": 1, "schedule": "exact", "checkpoint_every": 0}).resolve(size)
    d = Distiller(cfg, train, backbone, ipc=1, seed=0, device=device)
    d.step()  # warm-up (and the pyramid's first growth)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    walls, events = [], []
    for _ in range(steps):
        start_event = end_event = None
        if device.type == "cuda":
            start_event, end_event = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start_event.record()
        t0 = time.perf_counter()
        d.step()
        if device.type == "cuda":
            end_event.record()
            torch.cuda.synchronize(device)
            events.append(start_event.elapsed_time(end_event) / 1000)
        walls.append(time.perf_counter() - t0)
    peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None
    return {"classes": classes, "K": k, "precision": precision, "micro_batch": d.micro_batch,
            "synthetic_images": classes * k, "real_images": classes * k, "s_per_step": sorted(walls)[len(walls) // 2],
            "cuda_event_s_per_step": sorted(events)[len(events) // 2] if events else None,
            "peak_mem_gib": None if peak is None else peak / 2**30, "skipped_steps": d.skipped_steps,
            "loss": d.loss_curve[-1]}


def feature_throughput(backbone, size: int, device: torch.device, batch: int = 256, rounds: int = 10) -> dict:
    x = torch.rand(batch, 3, size, size, device=device)
    autocast = torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")
    with torch.no_grad(), autocast:
        backbone(x)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        for _ in range(rounds):
            backbone(x)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
    return {"batch": batch, "images_per_s": batch * rounds / (time.perf_counter() - t0),
            "dtype": "bf16" if device.type == "cuda" else "fp32"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--arch", default="vit_base_patch16_224")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--cases", nargs="+", default=["100x10", "1000x3"], help="CLASSESxK")
    parser.add_argument("--precisions", nargs="+", default=["fp16", "bf16"])
    parser.add_argument("--micro-batch", default="auto", help='"auto", an int, or "none"')
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("gpu_check"))
    args = parser.parse_args()
    device = torch.device(args.device)
    micro = "off" if args.micro_batch == "none" else args.micro_batch if args.micro_batch == "auto" \
        else int(args.micro_batch)
    backbone = build_backbone(args.arch, args.size, device)
    report = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor(),
              "torch": torch.__version__, "arch": args.arch, "size": args.size,
              "features": feature_throughput(backbone, args.size, device), "lgm": []}
    for case in args.cases:
        classes, k = (int(v) for v in case.split("x"))
        for precision in args.precisions:
            row = lgm_case(backbone, classes, k, precision, micro, args.size, args.steps, device)
            print(json.dumps(row), flush=True)
            report["lgm"].append(row)
            if device.type == "cuda":
                torch.cuda.empty_cache()
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "gpu_check.json").write_text(json.dumps(report, indent=1))
    lines = [f"device: {report['device']}, torch {report['torch']}, {args.arch} at {args.size} px",
             f"features (no grad, {report['features']['dtype']}): {report['features']['images_per_s']:.0f} images/s",
             "", "| classes x K | precision | micro_batch | s/step | CUDA-event s/step | peak GiB |",
             "|---|---|---|---|---|---|"]
    for r in report["lgm"]:
        ev = "" if r["cuda_event_s_per_step"] is None else f"{r['cuda_event_s_per_step']:.2f}"
        mem = "" if r["peak_mem_gib"] is None else f"{r['peak_mem_gib']:.1f}"
        lines.append(f"| {r['classes']} x {r['K']} | {r['precision']} | {r['micro_batch']} | {r['s_per_step']:.2f} | "
                     f"{ev} | {mem} |")
    (args.out / "gpu_check.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
