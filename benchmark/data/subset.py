"""A class subset of another dataset, relabelled: e.g. ImageNet-100 cut out of ImageNet-1k.

``ClassSubsetSource(base, classes)`` keeps the rows whose label is in ``classes`` and gives them label
``k`` = the position of their old label in ``classes`` (so the order of ``classes`` is the class order),
with the base's class names in that order. ``base`` is either a registered dataset name (then it is
read exactly as that entry is, including its ``LGM_BENCH_DATA_<NAME>`` override and its error messages)
or a source (what ``with_local`` gives). Nothing is copied: the new labels are one small in-memory
column beside the base's (memory-mapped) table, and the kept rows are an indices mapping.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from .fingerprint import column_values
from .spec import DatasetError, local_source


def imagenet_class_names() -> list[str] | None:
    """The 1,000 ImageNet-1k class names (WordNet lemmas, as on the Hub), when timm is installed."""
    try:
        from timm.data import ImageNetInfo
    except ImportError:
        return None
    info = ImageNetInfo()
    return [info.index_to_description(i) for i in range(info.num_classes())]


@dataclass(frozen=True)
class ClassSubsetSource:
    """The rows of ``base`` whose ``label_column`` is in ``classes``, relabelled 0..K-1 in that order."""

    kind: ClassVar[str] = "subset"
    base: Any  # a registered dataset name (str) or a Source
    classes: tuple[int, ...]
    label_column: str = "label"
    fallback_names: str | None = "imagenet"  # class names when the base labels are plain integers

    def __post_init__(self) -> None:
        if len(set(self.classes)) != len(self.classes):
            raise DatasetError(f"ClassSubsetSource: classes repeat: {self.classes}")

    @property
    def is_local(self) -> bool:
        return not isinstance(self.base, str) and bool(getattr(self.base, "is_local", False))

    def with_local(self, path: str | Path | Mapping[str, str | Sequence[str]], kind: str | None = None
                   ) -> ClassSubsetSource:
        """The same subset of local files that hold the *base* dataset (e.g. an ImageNet-1k mirror)."""
        config = getattr(self._base_spec().source, "config", None) if isinstance(self.base, str) else None
        return dataclasses.replace(self, base=local_source(path, kind=kind, config=config))

    def _base_spec(self) -> Any:
        from ..registry import DATASETS

        return DATASETS.get(self.base)

    def _load_base(self, split: str) -> Any:
        if isinstance(self.base, str):
            return self._base_spec().load_real_split(split)
        return self.base.load_split(split)

    def split_names(self) -> list[str] | None:
        if isinstance(self.base, str):
            return self._base_spec().resolved().source.split_names()
        return self.base.split_names()

    def describe(self) -> str:
        base = f"dataset {self.base!r}" if isinstance(self.base, str) else self.base.describe()
        return f"{len(self.classes)} classes of {base}"

    @property
    def revision(self) -> str | None:
        """The base's Hub revision (read as the base entry is, local override included)."""
        if isinstance(self.base, str):
            return self._base_spec().revision
        return getattr(self.base, "revision", None)

    @property
    def revision_note(self) -> str:
        if isinstance(self.base, str):
            return self._base_spec().revision_note
        note = getattr(self.base, "revision_note", "")
        return note if isinstance(note, str) else ""

    def _names(self, feature: Any) -> list[str]:
        from datasets import ClassLabel

        if isinstance(feature, ClassLabel):
            names = list(feature.names)
        elif self.fallback_names == "imagenet":
            names = imagenet_class_names() or []
        else:
            names = []
        if len(names) <= max(self.classes):
            return [str(c) for c in self.classes]
        return [names[c] for c in self.classes]

    def load_split(self, split: str) -> Any:
        from datasets import ClassLabel

        ds = self._load_base(split)
        column = self.label_column
        if column not in ds.features:
            raise DatasetError(f"{self.describe()}: the base has no label column {column!r}; its columns "
                               f"are {list(ds.features)}")
        names = self._names(ds.features[column])
        labels = column_values(ds, column).astype(np.int64)
        lookup = np.full(max(int(labels.max(initial=0)), max(self.classes)) + 1, -1, dtype=np.int64)
        lookup[list(self.classes)] = np.arange(len(self.classes))
        new = np.where(labels >= 0, lookup[np.clip(labels, 0, None)], -1)
        order = list(ds.column_names)
        ds = ds.remove_columns([column]).add_column(column, new, feature=ClassLabel(names=names))
        return ds.select_columns(order).select(np.flatnonzero(new >= 0))
