"""Dataset entries: where a dataset comes from and how to turn one of its splits into ``LabeledImages``.

A ``DatasetSpec`` is registered in ``benchmark.registry.DATASETS`` by name. Its ``source`` says where
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
import glob
import json
import logging
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol

import numpy as np

from ..types import LabeledImages
from .fingerprint import column_values, fingerprint

log = logging.getLogger(__name__)

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

    @property
    def revision_note(self) -> str:
        """For the dry run: an unpinned Hub dataset may change under the same name."""
        return f"revision {self.revision}" if self.revision else "revision not pinned"


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
        self.check_files(split)
        return load_dataset("parquet", split=split, **self._kwargs())

    def check_files(self, split: str) -> None:
        """Each file of ``split`` is a readable parquet file and together they hold rows: a truncated file
        or an empty split is a DatasetError naming the file (HF ``datasets`` says only that generating
        the dataset failed). Reads the files' footers only."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        rows: dict[str, int] = {}
        for file in self.split_files(split):
            try:
                rows[file] = pq.read_metadata(file).num_rows
            except (OSError, pa.ArrowException) as err:
                raise DatasetError(f"{file} is not a readable parquet file (truncated or damaged: "
                                   f"{str(err).strip().splitlines()[0]}); write it again") from None
        if rows and not any(rows.values()):
            raise DatasetError(f"no rows in {', '.join(rows)}: split {split!r} of {self.describe()} is empty; "
                               "write its rows (or remove the empty file)")

    def split_names(self) -> list[str] | None:
        if self.data_files:
            return [split for split, _ in self.data_files]
        return _inferred_splits(self.data_dir)

    def describe(self) -> str:
        if self.data_dir is not None:
            return f"parquet files under {self.data_dir}"
        return "parquet files " + ", ".join(f"{s}: {len(f)} file(s)" for s, f in self.data_files)

    def split_files(self, split: str) -> list[str]:
        """The files behind ``split`` (``train+validation`` and ``train[:10%]`` included)."""
        if self.data_files:
            listed = dict(self.data_files)
            patterns = [f for part in _split_parts(split) for f in listed.get(part, ())]
            return [g for f in patterns for g in (sorted(glob.glob(f)) or [f])]
        found = _resolved_data_files(self.data_dir)
        return [str(f) for part in _split_parts(split) for f in found.get(part, [])]

    def stored_class_names(self, split: str, column: str) -> list[str] | None:
        """The class names ``split``'s own files declare for ``column``, or None when they declare none.

        HF ``datasets`` gives every split the features of the first file it reads, so a test split whose
        file names the classes in another order would silently take the train split's names.
        """
        declared = {path: _parquet_class_names(path, column) for path in self.split_files(split)}
        names = {tuple(n) for n in declared.values() if n is not None}
        if len(names) > 1:
            shown = "; ".join(f"{Path(p).name}: {n}" for p, n in declared.items() if n is not None)
            raise DatasetError(f"the parquet files of split {split!r} name the classes of {column!r} "
                               f"differently ({shown}); write them with one ClassLabel")
        return list(names.pop()) if names else None


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

    def layout_problem(self, split: str) -> str | None:
        """What keeps ``split`` from having classes, or None: HF labels an image folder by its class
        folders only when there are two or more at one depth (else no label column, or the split folders
        taken for classes)."""
        root = Path(self.data_dir)
        files = [Path(f) for f in _resolved_data_files(self.data_dir).get(split, [])
                 if Path(f).suffix.lower() in _IMAGE_SUFFIXES]
        parents = {f.parent for f in files}
        split_dirs = _SPLIT_DIR_NAMES | {split}
        if len({len(f.relative_to(root).parts) for f in files}) > 1:
            found = "its images lie at different depths below the folder"
        elif not parents or all(p == root or (p.parent == root and p.name in split_dirs) for p in parents):
            found = "found no class subfolders (the images lie directly in the split folder)"
        elif len({p.name for p in parents}) == 1:
            found = f"found one class folder, {parents.pop().name!r}"
        else:
            return None
        return (f"{found}; an image folder needs <split>/<class>/<image> with at least two class folders "
                f"(their names are the class names). Fix: give each class its own folder, two classes or more")


def _split_parts(split: str) -> list[str]:
    """``"train+validation[:10%]"`` -> ``["train", "validation"]``: the splits a split expression reads."""
    return [re.sub(r"\[.*\]$", "", part.strip()) for part in split.split("+")]


