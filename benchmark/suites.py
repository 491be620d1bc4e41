"""Suites: named grids of cells (a product over axes, with exclusions)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .hashing import path_safe, stable_hash
from .identity import backbone_identity, config_hash, dataset_identity, method_identity, probe_identity
from .registry import METHODS, SUITES
from .rehearsal import limit_identity

PROBE_SEED_BASE = 3407  # the paper's probe seeds are 3407 + k
RUN_ONLY_FIELDS = ("limit", "overrides")  # set by `run --limit/--set`, never by a suite file


@dataclass(frozen=True)
class Cell:
    """One (dataset, method, distilling backbone, evaluating backbone, ipc, method seed, protocol), made
    with the settings whose hash is ``config_hash`` (:meth:`Suite.settings`): another setting is another
    cell, with another id and file."""

    suite: str
    dataset: str
    method: str
    distill_backbone: str  # "" when the method uses no backbone
    eval_backbone: str
    ipc: int  # 0 when the method does not depend on ipc
    method_seed: int
    probe_seeds: tuple[int, ...]
    protocol: str
    config_hash: str

    @property
    def cell_id(self) -> str:
        d = path_safe(self.distill_backbone or "none")
        readable = (f"{path_safe(self.dataset)}__{path_safe(self.method)}__{d}__{path_safe(self.eval_backbone)}"
                    f"__ipc{self.ipc}__s{self.method_seed}")
        return f"{readable}__{stable_hash(dataclasses.asdict(self), 10)}"

    def describe(self) -> str:
        via = f"{self.distill_backbone}->" if self.distill_backbone else ""
        return (f"{self.dataset:<24} {self.method:<20} {via}{self.eval_backbone:<22} ipc={self.ipc:<3} "
                f"seed={self.method_seed} probes={len(self.probe_seeds)} [{self.protocol}]")


@dataclass
class Suite:
    """A grid of cells. ``cross_model`` names the methods whose sets are probed on every backbone
    (``("*",)``: every method that uses a backbone); the others are probed on their own backbone only."""

    name: str
    description: str
    datasets: list[str]
    methods: list[str]
    backbones: list[str]
    ipc: list[int] = field(default_factory=lambda: [1])
    seeds: int = 5
    method_seeds: int = 1  # sets made per (method, backbone, ipc), seeds 0..n-1, each probed with every probe seed
    protocol: str = "paper"
    cross_model: tuple[str, ...] = ()
    distill_backbones: list[str] | None = None  # default: the same as ``backbones``
    method_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    # per-dataset method options on top of ``method_options`` (e.g. K = 3 for ImageNet-1k)
    dataset_method_options: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    backbone_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    protocol_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    exclude: list[dict[str, Any]] = field(default_factory=list)
    alignment: bool = False  # also measure mutual-kNN alignment of every backbone pair per dataset
    # Methods defined for this suite (their options and cross-model probing) that it does not run unless
    # asked: ``run --methods`` naming them, or :meth:`with_optional_methods`. Its own cells stay as they are.
    optional_methods: list[str] = field(default_factory=list)
    # A rehearsal (``run --limit``/``--set``, benchmark.overrides): images per class or a fraction of each
    # class of both splits (part of every cell's settings when set), and the ``--set`` assignments already
    # applied to the options above, kept to be recorded in the rows. Neither is a suite file key.
    limit: int | float | None = None
    overrides: dict[str, Any] = field(default_factory=dict)

    def options_for(self, method: str, dataset: str) -> dict[str, Any]:
        """The options a method gets on a dataset: the suite's, then the dataset's overrides."""
        per_dataset = self.dataset_method_options.get(dataset, {}).get(method, {})
        return {**self.method_options.get(method, {}), **per_dataset}

    def with_optional_methods(self) -> Suite:
        """The suite with its optional methods run too."""
        return self.replace(methods=list(dict.fromkeys([*self.methods, *self.optional_methods])))

    def replace(self, **changes: Any) -> Suite:
        """A copy with the given axes replaced (CLI overrides); ``None`` keeps the suite's value."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})

    def settings(self, dataset: str, method: str, distill_backbone: str, eval_backbone: str,
                 protocol: str) -> dict[str, Any]:
        """Everything besides a cell's coordinates that decides its numbers, from declarations only:
        the method's config after preset resolution, the probe's config, the dataset entry and the
        backbone entries with this suite's options for them (see :mod:`benchmark.identity`)."""
        return CellSettings(self).settings(dataset, method, distill_backbone, eval_backbone, protocol)

    def _crosses(self, method: str) -> bool:
        return "*" in self.cross_model or method in self.cross_model

    def cells(self) -> list[Cell]:
        cells: list[Cell] = []
        settings = CellSettings(self)
        distillers = self.distill_backbones or self.backbones
        for dataset in self.datasets:
            for method in self.methods:
                cls = METHODS.get(method)
                for ipc in self.ipc if cls.uses_ipc else [0]:
                    for db in distillers if cls.uses_backbone else [""]:
                        crosses = db == "" or self._crosses(method)
                        evals = self.backbones if crosses else [db] if db in self.backbones else []
                        for eb in evals:
                            digest = settings.hash(dataset, method, db, eb, self.protocol)
                            cells.extend(self._seeded(dataset, method, db, eb, ipc, cls.paired_seeds, digest))
        return [c for c in dict.fromkeys(cells) if not self._excluded(c)]

    def _seeded(self, dataset: str, method: str, db: str, eb: str, ipc: int, paired: bool,
                digest: str) -> list[Cell]:
        make = lambda seed, probes: Cell(self.name, dataset, method, db, eb, ipc, seed, probes, self.protocol,
                                         digest)
        if paired:  # e.g. random real: a new selection per seed, probed once with the matching seed
            return [make(k, (PROBE_SEED_BASE + k,)) for k in range(self.seeds)]
        probes = tuple(PROBE_SEED_BASE + k for k in range(self.seeds))
        return [make(s, probes) for s in range(self.method_seeds)]

    def _excluded(self, cell: Cell) -> bool:
        fields = dataclasses.asdict(cell)
        return any(all(fields.get(k) == v for k, v in rule.items()) for rule in self.exclude)


