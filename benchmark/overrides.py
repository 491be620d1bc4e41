"""``run --set NAME.OPTION=VALUE``: one option of a method, of the probe protocol or of a backbone of the
suite, for this run, on top of the suite's ``method_options`` / ``protocol_options`` / ``backbone_options``;
and :func:`rehearsal_suite`, which makes the suite a run with ``--limit`` and ``--set`` runs.

``NAME`` is one of the suite's methods, its protocol or one of its backbones; a name that is more than one
of those takes its kind first (``method:NAME.OPTION``). ``VALUE`` is read as a TOML value (``2``, ``1e-3``,
``true``, ``"text"``, ``[0.5, 1.0]``); anything that is not one is the string as typed, so paths need no
quotes. Each assignment is checked as a suite file's options are (:mod:`benchmark.suite_files`), and the
value's type against the option's declared type, so a bad one is one :class:`OverrideError` naming the
option, the type it needs and the value given, before any work.

A method override also replaces the suite's per-dataset value of that option (``dataset_method_options``,
e.g. K = 3 on ImageNet-1k): the command line wins. The applied assignments are kept in
``Suite.overrides`` (keys ``<kind>:<name>.<option>``) and recorded in every row; the options they change
are part of the cells' settings, so such a run's cells have other ids than the suite's (unless the value
is what the suite resolves to anyway, or the option cannot change a number).
"""

from __future__ import annotations

import copy
import dataclasses
import datetime
import re
import sys
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .checks import describe_type, field_hints, fits, type_name
from .registry import BACKBONES, METHODS, PROBES, Registry
from .rehearsal import Limit, check_limit
from .suite_files import _check_backbone_options, _check_options, _close, _Reader
from .suites import Suite

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

KINDS = ("method", "probe", "backbone")
_OPTION = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class OverrideError(ValueError):
    """A ``--set`` assignment that cannot be applied; the message says why and what would work."""


@dataclass(frozen=True)
class Override:
    """One checked assignment: ``kind`` ("method", "probe", "backbone") ``name`` . ``option`` = ``value``."""

    kind: str
    name: str
    option: str
    value: Any

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.name}.{self.option}"


def parse_value(text: str) -> Any:
    """A TOML value (int, float, bool, string, list, inline table), else the text itself (a path, a word)."""
    try:
        value = tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text
    if isinstance(value, (datetime.date, datetime.time)):  # "2024-01-01" is a name here, not a date
        return text
    return value


def parse_assignment(text: str) -> tuple[str, Any]:
    """``"lgm.steps=20"`` -> ``("lgm.steps", 20)``; OverrideError when it is not ``NAME.OPTION=VALUE``."""
    key, sep, raw = text.partition("=")
    if not sep or "." not in key or not raw.strip():
        raise OverrideError("expected NAME.OPTION=VALUE, e.g. --set lgm.steps=20 or --set paper.epochs=2")
    return key.strip(), parse_value(raw.strip())


def split_key(key: str) -> tuple[str | None, str, str]:
    """``"method:lgm.steps"`` -> ``("method", "lgm", "steps")``; no kind given -> ``None``. The option is
    what follows the last dot (backbone references such as ``timm:vit_b.dino`` hold dots)."""
    kind, sep, rest = key.partition(":")
    if not sep or kind not in KINDS:
        kind, rest = None, key
    name, _, option = rest.rpartition(".")
    if not name or not _OPTION.fullmatch(option):
        raise OverrideError(f"{key!r} is not NAME.OPTION (e.g. lgm.steps, paper.epochs, dinov2_vitb14.input_size)")
    return kind, name, option


def suite_names(suite: Suite) -> dict[str, list[str]]:
    """The names a ``--set`` may address in ``suite``, by kind."""
    backbones = list(dict.fromkeys([*suite.backbones, *(suite.distill_backbones or [])]))
    return {"method": list(suite.methods), "probe": [suite.protocol], "backbone": backbones}


def _kind_of(suite: Suite, kind: str | None, name: str) -> str:
    names = suite_names(suite)
    if kind is not None:
        if name not in names[kind]:
            raise OverrideError(f"{name!r} is not this suite's {kind} ({', '.join(names[kind])})."
                                f"{_close(name, names[kind])}")
        return kind
    kinds = [k for k in KINDS if name in names[k]]
    if len(kinds) > 1:
        raise OverrideError(f"{name!r} is ambiguous: suite {suite.name!r} has a {' and a '.join(kinds)} of that "
                            f"name; say which, e.g. --set {kinds[0]}:{name}.OPTION=VALUE")
    if kinds:
        return kinds[0]
    listed = "; ".join(f"{k}s: {', '.join(v)}" if k != "probe" else f"probe: {v[0]}" for k, v in names.items())
    registered = [k for k, registry in zip(KINDS, (METHODS, PROBES, BACKBONES), strict=True) if name in registry]
    if registered == ["probe"]:
        raise OverrideError(f"{name!r} is a probe, but suite {suite.name!r} runs probe {suite.protocol!r} (add "
                            f"--protocol {name} to run that one)")
    if registered:
        raise OverrideError(f"{name!r} is a {registered[0]}, but suite {suite.name!r} does not use it ({listed})")
    every = [n for registry in (METHODS, PROBES, BACKBONES) for n in registry.names()]
    close = _close(name, [n for v in names.values() for n in v]) or _close(name, every)
    raise OverrideError(f"unknown name {name!r}: not a method, probe or backbone of suite {suite.name!r}.{close} "
                        f"It has {listed}")


