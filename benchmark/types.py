"""The contracts every part of the flow speaks: images, backbones, synthetic sets, methods, probes.

The flow of one cell: a dataset gives labelled images, a method makes a synthetic set from the train
split through a distilling backbone, a probe trains a linear head on it through an evaluating backbone
and scores the test split, one row per probe seed. Concrete implementations live in their own modules
and register themselves in ``benchmark.registry``.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .neutral import key_view

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Preprocess:
    """PIL image -> 3xCxC float tensor in [0, 1]: resize the short side to ``resize``, centre-crop ``crop``.

    ``interpolation`` defaults to bilinear (antialiased, as PIL always is): torchvision's ``Resize``
    default, which the official code's test and real-image transforms use.
    """

    resize: int
    crop: int
    interpolation: str = "bilinear"

    def __call__(self, image: Any) -> Tensor:
        from torchvision.transforms import InterpolationMode
        from torchvision.transforms import functional as TF

        from .data.decode import to_rgb

        image = to_rgb(image)
        mode = InterpolationMode(self.interpolation)
        image = TF.resize(image, self.resize, interpolation=mode, antialias=True)
        image = TF.center_crop(image, [self.crop, self.crop])
        return TF.to_tensor(image)

    def key(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class LabeledImages:
    """One split of a labelled image dataset, backed by an HF ``datasets.Dataset``."""

    name: str
    split: str
    dataset: Any  # datasets.Dataset with an image column and an integer label column
    class_names: list[str]
    fingerprint: str
    image_column: str = "image"
    label_column: str = "label"
    group_column: str | None = None  # e.g. Waterbirds' place, for worst-group accuracy
    revision: str | None = None  # the Hub revision the rows were read at; None: not pinned, or local files
    realigned_from: tuple[str, ...] | None = None  # the split's own class order, when its labels were
    # realigned to the train split's order by name (else None)
    _labels: Tensor | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.dataset)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def column(self, name: str) -> Tensor:
        """An integer column as a LongTensor, read through Arrow (fast even for ImageNet-size splits)."""
        table = self.dataset.select_columns([name]).with_format("arrow")[:]
        return torch.as_tensor(table.column(name).to_numpy(zero_copy_only=False).astype("int64"))

    @property
    def labels(self) -> Tensor:
        if self._labels is None:
            self._labels = self.column(self.label_column)
        return self._labels

    @property
    def groups(self) -> Tensor | None:
        return None if self.group_column is None else self.column(self.group_column)

    def class_indices(self, c: int) -> Tensor:
        return torch.nonzero(self.labels == c).flatten()

    def load(self, indices: Sequence[int] | Tensor, preprocess: Preprocess) -> Tensor:
        """Decode and preprocess the given rows -> Nx3xCxC in [0, 1]."""
        from .data.decode import decode_row

        idx = [int(i) for i in indices]
        if not idx:
            return torch.empty(0, 3, preprocess.crop, preprocess.crop)
        images = self.dataset.select_columns([self.image_column])  # decode no other column
        return torch.stack([preprocess(decode_row(self, i, images)) for i in idx])


@dataclass(frozen=True)
class BackboneIdentity:
    """Everything that decides what a backbone computes; part of every cache key and result row."""

    name: str
    library: str
    architecture: str
    weight_id: str
    weight_sha256: str
    input_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: str = "bilinear"  # how real images are resized (test split, real-image sets, LGM reals)

    def key(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class Backbone(nn.Module):
    """A frozen feature extractor: ``embed(x)`` maps Nx3xHxW images in [0, 1] to NxD features.

    It owns its normalisation and input size (inputs of another size are resized bilinearly), stays in
    eval mode and never trains, but lets gradients flow to its input (LGM needs them).
    """

    def __init__(self, model: nn.Module, identity: BackboneIdentity, feature_dim: int) -> None:
        super().__init__()
        self.model = model.eval().requires_grad_(False)
        self.identity = identity
        self.feature_dim = feature_dim
        self.register_buffer("mean", torch.tensor(identity.mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(identity.std).view(1, 3, 1, 1), persistent=False)

    @property
    def name(self) -> str:
        return self.identity.name

    @property
    def input_size(self) -> int:
        return self.identity.input_size

    @property
    def preprocess(self) -> Preprocess:
        """Test-time preprocessing: resize to size*256/224, centre-crop size (the paper's 256/224)."""
        size = self.input_size
        return Preprocess(round(size * 256 / 224), size, self.identity.interpolation)

    def train(self, mode: bool = True) -> Backbone:  # frozen: always eval
        return super().train(False)

    def features(self, x: Tensor) -> Tensor:
        """Normalised input -> pooled features; subclasses may override."""
        return self.model(x)

    def prepare(self, x: Tensor) -> Tensor:
        """Images in [0, 1] of any size -> the normalised input the model expects."""
        if x.shape[-1] != self.input_size or x.shape[-2] != self.input_size:
            x = F.interpolate(x, size=(self.input_size, self.input_size), mode="bilinear",
                              align_corners=False, antialias=False)
        return (x - self.mean) / self.std

    def forward(self, x: Tensor) -> Tensor:
        return self.features(self.prepare(x))

    embed = forward


@dataclass
class SyntheticSet:
    """What a method produces: images (or indices of selected real training images) with labels."""

    labels: Tensor
    images: Tensor | None = None  # Nx3xHxW in [0, 1]
    indices: Tensor | None = None  # rows of the train split, for methods that select real images
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.images is None and self.indices is None:
            raise ValueError("a SyntheticSet needs images, indices of real training images, or both")
        n = len(self.labels)
        for what, t in (("images", self.images), ("indices", self.indices)):
            if t is not None and len(t) != n:
                raise ValueError(f"SyntheticSet {what} has {len(t)} rows but labels has {n}")

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def is_real(self) -> bool:
        return self.indices is not None


class FeatureSource(Protocol):
    """The feature cache as methods and probes see it."""

    def __call__(self, backbone: Backbone, data: LabeledImages, indices: Tensor | None = None,
                 preprocess: Preprocess | None = None, autocast: bool | None = None) -> Tensor:
        """Centre-crop features (float32, CPU) of ``data[indices]`` (all rows when None); ``autocast=False``
        computes them in fp32 even where the source would use bf16 (CUDA)."""
        ...


@dataclass
class RunContext:
    """What the runner hands a method or a probe besides the data and the backbone."""

    device: torch.device
    features: FeatureSource
    artifact_dir: Path  # private directory of this synthetic set (checkpoints, previews)
    load_synthetic: Callable[[str], SyntheticSet | None] = lambda method: None  # same cell, other method
    progress: bool = True
    workers: int = 0  # image decode workers (``benchmark.embedding``); 0: decode in the main process
    checkpoint_dir: Path | None = None  # the cell's private directory for a probe's checkpoints; None: none


@dataclass
class NoOptions:
    """A method or probe without knobs."""


def make_options(options_cls: type, options: dict[str, Any], owner: str) -> Any:
    """Build an Options dataclass; an unknown or missing knob is a ValueError listing the known ones."""
    try:
        return options_cls(**options)
    except TypeError as err:
        known = ", ".join(f.name for f in dataclasses.fields(options_cls)) or "none"
        raise ValueError(f"bad options for {owner}: {err}; known options: {known}") from None


class Method(ABC):
    """A way to make a training set of ``ipc`` images per class. Register a subclass in METHODS."""

    name: ClassVar[str]
    description: ClassVar[str] = ""
    Options: ClassVar[type] = NoOptions  # a dataclass of knobs; each lands in the config hash unless neutral
    uses_backbone: ClassVar[bool] = True  # False: one set serves every distilling backbone
    uses_ipc: ClassVar[bool] = True  # False: the set does not depend on ipc (full data)
    paired_seeds: ClassVar[bool] = False  # True: one probe seed per method seed (random real)
    # methods whose set of the same (dataset, backbone, ipc, seed) this one reads (``ctx.load_synthetic``):
    # their cells run first, in the same job
    requires: ClassVar[tuple[str, ...]] = ()
    # True: each cell is a job of its own (the set costs nothing to make and each probe of it is the
    # long part: a full-data probe of ImageNet-1k is most of a day, four of them no Slurm time limit)
    job_per_cell: ClassVar[bool] = False
    display_name: ClassVar[str]  # how reports name it ("LGM"); a subclass without one: its ``name``

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "display_name" not in vars(cls):
            cls.display_name = vars(cls).get("name", getattr(cls, "name", cls.__name__))

    @classmethod
    def label(cls, config: dict[str, Any]) -> str | None:
        """How a run with ``config`` (a row's ``method_config``) departs from the paper's configuration,
        for reports (``LGM [embedded]``); None when it does not."""
        return None

    def __init__(self, **options: Any) -> None:
        self.options = make_options(self.Options, options, f"method {self.name!r}")

    def config(self) -> dict[str, Any]:
        """The method's identity: its options as keys see them (``benchmark.neutral.key_view``)."""
        return {"method": self.name, **key_view(self.options)}

    @abstractmethod
    def synthesize(self, train: LabeledImages, backbone: Backbone | None, ipc: int, seed: int,
                   ctx: RunContext) -> SyntheticSet:
        """Make the set. Methods never see the test split."""


@dataclass
class ProbeResult:
    seed: int
    top1: float
    top5: float
    extra: dict[str, Any] = field(default_factory=dict)  # e.g. chosen lr, worst-group accuracy


@dataclass
class PreparedProbe:
    """What :meth:`ProbeProtocol.prepare` returns: the work every probe seed of one set shares. Each
    protocol subclasses it with its own state (features, the chosen learning rate, ...)."""

    test: LabeledImages  # scored by ``fit``; its labels are read there only
    num_classes: int


class ProbeProtocol(ABC):
    """How a linear probe is trained on a synthetic set and scored on the test split.

    Two steps, so the runner can time them apart (docs/evaluation.md, "What is timed"): ``prepare``
    once per set (features, test features, any selection), then ``fit`` once per probe seed."""

    name: ClassVar[str]
    description: ClassVar[str] = ""
    Options: ClassVar[type] = NoOptions

    def __init__(self, **options: Any) -> None:
        self.options = make_options(self.Options, options, f"probe {self.name!r}")

    def config(self) -> dict[str, Any]:
        """The probe's identity: its options as keys see them (``benchmark.neutral.key_view``)."""
        return {"protocol": self.name, **key_view(self.options)}

    @abstractmethod
    def prepare(self, synset: SyntheticSet, train: LabeledImages, test: LabeledImages,
                backbone: Backbone, ctx: RunContext) -> PreparedProbe:
        """Check the inputs and do everything the seeds share; raise ValueError on unusable input."""

    @abstractmethod
    def fit(self, prepared: PreparedProbe, seed: int) -> ProbeResult:
        """Train the head of probe seed ``seed`` and score it: test top-1/top-5 in percent."""

    def evaluate(self, synset: SyntheticSet, train: LabeledImages, test: LabeledImages,
                 backbone: Backbone, seeds: Sequence[int], ctx: RunContext) -> list[ProbeResult]:
        """``prepare`` once, then ``fit`` each seed."""
        prepared = self.prepare(synset, train, test, backbone, ctx)
        return [self.fit(prepared, int(seed)) for seed in seeds]
