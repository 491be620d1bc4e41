"""The paper's method, Linear Gradient Matching. Importing the package registers ``lgm`` and its
ablations (``lgm_no_decorrelate``, ``lgm_no_pyramid``, ``lgm_no_augment``) in ``METHODS``."""

from .config import PRESETS, LGMConfig, build_config
from .lgm import LGM, LGMNoAugment, LGMNoDecorrelate, LGMNoPyramid

__all__ = ["LGM", "LGMConfig", "LGMNoAugment", "LGMNoDecorrelate", "LGMNoPyramid", "PRESETS", "build_config"]
