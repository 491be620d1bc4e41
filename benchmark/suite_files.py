"""Suites from TOML files: ``python -m benchmark run --suite path/to/suite.toml``.

A file holds the fields of :class:`benchmark.suites.Suite` (see docs/references.md and ``suites/``);
backbones and datasets by registered name or by reference (``timm:...``, ``folder:...``). Everything is
checked when the file is read: an unknown key, a wrong type, an unknown name or option is a
:class:`SuiteFileError` naming the file, the key and close matches, before any work.

``run`` records the definition it ran under ``<results>/suites/<name>.toml`` (:func:`record_definition`);
``report`` judges the suite's rows against that record (:func:`recorded_definitions`), so they are
current until the file changes and the suite runs again.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import json
import logging
import os
import re
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from .checks import build_options, type_name
from .registry import BACKBONES, DATASETS, METHODS, PROBES, SUITES, Registry
from .suites import RUN_ONLY_FIELDS, Cell, Suite

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

DEFINITIONS_DIR = "suites"
EVAL_SUITE = "eval"  # the suite name of the rows `eval` writes (benchmark.external)
SUITE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
# backbone build options a suite may set (docs/references.md); others go through a registered entry
BACKBONE_OPTIONS = {"input_size": int, "weights": str, "normalization": str, "interpolation": str,
                    "pos_embed": str}


log = logging.getLogger(__name__)


class SuiteFileError(ValueError):
    """A suite file that cannot be used; the message names the file, the key and the fix."""


def _close(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=3, cutoff=0.5)
    return f" Did you mean: {', '.join(close)}?" if close else ""


class _Reader:
    """Checks one file's table key by key; every error names the file and the key."""

    def __init__(self, path: Path, table: dict[str, Any]) -> None:
        self.path = path
        self.table = table

    def fail(self, key: str, problem: str) -> SuiteFileError:
        return SuiteFileError(f"{self.path}: key {key!r}: {problem}")

    def string(self, key: str, value: Any) -> str:
        if not isinstance(value, str):
            raise self.fail(key, f"must be a string, not {type_name(value)} ({value!r})")
        return value

    def integer(self, key: str, value: Any, minimum: int = 1) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(key, f"must be an integer, not {type_name(value)} ({value!r})")
        if value < minimum:
            raise self.fail(key, f"must be at least {minimum}, not {value}")
        return value

    def strings(self, key: str, value: Any) -> list[str]:
        if not isinstance(value, list) or not value:
            raise self.fail(key, f"must be a non-empty list of strings, not {type_name(value)} ({value!r})")
        return [self.string(f"{key}[{i}]", v) for i, v in enumerate(value)]

    def names(self, key: str, value: Any, registry: Registry) -> list[str]:
        names = self.strings(key, value)
        for name in names:
            if name not in registry:
                raise self.fail(key, registry.unknown_message(name))
        return names

    def table_of(self, key: str, value: Any) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(key, f"must be a table, not {type_name(value)} ({value!r})")
        return value

    def per_name(self, key: str, value: Any, allowed: list[str], what: str,
                 check: Callable[[str, str, dict[str, Any]], None]) -> dict[str, dict[str, Any]]:
        """``[key.<name>]`` tables: ``<name>`` one of ``allowed``; ``check(key, name, options)``."""
        out = {}
        for name, options in self.table_of(key, value).items():
            sub = f"{key}.{name}"
            if name not in allowed:
                raise self.fail(sub, f"{name!r} is not one of this suite's {what} ({', '.join(allowed)})."
                                     f"{_close(name, allowed)}")
            check(sub, name, self.table_of(sub, options))
            out[name] = dict(options)
        return out


def _check_options(reader: _Reader, registry: Registry) -> Callable[[str, str, dict[str, Any]], None]:
    def check(key: str, name: str, options: dict[str, Any]) -> None:
        try:  # the option dataclasses built, each typed value checked (a string for an integer, ...)
            build_options(registry.get(name), options, f"{registry.kind} {name!r}").config()
        except (ValueError, TypeError) as err:
            raise reader.fail(key, str(err)) from None
    return check