class CellSettings:
    """A suite's cell settings and their hashes, each part worked out once (a suite has many cells with
    the same method, probe, dataset or backbone)."""

    def __init__(self, suite: Suite) -> None:
        self.suite = suite
        self._parts: dict[tuple, Any] = {}
        self._hashes: dict[tuple, str] = {}

    def _part(self, key: tuple, make: Callable[[], Any]) -> Any:
        if key not in self._parts:
            self._parts[key] = make()
        return self._parts[key]

    def settings(self, dataset: str, method: str, distill_backbone: str, eval_backbone: str,
                 protocol: str) -> dict[str, Any]:
        s = self.suite
        backbone = lambda name: self._part(
            ("backbone", name), lambda: backbone_identity(name, s.backbone_options.get(name, {})))
        settings = {
            "method": self._part(("method", method, dataset),
                                 lambda: method_identity(method, s.options_for(method, dataset))),
            "probe": self._part(("probe", protocol),
                                lambda: probe_identity(protocol, s.protocol_options.get(protocol, {}))),
            "dataset": self._part(("dataset", dataset), lambda: dataset_identity(dataset)),
            "distill_backbone": backbone(distill_backbone) if distill_backbone else None,
            "eval_backbone": backbone(eval_backbone),
        }
        if s.limit is not None:  # only then: the cells of every suite without one keep their ids
            settings["limit"] = limit_identity(s.limit)
        return settings

    def hash(self, dataset: str, method: str, distill_backbone: str, eval_backbone: str, protocol: str) -> str:
        """The ``config_hash`` of a cell at these coordinates."""
        key = (dataset, method, distill_backbone, eval_backbone, protocol)
        if key not in self._hashes:
            self._hashes[key] = config_hash(self.settings(*key))
        return self._hashes[key]


def register_suite(suite: Suite) -> Suite:
    SUITES.add(suite.name, suite)
    return suite


# -- the suites users type ------------------------------------------------------------------------

EMBEDDED_BACKBONES = {
    # CPU-sized inputs for the embedded default: Fashion-MNIST is 28 px, so little is lost
    "effnet_lite0": {"input_size": 64},
    # 84 px (6x6 patches): at 56 px (4x4) the ViT's distilled images were textures that transferred to
    # nothing; 84 px costs about 2x per LGM step
    "vit_s14_imgfocus": {"input_size": 84},
}
# The fast probe trains on 20 flip + random-resized-crop views of each small set's images, as the paper's
# probe trains on augmented images; one centre view per image scored distilled images below their worth.
EMBEDDED_PROBE = {"fast": {"train_views": 20}}

DEFAULT = register_suite(Suite(
    name="default",
    description="embedded default: real bundled weights and Fashion-MNIST images, offline, minutes on a CPU",
    datasets=["fashion_mnist_embedded"],
    methods=["lgm", "neighbors", "centroids", "kmeans", "herding", "random_real", "full_data"],
    backbones=list(EMBEDDED_BACKBONES),
    ipc=[1],
    seeds=5,
    protocol="fast",
    cross_model=("*",),
    method_options={"lgm": {"preset": "embedded"}},
    backbone_options=EMBEDDED_BACKBONES,
    protocol_options=EMBEDDED_PROBE,
    alignment=True,
))

DEFAULT_FAITHFUL = register_suite(DEFAULT.replace(
    name="default_faithful",
    description="the embedded default's LGM without the options beyond the paper (budget changes only)",
    methods=["lgm", "random_real"],
    method_options={"lgm": {"preset": "embedded_budget"}},
    alignment=False,
))

