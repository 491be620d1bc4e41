"""References: backbones and datasets named by where they come from instead of a registered name.

Backbones: ``timm:<model>``, ``open_clip:<arch>/<tag>``, ``hf:<repo id>``; datasets: ``folder:<dir>``,
``parquet:<dir>``, ``hub:<repo id>[/<config>]``. The registries resolve them on lookup (see
:meth:`benchmark.registry.Registry.add_resolver`); the factories live in ``benchmark.backbones.refs`` and
``benchmark.data.refs`` and are imported on first use, so importing the registries stays cheap.
The syntax is documented in docs/references.md.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

BACKBONE_PREFIXES = {"timm": "timm_reference", "open_clip": "open_clip_reference", "hf": "hf_reference"}
DATASET_PREFIXES = {"folder": "folder_reference", "parquet": "parquet_reference", "hub": "hub_reference"}


def lazy(module: str, function: str) -> Callable[[str, str], Any]:
    """A resolver that imports ``module`` only when a reference is first looked up."""

    def factory(name: str, rest: str) -> Any:
        return getattr(importlib.import_module(module), function)(name, rest)

    factory.__qualname__ = f"{module}.{function}"
    return factory


def install_resolvers(backbones: Any, datasets: Any) -> None:
    """Teach the backbone and dataset registries the reference prefixes."""
    for prefix, function in BACKBONE_PREFIXES.items():
        backbones.add_resolver(prefix, lazy("benchmark.backbones.refs", function))
    for prefix, function in DATASET_PREFIXES.items():
        datasets.add_resolver(prefix, lazy("benchmark.data.refs", function))


def is_reference(name: str) -> bool:
    """Whether ``name`` is a backbone or dataset reference (has a known ``<prefix>:``)."""
    prefix, sep, _ = name.partition(":")
    return bool(sep) and (prefix in BACKBONE_PREFIXES or prefix in DATASET_PREFIXES)
