"""Checks of the user's input that run before any work, so a bad path or device fails in one line.

Each raises ``InputError`` (a ``ValueError``) whose message names the problem and the fix; the CLI
prints it and exits with status 2.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch

DEVICE_TYPES = ("cpu", "cuda", "mps")


class InputError(ValueError):
    """Bad input, found before any work started."""


def output_directory(path: Path, flag: str, create: bool = True) -> Path:
    """A directory we can write to: it exists (or is made, with ``create``) and a file can be made in it.

    Without ``create`` (a dry run) nothing is written: only the path's shape is checked.
    """
    if not str(path).strip():  # argparse gives Path("") as "."; the caller passes the raw text
        raise InputError(f"{flag} is empty; give a directory, e.g. {flag} results")
    if path.exists() and not path.is_dir():
        raise InputError(f"{flag} {path} is a file, not a directory; give a directory path")
    parent = path
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise InputError(f"{flag} {path}: {parent} is a file, so the directory cannot be made there")
    if not create:
        return path
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-check.", dir=path)
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise InputError(f"{flag} {path} is not writable ({err.strerror or err}); choose a directory you can "
                         "write to") from None
    return path


def parse_device(name: str) -> torch.device:
    """``auto`` (CUDA when visible, else the CPU) or a torch device string."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(name)
    except RuntimeError:
        raise InputError(f"--device {name!r} is not a device name; use auto, cpu, cuda or cuda:N") from None


def usable_device(device: torch.device) -> torch.device:
    """A device models can run on here: cpu, an existing CUDA device, or an available MPS device."""
    if device.type not in DEVICE_TYPES:
        raise InputError(f"--device {device}: models cannot run on a {device.type!r} device; use cpu or cuda")
    if device.type == "cuda":
        count = torch.cuda.device_count()
        if count == 0:
            raise InputError(f"--device {device}: no CUDA device is visible; use --device cpu")
        if device.index is not None and device.index >= count:
            raise InputError(f"--device {device}: only {count} CUDA device(s) visible (cuda:0 to "
                             f"cuda:{count - 1})")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise InputError(f"--device {device}: MPS is not available on this machine; use --device cpu")
    try:
        torch.ones(1, device=device).add_(1).cpu()
    except RuntimeError as err:
        raise InputError(f"--device {device} cannot run a tensor operation ({str(err).splitlines()[0]}); "
                         "use --device cpu") from None
    return device
