"""The parity table: the ``parity`` suite's LGM sets beside the official code's numbers.

For each distillation seed: fast-probe top-1 (mean ± sample std over the probe seeds) and the mean
matching loss over each window of 100 updates (updates 1-100, 101-200, ...; the official loop's extra
last update stands in the final window alone). The random-real row gives the reference. Anyone with the
official code can run it at the same setting and put its numbers beside these.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pandas as pd

from .artifacts import META, locate
from .results import read_results
from .stale import current_definitions, split_stale

log = logging.getLogger(__name__)

WINDOW = 100


def loss_windows(curve: list[float], window: int = WINDOW) -> list[tuple[str, float]]:
    """``("1-100", mean), ("101-200", mean), ...``; a last partial window is labelled by its range."""
    out = []
    for start in range(0, len(curve), window):
        chunk = curve[start:start + window]
        out.append((f"{start + 1}-{start + len(chunk)}", sum(chunk) / len(chunk)))
    return out


def _artifact_meta(path: str, results: Path) -> dict:
    found = locate(path, results)
    if found is None:
        raise FileNotFoundError(f"the artifact {path} named by the results is missing; run the suite again")
    return json.loads((found / META).read_text())


def parity_frame(results: Path, suite: str = "parity") -> pd.DataFrame:
    """One row per LGM seed (top-1 and loss windows) and one for random real images, from the cells
    made with the suite's current settings (stale cells of earlier settings would pool with them)."""
    rows = read_results(results)
    rows = rows[rows["suite"] == suite]
    split = split_stale(rows, current_definitions())
    if split.stale_cells:
        log.warning("left out %d stale cells of suite %r (made with other settings than its current "
                    "definition); `python -m benchmark report --all` shows them", split.stale_cells, suite)
    rows = split.current[split.current["status"] == "ok"]
    if rows.empty:
        raise ValueError(f"no finished rows of suite {suite!r} under {results}; run "
                         f"`python -m benchmark run --suite {suite} --results {results}` first")
    table = []
    for seed, group in rows[rows["method"] == "lgm"].groupby("method_seed"):
        meta = _artifact_meta(str(group["artifact"].iloc[0]), results)
        curve = meta["metadata"]["loss_curve"]
        entry = {"set": f"lgm seed {seed}", "top1": group["top1"].mean(), "std": group["top1"].std(ddof=1),
                 "probe_seeds": len(group), "updates": len(curve)}
        entry.update({f"loss {span}": value for span, value in loss_windows(curve)})
        table.append(entry)
    real = rows[rows["method"] == "random_real"]
    if not real.empty:
        table.append({"set": f"random real ({len(real)} sets)", "top1": real["top1"].mean(),
                      "std": real["top1"].std(ddof=1), "probe_seeds": len(real)})
    return pd.DataFrame(table)


def parity_markdown(frame: pd.DataFrame) -> str:
    """Top-1 as ``mean ± std`` (sample std) and the loss windows to 3 decimals."""
    shown = frame.copy()
    shown["top1 (fast probe)"] = [f"{m:.2f}" if pd.isna(s) else f"{m:.2f} ± {s:.2f}"
                                  for m, s in zip(shown["top1"], shown["std"], strict=True)]
    loss_cols = [c for c in shown.columns if c.startswith("loss ")]
    for col in loss_cols:
        shown[col] = [("" if pd.isna(v) else f"{v:.3f}") for v in shown[col]]
    columns = ["set", "top1 (fast probe)", *loss_cols]
    return shown[columns].to_markdown(index=False, disable_numparse=True)
