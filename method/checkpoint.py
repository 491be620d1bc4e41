"""Atomic checkpoints of a distillation run: parameters, optimiser, step, loss curve and every RNG state.

The run draws all its randomness from its own ``torch.Generator`` objects (a CPU one for small draws and
one on the device for noise and heads), so their states are what a resume needs; the global torch CPU
and CUDA states are saved too, for code in a backbone that might draw from them. The method draws nothing
from Python's ``random`` or NumPy. A checkpoint is written to a temp file beside the target and renamed,
so a run killed mid-write leaves the previous checkpoint intact.
"""

from __future__ import annotations

import io
import logging
from pathlib import Path
from typing import Any

import torch

from benchmark.paths import atomic_write_bytes

log = logging.getLogger(__name__)

FORMAT = 1
FILENAME = "checkpoint.pt"


def global_rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"torch_cpu": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["torch_cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_global_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch_cpu"])
    if "torch_cuda" in state and torch.cuda.is_available():
        cuda = state["torch_cuda"]
        if len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda)


def save(path: Path, identity: dict[str, Any], state: dict[str, Any]) -> None:
    """Write ``state`` (tensors, dicts, lists, numbers) under ``identity`` atomically."""
    buffer = io.BytesIO()
    torch.save({"format": FORMAT, "identity": identity, "global_rng": global_rng_state(), **state}, buffer)
    atomic_write_bytes(Path(path), buffer.getvalue())


def load(path: Path, identity: dict[str, Any]) -> dict[str, Any] | None:
    """The checkpoint at ``path`` if it exists, is readable and belongs to the same run; else None."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        found = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # truncated or corrupt: start over rather than trust it
        log.warning("checkpoint %s is unreadable (%s); starting from scratch", path, err)
        return None
    if found.get("format") != FORMAT or found.get("identity") != identity:
        log.warning("checkpoint %s belongs to another run or format; starting from scratch", path)
        return None
    return found
