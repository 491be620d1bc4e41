"""Datasets: registered specs (Hub, local parquet / image folder, the bundled subset) -> ``LabeledImages``.

>>> from benchmark.registry import DATASETS
>>> train = DATASETS.get("fashion_mnist_embedded").load("train")   # offline, bundled
>>> mirror = DATASETS.get("fashion_mnist").with_local("/data/fashion_mnist_mirror")  # a local parquet mirror

The paper's datasets (ImageNet-1k/-100, CUB-200, Stanford Dogs, Flowers-102, Food-101, Waterbirds,
Spawrious O2O-hard, ArtBench-10) are the rows of ``benchmark.data.paper.PAPER_DATASETS``.

Local copies instead of the Hub, for any registered entry:

* in code: ``DATASETS.get(name).with_local(path)``, where ``path`` is a directory (a parquet mirror in
  the Hub's layout, ``data/train-00000-of-00001.parquet`` ..., or an image folder ``<split>/<class>/``)
  or a ``{split: parquet files}`` mapping;
* from the shell, at load time: ``LGM_BENCH_DATA_<NAME>=<dir>`` with ``<NAME>`` the registered name in
  upper case, e.g. ``LGM_BENCH_DATA_IMAGENET1K=/data/imagenet-1k python -m benchmark run ...``. It applies
  to entries that would otherwise reach the Hub (or, for ``spawrious_o2o_hard``, that are not staged);
  an explicit ``with_local`` wins. ``imagenet100_in1k`` reads ``imagenet1k``, so
  ``LGM_BENCH_DATA_IMAGENET1K`` serves both.
"""

from __future__ import annotations

from . import catalog  # noqa: F401  (registers the built-in entries)
from .embedded import FASHION_MNIST_CLASSES, EmbeddedSource
from .fingerprint import FINGERPRINT_VERSION, fingerprint
from .paper import IMAGENET100_CMC, PAPER_DATASET_KEYS, PAPER_DATASETS, PaperDataset
from .spawrious import SPAWRIOUS_CLASSES, SpawriousSource
from .spec import (
    LOGICAL_SPLITS,
    DatasetError,
    DatasetSpec,
    HubSource,
    ImageFolderSource,
    ParquetSource,
    local_env_var,
    local_source,
)
from .subset import ClassSubsetSource

__all__ = [
    "FASHION_MNIST_CLASSES",
    "FINGERPRINT_VERSION",
    "IMAGENET100_CMC",
    "LOGICAL_SPLITS",
    "PAPER_DATASETS",
    "PAPER_DATASET_KEYS",
    "SPAWRIOUS_CLASSES",
    "ClassSubsetSource",
    "DatasetError",
    "DatasetSpec",
    "EmbeddedSource",
    "HubSource",
    "ImageFolderSource",
    "PaperDataset",
    "ParquetSource",
    "SpawriousSource",
    "fingerprint",
    "local_env_var",
    "local_source",
]
