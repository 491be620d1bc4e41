"""Fields that cannot change a number: declared as such where they live, and the one view that keys use.

A batch size of a no-grad pass, a preload budget, a checkpoint cadence or a worker count changes how
fast a cell runs, never what it computes. Such a field is declared with :func:`neutral` in its options
or config dataclass, and :func:`key_view` is what every identity (cell ``config_hash``, artifact key,
checkpoint identity) is built from, so setting it never makes a new cell, set or checkpoint:

* ``neutral(default)``: left out of every key (fields that were never part of one);
* ``neutral(default, pinned=True)``: stays in the key at its declared default, whatever it is set to.
  Fields that were keyed before they were marked neutral are pinned, so the cell ids made before keep
  their meaning (no result directory has to run again).

The values a run actually used are recorded beside the key (artifact metadata, rows' runtime columns).
"""

from __future__ import annotations

import dataclasses
from typing import Any

NEUTRAL = "result_neutral"  # field metadata: "omitted" or "pinned"


def neutral(default: Any = dataclasses.MISSING, *, pinned: bool = False, **kwargs: Any) -> Any:
    """A dataclass field that cannot change a result (see the module docstring)."""
    metadata = {**kwargs.pop("metadata", {}), NEUTRAL: "pinned" if pinned else "omitted"}
    return dataclasses.field(default=default, metadata=metadata, **kwargs)


def neutral_fields(cls: Any, kind: str | None = None) -> frozenset[str]:
    """Names of the neutral fields of a dataclass (or instance); ``kind``: only "omitted" or "pinned"."""
    if not dataclasses.is_dataclass(cls):
        return frozenset()
    return frozenset(f.name for f in dataclasses.fields(cls)
                     if f.metadata.get(NEUTRAL) is not None and kind in (None, f.metadata[NEUTRAL]))


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    raise TypeError(f"neutral field {f.name!r} is pinned but has no default")


def key_view(obj: Any) -> dict[str, Any]:
    """A dataclass instance's fields as a key sees them: omitted neutral fields dropped, pinned ones at
    their declared default, every other field as set."""
    view: dict[str, Any] = {}
    for f in dataclasses.fields(obj):
        kind = f.metadata.get(NEUTRAL)
        if kind == "omitted":
            continue
        view[f.name] = _default(f) if kind == "pinned" else getattr(obj, f.name)
    return view


def result_options(options_cls: Any, options: dict[str, Any]) -> dict[str, Any]:
    """``options`` (a name -> value mapping for ``options_cls``) without its neutral entries: what an
    identity is computed from, so that those settings fall back to their defaults."""
    drop = neutral_fields(options_cls)
    return {k: v for k, v in options.items() if k not in drop}
