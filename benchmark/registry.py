"""One generic registry for methods, backbones, datasets, suites and probe protocols."""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib import metadata
from typing import Generic, TypeVar

T = TypeVar("T")


class RegistryError(KeyError):
    """Unknown or duplicate name; the message says what to do about it."""

    def __str__(self) -> str:  # KeyError quotes its message; we want it plain
        return str(self.args[0]) if self.args else ""


@dataclass
class Registry(Generic[T]):
    """Name -> object, filled by the ``@registry.register(name)`` decorator.

    ``builtins`` are modules imported on first lookup (they register themselves); ``entry_point_group``
    lets installed plugins register too. ``base`` (optional) is checked for classes.
    """

    kind: str
    builtins: tuple[str, ...] = ()
    entry_point_group: str | None = None
    base: type | None = None
    _entries: dict[str, T] = field(default_factory=dict, repr=False)
    _loaded: bool = field(default=False, repr=False)

    def register(self, name: str | None = None) -> Callable[[T], T]:
        def decorator(obj: T) -> T:
            key = name or getattr(obj, "name", None) or obj.__name__
            if key in self._entries and self._entries[key] is not obj:
                raise RegistryError(f"{self.kind} {key!r} is registered twice; pick another name")
            if self.base is not None and isinstance(obj, type) and not issubclass(obj, self.base):
                raise TypeError(f"{self.kind} {key!r} must subclass {self.base.__name__}")
            self._entries[key] = obj
            return obj

        return decorator

    def add(self, name: str, obj: T) -> T:
        """Register without a decorator (for entries built from tables)."""
        return self.register(name)(obj)

    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        for module in self.builtins:
            importlib.import_module(module)
        if self.entry_point_group:
            for ep in metadata.entry_points(group=self.entry_point_group):
                obj = ep.load()
                if ep.name not in self._entries:
                    self.register(ep.name)(obj)

    def get(self, name: str) -> T:
        self._load()
        try:
            return self._entries[name]
        except KeyError:
            raise RegistryError(self.unknown_message(name)) from None

    def unknown_message(self, name: str) -> str:
        self._load()
        close = difflib.get_close_matches(name, list(self._entries), n=3, cutoff=0.4)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        return (
            f"unknown {self.kind} {name!r}.{hint} "
            f"Run `python -m benchmark list {self.kind}s` to see all {len(self._entries)}."
        )

    def names(self) -> list[str]:
        self._load()
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        self._load()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def items(self) -> list[tuple[str, T]]:
        return [(n, self._entries[n]) for n in self.names()]

    def describe(self, name: str) -> str:
        """First line of the entry's description or docstring."""
        obj = self.get(name)
        text = getattr(obj, "description", None) or getattr(obj, "__doc__", None) or ""
        return text.strip().splitlines()[0] if text.strip() else ""
