"""The registries of methods, backbones, datasets, suites and probe protocols: one generic class and its
instances. Built-in entries live in the modules each instance names and register on import."""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, Generic, TypeVar

from .refs import install_resolvers
from .types import Method, ProbeProtocol

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

    ``add_resolver(prefix, factory)`` makes names of the form ``<prefix>:<rest>`` (references, e.g.
    ``timm:vit_small_patch14_dinov2.lvd142m``) resolve to ``factory(name, rest)`` on lookup, so
    ``get``, ``in`` and ``unknown_message`` work on them everywhere without call-site changes. A
    factory raises ``ValueError`` with a message that says what is wrong; a resolved entry is memoised.
    ``names()`` lists the registered entries only (see docs/references.md).
    """

    kind: str
    builtins: tuple[str, ...] = ()
    entry_point_group: str | None = None
    base: type | None = None
    _entries: dict[str, T] = field(default_factory=dict, repr=False)
    _loaded: bool = field(default=False, repr=False)
    _resolvers: dict[str, Callable[[str, str], T]] = field(default_factory=dict, repr=False)
    _resolved: dict[str, T] = field(default_factory=dict, repr=False)

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

    def add_resolver(self, prefix: str, factory: Callable[[str, str], T]) -> None:
        """Resolve ``<prefix>:<rest>`` names with ``factory(name, rest)`` (raises ValueError when bad)."""
        if prefix in self._resolvers and self._resolvers[prefix] is not factory:
            raise RegistryError(f"{self.kind} reference prefix {prefix!r} is registered twice")
        self._resolvers[prefix] = factory

    @property
    def prefixes(self) -> list[str]:
        self._load()
        return sorted(self._resolvers)

    def _resolve(self, name: str) -> T:
        """The entry a reference names; RegistryError saying what is wrong with it otherwise."""
        if name in self._resolved:
            return self._resolved[name]
        prefix, sep, rest = name.partition(":")
        factory = self._resolvers.get(prefix) if sep else None
        if factory is None:
            raise RegistryError(self._unknown(name))
        try:
            obj = factory(name, rest)
        except Exception as err:  # a factory's ValueError says what is wrong; anything else is named
            text = str(err.args[0]) if isinstance(err, KeyError) and err.args else str(err)
            if not isinstance(err, (ValueError, KeyError, ImportError)):
                text = f"{type(err).__name__}: {text}"
            prefix_text = f"{self.kind} {name!r}"
            raise RegistryError(text if text.startswith(prefix_text) else f"{prefix_text}: {text}") from None
        self._resolved[name] = obj
        return obj

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
        if name in self._entries:
            return self._entries[name]
        return self._resolve(name)

    def unknown_message(self, name: str) -> str:
        """Why ``name`` cannot be used: close matches for an unknown name, or what is wrong with a reference."""
        self._load()
        try:
            self._resolve(name)
        except RegistryError as err:
            return str(err)
        return f"{self.kind} {name!r} is known"  # only reached for a name that resolves after all

    def _unknown(self, name: str) -> str:
        prefix, sep, _ = name.partition(":")
        refs = ", ".join(f"{p}:..." for p in sorted(self._resolvers))
        if sep and self._resolvers and prefix not in self._resolvers:
            close = difflib.get_close_matches(prefix, list(self._resolvers), n=1, cutoff=0.5)
            hint = f" Did you mean {close[0]}:?" if close else ""
            return f"unknown {self.kind} reference prefix {prefix + ':'!r} in {name!r}.{hint} Known prefixes: {refs}."
        close = difflib.get_close_matches(name, list(self._entries), n=3, cutoff=0.4)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        also = f" (or a reference: {refs})" if refs else ""
        return (
            f"unknown {self.kind} {name!r}.{hint} "
            f"Run `python -m benchmark list {self.kind}s` to see all {len(self._entries)}{also}."
        )

    def names(self) -> list[str]:
        self._load()
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        self._load()
        if name in self._entries or name in self._resolved:
            return True
        if not isinstance(name, str) or name.partition(":")[0] not in self._resolvers:
            return False
        try:
            self._resolve(name)
        except RegistryError:
            return False
        return True

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def items(self) -> list[tuple[str, T]]:
        return [(n, self._entries[n]) for n in self.names()]

    def describe(self, name: str) -> str:
        """First line of the entry's description or docstring."""
        obj = self.get(name)
        text = getattr(obj, "description", None) or getattr(obj, "__doc__", None) or ""
        return text.strip().splitlines()[0] if text.strip() else ""


# -- the instances ------------------------------------------------------------------------------------
METHODS: Registry[type[Method]] = Registry(
    "method", builtins=("baselines", "method"), entry_point_group="lgm_bench.methods", base=Method
)
BACKBONES: Registry[Any] = Registry("backbone", builtins=("benchmark.backbones",))
DATASETS: Registry[Any] = Registry("dataset", builtins=("benchmark.data",))
SUITES: Registry[Any] = Registry("suite", builtins=("benchmark.suites",))
PROBES: Registry[type[ProbeProtocol]] = Registry("probe", builtins=("benchmark.probe",), base=ProbeProtocol)
# timm:/open_clip:/hf: backbones and folder:/parquet:/hub: datasets by reference (docs/references.md)
install_resolvers(BACKBONES, DATASETS)