def _check_backbone_options(reader: _Reader) -> Callable[[str, str, dict[str, Any]], None]:
    def check(key: str, name: str, options: dict[str, Any]) -> None:
        for option, value in options.items():
            want = BACKBONE_OPTIONS.get(option)
            if want is None:
                raise reader.fail(f"{key}.{option}", f"unknown backbone option."
                                  f"{_close(option, list(BACKBONE_OPTIONS))} Known: {', '.join(BACKBONE_OPTIONS)}")
            if want is int:
                reader.integer(f"{key}.{option}", value)
            else:
                reader.string(f"{key}.{option}", value)
        weights = options.get("weights")
        if weights is not None and not Path(weights).expanduser().is_file():
            raise reader.fail(f"{key}.weights", f"weight file not found: {weights} (paths are relative to the "
                              "current directory)")
        try:
            BACKBONES.get(name).check_options(options)
        except (ValueError, TypeError) as err:
            raise reader.fail(key, str(err)) from None
    return check


def suite_from_table(table: Mapping[str, Any], path: Path) -> Suite:
    """A checked ``Suite`` from a parsed TOML table (``path`` only names the file in messages)."""
    reader = _Reader(path, dict(table))
    known = [f.name for f in dataclasses.fields(Suite) if f.name not in RUN_ONLY_FIELDS]
    for key in table:
        if key not in known:
            raise reader.fail(key, f"unknown key.{_close(key, known)} Known keys: {', '.join(known)}")
    for key in ("name", "datasets", "methods", "backbones"):
        if key not in table:
            raise SuiteFileError(f"{path}: missing key {key!r}; a suite file needs name, datasets, methods "
                                 "and backbones (see suites/*.toml)")
    name = reader.string("name", table["name"])
    if not SUITE_NAME.fullmatch(name):
        raise reader.fail("name", f"{name!r} is not a usable suite name (letters, digits, _ . -; it names the "
                          "results folder)")
    if name in SUITES or name == EVAL_SUITE:
        raise reader.fail("name", f"{name!r} is a built-in suite name; pick another name")
    description = reader.string("description", table.get("description", f"suite file {path.name}"))
    fields: dict[str, Any] = {"name": name, "description": description}
    fields["datasets"] = reader.names("datasets", table["datasets"], DATASETS)
    fields["methods"] = reader.names("methods", table["methods"], METHODS)
    if "optional_methods" in table:
        fields["optional_methods"] = reader.names("optional_methods", table["optional_methods"], METHODS)
    defined = [*fields["methods"], *fields.get("optional_methods", [])]  # what options may name
    fields["backbones"] = reader.names("backbones", table["backbones"], BACKBONES)
    if "distill_backbones" in table:
        fields["distill_backbones"] = reader.names("distill_backbones", table["distill_backbones"], BACKBONES)
    if "ipc" in table:
        ipc = table["ipc"] if isinstance(table["ipc"], list) else [table["ipc"]]
        if not ipc:
            raise reader.fail("ipc", "is an empty list; give images per class, e.g. ipc = [1, 10]")
        fields["ipc"] = [reader.integer(f"ipc[{i}]", v) for i, v in enumerate(ipc)]
    for key in ("seeds", "method_seeds"):
        if key in table:
            fields[key] = reader.integer(key, table[key])
    if "protocol" in table:
        protocol = reader.string("protocol", table["protocol"])
        if protocol not in PROBES:
            raise reader.fail("protocol", PROBES.unknown_message(protocol))
        fields["protocol"] = protocol
    if "cross_model" in table:
        cross = reader.strings("cross_model", table["cross_model"])
        for method in cross:
            if method != "*" and method not in defined:
                raise reader.fail("cross_model", f"{method!r} is not one of this suite's methods "
                                  f"({', '.join(defined)}) or '*'.{_close(method, defined)}")
        fields["cross_model"] = tuple(cross)
    if "alignment" in table:
        if not isinstance(table["alignment"], bool):
            raise reader.fail("alignment", f"must be true or false, not {type_name(table['alignment'])}")
        fields["alignment"] = table["alignment"]
    methods, datasets = defined, fields["datasets"]
    backbones = list(dict.fromkeys([*fields["backbones"], *fields.get("distill_backbones", [])]))
    if "method_options" in table:
        fields["method_options"] = reader.per_name("method_options", table["method_options"], methods, "methods",
                                                   _check_options(reader, METHODS))
    if "dataset_method_options" in table:
        per_dataset = {}
        for dataset, value in reader.table_of("dataset_method_options", table["dataset_method_options"]).items():
            key = f"dataset_method_options.{dataset}"
            if dataset not in datasets:
                raise reader.fail(key, f"{dataset!r} is not one of this suite's datasets ({', '.join(datasets)})."
                                  f"{_close(dataset, datasets)}")

            def merged(sub: str, method: str, options: dict[str, Any], dataset: str = dataset) -> None:
                both = {**fields.get("method_options", {}).get(method, {}), **options}
                _check_options(reader, METHODS)(sub, method, both)
            per_dataset[dataset] = reader.per_name(key, value, methods, "methods", merged)
        fields["dataset_method_options"] = per_dataset
    if "backbone_options" in table:
        fields["backbone_options"] = reader.per_name("backbone_options", table["backbone_options"], backbones,
                                                     "backbones", _check_backbone_options(reader))
    if "protocol_options" in table:
        protocols = PROBES.names()
        fields["protocol_options"] = reader.per_name("protocol_options", table["protocol_options"], protocols,
                                                     "probe protocols", _check_options(reader, PROBES))
    if "exclude" in table:
        rules = table["exclude"]
        if not isinstance(rules, list):
            raise reader.fail("exclude", f"must be a list of tables, not {type_name(rules)}")
        cell_fields = {f.name: f.type for f in dataclasses.fields(Cell)}
        for i, rule in enumerate(rules):
            for k, v in reader.table_of(f"exclude[{i}]", rule).items():
                if k not in cell_fields:
                    raise reader.fail(f"exclude[{i}].{k}", f"not a cell field.{_close(k, list(cell_fields))} "
                                      f"Known: {', '.join(cell_fields)}")
                if cell_fields[k] == "int":
                    reader.integer(f"exclude[{i}].{k}", v, minimum=0)
                elif cell_fields[k] == "str":
                    reader.string(f"exclude[{i}].{k}", v)
        fields["exclude"] = [dict(r) for r in rules]
    return Suite(**fields)


