"""The paper's datasets, as one table: ``PAPER_DATASETS`` (one ``PaperDataset`` row per entry).

Each row holds what docs/assets.md lists for the entry: the key, the Hub id (config and
revision where pinned), the real split names behind the logical train/test, the image/label columns, the
group column for worst-group accuracy, a one-line description and notes. ``benchmark.data.catalog``
registers ``row.spec()`` for every row. Any entry can be pointed at local files instead of the Hub:
``DATASETS.get(key).with_local(dir)`` or ``LGM_BENCH_DATA_<KEY>=dir`` (see ``benchmark.data``).

Two rows are not plain Hub datasets:

* ``imagenet100_in1k``: ImageNet-100 cut out of ``imagenet1k`` (whatever that entry reads: the Hub or
  ``LGM_BENCH_DATA_IMAGENET1K``), classes in CMC order, label k = ``IMAGENET100_CMC[k]``, ImageNet names;
  the fallback when ``clane9/imagenet-100`` is unavailable;
* ``spawrious_o2o_hard``: no Hub copy; an image folder the user stages (``benchmark.data.spawrious``).
"""

from __future__ import annotations

from dataclasses import dataclass

from .spawrious import SpawriousSource
from .spec import DatasetSpec, HubSource, local_env_var
from .subset import ClassSubsetSource

# ImageNet-100 of CMC (Tian et al. 2019) as ImageNet-1k label indices, in CMC order: label k = entry k.
IMAGENET100_CMC: tuple[int, ...] = (
    452, 64, 374, 236, 993, 176, 882, 904, 503, 74, 57, 959, 953, 508, 872, 228, 122, 421, 599, 858,
    157, 449, 994, 608, 151, 209, 15, 876, 246, 766, 455, 857, 131, 119, 234, 90, 45, 936, 479, 272,
    665, 653, 659, 158, 960, 765, 908, 703, 407, 560, 317, 938, 724, 748, 331, 619, 120, 267, 155, 708,
    368, 772, 167, 494, 180, 431, 342, 854, 305, 54, 268, 667, 166, 277, 662, 798, 313, 498, 299, 222,
    682, 593, 775, 674, 592, 137, 758, 717, 606, 281, 796, 211, 620, 830, 544, 275, 242, 570, 99, 169,
)


@dataclass(frozen=True)
class PaperDataset:
    """One row of the table. ``hub_id`` None: see ``subset_of`` / ``staged``."""

    key: str
    hub_id: str | None
    train_split: str
    test_split: str
    description: str
    notes: str = ""
    config: str | None = None
    revision: str | None = None
    image_column: str = "image"
    label_column: str = "label"
    group_column: str | None = None
    gated: bool = False
    subset_of: str | None = None  # another row's key: keep only ``classes`` of it
    classes: tuple[int, ...] | None = None
    staged: str | None = None  # "spawrious": an image folder the user stages by hand
    display_name: str = ""  # how reports name it; "" -> ``key``

    def source(self) -> object:
        if self.hub_id is not None:
            return HubSource(self.hub_id, self.config, self.revision, gated=self.gated)
        if self.subset_of is not None and self.classes is not None:
            return ClassSubsetSource(self.subset_of, self.classes, label_column=self.label_column)
        if self.staged == "spawrious":
            return SpawriousSource(env_var=local_env_var(self.key), name=self.key)
        raise ValueError(f"paper dataset {self.key!r}: needs a hub_id, subset_of + classes, or staged")

    def spec(self) -> DatasetSpec:
        return DatasetSpec(
            name=self.key, description=self.description, source=self.source(),
            train_split=self.train_split, test_split=self.test_split, image_column=self.image_column,
            label_column=self.label_column, group_column=self.group_column, notes=self.notes,
            display_name=self.display_name,
        )


# Hub revisions. A revision is a commit sha of the dataset repository; ``load_dataset`` reads the rows at
# it, and it is part of every split's fingerprint, so a dataset updated on the Hub can never pass for the
# one the paper suites ran on. None of the rows below is pinned yet: this table was written where the Hub
# cannot be reached, and a sha that was not read off the Hub would be made up. Until one is set, the dry
# run prints "revision not pinned" for the entry. To pin one, copy the newest commit sha from
# https://huggingface.co/datasets/<hub_id>/commits/main (after checking the split sizes above) into
# ``revision=``.
UNPINNED: str | None = None  # the value of every ``revision=`` below until its sha is read off the Hub

