"""Datasets: registered specs (Hub, local parquet / image folder, the bundled subset) -> ``LabeledImages``.

>>> from benchmark.registries import DATASETS
>>> train = DATASETS.get("fashion_mnist_embedded").load("train")   # offline, bundled
>>> mirror = DATASETS.get("fashion_mnist").with_local("/data/fashion_mnist_mirror")  # a local parquet mirror
"""

from __future__ import annotations

from . import catalog  # noqa: F401  (registers the built-in entries)
from .embedded import FASHION_MNIST_CLASSES, EmbeddedSource
from .fingerprint import FINGERPRINT_VERSION, fingerprint
from .spec import (
    LOGICAL_SPLITS,
    DatasetError,
    DatasetSpec,
    HubSource,
    ImageFolderSource,
    ParquetSource,
    local_source,
)

__all__ = [
    "FASHION_MNIST_CLASSES",
    "FINGERPRINT_VERSION",
    "LOGICAL_SPLITS",
    "DatasetError",
    "DatasetSpec",
    "EmbeddedSource",
    "HubSource",
    "ImageFolderSource",
    "ParquetSource",
    "fingerprint",
    "local_source",
]
