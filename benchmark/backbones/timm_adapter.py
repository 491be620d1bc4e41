"""Generic timm backbones: ``timm.create_model(arch, pretrained=True, num_classes=0, img_size=...)``.

Weights come from timm's own pretrained config (Hub or URL, through timm's loader), or from a local file
given as ``weights=``, which goes through the very same loader via ``pretrained_cfg_overlay=dict(file=...)``
(so timm's checkpoint filters, e.g. position-table resampling, apply to both). Loading is strict: timm
only logs missing or unexpected keys, so we listen to its log and raise.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from torch import Tensor

from ..types import IMAGENET_MEAN, IMAGENET_STD
from .spec import (
    BackboneSpec,
    FeatureBackbone,
    LoadedModel,
    describe_architecture,
    seeded_init,
    sha256_file,
    sha256_state_dict,
)

_TIMM_BUILDER_LOGGER = "timm.models._builder"
# create_model options that do not change the features (input size and weights are recorded apart)
_NOT_ARCHITECTURE = ("img_size", "num_classes", "cache_dir", "pretrained_cfg_overlay")


class TimmBackbone(FeatureBackbone):
    """Features = timm's pooled pre-logits output; ``logits()`` when the classifier was kept."""

    def features(self, x: Tensor) -> Tensor:
        return self.model.forward_head(self.model.forward_features(x), pre_logits=True)

    def logits(self, x: Tensor) -> Tensor:
        """Classifier outputs for images in [0, 1] (build with ``with_classifier=True``)."""
        if not getattr(self.model, "num_classes", 0):
            raise RuntimeError(f"backbone {self.name!r} was built without its classifier; "
                               "build it with with_classifier=True")
        return self.model(self.prepare(x))


class _KeyReport(logging.Handler):
    """Collects timm's 'Missing keys'/'Unexpected keys' messages; passes the rest on as usual."""

    def __init__(self, logger: logging.Logger, pass_level: int) -> None:
        super().__init__(logging.DEBUG)
        self.logger = logger
        self.pass_level = pass_level
        self.problems: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if message.startswith(("Missing keys", "Unexpected keys")):
            self.problems.append(message)
        elif record.levelno >= self.pass_level and self.logger.parent is not None:
            self.logger.parent.handle(record)


@contextmanager
def timm_key_report() -> Iterator[_KeyReport]:
    """While active, timm's load-time key messages are captured instead of only logged."""
    logger = logging.getLogger(_TIMM_BUILDER_LOGGER)
    handler = _KeyReport(logger, logger.getEffectiveLevel())
    old_level, old_propagate = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
        logger.propagate = old_propagate


def hf_revision_from_path(path: Path) -> str | None:
    """The commit of a file in the Hugging Face cache (``.../snapshots/<commit>/<file>``)."""
    match = re.search(r"snapshots[/\\]([0-9a-f]{40})[/\\]", str(path))
    return match.group(1) if match else None


def find_hf_cached_file(repo_id: str, filenames: list[str], revision: str | None = None,
                        cache_dir: str | Path | None = None) -> Path | None:
    """The first of ``filenames`` present in the local Hugging Face cache of ``repo_id``, or None."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover - huggingface_hub comes with timm
        return None
    for filename in filenames:
        found = try_to_load_from_cache(repo_id, filename, cache_dir=cache_dir, revision=revision)
        if isinstance(found, str) and os.path.isfile(found):
            return Path(found)
    return None


def hub_candidates(filename: str) -> list[str]:
    """The Hub file names timm and open_clip try, in order: a safetensors alternative, then the file."""
    names = []
    if filename.endswith(".safetensors"):
        return [filename]
    if filename == "pytorch_model.bin":
        names.append("model.safetensors")
    elif filename == "open_clip_pytorch_model.bin":
        names.append("open_clip_model.safetensors")
    elif filename.endswith(".bin"):
        names.append(filename[:-4] + ".safetensors")
    return [*names, filename]


def timm_weight_file(pretrained_cfg: Mapping[str, Any], cache_dir: str | Path | None = None
                     ) -> tuple[Path | None, str]:
    """Where timm loaded (or would load) this config's weights from: (local file or None, source id)."""
    from timm.models._builder import _resolve_pretrained_source

    load_from, location = _resolve_pretrained_source(dict(pretrained_cfg))
    if load_from == "file":
        return Path(location), f"file:{Path(location).name}"
    if load_from == "hf-hub":
        repo, filename = (location if isinstance(location, (tuple, list)) else (location, "pytorch_model.bin"))
        repo_id, _, revision = str(repo).partition("@")
        path = find_hf_cached_file(repo_id, hub_candidates(filename), revision or None, cache_dir)
        rev = (hf_revision_from_path(path) if path else None) or revision or "unknown-revision"
        return path, f"hf-hub:{repo_id}/{path.name if path else filename}@{rev}"
    if load_from == "url":
        import torch.hub

        folder = Path(cache_dir) if cache_dir else Path(torch.hub.get_dir()) / "checkpoints"
        path = folder / os.path.basename(urlparse(location).path)
        return (path if path.is_file() else None), f"url:{location}"
    if load_from == "local-dir":
        folder = Path(location)
        for name in ("model.safetensors", "pytorch_model.bin", "open_clip_model.safetensors",
                     "open_clip_pytorch_model.bin"):
            if (folder / name).is_file():
                return folder / name, f"local-dir:{folder.name}/{name}"
        return None, f"local-dir:{folder.name}"
    return None, f"{load_from or 'unknown'}:{pretrained_cfg.get('architecture', '?')}"


