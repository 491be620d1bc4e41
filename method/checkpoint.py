"""Checkpoints of a distillation run: parameters, optimiser, step, loss curve and every RNG state.

The run draws all its randomness from its own ``torch.Generator`` objects (a CPU one for small draws and
one on the device for noise and heads), so their states are what a resume needs; the global torch CPU
and CUDA states are saved too, for code in a backbone that might draw from them. The method draws nothing
from Python's ``random`` or NumPy. The file is written as every long loop's checkpoint is
(:mod:`benchmark.checkpoints`: atomic, tied to the run's identity, never resumed when unreadable).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from benchmark import checkpoints

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
    """Write ``state`` (tensors, dicts, lists, numbers) and the global RNG states under ``identity``."""
    checkpoints.save(path, identity, {"global_rng": global_rng_state(), **state})


def load(path: Path, identity: dict[str, Any]) -> dict[str, Any] | None:
    """The state saved at ``path`` for the same run (with ``global_rng``); else None."""
    return checkpoints.load(path, identity)
