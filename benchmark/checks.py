"""Checks of the user's input that run before any work, so a bad path or device fails in one line.

Each raises ``InputError`` (a ``ValueError``) whose message names the problem and the fix; the CLI
prints it and exits with status 2. ``check_finite`` guards numbers made later (weights, features, images):
a NaN or an infinity is an error where it appears, never a result.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

DEVICE_TYPES = ("cpu", "cuda", "mps")


class InputError(ValueError):
    """Bad input, found before any work started."""


class NonFiniteError(ValueError):
    """Numbers that hold NaN or infinite values where only finite ones make sense."""


def all_finite(tensor: Tensor) -> bool:
    """Whether every value of ``tensor`` is finite. A NaN or inf anywhere makes the float32 sum one, so
    the sum (a single reduction, several times cheaper than ``isfinite``) clears almost every tensor; a
    sum that overflows is settled by the exact check."""
    if bool(torch.isfinite(tensor.sum(dtype=torch.float32))):
        return True
    return bool(torch.isfinite(tensor).all())


def check_finite(tensor: Tensor, what: str) -> Tensor:
    """``tensor`` itself when every value is finite; else NonFiniteError saying how many values are not
    and where the first one is (its index)."""
    if all_finite(tensor):
        return tensor
    raise NonFiniteError(f"{what}: {describe_nonfinite(tensor)}")


def describe_nonfinite(tensor: Tensor, finite: Tensor | None = None) -> str:
    """"3 of 512 values are not finite (2 NaN, 1 inf) in 2 of 4 rows, the first at index (0, 17)"."""
    finite = torch.isfinite(tensor) if finite is None else finite
    bad = ~finite
    n, nan = int(bad.sum()), int(torch.isnan(tensor).sum())
    first = tuple(int(i) for i in bad.nonzero()[0]) if n else ()
    rows = f" in {int(bad.reshape(len(bad), -1).any(1).sum())} of {len(bad)} rows" if tensor.ndim > 1 else ""
    return (f"{n} of {tensor.numel()} values are not finite ({nan} NaN, {n - nan} inf){rows}, the first at "
            f"index {first if len(first) != 1 else first[0]}")


def output_directory(path: Path, flag: str, create: bool = True, probe: bool = False) -> Path:
    """A directory we can write to: it exists (or is made, with ``create``) and a file can be made in it.

    Without ``create`` (a dry run) nothing is made: only the path's shape is checked, and with ``probe``
    that a file can be made in it or, when it does not exist yet, in the nearest folder above it that
    does (a temp file, removed at once), so an unwritable place fails before any work.
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
    if not create and not probe:
        return path
    try:
        if create:
            path.mkdir(parents=True, exist_ok=True)
        fd, made = tempfile.mkstemp(prefix=".write-check.", dir=path if create else parent)
        os.close(fd)
        os.unlink(made)
    except OSError as err:
        raise InputError(f"{flag} {path} is not writable ({err.strerror or err}); choose a directory you can "
                         "write to") from None
    return path


