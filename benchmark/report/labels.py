"""Labels that say what ran: a method run with options that are not its paper configuration never
reads as the plain method.

The report rewrites each row's ``method`` into a method key before anything is aggregated, so rows run
differently never pool:

- a registered method whose ``Method.label(config)`` (read from the row's ``method_config`` JSON) is
  not None: ``lgm`` under the ``embedded`` preset becomes ``lgm [embedded]`` (shown ``LGM [embedded]``);
- a set scored by ``eval`` but made elsewhere (method ``external:<NAME>``): ``<NAME> [external]``;
- a stale row, already ``lgm [cfg 1a2b3c]`` (:mod:`.stale`), keeps that label after the others;
- a rehearsal's row (``run --limit``/``--set``, its ``limit``/``overrides`` columns) gets
  ``[rehearsal: 2/class]``, ``[rehearsal: 2/class, set 3a1b2c]`` or ``[set 3a1b2c]`` last.
"""

from __future__ import annotations

import json
from functools import cache, lru_cache

import pandas as pd

from ..rehearsal import REHEARSAL_MARKS, run_label
from .naming import split_label

EXTERNAL_PREFIX = "external:"
EXTERNAL_LABEL = " [external]"
STALE_LABEL = " [cfg "


@cache
def _method_class(name: str):
    from ..registry import METHODS

    return dict(METHODS.items()).get(name)


def _config(text) -> dict | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


@lru_cache(maxsize=4096)
def method_key(method: str, method_config: str | None) -> str:
    """The key a row is reported under (see the module doc)."""
    base, labels = split_label(str(method))
    if base.startswith(EXTERNAL_PREFIX):
        return f"{base[len(EXTERNAL_PREFIX):] or 'unnamed'}{EXTERNAL_LABEL}{labels}"
    cls = _method_class(base)
    config = _config(method_config)
    label = cls.label(config) if cls is not None and config is not None else None
    return f"{base} [{label}]{labels}" if label else f"{base}{labels}"


def label_methods(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with every ``method`` replaced by its method key; rows needing no label unchanged."""
    if frame.empty or "method" not in frame:
        return frame
    configs = frame["method_config"] if "method_config" in frame else pd.Series(None, index=frame.index)
    keys = [method_key(m, c) for m, c in zip(frame["method"].astype(str), configs, strict=True)]
    # a rehearsal's rows (run --limit / --set): `lgm [rehearsal: 2/class, set 3a1b2c]`, never pooled
    marks = frame.reindex(columns=["limit", "overrides"])
    keys = [k + run_label(lim, ovr) for k, lim, ovr in zip(keys, marks["limit"], marks["overrides"], strict=True)]
    return frame.assign(method=keys)


def published_as(key: str) -> str | None:
    """The method whose published numbers a method key's cells stand beside: the key itself, or the
    method of a preset-labelled key (``lgm [embedded]`` -> ``lgm``: the row's label says it is not the
    paper's configuration); None for a set made elsewhere or a stale config."""
    base, labels = split_label(key)
    if not labels:
        return base
    if any(mark in labels for mark in REHEARSAL_MARKS):  # fewer images or other options: not the paper's run
        return None
    return None if EXTERNAL_LABEL in labels or STALE_LABEL in labels else base
