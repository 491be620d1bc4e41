"""GPU check of LGM at the paper's scale: s/step, peak memory and CUDA-event time of fp16 (x1024 loss
scale) and bf16 steps on a ViT-B/16-shaped random-init model at 224 px, for 100 classes x K = 10 and
1000 classes x K = 3 with ``micro_batch``, and the no-grad feature throughput (images/s).

    python scripts/gpu_check.py --out gpu_check            # on a CUDA machine; writes .json and .md
    python scripts/gpu_check.py --jpeg --out gpu_check     # the same steps decoding real JPEGs, + a probe epoch
    python scripts/gpu_check.py --device cpu --arch vit_tiny_patch16_224 --size 32 --cases 10x2 --steps 1

Random-init weights: it measures cost, not accuracy. Without ``--jpeg`` the real images are small random
pictures resized like any training image and decoded once (held in memory): the step without decoding.

``--jpeg`` writes a JPEG world per case (``classes`` x K photos of about 500x375 px cut from foolbox's
ImageNet samples, Hub-layout parquet: ``benchmarks/scale_world.py``; needs the ``test`` extra) and reads
it through the project's dataset path. Each case runs twice through ``method.distill.Distiller``: with
the split preloaded (decoded once: the step's compute) and with every step decoding its real batch from
JPEG as a run on ImageNet-size data does (preload budget 0, ``--workers`` decode workers, the rows of
step t+1 decoded while step t computes, as ``Distiller.run`` plans them). The GPU-idle share is
1 - preloaded / decoding step time; the data wait is the time the steps waited for real images
(``RealImages.wait_seconds``). One paper-probe epoch (full data, ``benchmark.probe.paper.PaperProbe``)
over the ``--probe-world`` world is timed the same two ways, with its data wait.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import torch

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
if str(BENCHMARKS) not in sys.path:
    sys.path.insert(0, str(BENCHMARKS))  # scale_world (the JPEG worlds) lives beside the benchmarks
PRELOAD_ENV = "LGM_BENCH_PRELOAD_GB"  # benchmark.budgets
EVERYTHING = 1 << 40  # a preload budget every world fits


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


def jpeg_world(root: Path, classes: int, per_class: int):
    """(train, test) of a world of ``classes`` x ``per_class`` JPEGs (and one test JPEG per class)."""
    from scale_world import build_world, world_dataset

    world = build_world(root, classes, train_per_class=per_class, test_per_class=1)
    return world_dataset(world, "train"), world_dataset(world, "test")


@contextlib.contextmanager
def preload_budget(nbytes: int) -> Iterator[None]:
    """Every preload decision made inside sees ``nbytes`` (``LGM_BENCH_PRELOAD_GB``, benchmark.budgets)."""
    env = os.environ.get(PRELOAD_ENV)
    os.environ[PRELOAD_ENV] = repr(nbytes / 2**30)
    try:
        yield
    finally:
        if env is None:
            os.environ.pop(PRELOAD_ENV, None)
        else:
            os.environ[PRELOAD_ENV] = env


def build_backbone(arch: str, size: int, device: torch.device):
    from benchmark.backbones.timm_adapter import TimmSpec

    spec = TimmSpec(name=arch, description="random init", architecture=arch, pretrained=False, input_size=size)
    return spec.build(input_size=size, device=device)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        sync(device)
        torch.cuda.reset_peak_memory_stats(device)


def peak_gib(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None


def median(values: list[float]) -> float | None:
    return sorted(values)[len(values) // 2] if values else None


def timed_steps(step: Callable[[], object], steps: int, device: torch.device) -> tuple[list[float], list[float]]:
    """Wall and CUDA-event seconds of ``steps`` calls of ``step``."""
    walls, events = [], []
    for _ in range(steps):
        start_event = end_event = None
        if device.type == "cuda":
            start_event, end_event = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start_event.record()
        t0 = time.perf_counter()
        step()
        if device.type == "cuda":
            end_event.record()
            sync(device)
            events.append(start_event.elapsed_time(end_event) / 1000)
        walls.append(time.perf_counter() - t0)
    return walls, events


def lgm_case(backbone, train, classes: int, k: int, precision: str, micro_batch, size: int, steps: int,
             device: torch.device, workers: int = 0, preload: bool = True) -> dict:
    from method.config import build_config
    from method.distill import Distiller

    syn = round(size * 256 / 224)
    cfg = build_config("paper", {"steps": steps + 1, "augs_per_batch": k, "precision": precision,
                                 "micro_batch": micro_batch, "crop_res": size, "syn_res": syn,
                                 "grow_every": 1, "schedule": "exact", "checkpoint_every": 0}).resolve(size)
    with preload_budget(EVERYTHING if preload else 0):
        d = Distiller(cfg, train, backbone, ipc=1, seed=0, device=device, workers=workers)
    if d.real.preloaded != preload:
        raise SystemExit(f"gpu_check: asked for {'preloaded' if preload else 'decoded per step'} real images, but "
                         f"RealImages.preloaded is {d.real.preloaded}: the preload budget ({PRELOAD_ENV}) did not take")
    if d.epoch_batches is not None:  # as Distiller.run does: the official loader's rows decoded a step ahead
        d.real.plan(d.epoch_batches, d.step_done, d.step_done + steps + 1)
    d.step()  # warm-up (and the pyramid's first growth)
    reset_peak(device)
    waited = d.real.wait_seconds
    walls, events = timed_steps(d.step, steps, device)
    waited = d.real.wait_seconds - waited
    d.real.close()
    return {"classes": classes, "K": k, "precision": precision, "micro_batch": d.micro_batch,
            "synthetic_images": classes * k, "real_images": classes * k, "workers": workers,
            "real_preloaded": d.real.preloaded, "s_per_step": median(walls),
            "cuda_event_s_per_step": median(events), "data_wait_s_per_step": waited / steps,
            "peak_mem_gib": peak_gib(device), "skipped_steps": d.skipped_steps, "loss": d.loss_curve[-1]}


def idle_share(preloaded_s: float | None, decoding_s: float | None) -> float | None:
    """The share of a decoding step the device waits: 1 - preloaded / decoding time (0 when faster)."""
    if not preloaded_s or not decoding_s:
        return None
    return max(0.0, 1.0 - preloaded_s / decoding_s)


def jpeg_lgm_case(backbone, root: Path, classes: int, k: int, precision: str, micro_batch, size: int, steps: int,
                  device: torch.device, workers: int) -> dict:
    """The case preloaded and decoding its JPEGs every step, and the GPU-idle share between them."""
    train, _ = jpeg_world(root, classes, k)
    runs = {}
    for name, preload in (("preloaded", True), ("decoding", False)):
        runs[name] = lgm_case(backbone, train, classes, k, precision, micro_batch, size, steps, device,
                              workers=workers, preload=preload)
        empty_cache(device)
    pre, dec = runs["preloaded"], runs["decoding"]
    return {"classes": classes, "K": k, "precision": precision, "micro_batch": dec["micro_batch"],
            "workers": workers, "real_images_per_step": classes * k, "image_size": world_image_size(),
            "s_per_step_preloaded": pre["s_per_step"], "s_per_step_decoding": dec["s_per_step"],
            "cuda_event_s_per_step_preloaded": pre["cuda_event_s_per_step"],
            "cuda_event_s_per_step_decoding": dec["cuda_event_s_per_step"],
            "gpu_idle_share": idle_share(pre["s_per_step"], dec["s_per_step"]),
            "data_wait_s_per_step": dec["data_wait_s_per_step"],
            "peak_mem_gib_preloaded": pre["peak_mem_gib"], "peak_mem_gib_decoding": dec["peak_mem_gib"],
            "runs": runs}


def world_image_size() -> list[int]:
    """Width and height of a JPEG world's images."""
    from scale_world import IMAGE_SIZE

    return list(IMAGE_SIZE)


