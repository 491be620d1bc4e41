"""A rehearsal's marks: ``run --limit`` (images per class, or a fraction of each class) and ``run --set``
(option overrides) as cells, rows and report labels hold them.

A limit is an integer >= 1 (that many images of every class, fewer where a class has fewer) or a float
in (0, 1) (that fraction of every class, rounded, at least one image), of the train and the test split
alike; :mod:`benchmark.data.limit` picks the rows. It is part of a cell's settings (so a rehearsal's
cells have other ids than the full run's) and every row records it as text in the ``limit`` column
(``""``: the whole splits), with the overrides in ``overrides`` (canonical JSON, ``""``: none). No torch
here: the report labels rows with :func:`run_label` without importing it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from .hashing import canonical_json, stable_hash

LIMIT_SEED = 1  # the rows' hash order; part of the limit's identity, so another seed is another cell
LIMIT_VERSION = 1  # how rows are picked (benchmark.data.limit); bump when that changes
LABEL_DIGITS = 6
REHEARSAL_MARKS = (" [rehearsal: ", " [set ")  # how the report's labels of such rows begin

Limit = int | float


def check_limit(value: Any) -> Limit:
    """``value`` as a limit: an integer >= 1 or a float strictly between 0 and 1; ValueError otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"a limit is a number of images per class (an integer, e.g. 2) or a fraction of "
                         f"each class (a number between 0 and 1, e.g. 0.05), not {value!r}")
    if isinstance(value, int):
        if value < 1:
            raise ValueError(f"a limit of images per class must be at least 1, not {value}")
        return value
    if not 0.0 < value < 1.0 or math.isnan(value):
        raise ValueError(f"a fractional limit must lie strictly between 0 and 1, not {value!r} "
                         "(an integer gives images per class, e.g. 2)")
    return float(value)


def parse_limit(text: str) -> Limit:
    """``"2"`` -> 2 images per class, ``"0.05"`` -> 5 % of each class; ValueError for anything else."""
    text = str(text).strip()
    try:
        value: Any = int(text)
    except ValueError:
        try:
            value = float(text)
        except ValueError:
            raise ValueError(f"a limit is an integer (images per class, e.g. 2) or a fraction between 0 "
                             f"and 1 (e.g. 0.05), not {text!r}") from None
    return check_limit(value)


def limit_text(limit: Limit | None) -> str:
    """The ``limit`` column: ``""`` (none), ``"2"`` (per class) or ``"0.05"`` (fraction)."""
    return "" if limit is None else repr(check_limit(limit))


def limit_label(limit: Limit) -> str:
    """How people read a limit: ``2/class``, ``5%``."""
    limit = check_limit(limit)
    if isinstance(limit, int):
        return f"{limit}/class"
    return f"{limit * 100:.4g}%"


def limited_count(rows: int, classes: int, limit: Limit | None) -> int:
    """About how many of ``rows`` images in ``classes`` classes a limit keeps (for estimates; the rows
    themselves are picked per class by :mod:`benchmark.data.limit`)."""
    if limit is None:
        return rows
    if isinstance(check_limit(limit), int):
        return min(rows, int(limit) * classes)
    return min(rows, max(classes, round(rows * limit)))


def limit_identity(limit: Limit) -> dict[str, Any]:
    """What a limit adds to a cell's settings (:meth:`benchmark.suites.CellSettings.settings`)."""
    limit = check_limit(limit)
    kind = "per_class" if isinstance(limit, int) else "fraction"
    return {kind: limit, "seed": LIMIT_SEED, "version": LIMIT_VERSION}


def overrides_text(overrides: Mapping[str, Any]) -> str:
    """The ``overrides`` column: canonical JSON of ``{"<kind>:<name>.<option>": value}``, ``""`` for none."""
    return canonical_json(dict(overrides)) if overrides else ""


def overrides_from_text(text: Any) -> dict[str, Any]:
    """The overrides an ``overrides`` column holds (``{}`` for ``""`` or a missing value)."""
    if not isinstance(text, str) or not text:
        return {}
    value = json.loads(text)
    if not isinstance(value, dict):
        raise ValueError(f"overrides must be a JSON object, not {text!r}")
    return value


def run_label(limit: Any, overrides: Any) -> str:
    """The report label of rows made with a limit and/or overrides (the columns' text): `` [rehearsal:
    2/class]``, `` [rehearsal: 2/class, set 3a1b2c]`` or `` [set 3a1b2c]`` (the hash of the overrides,
    so two override sets never pool); ``""`` for rows of a plain run."""
    parts = []
    if isinstance(limit, str) and limit:
        try:
            parts.append(f"rehearsal: {limit_label(parse_limit(limit))}")
        except ValueError:  # written by something else: shown as it is
            parts.append(f"rehearsal: {limit}")
    if isinstance(overrides, str) and overrides:
        try:
            parts.append(f"set {stable_hash(overrides_from_text(overrides), LABEL_DIGITS)}")
        except ValueError:
            parts.append(f"set {stable_hash(overrides, LABEL_DIGITS)}")
    return f" [{', '.join(parts)}]" if parts else ""


def rehearsal_notes(frame: Any) -> list[str]:
    """One line per rehearsal among a results frame's rows (``limit``/``overrides`` columns): its label,
    its cells and what it ran with, so the report's ``set 3a1b2c`` can be read back."""
    if frame is None or len(frame) == 0 or "limit" not in frame or "overrides" not in frame:
        return []
    marks = frame[["limit", "overrides", "cell_id"]].fillna("")
    marks = marks[(marks["limit"] != "") | (marks["overrides"] != "")]
    notes = []
    for (limit, overrides), rows in marks.groupby(["limit", "overrides"], sort=True):
        ran = ([f"--limit {limit}"] if limit else []) + [
            f"--set {key.split(':', 1)[1]}={json.dumps(value) if not isinstance(value, str) else value}"
            for key, value in overrides_from_text(overrides).items()]
        notes.append(f"rehearsal rows, labelled `{run_label(limit, overrides).strip()}`: "
                     f"{rows['cell_id'].nunique()} cells, run with {' '.join(ran)}")
    return notes