def read_table(path: Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise SuiteFileError(f"suite file not found: {path}")
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise SuiteFileError(f"{path}: not valid TOML: {err}") from None


def load_suite_file(path: str | Path) -> Suite:
    """The checked suite a TOML file defines; ``SuiteFileError`` saying what is wrong otherwise."""
    return suite_from_table(read_table(Path(path)), Path(path))


def is_suite_file(text: str) -> bool:
    """Whether a ``--suite`` value names a file rather than a registered suite."""
    return text.endswith(".toml") or "/" in text or "\\" in text


def definition_path(results: Path, name: str) -> Path:
    return Path(results) / DEFINITIONS_DIR / f"{name}.toml"


RUN_FROM = "# lgm-bench: run from "


def record_definition(path: str | Path, suite: Suite, results: Path) -> Path:
    """Keep the file a suite ran from beside its results (temp file + rename): ``report`` reads it. A
    first comment line names the directory it ran from, so relative paths in it resolve the same later."""
    from .paths import atomic_write_bytes

    target = definition_path(results, suite.name)
    header = f"{RUN_FROM}{json.dumps(str(Path.cwd()))}\n".encode()
    atomic_write_bytes(target, header + Path(path).read_bytes())
    return target


@contextlib.contextmanager
def _in_directory(path: Path | None) -> Iterator[None]:
    old = Path.cwd()
    if path is not None:
        os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


def _run_from(path: Path) -> Path | None:
    first = path.read_text().split("\n", 1)[0]
    return Path(json.loads(first.removeprefix(RUN_FROM))) if first.startswith(RUN_FROM) else None


def recorded_definitions(results: Path) -> dict[str, Suite]:
    """The suites recorded under ``<results>/suites/`` by name, read with relative paths resolved from
    where they ran. A record that no longer loads (a folder or weight file it names is gone) is left
    out with a warning that says why; its rows then count as stale."""
    found: dict[str, Suite] = {}
    folder = Path(results) / DEFINITIONS_DIR
    for path in sorted(folder.glob("*.toml")) if folder.is_dir() else []:
        try:
            run_from = _run_from(path)
            with _in_directory(run_from if run_from is not None and run_from.is_dir() else None):
                suite = load_suite_file(path.resolve())
        except (SuiteFileError, OSError, ValueError) as err:
            log.warning("the recorded suite %s no longer loads (%s); its rows count as stale", path, err)
            continue
        if suite.name == path.stem:
            found[suite.name] = suite
    return found