def probe_epoch(backbone, root: Path, classes: int, per_class: int, device: torch.device, workers: int,
                preload: bool) -> dict:
    """Seconds of one full-data paper-probe epoch (``PaperProbe.fit``, seed 0) over a JPEG world."""
    from benchmark.features import FeatureCache
    from benchmark.probe.paper import PaperProbe
    from benchmark.types import RunContext, SyntheticSet

    train, test = jpeg_world(root, classes, per_class)
    budget = EVERYTHING if preload else 0
    probe = PaperProbe(full_data=True, full_data_epochs=1, full_data_crop="random", preload_max_bytes=budget)
    synset = SyntheticSet(labels=train.labels, indices=torch.arange(len(train)), metadata={"full_data": True})
    scratch = root / "probe-cache"  # the test features' cache, beside the worlds
    ctx = RunContext(device=device, features=FeatureCache(root=scratch / "features", progress=False, workers=workers),
                     artifact_dir=scratch / "artifacts", progress=False, workers=workers)
    with preload_budget(budget):
        prepared = probe.prepare(synset, train, test, backbone, ctx)  # test features; a preloaded split decoded
        if preload:  # untimed warm-up, cheap without decoding: the first fit's one-time costs stay out
            probe.fit(prepared, 0)
        reset_peak(device)
        t0 = time.perf_counter()
        result = probe.fit(prepared, 0)
        sync(device)
        seconds = time.perf_counter() - t0
    return {"seconds": seconds, "data_wait_s": prepared.data_wait_seconds, "peak_mem_gib": peak_gib(device),
            "steps": result.extra["steps"],
            "batch_size": result.extra["batch_size"], "train_crop": result.extra["train_crop"]}