@dataclass(frozen=True, kw_only=True)
class TimmSpec(BackboneSpec):
    """A timm model. ``architecture`` is the timm name, with the pretrained tag where it matters
    (``vit_base_patch14_dinov2.lvd142m``). ``pretrained=False`` gives a random init with ``seed``.

    ``model_kwargs`` go to ``timm.create_model``; ``set_img_size`` passes ``img_size=input_size``
    (ViTs need it; most convnets take any size and reject the keyword). ``revision`` pins a Hub commit.
    """

    library: str = "timm"
    pretrained: bool = True
    seed: int = 0
    model_kwargs: Mapping[str, Any] = field(default_factory=dict)
    set_img_size: bool = True
    patch_size: int | None = None  # when set, input_size must be a multiple of it

    def check_input_size(self, input_size: int) -> None:
        super().check_input_size(input_size)
        if self.patch_size and input_size % self.patch_size:
            raise ValueError(f"backbone {self.name!r}: input_size must be a multiple of the patch size "
                             f"{self.patch_size} (e.g. {4 * self.patch_size} or {16 * self.patch_size}), "
                             f"not {input_size}")

    def weights_available(self, cache_dir: str | Path | None = None) -> bool:
        if not self.pretrained:
            return True
        try:
            from timm.models import get_pretrained_cfg

            cfg = get_pretrained_cfg(self.architecture)
            return cfg is not None and timm_weight_file(cfg.to_dict(), cache_dir)[0] is not None
        except Exception:
            return False

    def create_kwargs(self, input_size: int, with_classifier: bool, extra: Mapping[str, Any]) -> dict:
        kwargs = dict(self.model_kwargs)
        if self.set_img_size:
            kwargs["img_size"] = input_size
        if not with_classifier:
            kwargs["num_classes"] = 0
        kwargs.update(extra)
        return kwargs

    def load(self, input_size: int, weights: Path | None, *, with_classifier: bool = False,
             strict: bool = True, cache_dir: str | Path | None = None, **create_kwargs: Any) -> LoadedModel:
        import timm

        kwargs = self.create_kwargs(input_size, with_classifier, create_kwargs)
        if cache_dir is not None:
            kwargs["cache_dir"] = cache_dir
        if weights is None and not self.pretrained:
            with seeded_init(self.seed):
                model = timm.create_model(self.architecture, pretrained=False, **kwargs)
            sha = sha256_state_dict(model.state_dict())
            weight_id = f"random-init(seed={self.seed}); sha256 of state-dict tensors"
        else:
            if weights is not None:
                overlay = dict(kwargs.pop("pretrained_cfg_overlay", None) or {}, file=str(weights))
                if weights.suffix != ".npz":
                    overlay["custom_load"] = False  # plain state dict, not timm's npz loader
                kwargs["pretrained_cfg_overlay"] = overlay
            with timm_key_report() as report:
                model = timm.create_model(self.architecture, pretrained=True, **kwargs)
            if strict and report.problems:
                raise RuntimeError(f"backbone {self.name!r}: weights do not load strictly into "
                                   f"{self.architecture}: " + " ".join(report.problems))
            cfg = dict(model.pretrained_cfg)
            path, source = timm_weight_file(cfg, cache_dir)
            if path is not None:
                sha = sha256_file(path)
                weight_id = source
            else:
                sha = sha256_state_dict(model.state_dict())
                weight_id = f"{source}; weight file not found, sha256 of loaded state-dict tensors"
        cfg = getattr(model, "pretrained_cfg", None) or {}
        mean = tuple(cfg.get("mean") or IMAGENET_MEAN)
        std = tuple(cfg.get("std") or IMAGENET_STD)
        architecture = describe_architecture(self.architecture, kwargs, ignore=_NOT_ARCHITECTURE)
        return LoadedModel(model=model, weight_id=weight_id, weight_sha256=sha, native_mean=mean,
                           native_std=std, backbone_class=TimmBackbone, architecture=architecture)
