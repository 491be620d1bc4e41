"""Running scale-simulation configurations in fresh processes, and the Markdown table of their results.

Shared by ``benchmarks/test_bench_scale.py`` (pytest-benchmark) and ``scripts/scale_sim.py`` (the table
in the README). Each configuration runs ``benchmarks/scale_probe.py`` in its own process, so its peak
RSS is its own.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

PROBE = Path(__file__).resolve().parent / "scale_probe.py"
REPO = PROBE.parent.parent


@dataclass(frozen=True)
class ScaleSettings:
    """The knobs every configuration shares."""

    input_size: int = 16  # ViT-B/16 at 16 px: one patch + CLS, so 1000 classes fit a CPU step
    K: int = 1
    micro_batch: int = 64
    rounds: int = 1
    warmup: int = 1
    threads: int | None = None
    device: str = "cpu"


def run_probe(kind: str, world: Path, args: Sequence[str], settings: ScaleSettings, timeout: float = 3600) -> dict:
    """One configuration in a fresh process; its JSON result (a RuntimeError with its stderr on failure)."""
    command = [sys.executable, str(PROBE), kind, "--world", str(world), "--input-size", str(settings.input_size),
               "--device", settings.device, *args]
    if settings.threads:
        command += ["--threads", str(settings.threads)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=REPO, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def lgm_args(classes: int, settings: ScaleSettings, micro_batch: int | None) -> list[str]:
    args = ["--classes", str(classes), "--K", str(settings.K), "--rounds", str(settings.rounds),
            "--warmup", str(settings.warmup)]
    return args + (["--micro-batch", str(micro_batch)] if micro_batch else [])


def lgm_table(results: Sequence[dict]) -> str:
    """Markdown: one row per (classes, micro_batch), time and memory relative to the smallest run."""
    rows = sorted((r for r in results if r.get("kind") == "lgm"), key=lambda r: (r["micro_batch"] or 0, r["images"]))
    lines = ["| classes x K | images | micro_batch | s/step | s per 1000 images | peak RSS (MiB) | "
             "RSS above start (MiB) | threads | load avg (1 min) |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['classes']} x {r['K']} | {r['images']} | {r['micro_batch'] or 'none (one pass)'} | "
                     f"{r['step_s']:.2f} | {1000 * r['step_s'] / r['images']:.2f} | {r['peak_rss_mib']:.0f} | "
                     f"{r['peak_rss_mib'] - r['base_rss_mib']:.0f} | {r.get('threads', '?')} | "
                     f"{r.get('load_average', [float('nan')])[0]:.1f} |")
    return "\n".join(lines)


def embed_table(results: Sequence[dict]) -> str:
    rows = sorted((r for r in results if r.get("kind") == "embed" and "skipped" not in r), key=lambda r: r["workers"])
    if not rows:
        return ""
    lines = ["| workers | images | decode + embed img/s | peak RSS, main process (MiB) | largest child process (MiB) | "
             "threads | load avg (1 min) |", "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['workers']} | {r['images']} | {r['images_per_s']:.1f} | {r['peak_rss_mib']:.0f} | "
              f"{r.get('workers_peak_rss_mib', float('nan')):.0f} | {r.get('threads', '?')} | "
              f"{r.get('load_average', [float('nan')])[0]:.1f} |" for r in rows]
    return "\n".join(lines)


def expectations(results: Sequence[dict]) -> list[str]:
    """The two expectations, as measured. Linear: with three runs or more, a line t = fixed + per-image x
    images (least squares on relative error) fits every run within 25% (the fixed part is what a step
    costs besides the backbone passes); with two, the per-image time stays within a factor 1.5. Flat: with
    ``micro_batch``, the peak RSS of the largest run is within 1.5x of the smallest's."""
    lines = []
    for micro in sorted({r["micro_batch"] or 0 for r in results if r.get("kind") == "lgm"}):
        rows = sorted((r for r in results if r.get("kind") == "lgm" and (r["micro_batch"] or 0) == micro),
                      key=lambda r: r["images"])
        if len(rows) < 2:
            continue
        small, large = rows[0], rows[-1]
        label = f"micro_batch {micro}" if micro else "one pass"
        growth = large["images"] / small["images"]
        time_ratio = large["step_s"] / small["step_s"]
        rss_ratio = large["peak_rss_mib"] / small["peak_rss_mib"]
        line = f"{label}: {growth:.0f}x the images -> {time_ratio:.1f}x the step time"
        if len(rows) >= 3:
            n = np.array([r["images"] for r in rows], dtype=float)
            t = np.array([r["step_s"] for r in rows])
            slope, fixed = np.polyfit(n, t, 1, w=1 / t)
            worst = float(np.max(np.abs(fixed + slope * n - t) / t))
            verdict = "about linear" if worst <= 0.25 else "NOT linear"
            line += (f", {verdict}: t = {fixed:.2f} s + {1000 * slope:.1f} ms x images fits every run within "
                     f"{100 * worst:.0f}%")
        else:
            verdict = "about linear" if 1 / 1.5 <= time_ratio / growth <= 1.5 else "NOT linear"
            line += f" ({verdict})"
        line += f"; {rss_ratio:.2f}x the peak RSS"
        if micro:
            line += " (flat: within 1.5x)" if rss_ratio <= 1.5 else " (NOT flat: over 1.5x)"
        lines.append(line)
    return lines
