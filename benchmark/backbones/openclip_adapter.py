"""Generic open_clip backbones: ``open_clip.create_model(arch, pretrained=tag_or_local_file)``.

The feature is the image embedding, ``model.encode_image(x)`` (CLS, norm, projection; not L2-normalised).
A local ``weights=`` file goes through the same ``create_model`` call (open_clip takes a file path where it
takes a tag, loads it strictly and resizes position tables to the image size).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from torch import Tensor

from .spec import (
    BackboneSpec,
    FeatureBackbone,
    LoadedModel,
    describe_architecture,
    seeded_init,
    sha256_file,
    sha256_state_dict,
)
from .timm_adapter import find_hf_cached_file, hf_revision_from_path, hub_candidates


class OpenClipBackbone(FeatureBackbone):
    """Features = ``encode_image`` of an open_clip model."""

    def features(self, x: Tensor) -> Tensor:
        return self.model.encode_image(x)


def openclip_weight_file(architecture: str, tag: str, cache_dir: str | Path | None = None,
                         download: bool = False) -> tuple[Path | None, str]:
    """The local file open_clip loads for (architecture, tag): (path or None, source id).

    With ``download=False`` only the local caches are looked at (nothing touches the network).
    """
    import open_clip

    cfg = open_clip.get_pretrained_cfg(architecture, tag)
    if not cfg:
        return None, f"open_clip:{architecture}/{tag} (unknown tag)"
    if cfg.get("file"):
        return Path(cfg["file"]), f"open_clip:{architecture}/{tag} file:{Path(cfg['file']).name}"
    hub = cfg.get("hf_hub", "")
    if hub:
        repo_id, filename = os.path.split(hub)  # 'org/repo/' means the default file name
        filename = filename or "open_clip_pytorch_model.bin"
        candidates = hub_candidates(filename)
        path = find_hf_cached_file(repo_id, candidates, cache_dir=cache_dir)
        if path is None and download:
            path = Path(open_clip.download_pretrained(cfg, cache_dir=cache_dir))
        rev = (hf_revision_from_path(path) if path else None) or "unknown-revision"
        return path, f"open_clip:{architecture}/{tag} hf-hub:{repo_id}/{path.name if path else filename}@{rev}"
    url = cfg.get("url", "")
    if url:
        folder = Path(cache_dir) if cache_dir else Path("~/.cache/clip").expanduser()
        path = folder / os.path.basename(urlparse(url).path)
        if not path.is_file() and download:
            path = Path(open_clip.download_pretrained(cfg, prefer_hf_hub=False, cache_dir=cache_dir))
        return (path if path.is_file() else None), f"open_clip:{architecture}/{tag} url:{url}"
    return None, f"open_clip:{architecture}/{tag}"


@dataclass(frozen=True, kw_only=True)
class OpenClipSpec(BackboneSpec):
    """An open_clip model. ``architecture`` is the open_clip config name (``ViT-B-16-quickgelu``),
    ``pretrained`` the weight tag (``openai``) or None for a random init with ``seed``. ``model_kwargs``
    go to ``open_clip.create_model`` (e.g. ``vision_cfg``/``text_cfg``/``embed_dim`` for a custom config).
    """

    library: str = "open_clip"
    pretrained: str | None = None
    seed: int = 0
    model_kwargs: Mapping[str, Any] = field(default_factory=dict)

    def weights_available(self, cache_dir: str | Path | None = None) -> bool:
        if self.pretrained is None:
            return True
        try:
            return openclip_weight_file(self.architecture, self.pretrained, cache_dir)[0] is not None
        except Exception:
            return False

    def create_kwargs(self, input_size: int, extra: Mapping[str, Any]) -> dict:
        kwargs = dict(self.model_kwargs)
        kwargs.update(extra)
        if "vision_cfg" in kwargs:  # a full vision config replaces the built-in one: size goes in it
            kwargs["vision_cfg"] = dict(kwargs["vision_cfg"], image_size=input_size)
        else:
            kwargs["force_image_size"] = input_size
        return kwargs

    def load(self, input_size: int, weights: Path | None, *, cache_dir: str | Path | None = None,
             **create_kwargs: Any) -> LoadedModel:
        import open_clip

        kwargs = self.create_kwargs(input_size, create_kwargs)
        if cache_dir is not None:
            kwargs["cache_dir"] = str(cache_dir)
        if weights is None and self.pretrained is None:
            with seeded_init(self.seed):
                model = open_clip.create_model(self.architecture, pretrained=None, **kwargs)
            sha = sha256_state_dict(model.state_dict())
            weight_id = f"random-init(seed={self.seed}); sha256 of state-dict tensors"
        else:
            source = str(weights) if weights is not None else self.pretrained
            model = open_clip.create_model(self.architecture, pretrained=source, **kwargs)
            if weights is not None:
                path, weight_id = weights, f"file:{weights.name}"
            else:
                path, weight_id = openclip_weight_file(self.architecture, self.pretrained, cache_dir,
                                                       download=True)
            if path is not None:
                sha = sha256_file(path)
            else:
                sha = sha256_state_dict(model.state_dict())
                weight_id += "; weight file not found, sha256 of loaded state-dict tensors"
        pre = open_clip.get_model_preprocess_cfg(model) or {}
        mean = tuple(pre.get("mean") or open_clip.OPENAI_DATASET_MEAN)
        std = tuple(pre.get("std") or open_clip.OPENAI_DATASET_STD)
        architecture = describe_architecture(self.architecture, kwargs,
                                             ignore=("force_image_size", "cache_dir"))
        return LoadedModel(model=model, weight_id=weight_id, weight_sha256=sha, native_mean=mean,
                           native_std=std, backbone_class=OpenClipBackbone, architecture=architecture)
