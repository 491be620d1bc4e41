"""Dataset entries: where a dataset comes from and how to turn one of its splits into ``LabeledImages``.

A ``DatasetSpec`` is registered in ``benchmark.registries.DATASETS`` by name. Its ``source`` says where
the rows come from; every source goes through HF ``datasets``:

* ``HubSource``: ``load_dataset(hub_id, config, split=..., revision=...)``;
* ``ParquetSource``: local parquet files, either a directory in the Hub's layout (``data/train-*.parquet``,
  ``<config>/test-00000-of-00001.parquet``, ...; the splits are inferred the way the Hub infers them) or an
  explicit ``{split: files}`` mapping: ``load_dataset("parquet", ...)``;
* ``ImageFolderSource``: a local folder of images, ``split/class/image.png`` (or ``class/image.png``, then
  everything is the ``train`` split): ``load_dataset("imagefolder", data_dir=...)``;
* ``EmbeddedSource`` (``benchmark.data.embedded``): the small dataset shipped in the repository.

``spec.with_local(path)`` points any entry at a local copy (a parquet mirror of the Hub dataset or an
image folder) and keeps everything else (split and column names, description); the rows then go
through exactly the same validation and fingerprinting as the Hub rows. Without touching code, the
environment variable ``LGM_BENCH_DATA_<NAME>`` (``<NAME>``: the registered name upper-cased, other
characters than letters and digits as ``_``, e.g. ``LGM_BENCH_DATA_IMAGENET1K=/data/imagenet1k``) does the
same at load time for an entry whose source is not already local (see ``local_env_var``).

When a Hub dataset cannot be loaded (offline, gated, not found), the ``DatasetError`` names the fix:
for a gated dataset, accepting its terms on the Hub and logging in; for any, the local override.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol

from ..types import LabeledImages
from .fingerprint import column_values, fingerprint

LOGICAL_SPLITS = ("train", "test")
_IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm"}


class DatasetError(ValueError):
    """A dataset cannot be loaded as asked; the message names what is available and the fix."""


class Source(Protocol):
    kind: ClassVar[str]
    is_local: bool  # reads files on disk already: the LGM_BENCH_DATA_<NAME> override does not apply

    def load_split(self, split: str) -> Any:
        """The rows of the real split ``split`` as a ``datasets.Dataset``."""
        ...

    def split_names(self) -> list[str] | None:
        """The real split names the source has, or None when that cannot be found out cheaply."""
        ...

    def describe(self) -> str:
        ...


def _unknown_split(err: Exception) -> bool:
    text = str(err)
    return "Unknown split" in text or "Bad split" in text


@dataclass(frozen=True)
class HubSource:
    """A dataset on the Hugging Face Hub (or anything else ``load_dataset(path, name)`` accepts).

    ``gated``: the Hub serves it only to a logged-in user who accepted its terms (ImageNet); the error
    when it cannot be loaded says so.
    """

    kind: ClassVar[str] = "hub"
    is_local: ClassVar[bool] = False
    hub_id: str
    config: str | None = None
    revision: str | None = None
    gated: bool = False

    def load_split(self, split: str) -> Any:
        from datasets import load_dataset

        return load_dataset(self.hub_id, self.config, split=split, revision=self.revision)

    def split_names(self) -> list[str] | None:
        try:
            from datasets import get_dataset_split_names

            names = get_dataset_split_names(self.hub_id, self.config, revision=self.revision)
            return [str(split) for split in names]
        except Exception:  # offline, gated, ...: the caller falls back to the datasets message
            return None

    def describe(self) -> str:
        at = f"@{self.revision}" if self.revision else ""
        return f"Hub dataset {self.hub_id}{at}" + (f" (config {self.config!r})" if self.config else "")


def _resolve_files(files: str | Sequence[str]) -> tuple[str, ...]:
    if isinstance(files, (str, Path)):
        files = [files]
    return tuple(str(Path(f).expanduser().absolute()) for f in files)


@dataclass(frozen=True)
class ParquetSource:
    """Local parquet files: a directory in the Hub's layout, or ``data_files`` as (split, files) pairs."""

    kind: ClassVar[str] = "parquet"
    is_local: ClassVar[bool] = True
    data_dir: str | None = None
    data_files: tuple[tuple[str, tuple[str, ...]], ...] = ()

    def __post_init__(self) -> None:
        if (self.data_dir is None) == (not self.data_files):
            raise DatasetError("a ParquetSource needs exactly one of data_dir or data_files")

    @classmethod
    def from_files(cls, files: Mapping[str, str | Sequence[str]]) -> ParquetSource:
        return cls(data_files=tuple((split, _resolve_files(f)) for split, f in files.items()))

    def _kwargs(self) -> dict[str, Any]:
        if self.data_dir is not None:
            return {"data_dir": self.data_dir}
        return {"data_files": {split: list(files) for split, files in self.data_files}}

    def load_split(self, split: str) -> Any:
        from datasets import load_dataset

        if self.data_files and split not in dict(self.data_files):
            raise ValueError(f'Unknown split "{split}". Should be one of {self.split_names()}.')
        return load_dataset("parquet", split=split, **self._kwargs())

    def split_names(self) -> list[str] | None:
        if self.data_files:
            return [split for split, _ in self.data_files]
        return _inferred_splits(self.data_dir)

    def describe(self) -> str:
        if self.data_dir is not None:
            return f"parquet files under {self.data_dir}"
        return "parquet files " + ", ".join(f"{s}: {len(f)} file(s)" for s, f in self.data_files)


