"""From result rows to one aggregated row per (suite, dataset, ipc, protocol, method, backbones).

Only rows with ``status == "ok"`` enter the statistics; failed rows are reported separately
(:func:`failed_cells`). Seeds (method seed x probe seed) are pooled: the statistics are over every
ok row of a cell group.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from .naming import split_label

#: The columns one aggregated row is keyed by, in sort order.
GROUP_KEYS = ["suite", "dataset", "ipc", "protocol", "method", "distill_backbone", "eval_backbone"]
#: The columns one table is keyed by.
TABLE_KEYS = ["suite", "dataset", "ipc", "protocol"]
#: Columns that identify a cell (one set of probe seeds) in the results.
CELL_KEYS = [
    "suite", "dataset", "method", "distill_backbone", "eval_backbone", "ipc", "method_seed", "protocol",
]

#: Method order of every table: the method, its ablations, then the real-image baselines.
CANONICAL_METHODS = (
    "lgm",
    "lgm_no_decorrelate",
    "lgm_no_pyramid",
    "lgm_no_augment",
    "neighbors",
    "centroids",
    "kmeans",
    "herding",
    "random_real",
)
#: The reference method: always the last row, never bolded.
REFERENCE_METHOD = "full_data"
#: Methods that use no distilling backbone carry ``distill_backbone == ""``.
NO_BACKBONE = ""


#: How ``report --all`` names a method of a stale config: ``lgm [cfg 1a2b3c]``.
STALE_MARK = " [cfg "


def base_method(name: str) -> str:
    """The method a method key names: ``lgm`` for ``lgm``, ``lgm [embedded]`` and a stale
    ``lgm [cfg 1a2b3c]`` (see :mod:`.labels`)."""
    return split_label(name)[0]


def is_reference(name: str) -> bool:
    return base_method(name) == REFERENCE_METHOD


def method_sort_key(name: str) -> tuple[int, str, str]:
    """Canonical order: lgm, its ablations (known ones first, then other ``lgm_*``), neighbors,
    centroids, kmeans, herding, random_real, other methods alphabetically, full_data last; a stale
    config's label right after its method."""
    base = base_method(name)
    stale = name[len(base):]
    if base == REFERENCE_METHOD:
        return (99, base, stale)
    if base in CANONICAL_METHODS:
        idx = CANONICAL_METHODS.index(base)
        return (idx if idx < 4 else idx + 1, "", stale)
    if base.startswith("lgm_"):
        return (4, base, stale)
    return (len(CANONICAL_METHODS) + 1, base, stale)


def order_methods(names) -> list[str]:
    return sorted(set(names), key=method_sort_key)


