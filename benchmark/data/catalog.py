"""The registered datasets. Add a Hub dataset with one ``DATASETS.add(name, DatasetSpec(...))`` entry; the
paper's datasets come from the one table ``benchmark.data.paper.PAPER_DATASETS``."""

from __future__ import annotations

from ..registry import DATASETS
from .embedded import EmbeddedSource
from .paper import PAPER_DATASETS
from .spec import DatasetSpec, HubSource

# -- bundled: offline, in the repository ----------------------------------------------------------------
DATASETS.add("fashion_mnist_embedded", DatasetSpec(
    name="fashion_mnist_embedded",
    display_name="Fashion-MNIST (bundled subset)",
    description="Bundled Fashion-MNIST subset: 10 classes, 300 train / 100 test images per class, 28x28 grey.",
    source=EmbeddedSource(),
))

# T-shirt/top, Trouser, Sneaker, Bag: four classes that look nothing alike.
SMOKE_CLASSES = (0, 1, 7, 8)
DATASETS.add("smoke_tiny", DatasetSpec(
    name="smoke_tiny",
    display_name="Fashion-MNIST (smoke slice)",
    description="Tiny slice of the bundled Fashion-MNIST for the smoke suite: 4 classes, 16 train / 8 test each.",
    source=EmbeddedSource(classes=SMOKE_CLASSES, per_class=(("train", 16), ("test", 8))),
))

# -- Hugging Face Hub ---------------------------------------------------------------------------------
DATASETS.add("fashion_mnist", DatasetSpec(
    name="fashion_mnist",
    display_name="Fashion-MNIST",
    description="Fashion-MNIST from the Hub (zalando-datasets/fashion_mnist): 60k train / 10k test, 10 classes.",
    source=HubSource("zalando-datasets/fashion_mnist"),  # revision not pinned: see UNPINNED in paper.py
))

# -- the paper's datasets: one row each in benchmark/data/paper.py -------------------------------------
for _row in PAPER_DATASETS:
    DATASETS.add(_row.key, _row.spec())
