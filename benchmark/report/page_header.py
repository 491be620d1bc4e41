"""What the page's header says about a results directory: per suite the cells current, stale, failed and
missing (the counts ``python -m benchmark status`` gives, :func:`benchmark.status.cell_counts`), and
where the rows were made (git commit, device, library versions) and when."""

from __future__ import annotations

import json
import platform
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

SHORT_SHA = 10


@dataclass
class SuiteCounts:
    """One suite's cells. ``defined``: a suite of that name is defined now (registered, or recorded from a
    file), so current, failed and missing are counted against its grid as ``status`` counts them;
    otherwise from the rows alone (``missing`` None)."""

    name: str
    current: int
    stale: int | None  # None: not judged (the rows were not split into current and stale)
    failed: int
    missing: int | None
    invalid: int = 0
    defined: bool = True


@dataclass
class Header:
    results: str
    suites: list[SuiteCounts]
    commits: list[str]  # "b070bfb39e (32 cells)"
    devices: list[str]
    versions: list[str]
    made: str  # when the rows were made: first and last finish
    written: str  # when the page was written
    host: str  # where the page was written (the rows record their device, not their machine)
    notes: list[str] = field(default_factory=list)


def _cells(frame: pd.DataFrame, suite: str) -> pd.DataFrame:
    return frame[frame["suite"] == suite] if len(frame) else frame


def suite_counts(results: Path, rows: pd.DataFrame, stale: pd.DataFrame | None) -> list[SuiteCounts]:
    """Every suite with rows (shown or stale), counted as ``status`` counts it where it is defined."""
    from ..stale import current_definitions  # torch: only when a page is made
    from ..status import cell_counts

    judged = stale is not None
    stale = stale if stale is not None else rows.iloc[0:0]
    defined = current_definitions(results)
    out = []
    for name in sorted(set(rows["suite"].dropna()) | set(stale["suite"].dropna())):
        n_stale = int(_cells(stale, name)["cell_id"].nunique()) if judged else None
        if name in defined:
            counts = cell_counts(defined[name], results)
            out.append(SuiteCounts(name, len(counts.done), n_stale, len(counts.failed), len(counts.missing),
                                   len(counts.invalid)))
            continue
        mine = _cells(rows, name)
        mine = mine[~mine["cell_id"].isin(set(_cells(stale, name)["cell_id"]))]  # --all: stale rows are shown too
        failed = set(mine.loc[mine["status"] != "ok", "cell_id"])
        current = set(mine["cell_id"]) - failed
        out.append(SuiteCounts(name, len(current), n_stale, len(failed), None, defined=False))
    return out


def _tally(values: pd.Series, unit: str = "cells") -> list[str]:
    counts = Counter(v for v in values if isinstance(v, str) and v)
    return [f"{v} ({n} {unit})" for v, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]


def short_sha(sha) -> str:
    """``b070bfb39e`` (``-dirty`` kept: the tree had uncommitted changes)."""
    sha = str(sha)
    return sha[:SHORT_SHA] + ("-dirty" if sha.endswith("-dirty") else "")


def _versions(texts: pd.Series) -> list[str]:
    seen = Counter()
    for text in texts.dropna().unique():
        try:
            found = json.loads(text)
        except ValueError:
            continue
        shown = ", ".join(f"{k} {found[k]}" for k in ("lgm-bench", "torch", "python") if found.get(k))
        if shown:
            seen[shown] += 1
    return sorted(seen)


def _when(stamps: pd.Series) -> str:
    stamps = pd.to_datetime(stamps.dropna(), utc=True)
    if stamps.empty:
        return "not recorded"
    lo, hi = (s.strftime("%Y-%m-%d %H:%M UTC") for s in (stamps.min(), stamps.max()))
    return lo if lo == hi else f"{lo} to {hi}"


def page_header(results: Path, rows: pd.DataFrame, stale: pd.DataFrame | None = None,
                notes: list[str] | None = None) -> Header:
    """The header of the page for ``rows`` (what the report shows) and ``stale`` (the rows left out as
    stale, or included and labelled with ``--all``; None: not judged)."""
    per_cell = rows.drop_duplicates("cell_id")
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return Header(
        results=str(Path(results).resolve()),
        suites=suite_counts(results, rows, stale),
        commits=_tally(per_cell["git_sha"].dropna().map(short_sha)),
        devices=_tally(per_cell["device"]),
        versions=_versions(per_cell["versions"]),
        made=_when(rows["finished_at"]),
        written=now,
        host=platform.node() or "an unnamed host",
        notes=list(notes or []),
    )
