"""``DistillMethod``: an objective as a registered method (options, presets, identity, report label, run).

Every distillation method of the package is a small subclass naming its objective, its presets and how
reports show it; registered in ``METHODS``, it joins every suite by name. ``config()`` is the cell's and
the artifact's identity: ``preset`` and every config field after the preset and the options, the
neutral ones as keys see them (``checkpoint_every`` at the preset's value, ``micro_batch`` left out).
"""

from __future__ import annotations

import time
from typing import Any, ClassVar

from benchmark.hashing import stable_hash
from benchmark.neutral import neutral_fields, result_options
from benchmark.types import Backbone, LabeledImages, Method, RunContext, SyntheticSet

from .config import DistillConfig, build, options_dataclass
from .distill import Distiller
from .objective import Objective
from .preview import save_grid

GRID_FILENAME = "grid.png"


class DistillMethod(Method):
    """Synthetic images made by the shared loop (``method/distill.py``) under ``objective``."""

    objective: ClassVar[type[Objective]]
    presets: ClassVar[dict[str, dict[str, Any]]]  # name -> config values; "paper" is the default
    fixed: ClassVar[dict[str, Any]] = {}  # what an ablation variant pins
    # (option, value) pairs the method's paper itself uses for some dataset: never labelled as overrides
    paper_per_dataset: ClassVar[set[tuple[str, Any]]] = set()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "objective" in vars(cls) and "Options" not in vars(cls):
            cls.Options = options_dataclass(cls.objective.Config, f"{cls.__name__}Options")

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        overrides = {k: v for k, v in vars(self.options).items() if k != "preset"}
        self.distill_config: DistillConfig = self.build(self.options.preset, overrides)
        # the identity's config: neutral overrides (checkpoint cadence, micro_batch) fall back to the preset
        self._key_config = self.build(self.options.preset, result_options(self.Options, overrides))

    @property
    def lgm_config(self) -> DistillConfig:
        """The loop's config (the name the cost model and older callers read; every objective has one)."""
        return self.distill_config

    @classmethod
    def build(cls, preset: str, overrides: dict[str, Any] | None = None) -> DistillConfig:
        return build(cls.objective.Config, cls.presets, preset, overrides, cls.fixed)

    def config(self) -> dict[str, Any]:
        """Every field of the run's config (``crop_res``/``syn_res`` ``None``: derived from the distilling
        backbone's input size, whose identity is part of every artifact key; the metadata has the values),
        neutral fields as keys see them."""
        fields = self._key_config.to_dict(omit=neutral_fields(self.objective.Config, "omitted"))
        return {"method": self.name, "preset": self.options.preset, **fields}

    @classmethod
    def label(cls, config: dict[str, Any]) -> str | None:
        """What the report shows beside the display name: the preset unless it is ``paper``; for ``paper``
        with overrides beyond the paper's own per-dataset settings, ``paper+<hash of the overrides>`` (so
        two override sets are never pooled, and no table calls such a run the plain method)."""
        preset = config.get("preset", "paper")
        if preset != "paper":
            return str(preset)
        paper = cls.build("paper").to_dict(result_only=True)
        changed = {k: v for k, v in config.items()
                   if k in paper and v != paper[k] and (k, v) not in cls.paper_per_dataset}
        return f"paper+{stable_hash(changed, 6)}" if changed else None

    def synthesize(self, train: LabeledImages, backbone: Backbone | None, ipc: int, seed: int,
                   ctx: RunContext) -> SyntheticSet:
        if backbone is None:
            raise ValueError(f"{self.name} distils through a backbone; none was given")
        cfg = self.distill_config.resolve(backbone.input_size)
        started = time.perf_counter()
        distiller = Distiller(cfg, train, backbone, ipc, seed, device=ctx.device, artifact_dir=ctx.artifact_dir,
                              progress=ctx.progress, workers=ctx.workers, objective=self.objective)
        images = distiller.run()
        meta = {"method": self.name, "preset": self.options.preset, **distiller.metadata(),
                "wall_seconds": time.perf_counter() - started}
        labels = distiller.labels.cpu()
        if ctx.artifact_dir is not None:
            title = f"{self.name} | {train.name} | {backbone.name} | {distiller.step_done} steps"
            save_grid(images, labels, train.class_names, ctx.artifact_dir / GRID_FILENAME, title=title)
            meta["grid"] = GRID_FILENAME
        return SyntheticSet(labels=labels, images=images, metadata=meta)
