"""Atomic checkpoint files of long loops (the paper probe's head trainings), tied to what they belong to.

A checkpoint is a ``torch.save`` of plain data (tensors, dicts, lists, numbers) together with an
``identity``: everything the state is only valid for (the probe's settings, the seed, the set's
content, the backbone). It is written to a temp file beside the target and renamed, so a process killed
mid-write leaves the previous checkpoint intact; one that cannot be read, or that belongs to another
identity, is reported and ignored, never resumed.
"""

from __future__ import annotations

import io
import logging
from pathlib import Path
from typing import Any

import torch

from .paths import atomic_write_bytes

log = logging.getLogger(__name__)

FORMAT = 1


def save(path: Path, identity: dict[str, Any], state: dict[str, Any]) -> None:
    """Write ``state`` under ``identity`` to ``path`` atomically."""
    buffer = io.BytesIO()
    torch.save({"format": FORMAT, "identity": identity, "state": state}, buffer)
    atomic_write_bytes(Path(path), buffer.getvalue())


def load(path: Path, identity: dict[str, Any]) -> dict[str, Any] | None:
    """The state saved at ``path`` under the same ``identity``; None when there is none (or it is
    unreadable, or another run's: both are logged)."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        found = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # truncated or corrupt: start over rather than trust it
        log.warning("checkpoint %s is unreadable (%s); starting this part again", path, err)
        return None
    if not isinstance(found, dict) or found.get("format") != FORMAT or found.get("identity") != identity \
            or not isinstance(found.get("state"), dict):
        log.warning("checkpoint %s belongs to another run or format; starting this part again", path)
        return None
    return found["state"]
