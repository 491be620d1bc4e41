"""Names in the report: file-name components, and how tables and figures show methods, backbones and
datasets.

Shown names come from the registered entries themselves (``Method.display_name``,
``BackboneSpec.display_name``, ``DatasetSpec.display_name``); a name no longer registered is shown as
it is stored. A method key may carry labels (``lgm [embedded]``, ``lgm [cfg 1a2b3c]``, see
:mod:`.labels`): the base name is shown by its display name, the labels stay as they are
(``LGM [embedded]``). The registries are imported on first use only: importing this module (and the
table modules) pulls in neither torch nor matplotlib.
"""

from __future__ import annotations

import re
from functools import cache

#: What separates a method's name from its labels in a method key: ``lgm [embedded]``.
LABEL_SEP = " ["


def safe_name(text) -> str:
    """A file-name component: anything but letters, digits, ``.``, ``-`` and ``_`` becomes ``-``."""
    text = re.sub(r"[^A-Za-z0-9._-]+", "-", str(text)).strip("-.")
    return text or "none"


def split_label(key: str) -> tuple[str, str]:
    """``"lgm [embedded]"`` -> ``("lgm", " [embedded]")``; a key without labels -> ``(key, "")``."""
    key = str(key)
    base, sep, rest = key.partition(LABEL_SEP)
    return base, sep + rest


@cache
def _registered(kind: str) -> dict[str, str]:
    """Registered name -> display name of one registry (entries only: no reference is resolved)."""
    from ..registry import BACKBONES, DATASETS, METHODS

    registry = {"method": METHODS, "backbone": BACKBONES, "dataset": DATASETS}[kind]
    return {name: str(getattr(obj, "display_name", "") or name) for name, obj in registry.items()}


def display_name(kind: str, key: str) -> str:
    """The registered display name of ``key`` in the ``kind`` registry, else ``key`` itself."""
    return _registered(kind).get(str(key), str(key))


def display_method(key: str) -> str:
    """``lgm`` -> ``LGM``; ``lgm [embedded]`` -> ``LGM [embedded]``; unregistered names unchanged."""
    base, labels = split_label(key)
    return display_name("method", base) + labels


def display_backbone(key: str) -> str:
    return display_name("backbone", key) if key else "none"


def display_dataset(key: str) -> str:
    return display_name("dataset", key)