@dataclass(frozen=True)
class ImageFolderSource:
    """A local folder of images: ``<data_dir>/<split>/<class>/<image>`` (class = label)."""

    kind: ClassVar[str] = "imagefolder"
    is_local: ClassVar[bool] = True
    data_dir: str

    def load_split(self, split: str) -> Any:
        from datasets import load_dataset

        return load_dataset("imagefolder", data_dir=self.data_dir, split=split)

    def split_names(self) -> list[str] | None:
        return _inferred_splits(self.data_dir)

    def describe(self) -> str:
        return f"image folder {self.data_dir}"


def _inferred_splits(data_dir: str | None) -> list[str] | None:
    """The splits HF ``datasets`` infers from a local directory's file names (the Hub's rules)."""
    if data_dir is None:
        return None
    try:
        from datasets.data_files import get_data_patterns

        return [str(split) for split in get_data_patterns(data_dir)]
    except Exception:
        return None


def local_source(path: str | Path | Mapping[str, str | Sequence[str]], kind: str | None = None,
                 config: str | None = None) -> Source:
    """A source for data on disk: a directory (parquet mirror or image folder) or ``{split: files}``.

    ``kind`` ("parquet" or "imagefolder") skips the guess; when ``config`` names a sub-directory of
    ``path`` (the Hub's ``<config>/<split>-*.parquet`` layout), that sub-directory is used.
    """
    if isinstance(path, Mapping):
        if kind not in (None, "parquet"):
            raise DatasetError(f"a {{split: files}} mapping is read as parquet, not {kind!r}")
        return ParquetSource.from_files(path)
    root = Path(path).expanduser().absolute()
    if root.is_file():
        raise DatasetError(
            f"{root} is a single file; pass a directory in the Hub layout (data/train-*.parquet, "
            f"data/test-*.parquet) or a mapping such as {{'train': '{root}', 'test': '...'}}"
        )
    if not root.is_dir():
        raise DatasetError(f"local dataset path {root} does not exist")
    if config and (root / config).is_dir():
        root = root / config
    if kind is None:
        files = [p for p in root.rglob("*") if p.is_file()]
        if any(p.suffix == ".parquet" for p in files):
            kind = "parquet"
        elif any(p.suffix.lower() in _IMAGE_SUFFIXES for p in files):
            kind = "imagefolder"
        else:
            raise DatasetError(f"{root} holds neither parquet files nor images; pass kind= or another path")
    if kind == "parquet":
        return ParquetSource(data_dir=str(root))
    if kind == "imagefolder":
        return ImageFolderSource(data_dir=str(root))
    raise DatasetError(f"unknown local dataset kind {kind!r}; use 'parquet' or 'imagefolder'")


LOCAL_ENV_PREFIX = "LGM_BENCH_DATA_"


def local_env_var(name: str) -> str:
    """The environment variable that points the registered dataset ``name`` at local files."""
    return LOCAL_ENV_PREFIX + re.sub(r"[^A-Za-z0-9]", "_", name).upper()


