"""Which code and which libraries produced a row; and how long and how much memory a step took."""

from __future__ import annotations

import json
import platform
import resource
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from importlib import metadata
from pathlib import Path

import torch

PACKAGES = ("lgm-bench", "torch", "torchvision", "timm", "open_clip_torch", "datasets", "numpy")


@cache
def git_sha() -> str:
    """The commit of the code that ran, with ``-dirty`` when the tree had uncommitted changes."""
    here = Path(__file__).resolve().parent.parent
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True,
                             check=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{sha}-dirty" if dirty else sha


@cache
def versions() -> str:
    found = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return json.dumps(found, sort_keys=True)


@cache
def device_info(device_type: str, index: int | None = None) -> dict[str, str]:
    """The accelerator a row ran on: GPU name, the CUDA version torch was built with, the driver
    version (from ``nvidia-smi``, "" where it cannot be asked); empty strings on a CPU."""
    if device_type != "cuda" or not torch.cuda.is_available():
        return {"gpu_name": "", "cuda_version": "", "driver_version": ""}
    index = torch.cuda.current_device() if index is None else index
    driver = ""
    try:
        found = subprocess.run(["nvidia-smi", f"--id={index}", "--query-gpu=driver_version",
                                "--format=csv,noheader"], capture_output=True, text=True, timeout=10)
        driver = found.stdout.strip().splitlines()[0] if found.returncode == 0 and found.stdout.strip() else ""
    except (OSError, subprocess.SubprocessError):
        pass
    return {"gpu_name": torch.cuda.get_device_name(index), "cuda_version": torch.version.cuda or "",
            "driver_version": driver}


@dataclass
class Cost:
    seconds: float = 0.0
    gpu_seconds: float = float("nan")
    peak_mem_bytes: int = 0


def _peak_rss_bytes() -> int:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss if sys.platform == "darwin" else rss * 1024


@contextmanager
def measure(device: torch.device) -> Iterator[Cost]:
    """Wall time; on CUDA also synchronised event time and the allocator's peak; on CPU the process's
    peak resident memory so far (a process-wide high-water mark, not per step)."""
    cost = Cost()
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
    t0 = time.perf_counter()
    try:
        yield cost
    finally:
        if cuda:
            end.record()
            torch.cuda.synchronize(device)
            cost.gpu_seconds = start.elapsed_time(end) / 1000
            cost.peak_mem_bytes = int(torch.cuda.max_memory_allocated(device))
        else:
            cost.peak_mem_bytes = _peak_rss_bytes()
        cost.seconds = time.perf_counter() - t0