PAPER_DATASETS: tuple[PaperDataset, ...] = (
    PaperDataset(
        "imagenet1k", "ILSVRC/imagenet-1k", "train", "validation",
        "ImageNet-1k (ILSVRC/imagenet-1k, gated): 1,281,167 train / 50,000 validation as test, 1000 classes.",
        revision=UNPINNED,
        notes="Gated: accept the terms on the Hub and `huggingface-cli login`. The Hub's test split is "
              "unlabelled (-1); the validation split is the test set.",
        gated=True,
        display_name="ImageNet-1k",
    ),
    PaperDataset(
        "imagenet100", "clane9/imagenet-100", "train", "validation",
        "ImageNet-100 (clane9/imagenet-100, CMC classes): ~126,689 train / 5,000 validation as test, 100 classes.",
        revision=UNPINNED,
        notes="Class order as the Hub's ClassLabel (CMC order). Fallback: imagenet100_in1k.",
        display_name="ImageNet-100",
    ),
    PaperDataset(
        "imagenet100_in1k", None, "train", "validation",
        "ImageNet-100 filtered from imagenet1k to the CMC list (CMC order, ImageNet names): fallback for imagenet100.",
        notes="Reads imagenet1k as that entry does (Hub, gated, or LGM_BENCH_DATA_IMAGENET1K); "
              "with_local(dir) takes an ImageNet-1k mirror.",
        subset_of="imagenet1k", classes=IMAGENET100_CMC,
        display_name="ImageNet-100 (of ImageNet-1k)",
    ),
    PaperDataset(
        "cub200", "bentrevett/caltech-ucsd-birds-200-2011", "train", "test",
        "CUB-200-2011 (bentrevett/caltech-ucsd-birds-200-2011): 5,994 train / 5,794 test, 200 bird species.",
        revision=UNPINNED,
        notes="The official split; a bbox column is ignored.",
        display_name="CUB-200-2011",
    ),
    PaperDataset(
        "stanford_dogs", "maurice-fp/stanford-dogs", "train", "test",
        "Stanford Dogs (maurice-fp/stanford-dogs): 12,000 train / 8,580 test, 120 breeds.",
        revision=UNPINNED,
        notes="Avoid amaye15/stanford-dogs (another split).",
        display_name="Stanford Dogs",
    ),
    PaperDataset(
        "flowers102", "dpdl-benchmark/oxford_flowers102", "train", "test",
        "Oxford Flowers-102 (dpdl-benchmark/oxford_flowers102): 1,020 train / 6,149 test, 102 species.",
        revision=UNPINNED,
        notes="The Hub's validation split (1,020) is not used; .replace(train_split='train+validation') adds "
              "it. Avoid nelorth/oxford-flowers (another split).",
        display_name="Flowers-102",
    ),
    PaperDataset(
        "food101", "ethz/food101", "train", "validation",
        "Food-101 (ethz/food101): 75,750 train / 25,250 validation (the official test), 101 dishes.",
        revision=UNPINNED,
        display_name="Food-101",
    ),
    PaperDataset(
        "waterbirds", "grodino/waterbirds", "train", "test",
        "Waterbirds (grodino/waterbirds): 4,795 train / 5,794 test, landbird vs waterbird; groups by place.",
        revision=UNPINNED,
        notes="Report average and worst-group accuracy; a group is (label, place). The bird column is ignored.",
        group_column="place",
        display_name="Waterbirds",
    ),
    PaperDataset(
        "spawrious_o2o_hard", None, "train", "test",
        "Spawrious O2O-hard (staged image folder, no Hub copy): 25,344 train / ~25,344 test, 4 dog breeds.",
        notes="Stage spawrious224__o2o_hard.tar.gz from github.com/aengusl/spawrious; classes bulldog, corgi, "
              "dachshund, labrador; rows also carry location and env (.replace(group_column='location')).",
        staged="spawrious",
        display_name="Spawrious (O2O hard)",
    ),
    PaperDataset(
        "artbench10", "zguo0525/ArtBench", "train", "test",
        "ArtBench-10 (zguo0525/ArtBench): 50,000 train / 10,000 test, 10 art styles.",
        revision=UNPINNED,
        notes="The labels are not alphabetical: the class order is the dataset's own ClassLabel order.",
        display_name="ArtBench-10",
    ),
)

PAPER_DATASET_KEYS = tuple(row.key for row in PAPER_DATASETS)