def jpeg_probe_case(backbone, root: Path, classes: int, per_class: int, device: torch.device, workers: int) -> dict:
    """One probe epoch preloaded (after a warm-up) and decoding its JPEGs, and the GPU-idle share."""
    runs = {name: probe_epoch(backbone, root, classes, per_class, device, workers, preload)
            for name, preload in (("preloaded", True), ("decoding", False))}
    pre, dec = runs["preloaded"], runs["decoding"]
    return {"classes": classes, "per_class": per_class, "images": classes * per_class, "workers": workers,
            "image_size": world_image_size(), "epoch_s_preloaded": pre["seconds"], "epoch_s_decoding": dec["seconds"],
            "gpu_idle_share": idle_share(pre["seconds"], dec["seconds"]),
            "peak_mem_gib_preloaded": pre["peak_mem_gib"], "peak_mem_gib_decoding": dec["peak_mem_gib"],
            "runs": runs}


def empty_cache(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()


def feature_throughput(backbone, size: int, device: torch.device, batch: int = 256, rounds: int = 10) -> dict:
    x = torch.rand(batch, 3, size, size, device=device)
    autocast = torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")
    with torch.no_grad(), autocast:
        backbone(x)
        sync(device)
        t0 = time.perf_counter()
        for _ in range(rounds):
            backbone(x)
        sync(device)
    return {"batch": batch, "images_per_s": batch * rounds / (time.perf_counter() - t0),
            "dtype": "bf16" if device.type == "cuda" else "fp32"}


def pair(text: str) -> tuple[int, int]:
    """"100x10" -> (100, 10)."""
    try:
        a, b = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected CLASSESxN, e.g. 100x10, not {text!r}") from None
    if a < 2 or b < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: at least 2 classes and 1 image per class")
    return a, b


def fmt(value: float | None, spec: str = ".2f") -> str:
    return "" if value is None else f"{value:{spec}}"


def pct(share: float | None) -> str:
    return "" if share is None else f"{100 * share:.0f} %"


def markdown(report: dict) -> list[str]:
    lines = [f"device: {report['device']}, torch {report['torch']}, {report['arch']} at {report['size']} px",
             f"features (no grad, {report['features']['dtype']}): {report['features']['images_per_s']:.0f} images/s"]
    if report["lgm"]:
        lines += ["", "| classes x K | precision | micro_batch | s/step | CUDA-event s/step | peak GiB |",
                  "|---|---|---|---|---|---|"]
        lines += [f"| {r['classes']} x {r['K']} | {r['precision']} | {r['micro_batch']} | {r['s_per_step']:.2f} | "
                  f"{fmt(r['cuda_event_s_per_step'])} | {fmt(r['peak_mem_gib'], '.1f')} |" for r in report["lgm"]]
    jpeg = report.get("jpeg")
    if jpeg:
        w, h = jpeg["image_size"]
        lines += ["", f"Decoding real JPEGs (about {w}x{h} px), decode workers: {report['workers']}", "",
                  "| classes x K | precision | micro_batch | s/step preloaded | s/step decoding | GPU idle | "
                  "data wait s/step | peak GiB (decoding) |", "|---|---|---|---|---|---|---|---|"]
        lines += [f"| {r['classes']} x {r['K']} | {r['precision']} | {r['micro_batch']} | "
                  f"{r['s_per_step_preloaded']:.2f} | {r['s_per_step_decoding']:.2f} | "
                  f"{pct(r['gpu_idle_share'])} | "
                  f"{fmt(r['data_wait_s_per_step'])} | {fmt(r['peak_mem_gib_decoding'], '.1f')} |" for r in jpeg["lgm"]]
        p = jpeg.get("probe")
        if p:
            lines += ["", "| paper-probe epoch (full data) | images | s preloaded | s decoding | GPU idle | "
                      "peak GiB (decoding) |", "|---|---|---|---|---|---|",
                      f"| {p['classes']} x {p['per_class']} | {p['images']} | {p['epoch_s_preloaded']:.2f} | "
                      f"{p['epoch_s_decoding']:.2f} | {pct(p['gpu_idle_share'])} | "
                      f"{fmt(p['peak_mem_gib_decoding'], '.1f')} |"]
    lines.append(f"\npeak RSS of the process: {report['peak_rss_gib']:.1f} GiB")
    return lines


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--arch", default="vit_base_patch16_224")
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--cases", nargs="+", type=pair, default=[(100, 10), (1000, 3)], help="CLASSESxK")
    p.add_argument("--precisions", nargs="+", default=["fp16", "bf16"])
    p.add_argument("--micro-batch", default="auto", help='"auto", an int, or "none"')
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--jpeg", action="store_true", help="decode real JPEGs: each case preloaded and decoding every "
                   "step, and one paper-probe epoch over --probe-world")
    p.add_argument("--probe-world", type=pair, default=(100, 10), metavar="CLASSESxN",
                   help="--jpeg: the world of the probe epoch (default 100x10, the 100 x 10 case's world)")
    p.add_argument("--no-probe", action="store_true", help="--jpeg: skip the paper-probe epoch")
    p.add_argument("--workers", type=int, default=None, help="--jpeg: decode workers (default: "
                   "benchmark.embedding.default_workers())")
    p.add_argument("--worlds", type=Path, default=None, help="--jpeg: where the JPEG worlds are written and kept "
                   "(default: a temporary directory, removed at the end)")
    p.add_argument("--feature-batch", type=int, default=256, help="images per pass of the feature throughput "
                   "(default 256; 10 passes)")
    p.add_argument("--out", type=Path, default=Path("gpu_check"))
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    from benchmark.cost import device_name
    from benchmark.embedding import default_workers
    from benchmark.paths import atomic_write_bytes

    device = torch.device(args.device)
    micro = "off" if args.micro_batch == "none" else args.micro_batch if args.micro_batch == "auto" \
        else int(args.micro_batch)
    workers = default_workers() if args.workers is None else args.workers
    backbone = build_backbone(args.arch, args.size, device)
    report = {"device": device_name(device),
              "torch": torch.__version__, "arch": args.arch, "size": args.size, "workers": workers,
              "features": feature_throughput(backbone, args.size, device, args.feature_batch), "lgm": []}
    with contextlib.ExitStack() as stack:
        if args.jpeg:
            root = args.worlds or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="gpu-check-")))
            report["jpeg"] = {"image_size": world_image_size(), "lgm": []}
        for classes, k in args.cases:
            for precision in args.precisions:
                if args.jpeg:
                    row = jpeg_lgm_case(backbone, root, classes, k, precision, micro, args.size, args.steps, device,
                                        workers)
                    report["jpeg"]["lgm"].append(row)
                else:
                    row = lgm_case(backbone, toy_split(classes, k), classes, k, precision, micro, args.size,
                                   args.steps, device)
                    report["lgm"].append(row)
                print(json.dumps({key: v for key, v in row.items() if key != "runs"}), flush=True)
                empty_cache(device)
        if args.jpeg and not args.no_probe:
            report["jpeg"]["probe"] = jpeg_probe_case(backbone, root, *args.probe_world, device, workers)
            print(json.dumps({key: v for key, v in report["jpeg"]["probe"].items() if key != "runs"}), flush=True)
    report["peak_rss_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux
    lines = markdown(report)
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(args.out / "gpu_check.json", json.dumps(report, indent=1).encode())
    atomic_write_bytes(args.out / "gpu_check.md", ("\n".join(lines) + "\n").encode())
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
