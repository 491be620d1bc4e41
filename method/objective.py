"""The plug-in point of a distillation method: how real and synthetic features become a loss.

Everything else a run does is the shared loop's (``method/distill.py``): the image parameterisation,
decorrelation, differentiable augmentation, the real images, ``micro_batch``, fp16/bf16, checkpoints and
the growth schedule. An objective states two things per update:

* :meth:`Objective.target`: what it needs of the real side, from ``real()`` (the loop's features of this
  update's real batch, or of the real bank: detached float32 ``z`` and labels ``y``). Whatever random draws
  it makes of its own (LGM's random head) come from the loop's generators, in the order it calls them.
* :meth:`Objective.loss`: a scalar from the synthetic features ``z`` (all copies of the synthetic set,
  float32 or the autocast dtype, differentiable) and their labels ``y``, given that target.

The loss must depend on ``z`` only through the values passed in (no state kept between calls): the loop
may call it once on the features of the whole synthetic batch (one pass) or once on a detached copy and
then back-propagate ``dLoss/dz`` chunk by chunk (``micro_batch``); both give the same images.

A new objective is one file: a config dataclass extending ``DistillConfig``, an ``Objective`` subclass
naming it as ``Config``, and a ``DistillMethod`` subclass registered in ``METHODS`` (``method/methods.py``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

from torch import Tensor

from .config import DistillConfig

if TYPE_CHECKING:
    from .distill import Distiller

RealFeatures = Callable[[], tuple[Tensor, Tensor]]

# Real images per embedding pass when an update's real batch is embedded (DM's 256 per class x classes
# would not fit on a device at once); each block draws its crops and augmentation in turn.
REAL_BLOCK = 256

# Config class -> objective class, filled as objectives are defined: the loop finds a config's objective.
_BY_CONFIG: dict[type, type[Objective]] = {}


class Objective(ABC):
    """One objective for one run; built by the loop with the run's resolved config."""

    name: ClassVar[str]
    Config: ClassVar[type[DistillConfig]]
    # Real images per embedding pass of an update's real batch; None: the whole batch at once.
    real_block: ClassVar[int | None] = REAL_BLOCK
    # What ``precision="auto"`` means on CUDA: bf16 needs no loss scale and has fp32's range, which a loss
    # that is not bounded (a sum of squared feature distances, a regression error) needs; LGM's bounded
    # cosine runs under the official fp16 with a fixed x1024 scale.
    cuda_autocast: ClassVar[str] = "bf16"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        config = vars(cls).get("Config")
        if config is not None:
            if config in _BY_CONFIG and _BY_CONFIG[config] is not cls:
                raise TypeError(f"{config.__name__} is already the config of objective {_BY_CONFIG[config].name!r}")
            _BY_CONFIG[config] = cls

    def __init__(self, cfg: DistillConfig, loop: Distiller) -> None:
        self.cfg = cfg
        self.loop = loop

    def real_per_class(self, ipc: int) -> int:
        """Real images per class in an update's real batch (LGM's: ipc x K, the official loader's)."""
        return self.cfg.real_images_per_class(ipc)

    @abstractmethod
    def target(self, real: RealFeatures) -> Any:
        """What the update's loss compares the synthetic features with, built from ``real()`` (detached)."""

    @abstractmethod
    def loss(self, z: Tensor, y: Tensor, target: Any) -> Tensor:
        """The update's loss from the synthetic features ``z`` (rows labelled ``y``); differentiable in z."""

    def metadata(self) -> dict[str, Any]:
        """Extra facts about the run for the set's metadata (none by default)."""
        return {}


def objective_for(cfg: DistillConfig) -> type[Objective]:
    """The objective whose ``Config`` is the type of ``cfg``."""
    found = _BY_CONFIG.get(type(cfg))
    if found is None:
        raise TypeError(f"no objective has {type(cfg).__name__} as its config; pass objective= to Distiller")
    return found
