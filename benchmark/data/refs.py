"""Datasets by reference: ``folder:<dir>``, ``parquet:<dir>``, ``hub:<repo id>[/<config>]``.

A reference resolves to a ``DatasetSpec`` named by the reference itself, so it goes through the same
loading, checks and messages as a registered entry, and its fingerprint is the same content
fingerprint (``benchmark.data.fingerprint``): a ``parquet:`` mirror of a Hub split shares its cached
features (synthetic sets and cells are keyed by the name too).
Local references are checked when resolved (the folder exists, has the ``train`` and ``test`` splits,
no empty class folder, the same classes in both), so a bad one is a usage error before any work. The
path is kept as typed (relative paths are relative to the current directory). See docs/references.md.
"""

from __future__ import annotations

import re
from pathlib import Path

from .spec import _IMAGE_SUFFIXES, DatasetSpec, HubSource, ParquetSource, _quoted, _resolved_data_files

SPLITS = ("train", "test")


def _directory(rest: str, example: str) -> Path:
    if not rest:
        raise ValueError(f"names no directory; write e.g. {example}")
    root = Path(rest).expanduser()
    if not root.exists():
        raise ValueError(f"directory not found: {rest} (relative paths are relative to the current directory)")
    if not root.is_dir():
        raise ValueError(f"{rest} is a file, not a directory; write e.g. {example}")
    return root


def _class_folders(split_dir: Path) -> dict[str, int]:
    """{class folder: number of images in it}."""
    return {d.name: sum(1 for f in d.rglob("*") if f.suffix.lower() in _IMAGE_SUFFIXES)
            for d in sorted(split_dir.iterdir()) if d.is_dir() and not d.name.startswith(".")}


def _nested_images(split_dir: Path) -> list[str]:
    """Class folders that hold images in subfolders: HF would take the subfolders for the classes."""
    return [d.name for d in sorted(split_dir.iterdir()) if d.is_dir() and not d.name.startswith(".")
            and any(f.suffix.lower() in _IMAGE_SUFFIXES and f.parent != d for f in d.rglob("*"))]


def check_image_folder(root: Path, rest: str) -> None:
    """``<root>/<split>/<class>/<image>`` for train and test, no empty class, the same classes in both."""
    classes = {}
    for split in SPLITS:
        split_dir = root / split
        if not split_dir.is_dir():
            found = sorted(d.name for d in root.iterdir() if d.is_dir())
            raise ValueError(f"no {split!r} split folder in {rest} (found: {_quoted(found) or 'no folders'}); a "
                             f"folder: dataset needs {rest}/train/<class>/<image> and {rest}/test/<class>/<image>")
        counts = _class_folders(split_dir)
        nested = _nested_images(split_dir)
        if nested:
            raise ValueError(f"class folder(s) {_quoted(nested)} of split {split!r} in {rest} hold images in "
                             f"subfolders; a folder: dataset needs {rest}/{split}/<class>/<image>, the images "
                             "directly in their class folder (its name is the class): move them up one level")
        empty = [c for c, n in counts.items() if n == 0]
        if empty:
            raise ValueError(f"class folder(s) {_quoted(empty)} of split {split!r} in {rest} hold no images; "
                             "add images or remove the folder from both splits")
        if len(counts) < 2:
            raise ValueError(f"split {split!r} in {rest} has {len(counts)} class folder(s); an image folder needs "
                             f"<split>/<class>/<image> with at least two class folders")
        classes[split] = set(counts)
    only_train, only_test = classes["train"] - classes["test"], classes["test"] - classes["train"]
    if only_train or only_test:
        raise ValueError(f"the train and test splits in {rest} have different class folders: only in train: "
                         f"{_quoted(sorted(only_train)) or 'none'}; "
                         f"only in test: {_quoted(sorted(only_test)) or 'none'}")


def folder_reference(name: str, rest: str) -> DatasetSpec:
    """``folder:<dir>``: an image folder ``<dir>/{train,test}/<class>/<image>`` (class = folder name)."""
    from .spec import ImageFolderSource

    root = _directory(rest, "folder:data/my_images")
    check_image_folder(root, rest)
    return DatasetSpec(name=name, description=f"image folder {rest} by reference", source=ImageFolderSource(rest))


def parquet_reference(name: str, rest: str) -> DatasetSpec:
    """``parquet:<dir>``: parquet files in the Hub layout, ``<dir>/data/<split>-*.parquet`` or
    ``<dir>/<split>/*.parquet``."""
    _directory(rest, "parquet:data/my_mirror")
    files = _resolved_data_files(rest)
    splits = [s for s, found in files.items() if any(f.endswith(".parquet") for f in found)]
    missing = [s for s in SPLITS if s not in splits]
    if missing:
        raise ValueError(f"no {_quoted(missing)} split among the parquet files under {rest} (found: "
                         f"{_quoted(splits) or 'no parquet files'}); write {rest}/data/train-*.parquet and "
                         f"{rest}/data/test-*.parquet (or {rest}/train/*.parquet and {rest}/test/*.parquet)")
    return DatasetSpec(name=name, description=f"parquet files under {rest} by reference",
                       source=ParquetSource(data_dir=rest))


def hub_reference(name: str, rest: str) -> DatasetSpec:
    """``hub:<org>/<name>[/<config>]``: ``load_dataset(repo, config)``, splits ``train`` and ``test``."""
    match = re.fullmatch(r"([A-Za-z0-9][\w.-]*/[\w.-]+)(?:/([\w.-]+))?", rest)
    if not match:
        raise ValueError(f"{rest!r} is not a Hub dataset id; write hub:<org>/<name> or hub:<org>/<name>/<config>, "
                         "e.g. hub:zalando-datasets/fashion_mnist")
    repo, config = match.group(1), match.group(2)
    return DatasetSpec(name=name, description=f"Hub dataset {rest} by reference", source=HubSource(repo, config))