# The setting the paper preset was compared on beside the official code: EfficientNet-Lite0 at 64 px on
# the bundled Fashion-MNIST, 1 image per class, K = 4, 1000 steps, lr 2e-3, a level every 100 steps,
# fp32, 3 distillation seeds, each scored by the fast probe (20 views, 5 probe seeds). `python -m
# benchmark parity` prints its table (top-1 and the matching loss per 100-step window).
PARITY_LGM = {"preset": "paper", "steps": 1000, "augs_per_batch": 4, "grow_every": 100, "lr": 2e-3,
              "syn_res": "auto", "crop_res": "auto", "precision": "fp32", "checkpoint_every": 100}
PARITY = register_suite(Suite(
    name="parity",
    description="the paper preset at the setting it was compared with the official code on (3 LGM seeds)",
    datasets=["fashion_mnist_embedded"],
    methods=["lgm", "random_real"],
    backbones=["effnet_lite0"],
    ipc=[1],
    seeds=5,
    method_seeds=3,
    protocol="fast",
    method_options={"lgm": PARITY_LGM},
    backbone_options={"effnet_lite0": EMBEDDED_BACKBONES["effnet_lite0"]},
    protocol_options=EMBEDDED_PROBE,
))

SMOKE = register_suite(Suite(
    name="smoke",
    description="tiny random-init ViT on a tiny bundled dataset: the whole pipeline in seconds",
    datasets=["smoke_tiny"],
    methods=["lgm", "neighbors", "centroids", "kmeans", "herding", "random_real", "full_data"],
    method_options={"lgm": {"preset": "smoke"}},
    backbones=["tiny_vit"],
    ipc=[1],
    seeds=2,
    protocol="fast",
))

# LGM beside the classic distillation objectives in the same house (docs/method.md): the embedded
# default's data, backbones and probe, each distillation method at its `embedded` preset, every set
# probed by both backbones.
METHODS_SUITE = register_suite(DEFAULT.replace(
    name="methods",
    description="LGM, distribution matching and kernel ridge matching in the same loop, beside centroids and "
                "random real images (embedded default's data and backbones, offline, minutes on a CPU)",
    methods=["lgm", "dm", "krr", "centroids", "random_real"],
    method_options={name: {"preset": "embedded"} for name in ("lgm", "dm", "krr")},
    alignment=False,
))

DEFAULT_SUITE = DEFAULT.name

# -- the paper's experiments (the paper's Tables 1-5) -------------------------------------------------

PAPER_BACKBONES = ["clip_vitb16", "dinov2_vitb14", "eva02_vitb14", "mocov3_vitb16"]
PAPER_METHODS = ["lgm", "neighbors", "centroids", "random_real", "full_data"]
LGM_ABLATIONS = ["lgm_no_decorrelate", "lgm_no_pyramid", "lgm_no_augment"]
# The other distillation objectives, at their `paper` presets: an optional axis of every paper suite
# (`run --suite imagenet100 --methods lgm dm krr ...`), so the paper's tables and cells stay as they are.
RIVALS = ["dm", "krr"]
# The paper's runs use K = 3 augmentations per batch on ImageNet-1k and K = 10 elsewhere; KRR's support
# set is the K copies, as LGM's synthetic batch (DM augments each image once: K = 1 everywhere).
PAPER_DATASET_OPTIONS = {"imagenet1k": {"lgm": {"augs_per_batch": 3}, "krr": {"augs_per_batch": 3}}}


def paper_suite(name: str, description: str, datasets: list[str], **kw: Any) -> Suite:
    base: dict[str, Any] = dict(methods=PAPER_METHODS, backbones=PAPER_BACKBONES, ipc=[1], seeds=5,
                                protocol="paper", dataset_method_options=PAPER_DATASET_OPTIONS,
                                optional_methods=RIVALS)
    return register_suite(Suite(name=name, description=description, datasets=datasets, **{**base, **kw}))


paper_suite("imagenet100", "Table 1: ImageNet-100, 1 image/class, 4 backbones, LGM vs real-image baselines",
            ["imagenet100"])
paper_suite("imagenet1k", "Table 1: ImageNet-1k (K = 3), 1 image/class, 4 backbones", ["imagenet1k"])
paper_suite("fine_grained", "Tables 5/8: Stanford Dogs, CUB-200, Flowers-102, Food-101 on 4 backbones",
            ["stanford_dogs", "cub200", "flowers102", "food101"])
paper_suite("cross_model", "Table 2: LGM distilled with each backbone, probed with every backbone (ImageNet-100)",
            ["imagenet100"], methods=["lgm"], cross_model=("lgm", *RIVALS), alignment=True)
paper_suite("spurious", "Table 4: Spawrious o2o-hard and Waterbirds, average and worst-group accuracy",
            ["spawrious_o2o_hard", "waterbirds"])
paper_suite("ablation", "Table 3: LGM without decorrelation, pyramid or augmentation (ImageNet-100)",
            ["imagenet100"], methods=["lgm", *LGM_ABLATIONS], cross_model=("*",))
paper_suite("ood", "Out-of-distribution: ArtBench-10 distilled and probed through DINO-v1 ViT-B/16",
            ["artbench10"], backbones=["dino_vitb16"])