def parse_device(name: str) -> torch.device:
    """``auto`` (CUDA when visible, else the CPU) or a torch device string. There is one CPU and one MPS
    device: ``cpu:3`` names nothing (torch would run on the CPU as if no index had been given)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise InputError(f"--device {name!r} is not a device name; use auto, cpu, cuda or cuda:N") from None
    if device.type in ("cpu", "mps") and device.index not in (None, 0):
        raise InputError(f"--device {name}: there is one {device.type.upper()} device, {device.type} (no index); "
                         f"use --device {device.type}")
    return device


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


# -- options: the values a method's or probe's dataclasses need ---------------------------------------
def build_options(cls: type, options: Mapping[str, Any], owner: str) -> Any:
    """``cls(**options)`` (a method or probe class), with every typed field of the dataclasses it then
    holds (its ``Options``, and e.g. LGM's resolved config) checked against its annotation. A value of
    the wrong type is a ValueError naming the option, the type it needs and the value given, also where
    the class itself fails on it with a bare TypeError (``'<' not supported between ...``)."""
    try:
        built = cls(**options)
    except (TypeError, ValueError) as err:
        plain = str(err) if isinstance(err, ValueError) else f"bad options for {owner}: {err}"
        raise ValueError(_wrong_type(cls, options, owner) or plain) from None
    for holder in _dataclasses_of(built):
        for name, hint in field_hints(type(holder)).items():
            value = getattr(holder, name, None)
            if not fits(value, hint):
                raise ValueError(f"bad options for {owner}: {_needs(name, hint, options.get(name, value))}")
    return built


def _dataclasses_of(obj: Any) -> list[Any]:
    return [v for v in vars(obj).values() if dataclasses.is_dataclass(v) and not isinstance(v, type)]


def _wrong_type(cls: type, options: Mapping[str, Any], owner: str) -> str | None:
    """The first option whose value is not of its annotated type and that alone makes ``cls`` fail
    (``"auto"`` for an ``int | None`` resolution is turned into None by LGM, so it builds and passes)."""
    try:
        hints = {n: h for holder in _dataclasses_of(cls())
                 for n, h in field_hints(type(holder)).items() if h is not Any}
    except Exception:  # noqa: BLE001 - a class without defaults: no diagnosis
        return None
    for name, value in options.items():
        if name not in hints or fits(value, hints[name]):
            continue
        try:
            cls(**{name: value})
        except (TypeError, ValueError):
            return f"bad options for {owner}: {_needs(name, hints[name], value)}"
    return None


def field_hints(cls: type) -> dict[str, Any]:
    """The resolved annotations of a dataclass's fields (none when they do not resolve)."""
    try:
        hints = typing.get_type_hints(cls)
    except Exception:  # noqa: BLE001 - unresolvable annotations: nothing to check
        return {}
    fields = {f.name for f in dataclasses.fields(cls)}
    return {n: h for n, h in hints.items() if n in fields}


def _needs(name: str, hint: Any, value: Any) -> str:
    return f"option {name!r} must be {describe_type(hint)}, not {type_name(value)} ({value!r})"


def fits(value: Any, hint: Any) -> bool:
    """Whether ``value`` (as TOML gives it: lists for tuples, ints for floats) is of the annotated type
    ``hint``; a plain class by ``isinstance``, an annotation this does not know as fitting."""
    if hint is Any:
        return True
    if hint is None or hint is type(None):
        return value is None
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return any(fits(value, a) for a in args)
    if origin is typing.Literal:
        return any(value == a and type(value) is type(a) for a in args)
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if origin in (tuple, list, Sequence) or hint in (tuple, list):
        if not isinstance(value, (list, tuple)):
            return False
        if origin is tuple and args and args[-1] is not Ellipsis:
            return len(value) == len(args) and all(fits(v, a) for v, a in zip(value, args, strict=True))
        return all(fits(v, args[0]) for v in value) if args else True
    if origin in (dict, Mapping) or hint is dict:
        return isinstance(value, dict)
    return isinstance(value, hint) if isinstance(hint, type) else True


_PLURAL = {"an integer": "integers", "a number": "numbers", "a string": "strings", "true or false": "booleans"}


def describe_type(hint: Any) -> str:
    """``int`` -> "an integer", ``int | None`` -> "an integer or none", ``Literal["a", "b"]`` -> "one of
    'a', 'b'", ``tuple[int, int]`` -> "a list of 2 integers"."""
    if hint is None or hint is type(None):
        return "none"
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(describe_type(a) for a in args)
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin in (tuple, list, Sequence):
        if origin is tuple and args and args[-1] is not Ellipsis:
            kinds = {describe_type(a) for a in args}
            if len(kinds) == 1 and kinds <= set(_PLURAL):
                return f"a list of {len(args)} {_PLURAL[kinds.pop()]}"
            return f"a list of {len(args)} ({', '.join(describe_type(a) for a in args)})"
        return f"a list of ({describe_type(args[0])})" if args else "a list"
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string",
            dict: "a table"}.get(hint, getattr(hint, "__name__", str(hint)))


def type_name(value: Any) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "a list",
            tuple: "a list", dict: "a table", type(None): "None"}.get(type(value), type(value).__name__)