def _t_two_sided_mass(t: float, dof: int) -> float:
    """P(|T| < t) for Student's t with integer ``dof`` (closed form in theta = atan(t / sqrt(dof)))."""
    theta = math.atan(t / math.sqrt(dof))
    c2 = math.cos(theta) ** 2
    if dof % 2:  # odd: (2/pi) (theta + sin cos (1 + 2/3 c^2 + 2*4/(3*5) c^4 + ...)), dof - 3 powers
        term, total = 1.0, 1.0 if dof > 1 else 0.0
        for k in range(1, (dof - 1) // 2):
            term *= c2 * (2 * k) / (2 * k + 1)
            total += term
        return 2 / math.pi * (theta + math.sin(theta) * math.cos(theta) * total)
    term, total = 1.0, 1.0  # even: sin (1 + 1/2 c^2 + 1*3/(2*4) c^4 + ...), up to c^(dof - 2)
    for k in range(1, dof // 2):
        term *= c2 * (2 * k - 1) / (2 * k)
        total += term
    return math.sin(theta) * total


def t_quantile_975(dof: int) -> float:
    """Two-sided 95% Student-t critical value for ``dof`` degrees of freedom (bisection on the exact
    CDF; the normal value beyond 10,000). Pure Python: importing scipy.stats costs seconds."""
    if dof < 1:
        raise ValueError("dof must be >= 1")
    if dof > 10_000:
        return 1.959964
    lo, hi = 1.9, 13.0
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if _t_two_sided_mass(mid, dof) < 0.95 else (lo, mid)
    return (lo + hi) / 2


def _clean(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.copy()
    for col in ("suite", "dataset", "protocol", "method", "distill_backbone", "eval_backbone", "status",
                "error", "artifact", "cell_id"):
        if col in frame:
            frame[col] = frame[col].fillna("").astype(str)
    return frame


def ok_rows(results: pd.DataFrame) -> pd.DataFrame:
    frame = _clean(results)
    return frame[frame["status"] == "ok"].reset_index(drop=True)


def aggregate(results: pd.DataFrame, metric: str = "top1") -> pd.DataFrame:
    """One row per :data:`GROUP_KEYS` group of ok rows: ``mean``, ``std`` (sample std, ddof=1; NaN for
    a single seed), ``std_pop`` (population std, ddof=0, what the official code prints: ``np.std``),
    ``n`` (rows, i.e. seeds), ``ci95`` (half-width of the 95% t-interval; NaN for n < 2). Sorted by the
    keys (methods in canonical order)."""
    frame = ok_rows(results)
    frame = frame[frame[metric].notna()]
    columns = [*GROUP_KEYS, "mean", "std", "std_pop", "n", "ci95"]
    if frame.empty:
        return pd.DataFrame(columns=columns)
    grouped = frame.groupby(GROUP_KEYS, sort=False)[metric]
    agg = grouped.agg(mean="mean", std=lambda s: s.std(ddof=1), std_pop=lambda s: s.std(ddof=0),
                      n="count").reset_index()
    agg["n"] = agg["n"].astype(int)
    agg["ci95"] = [
        t_quantile_975(n - 1) * s / math.sqrt(n) if n >= 2 and not np.isnan(s) else float("nan")
        for n, s in zip(agg["n"], agg["std"], strict=True)
    ]
    return sort_frame(agg)[columns]


def sort_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Sort by whichever of :data:`GROUP_KEYS` are present, methods in canonical order."""
    keys = [k for k in GROUP_KEYS if k in frame]
    return frame.sort_values(
        keys, key=lambda col: col.map(method_sort_key) if col.name == "method" else col, kind="stable"
    ).reset_index(drop=True)


def is_same_model(agg: pd.DataFrame) -> pd.Series:
    """Rows whose set was distilled with the evaluating backbone, or with no backbone at all."""
    return (agg["distill_backbone"] == agg["eval_backbone"]) | (agg["distill_backbone"] == NO_BACKBONE)


def is_cross_model(agg: pd.DataFrame) -> pd.Series:
    return ~is_same_model(agg)


def table_keys(agg: pd.DataFrame) -> list[tuple]:
    """Every (suite, dataset, ipc, protocol) that gets a table. Full-data rows (ipc 0) belong to every
    ipc of their (suite, dataset, protocol); they get a table of their own only when nothing else does."""
    keys = set(map(tuple, agg[TABLE_KEYS].drop_duplicates().itertuples(index=False)))
    with_ipc = {(s, d, p) for s, d, i, p in keys if i != 0}
    out = {k for k in keys if k[2] != 0 or (k[0], k[1], k[3]) not in with_ipc}
    return sorted(out)


def table_rows(agg: pd.DataFrame, key: tuple) -> pd.DataFrame:
    """The aggregated rows of one table: its own ipc plus the ipc-0 (full-data) rows."""
    suite, dataset, ipc, protocol = key
    sel = (agg["suite"] == suite) & (agg["dataset"] == dataset) & (agg["protocol"] == protocol)
    sel &= (agg["ipc"] == ipc) | (agg["ipc"] == 0)
    return agg[sel].reset_index(drop=True)


def failed_cells(results: pd.DataFrame) -> pd.DataFrame:
    """One row per cell that has a non-ok row, with its first error, sorted."""
    frame = _clean(results)
    bad = frame[frame["status"] != "ok"]
    columns = [*CELL_KEYS, "status", "error"]
    if bad.empty:
        return pd.DataFrame(columns=columns)
    out = bad.groupby(CELL_KEYS, sort=True)[["status", "error"]].first().reset_index()
    return out[columns]


def totals(results: pd.DataFrame) -> dict:
    """Row, cell and wall-time totals over every row (ok or not).

    Wall time = distill_seconds counted once per artifact (a cell without an artifact counts once per
    cell) + eval_seconds of every row."""
    frame = _clean(results)
    cells = frame[CELL_KEYS].drop_duplicates()
    cell_ident = frame[CELL_KEYS].astype(str).agg("/".join, axis=1)
    ident = frame["artifact"].where(frame["artifact"] != "", "cell:" + cell_ident)
    distill = frame.assign(_ident=ident).groupby("_ident")["distill_seconds"].max().fillna(0.0).sum()
    evaluate = frame["eval_seconds"].fillna(0.0).sum()
    return {
        "rows": int(len(frame)),
        "ok_rows": int((frame["status"] == "ok").sum()),
        "failed_rows": int((frame["status"] != "ok").sum()),
        "cells": int(len(cells)),
        "distill_seconds": float(distill),
        "eval_seconds": float(evaluate),
        "wall_seconds": float(distill + evaluate),
    }
