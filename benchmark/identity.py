"""What decides a cell's numbers, worked out from declarations only (no data loaded, no backbone built).

A cell's settings are the method's config after preset resolution, the probe's config, the declared
dataset entry and, for each backbone it uses, the declared backbone entry and the suite's options for
it. Their hash (``config_hash``) is part of the cell's id, so a changed setting is a new cell, and it is
stored in every row, so a row can be checked against the current definitions.

Identity is declared, not measured: a rerun of a finished suite must not decode images or build
backbones (the default suite's rerun takes about 2 s, its first run minutes). The measured identities
(data fingerprints, weight sha256) are recorded in the rows and key the artifacts and feature caches.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from pathlib import PurePath
from typing import Any

from .hashing import stable_hash
from .registry import BACKBONES, DATASETS, METHODS, PROBES

CONFIG_HASH_LENGTH = 16
# Fields for people only: rewording them must not make every cell new.
PROSE_FIELDS = frozenset({"description", "notes", "display_name"})


def declared(obj: Any) -> Any:
    """``obj`` as JSON-able data, recursively: dataclasses by field (prose left out), mappings, sequences
    and scalars as they are. Anything else becomes its type's name, never its repr, which may hold a
    memory address and would give every process other ids."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: declared(getattr(obj, f.name)) for f in dataclasses.fields(obj)
                if f.name not in PROSE_FIELDS}
    if isinstance(obj, Mapping):
        return {str(k): declared(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        items = [declared(v) for v in obj]
        return sorted(items, key=repr) if isinstance(obj, (set, frozenset)) else items
    if isinstance(obj, enum.Enum):
        return declared(obj.value)
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, PurePath):
        return str(obj)
    return f"<{type(obj).__module__}.{type(obj).__qualname__}>"


def _registered(registry: Any, name: str) -> Any | None:
    # An unknown name gets no settings beyond its name: the cell then fails at run time with the
    # registry's message, as it did before identities (the CLI checks names before any work).
    return registry.get(name) if name in registry else None


def dataset_identity(name: str) -> dict[str, Any]:
    """The registered entry as declared: source (Hub id and revision, local files, ...), splits and
    columns. The ``LGM_BENCH_DATA_<NAME>`` override is left out on purpose: it points at a local copy of
    the same data, differs between machines, and the rows record the content fingerprint anyway."""
    spec = _registered(DATASETS, name)
    identity: dict[str, Any] = {"name": name, "spec": None if spec is None else declared(spec)}
    base = getattr(getattr(spec, "source", None), "base", None)
    if isinstance(base, str) and base != name:  # rows read through another entry (ImageNet-100 of 1k)
        identity["base"] = dataset_identity(base)
    return identity


def backbone_identity(name: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """The registered entry as declared (architecture, weights, input size, ...) and the suite's options."""
    spec = _registered(BACKBONES, name)
    return {"name": name, "spec": None if spec is None else declared(spec), "options": declared(options)}


def _config(registry: Any, name: str, options: Mapping[str, Any]) -> dict[str, Any]:
    cls = _registered(registry, name)
    if cls is None:
        return {"name": name, "unregistered": True}
    try:
        return declared(cls(**options).config())
    except Exception as err:  # bad options: the cell keeps its place and fails with this error when run
        return {"name": name, "invalid_options": declared(options), "error": f"{type(err).__name__}: {err}"}


def method_identity(name: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """The method's config after preset resolution (``METHODS.get(name)(**options).config()``)."""
    return _config(METHODS, name, options)


def probe_identity(protocol: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """The probe protocol's config with the suite's options (``PROBES.get(protocol)(**options).config()``)."""
    return _config(PROBES, protocol, options)


def config_hash(settings: Mapping[str, Any]) -> str:
    return stable_hash(settings, CONFIG_HASH_LENGTH)
