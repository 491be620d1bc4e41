"""Current and stale result rows.

A row is current when a suite of that name is defined now and gives the row's coordinates (dataset,
method, backbones, protocol) the settings the row was made with: its ``config_hash`` is the one
:meth:`benchmark.suites.CellSettings.hash` computes today. The coordinates themselves may lie outside
the suite's grid (``run --methods``/``--seeds``/``--protocol`` narrow or change them, not the settings).
Anything else is stale: made before a setting changed, by a suite no longer defined, or by older code.
Stale rows share coordinates with current ones, so whatever pools rows by coordinates (the report's
tables, the parity table) must leave them out or label them (:mod:`benchmark.report.stale`).

Two kinds of rows are judged otherwise. Rows of a suite read from a TOML file are judged against the
definition ``run`` recorded under ``<results>/suites/`` (:mod:`benchmark.suite_files`). Rows of sets
scored with ``eval`` (method ``external:<NAME>``) are self-describing: their config holds the scored
file's sha256; the latest file scored under a name (by ``finished_at``) is current, earlier ones under
the same name and coordinates are stale (docs/references.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .registry import SUITES
from .suites import CellSettings, Suite

COORDINATES = ["suite", "dataset", "method", "distill_backbone", "eval_backbone", "protocol"]
REHEARSAL_COLUMNS = ["limit", "overrides"]  # what a rehearsal's rows record (benchmark.rehearsal)
EXTERNAL_PREFIX = "external:"  # method of the rows ``eval`` writes (benchmark.external)


@dataclass
class StaleSplit:
    """The rows of the current suite definitions, and the stale rest."""

    current: pd.DataFrame
    stale: pd.DataFrame

    @property
    def stale_cells(self) -> int:
        return int(self.stale["cell_id"].nunique())


def _expected_hash(settings: dict[tuple, CellSettings | None], suites: Mapping[str, Suite], key: tuple) -> str | None:
    name, dataset, method, distill, evaluate, protocol, limit, overrides = key
    suite = suites.get(name)
    if suite is None:
        return None
    variant = (name, protocol, limit, overrides) if limit or overrides else (name,)
    if variant not in settings:
        settings[variant] = CellSettings(suite) if len(variant) == 1 else _rehearsal(suite, protocol, limit, overrides)
    found = settings[variant]
    return None if found is None else found.hash(dataset, method, distill, evaluate, protocol)


def _rehearsal(suite: Suite, protocol: str, limit: str, overrides: str) -> CellSettings | None:
    """The settings of a rehearsal's rows: the suite now, with the limit and the overrides they record
    (None when those no longer apply: the rows are stale)."""
    from .overrides import rehearsal_suite
    from .rehearsal import overrides_from_text, parse_limit

    try:
        return CellSettings(rehearsal_suite(suite.replace(protocol=protocol), parse_limit(limit) if limit else None,
                                            overrides_from_text(overrides), check=False))
    except ValueError:  # OverrideError, a limit or JSON that does not read
        return None


def split_stale(frame: pd.DataFrame, suites: Mapping[str, Suite]) -> StaleSplit:
    """Rows made with the settings ``suites`` (name -> definition) give them now, and the rest. Rows of a
    rehearsal (``limit``/``overrides``) are judged against the suite with what they record applied."""
    coords = frame.reindex(columns=[*COORDINATES, *REHEARSAL_COLUMNS]).fillna("").astype(str)
    settings: dict[tuple, CellSettings | None] = {}
    expected = {key: _expected_hash(settings, suites, key)
                for key in coords.drop_duplicates().itertuples(index=False, name=None)}
    wanted = [expected[key] for key in coords.itertuples(index=False, name=None)]
    current = pd.Series(wanted, index=frame.index).eq(frame["config_hash"]) & frame["config_hash"].notna()
    external = coords["method"].str.startswith(EXTERNAL_PREFIX)
    if external.any():
        current = current.where(~external, latest_external(frame[external]).reindex(frame.index, fill_value=False))
    return StaleSplit(frame[current].reset_index(drop=True), frame[~current].reset_index(drop=True))


def latest_external(rows: pd.DataFrame) -> pd.Series:
    """For ``eval`` rows: True where the row's config is the latest scored at its coordinates."""
    keys = rows[COORDINATES].fillna("").astype(str).agg("\x1f".join, axis=1)
    order = rows.assign(_key=keys).sort_values("finished_at", kind="stable")
    last = order.dropna(subset=["config_hash"]).groupby("_key")["config_hash"].last()
    return keys.map(last).eq(rows["config_hash"]) & rows["config_hash"].notna()


def current_definitions(results: Path | None = None) -> dict[str, Suite]:
    """Every registered suite by name, and with ``results`` the suite files recorded there by ``run``:
    the definitions rows are judged against (a registered name wins)."""
    from .suite_files import recorded_definitions

    recorded = recorded_definitions(results) if results is not None else {}
    return {**recorded, **{name: SUITES.get(name) for name in SUITES.names()}}
