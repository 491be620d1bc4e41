"""Current and stale result rows.

A row is current when a suite of that name is defined now and gives the row's coordinates (dataset,
method, backbones, protocol) the settings the row was made with: its ``config_hash`` is the one
:meth:`benchmark.suites.CellSettings.hash` computes today. The coordinates themselves may lie outside
the suite's grid (``run --methods``/``--seeds``/``--protocol`` narrow or change them, not the settings).
Anything else is stale: made before a setting changed, by a suite no longer defined, or by older code.
Stale rows share coordinates with current ones, so whatever pools rows by coordinates (the report's
tables, the parity table) must leave them out or label them (:mod:`benchmark.report.stale`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pandas as pd

from .registries import SUITES
from .suites import CellSettings, Suite

COORDINATES = ["suite", "dataset", "method", "distill_backbone", "eval_backbone", "protocol"]


@dataclass
class StaleSplit:
    """The rows of the current suite definitions, and the stale rest."""

    current: pd.DataFrame
    stale: pd.DataFrame

    @property
    def stale_cells(self) -> int:
        return int(self.stale["cell_id"].nunique())


def _expected_hash(settings: dict[str, CellSettings], suites: Mapping[str, Suite], key: tuple) -> str | None:
    suite = suites.get(key[0])
    if suite is None:
        return None
    if key[0] not in settings:
        settings[key[0]] = CellSettings(suite)
    _, dataset, method, distill, evaluate, protocol = key
    return settings[key[0]].hash(dataset, method, distill, evaluate, protocol)


def split_stale(frame: pd.DataFrame, suites: Mapping[str, Suite]) -> StaleSplit:
    """Rows made with the settings ``suites`` (name -> definition) give them now, and the rest."""
    coords = frame[COORDINATES].fillna("").astype(str)
    settings: dict[str, CellSettings] = {}
    expected = {key: _expected_hash(settings, suites, key)
                for key in coords.drop_duplicates().itertuples(index=False, name=None)}
    wanted = [expected[key] for key in coords.itertuples(index=False, name=None)]
    current = pd.Series(wanted, index=frame.index).eq(frame["config_hash"]) & frame["config_hash"].notna()
    return StaleSplit(frame[current].reset_index(drop=True), frame[~current].reset_index(drop=True))


def current_definitions() -> dict[str, Suite]:
    """Every registered suite by name: the definitions rows are judged against."""
    return {name: SUITES.get(name) for name in SUITES.names()}