def _split_keywords() -> list[list[str]]:
    try:
        from datasets.data_files import SPLIT_KEYWORDS

        return [list(words) for words in SPLIT_KEYWORDS.values()]
    except ImportError:  # an older/newer datasets: the common names
        return [["train", "training"], ["validation", "valid", "dev", "val"], ["test", "testing", "eval"]]


# folder names HF reads as splits; classes named only so are split folders without class folders in them
_SPLIT_DIR_NAMES = {w for words in _split_keywords() for w in words}


def _resolved_data_files(data_dir: str | None) -> dict[str, list[str]]:
    """{split: files} as HF ``datasets`` resolves a local directory (the Hub's rules); {} if it cannot."""
    if data_dir is None:
        return {}
    try:
        from datasets.data_files import DataFilesDict, get_data_patterns

        found = DataFilesDict.from_patterns(get_data_patterns(data_dir), base_path=data_dir)
        return {str(split): [str(f) for f in files] for split, files in found.items()}
    except Exception:  # no files HF recognises: the load itself reports it
        return {}


def _parquet_class_names(path: str, column: str) -> list[str] | None:
    """The ClassLabel names a parquet file written by HF ``datasets`` stores for ``column`` (schema only)."""
    try:
        import pyarrow.parquet as pq

        meta = (pq.read_schema(path).metadata or {}).get(b"huggingface")
        feature = json.loads(meta)["info"]["features"][column] if meta else None
    except Exception:  # not written by datasets, or no such column: nothing declared
        return None
    if isinstance(feature, dict) and feature.get("_type") == "ClassLabel" and feature.get("names"):
        return [str(n) for n in feature["names"]]
    return None


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
    display_name: str = ""  # how reports name it ("ImageNet-100"); "" -> ``name``; never in an identity

    def __post_init__(self) -> None:
        if "\n" in self.description.strip():
            raise ValueError(f"dataset {self.name!r}: the description must be one line")
        if not self.display_name:
            object.__setattr__(self, "display_name", self.name)

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
            raise self._missing_split(split, real, err) from None

    def _missing_split(self, split: str, real: str, err: Exception) -> DatasetError:
        """No split ``real``: name what is there and a fix that never trains on the test split (nor
        tests on the train split)."""
        available = self.source.split_names() or []
        other = self.test_split if split == "train" else self.train_split
        # a test-like split is never a train split, whatever its name
        candidates = [s for s in available if s != other and not (split == "train" and "test" in s)]
        shown = ", ".join(repr(s) for s in available) if available else f"see: {err}"
        text = (f"dataset {self.name!r} ({self.source.describe()}) has no split {real!r} (the logical "
                f"{split!r} split); available splits: {shown}.")
        field_name = f"{split}_split"
        if candidates:
            return DatasetError(f"{text} Fix: DATASETS.get({self.name!r}).replace({field_name}={candidates[0]!r})")
        if not available:
            return DatasetError(f"{text} Fix: DATASETS.get({self.name!r}).replace({field_name}=...)")
        role, why = (("test", "a method must never train on it") if split == "train"
                     else ("train", "scores on the images a method trained on mean nothing"))
        return DatasetError(
            f"{text} It has only the {role} split ({other!r}) and {why}: carve a {split} split out of other "
            f"labelled images of the same classes (e.g. a {split}-*.parquet file or {split}/ folder beside it), "
            f"or point {self.name!r} at a source that has one ({self.local_env_var}=<dir>, or "
            f"DATASETS.get({self.name!r}).with_local(<dir>))."
        )

    def load(self, split: str, *, allow_missing_classes: bool = False) -> LabeledImages:
        """Load, validate and fingerprint one logical split ("train" or "test").

        Every class must have training images (``allow_missing_classes=True`` skips that, to inspect a
        partial mirror; the runner never does). The test split must name the train split's classes: in
        another order, its labels are realigned to the train split's order by name
        (``realigned_from`` keeps its own order); other names are an error.
        """
        spec = self.resolved()
        if spec is not self:  # LGM_BENCH_DATA_<NAME>: messages then name the local source
            return spec.load(split, allow_missing_classes=allow_missing_classes)
        checked = self.checked(split, allow_missing_classes=allow_missing_classes)
        revision = getattr(self.source, "revision", None)
        fp = fingerprint(checked.dataset, split=split, class_names=checked.class_names, image_column=self.image_column,
                         label_column=self.label_column, group_column=self.group_column, revision=revision)
        return LabeledImages(name=self.name, split=split, dataset=checked.dataset, class_names=checked.class_names,
                             fingerprint=fp, image_column=self.image_column,
                             label_column=self.label_column, group_column=self.group_column,
                             revision=revision, realigned_from=checked.realigned_from)

    def checked(self, split: str, *, allow_missing_classes: bool = False) -> CheckedSplit:
        """What :meth:`load` checks, without the content fingerprint (which reads every image): the split
        opens, has its columns, classes and labels in range, the train split every class, the test split
        the train split's classes. The preflight (``benchmark.preflight``) runs this."""
        spec = self.resolved()
        if spec is not self:
            return spec.checked(split, allow_missing_classes=allow_missing_classes)
        ds, classes = self._validate(self.load_raw(split), split)
        realigned_from = None
        if split == "train" and not allow_missing_classes:
            self._check_train_classes(ds, classes.names)
        elif split == "test":
            ds, classes, realigned_from = self._agree_with_train(ds, classes)
        return CheckedSplit(ds, list(classes.names), realigned_from)

    def fingerprint(self, split: str) -> str:
        return self.load(split).fingerprint

    # -- revision ------------------------------------------------------------------------------------
    @property
    def revision(self) -> str | None:
        """The Hub revision the rows are read at (after the local override); None: not pinned, or local."""
        return getattr(self.resolved().source, "revision", None)

    @property
    def revision_note(self) -> str:
        """For the dry run: "revision <sha>", "revision not pinned" (Hub), or "" (local files)."""
        note = getattr(self.resolved().source, "revision_note", "")
        return note if isinstance(note, str) else ""

    # -- train and test agree ------------------------------------------------------------------------
    def _check_train_classes(self, ds: Any, names: Sequence[str]) -> None:
        """Every class has training images: a method cannot make (or a probe learn) a class it never saw."""
        counts = np.bincount(column_values(ds, self.label_column).astype(np.int64), minlength=len(names))
        missing = [names[c] for c in np.flatnonzero(counts == 0)]
        if missing:
            raise self._no_train_images(missing)

    def _no_train_images(self, missing: Sequence[str]) -> DatasetError:
        shown = _quoted(missing)
        return DatasetError(
            f"dataset {self.name!r} split 'train' ({self.source.describe()}) has no images of "
            f"{_count(len(missing), 'class', 'classes')}: {shown}; every method needs training images of every "
            f"class. Fix: add training images of {shown if len(missing) == 1 else 'those classes'}, or remove "
            f"{'it' if len(missing) == 1 else 'them'} from both splits."
        )

    def _train_classes(self) -> SplitClasses:
        """The train split's classes, to check the test split against (no image is read)."""
        ds = self.load_raw("train")
        self._require_columns(ds, "train")
        return self._classes(ds, "train")[1]

    def _agree_with_train(self, ds: Any, test: SplitClasses) -> tuple[Any, SplitClasses, tuple[str, ...] | None]:
        """The test split with the train split's class order: (dataset, classes, its own order if realigned)."""
        train = self._train_classes()
        if not (train.named and test.named):  # plain integer labels: the train split's indices
            values = column_values(ds, self.label_column)
            if len(values) and int(values.max()) >= len(train.names):
                raise self._no_train_images([str(v) for v in sorted(set(values.tolist())) if v >= len(train.names)])
            return ds, train, None
        if train.names == test.names:
            return ds, test, None
        only_train = [n for n in train.names if n not in set(test.names)]
        only_test = [n for n in test.names if n not in set(train.names)]
        if only_train or only_test:
            raise DatasetError(
                f"dataset {self.name!r} ({self.source.describe()}): the train and test splits name different "
                f"classes: only in train: {_quoted(only_train) or 'none'}; only in test: "
                f"{_quoted(only_test) or 'none'}. Fix: give both splits the same class names (the same "
                f"ClassLabel names, or the same class folders)."
            )
        log.warning("dataset %r: the test split names its classes in another order (%s) than the train split; "
                    "its labels were realigned to the train split's order by name", self.name, _quoted(test.names))
        position = {n: i for i, n in enumerate(train.names)}
        lookup = np.asarray([position[n] for n in test.names], dtype=np.int64)
        labels = lookup[column_values(ds, self.label_column).astype(np.int64)]
        return self._with_labels(ds, labels, train.names), train, test.names

    def _with_labels(self, ds: Any, labels: np.ndarray, names: Sequence[str]) -> Any:
        """The same rows with another label column (a small in-memory column; the images are not copied)."""
        from datasets import ClassLabel

        order = list(ds.column_names)
        ds = ds.remove_columns([self.label_column])
        ds = ds.add_column(self.label_column, labels, feature=ClassLabel(names=list(names)))
        return ds.select_columns(order)

    # -- validation ----------------------------------------------------------------------------------
    def _column_error(self, ds: Any, split: str, role: str, column: str, hint: str | None) -> DatasetError:
        where = f"dataset {self.name!r} split {split!r} ({self.source.describe()})"
        problem = self._layout_problem(split) if role == "label" and not hint else None
        if problem:
            return DatasetError(f"{where}: {problem}.")
        field_name = f"{role}_column"
        columns = ", ".join(f"{c!r} ({type(f).__name__})" for c, f in ds.features.items())
        fix = f" Fix: DATASETS.get({self.name!r}).replace({field_name}={hint!r})." if hint else ""
        return DatasetError(f"{where} has no {role} column {column!r}; its columns are {columns}.{fix}")

    def _layout_problem(self, split: str) -> str | None:
        """An image folder's layout that gives it no classes (its labels are its folders), or None."""
        layout_problem = getattr(self.source, "layout_problem", None)
        return layout_problem(self.split_name(split)) if callable(layout_problem) else None

    def _require_columns(self, ds: Any, split: str) -> None:
        from datasets import ClassLabel, Image

        features = ds.features
        label = features.get(self.label_column)
        if isinstance(label, ClassLabel) and set(label.names) <= _SPLIT_DIR_NAMES:  # split folders as classes
            problem = self._layout_problem(split)
            if problem:
                raise DatasetError(f"dataset {self.name!r} split {split!r} ({self.source.describe()}): {problem}.")
        images = [c for c, f in features.items() if isinstance(f, Image)]
        labels = [c for c, f in features.items() if isinstance(f, ClassLabel)]
        if self.image_column not in features:
            raise self._column_error(ds, split, "image", self.image_column, images[0] if images else None)
        if self.label_column not in features:
            raise self._column_error(ds, split, "label", self.label_column, labels[0] if labels else None)
        if self.group_column is not None and self.group_column not in features:
            raise self._column_error(ds, split, "group", self.group_column, None)

    def _validate(self, ds: Any, split: str) -> tuple[Any, SplitClasses]:
        from datasets import ClassLabel, Image, Value

        self._require_columns(ds, split)
        features = ds.features
        image_feature = features[self.image_column]
        if not isinstance(image_feature, Image):
            raw = isinstance(image_feature, Value) and image_feature.dtype in ("binary", "large_binary", "string")
            # the Hub's image struct written without the datasets metadata (pyarrow, pandas)
            struct = isinstance(image_feature, dict) and set(image_feature) == {"bytes", "path"}
            if raw or struct:
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
        return self._classes(ds, split)

    def _classes(self, ds: Any, split: str) -> tuple[Any, SplitClasses]:
        """The split's class names (its own files' names where they differ from what HF gave it) and a
        range check of its labels."""
        from datasets import ClassLabel, Value

        label_feature = ds.features[self.label_column]
        named = True
        if isinstance(label_feature, ClassLabel):
            names = list(label_feature.names)
            stored = self._stored_names(split)
            if stored is not None and stored != names and self.class_names is None:
                names = stored  # HF gave this split another file's names: keep the ints, fix the names
                ds = self._with_labels(ds, column_values(ds, self.label_column), names)
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
                named = False
                values = column_values(ds, self.label_column)
                names = [str(i) for i in range(int(values.max()) + 1 if len(values) else 0)]
        else:
            labels = [c for c, f in ds.features.items() if isinstance(f, ClassLabel)]
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
        return ds, SplitClasses(tuple(names), named)

    def _stored_names(self, split: str) -> list[str] | None:
        stored = getattr(self.source, "stored_class_names", None)
        return stored(self.split_name(split), self.label_column) if callable(stored) else None


@dataclass(frozen=True)
class CheckedSplit:
    """A split that passed :meth:`DatasetSpec.checked`: its rows, class names (the train split's order)
    and, when its labels were realigned by name, its own class order."""

    dataset: Any
    class_names: list[str]
    realigned_from: tuple[str, ...] | None = None


@dataclass(frozen=True)
class SplitClasses:
    """A split's class names; ``named``: they are real names (a ClassLabel or ``class_names``), not the
    ``"0".."k"`` made up for plain integer labels."""

    names: tuple[str, ...]
    named: bool = True


def _count(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def _quoted(names: Sequence[str], limit: int = 10) -> str:
    """'a', 'b', ... (+N more): a list short enough for one line."""
    shown = ", ".join(repr(str(n)) for n in names[:limit])
    return shown + (f", ... (+{len(names) - limit} more)" if len(names) > limit else "")
