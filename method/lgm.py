"""``lgm`` and its ablations as registered methods (docs/method.md; the paper's Table 3 for the ablations)."""

from __future__ import annotations

import time
from typing import Any, ClassVar

from benchmark.hashing import stable_hash
from benchmark.neutral import neutral_fields, result_options
from benchmark.registry import METHODS
from benchmark.types import Backbone, LabeledImages, Method, RunContext, SyntheticSet

from .config import LGMConfig, LGMOptions, build_config
from .distill import Distiller
from .preview import save_grid

GRID_FILENAME = "grid.png"
# (option, value) pairs the paper itself uses for some dataset: K = 3 augmentations on ImageNet-1k
PAPER_PER_DATASET = {("augs_per_batch", 3)}


@METHODS.register("lgm")
class LGM(Method):
    """Linear Gradient Matching: synthetic images whose random-linear-head gradients match real ones."""

    name = "lgm"
    description = "Linear Gradient Matching (the paper's method): pyramid images, random heads, cosine"
    display_name = "LGM"
    Options = LGMOptions
    fixed: ClassVar[dict[str, Any]] = {}  # what an ablation variant pins

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        overrides = {k: v for k, v in vars(self.options).items() if k != "preset"}
        self.lgm_config: LGMConfig = build_config(self.options.preset, overrides, self.fixed)
        # the identity's config: neutral overrides (checkpoint cadence, micro_batch) fall back to the preset
        self._key_config = build_config(self.options.preset, result_options(LGMOptions, overrides), self.fixed)

    def config(self) -> dict[str, Any]:
        """Every field of the run's config (``crop_res``/``syn_res`` ``None``: derived from the distilling
        backbone's input size, whose identity is part of every artifact key; the metadata has the values),
        neutral fields as keys see them: ``checkpoint_every`` at the preset's value, ``micro_batch`` left out."""
        fields = self._key_config.to_dict(omit=neutral_fields(LGMConfig, "omitted"))
        return {"method": self.name, "preset": self.options.preset, **fields}

    @classmethod
    def label(cls, config: dict[str, Any]) -> str | None:
        """What the report shows beside "LGM": the preset unless it is ``paper``; for ``paper`` with
        overrides beyond the paper's own per-dataset settings, ``paper+<hash of the overrides>`` (so two
        override sets are never pooled, and no table calls such a run plain "LGM")."""
        preset = config.get("preset", "paper")
        if preset != "paper":
            return str(preset)
        paper = build_config("paper", {}, cls.fixed).to_dict(result_only=True)
        changed = {k: v for k, v in config.items()
                   if k in paper and v != paper[k] and (k, v) not in PAPER_PER_DATASET}
        return f"paper+{stable_hash(changed, 6)}" if changed else None

    def synthesize(self, train: LabeledImages, backbone: Backbone | None, ipc: int, seed: int,
                   ctx: RunContext) -> SyntheticSet:
        if backbone is None:
            raise ValueError(f"{self.name} distils through a backbone; none was given")
        cfg = self.lgm_config.resolve(backbone.input_size)
        started = time.perf_counter()
        distiller = Distiller(cfg, train, backbone, ipc, seed, device=ctx.device, artifact_dir=ctx.artifact_dir,
                              progress=ctx.progress, workers=ctx.workers)
        images = distiller.run()
        meta = {"method": self.name, "preset": self.options.preset, **distiller.metadata(),
                "wall_seconds": time.perf_counter() - started}
        labels = distiller.labels.cpu()
        if ctx.artifact_dir is not None:
            title = f"{self.name} | {train.name} | {backbone.name} | {distiller.step_done} steps"
            save_grid(images, labels, train.class_names, ctx.artifact_dir / GRID_FILENAME, title=title)
            meta["grid"] = GRID_FILENAME
        return SyntheticSet(labels=labels, images=images, metadata=meta)


@METHODS.register("lgm_no_decorrelate")
class LGMNoDecorrelate(LGM):
    """LGM without the colour-decorrelation matrix (Table 3 ablation)."""

    name = "lgm_no_decorrelate"
    description = "LGM ablation: no colour decorrelation"
    display_name = "LGM w/o decorrelation"
    fixed = {"decorrelate": False}


@METHODS.register("lgm_no_pyramid")
class LGMNoPyramid(LGM):
    """LGM with plain pixels instead of the pyramid (Table 3 ablation)."""

    name = "lgm_no_pyramid"
    description = "LGM ablation: plain pixels instead of the pyramid"
    display_name = "LGM w/o pyramid"
    fixed = {"parameterization": "pixel"}


@METHODS.register("lgm_no_augment")
class LGMNoAugment(LGM):
    """LGM without differentiable augmentation (Table 3 ablation)."""

    name = "lgm_no_augment"
    description = "LGM ablation: no differentiable augmentation"
    display_name = "LGM w/o augmentation"
    fixed = {"augment": False}
