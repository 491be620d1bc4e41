"""Fields that cannot change a number: declared as such where they live, and the one view that keys use.

A batch size of a no-grad pass, a preload budget, a checkpoint cadence or a worker count changes how
fast a cell runs, never what it computes. Such a field is declared with :func:`neutral` in its options
or config dataclass, and :func:`key_view` is what every identity (cell ``config_hash``, artifact key,
checkpoint identity) is built from, so setting it never makes a new cell, set or checkpoint:

* ``neutral(default)``: left out of every key (fields that were never part of one);
* ``neutral(default, key=value)``: the key holds ``value``, whatever the field is set to. Fields that
  were keyed before they were marked neutral keep the value they were keyed with (their old default),
  so the cell ids made before keep their meaning and no results directory has to run again.

The values a run actually used are recorded beside the key (artifact metadata, rows' runtime columns).
"""

from __future__ import annotations

import dataclasses
from typing import Any

NEUTRAL = "result_neutral"  # field metadata: {} (left out of keys) or {"key": value}


def neutral(default: Any = dataclasses.MISSING, *, key: Any = dataclasses.MISSING, **kwargs: Any) -> Any:
    """A dataclass field that cannot change a result (see the module docstring)."""
    mark = {} if key is dataclasses.MISSING else {"key": key}
    return dataclasses.field(default=default, metadata={**kwargs.pop("metadata", {}), NEUTRAL: mark}, **kwargs)


def neutral_fields(cls: Any, kind: str | None = None) -> frozenset[str]:
    """Names of the neutral fields of a dataclass (or instance); ``kind``: only the "omitted" ones (left
    out of keys) or only the "keyed" ones (held at a fixed key value)."""
    if not dataclasses.is_dataclass(cls):
        return frozenset()
    marks = {f.name: f.metadata[NEUTRAL] for f in dataclasses.fields(cls) if NEUTRAL in f.metadata}
    if kind is None:
        return frozenset(marks)
    keyed = kind == "keyed"
    return frozenset(name for name, mark in marks.items() if ("key" in mark) == keyed)


def key_view(obj: Any) -> dict[str, Any]:
    """A dataclass instance's fields as a key sees them: omitted neutral fields dropped, keyed ones at
    their key value, every other field as set."""
    view: dict[str, Any] = {}
    for f in dataclasses.fields(obj):
        mark = f.metadata.get(NEUTRAL)
        if mark is None:
            view[f.name] = getattr(obj, f.name)
        elif "key" in mark:
            view[f.name] = mark["key"]
    return view


def result_options(options_cls: Any, options: dict[str, Any]) -> dict[str, Any]:
    """``options`` (a name -> value mapping for ``options_cls``) without its neutral entries: what an
    identity is computed from, so that those settings fall back to their defaults."""
    drop = neutral_fields(options_cls)
    return {k: v for k, v in options.items() if k not in drop}
