"""Distillation methods that share one loop (``method/distill.py``) and differ in their objective.

Importing the package registers in ``METHODS``: ``lgm`` (the paper's method) and its ablations
(``lgm_no_decorrelate``, ``lgm_no_pyramid``, ``lgm_no_augment``), ``dm`` (distribution matching) and
``krr`` (kernel ridge matching). docs/method.md describes each.
"""

from .config import PRESETS, DistillConfig, LGMConfig, build_config
from .dm import DM, DMConfig
from .krr import KRR, KRRConfig
from .lgm import LGM, LGMNoAugment, LGMNoDecorrelate, LGMNoPyramid
from .methods import DistillMethod
from .objective import Objective

__all__ = ["DM", "KRR", "LGM", "DMConfig", "DistillConfig", "DistillMethod", "KRRConfig", "LGMConfig",
           "LGMNoAugment", "LGMNoDecorrelate", "LGMNoPyramid", "Objective", "PRESETS", "build_config"]