@dataclass(frozen=True)
class DatasetSpec:
    """A registered dataset: its source, its train/test split names and its columns.

    ``train_split``/``test_split`` are the source's real split names behind the logical ``"train"`` and
    ``"test"`` (e.g. ImageNet's test split is ``"validation"``). ``class_names`` overrides the names
    read from the label column's ``ClassLabel`` feature (needed when the labels are plain integers).
    ``notes``: provenance and caveats (sizes, what to avoid), for people; nothing reads it.
    """

    name: str
    description: str
    source: Any  # a Source
    train_split: str = "train"
    test_split: str = "test"
    image_column: str = "image"
    label_column: str = "label"
    group_column: str | None = None
    class_names: tuple[str, ...] | None = None
    notes: str = ""

    def __post_init__(self) -> None:
        if "\n" in self.description.strip():
            raise ValueError(f"dataset {self.name!r}: the description must be one line")

    # -- building variants ---------------------------------------------------------------------------
    def replace(self, **changes: Any) -> DatasetSpec:
        """A copy with some fields changed, e.g. ``spec.replace(test_split="validation")``."""
        return dataclasses.replace(self, **changes)

    def with_source(self, source: Any) -> DatasetSpec:
        return self.replace(source=source)

    def with_local(self, path: str | Path | Mapping[str, str | Sequence[str]],
                   kind: str | None = None) -> DatasetSpec:
        """The same entry read from disk: a parquet mirror / image folder directory, or ``{split: files}``.

        Mapping keys may be real split names or the logical ``"train"``/``"test"``.
        """
        if isinstance(path, Mapping):
            path = {self.split_name(k) if k in LOGICAL_SPLITS else k: v for k, v in path.items()}
        if hasattr(self.source, "with_local"):  # a source that knows its own local layout
            return self.with_source(self.source.with_local(path, kind=kind))
        config = getattr(self.source, "config", None)
        return self.with_source(local_source(path, kind=kind, config=config))

    @property
    def local_env_var(self) -> str:
        return local_env_var(self.name)

    def resolved(self) -> DatasetSpec:
        """This entry, or, when ``LGM_BENCH_DATA_<NAME>`` is set and the source is not local already
        (an explicit ``with_local`` wins), the same entry read from the path it names."""
        var = self.local_env_var
        path = os.environ.get(var, "").strip()
        if not path or getattr(self.source, "is_local", False):
            return self
        try:
            return self.with_local(path)
        except DatasetError as err:
            raise DatasetError(f"{var}={path} (dataset {self.name!r}): {err}") from None

    # -- loading -------------------------------------------------------------------------------------
    def split_name(self, split: str) -> str:
        """The source's real split name behind the logical ``split`` ("train" or "test")."""
        if split == "train":
            return self.train_split
        if split == "test":
            return self.test_split
        raise DatasetError(
            f"unknown split {split!r} for dataset {self.name!r}: the splits are 'train' "
            f"(= {self.train_split!r} of the source) and 'test' (= {self.test_split!r})"
        )

    def load_real_split(self, real: str) -> Any:
        """The source's split ``real`` (a real split name), after the local override; a Hub dataset that
        cannot be reached raises a ``DatasetError`` that names the fix."""
        spec = self.resolved()
        try:
            return spec.source.load_split(real)
        except OSError as err:  # ConnectionError, DatasetNotFoundError, GatedRepoError, ...
            if not isinstance(spec.source, HubSource):
                raise
            raise DatasetError(spec._hub_failure(err)) from err

    def _hub_failure(self, err: Exception) -> str:
        hub = self.source
        text = f"dataset {self.name!r} could not be loaded from {hub.describe()}: {type(err).__name__}: {err}."
        if hub.gated:
            text += (
                f" It is gated: sign in on huggingface.co, accept its terms of access at "
                f"https://huggingface.co/datasets/{hub.hub_id}, then log in here with "
                f"`huggingface-cli login` (newer: `hf auth login`; or set HF_TOKEN)."
            )
        offline = [v for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")
                   if os.environ.get(v, "").strip().lower() in ("1", "true", "yes", "on")]
        if offline:
            text += f" Downloading needs the network and {' and '.join(offline)} unset."
        text += (
            f" Or point the entry at local files (a parquet mirror in the Hub layout or an image folder): "
            f"{self.local_env_var}=<dir>, or DATASETS.get({self.name!r}).with_local(<dir>)."
        )
        return text

    def load_raw(self, split: str) -> Any:
        """The ``datasets.Dataset`` behind the logical ``split``, unvalidated."""
        spec = self.resolved()
        if spec is not self:
            return spec.load_raw(split)
        real = self.split_name(split)
        try:
            return self.load_real_split(real)
        except (ValueError, KeyError) as err:
            if not _unknown_split(err):
                raise
            available = self.source.split_names()
            shown = ", ".join(repr(s) for s in available) if available else f"see: {err}"
            field_name = f"{split}_split"
            fix = (f"DATASETS.get({self.name!r}).replace({field_name}={available[0]!r})"
                   if available else f"DATASETS.get({self.name!r}).replace({field_name}=...)")
            raise DatasetError(
                f"dataset {self.name!r} ({self.source.describe()}) has no split {real!r} (the logical "
                f"{split!r} split); available splits: {shown}. Fix: {fix}"
            ) from None

    def load(self, split: str) -> LabeledImages:
        """Load, validate and fingerprint one logical split ("train" or "test")."""
        spec = self.resolved()
        if spec is not self:  # LGM_BENCH_DATA_<NAME>: messages then name the local source
            return spec.load(split)
        ds = self.load_raw(split)
        ds, class_names = self._validate(ds, split)
        fp = fingerprint(ds, split=split, class_names=class_names, image_column=self.image_column,
                         label_column=self.label_column, group_column=self.group_column)
        return LabeledImages(name=self.name, split=split, dataset=ds, class_names=class_names,
                             fingerprint=fp, image_column=self.image_column,
                             label_column=self.label_column, group_column=self.group_column)

    def fingerprint(self, split: str) -> str:
        return self.load(split).fingerprint

    # -- validation ----------------------------------------------------------------------------------
    def _column_error(self, ds: Any, split: str, role: str, column: str, hint: str | None) -> DatasetError:
        field_name = f"{role}_column"
        columns = ", ".join(f"{c!r} ({type(f).__name__})" for c, f in ds.features.items())
        fix = f" Fix: DATASETS.get({self.name!r}).replace({field_name}={hint!r})." if hint else ""
        return DatasetError(
            f"dataset {self.name!r} split {split!r} ({self.source.describe()}) has no {role} column "
            f"{column!r}; its columns are {columns}.{fix}"
        )

    def _validate(self, ds: Any, split: str) -> tuple[Any, list[str]]:
        from datasets import ClassLabel, Image, Value

        features = ds.features
        images = [c for c, f in features.items() if isinstance(f, Image)]
        labels = [c for c, f in features.items() if isinstance(f, ClassLabel)]
        if self.image_column not in features:
            raise self._column_error(ds, split, "image", self.image_column, images[0] if images else None)
        if self.label_column not in features:
            raise self._column_error(ds, split, "label", self.label_column, labels[0] if labels else None)
        if self.group_column is not None and self.group_column not in features:
            raise self._column_error(ds, split, "group", self.group_column, None)

        image_feature = features[self.image_column]
        if not isinstance(image_feature, Image):
            if isinstance(image_feature, Value) and image_feature.dtype in ("binary", "large_binary", "string"):
                ds = ds.cast_column(self.image_column, Image())  # raw encoded bytes or file paths
            else:
                raise DatasetError(
                    f"dataset {self.name!r} split {split!r}: column {self.image_column!r} is "
                    f"{image_feature}, not images (an Image feature, encoded bytes or file paths)"
                )

        if self.group_column is not None:
            group_feature = features[self.group_column]
            if not (isinstance(group_feature, ClassLabel) or isinstance(group_feature, Value)
                    and group_feature.dtype.startswith(("int", "uint", "bool"))):
                raise DatasetError(
                    f"dataset {self.name!r} split {split!r}: group column {self.group_column!r} is "
                    f"{group_feature}; it must be a ClassLabel, integers or booleans"
                )

        label_feature = features[self.label_column]
        if isinstance(label_feature, ClassLabel):
            names = list(label_feature.names)
            if self.class_names is not None:
                if len(self.class_names) != len(names):
                    raise DatasetError(
                        f"dataset {self.name!r}: class_names has {len(self.class_names)} names but the "
                        f"ClassLabel of {self.label_column!r} has {len(names)}"
                    )
                names = list(self.class_names)
        elif isinstance(label_feature, Value) and label_feature.dtype.startswith(("int", "uint")):
            if self.class_names is not None:
                names = list(self.class_names)
            else:
                values = column_values(ds, self.label_column)
                names = [str(i) for i in range(int(values.max()) + 1 if len(values) else 0)]
        else:
            raise DatasetError(
                f"dataset {self.name!r} split {split!r}: label column {self.label_column!r} is "
                f"{label_feature}; it must be a ClassLabel or integers"
                + (f" (the ClassLabel column here is {labels[0]!r})" if labels else "")
            )
        values = column_values(ds, self.label_column)
        if len(values) and (values.min() < 0 or values.max() >= len(names)):
            raise DatasetError(
                f"dataset {self.name!r} split {split!r}: labels range over [{values.min()}, {values.max()}] "
                f"but there are {len(names)} classes (unlabelled rows are marked -1 in some Hub test splits)"
            )
        return ds, names