# -- types ----------------------------------------------------------------------------------------
def _twin(instance: Any, option: str) -> tuple[Any, Any] | None:
    """(declared type, value) of ``option`` in a config dataclass the method or probe built from its
    options. LGM declares its options ``Any`` (None: the preset's value; "auto" resolutions) and types
    them in the ``LGMConfig`` it builds; the type is taken from there."""
    for attr in vars(instance).values():
        if (dataclasses.is_dataclass(attr) and not isinstance(attr, type) and attr is not instance.options
                and option in {f.name for f in dataclasses.fields(attr)}):
            return field_hints(type(attr)).get(option, Any), getattr(attr, option)
    return None


def _takes_float(hint: Any) -> bool:
    """Whether a declared type is a float one that is no integer one (``float``, ``float | None``)."""
    args = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
    return float in args and int not in args


def _check_typed(registry: Registry, kind: str, name: str, option: str, value: Any, base: dict[str, Any]) -> Any:
    """``value``, after checking that ``option`` is one of the entry's options and ``value`` of its
    declared type; an integer for a float option comes back as a float (``1`` and ``1.0`` must not give
    two cell ids)."""
    cls = registry.get(name)
    options_cls = cls.Options
    known = [f.name for f in dataclasses.fields(options_cls)]
    if option not in known:
        raise OverrideError(f"{kind} {name!r} has no option {option!r}.{_close(option, known)} "
                            f"Known: {', '.join(known) or 'none'}")
    hint = field_hints(options_cls).get(option, Any)
    if hint is Any:
        twin = _twin(cls(**base), option)
        hint = twin[0] if twin else Any
    if fits(value, hint):
        return float(value) if isinstance(value, int) and not isinstance(value, bool) and _takes_float(hint) else value
    try:  # a value the entry converts ("auto" -> None, "7" -> 7) is fine when what it becomes fits
        twin = _twin(cls(**{**base, option: value}), option)
    except (TypeError, ValueError):
        twin = None
    if twin is None or not fits(twin[1], twin[0]):
        raise OverrideError(f"option {option!r} of {kind} {name!r} must be {describe_type(hint)}, not "
                            f"{type_name(value)} ({value!r})")
    return value


class _SetReader(_Reader):
    """The suite-file checks' reader, failing with OverrideError (the command line names the option)."""

    def __init__(self) -> None:
        super().__init__(Path("--set"), {})

    def fail(self, key: str, problem: str) -> OverrideError:  # noqa: ARG002 - the caller prefixes the assignment
        return OverrideError(problem)


def _checked(suite: Suite, o: Override) -> Override:
    """``o`` after the checks a suite file's options get, on the suite's options with this one set."""
    reader = _SetReader()
    if o.kind == "backbone":
        options = {**suite.backbone_options.get(o.name, {}), o.option: o.value}
        _check_backbone_options(reader)(o.name, o.name, options)
        return o
    registry = METHODS if o.kind == "method" else PROBES
    base = dict(suite.method_options.get(o.name, {}) if o.kind == "method" else suite.protocol_options.get(o.name, {}))
    o = dataclasses.replace(o, value=_check_typed(registry, o.kind, o.name, o.option, o.value, base))
    variants = [{**base, o.option: o.value}]
    if o.kind == "method":  # every dataset's options, as the cells will build them
        variants += [{**suite.options_for(o.name, d), o.option: o.value} for d in suite.datasets]
    for options in variants:
        _check_options(reader, registry)(o.key, o.name, options)
    return o


def resolve(suite: Suite, key: str, value: Any, check: bool = True) -> Override:
    """The override ``key = value`` of ``suite``, checked (``check``); OverrideError saying what is wrong."""
    kind, name, option = split_key(key)
    override = Override(_kind_of(suite, kind, name), name, option, value)
    return _checked(suite, override) if check else override


def apply(suite: Suite, o: Override) -> Suite:
    """``suite`` with the override applied to its options and recorded in ``overrides``."""
    def set_in(table: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        table = copy.deepcopy(table)
        table.setdefault(o.name, {})[o.option] = o.value
        return table

    changes: dict[str, Any] = {"overrides": {**suite.overrides, o.key: o.value}}
    if o.kind == "method":
        changes["method_options"] = set_in(suite.method_options)
        changes["dataset_method_options"] = {  # the command line wins over a dataset's own value
            d: set_in(per) if o.name in per else copy.deepcopy(per) for d, per in suite.dataset_method_options.items()}
    elif o.kind == "probe":
        changes["protocol_options"] = set_in(suite.protocol_options)
    else:
        changes["backbone_options"] = set_in(suite.backbone_options)
    return dataclasses.replace(suite, **changes)


def rehearsal_suite(suite: Suite, limit: Limit | None = None,
                    assignments: Sequence[tuple[str, Any]] | Mapping[str, Any] = (), check: bool = True) -> Suite:
    """``suite`` as ``run --limit limit --set key=value ...`` runs it: the limit and each assignment applied
    in order (``check=False``: without the option checks, to work out the ids of cells a run made, where a
    weight file it named may no longer be). A run on fewer images or other backbone options does not
    measure the backbone alignment: its file is per dataset and would be taken for the full run's."""
    items = list(assignments.items()) if isinstance(assignments, Mapping) else list(assignments)
    out = suite
    for key, value in items:
        out = apply(out, resolve(out, key, value, check=check))
    if limit is not None:
        out = dataclasses.replace(out, limit=check_limit(limit))
    if out.limit is not None or any(k.startswith("backbone:") for k in out.overrides):
        out = dataclasses.replace(out, alignment=False)
    return out
